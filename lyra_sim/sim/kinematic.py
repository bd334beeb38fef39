"""Moving clusters of a dynamic SimBundle as kinematic PyBullet bodies that follow their tracks.

A dynamic bundle (``lyra_sim.bundle.dynamic``) lists each moving cluster as an object (URDF,
convex hulls, body-frame splat) plus a track of body-frame world poses over time.
:class:`KinematicTracks` turns those objects into kinematic bodies (mass 0: gravity and contacts
do not move them, other bodies collide with them) and puts them at their pose for a time: linear
in position and slerp in orientation between stored steps, looping or holding the last pose after
the end. The splats follow through the env's usual pose sync (``ObservationPipeline.sync_poses``
reads the body frames), so an observation shows the scene at the env's time.

May import numpy, pybullet and lyra_sim (bundle, sim).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lyra_sim.bundle.dynamic import Track, read_tracks
from lyra_sim.bundle.manifest import Manifest
from lyra_sim.errors import BundleError
from lyra_sim.sim.world import reset_body_frame_pose
from lyra_sim.typed import TrackEnd, check_choice


class KinematicTracks:
    """The moving clusters of a dynamic bundle in a PyBullet client.

    Args:
        client_id: the PyBullet client the bundle is loaded into.
        root: the bundle folder.
        manifest: its manifest (``manifest.dynamic`` names the clusters and their objects).
        body_ids: object name -> body id (``lyra_sim.sim.world.load_into_pybullet``).
        end: "loop" (wrap around the track's duration) or "stop" (hold the last pose).
    """

    def __init__(self, client_id: int, root: str | Path, manifest: Manifest, body_ids: dict[str, int], end: TrackEnd = "loop") -> None:
        import pybullet

        check_choice(end, TrackEnd, "track_end")
        self.client_id, self.end = client_id, end
        self.tracks: list[Track] = read_tracks(Path(root), manifest)
        missing = [track.cluster.object for track in self.tracks if track.cluster.object not in body_ids]
        if missing:
            raise BundleError(f"{root}: the dynamic clusters' objects {missing} are not loaded (bodies: {sorted(body_ids)})")
        self.body_ids = [body_ids[track.cluster.object] for track in self.tracks]
        self.object_names = [track.cluster.object for track in self.tracks]
        for body_id in self.body_ids:
            # Mass 0 makes a body kinematic in Bullet: it moves only where it is put.
            pybullet.changeDynamics(body_id, -1, mass=0.0, physicsClientId=client_id)

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def duration(self) -> float:
        """The longest track's duration (s)."""
        return max((track.duration for track in self.tracks), default=0.0)

    def poses_at(self, time: float) -> tuple[np.ndarray, np.ndarray]:  # -> [C, 3], [C, 4] xyzw
        """Every cluster's body-frame world pose at ``time`` (s since the tracks' start)."""
        poses = [track.pose_at(time, self.end) for track in self.tracks]
        return (np.array([p for p, _ in poses]).reshape(-1, 3), np.array([q for _, q in poses]).reshape(-1, 4))

    def velocities_at(self, time: float, step: float) -> np.ndarray:  # -> [C, 3] m/s
        """Linear velocities of the body frames at ``time`` (central difference over ``step`` s)."""
        before, _ = self.poses_at(time - 0.5 * step)
        after, _ = self.poses_at(time + 0.5 * step)
        return (after - before) / step

    def apply(self, time: float) -> None:
        """Put every cluster's body at its pose at ``time`` (and zero its velocity)."""
        positions, orientations = self.poses_at(time)
        for body_id, position, orientation in zip(self.body_ids, positions, orientations):
            reset_body_frame_pose(self.client_id, body_id, position, orientation)

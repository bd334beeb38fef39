"""The ``dynamic/`` part of a SimBundle built from a splat sequence: layout, reading, poses at a time.

A dynamic bundle is a static bundle (scenery from the Gaussians that stay put) whose movable
objects include one object per moving cluster, listed in ``objects`` at its frame-0 pose
(splat in the body frame, convex hulls, URDF), plus::

    manifest.json  "dynamic": {"version": 1, "fps": 24.0, "frames": T, "duration_s": (T-1)/fps,
                               "clusters": [{"name", "object", "kind": "rigid" | "frames",
                                             "track", "frames", "max_residual_m"}]}
    dynamic/<cluster>/track.csv            header "time_s,x,y,z,qx,qy,qz,qw"; one row per stored
                                           step: the world pose of the object's body (URDF link)
                                           frame at time_s (seconds from the first frame)
    dynamic/<cluster>/frames/frame_<t>.ply only for kind "frames" (a non-rigid cluster): its
                                           Gaussians at step t, world frame (INRIA PLY)

Reading it without lyra-sim: load ``objects/<cluster>.urdf`` into PyBullet, make it kinematic
(mass 0) and ``resetBasePositionAndOrientation`` it to the CSV row of the time (the link frame is
the body frame; see ``lyra_sim.sim.world.reset_body_frame_pose`` for URDFs with full inertia).
Between rows, positions are interpolated linearly and orientations by slerp
(:meth:`Track.pose_at`). May import numpy and ``lyra_sim.bundle.manifest`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lyra_sim.bundle.manifest import DYNAMIC_VERSIONS, DynamicCluster, Manifest
from lyra_sim.errors import BundleError

DYNAMIC_FORMAT_VERSION = DYNAMIC_VERSIONS[-1]  # what this lyra-sim writes
TRACK_COLUMNS = ("time_s", "x", "y", "z", "qx", "qy", "qz", "qw")
TRACK_ENDS = ("loop", "stop")  # = lyra_sim.typed.TrackEnd (this module imports nothing of lyra_sim beyond the bundle)


@dataclass
class Track:
    """A cluster's stored body poses: ``times`` [T] s (increasing, from 0), ``positions`` [T, 3]
    world metres, ``orientations_xyzw`` [T, 4] unit quaternions (PyBullet order)."""

    cluster: DynamicCluster
    times: np.ndarray
    positions: np.ndarray
    orientations_xyzw: np.ndarray

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def local_time(self, time: float, end: str = "loop") -> float:
        """``time`` (s since the track's start) folded into [0, duration]: "loop" wraps around,
        "stop" holds the last pose."""
        if end not in TRACK_ENDS:
            raise ValueError(f"track end {end!r} is not one of {list(TRACK_ENDS)}")
        if self.duration <= 0:
            return 0.0
        if end == "loop":
            return float(np.mod(time, self.duration))
        return float(np.clip(time, 0.0, self.duration))

    def pose_at(self, time: float, end: str = "loop") -> tuple[np.ndarray, np.ndarray]:  # -> [3], [4] xyzw
        """The body pose at ``time``: linear in position, slerp in orientation between stored steps."""
        local = self.local_time(time, end)
        upper = int(np.clip(np.searchsorted(self.times, local, side="right"), 1, len(self.times) - 1)) if len(self.times) > 1 else 0
        if len(self.times) == 1:
            return self.positions[0].copy(), self.orientations_xyzw[0].copy()
        lower = upper - 1
        span = self.times[upper] - self.times[lower]
        weight = 0.0 if span <= 0 else float(np.clip((local - self.times[lower]) / span, 0.0, 1.0))
        position = (1.0 - weight) * self.positions[lower] + weight * self.positions[upper]
        return position, slerp(self.orientations_xyzw[lower], self.orientations_xyzw[upper], weight)


def slerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:  # [4], [4] -> [4]
    """Spherical interpolation of unit quaternions (shortest way round)."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    dot = float(np.dot(start, end))
    if dot < 0.0:
        end, dot = -end, -dot
    if dot > 0.9995:  # nearly parallel: normalised lerp is exact enough and stable
        result = start + weight * (end - start)
    else:
        angle = np.arccos(dot)
        result = (np.sin((1.0 - weight) * angle) * start + np.sin(weight * angle) * end) / np.sin(angle)
    return result / np.linalg.norm(result)


def read_track(root: Path, cluster: DynamicCluster) -> Track:
    """Read and check one cluster's ``track.csv``."""
    path = Path(root) / cluster.track
    try:
        with open(path) as handle:
            header = handle.readline().strip().split(",")
        rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (OSError, ValueError) as error:
        raise BundleError(f"{path}: not a readable track ({error})") from None
    if tuple(header) != TRACK_COLUMNS or rows.shape[1] != len(TRACK_COLUMNS) or len(rows) == 0:
        raise BundleError(f"{path}: a track has the header {','.join(TRACK_COLUMNS)} and at least one row, got {header} and {rows.shape}")
    if not np.isfinite(rows).all() or np.any(np.diff(rows[:, 0]) <= 0):
        raise BundleError(f"{path}: times must increase and every value be finite")
    orientations = rows[:, 4:8] / np.linalg.norm(rows[:, 4:8], axis=1, keepdims=True)
    return Track(cluster, rows[:, 0].copy(), rows[:, 1:4].copy(), orientations)


def read_tracks(root: Path, manifest: Manifest) -> list[Track]:
    """Every cluster's track of a dynamic bundle (empty for a static one)."""
    if manifest.dynamic is None:
        return []
    return [read_track(root, cluster) for cluster in manifest.dynamic.clusters]

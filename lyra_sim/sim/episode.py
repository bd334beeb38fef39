"""Episode files: the poses of every simulated body over one rollout, for ``lyra-sim view --episode``.

:class:`EpisodeRecorder` reads a running lyra-sim env's PyBullet state after ``reset`` and every
``step`` and :meth:`EpisodeRecorder.save` writes one ``.npz`` file (atomically); :func:`load_episode`
reads and validates it. The file is self-contained apart from the bundle it refers to: the
robot's and the markers' visual meshes are stored in it (in their link frames), the objects are
drawn from the bundle.

Layout of the ``.npz`` (no pickled objects; ``metadata`` is a JSON string)::

    metadata            JSON: format, version, env_id, bundle (absolute path), fps,
                        parts [{body, kind ("object" | "mesh"), link}]
    times               [T] float64, seconds since the start of the rollout
    episode_index       [T] int32, which episode each frame belongs to (resets start a new one)
    rewards             [T] float64, reward of the step that led to the frame (NaN after a reset)
    positions           [T, P, 3] float32, world position of each part's frame
    orientations_xyzw   [T, P, 4] float32, world orientation of each part's frame (PyBullet order)
    mesh_vertices       [V, 3] float32, the parts' visual meshes in their frames, concatenated
    mesh_faces          [F, 3] int32, indices into each part's own vertex block
    mesh_face_colors    [F, 4] uint8
    vertex_offsets      [P + 1] int64, part p's vertices are mesh_vertices[o[p]:o[p+1]]
    face_offsets        [P + 1] int64, likewise for faces

A part is a rigid frame: an object's body frame (its centre of mass; no mesh stored) or one link
of a mesh body (the robot, a goal marker). This module may import numpy, pybullet (lazily) and
``lyra_sim.sim.robot_splats``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lyra_sim.errors import LyraSimError
from lyra_sim.io_utils import atomic_path

EPISODE_FORMAT = "lyra-sim-episode"
EPISODE_VERSION = 1
_ARRAYS = ("times", "episode_index", "rewards", "positions", "orientations_xyzw", "mesh_vertices", "mesh_faces",
           "mesh_face_colors", "vertex_offsets", "face_offsets")


class EpisodeError(LyraSimError, ValueError):
    """An episode file is missing, malformed or from an unsupported version."""


@dataclass
class EpisodePart:
    """One rigid frame of an episode.

    Attributes:
        body: name of the body ("robot", "goal", or a bundle object's name).
        kind: "object" (a bundle object, drawn from the bundle) or "mesh" (geometry stored here).
        link: PyBullet link index of the frame (-1: the base).
        vertices: [V, 3] visual mesh in the part frame (empty for objects).
        faces: [F, 3] int32.
        face_colors: [F, 4] uint8.
    """

    body: str
    kind: str
    link: int
    vertices: np.ndarray
    faces: np.ndarray
    face_colors: np.ndarray


@dataclass
class Episode:
    """A loaded episode file (see the module docstring for the meaning of each array).

    Attributes:
        path: the file.
        env_id: the env it was recorded from.
        bundle: the bundle folder the env ran on.
        fps: control rate of the env (frames per second of simulated time).
        parts: the P rigid frames.
        times: [T]; episode_index: [T]; rewards: [T].
        positions: [T, P, 3]; orientations_xyzw: [T, P, 4].
    """

    path: Path
    env_id: str
    bundle: Path
    fps: float
    parts: list[EpisodePart]
    times: np.ndarray
    episode_index: np.ndarray
    rewards: np.ndarray
    positions: np.ndarray
    orientations_xyzw: np.ndarray

    def __len__(self) -> int:
        return len(self.times)

    def part_indices(self, body: str) -> list[int]:
        """Indices of the parts that belong to ``body``."""
        return [index for index, part in enumerate(self.parts) if part.body == body]


class EpisodeRecorder:
    """Records the pose of every object and every visual link of a lyra-sim env.

    Call :meth:`record` after ``reset()`` (with ``reward=None``) and after every ``step()``; then
    :meth:`save`. Works on the unwrapped env's PyBullet client, so any wrapper is fine.

    Args:
        env: a lyra-sim env (wrapped or not).
        env_id: the id it was made with, stored for the viewer's title.
    """

    def __init__(self, env, env_id: str = "") -> None:
        from lyra_sim.sim.robot_splats import link_visual_meshes

        self.env = env.unwrapped
        self.env_id = env_id or getattr(getattr(env, "spec", None), "id", "") or type(self.env).__name__
        self._sources: list[tuple[int, int]] = []  # (body id, link index) of each part
        self._parts: list[dict[str, Any]] = []
        self._meshes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        empty = (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros((0, 4), np.uint8))
        for name, body_id in zip(self.env.object_names, self.env.object_ids):
            self._add_part(name, "object", body_id, -1, empty)
        for mesh_body in self.env.mesh_bodies:
            for link_index, mesh in link_visual_meshes(self.env.client_id, mesh_body.body_id).items():
                colors = np.asarray(mesh.visual.face_colors, dtype=np.uint8).reshape(-1, 4)
                self._add_part(mesh_body.name, "mesh", mesh_body.body_id, link_index,
                               (np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32), colors))
        self._positions: list[np.ndarray] = []
        self._orientations: list[np.ndarray] = []
        self._times: list[float] = []
        self._episode_index: list[int] = []
        self._rewards: list[float] = []
        self._episode = -1
        self._clock = 0.0

    def _add_part(self, body: str, kind: str, body_id: int, link: int, mesh: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self._parts.append({"body": body, "kind": kind, "link": int(link)})
        self._sources.append((body_id, link))
        self._meshes.append(mesh)

    @property
    def fps(self) -> float:
        return float(self.env.metadata.get("render_fps", 30))

    def __len__(self) -> int:
        return len(self._times)

    def record(self, reward: float | None = None) -> None:
        """Store the current poses. ``reward=None`` marks the first frame of a new episode."""
        from lyra_sim.sim.robot_splats import link_frame_poses

        if reward is None:
            self._episode += 1
        elif self._episode < 0:
            raise ValueError("record(reward=None) must come first, right after reset()")
        else:
            self._clock += 1.0 / self.fps
        positions = np.zeros((len(self._sources), 3), np.float32)
        orientations = np.zeros((len(self._sources), 4), np.float32)
        for index, (body_id, link) in enumerate(self._sources):
            position, orientation = link_frame_poses(self.env.client_id, body_id, [link])
            positions[index], orientations[index] = position[0], orientation[0]
        self._positions.append(positions)
        self._orientations.append(orientations)
        self._times.append(self._clock)
        self._episode_index.append(self._episode)
        self._rewards.append(float("nan") if reward is None else float(reward))

    def save(self, path) -> Path:
        """Write the episode to ``path`` (``.npz``), atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"episode files end in .npz, got {path}")
        if not self._times:
            raise ValueError("nothing recorded: call record() after reset() and after each step()")
        metadata = {
            "format": EPISODE_FORMAT,
            "version": EPISODE_VERSION,
            "env_id": self.env_id,
            "bundle": str(Path(self.env.bundle_path).resolve()),
            "fps": self.fps,
            "parts": self._parts,
        }
        vertex_counts = [len(m[0]) for m in self._meshes]
        face_counts = [len(m[1]) for m in self._meshes]
        arrays = {
            "metadata": np.array(json.dumps(metadata)),
            "times": np.asarray(self._times, np.float64),
            "episode_index": np.asarray(self._episode_index, np.int32),
            "rewards": np.asarray(self._rewards, np.float64),
            "positions": np.stack(self._positions),
            "orientations_xyzw": np.stack(self._orientations),
            "mesh_vertices": np.concatenate([m[0] for m in self._meshes]).astype(np.float32),
            "mesh_faces": np.concatenate([m[1] for m in self._meshes]).astype(np.int32),
            "mesh_face_colors": np.concatenate([m[2] for m in self._meshes]).astype(np.uint8),
            "vertex_offsets": np.concatenate([[0], np.cumsum(vertex_counts)]).astype(np.int64),
            "face_offsets": np.concatenate([[0], np.cumsum(face_counts)]).astype(np.int64),
        }
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        return path


def load_episode(path) -> Episode:
    """Read and validate an episode file written by :class:`EpisodeRecorder`.

    Raises ``EpisodeError`` naming the file and the problem (missing, not an episode, wrong
    version, missing or inconsistent arrays).
    """
    path = Path(path)
    if not path.is_file():
        raise EpisodeError(f"{path}: no such episode file")
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise EpisodeError(f"{path}: not an episode file (.npz written by examples/rollout_video.py --episode): {error}") from None
    if "metadata" not in contents:
        raise EpisodeError(f"{path}: no 'metadata' entry; not a lyra-sim episode file")
    try:
        metadata = json.loads(str(contents["metadata"]))
    except json.JSONDecodeError as error:
        raise EpisodeError(f"{path}: metadata is not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != EPISODE_FORMAT:
        raise EpisodeError(f"{path}: metadata format is {metadata.get('format') if isinstance(metadata, dict) else metadata!r}, expected {EPISODE_FORMAT!r}")
    if metadata.get("version") != EPISODE_VERSION:
        raise EpisodeError(f"{path}: episode version {metadata.get('version')!r} is not supported (this lyra-sim reads {EPISODE_VERSION})")
    missing = [key for key in _ARRAYS if key not in contents]
    if missing:
        raise EpisodeError(f"{path}: missing arrays {missing}")
    parts_meta = metadata.get("parts")
    if not isinstance(parts_meta, list) or not parts_meta:
        raise EpisodeError(f"{path}: metadata 'parts' must be a non-empty list")
    frames, count = len(contents["times"]), len(parts_meta)
    expected = {
        "episode_index": (frames,), "rewards": (frames,), "positions": (frames, count, 3),
        "orientations_xyzw": (frames, count, 4), "vertex_offsets": (count + 1,), "face_offsets": (count + 1,),
    }
    for key, shape in expected.items():
        if contents[key].shape != shape:
            raise EpisodeError(f"{path}: {key} has shape {list(contents[key].shape)}, expected {list(shape)} ({frames} frames, {count} parts)")
    if frames == 0:
        raise EpisodeError(f"{path}: the episode has no frames")
    if not (np.isfinite(contents["positions"]).all() and np.isfinite(contents["orientations_xyzw"]).all()):
        raise EpisodeError(f"{path}: positions or orientations contain NaN or Inf")
    vertex_offsets, face_offsets = contents["vertex_offsets"], contents["face_offsets"]
    vertices, faces, colors = contents["mesh_vertices"], contents["mesh_faces"], contents["mesh_face_colors"]
    if vertex_offsets[-1] != len(vertices) or face_offsets[-1] != len(faces) or len(colors) != len(faces) or np.any(np.diff(vertex_offsets) < 0) or np.any(np.diff(face_offsets) < 0):
        raise EpisodeError(f"{path}: mesh offsets do not match the mesh arrays ({len(vertices)} vertices, {len(faces)} faces, {len(colors)} colours)")
    parts = []
    for index, entry in enumerate(parts_meta):
        try:
            body, kind, link = str(entry["body"]), str(entry["kind"]), int(entry["link"])
        except (KeyError, TypeError, ValueError) as error:
            raise EpisodeError(f"{path}: parts[{index}] is malformed ({type(error).__name__}: {error})") from None
        if kind not in ("object", "mesh"):
            raise EpisodeError(f"{path}: parts[{index}] has kind {kind!r}; expected 'object' or 'mesh'")
        part_faces = faces[face_offsets[index]:face_offsets[index + 1]]
        part_vertex_count = vertex_offsets[index + 1] - vertex_offsets[index]
        if len(part_faces) and (part_faces.min() < 0 or part_faces.max() >= part_vertex_count):
            raise EpisodeError(f"{path}: parts[{index}] ({body}) has face indices outside its {part_vertex_count} vertices")
        parts.append(EpisodePart(
            body=body, kind=kind, link=link,
            vertices=vertices[vertex_offsets[index]:vertex_offsets[index + 1]],
            faces=part_faces, face_colors=colors[face_offsets[index]:face_offsets[index + 1]],
        ))
    return Episode(
        path=path, env_id=str(metadata.get("env_id", "")), bundle=Path(str(metadata.get("bundle", ""))),
        fps=float(metadata.get("fps", 30.0)), parts=parts,
        times=contents["times"].astype(np.float64), episode_index=contents["episode_index"].astype(np.int32),
        rewards=contents["rewards"].astype(np.float64), positions=contents["positions"].astype(np.float32),
        orientations_xyzw=contents["orientations_xyzw"].astype(np.float32),
    )

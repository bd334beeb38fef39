"""What the viewer draws, as plain arrays: no viser here, so it is testable without a browser.

* :func:`splat_arrays`: a ``GaussianScene`` as the centres, covariances, colours and opacities
  viser's splat renderer takes (optionally subsampled to a budget).
* :func:`box_segments`, :func:`rectangle_segments`: line segments of bounds and regions.
* :func:`analyse_scene_file`: a splat file in its own frame with what normalisation would detect
  there (up direction, floor plane, robust bounds, the Gaussians it would drop as floaters).
* :func:`pose_to_viewmat` / :func:`viewmat_to_pose`: viser poses (camera-to-world, OpenCV axes,
  wxyz quaternions) to our ``Camera.viewmat`` and back.
* :func:`camera_frusta`, :func:`read_camera_entries`: capture cameras as frustum poses.
* :func:`depth_to_image`: a depth map as a colour image for a GUI panel.

This module may import numpy, torch and lyra_sim (rotations, scene, converters, render).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lyra_sim.rotations import matrix_to_quat_wxyz, quat_wxyz_to_matrix
from lyra_sim.scene.gaussian_scene import GaussianScene


@dataclass
class SplatArrays:
    """One splat layer in viser's layout (all float32).

    Attributes:
        centers: [N, 3]; covariances: [N, 3, 3]; rgbs: [N, 3] in [0, 1]; opacities: [N, 1].
        total: Gaussians in the scene before subsampling.
    """

    centers: np.ndarray
    covariances: np.ndarray
    rgbs: np.ndarray
    opacities: np.ndarray
    total: int

    def __len__(self) -> int:
        return len(self.centers)


def splat_arrays(scene: GaussianScene, max_count: int | None = None, seed: int = 0) -> SplatArrays:
    """The Gaussians of ``scene`` as viser draws them: covariance R S² Rᵀ, DC colour, opacity.

    ``max_count`` keeps a fixed random subset (seeded) when the scene has more Gaussians; a
    browser sorts every splat every frame, so a few million is its practical limit.
    """
    total = len(scene)
    if max_count is not None and max_count < 1:
        raise ValueError(f"max_count must be positive or None, got {max_count}")
    if max_count is not None and total > max_count:
        keep = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:max_count].sort().values
        scene = scene[keep]
    with torch.no_grad():
        rotations = scene.rotation_matrices().double()  # [N, 3, 3]
        variances = scene.scales().double() ** 2  # [N, 3]
        covariances = (rotations * variances[:, None, :]) @ rotations.transpose(1, 2)
        return SplatArrays(
            centers=scene.means.detach().cpu().numpy().astype(np.float32),
            covariances=covariances.cpu().numpy().astype(np.float32),
            rgbs=scene.colors().detach().cpu().numpy().astype(np.float32),
            opacities=scene.opacities().detach().cpu().numpy().astype(np.float32).reshape(-1, 1),
            total=total,
        )


def box_segments(low, high) -> np.ndarray:  # [3], [3] -> [12, 2, 3]
    """The 12 edges of the axis-aligned box [low, high] as line segments."""
    low, high = np.asarray(low, np.float64).reshape(3), np.asarray(high, np.float64).reshape(3)
    corners = np.array([[(high if (k >> axis) & 1 else low)[axis] for axis in range(3)] for k in range(8)])
    edges = [(a, a | (1 << axis)) for a in range(8) for axis in range(3) if not (a >> axis) & 1]
    return np.stack([corners[[a, b]] for a, b in edges]).astype(np.float32)


def rectangle_segments(low_xy, high_xy, z: float) -> np.ndarray:  # [2], [2] -> [4, 2, 3]
    """The outline of the horizontal rectangle [low_xy, high_xy] at height ``z``."""
    (x0, y0), (x1, y1) = np.asarray(low_xy, np.float64).reshape(2), np.asarray(high_xy, np.float64).reshape(2)
    corners = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    return np.stack([corners[[k, (k + 1) % 4]] for k in range(4)]).astype(np.float32)


def plane_quad(centre, normal, half_size: float) -> tuple[np.ndarray, np.ndarray]:  # -> [4, 3], [2, 3]
    """A square of side 2 ``half_size`` through ``centre`` perpendicular to ``normal`` (vertices, faces)."""
    normal = np.asarray(normal, np.float64) / np.linalg.norm(normal)
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(normal, helper)
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    centre = np.asarray(centre, np.float64)
    vertices = np.stack([centre + half_size * (su * u + sv * v) for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    return vertices.astype(np.float32), np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32)


@dataclass
class SceneAnalysis:
    """A splat file in its own frame, with what ``lyra-sim build`` would detect in it.

    Attributes:
        scene: the valid Gaussians (invalid rows dropped), source frame and units.
        up: [3] unit up direction in the source frame (from the frame metadata or RANSAC).
        floor_offset: the floor plane is ``up · x = floor_offset``.
        floor_support: Gaussians on the floor level.
        dropped: bool [N] over ``scene``: Gaussians normalisation removes (transparent,
            far field, outliers, small clusters, below the floor).
        bounds: (min [3], max [3]) of all valid centres; robust_bounds: the 1-99 percentile box.
        steps: the normalisation record (as in a bundle manifest).
    """

    scene: GaussianScene
    up: np.ndarray
    floor_offset: float
    floor_support: int
    dropped: np.ndarray
    bounds: tuple[np.ndarray, np.ndarray]
    robust_bounds: tuple[np.ndarray, np.ndarray]
    steps: dict

    @property
    def floor_centre(self) -> np.ndarray:  # [3]
        """The projection of the robust centre onto the floor plane."""
        centre = 0.5 * (self.robust_bounds[0] + self.robust_bounds[1])
        return centre + (self.floor_offset - float(centre @ self.up)) * self.up


def analyse_scene_file(path, **load_options) -> SceneAnalysis:
    """Load a splat file and run the bundle builder's normalisation on it (default settings).

    Raises ``SceneFormatError`` for unreadable files and ``BundleError`` when normalisation
    finds nothing usable (no Gaussians, no floor).
    """
    from lyra_sim.converters.config import BuildConfig
    from lyra_sim.converters.normalise import normalise_scene
    from lyra_sim.errors import BundleError
    from lyra_sim.scene.io import load_scene
    from lyra_sim.scene.transforms import sanitize

    scene = sanitize(load_scene(Path(path), invalid="keep", **load_options))[0]
    if len(scene) == 0:
        raise BundleError(f"{path}: the scene has no valid Gaussians to show")
    normalisation = normalise_scene(scene, BuildConfig())
    record = normalisation.steps["up_and_floor"]
    dropped = np.ones(len(scene), dtype=bool)
    dropped[normalisation.kept] = False
    low, high = scene.bounds()
    p01, p99 = scene.bounds(percentile=1.0)
    return SceneAnalysis(
        scene=scene,
        up=np.asarray(record["up_in_source"], np.float64),
        floor_offset=float(record["floor_offset_in_source"]),
        floor_support=int(record["floor_support"]),
        dropped=dropped,
        bounds=(low.double().numpy(), high.double().numpy()),
        robust_bounds=(p01.double().numpy(), p99.double().numpy()),
        steps=normalisation.steps,
    )


def pose_to_viewmat(wxyz, position) -> np.ndarray:  # [4], [3] -> [4, 4]
    """World-to-camera matrix of a camera whose camera-to-world pose is (``wxyz``, ``position``).

    viser's frustums and client cameras use OpenCV axes (x right, y down, z forward), as our
    ``Camera`` does, so only the inversion is needed.
    """
    rotation = quat_wxyz_to_matrix(np.asarray(wxyz, np.float64).reshape(4))
    viewmat = np.eye(4)
    viewmat[:3, :3] = rotation.T
    viewmat[:3, 3] = -rotation.T @ np.asarray(position, np.float64).reshape(3)
    return viewmat


def viewmat_to_pose(viewmat) -> tuple[np.ndarray, np.ndarray]:  # [4, 4] -> [4] wxyz, [3]
    """The camera-to-world pose (wxyz, position) of a world-to-camera matrix."""
    viewmat = np.asarray(viewmat, np.float64).reshape(4, 4)
    rotation = viewmat[:3, :3].T
    position = -rotation @ viewmat[:3, 3]
    wxyz = matrix_to_quat_wxyz(rotation)
    return wxyz, position


@dataclass
class CameraFrustum:
    """One capture camera as viser draws it: camera-to-world pose (wxyz [4], position [3]),
    vertical field of view (radians) and aspect (width / height)."""

    wxyz: np.ndarray
    position: np.ndarray
    fov: float
    aspect: float
    name: str = ""


def camera_frusta(rotations, positions, intrinsics, sizes, names=()) -> list[CameraFrustum]:
    """Frusta of C cameras: camera-to-world rotations [C, 3, 3] (OpenCV axes), centres [C, 3],
    pixel intrinsics [C, 3, 3] and image (width, height) [C, 2]."""
    rotations = np.asarray(rotations, np.float64).reshape(-1, 3, 3)
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    intrinsics = np.asarray(intrinsics, np.float64).reshape(-1, 3, 3)
    sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
    if not len(rotations) == len(positions) == len(intrinsics) == len(sizes):
        raise ValueError(f"camera arrays disagree on the count: rotations {len(rotations)}, positions {len(positions)}, "
                         f"intrinsics {len(intrinsics)}, sizes {len(sizes)}")
    quats = matrix_to_quat_wxyz(rotations) if len(rotations) else np.zeros((0, 4))
    names = list(names) + [f"camera {i}" for i in range(len(names), len(rotations))]
    return [
        CameraFrustum(quats[i], positions[i], float(2.0 * np.arctan(0.5 * sizes[i, 1] / intrinsics[i, 1, 1])),
                      float(sizes[i, 0] / sizes[i, 1]), str(names[i]))
        for i in range(len(rotations))
    ]


def read_camera_entries(path) -> list[CameraFrustum]:
    """Frusta from an INRIA 3DGS ``cameras.json`` list, or a dict holding one under ``cameras``
    (lyra-sim's sidecar): entries with ``position``, ``rotation`` (camera-to-world, OpenCV),
    ``fx``, ``fy``, ``width``, ``height``. Raises ``BundleError`` naming the file when malformed."""
    import json

    from lyra_sim.errors import BundleError

    path = Path(path)
    try:
        data = json.loads(path.read_text())
        entries = data["cameras"] if isinstance(data, dict) else data
        rotations = [entry["rotation"] for entry in entries]
        positions = [entry["position"] for entry in entries]
        intrinsics = [[[float(e["fx"]), 0.0, float(e["width"]) / 2], [0.0, float(e["fy"]), float(e["height"]) / 2], [0.0, 0.0, 1.0]] for e in entries]
        sizes = [[float(e["width"]), float(e["height"])] for e in entries]
        names = [str(e.get("img_name", i)) for i, e in enumerate(entries)]
        return camera_frusta(rotations, positions, intrinsics, sizes, names)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{path}: not a camera list (INRIA cameras.json entries): {type(error).__name__}: {error}") from None


def depth_to_image(depth: np.ndarray, far: float | None = None) -> np.ndarray:  # [H, W] metres -> [H, W, 3] uint8
    """Depth as colour: near is warm (yellow), far is cool (blue), no hit is black.

    The range runs from the nearest hit to the 99th percentile (capped at ``far``), so an image
    keeps its contrast whether it looks across a room or at a table top.
    """
    depth = np.asarray(depth, np.float64)
    hit = depth > 0
    image = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if not hit.any():
        return image
    near, farthest = float(depth[hit].min()), float(np.percentile(depth[hit], 99))
    if far is not None:
        farthest = min(farthest, far)
    t = np.clip((depth - near) / max(farthest - near, 1e-9), 0.0, 1.0)
    warm, cool = np.array([255.0, 220.0, 60.0]), np.array([30.0, 60.0, 200.0])
    colours = (1.0 - t[..., None]) * warm + t[..., None] * cool
    image[hit] = np.round(colours[hit]).astype(np.uint8)
    return image

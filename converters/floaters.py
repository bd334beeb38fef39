"""Floaters and far field from the capture cameras.

A Gaussian that no photo could have constrained is not geometry. With the capture cameras we
drop, each counted separately:

* ``outside_frustums``: in no camera's view (behind every camera or outside every image);
* ``too_few_views``: inside fewer than ``min_views`` views;
* ``beyond_capture``: farther from the photographed region's centre (the point all optical
  axes pass closest to) than ``far_factor`` times the farthest camera (sky, distant background);
* ``in_free_space``: in front of the surface the photos see, in at least half of the views
  that see it (and at least two): the cameras looked through it. The surface is rendered from
  the scene itself at the capture cameras (low resolution): the farther of the median depth and
  the expected depth, so a floater does not hide the surface behind it.

Pure functions on arrays and a ``GaussianScene``; the renderer is imported lazily.
"""

from __future__ import annotations

import numpy as np
import torch


def project(points: np.ndarray, viewmats: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-space depth and pixel coordinates of ``points`` [N, 3] in C cameras: z, u, v each [C, N]."""
    camera_points = np.einsum("cij,nj->cni", viewmats[:, :3, :3], points) + viewmats[:, None, :3, 3]
    z = camera_points[..., 2]
    safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
    u = intrinsics[:, None, 0, 0] * camera_points[..., 0] / safe + intrinsics[:, None, 0, 2]
    v = intrinsics[:, None, 1, 1] * camera_points[..., 1] / safe + intrinsics[:, None, 1, 2]
    return z, u, v


def view_counts(points: np.ndarray, cameras, near_fraction: float = 1e-3, chunk: int = 200_000) -> np.ndarray:  # [N] int
    """How many capture cameras have each point [N, 3] in front of them and inside their image."""
    viewmats, intrinsics, sizes = cameras.viewmats, cameras.intrinsics, cameras.sizes
    spread = float(np.ptp(cameras.positions, axis=0).max()) if len(cameras) > 1 else 1.0
    near = near_fraction * max(spread, 1e-9)
    counts = np.zeros(len(points), dtype=np.int64)
    for start in range(0, len(points), chunk):
        z, u, v = project(points[start : start + chunk], viewmats, intrinsics)
        inside = (z > near) & (u >= 0) & (v >= 0) & (u < sizes[:, None, 0]) & (v < sizes[:, None, 1])
        counts[start : start + chunk] = inside.sum(0)
    return counts


def capture_centre(cameras) -> np.ndarray:  # [3]
    """The point closest (least squares) to every optical axis; the cameras' mean if they are parallel."""
    origins, axes = cameras.positions, cameras.forward
    projectors = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    lhs = projectors.sum(0)
    if np.linalg.cond(lhs) > 1e8:
        return origins.mean(0)
    return np.linalg.solve(lhs, np.einsum("cij,cj->i", projectors, origins))


def free_space_violations(
    scene,
    candidates: np.ndarray,  # [N] bool: the Gaussians still kept
    cameras,
    max_views: int = 16,
    width: int = 64,
    margin: float = 0.15,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Per Gaussian: views where it lies in front of the rendered surface by > ``margin`` (relative
    depth), and views where a surface was rendered at its pixel. Both [N] int."""
    from lyra_sim.render.api import render

    sizes = cameras.sizes
    _, inverse = np.unique(sizes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    indices = np.flatnonzero(inverse == np.argmax(np.bincount(inverse)))  # the most common image size
    if len(indices) > max_views:
        indices = indices[np.linspace(0, len(indices) - 1, max_views).round().astype(np.int64)]
    kept_scene = scene[torch.from_numpy(np.flatnonzero(candidates))]
    kept_scene.metadata.cameras = None
    camera = cameras.to_camera(indices, width=min(width, int(sizes[indices[0], 0])))
    with torch.no_grad():
        images = render(kept_scene, camera, modes=("median_depth", "depth"), backend=backend)
    # The farther of the median and the expected depth: a floater opaque enough to be the median
    # surface itself still lets the photos see what lies behind it, which pulls the expected depth back.
    depth = torch.maximum(images["median_depth"], images["depth"])[..., 0].cpu().numpy()  # [C, H, W]
    points = scene.means.detach().cpu().numpy().astype(np.float64)
    z, u, v = project(points, camera.viewmat.double().numpy(), camera.K.double().numpy())
    columns, rows = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    inside = (z > 0) & (columns >= 0) & (rows >= 0) & (columns < camera.width) & (rows < camera.height)
    surface = np.zeros_like(z)
    view_index = np.broadcast_to(np.arange(len(camera))[:, None], z.shape)
    surface[inside] = depth[view_index[inside], rows[inside], columns[inside]]
    seen = inside & (surface > 0)
    in_front = seen & (z < (1.0 - margin) * surface)
    return in_front.sum(0), seen.sum(0)


def camera_floaters(
    scene,
    kept: np.ndarray,  # [M] indices of the Gaussians still kept
    cameras,
    min_views: int = 3,
    far_factor: float = 2.0,
    carve: bool = True,
    carve_views: int = 16,
    carve_width: int = 64,
    carve_margin: float = 0.15,
    backend: str = "auto",
) -> tuple[dict[str, np.ndarray], dict]:
    """Masks [M] over ``kept`` per reason (see the module docstring) and a report of the parameters."""
    means = scene.means.detach().cpu().numpy().astype(np.float64)[kept]
    counts = view_counts(means, cameras)
    reasons = {"outside_frustums": counts == 0}
    needed = min(min_views, len(cameras))
    reasons["too_few_views"] = (counts > 0) & (counts < needed)
    centre = capture_centre(cameras)
    reach = far_factor * float(np.linalg.norm(cameras.positions - centre, axis=1).max())
    reasons["beyond_capture"] = np.linalg.norm(means - centre, axis=1) > reach
    report = {"cameras": len(cameras), "min_views": needed, "capture_centre": centre.tolist(), "capture_radius": reach}
    if carve:
        alive = ~np.logical_or.reduce(list(reasons.values()))
        candidates = np.zeros(len(scene), dtype=bool)
        candidates[kept[alive]] = True
        if candidates.sum() >= 10:
            in_front, seen = free_space_violations(scene, candidates, cameras, carve_views, carve_width, carve_margin, backend)
            in_front, seen = in_front[kept], seen[kept]
            reasons["in_free_space"] = alive & (in_front >= 2) & (in_front >= 0.5 * seen)
            report.update({"carve_views": int(min(carve_views, len(cameras))), "carve_width": carve_width, "carve_margin": carve_margin})
    return reasons, report

"""Automatic object segmentation: clusters of Gaussians standing on the floor, separated from the
background (floor, walls, large furniture).

Works on a normalised scene (+Z up, metres, floor at z = 0). Floor Gaussians are the ones
within a thin band of z = 0 that are flat and horizontal (their thinnest axis points up), so the
lowest row of a box's side stays with the box. The rest is split into connected clusters on a
voxel grid; a cluster is an object when it touches the floor band, fits in ``max_size`` in every
direction and has at least ``min_gaussians`` Gaussians.
"""

from __future__ import annotations

import numpy as np
import torch

from lyra_sim.geometry.pointcloud import voxel_components
from lyra_sim.scene.gaussian_scene import GaussianScene


def gaussian_normals(scene: GaussianScene) -> np.ndarray:  # [N, 3]
    """Direction of each Gaussian's thinnest axis (the surface normal of a flat splat), unit length."""
    rotations = scene.rotation_matrices().detach().cpu()  # [N, 3, 3], columns = local axes
    thinnest = torch.argmin(scene.log_scales.detach().cpu(), dim=1)
    return rotations[torch.arange(len(scene)), :, thinnest].numpy().astype(np.float64)


def floor_gaussians(scene: GaussianScene, band: float, max_tilt_deg: float = 30.0) -> np.ndarray:  # [N] bool
    """Gaussians lying on the floor: |z| <= band and a normal within ``max_tilt_deg`` of vertical.

    A Gaussian that is not flat (thinnest scale > 0.5 of the middle one) has no reliable normal
    and counts as floor when it is in the band.
    """
    means = scene.means.detach().cpu().numpy()
    in_band = np.abs(means[:, 2]) <= band
    scales = np.sort(scene.log_scales.detach().cpu().numpy(), axis=1)
    flat = scales[:, 0] < scales[:, 1] + np.log(0.5)
    horizontal = np.abs(gaussian_normals(scene)[:, 2]) >= np.cos(np.radians(max_tilt_deg))
    return in_band & (horizontal | ~flat)


def segment_objects(
    scene: GaussianScene,
    max_size: float = 1.0,
    min_gaussians: int = 200,
    cell: float | None = None,
    floor_band: float | None = None,
) -> dict[str, np.ndarray]:
    """Objects standing on the floor, as boolean masks [N] over ``scene``, named "object_0", ...

    Args:
        scene: normalised scene (+Z up, metres, floor at z = 0).
        max_size: largest extent (m) in x, y and z that an object may have.
        min_gaussians: smaller clusters are noise, not objects.
        cell: clustering voxel (m); default 1.5 x the median in-plane Gaussian scale, at least 1 cm.
        floor_band: half-thickness (m) of the floor band; default min(``cell``, 2 cm).

    Objects are ordered by x, then y, of their centre.
    """
    if len(scene) == 0:
        return {}
    means = scene.means.detach().cpu().numpy().astype(np.float64)
    if cell is None:
        middle_scale = float(np.median(np.sort(scene.scales().detach().cpu().numpy(), axis=1)[:, 1]))
        cell = max(3.0 * middle_scale, 0.01)
    if floor_band is None:
        floor_band = min(cell, 0.02)
    on_floor = floor_gaussians(scene, floor_band)
    candidates = np.flatnonzero(~on_floor & (means[:, 2] > -floor_band))
    if len(candidates) == 0:
        return {}
    labels, sizes = voxel_components(means[candidates], cell)
    objects = []
    for label in np.flatnonzero(sizes >= min_gaussians):
        members = candidates[labels == label]
        points = means[members]
        extent = points.max(0) - points.min(0)
        if points[:, 2].min() > 2 * floor_band + cell or np.any(extent > max_size):
            continue
        objects.append((points.mean(0), members))
    objects.sort(key=lambda item: (round(float(item[0][0]), 3), round(float(item[0][1]), 3)))
    masks = {}
    for index, (_, members) in enumerate(objects):
        mask = np.zeros(len(scene), dtype=bool)
        mask[members] = True
        masks[f"object_{index}"] = mask
    return masks

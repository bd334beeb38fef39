"""Point-set primitives used by normalisation and segmentation: robust plane fitting (RANSAC +
least-squares refinement), statistical outliers, and connected components on a voxel grid.

Pure numpy/scipy functions on point arrays [N, 3]; no torch, no scene objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree


@dataclass
class Plane:
    """The plane n . x = offset with unit normal ``normal`` [3].

    Attributes:
        normal: unit normal [3].
        offset: signed distance of the plane from the origin along ``normal``.
        inliers: boolean mask [N] of the points within the threshold, for the points it was fitted to.
    """

    normal: np.ndarray
    offset: float
    inliers: np.ndarray

    def signed_distance(self, points: np.ndarray) -> np.ndarray:  # [N]
        return points @ self.normal - self.offset


def _refine_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane through ``points`` [M, 3]: the direction of least variance."""
    centroid = points.mean(0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[2] / np.linalg.norm(vt[2])
    return normal, float(normal @ centroid)


def fit_plane_ransac(
    points: np.ndarray,  # [N, 3]
    threshold: float,
    iterations: int = 500,
    seed: int = 0,
    normal_prior: np.ndarray | None = None,  # [3]
    max_angle_deg: float = 90.0,
    weights: np.ndarray | None = None,  # [N]
    sample_limit: int = 200_000,
) -> Plane:
    """The plane supported by the largest (weighted) number of points within ``threshold``.

    With ``normal_prior``, candidate planes whose normal is more than ``max_angle_deg`` from
    ±prior are rejected (a wall never wins over the floor when up is roughly known). The winner
    is refined by least squares on its inliers, twice. Scoring runs on at most ``sample_limit``
    points (deterministic subsample); the returned inlier mask covers all points.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape [N, 3], got {list(points.shape)}")
    if len(points) < 3:
        raise ValueError(f"a plane needs at least 3 points, got {len(points)}")
    rng = np.random.default_rng(seed)
    weights = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)
    subset = rng.choice(len(points), sample_limit, replace=False) if len(points) > sample_limit else np.arange(len(points))
    scoring_points, scoring_weights = points[subset], weights[subset]
    cos_limit = np.cos(np.radians(max_angle_deg)) if normal_prior is not None else -1.0
    prior = None if normal_prior is None else np.asarray(normal_prior, dtype=np.float64) / np.linalg.norm(normal_prior)

    triples = rng.integers(0, len(scoring_points), size=(iterations, 3))
    a, b, c = scoring_points[triples[:, 0]], scoring_points[triples[:, 1]], scoring_points[triples[:, 2]]
    normals = np.cross(b - a, c - a)
    lengths = np.linalg.norm(normals, axis=1)
    valid = lengths > 1e-12
    normals[valid] /= lengths[valid, None]
    if prior is not None:
        valid &= np.abs(normals @ prior) >= cos_limit
    if not valid.any():
        raise ValueError("RANSAC found no valid plane (points collinear, or none near the up prior)")
    best_score, best = -1.0, None
    # Score candidates in chunks so memory stays bounded ([chunk, M] distances).
    candidates = np.flatnonzero(valid)
    chunk = max(1, 20_000_000 // max(len(scoring_points), 1))
    for start in range(0, len(candidates), chunk):
        ids = candidates[start : start + chunk]
        offsets = np.sum(normals[ids] * a[ids], axis=1)
        distances = np.abs(scoring_points @ normals[ids].T - offsets)  # [M, chunk]
        scores = ((distances <= threshold) * scoring_weights[:, None]).sum(0)
        top = int(np.argmax(scores))
        if scores[top] > best_score:
            best_score, best = float(scores[top]), ids[top]
    normal, offset = normals[best], float(normals[best] @ a[best])
    for _ in range(2):
        inliers = np.abs(points @ normal - offset) <= threshold
        if inliers.sum() >= 3:
            normal, offset = _refine_plane(points[inliers])
    if prior is not None and normal @ prior < 0:
        normal, offset = -normal, -offset
    return Plane(normal, offset, np.abs(points @ normal - offset) <= threshold)


def statistical_outliers(points: np.ndarray, neighbours: int = 16, std_ratio: float = 3.0) -> np.ndarray:  # [N] bool
    """Points whose mean distance to their ``neighbours`` nearest is > mean + ``std_ratio`` * std."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) <= neighbours:
        return np.zeros(len(points), dtype=bool)
    distances, _ = cKDTree(points).query(points, k=neighbours + 1, workers=-1)
    mean_distance = distances[:, 1:].mean(1)
    return mean_distance > mean_distance.mean() + std_ratio * mean_distance.std()


def voxel_components(
    points: np.ndarray,  # [N, 3]
    cell: float,
    max_cells: int = 64_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the occupied voxels (26-connectivity) of a grid of size ``cell``.

    Returns (label per point [N] int64 in [0, K), points per component [K]). Points in touching
    voxels share a component, so two points closer than ``cell`` always do. The cell is grown
    when the grid would exceed ``max_cells`` voxels.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    low = points.min(0)
    extent = points.max(0) - low
    while np.prod(np.floor(extent / cell) + 1) > max_cells:
        cell *= 1.25
    index = np.floor((points - low) / cell).astype(np.int64)
    shape = tuple(index.max(0) + 1)
    grid = np.zeros(shape, dtype=bool)
    grid[index[:, 0], index[:, 1], index[:, 2]] = True
    labels, count = ndimage.label(grid, structure=np.ones((3, 3, 3), dtype=bool))
    point_labels = labels[index[:, 0], index[:, 1], index[:, 2]].astype(np.int64) - 1
    sizes = np.bincount(point_labels, minlength=count)
    return point_labels, sizes

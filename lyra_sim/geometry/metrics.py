"""Geometry accuracy metrics: Chamfer-L1, precision/recall/F-score at a threshold, volume IoU of
watertight meshes, normal consistency, and area-weighted surface sampling to feed them.

Meshes are given as plain arrays (vertices [V, 3], faces [F, 3]); point sets as [N, 3]. This
module may import numpy, scipy and (lazily, for ``volume_iou``) open3d.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree


def _check_points(name: str, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must have shape [N, 3], got {list(points.shape)}")
    if len(points) == 0:
        raise ValueError(f"{name} is empty: a metric needs at least one point")
    return points


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = _check_points("vertices", vertices)
    faces = np.asarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"faces must have shape [F, 3] with F > 0, got {list(faces.shape)}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"faces index vertices outside [0, {len(vertices)})")
    return vertices, faces


def face_normals_and_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals [F, 3] (zero for degenerate faces) and areas [F] of a triangle mesh."""
    corners = vertices[faces]  # [F, 3, 3]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    doubled_area = np.linalg.norm(cross, axis=1)
    normals = cross / np.maximum(doubled_area, 1e-300)[:, None]
    return normals, 0.5 * doubled_area


def sample_surface(
    vertices: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [F, 3]
    count: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``count`` points uniformly by area on a triangle mesh.

    Returns (points [count, 3], unit face normals at the points [count, 3]).
    """
    vertices, faces = _check_mesh(vertices, faces)
    normals, areas = face_normals_and_areas(vertices, faces)
    if areas.sum() <= 0:
        raise ValueError("the mesh has zero surface area")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(faces), size=count, p=areas / areas.sum())
    # Uniform barycentric sampling: fold the unit square onto the triangle.
    u, v = rng.random(count), rng.random(count)
    outside = u + v > 1
    u[outside], v[outside] = 1 - u[outside], 1 - v[outside]
    a, b, c = (vertices[faces[chosen, k]] for k in range(3))
    points = a + u[:, None] * (b - a) + v[:, None] * (c - a)
    return points, normals[chosen]


@dataclass
class SurfaceAccuracy:
    """Point-set comparison of a predicted surface against the truth (distances in scene units).

    Attributes:
        chamfer_l1: mean of the two mean nearest-neighbour distances (pred->true, true->pred).
        accuracy: mean distance from predicted points to the truth.
        completeness: mean distance from true points to the prediction.
        precision: fraction of predicted points within ``threshold`` of the truth.
        recall: fraction of true points within ``threshold`` of the prediction.
        fscore: harmonic mean of precision and recall.
        threshold: the distance threshold used.
        normal_consistency: mean |cos| between the normals of nearest neighbours (both ways),
            or None when normals were not given.
    """

    chamfer_l1: float
    accuracy: float
    completeness: float
    precision: float
    recall: float
    fscore: float
    threshold: float
    normal_consistency: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def compare_point_sets(
    predicted: np.ndarray,  # [P, 3]
    truth: np.ndarray,  # [T, 3]
    threshold: float,
    predicted_normals: np.ndarray | None = None,  # [P, 3]
    truth_normals: np.ndarray | None = None,  # [T, 3]
) -> SurfaceAccuracy:
    """Chamfer-L1, precision/recall/F-score at ``threshold`` and (with normals) normal consistency."""
    predicted, truth = _check_points("predicted", predicted), _check_points("truth", truth)
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    to_truth, nearest_truth = cKDTree(truth).query(predicted, workers=-1)
    to_predicted, nearest_predicted = cKDTree(predicted).query(truth, workers=-1)
    precision = float(np.mean(to_truth <= threshold))
    recall = float(np.mean(to_predicted <= threshold))
    fscore = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    consistency = None
    if predicted_normals is not None and truth_normals is not None:
        consistency = normal_consistency(predicted_normals, truth_normals, nearest_truth, nearest_predicted)
    return SurfaceAccuracy(
        chamfer_l1=float(0.5 * (to_truth.mean() + to_predicted.mean())),
        accuracy=float(to_truth.mean()),
        completeness=float(to_predicted.mean()),
        precision=precision,
        recall=recall,
        fscore=float(fscore),
        threshold=float(threshold),
        normal_consistency=consistency,
    )


def chamfer_l1(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Symmetric Chamfer-L1: mean of the two mean nearest-neighbour distances."""
    predicted, truth = _check_points("predicted", predicted), _check_points("truth", truth)
    return float(0.5 * (cKDTree(truth).query(predicted, workers=-1)[0].mean() + cKDTree(predicted).query(truth, workers=-1)[0].mean()))


def fscore(predicted: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(precision, recall, F-score) of ``predicted`` [P,3] against ``truth`` [T,3] at ``threshold``."""
    result = compare_point_sets(predicted, truth, threshold)
    return result.precision, result.recall, result.fscore


def normal_consistency(
    predicted_normals: np.ndarray,  # [P, 3]
    truth_normals: np.ndarray,  # [T, 3]
    nearest_truth: np.ndarray,  # [P] index of each predicted point's nearest true point
    nearest_predicted: np.ndarray,  # [T] index of each true point's nearest predicted point
) -> float:
    """Mean |cos| of the angle between matched normals, averaged over both directions.

    The absolute value makes it independent of the normals' orientation convention.
    """
    predicted_normals = np.asarray(predicted_normals, dtype=np.float64)
    truth_normals = np.asarray(truth_normals, dtype=np.float64)
    forward = np.abs(np.sum(predicted_normals * truth_normals[nearest_truth], axis=1))
    backward = np.abs(np.sum(truth_normals * predicted_normals[nearest_predicted], axis=1))
    return float(0.5 * (forward.mean() + backward.mean()))


def compare_meshes(
    predicted_vertices: np.ndarray,  # [V1, 3]
    predicted_faces: np.ndarray,  # [F1, 3]
    truth_vertices: np.ndarray,  # [V2, 3]
    truth_faces: np.ndarray,  # [F2, 3]
    threshold: float,
    samples: int = 100_000,
    seed: int = 0,
) -> SurfaceAccuracy:
    """Sample both meshes by area and compare them with :func:`compare_point_sets` (with normals)."""
    predicted, predicted_normals = sample_surface(predicted_vertices, predicted_faces, samples, seed)
    truth, truth_normals = sample_surface(truth_vertices, truth_faces, samples, seed + 1)
    return compare_point_sets(predicted, truth, threshold, predicted_normals, truth_normals)


def volume_iou(
    vertices_a: np.ndarray,  # [V1, 3]
    faces_a: np.ndarray,  # [F1, 3]
    vertices_b: np.ndarray,  # [V2, 3]
    faces_b: np.ndarray,  # [F2, 3]
    samples: int = 200_000,
    seed: int = 0,
) -> float:
    """Volume intersection-over-union of two watertight meshes, by Monte-Carlo occupancy.

    Points are drawn uniformly in the union of the two bounding boxes; inside-ness comes from
    Open3D's ray-parity occupancy, which is only meaningful for closed meshes.
    """
    import open3d as o3d

    vertices_a, faces_a = _check_mesh(vertices_a, faces_a)
    vertices_b, faces_b = _check_mesh(vertices_b, faces_b)
    low = np.minimum(vertices_a.min(0), vertices_b.min(0))
    high = np.maximum(vertices_a.max(0), vertices_b.max(0))
    points = np.random.default_rng(seed).uniform(low, high, size=(samples, 3)).astype(np.float32)

    def occupancy(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
        return scene.compute_occupancy(o3d.core.Tensor(points)).numpy() > 0.5

    inside_a, inside_b = occupancy(vertices_a, faces_a), occupancy(vertices_b, faces_b)
    union = np.count_nonzero(inside_a | inside_b)
    return 0.0 if union == 0 else float(np.count_nonzero(inside_a & inside_b) / union)

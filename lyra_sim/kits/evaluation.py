"""Scoring against a kit's ground truth: object labels for any point set, bundle mesh accuracy.

Used by the demo, ``benchmarks/reconstruct.py`` and ``lyra-sim build-many``; may import numpy, scipy, trimesh and
lyra_sim (geometry, kits).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from lyra_sim.rotations import quat_xyzw_to_matrix


def object_masks_near_truth(kit, points: np.ndarray, max_distance: float) -> dict[str, np.ndarray]:  # points [N, 3]
    """Boolean masks [N] per movable object: points within ``max_distance`` of its true surface.

    A point within that distance of two objects goes to the nearer one. With the kit's ground
    truth this is an exact segmentation of, e.g., reconstructed Gaussian centres.
    """
    from scipy.spatial import cKDTree

    from lyra_sim.geometry.metrics import sample_surface

    objects = kit.movable_objects
    distances = np.full((len(objects), len(points)), np.inf)
    for i, obj in enumerate(objects):
        mesh = obj.world_mesh()
        surface, _ = sample_surface(np.asarray(mesh.vertices), np.asarray(mesh.faces), 20_000, seed=i)
        distances[i] = cKDTree(surface).query(points, workers=-1)[0]
    nearest = distances.argmin(0)
    close = distances.min(0) <= max_distance
    return {obj.name: close & (nearest == i) for i, obj in enumerate(objects)}


def photographed_box(kit, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """The region photos of the kit cover well: the bounds of everything but the floor plane,
    widened by ``margin`` metres, from 1 cm below the floor up."""
    lows, highs = [], []
    for obj in kit.objects:
        bounds = obj.world_mesh().bounds
        if bounds[1][2] - bounds[0][2] < 0.02:  # the floor plane: unbounded in practice
            continue
        lows.append(bounds[0])
        highs.append(bounds[1])
    low, high = np.min(lows, 0) - margin, np.max(highs, 0) + margin
    low[2] = -0.01
    return low, high


def bundle_collision_mesh(bundle) -> "trimesh.Trimesh":  # noqa: F821
    """A bundle's collision geometry as one mesh in the bundle's world: the scenery's concave
    mesh and every object's convex parts at its initial pose (the ground slab is not included)."""
    import trimesh

    parts = [trimesh.load(bundle.collision_mesh, force="mesh", process=False)]
    for obj in bundle.objects:
        pose = np.eye(4)
        pose[:3, :3] = quat_xyzw_to_matrix(obj.orientation_xyzw)
        pose[:3, 3] = obj.position
        parts.append(trimesh.load(obj.collision_mesh, force="mesh", process=False).apply_transform(pose))
    return trimesh.util.concatenate(parts)


def bundle_accuracy_against_mesh(bundle, truth, threshold: float, samples: int = 100_000) -> dict:
    """A bundle's collision geometry against a true surface ``truth`` (a trimesh in the bundle's
    SOURCE frame, i.e. the coordinates of the splat file it was built from), compared in the
    bundle's world (metres) inside the bundle's bounds widened by ``threshold``. Returns
    ``SurfaceAccuracy`` fields as a dict (F-score, precision, recall at ``threshold`` metres)."""
    truth = truth.copy()
    truth.apply_transform(bundle.transform)  # source -> bundle world (metres, +Z up)
    low, high = bundle.bounds
    return _cropped_accuracy(bundle_collision_mesh(bundle), truth, low - threshold, high + threshold, threshold, samples)


def bundle_mesh_accuracy(bundle, kit, threshold: float, samples: int = 200_000) -> dict:
    """A bundle's collision geometry (scenery + object hulls at their poses) against the kit's true
    mesh, both cropped to :func:`photographed_box` (the photos never see the floor's far corners,
    and the bundle adds a ground slab). Returns ``SurfaceAccuracy`` fields as a dict."""
    predicted = bundle_collision_mesh(bundle)
    predicted.apply_transform(np.linalg.inv(bundle.transform))  # bundle world -> kit world
    low, high = photographed_box(kit)
    return _cropped_accuracy(predicted, kit.mesh(), low, high, threshold, samples)


def _cropped_accuracy(predicted, truth, low: np.ndarray, high: np.ndarray, threshold: float, samples: int) -> dict:
    """Surface samples of both meshes inside the box [low, high], compared at ``threshold``."""
    from lyra_sim.geometry.metrics import compare_point_sets, sample_surface

    truth_points, truth_normals = sample_surface(np.asarray(truth.vertices), np.asarray(truth.faces), samples, seed=1)
    predicted_points, predicted_normals = sample_surface(np.asarray(predicted.vertices), np.asarray(predicted.faces), samples, seed=2)
    keep_truth = np.all((truth_points >= low) & (truth_points <= high), axis=1)
    keep_predicted = np.all((predicted_points >= low) & (predicted_points <= high), axis=1)
    accuracy = compare_point_sets(
        predicted_points[keep_predicted], truth_points[keep_truth], threshold,
        predicted_normals[keep_predicted], truth_normals[keep_truth],
    )
    return {key: (round(value, 5) if isinstance(value, float) else value) for key, value in asdict(accuracy).items()}

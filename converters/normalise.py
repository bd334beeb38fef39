"""Normalisation of a splat scene into the bundle world: +Z up, metres, floor at z = 0.

Steps, each recorded with its parameters and counts: drop invalid Gaussians, drop nearly
transparent ones, crop the far field (sky, distant background), drop statistical outliers and
tiny isolated clusters, find the up axis and the floor (frame metadata as a prior, refined by
RANSAC on opaque centres), choose the metric scale (explicit, known height, source camera height
prior, or the file's own metric flag), apply an optional user crop box and drop what lies below
the floor. All geometric changes compose into one similarity applied once with
``lyra_sim.scene.transforms.transform_scene`` (so SH bands are rotated exactly once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from lyra_sim.converters.config import BuildConfig
from lyra_sim.errors import BundleError
from lyra_sim.geometry.pointcloud import Plane, fit_plane_ransac, statistical_outliers, voxel_components
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.transforms import invalid_gaussian_reasons, similarity_matrix, transform_scene

# Up direction of each source frame convention (SceneMetadata.frame), in that frame.
FRAME_UP = {
    "z-up": (0.0, 0.0, 1.0),
    "opencv-first-camera": (0.0, -1.0, 0.0),
    "opencv": (0.0, -1.0, 0.0),
    "opengl": (0.0, 1.0, 0.0),
    "spz-rub": (0.0, 1.0, 0.0),
}
AXIS_VECTORS = {
    "+X": (1.0, 0.0, 0.0), "-X": (-1.0, 0.0, 0.0),
    "+Y": (0.0, 1.0, 0.0), "-Y": (0.0, -1.0, 0.0),
    "+Z": (0.0, 0.0, 1.0), "-Z": (0.0, 0.0, -1.0),
}
# A lower level parallel to the best plane is the floor when it has at least this fraction of its support.
_LOWER_PLANE_SUPPORT = 0.25
# Gaussians at least this opaque vote for the floor plane: faint ones are often floaters.
_OPAQUE_FOR_PLANE = 0.5
# Below this mean resultant length of the folded wall directions there is no dominant yaw.
_MIN_YAW_CONCENTRATION = 0.3


@dataclass
class Normalisation:
    """The result of :func:`normalise_scene`.

    Attributes:
        scene: the normalised scene (frame "z-up", metric when a scale source was found).
        kept: indices [M] into the input scene of the Gaussians kept, in order.
        transform: [4, 4] similarity, source frame -> bundle world.
        scale: metres per source unit (the similarity's scale).
        steps: the manifest's "normalisation" record: parameters and counts of every step.
    """

    scene: GaussianScene
    kept: np.ndarray
    transform: np.ndarray
    scale: float
    steps: dict


def rotation_between(source: np.ndarray, target: np.ndarray) -> np.ndarray:  # [3, 3]
    """The smallest rotation taking unit vector ``source`` [3] onto unit vector ``target`` [3]."""
    source = np.asarray(source, dtype=np.float64) / np.linalg.norm(source)
    target = np.asarray(target, dtype=np.float64) / np.linalg.norm(target)
    axis = np.cross(source, target)
    sine, cosine = np.linalg.norm(axis), float(source @ target)
    if sine < 1e-12:
        if cosine > 0:
            return np.eye(3)
        # Opposite vectors: half a turn about any axis perpendicular to them.
        helper = np.array([1.0, 0.0, 0.0]) if abs(source[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis = np.cross(source, helper)
        return Rotation.from_rotvec(math.pi * axis / np.linalg.norm(axis)).as_matrix()
    return Rotation.from_rotvec(axis / sine * math.atan2(sine, cosine)).as_matrix()


def up_prior(scene: GaussianScene, up_axis: str) -> np.ndarray | None:
    """The prior up direction [3] in the source frame: explicit axis, else from the frame metadata."""
    if up_axis != "auto":
        return np.asarray(AXIS_VECTORS[up_axis])
    up = FRAME_UP.get(scene.metadata.frame)
    return None if up is None else np.asarray(up)


def source_camera_positions(scene: GaussianScene) -> np.ndarray | None:  # [K, 3]
    """Source camera centres in the source frame, when the reader knows them.

    Lyra's frame is its first camera, so that camera sits at the origin; readers may also store
    ``metadata.extras["camera_positions"]`` ([K, 3]).
    """
    positions = scene.metadata.extras.get("camera_positions")
    if positions is not None:
        positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        return positions if len(positions) else None
    if scene.metadata.frame == "opencv-first-camera":
        return np.zeros((1, 3))
    return None


def manhattan_yaw(scene: GaussianScene, kept: np.ndarray, rotation: np.ndarray) -> tuple[float, float]:
    """The yaw (radians, in [-45, 45) degrees) of the dominant vertical surfaces after ``rotation``.

    Flat, opaque Gaussians whose normal is nearly horizontal (walls, box and furniture sides)
    vote with their normal's azimuth folded modulo 90 degrees (circular mean of 4 x azimuth).
    Rotating by -yaw makes walls axis-aligned, which keeps bounding boxes (and so the virtual
    cameras' distance) tight. Returns (yaw, concentration in [0, 1]).
    """
    from lyra_sim.converters.segment import gaussian_normals

    subset = scene[torch.from_numpy(kept)]
    normals = gaussian_normals(subset) @ rotation.T
    scales = np.sort(subset.log_scales.detach().cpu().numpy(), axis=1)
    flat = scales[:, 0] < scales[:, 1] + np.log(0.3)
    vertical_surface = flat & (np.abs(normals[:, 2]) < 0.2) & (subset.opacities().detach().cpu().numpy() >= _OPAQUE_FOR_PLANE)
    if vertical_surface.sum() < 10:
        return 0.0, 0.0
    azimuth = np.arctan2(normals[vertical_surface, 1], normals[vertical_surface, 0])
    resultant = np.array([np.cos(4 * azimuth).mean(), np.sin(4 * azimuth).mean()])
    return float(np.arctan2(resultant[1], resultant[0]) / 4), float(np.linalg.norm(resultant))


def find_floor(
    points: np.ndarray,  # [N, 3] opaque centres
    threshold: float,
    prior: np.ndarray | None,
    max_angle_deg: float,
    seed: int,
) -> Plane:
    """The floor plane, normal pointing up.

    With a prior: the best-supported plane within ``max_angle_deg`` of it; if a well-supported
    parallel plane lies below (the winner was a table top or a raised platform), move down to it.
    Without a prior: the dominant plane, oriented so that most other points lie above it.
    """
    plane = fit_plane_ransac(points, threshold, seed=seed, normal_prior=prior, max_angle_deg=max_angle_deg if prior is not None else 90.0)
    if prior is None:
        above = np.count_nonzero(plane.signed_distance(points) > 3 * threshold)
        below = np.count_nonzero(plane.signed_distance(points) < -3 * threshold)
        if below > above:
            plane = Plane(-plane.normal, -plane.offset, plane.inliers)
    for _ in range(3):
        lower = plane.signed_distance(points) < -3 * threshold
        if lower.sum() < max(0.02 * len(points), 3):
            break
        candidate = fit_plane_ransac(points[lower], threshold, seed=seed + 1, normal_prior=plane.normal, max_angle_deg=10.0)
        if candidate.inliers.sum() < _LOWER_PLANE_SUPPORT * plane.inliers.sum():
            break
        plane = Plane(candidate.normal, candidate.offset, np.abs(points @ candidate.normal - candidate.offset) <= threshold)
    return plane


def normalise_scene(
    scene: GaussianScene,
    config: BuildConfig = BuildConfig(),
    object_masks: dict[str, np.ndarray] | None = None,
    progress: bool = False,
) -> Normalisation:
    """Map ``scene`` to the bundle world (+Z up, metres, floor at z = 0, centred in x and y).

    ``object_masks`` (bool [N] over the input) is only used for ``config.known_height_object``.
    Raises ``BundleError`` when nothing usable is left at some step.
    """
    source_name = scene.metadata.source or "<scene in memory>"
    if len(scene) == 0:
        raise BundleError(f"{source_name}: the scene has no Gaussians")
    steps: dict = {"input_gaussians": len(scene)}
    kept = np.arange(len(scene))

    def drop(mask_to_drop: np.ndarray, step: str, **parameters) -> None:
        nonlocal kept
        steps[step] = {**parameters, "removed": int(mask_to_drop.sum())}
        kept = kept[~mask_to_drop]
        if len(kept) == 0:
            raise BundleError(f"{source_name}: no Gaussians left after step {step!r} ({steps[step]})")

    reasons = invalid_gaussian_reasons(scene)
    invalid = torch.zeros(len(scene), dtype=torch.bool)
    for mask in reasons.values():
        invalid |= mask.cpu()
    drop(invalid.numpy(), "invalid", reasons={k: int(v.sum()) for k, v in reasons.items() if int(v.sum())})

    opacities = scene.opacities().detach().cpu().numpy()
    drop(opacities[kept] < config.min_opacity, "low_opacity", min_opacity=config.min_opacity)

    means = scene.means.detach().cpu().numpy().astype(np.float64)
    centre = np.median(means[kept], axis=0)
    distance = np.linalg.norm(means[kept] - centre, axis=1)
    median_distance = float(np.median(distance))
    far_limit = config.far_field_factor * max(median_distance, 1e-9)
    drop(distance > far_limit, "far_field", factor=config.far_field_factor, centre=centre.tolist(), radius=far_limit)

    def robust_extent() -> float:
        low, high = np.percentile(means[kept], [config.extent_percentile, 100 - config.extent_percentile], axis=0)
        return max(float(np.max(high - low)), 1e-9)

    drop(
        statistical_outliers(means[kept], config.outlier_neighbours, config.outlier_std_ratio),
        "statistical_outliers",
        neighbours=config.outlier_neighbours,
        std_ratio=config.outlier_std_ratio,
    )
    cell = config.cluster_cell_fraction * robust_extent()
    labels, sizes = voxel_components(means[kept], cell)
    tiny = sizes < config.min_cluster_fraction * len(kept)
    drop(tiny[labels], "small_clusters", cell=cell, min_fraction=config.min_cluster_fraction, clusters_removed=int(tiny.sum()))

    # ---------------------------------------------------------------- up axis and floor
    extent = robust_extent()
    threshold = config.floor_threshold * extent
    prior = up_prior(scene, config.up_axis)
    opaque = kept[opacities[kept] >= _OPAQUE_FOR_PLANE]
    plane_points = means[opaque if len(opaque) >= 3 else kept]
    if prior is not None and not config.refine_up:
        up = prior / np.linalg.norm(prior)
        heights = plane_points @ up
        counts, edges = np.histogram(heights, bins=max(1, int(np.ceil((heights.max() - heights.min()) / threshold))))
        # The floor is the lowest well-supported level, not the busiest one: a table top seen
        # from above often holds more Gaussians than the partly hidden floor around it (the same
        # rule as find_floor's move down to a lower parallel plane).
        floor_bin = int(np.flatnonzero(counts >= _LOWER_PLANE_SUPPORT * counts.max())[0])
        floor_offset = float(0.5 * (edges[floor_bin] + edges[floor_bin + 1]))
        floor_support = int(counts[floor_bin])
    else:
        try:
            plane = find_floor(plane_points, threshold, prior, config.up_prior_max_angle_deg, config.seed)
        except ValueError as error:
            raise BundleError(f"{source_name}: could not find a floor plane: {error}") from None
        up, floor_offset, floor_support = plane.normal, plane.offset, int(plane.inliers.sum())
    steps["up_and_floor"] = {
        "prior": None if prior is None else prior.tolist(),
        "prior_source": config.up_axis if config.up_axis != "auto" else (f"frame {scene.metadata.frame!r}" if prior is not None else "none (dominant plane)"),
        "refined": bool(config.refine_up or prior is None),
        "up_in_source": up.tolist(),
        "angle_from_prior_deg": None if prior is None else float(np.degrees(np.arccos(np.clip(up @ prior / np.linalg.norm(prior), -1, 1)))),
        "floor_offset_in_source": floor_offset,
        "ransac_threshold": threshold,
        "floor_support": floor_support,
        "plane_points": int(len(plane_points)),
    }
    rotation = rotation_between(up, np.array([0.0, 0.0, 1.0]))
    already_z_up = prior is not None and np.allclose(prior, [0.0, 0.0, 1.0])
    if config.align_yaw if config.align_yaw is not None else not already_z_up:
        yaw, concentration = manhattan_yaw(scene, kept, rotation)
        if concentration >= _MIN_YAW_CONCENTRATION:
            rotation = Rotation.from_euler("z", -yaw).as_matrix() @ rotation
        steps["yaw_alignment"] = {"yaw_deg": float(np.degrees(yaw)), "concentration": concentration, "applied": concentration >= _MIN_YAW_CONCENTRATION}
    rotated = means @ rotation.T
    rotated[:, 2] -= floor_offset  # the floor plane n.x = offset maps to z = offset
    horizontal_centre = np.median(rotated[kept, :2], axis=0)
    rotated[:, :2] -= horizontal_centre
    translation = np.array([-horizontal_centre[0], -horizontal_centre[1], -floor_offset])

    # ---------------------------------------------------------------- metric scale
    scale, scale_source = _choose_scale(scene, config, rotated, kept, object_masks, rotation, translation, source_name)
    steps["scale"] = {"scale": scale, "source": scale_source}
    transform = similarity_matrix(rotation, scale * translation, scale)
    world = scale * rotated

    if config.crop is not None:
        low, high = np.asarray(config.crop[:3]), np.asarray(config.crop[3:])
        outside = np.any((world[kept] < low) | (world[kept] > high), axis=1)
        drop(outside, "user_crop", box=list(config.crop))
    below_limit = -5 * threshold * scale
    drop(world[kept, 2] < below_limit, "below_floor", limit=below_limit)

    steps["output_gaussians"] = int(len(kept))
    steps["transform"] = transform.tolist()
    result = transform_scene(scene[torch.from_numpy(kept)], rotation, scale * translation, scale, frame="z-up")
    result.metadata.metric = scale_source != "none (source units kept)" or scene.metadata.metric
    return Normalisation(scene=result, kept=kept, transform=transform, scale=scale, steps=steps)


def _choose_scale(
    scene: GaussianScene,
    config: BuildConfig,
    rotated: np.ndarray,  # [N, 3] source units, up = +Z, floor at 0
    kept: np.ndarray,
    object_masks: dict[str, np.ndarray] | None,
    rotation: np.ndarray,
    translation: np.ndarray,
    source_name: str,
) -> tuple[float, str]:
    """Metres per source unit and a sentence saying where it came from."""
    if config.scale is not None:
        return float(config.scale), "explicit --scale"
    if config.known_height is not None:
        if config.known_height_object is not None:
            if not object_masks or config.known_height_object not in object_masks:
                raise BundleError(f"{source_name}: known_height_object {config.known_height_object!r} is not one of the objects {sorted(object_masks or {})}")
            in_object = np.asarray(object_masks[config.known_height_object], dtype=bool)[kept]
            if not in_object.any():
                raise BundleError(f"{source_name}: object {config.known_height_object!r} has no Gaussians left after clean-up")
            heights = rotated[kept[in_object], 2]
            measured, what = float(heights.max() - heights.min()), f"object {config.known_height_object!r}"
        else:
            measured, what = float(rotated[kept, 2].max()), "scene top above the floor"
        if measured <= 0:
            raise BundleError(f"{source_name}: the {what} has zero height; cannot use known_height")
        return config.known_height / measured, f"known height {config.known_height} m of the {what} (measured {measured:.6g} source units)"
    if scene.metadata.metric:
        return 1.0, "source is metric"
    cameras = source_camera_positions(scene)
    if cameras is not None:
        camera_heights = (cameras @ rotation.T + translation)[:, 2]
        height = float(np.median(camera_heights))
        if height > 0:
            return config.camera_height_prior / height, f"camera height prior {config.camera_height_prior} m (source camera {height:.6g} units above the floor)"
    return 1.0, "none (source units kept)"

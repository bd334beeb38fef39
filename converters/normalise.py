"""Normalisation of a splat scene into the bundle world: +Z up, metres, floor at z = 0.

Steps, each recorded with its parameters and counts: drop invalid Gaussians, drop nearly
transparent ones, drop floaters and far field (from the capture cameras when known: outside
every frustum, seen by too few, beyond the photographed region, in the free space the photos
look through; otherwise by distance statistics), drop statistical outliers and tiny isolated
clusters; then weigh the evidence for up and the floor (``converters.evidence``: the user's
axis, the cameras, the file's frame and the capture tools' habits, a well-supported floor
plane, the resting faces of an object's convex hull), decide whether the capture is a scene
or one object, choose the metric scale (explicit, known height of a robust top, a metric
source, metric cameras, the camera-height prior) and record every candidate, the choice, a
confidence and the warnings a user must see. All geometric changes compose into one
similarity applied once with ``lyra_sim.scene.transforms.transform_scene`` (SH bands are
rotated exactly once; capture cameras move with the scene).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from lyra_sim.converters import evidence
from lyra_sim.converters.config import BuildConfig
from lyra_sim.converters.evidence import FRAME_UP, Candidate, angle_deg, unit
from lyra_sim.errors import BundleError
from lyra_sim.geometry.pointcloud import Plane, fit_plane_ransac, statistical_outliers, voxel_components
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.transforms import invalid_gaussian_reasons, similarity_matrix, transform_scene

AXIS_VECTORS = {
    "+X": (1.0, 0.0, 0.0), "-X": (-1.0, 0.0, 0.0),
    "+Y": (0.0, 1.0, 0.0), "-Y": (0.0, -1.0, 0.0),
    "+Z": (0.0, 0.0, 1.0), "-Z": (0.0, 0.0, -1.0),
}
# A lower level parallel to the best plane is the floor when it has at least this fraction of its support.
_LOWER_PLANE_SUPPORT = 0.25
# Gaussians at least this opaque vote for the floor plane: faint ones are often floaters.
_OPAQUE_FOR_PLANE = 0.5
# ... but a reconstruction may hold few such: the most opaque 30% vote then.
_OPAQUE_SHARE = 30.0
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
        kind: "scene" (scenery on a floor) or "object" (one scanned object, no floor).
        confidence: confidence in the up direction, in [0, 1].
        warnings: what the user must know (low confidence, unknown or approximate units).
    """

    scene: GaussianScene
    kept: np.ndarray
    transform: np.ndarray
    scale: float
    steps: dict
    kind: str = "scene"
    confidence: float = 1.0
    warnings: list[str] = dataclasses.field(default_factory=list)


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


def source_camera_positions(scene: GaussianScene) -> np.ndarray | None:  # [K, 3]
    """Source camera centres in the source frame, when known.

    The capture cameras (``metadata.cameras``) when present; Lyra's frame is its first camera,
    so that camera sits at the origin.
    """
    if scene.metadata.cameras is not None:
        return scene.metadata.cameras.positions
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
    cameras = scene.metadata.cameras if config.use_cameras else None
    if cameras is not None:
        from lyra_sim.converters.floaters import camera_floaters

        floater_reasons, report = camera_floaters(
            scene, kept, cameras, config.min_camera_views, config.capture_far_factor, config.carve_floaters,
            config.carve_views, config.carve_width, config.carve_margin, config.render_backend,
        )
        any_reason = np.logical_or.reduce(list(floater_reasons.values()))
        drop(any_reason, "camera_floaters", **report, reasons={name: int(mask.sum()) for name, mask in floater_reasons.items()})
    else:
        centre = np.median(means[kept], axis=0)
        distance = np.linalg.norm(means[kept] - centre, axis=1)
        # A high percentile, not the median: a photographed floor reaches far beyond the busy
        # middle of a capture, while sky and distant background are a small minority.
        reach = float(np.percentile(distance, config.far_field_percentile))
        far_limit = config.far_field_factor * max(reach, 1e-9)
        drop(distance > far_limit, "far_field", factor=config.far_field_factor, percentile=config.far_field_percentile,
             centre=centre.tolist(), radius=far_limit)

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
    opaque = kept[opaque_mask(opacities[kept])]
    plane_points = means[opaque if len(opaque) >= 20 else kept]
    decision = _decide_up_and_floor(scene, config, plane_points, threshold, cameras, source_name)
    up, floor_offset = decision.up, decision.floor_offset
    steps["up_and_floor"] = decision.record
    rotation = rotation_between(up, np.array([0.0, 0.0, 1.0]))
    already_z_up = np.allclose(up, [0.0, 0.0, 1.0]) and (config.up_axis == "+Z" or scene.metadata.frame == "z-up")
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
    scale, scale_source, scale_kind = _choose_scale(scene, config, rotated, kept, object_masks, rotation, translation, source_name, decision.kind, opacities)
    steps["scale"] = {"scale": scale, "source": scale_source, "kind": scale_kind}
    warnings = list(decision.warnings)
    if scale_kind == "unknown":
        warnings.append(f"units unknown: source units are kept as metres (1 unit = 1 m); pass --known-height or --scale")
    elif scale_kind == "prior":
        warnings.append(f"scale is approximate ({scale_source}); pass --known-height or --scale for a metric bundle")
    steps["warnings"] = warnings
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
    result.metadata.metric = scale_kind != "unknown"
    return Normalisation(scene=result, kept=kept, transform=transform, scale=scale, steps=steps, kind=decision.kind,
                         confidence=decision.confidence, warnings=warnings)


def robust_top(heights: np.ndarray, opacities: np.ndarray, percentile: float) -> float:  # [M], [M]
    """A high percentile of the heights of opaque Gaussians: the top of the scene, not its highest floater."""
    opaque = heights[opaque_mask(opacities)]
    return float(np.percentile(opaque if len(opaque) >= 20 else heights, percentile))


def opaque_mask(opacities: np.ndarray) -> np.ndarray:  # [M] -> [M] bool
    """The Gaussians opaque enough to stand for surfaces: opacity >= 0.5, or the most opaque 30%
    when fewer are (short or low-resolution reconstructions are faint everywhere)."""
    if len(opacities) == 0:
        return np.zeros(0, dtype=bool)
    threshold = min(_OPAQUE_FOR_PLANE, float(np.percentile(opacities, 100.0 - _OPAQUE_SHARE)))
    return opacities >= threshold


def _choose_scale(
    scene: GaussianScene,
    config: BuildConfig,
    rotated: np.ndarray,  # [N, 3] source units, up = +Z, floor at 0
    kept: np.ndarray,
    object_masks: dict[str, np.ndarray] | None,
    rotation: np.ndarray,
    translation: np.ndarray,
    source_name: str,
    kind: str,
    opacities: np.ndarray,  # [N]
) -> tuple[float, str, str]:
    """Metres per source unit, a sentence saying where it came from, and its kind: "explicit",
    "measured" (known height), "metric" (source or cameras), "prior" (camera height) or "unknown"."""
    if config.scale is not None:
        return float(config.scale), "explicit --scale", "explicit"
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
            measured = robust_top(rotated[kept, 2], opacities[kept], config.top_percentile)
            what = f"scene top above the floor ({config.top_percentile:g}th percentile of opaque Gaussians)"
        if measured <= 0:
            raise BundleError(f"{source_name}: the {what} has zero height; cannot use known_height")
        return config.known_height / measured, f"known height {config.known_height} m of the {what} (measured {measured:.6g} source units)", "measured"
    if scene.metadata.metric:
        return 1.0, "source is metric", "metric"
    cameras = scene.metadata.cameras if config.use_cameras else None
    if cameras is not None and cameras.metres_per_unit is not None:
        return float(cameras.metres_per_unit), f"capture cameras' units ({cameras.metres_per_unit:.6g} m per unit, {cameras.source})", "metric"
    positions = source_camera_positions(scene)
    if positions is not None and kind == "scene":
        camera_heights = (positions @ rotation.T + translation)[:, 2]
        height = float(np.median(camera_heights))
        if height > 0:
            return config.camera_height_prior / height, f"camera height prior {config.camera_height_prior} m (source camera {height:.6g} units above the floor)", "prior"
    return 1.0, "none (source units kept)", "unknown"


@dataclass
class _Decision:
    up: np.ndarray
    floor_offset: float
    kind: str
    confidence: float
    warnings: list[str]
    record: dict


def _lowest_level(points: np.ndarray, up: np.ndarray, threshold: float) -> tuple[float, int]:
    """The lowest well-supported level along ``up``: (offset, support)."""
    heights = points @ up
    counts, edges = np.histogram(heights, bins=max(1, min(100_000, int(np.ceil((heights.max() - heights.min()) / threshold)))))
    # The floor is the lowest well-supported level, not the busiest one: a table top seen
    # from above often holds more Gaussians than the partly hidden floor around it (the same
    # rule as find_floor's move down to a lower parallel plane).
    floor_bin = int(np.flatnonzero(counts >= _LOWER_PLANE_SUPPORT * counts.max())[0])
    return float(0.5 * (edges[floor_bin] + edges[floor_bin + 1])), int(counts[floor_bin])


def _decide_up_and_floor(scene: GaussianScene, config: BuildConfig, points: np.ndarray, threshold: float, cameras, source_name: str) -> _Decision:
    """Weigh every source of evidence for up, the floor and the kind of capture (module docstring)."""
    candidates: list[Candidate] = []
    user = None
    if config.up_axis != "auto":
        user = Candidate("user", unit(AXIS_VECTORS[config.up_axis]), evidence.SOURCE_CONFIDENCE["user"], {"axis": config.up_axis, "refine": config.refine_up})
        candidates.append(user)
    camera = evidence.camera_up(cameras.rotations) if cameras is not None else None
    if camera is not None:
        candidates.append(camera)
    frame = evidence.frame_up(scene.metadata.frame)
    candidates.append(frame)
    record: dict = {"ransac_threshold": threshold, "plane_points": int(len(points))}
    warnings: list[str] = []

    if user is not None and not config.refine_up:
        prior, max_angle = user, 0.0
    elif user is not None:
        prior, max_angle = user, config.up_prior_max_angle_deg
    elif camera is not None:
        prior, max_angle = camera, config.camera_up_max_angle_deg
    else:
        prior, max_angle = frame, config.up_prior_max_angle_deg
    record["prior"] = prior.record()
    record["prior_source"] = prior.source

    floor = None
    if max_angle > 0:
        attempts = [(prior.up, max_angle)] + ([(None, 90.0)] if prior.source == "habit" else [])
        for prior_up, limit in attempts:
            try:
                plane = find_floor(points, threshold, prior_up, limit, config.seed)
            except ValueError:
                continue
            support = evidence.floor_support(points, plane.normal, plane.offset, max(threshold, 0.01 * _extent(points)))
            record.setdefault("floor_planes", []).append({"up_in_source": plane.normal.tolist(), "offset": plane.offset, **support,
                                                           "searched_within_deg": limit})
            if support["supported"]:
                floor = Candidate("floor", plane.normal, evidence.SOURCE_CONFIDENCE["floor"], {"offset_in_source": plane.offset, **support})
                break
    else:
        offset, support = _lowest_level(points, prior.up, threshold)
        measures = evidence.floor_support(points, prior.up, offset, max(threshold, 0.01 * _extent(points)))
        record["floor_planes"] = [{"up_in_source": prior.up.tolist(), "offset": offset, **measures, "searched_within_deg": 0.0}]
        if measures["supported"]:
            floor = Candidate("floor", prior.up, evidence.SOURCE_CONFIDENCE["floor"], {"offset_in_source": offset, **measures})

    compact = evidence.compactness(points)
    surround = inside = None
    if cameras is not None:
        surround = evidence.cameras_surround(cameras.positions, points.mean(0), (floor or prior).up)
        inside = evidence.cameras_inside(cameras.positions, points, (floor or prior).up)
    if cameras is not None:
        # The photographer stands on the floor of a scene (inside its footprint) and walks around
        # an object (outside it, all around): the cameras decide, whatever the geometry says.
        object_like = compact >= config.object_min_compactness and surround < 180.0 and inside < 0.5
        if object_like and floor is not None:
            record["floor_ignored"] = "the cameras surround one compact thing from outside: its flat bottom is no floor"
            floor = None
    else:
        object_like = compact >= config.object_min_compactness
    record["compactness"] = round(compact, 4)
    record["camera_azimuth_gap_deg"] = surround
    record["cameras_inside_footprint"] = inside
    if config.kind != "auto":
        kind = config.kind
    else:
        kind = "scene" if floor is not None or not object_like else "object"
    record["kind_reason"] = (f"forced by {config.kind!r}" if config.kind != "auto" else
                             "a supported floor" if floor is not None else
                             "one compact thing with no supported floor" if kind == "object" else
                             "no supported floor, but not one compact thing seen from outside (a wall, a forward-facing capture, a walk-through)")

    if floor is not None:
        candidates.append(floor)
    face = None
    if kind == "object":
        try:
            faces, centre, hull_vertices = evidence.resting_faces(_trimmed(points), seed=config.seed)
        except ValueError as error:
            raise BundleError(f"{source_name}: cannot find the object's resting face: {error}") from None
        face = evidence.choose_resting_face(faces, prior.up)
        record["resting_faces"] = [f.record() for f in faces[:8]]
        if face is not None:
            stability = float(np.clip(face.solid_angle / 0.25, 0.0, 1.0))
            settled = evidence.settle(hull_vertices, centre, face.up)
            candidates.append(Candidate("resting_face", settled, evidence.SOURCE_CONFIDENCE["resting_face"] * (0.5 + 0.5 * stability),
                                        {"solid_angle": round(face.solid_angle, 4), "margin": round(face.margin, 4),
                                         "settled_from_face_deg": round(angle_deg(settled, face.up), 3)}))

    # The choice, in order of trust.
    if user is not None and not config.refine_up:
        chosen = user
    elif floor is not None and kind == "scene":
        chosen = floor
    elif kind == "object" and face is not None and (camera is None or angle_deg(candidates[-1].up, camera.up) <= config.camera_face_snap_deg) \
            and (user is None or angle_deg(candidates[-1].up, user.up) <= config.up_prior_max_angle_deg):
        # The resting face: the object stands flat on it. Cameras, when present, are the better
        # gravity (a scan never sees the underside its hull is closed over), so the face only
        # wins when it agrees with them closely.
        chosen = candidates[-1]
    else:
        chosen = prior
    up = chosen.up
    if config.floor_height is not None:
        floor_offset, how = float(config.floor_height), "given (--floor-height)"
    elif chosen is floor:
        floor_offset, how = float(floor.detail["offset_in_source"]), "floor plane"
    elif kind == "object":
        trimmed = _trimmed(points)
        floor_offset, how = float(np.min(trimmed @ up)), "the object's lowest point"
    else:
        floor_offset, how = _lowest_level(points, up, threshold)[0], "lowest well-supported level"
    confidence = evidence.combined_confidence(candidates, up)
    if confidence < config.min_up_confidence:
        agreeing = [c.source for c in candidates if angle_deg(c.up, up) <= 10.0]
        warnings.append(f"up direction uncertain (confidence {confidence:.2f}, supported by {', '.join(agreeing) or 'nothing'}): "
                        "check preview.png, or pass --up-axis (and --cameras when the capture cameras are elsewhere)")
    record.update({
        "chosen_source": chosen.source,
        "up_in_source": up.tolist(),
        "confidence": round(confidence, 3),
        "candidates": [c.record(up) for c in candidates],
        "refined": bool(chosen.source not in ("user",) and (prior.source != chosen.source)),
        "angle_from_prior_deg": angle_deg(up, prior.up),
        "floor_offset_in_source": floor_offset,
        "floor_from": how,
        "floor_support": None if floor is None else floor.detail.get("share"),
        "kind": kind,
    })
    return _Decision(up, floor_offset, kind, confidence, warnings, record)


def _extent(points: np.ndarray) -> float:
    low, high = np.percentile(points, [1, 99], axis=0)
    return max(float(np.max(high - low)), 1e-9)


def _trimmed(points: np.ndarray, keep: float = 99.0) -> np.ndarray:
    """``points`` without the farthest (100 - keep)% from their median: a convex hull is only as
    good as its most extreme point."""
    distance = np.linalg.norm(points - np.median(points, axis=0), axis=1)
    return points[distance <= np.percentile(distance, keep)]

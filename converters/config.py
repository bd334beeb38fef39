"""``BuildConfig``: every parameter of the scene -> SimBundle conversion, with its default.

The ``lyra-sim build`` and ``build-many`` commands offer the fields declared with ``setting(...,
cli=...)`` (their options, help and defaults come from here); the rest are for library users and
benchmarks. Every value used ends up in the bundle's manifest ("normalisation" and "build").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from lyra_sim.options import setting
from lyra_sim.typed import BundleKind, ConvexMethod, FusionCameras, FusionDepth, RenderBackend, UpAxis, check_choice


# Virtual depth images are rendered by the dozen and fused into a TSDF: 4096 px a side is already
# ~400x the default's pixels; beyond it a build would need tens of GB.
MAX_IMAGE_SIZE = 4096


@dataclass
class BuildConfig:
    """Parameters of ``build_bundle`` (lengths in metres of the bundle world unless noted).

    Normalisation (source frame -> +Z up, metres, floor at z = 0; ``converters.evidence``):
        up_axis: "auto" weighs the evidence (capture cameras, the file's frame and the capture
            tools' habits, a floor plane, an object's resting face); an explicit axis ("+Y",
            "-Z", ...) is trusted as given unless ``refine_up``.
        refine_up: with an explicit ``up_axis``, refine it with the floor plane found by RANSAC.
        up_prior_max_angle_deg: floor candidates further than this from a frame or user prior are rejected.
        camera_up_max_angle_deg: ... and further than this from the cameras' up.
        camera_face_snap_deg: an object stands on its resting face instead of the cameras' up
            when the two agree within this angle.
        floor_height: the floor's height along the chosen up axis, in source units (picks the
            floor by hand; the build summary lists the levels found).
        kind: "auto" builds an object bundle when the capture is one compact thing: with
            cameras, when they surround it from outside (a photographer inside the footprint
            stands on a scene's floor); without, when no floor is well supported. Else a scene
            bundle; "scene" or "object" force one.
        object_min_compactness: smallest/largest principal extent of an object scan.
        min_up_confidence: below this confidence in the up direction the build warns.
        use_cameras: use the capture cameras (``scene.metadata.cameras``) as evidence and for floaters.
        min_camera_views: Gaussians inside fewer capture views than this are floaters.
        capture_far_factor: Gaussians farther from the capture centre than this multiple of the
            farthest camera are far field.
        carve_floaters: drop Gaussians lying in the free space the photos look through
            (rendered median depth from up to ``carve_views`` capture cameras, ``carve_width``
            pixels wide; in front of the surface by more than ``carve_margin`` of its depth).
        floor_threshold: RANSAC inlier distance as a fraction of the robust scene extent.
        align_yaw: turn the scene about +Z so its dominant vertical surfaces (walls, sides)
            are axis-aligned (tight bounds and camera rigs). None = only when the source is
            not already +Z up (a z-up source keeps its heading).
        scale: explicit metres per source unit (wins over everything else).
        known_height: the height (m) of the scene's top above the floor (a high percentile,
            ``top_percentile``, of the opaque Gaussians' heights), or of ``known_height_object``.
        known_height_object: name of an object (from the masks or segmentation) whose height
            ``known_height`` gives.
        camera_height_prior: height (m) assumed for the source camera when its position is known
            (Lyra: the first camera at the source origin) and nothing else gives the scale.
        crop: optional user box [xmin, ymin, zmin, xmax, ymax, zmax] in the bundle world (m),
            applied after normalisation.
        far_field_factor, far_field_percentile: (without cameras) Gaussians farther from the
            median centre than ``far_field_factor`` times the ``far_field_percentile``-th
            percentile distance are far field (sky, distant background) and removed.
        extent_percentile: the robust extent is the [p, 100 - p] percentile box of the centres.
        min_opacity: Gaussians less opaque than this are removed.
        outlier_neighbours, outlier_std_ratio: statistical outlier removal on the centres.
        min_cluster_fraction: isolated clusters with fewer than this fraction of the Gaussians
            (cells of ``cluster_cell_fraction`` of the extent) are floaters.

    Collision and visual meshes (scenery):
        fusion_cameras: which cameras' depth is fused: "capture" (the scene's capture cameras,
            with per-pixel confidence; unseen space stays open), "virtual" (orbits around the
            scene, inside-out views for rooms), "auto" = capture when the scene carries them.
        capture_midpoint_views: with capture cameras, add a virtual view halfway between each
            camera and its nearest neighbour (inside the photographed region only).
        fusion_free_space_weight: with capture cameras, the weight of a see-through pixel's
            "empty" vote (times 1 - alpha), which removes floaters the other views saw through.
        fusion_min_weight: with capture cameras, voxels with less total confidence stay unknown
            (about one head-on opaque view).
        max_fusion_voxels: with capture cameras, the voxel grid is coarsened to stay below this.
        voxel_size: TSDF voxel (m); None = robust extent / ``voxels_across`` within [5 mm, 5 cm].
        image_size: width = height of the virtual depth images (at most ``MAX_IMAGE_SIZE``, 4096).
        views_per_ring, orbit_elevations_deg: the orbit cameras.
        inside_out: add inside-out views from eye height; None = when the scene is wider than
            ``room_size``.
        depth_mode: "median_depth" (robust) or "depth" (expected z, smears at silhouettes).
        alpha_threshold: pixels less opaque than this are not fused.
        max_incidence_deg: pixels whose surface is seen more obliquely than this are not fused
            (splat depth is biased towards the camera in proportion to the tangent of the angle).
        refine_to_gaussians: move the fused surface onto the local plane of the opaque Gaussian
            centres (one moving-least-squares step along the vertex normals), which removes
            the bias of splat depth towards the cameras.
        refine_iterations: projection steps (normals are recomputed between steps, which
            sharpens the fillets that depth fusion leaves in concave corners).
        refine_radius_voxels, refine_max_shift_voxels: neighbourhood radius and largest move
            per step, in voxels.
        hole_size: boundary loops smaller than this are closed.
        min_component_fraction, min_component_faces: mesh pieces smaller than this fraction of
            the largest and than this many faces are dropped (islands, floaters).
        collision_face_budget, visual_face_budget: decimation targets. The collision budget keeps a
            PyBullet step with a few objects in contact under 1 ms (benchmarks/collision_budget.py:
            6 bodies resting on a static trimesh, 0.52 ms at 60k faces, 0.83 at 100k, 1.7 at 200k).
        ground_slab: add a box under the floor, beyond the reconstructed area, so the floor is
            solid everywhere; ``slab_margin`` beyond the bounds, ``slab_thickness`` deep.

    Movable objects:
        segment_objects: find objects standing on the floor automatically (``converters.segment``).
        object_max_size, object_min_gaussians: what counts as an object when segmenting.
        object_resolution: carving voxels across an object's largest side.
        convex_input_faces: the carved solid is smoothed and decimated to this many faces
            before decomposition (CoACD's time grows quickly with the face count).
        convex_method: "coacd" (default) or "vhacd" (PyBullet).
        convex_threshold: CoACD concavity threshold (lower = more, tighter hulls).
        convex_tolerance: a solid within this volume fraction of its convex hull is one hull.
        max_hulls: upper bound on hulls per object.
        object_density: kg/m^3, gives each object's mass from its hull volume.
        object_settle_max_deg: an object scan is turned onto the rest of its convex parts when
            that rest lies within this angle of the up found (else it is left, with a warning).

    Other:
        render_backend: renderer backend for depth maps and the preview.
        preview_size: width of preview.png (height is 3/4 of it).
        seed: seeds RANSAC and the decompositions.
    """

    up_axis: UpAxis = setting("auto", help="up axis of the source, trusted as given unless --refine-up (auto: from the capture cameras, the file's frame, the floor or the object's resting face)", cli=True)
    refine_up: bool = setting(False, help="refine --up-axis with the floor plane", cli=True)
    up_prior_max_angle_deg: float = 30.0
    camera_up_max_angle_deg: float = 10.0
    camera_face_snap_deg: float = 3.0
    floor_height: float | None = setting(None, help="floor height along the up axis, in source units (picks the floor by hand)", cli=True)
    kind: BundleKind = "auto"
    object_min_compactness: float = 0.08
    min_up_confidence: float = 0.6
    use_cameras: bool = True
    min_camera_views: int = 3
    capture_far_factor: float = 2.0
    carve_floaters: bool = True
    carve_views: int = 16
    carve_width: int = 64
    carve_margin: float = 0.15
    top_percentile: float = 99.5
    floor_threshold: float = 0.005
    align_yaw: bool | None = None
    scale: float | None = setting(None, help="metres per source unit (overrides every other scale source)", cli=True)
    known_height: float | None = setting(None, help="height in metres of the scene's top above the floor (its 99.5th percentile of opaque Gaussians, not the highest floater)", cli=True)
    known_height_object: str | None = None
    camera_height_prior: float = 1.5
    crop: tuple[float, ...] | None = setting(None, help="keep only XMIN YMIN ZMIN XMAX YMAX ZMAX (metres, bundle frame)", cli=True)
    far_field_factor: float = 3.0
    far_field_percentile: float = 90.0
    extent_percentile: float = 1.0
    min_opacity: float = 0.05
    outlier_neighbours: int = 16
    outlier_std_ratio: float = 4.0
    min_cluster_fraction: float = 0.002
    cluster_cell_fraction: float = 0.02

    fusion_cameras: FusionCameras = setting("auto", help="cameras whose depth is fused into the scenery mesh (auto: the capture cameras when the scene has them)", cli=True)
    capture_midpoint_views: bool = True
    fusion_free_space_weight: float = 0.5
    fusion_min_weight: float = 1.0
    max_fusion_voxels: int = 40_000_000
    voxel_size: float | None = setting(None, help="TSDF voxel in metres (default: scene extent / 400, within 5 mm - 5 cm)", cli=True)
    voxels_across: int = 400
    image_size: int = setting(192, help="width and height of the virtual depth images (at most 4096)", cli=True)
    views_per_ring: int = 12
    orbit_elevations_deg: tuple[float, ...] = (15.0, 35.0, 60.0, 80.0)
    inside_out: bool | None = None
    room_size: float = 4.0
    depth_mode: FusionDepth = "median_depth"
    alpha_threshold: float = 0.5
    max_incidence_deg: float | None = 60.0
    refine_to_gaussians: bool = True
    refine_iterations: int = 3
    refine_radius_voxels: float = 5.0
    refine_max_shift_voxels: float = 4.0
    hole_size: float = 0.05
    min_component_fraction: float = 0.02
    min_component_faces: int = 50
    collision_face_budget: int = 60_000
    visual_face_budget: int = 400_000
    ground_slab: bool = setting(True, help="add a solid slab under the floor beyond the reconstruction", cli=True)
    slab_margin: float = 2.0
    slab_thickness: float = 0.2

    segment_objects: bool = setting(False, help="find movable objects standing on the floor automatically", cli=True)
    object_max_size: float = 1.0
    object_min_gaussians: int = 200
    object_resolution: int = 48
    convex_input_faces: int = 2000
    convex_method: ConvexMethod = setting("coacd", help="convex decomposition for objects", cli=True)
    convex_threshold: float = 0.05
    convex_tolerance: float = 0.2
    max_hulls: int = 16
    object_density: float = 500.0
    object_settle_max_deg: float = 10.0

    render_backend: RenderBackend = setting("auto", help="renderer backend", cli="backend")
    preview_size: int = 320
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.up_axis, UpAxis, "up_axis")
        check_choice(self.kind, BundleKind, "kind")
        if not 50.0 <= self.top_percentile <= 100.0:
            raise ValueError(f"top_percentile must be in [50, 100], got {self.top_percentile}")
        check_choice(self.depth_mode, FusionDepth, "depth_mode")
        check_choice(self.fusion_cameras, FusionCameras, "fusion_cameras")
        check_choice(self.convex_method, ConvexMethod, "convex_method")
        check_choice(self.render_backend, RenderBackend, "render_backend")
        for name in ("scale", "known_height", "voxel_size"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if self.known_height_object is not None and self.known_height is None:
            raise ValueError("known_height_object needs known_height")
        if self.crop is not None:
            crop = tuple(float(v) for v in self.crop)
            if len(crop) != 6 or not all(map(math.isfinite, crop)) or any(crop[k] >= crop[k + 3] for k in range(3)):
                raise ValueError(f"crop must be [xmin, ymin, zmin, xmax, ymax, zmax] with min < max, got {list(self.crop)}")
            self.crop = crop
        for name in ("image_size", "views_per_ring", "collision_face_budget", "visual_face_budget", "object_resolution", "max_hulls", "convex_input_faces"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size > MAX_IMAGE_SIZE:
            raise ValueError(f"image_size must be at most {MAX_IMAGE_SIZE}, got {self.image_size}")
        if not 0 < self.alpha_threshold < 1:
            raise ValueError(f"alpha_threshold must be in (0, 1), got {self.alpha_threshold}")

    def to_dict(self) -> dict:
        """JSON-serialisable copy (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

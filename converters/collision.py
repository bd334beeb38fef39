"""Collision and visual geometry from Gaussians, through the renderer.

* Scenery (:func:`scenery_meshes`): when the scene carries its capture cameras (a reconstruction
  does), median depth is rendered from those cameras (plus virtual views between neighbouring
  ones, so only inside the photographed region) and fused into a TSDF with a per-pixel
  confidence (alpha x incidence cosine; see-through pixels vote "empty"); voxels the cameras did
  not see stay unknown and the surface stays open there (the ground slab completes the floor,
  ``BuildConfig.ground_slab``). Without cameras, virtual cameras cover the scene (orbits at
  several elevations, inside-out views for rooms) and Open3D fuses the masked depth. Either way
  the extracted surface is cleaned (islands and floaters dropped, small holes filled, nothing
  below the floor), decimated into a collision mesh and a vertex-coloured visual mesh, and its
  pieces, boundary edges and watertightness are reported.
* Movable objects (:func:`object_solid`): the object's Gaussians alone, rendered from above
  and around, carve a voxel box; the rest is a closed solid, meshed watertight for convex
  decomposition and inertia.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree

from lyra_sim.io_utils import progress_bar
from lyra_sim.converters.config import BuildConfig
from lyra_sim.geometry.mesh import Mesh, clip_below, crop_to_box, decimate, fill_small_holes, keep_large_components, project_to_points, smooth_taubin
from lyra_sim.geometry.tsdf import carve_occupancy, fuse_tsdf, fuse_weighted_tsdf, incidence_cosine, occupancy_to_mesh
from lyra_sim.geometry.views import inside_out_views, orbit_views
from lyra_sim.render.camera import Camera
from lyra_sim.scene.cameras import CaptureCameras
from lyra_sim.scene.gaussian_scene import GaussianScene

# Cameras rendered per renderer call: bounds memory ([C, H, W, ch] outputs) and feeds the progress bar.
_VIEWS_PER_BATCH = 8
# Voxel size limits (m) for the automatic choice.
_MIN_VOXEL, _MAX_VOXEL = 0.005, 0.05


@dataclass
class RenderedViews:
    """Rendered depth maps of a set of cameras, as numpy arrays.

    Attributes:
        depth: camera z [C, H, W], 0 where masked (alpha below threshold, too far, no surface).
        alpha: [C, H, W].
        colors: linear RGB [C, H, W, 3] or None.
        Ks: [C, 3, 3]; viewmats: [C, 4, 4].
    """

    depth: np.ndarray
    alpha: np.ndarray
    colors: np.ndarray | None
    Ks: np.ndarray
    viewmats: np.ndarray


@dataclass
class SceneryMeshes:
    """Result of :func:`scenery_meshes`.

    Attributes:
        collision: static concave collision mesh (may be empty if nothing was observed).
        visual: vertex-coloured visual mesh.
        info: views, voxel size, face counts and per-stage seconds (for the manifest).
    """

    collision: Mesh
    visual: Mesh
    info: dict = field(default_factory=dict)


def render_views(
    scene: GaussianScene,
    cameras: Camera,
    config: BuildConfig,
    with_colors: bool,
    max_depth: float,
    progress: bool = False,
    description: str = "render depth",
    max_incidence_deg: float | None = None,
) -> RenderedViews:
    """Render depth (``config.depth_mode``), alpha and optionally RGB in batches; mask the depth
    where alpha is below the threshold, beyond ``max_depth`` and (optionally) at grazing incidence."""
    from lyra_sim.render.api import render

    modes = (config.depth_mode, "alpha") + (("rgb",) if with_colors else ())
    depth, alpha, colors = [], [], []
    batches = range(0, len(cameras), _VIEWS_PER_BATCH)
    with torch.no_grad():
        for start in progress_bar(batches, desc=description, unit="batch", enabled=progress, leave=False):
            batch = cameras[start : start + _VIEWS_PER_BATCH]
            images = render(scene, batch, modes=modes, backend=config.render_backend)
            depth.append(images[config.depth_mode][..., 0].cpu().numpy())
            alpha.append(images["alpha"][..., 0].cpu().numpy())
            if with_colors:
                colors.append(images["rgb"].cpu().numpy())
    depth, alpha = np.concatenate(depth), np.concatenate(alpha)
    usable = (alpha >= config.alpha_threshold) & (depth > 0) & (depth < max_depth) & np.isfinite(depth)
    depth = np.where(usable, depth, 0.0)
    Ks = cameras.K.double().cpu().numpy()
    if max_incidence_deg is not None:
        depth = np.where(incidence_cosine(depth, Ks) >= np.cos(np.radians(max_incidence_deg)), depth, 0.0)
    return RenderedViews(
        depth=depth.astype(np.float32),
        alpha=alpha,
        colors=np.concatenate(colors) if with_colors else None,
        Ks=Ks,
        viewmats=cameras.viewmat.double().cpu().numpy(),
    )


def automatic_voxel_size(low: np.ndarray, high: np.ndarray, config: BuildConfig) -> float:
    """``config.voxel_size``, or the largest horizontal extent / ``voxels_across`` within [5 mm, 5 cm]."""
    if config.voxel_size is not None:
        return float(config.voxel_size)
    extent = float(np.max(np.asarray(high) - np.asarray(low)))
    return float(np.clip(extent / config.voxels_across, _MIN_VOXEL, _MAX_VOXEL))


def scenery_cameras(low: np.ndarray, high: np.ndarray, config: BuildConfig) -> Camera:
    """Orbit cameras around [low, high] plus inside-out views when the scene is room-sized."""
    size = config.image_size
    cameras = orbit_views(low, high, tuple(config.orbit_elevations_deg), config.views_per_ring, size, size)
    inside = config.inside_out
    if inside is None:
        inside = float(np.max(high[:2] - low[:2])) > config.room_size
    if inside:
        interior = inside_out_views(low, high, width=size, height=size)
        near, far = min(cameras.near, interior.near), max(cameras.far, interior.far)
        cameras = Camera.stack([Camera(c.K, c.viewmat, size, size, near, far) for c in (cameras, interior)])
    return cameras


def _midpoint_views(cameras: CaptureCameras) -> CaptureCameras:
    """One virtual camera halfway between each capture camera and its nearest neighbour (each
    pair once): the position averaged, the rotation the nearest rotation to the mean of the two.
    Between two photographs the view sees what they saw, so nothing is invented beyond them."""
    positions = cameras.positions
    distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    pairs = sorted({tuple(sorted((i, int(j)))) for i, j in enumerate(distance.argmin(1))})
    rotations, centres, intrinsics, sizes = [], [], [], []
    for i, j in pairs:
        u, _, vt = np.linalg.svd(cameras.rotations[i] + cameras.rotations[j])
        rotation = u @ vt
        if np.linalg.det(rotation) < 0:
            rotation = u @ np.diag([1.0, 1.0, -1.0]) @ vt
        rotations.append(rotation)
        centres.append(0.5 * (positions[i] + positions[j]))
        intrinsics.append(cameras.intrinsics[i])
        sizes.append(cameras.sizes[i])
    return CaptureCameras(np.array(rotations), np.array(centres), np.array(intrinsics), np.array(sizes), source="midpoint views")


def capture_fusion_cameras(cameras: CaptureCameras, width: int, midpoints: bool = True, near: float = 0.01) -> Camera:
    """The capture cameras (and, with ``midpoints``, one virtual view between each and its nearest
    neighbour) as one render ``Camera`` batch ``width`` pixels wide; cameras of another aspect
    are cropped or padded to the most common one (the principal point keeps its place)."""
    if midpoints and len(cameras) > 1:
        virtual = _midpoint_views(cameras)
        cameras = CaptureCameras(
            np.concatenate([cameras.rotations, virtual.rotations]), np.concatenate([cameras.positions, virtual.positions]),
            np.concatenate([cameras.intrinsics, virtual.intrinsics]), np.concatenate([cameras.sizes, virtual.sizes]),
        )
    factors = width / cameras.sizes[:, 0]
    heights = np.maximum(1, np.round(cameras.sizes[:, 1] * factors)).astype(np.int64)
    values, counts = np.unique(heights, return_counts=True)
    height = int(values[np.argmax(counts)])
    Ks = cameras.intrinsics.copy()
    Ks[:, :2] *= factors[:, None, None]
    Ks[:, 1, 2] += 0.5 * (height - heights)
    spread = max(float(np.ptp(cameras.positions, axis=0).max()), 1e-3)
    return Camera(Ks, cameras.viewmats, int(width), height, near=near, far=100.0 * spread)


def _fuse_from_capture(scene: GaussianScene, config: BuildConfig, low: np.ndarray, high: np.ndarray, voxel: float, progress: bool) -> tuple[Mesh, dict]:
    """Median depth from the capture cameras, fused with per-pixel confidence (module docstring)."""
    cameras = capture_fusion_cameras(scene.metadata.cameras, config.image_size, config.capture_midpoint_views)
    views = render_views(scene, cameras, config, with_colors=False, max_depth=cameras.far, progress=progress,
                         description="render capture views", max_incidence_deg=config.max_incidence_deg)
    cosine = incidence_cosine(views.depth, views.Ks)
    confidence = np.where(views.depth > 0, views.alpha * cosine, 0.0)
    free = np.where(views.alpha < config.alpha_threshold, config.fusion_free_space_weight * (1.0 - views.alpha), 0.0)
    volume = float(np.prod(high - low))
    if volume / voxel**3 > config.max_fusion_voxels:
        voxel = float(np.cbrt(volume / config.max_fusion_voxels))
    mesh, grid = fuse_weighted_tsdf(views.depth, confidence, views.Ks, views.viewmats, low, high, voxel,
                                    free=free, min_weight=config.fusion_min_weight)
    if not mesh.is_empty():  # the visual mesh's colours: the nearest opaque Gaussian's
        opaque = scene.opacities().detach().cpu().numpy() >= config.alpha_threshold
        if opaque.any():
            means = scene.means.detach().cpu().numpy()[opaque]
            nearest = cKDTree(means).query(mesh.vertices, workers=-1)[1]
            mesh.colors = np.clip(scene.colors().detach().cpu().numpy()[opaque][nearest], 0.0, 1.0)
    info = {"fusion": "capture cameras", "views": len(cameras), "capture_views": len(scene.metadata.cameras),
            "image_size": [cameras.width, cameras.height], "voxel_size": voxel, **grid,
            "observed_pixel_fraction": float(np.mean(views.depth > 0))}
    return mesh, info


def uses_capture_cameras(scene: GaussianScene, config: BuildConfig) -> bool:
    """Whether :func:`scenery_meshes` fuses from the capture cameras (``config.fusion_cameras``)."""
    has_cameras = scene.metadata.cameras is not None and config.use_cameras
    if config.fusion_cameras == "capture" and not has_cameras:
        raise ValueError("fusion_cameras='capture' needs a scene with capture cameras (metadata.cameras)")
    return config.fusion_cameras == "capture" or (config.fusion_cameras == "auto" and has_cameras)


def mesh_report(mesh: Mesh) -> dict:
    """Pieces (connected components), boundary edges and watertightness of a triangle mesh."""
    if mesh.is_empty():
        return {"faces": 0, "pieces": 0, "boundary_edges": 0, "watertight": False}
    clusters = np.asarray(mesh.to_open3d().cluster_connected_triangles()[0])
    edges = np.sort(mesh.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    boundary = int((uses == 1).sum())
    return {"faces": len(mesh), "pieces": int(clusters.max()) + 1, "boundary_edges": boundary,
            "watertight": bool(boundary == 0 and (uses == 2).all())}


def scenery_meshes(
    scene: GaussianScene,
    config: BuildConfig = BuildConfig(),
    floor_z: float = 0.0,
    progress: bool = False,
) -> SceneryMeshes:
    """Collision and visual meshes of a (normalised, +Z up) scene by depth rendering and TSDF fusion
    (from the capture cameras when the scene has them; see the module docstring)."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    means = scene.means.detach().cpu().numpy().astype(np.float64)
    low, high = means.min(0), means.max(0)
    low[2] = min(low[2], floor_z)
    voxel = automatic_voxel_size(low, high, config)
    if uses_capture_cameras(scene, config):
        margin = 4 * voxel
        fused, fusion_info = _fuse_from_capture(scene, config, low - margin, high + margin, voxel, progress)
        voxel = fusion_info["voxel_size"]
        timings["render_fuse_s"] = time.perf_counter() - clock
    else:
        cameras = scenery_cameras(low, high, config)
        views = render_views(
            scene, cameras, config, with_colors=True, max_depth=cameras.far, progress=progress,
            description="render scenery", max_incidence_deg=config.max_incidence_deg,
        )
        timings["render_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        fused = fuse_tsdf(views.depth, views.Ks, views.viewmats, voxel, colors=views.colors, depth_max=cameras.far, progress=progress)
        timings["fuse_s"] = time.perf_counter() - clock
        fusion_info = {"fusion": "virtual views", "views": len(cameras), "image_size": config.image_size, "voxel_size": voxel,
                       "observed_pixel_fraction": float(np.mean(views.depth > 0))}

    clock = time.perf_counter()
    raw_faces = len(fused)
    margin = 10 * voxel
    fused = crop_to_box(fused, low - margin, high + margin)
    timings["stray_faces_removed"] = raw_faces - len(fused)
    pieces_fused = mesh_report(fused)["pieces"]
    surface = keep_large_components(fused, config.min_component_fraction, config.min_component_faces)
    surface = fill_small_holes(surface, config.hole_size)
    # Decimate first: the projection below then moves fewer vertices, and quadric decimation
    # keeps flat regions coarse, where the projection has nothing to correct anyway.
    surface = decimate(surface, config.visual_face_budget)
    timings["clean_decimate_s"] = time.perf_counter() - clock
    if config.refine_to_gaussians:
        refine_clock = time.perf_counter()
        opaque = scene.opacities().detach().cpu().numpy() >= config.alpha_threshold
        tree = cKDTree(means[opaque])
        total_shift = np.zeros(len(surface.vertices))
        for _ in range(config.refine_iterations):
            surface, shift = project_to_points(
                surface, means[opaque], radius=config.refine_radius_voxels * voxel,
                max_shift=config.refine_max_shift_voxels * voxel, tree=tree,
            )
            total_shift += shift
        timings["refine_mean_shift"] = float(np.mean(np.abs(total_shift)))
        timings["refine_s"] = time.perf_counter() - refine_clock
    surface = clip_below(surface, floor_z, tolerance=voxel)
    visual = crop_to_box(surface, low - margin, high + margin)
    collision = crop_to_box(decimate(visual, config.collision_face_budget), low - margin, high + margin)
    collision = Mesh(collision.vertices, collision.faces)  # physics needs no colours
    timings["cleanup_s"] = time.perf_counter() - clock
    info = {
        **fusion_info,
        "fused_faces": raw_faces,
        "fused_pieces": pieces_fused,
        "collision_faces": len(collision),
        "visual_faces": len(visual),
        "collision_mesh": mesh_report(collision),
        **timings,
    }
    return SceneryMeshes(collision=collision, visual=visual, info=info)


def object_solid(
    scene: GaussianScene,
    config: BuildConfig = BuildConfig(),
    floor_z: float = 0.0,
) -> tuple[Mesh, dict]:
    """A watertight mesh of one object's Gaussians (world frame) by depth carving.

    Views look from above the floor only (elevations 5-85 degrees): a capture never sees an
    object's underside, and a view from below would look through the missing bottom and carve
    the inside away. Returns (mesh, info).
    """
    means = scene.means.detach().cpu().numpy().astype(np.float64)
    extent_pad = 3.0 * float(torch.exp(scene.log_scales).max(dim=1).values.median())
    low, high = means.min(0) - extent_pad, means.max(0) + extent_pad
    low[2] = max(low[2], floor_z)
    voxel = float(np.max(high - low)) / config.object_resolution
    shape = tuple(int(n) for n in np.maximum(np.ceil((high - low) / voxel), 1))
    size = max(64, min(config.image_size, 160))
    cameras = orbit_views(low, high, (5.0, 30.0, 60.0, 85.0), 8, size, size)
    views = render_views(scene, cameras, config, with_colors=False, max_depth=cameras.far)
    occupancy = carve_occupancy(views.alpha, views.depth, views.Ks, views.viewmats, low, voxel, shape, alpha_threshold=config.alpha_threshold)
    mesh = keep_large_components(crop_to_box(occupancy_to_mesh(occupancy, low, voxel), low - 3 * voxel, high + 3 * voxel), min_fraction=0.1)
    # Carving keeps everything no camera saw through, so the solid is slightly fat (about a
    # pixel's footprint) and stair-stepped: smooth it, then pull it onto the Gaussian centres.
    mesh = smooth_taubin(mesh, 10)
    shift = np.zeros(0)
    if config.refine_to_gaussians:
        opaque = scene.opacities().detach().cpu().numpy() >= config.alpha_threshold
        mesh, shift = project_to_points(mesh, means[opaque], radius=config.refine_radius_voxels * voxel, max_shift=config.refine_max_shift_voxels * voxel)
    mesh = crop_to_box(decimate(mesh, config.convex_input_faces), low - 3 * voxel, high + 3 * voxel)
    info = {
        "voxel_size": voxel,
        "grid": list(shape),
        "views": len(cameras),
        "occupied_voxels": int(occupancy.sum()),
        "refine_mean_shift": float(np.mean(np.abs(shift))) if len(shift) else 0.0,
        "faces": len(mesh),
    }
    return mesh, info


def ground_slab(low: np.ndarray, high: np.ndarray, config: BuildConfig, floor_z: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(centre [3], size [3]) of the box under the floor that makes it solid beyond the reconstruction."""
    size_xy = np.asarray(high[:2]) - np.asarray(low[:2]) + 2 * config.slab_margin
    centre = np.array([0.5 * (low[0] + high[0]), 0.5 * (low[1] + high[1]), floor_z - 0.5 * config.slab_thickness])
    return centre, np.array([size_xy[0], size_xy[1], config.slab_thickness])


def preview_camera(low: np.ndarray, high: np.ndarray, width: int) -> Camera:
    """One camera looking at the box [low, high] from 40 degrees elevation (4:3 image)."""
    height = max(8, int(round(width * 0.75)))
    return orbit_views(low, high, (40.0,), 1, width, height)

"""Surfaces from rendered depth: TSDF fusion (Open3D) for scenery, depth carving for closed objects.

* :func:`fuse_tsdf` integrates depth maps (and optional colours) from posed pinhole cameras
  into Open3D's ``ScalableTSDFVolume`` and extracts a vertex-coloured triangle mesh. Open3D is
  pinned to 0.19: the legacy scalable volume of 0.20 integrates nothing (DESIGN.md).
* :func:`carve_occupancy` marks every voxel of a box that some camera sees through (background
  pixel, or in front of the observed depth) as free; what is left is a closed solid, which
  :func:`occupancy_to_mesh` turns into a watertight mesh. Movable objects need a closed surface
  for convex decomposition and inertia, which a TSDF of views from above cannot give.

Cameras follow our convention (OpenCV axes, world-to-camera ``viewmat``, pixel centres at
+0.5). This module imports numpy, torch, scipy and (lazily) open3d.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from lyra_sim.io_utils import progress_bar
from lyra_sim.geometry.mesh import Mesh


def _check_views(depth, Ks, viewmats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim == 4 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 3:
        raise ValueError(f"depth must have shape [C, H, W] or [C, H, W, 1], got {list(depth.shape)}")
    Ks, viewmats = np.asarray(Ks, dtype=np.float64), np.asarray(viewmats, dtype=np.float64)
    count = depth.shape[0]
    if Ks.shape != (count, 3, 3) or viewmats.shape != (count, 4, 4):
        raise ValueError(f"Ks must be [{count}, 3, 3] and viewmats [{count}, 4, 4], got {list(Ks.shape)} and {list(viewmats.shape)}")
    return depth, Ks, viewmats


def incidence_cosine(
    depth: np.ndarray,  # [C, H, W] camera z, 0 = no measurement
    Ks: np.ndarray,  # [C, 3, 3]
) -> np.ndarray:  # [C, H, W]
    """|cos| of the angle between each pixel's viewing ray and the surface normal from the depth map.

    Normals come from central differences of the back-projected points; pixels without all four
    neighbours measured get 0 (silhouettes and depth edges, where a depth value mixes surfaces).
    Splat depth is biased towards the camera by roughly the Gaussians' footprint times the tangent
    of the incidence angle, and a grazing view also quantises depth coarsely, so fusion drops
    pixels seen at grazing angles.
    """
    depth = np.asarray(depth, dtype=np.float64)
    count, height, width = depth.shape
    u = np.arange(width) + 0.5
    v = np.arange(height) + 0.5
    cosine = np.zeros(depth.shape)
    for view in range(count):
        fx, fy, cx, cy = Ks[view, 0, 0], Ks[view, 1, 1], Ks[view, 0, 2], Ks[view, 1, 2]
        rays = np.stack(np.broadcast_arrays((u[None, :] - cx) / fx, (v[:, None] - cy) / fy, np.ones((height, width))), axis=-1)
        points = depth[view][..., None] * rays  # [H, W, 3]
        valid = depth[view] > 0
        along_u = points[1:-1, 2:] - points[1:-1, :-2]
        along_v = points[2:, 1:-1] - points[:-2, 1:-1]
        normals = np.cross(along_u, along_v)
        inner_rays = rays[1:-1, 1:-1]
        numerator = np.abs(np.sum(normals * inner_rays, axis=-1))
        denominator = np.linalg.norm(normals, axis=-1) * np.linalg.norm(inner_rays, axis=-1)
        neighbours = valid[1:-1, 2:] & valid[1:-1, :-2] & valid[2:, 1:-1] & valid[:-2, 1:-1] & valid[1:-1, 1:-1]
        cosine[view, 1:-1, 1:-1] = np.where(neighbours & (denominator > 0), numerator / np.maximum(denominator, 1e-300), 0.0)
    return cosine


def fuse_tsdf(
    depth: np.ndarray,  # [C, H, W] camera-space z in metres, 0 = no measurement
    Ks: np.ndarray,  # [C, 3, 3]
    viewmats: np.ndarray,  # [C, 4, 4] world-to-camera
    voxel_size: float,
    truncation: float | None = None,
    colors: np.ndarray | None = None,  # [C, H, W, 3] linear RGB in [0, 1]
    depth_max: float = 1000.0,
    progress: bool = False,
) -> Mesh:
    """Fuse depth maps into a truncated signed distance volume and extract its zero level set.

    Args:
        depth: per-pixel camera z; pixels with 0 (masked: transparent or too far) are skipped.
        Ks, viewmats: the cameras that rendered ``depth``.
        voxel_size: TSDF voxel edge (m); surface detail below ~1 voxel is lost.
        truncation: SDF truncation distance, default 4 voxels.
        colors: optional colours; the mesh then carries vertex colours.
        depth_max: depth beyond this is ignored.

    Returns:
        The extracted mesh (possibly empty when nothing was observed).
    """
    import open3d as o3d

    depth, Ks, viewmats = _check_views(depth, Ks, viewmats)
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    truncation = 4.0 * voxel_size if truncation is None else float(truncation)
    color_type = o3d.pipelines.integration.TSDFVolumeColorType.RGB8 if colors is not None else o3d.pipelines.integration.TSDFVolumeColorType.NoColor
    volume = o3d.pipelines.integration.ScalableTSDFVolume(voxel_length=float(voxel_size), sdf_trunc=truncation, color_type=color_type)
    count, height, width = depth.shape
    for view in progress_bar(range(count), desc="tsdf fusion", unit="view", enabled=progress, leave=False):
        if colors is not None:
            color_image = o3d.geometry.Image(np.ascontiguousarray((np.clip(colors[view], 0, 1) * 255 + 0.5).astype(np.uint8)))
        else:
            color_image = o3d.geometry.Image(np.zeros((height, width, 3), dtype=np.uint8))
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            color_image,
            o3d.geometry.Image(np.ascontiguousarray(depth[view])),
            depth_scale=1.0,
            depth_trunc=float(depth_max),
            convert_rgb_to_intensity=False,
        )
        fx, fy, cx, cy = Ks[view, 0, 0], Ks[view, 1, 1], Ks[view, 0, 2], Ks[view, 1, 2]
        # Open3D puts pixel centres at integer coordinates; ours (gsplat's) are at +0.5.
        intrinsic = o3d.camera.PinholeCameraIntrinsic(width, height, fx, fy, cx - 0.5, cy - 0.5)
        volume.integrate(rgbd, intrinsic, viewmats[view])
    extracted = volume.extract_triangle_mesh()
    mesh = Mesh.from_open3d(extracted)
    if colors is None:
        mesh.colors = None
    return mesh


def carve_occupancy(
    alpha: np.ndarray,  # [C, H, W]
    depth: np.ndarray,  # [C, H, W]
    Ks: np.ndarray,  # [C, 3, 3]
    viewmats: np.ndarray,  # [C, 4, 4]
    low: np.ndarray,  # [3]
    voxel_size: float,
    shape: tuple[int, int, int],
    margin: float | None = None,
    alpha_threshold: float = 0.5,
) -> np.ndarray:  # [X, Y, Z] bool
    """Space carving with depth: occupied = no camera sees through the voxel.

    A voxel (centre ``low + (index + 0.5) * voxel_size``) is free when it projects into an image
    at a pixel with alpha < ``alpha_threshold`` or lies more than ``margin`` (default one voxel)
    in front of that pixel's depth. Voxels no camera sees stay occupied: keep the box tight.
    """
    depth, Ks, viewmats = _check_views(depth, Ks, viewmats)
    alpha = np.asarray(alpha, dtype=np.float32).reshape(depth.shape)
    margin = voxel_size if margin is None else float(margin)
    axes = [torch.arange(n, dtype=torch.float64) for n in shape]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    centres = torch.as_tensor(np.asarray(low, dtype=np.float64)) + (grid + 0.5) * voxel_size  # [V, 3]
    free = torch.zeros(len(centres), dtype=torch.bool)
    height, width = depth.shape[1:]
    for view in range(depth.shape[0]):
        rotation = torch.as_tensor(viewmats[view, :3, :3])
        translation = torch.as_tensor(viewmats[view, :3, 3])
        camera_points = centres @ rotation.T + translation
        z = camera_points[:, 2]
        in_front = z > 1e-6
        safe_z = torch.where(in_front, z, torch.ones_like(z))
        u = torch.floor(Ks[view, 0, 0] * camera_points[:, 0] / safe_z + Ks[view, 0, 2]).long()
        v = torch.floor(Ks[view, 1, 1] * camera_points[:, 1] / safe_z + Ks[view, 1, 2]).long()
        visible = in_front & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        index = torch.nonzero(visible).squeeze(1)
        pixel_alpha = torch.as_tensor(alpha[view])[v[index], u[index]]
        pixel_depth = torch.as_tensor(depth[view])[v[index], u[index]].double()
        sees_through = (pixel_alpha < alpha_threshold) | (z[index] < pixel_depth - margin)
        free[index[sees_through]] = True
    return (~free).reshape(shape).numpy()


def occupancy_to_mesh(
    occupancy: np.ndarray,  # [X, Y, Z] bool
    low: np.ndarray,  # [3] world position of the grid corner
    voxel_size: float,
) -> Mesh:
    """Watertight surface of a voxel solid (marching cubes on its signed distance, via Open3D).

    The signed distance (Euclidean distance transform inside and outside) is injected into an
    Open3D ``UniformTSDFVolume`` and extracted with its marching cubes; the grid is padded so
    the surface closes at the box faces.
    """
    import open3d as o3d

    occupancy = np.asarray(occupancy, dtype=bool)
    if occupancy.ndim != 3:
        raise ValueError(f"occupancy must be a 3D grid, got shape {list(occupancy.shape)}")
    if not occupancy.any():
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    resolution = int(max(occupancy.shape)) + 4  # the volume is a cube; pad 2 voxels each side
    cube = np.zeros((resolution,) * 3, dtype=bool)
    cube[2 : 2 + occupancy.shape[0], 2 : 2 + occupancy.shape[1], 2 : 2 + occupancy.shape[2]] = occupancy
    signed = (ndimage.distance_transform_edt(~cube) - ndimage.distance_transform_edt(cube)) * voxel_size
    # The transform measures centre-to-centre distances; the boundary of the voxel solid lies
    # half a voxel from the centres on either side of it.
    signed = np.where(cube, signed + 0.5 * voxel_size, signed - 0.5 * voxel_size)
    truncation = 3.0 * voxel_size
    origin = np.asarray(low, dtype=np.float64) - 2 * voxel_size
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=resolution * voxel_size,
        resolution=resolution,
        sdf_trunc=truncation,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.NoColor,
        origin=origin.reshape(3, 1),
    )
    # Open3D's voxel index is z + y*R + x*R*R, i.e. C order of an [x, y, z] array.
    values = np.stack([np.clip(signed / truncation, -1, 1).ravel(order="C"), np.ones(cube.size)], axis=1)
    volume.inject_volume_tsdf(o3d.utility.Vector2dVector(values))
    return Mesh.from_open3d(volume.extract_triangle_mesh())


# ----------------------------------------------------------------------------- weighted fusion
def _integrate_kernel():
    """The numba kernel of :func:`fuse_weighted_tsdf`, compiled on first use (cache=True)."""
    global _INTEGRATE
    if _INTEGRATE is not None:
        return _INTEGRATE
    import numba

    @numba.njit(parallel=True, cache=True, fastmath=True)
    def integrate(depth, confidence, free, Ks, viewmats, low, voxel, truncation, tsdf, weight):  # pragma: no cover - numba
        count, height, width = depth.shape
        size_x, size_y, size_z = tsdf.shape
        for ix in numba.prange(size_x):
            px = low[0] + (ix + 0.5) * voxel
            for iy in range(size_y):
                py = low[1] + (iy + 0.5) * voxel
                for iz in range(size_z):
                    pz = low[2] + (iz + 0.5) * voxel
                    total = 0.0
                    weights = 0.0
                    for c in range(count):
                        m = viewmats[c]
                        z = m[2, 0] * px + m[2, 1] * py + m[2, 2] * pz + m[2, 3]
                        if z <= 1e-6:
                            continue
                        x = m[0, 0] * px + m[0, 1] * py + m[0, 2] * pz + m[0, 3]
                        y = m[1, 0] * px + m[1, 1] * py + m[1, 2] * pz + m[1, 3]
                        u = Ks[c, 0, 0] * x / z + Ks[c, 0, 2]
                        v = Ks[c, 1, 1] * y / z + Ks[c, 1, 2]
                        if u < 0.0 or v < 0.0 or u >= width or v >= height:
                            continue
                        col, row = int(u), int(v)
                        measured = depth[c, row, col]
                        # Bilinear between the four nearest pixel centres when all four measured a
                        # surface within a truncation of each other (a pixel is ~1 cm at tabletop
                        # scale: nearest-pixel depth would be a staircase on slanted surfaces).
                        fu, fv = u - 0.5, v - 0.5
                        c0, r0 = int(np.floor(fu)), int(np.floor(fv))
                        if measured > 0.0 and c0 >= 0 and r0 >= 0 and c0 + 1 < width and r0 + 1 < height:
                            d00, d01 = depth[c, r0, c0], depth[c, r0, c0 + 1]
                            d10, d11 = depth[c, r0 + 1, c0], depth[c, r0 + 1, c0 + 1]
                            smallest = min(min(d00, d01), min(d10, d11))
                            largest = max(max(d00, d01), max(d10, d11))
                            if smallest > 0.0 and largest - smallest < truncation:
                                au, av = fu - c0, fv - r0
                                measured = (1 - av) * ((1 - au) * d00 + au * d01) + av * ((1 - au) * d10 + au * d11)
                        if measured > 0.0:
                            distance = measured - z
                            if distance < -truncation:
                                continue  # behind the observed surface: occluded, no evidence
                            w = confidence[c, row, col]
                            total += w * min(1.0, distance / truncation)
                            weights += w
                        else:
                            w = free[c, row, col]
                            total += w
                            weights += w
                    weight[ix, iy, iz] = weights
                    tsdf[ix, iy, iz] = total / weights if weights > 0.0 else 1.0

    _INTEGRATE = integrate
    return integrate


_INTEGRATE = None
# Marching cubes runs on cubes of at most this many voxels a side (Open3D's uniform volume is a cube).
_EXTRACT_CHUNK = 160


def fuse_weighted_tsdf(
    depth: np.ndarray,  # [C, H, W] camera z (m), 0 = no surface measured
    confidence: np.ndarray,  # [C, H, W] weight of each measured depth (e.g. alpha x incidence cosine)
    Ks: np.ndarray,  # [C, 3, 3]
    viewmats: np.ndarray,  # [C, 4, 4] world-to-camera
    low: np.ndarray,  # [3] corner of the fused box
    high: np.ndarray,  # [3]
    voxel_size: float,
    truncation: float | None = None,
    free: np.ndarray | None = None,  # [C, H, W] weight of "seen through, empty" where depth is 0
    min_weight: float = 1.0,
) -> tuple[Mesh, dict]:
    """A TSDF over the box [low, high] with per-pixel confidence weights, and its zero level set.

    Each voxel averages, over the views it projects into, ``min(1, (depth - z) / truncation)``
    weighted by the pixel's ``confidence`` (views where it lies more than ``truncation`` behind
    the surface give no evidence), and +1 weighted by ``free`` where the pixel saw through (no
    surface: the space is empty, which removes floaters other views saw). Voxels whose total
    weight is below ``min_weight`` stay unknown and no surface is extracted there: what the
    cameras did not see stays open instead of being invented. Marching cubes is Open3D's, run on
    cubes of the grid that share one voxel layer, the seams merged.

    Returns (mesh, info: grid shape, voxels observed).
    """
    import open3d as o3d

    depth, Ks, viewmats = _check_views(depth, Ks, viewmats)
    confidence = np.ascontiguousarray(np.asarray(confidence, dtype=np.float32).reshape(depth.shape))
    free = np.zeros_like(depth) if free is None else np.ascontiguousarray(np.asarray(free, dtype=np.float32).reshape(depth.shape))
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if low.shape != (3,) or high.shape != (3,) or np.any(high <= low):
        raise ValueError(f"need low [3] < high [3], got {low.tolist()} and {high.tolist()}")
    truncation = 4.0 * voxel_size if truncation is None else float(truncation)
    shape = tuple(int(n) for n in np.maximum(np.ceil((high - low) / voxel_size), 2))
    tsdf = np.ones(shape, dtype=np.float32)
    weight = np.zeros(shape, dtype=np.float32)
    _integrate_kernel()(np.ascontiguousarray(depth), confidence, free, Ks, viewmats, low, float(voxel_size), truncation, tsdf, weight)
    weight[weight < min_weight] = 0.0
    info = {"grid": list(shape), "voxels": int(np.prod(shape)), "observed_voxels": int((weight > 0).sum())}
    pieces = []
    step = _EXTRACT_CHUNK - 1
    for x0 in range(0, shape[0] - 1, step):
        for y0 in range(0, shape[1] - 1, step):
            for z0 in range(0, shape[2] - 1, step):
                block = (slice(x0, x0 + _EXTRACT_CHUNK), slice(y0, y0 + _EXTRACT_CHUNK), slice(z0, z0 + _EXTRACT_CHUNK))
                block_weight = weight[block]
                if not block_weight.any():
                    continue
                resolution = max(block_weight.shape)
                cube_tsdf = np.ones((resolution,) * 3, dtype=np.float64)
                cube_weight = np.zeros((resolution,) * 3, dtype=np.float64)
                sx, sy, sz = block_weight.shape
                cube_tsdf[:sx, :sy, :sz] = tsdf[block]
                cube_weight[:sx, :sy, :sz] = block_weight
                volume = o3d.pipelines.integration.UniformTSDFVolume(
                    length=resolution * voxel_size, resolution=resolution, sdf_trunc=truncation,
                    color_type=o3d.pipelines.integration.TSDFVolumeColorType.NoColor,
                    origin=(low + voxel_size * np.array([x0, y0, z0])).reshape(3, 1),
                )
                # Open3D's voxel index is z + y*R + x*R*R: C order of an [x, y, z] array.
                volume.inject_volume_tsdf(o3d.utility.Vector2dVector(np.stack([cube_tsdf.ravel(), cube_weight.ravel()], axis=1)))
                piece = Mesh.from_open3d(volume.extract_triangle_mesh())
                if not piece.is_empty():
                    pieces.append(Mesh(piece.vertices, piece.faces))
    mesh = Mesh.concatenate(pieces)
    if len(pieces) > 1:
        merged = mesh.to_open3d().merge_close_vertices(1e-4 * voxel_size)
        merged.remove_duplicated_triangles()
        merged.remove_unreferenced_vertices()
        mesh = Mesh(np.asarray(merged.vertices), np.asarray(merged.triangles))
    return mesh, info

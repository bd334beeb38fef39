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

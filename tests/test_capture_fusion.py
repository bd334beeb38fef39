"""Scenery meshing from the capture cameras: confidence-weighted TSDF fusion against analytic
planes (accuracy, unseen space left open, floaters voted away), the virtual views between
capture cameras, and the mesh report (pieces, boundary, watertightness)."""

from __future__ import annotations

import numpy as np
import pytest

from lyra_sim.converters.collision import capture_fusion_cameras, mesh_report
from lyra_sim.geometry.mesh import Mesh
from lyra_sim.geometry.tsdf import fuse_weighted_tsdf
from lyra_sim.render.camera import Camera
from lyra_sim.scene.cameras import CaptureCameras
from conftest import random_scene

SIZE = 48


def _plane_views(eyes, height: float = 0.0):
    """Cameras at ``eyes`` looking at the origin and their exact depth of the plane z = ``height``."""
    cameras = Camera.look_at(np.asarray(eyes, dtype=np.float64), np.zeros((len(eyes), 3)), up=(0.0, 1.0, 0.0), fov_deg=50.0, width=SIZE, height=SIZE)
    Ks, viewmats = cameras.K.double().numpy(), cameras.viewmat.double().numpy()
    u, v = np.arange(SIZE) + 0.5, np.arange(SIZE) + 0.5
    depth = np.zeros((len(eyes), SIZE, SIZE), dtype=np.float32)
    for c in range(len(eyes)):
        rays = np.stack(np.broadcast_arrays((u[None] - Ks[c, 0, 2]) / Ks[c, 0, 0], (v[:, None] - Ks[c, 1, 2]) / Ks[c, 1, 1], np.ones((SIZE, SIZE))), -1)
        rotation = viewmats[c, :3, :3].T
        origin = -rotation @ viewmats[c, :3, 3]
        directions = rays @ rotation.T
        depth[c] = (height - origin[2]) / directions[..., 2]  # camera z of the hit (rays have z = 1)
    return depth, Ks, viewmats


EYES = [[0.2, 0.0, 1.0], [-0.2, 0.0, 1.0], [0.0, 0.2, 1.0], [0.0, -0.2, 1.0]]


def test_a_seen_plane_is_extracted_where_it_lies():
    depth, Ks, viewmats = _plane_views(EYES)
    mesh, info = fuse_weighted_tsdf(depth, np.ones_like(depth), Ks, viewmats, np.array([-0.25, -0.25, -0.1]), np.array([0.25, 0.25, 0.1]), 0.01)
    assert len(mesh) > 1000 and info["observed_voxels"] > 0
    assert np.abs(mesh.vertices[:, 2]).max() < 1e-3  # bilinear depth: well under a voxel


def test_space_no_camera_saw_stays_open():
    depth, Ks, viewmats = _plane_views(EYES)
    # The box reaches far beyond what the cameras see (about +-0.45 m at 1 m, 50 degrees).
    mesh, _ = fuse_weighted_tsdf(depth, np.ones_like(depth), Ks, viewmats, np.array([-1.5, -1.5, -0.1]), np.array([1.5, 1.5, 0.1]), 0.02)
    low, high = mesh.bounds()
    assert np.all(np.abs(low[:2]) < 0.8) and np.all(np.abs(high[:2]) < 0.8)
    # and a surface seen with less total confidence than min_weight is not extracted
    faint, _ = fuse_weighted_tsdf(depth, np.full_like(depth, 0.2), Ks, viewmats, np.array([-0.25, -0.25, -0.1]), np.array([0.25, 0.25, 0.1]), 0.01, min_weight=1.0)
    assert faint.is_empty()


def test_free_space_votes_remove_a_floater_one_view_saw():
    depth, Ks, viewmats = _plane_views(EYES + [[0.0, 0.0, 1.0]] * 4)
    # The first view also "sees" a floater patch 0.3 m above the plane, in the middle of its image;
    # the other views look through that space (their pixels see the plane behind it).
    floater = depth.copy()
    floater[0, 20:28, 20:28] -= 0.3
    box = (np.array([-0.25, -0.25, -0.1]), np.array([0.25, 0.25, 0.45]))
    mesh, _ = fuse_weighted_tsdf(floater, np.ones_like(depth), Ks, viewmats, *box, 0.01)
    assert not mesh.is_empty() and mesh.vertices[:, 2].max() < 0.05  # only the plane
    alone, _ = fuse_weighted_tsdf(floater[:1], np.ones_like(depth[:1]), Ks[:1], viewmats[:1], *box, 0.01)
    assert alone.vertices[:, 2].max() > 0.25  # the floater is there when nothing contradicts it


def test_midpoint_views_lie_between_neighbouring_capture_cameras():
    cameras = Camera.look_at(np.array([[1.0, 0.0, 0.5], [0.9, 0.3, 0.5], [-1.0, 0.0, 0.5]]), np.zeros((3, 3)), width=32, height=24)
    capture = CaptureCameras.from_camera(cameras)
    batch = capture_fusion_cameras(capture, 64)
    assert (batch.width, batch.height) == (64, 48)
    assert len(batch) == 3 + 2  # pairs (0, 1) and (1, 2) [2's nearest is 1]
    positions = (-batch.viewmat[:, :3, :3].transpose(1, 2) @ batch.viewmat[:, :3, 3:]).squeeze(-1).double().numpy()
    assert np.allclose(positions[3], [0.95, 0.15, 0.5], atol=1e-5)
    rotations = batch.viewmat[:, :3, :3].double().numpy()
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    scaled = cameras.K[0].double().numpy()
    scaled[:2] *= 2.0
    assert np.allclose(batch.K[0].double().numpy(), scaled, atol=1e-4)
    assert len(capture_fusion_cameras(capture, 64, midpoints=False)) == 3


def _box(low, high) -> Mesh:
    import trimesh

    box = trimesh.creation.box(extents=np.subtract(high, low))
    return Mesh(np.asarray(box.vertices) + (np.add(low, high) / 2), np.asarray(box.faces))


def test_mesh_report_counts_pieces_and_tells_closed_from_open():
    one = _box([0, 0, 0], [1, 1, 1])
    assert mesh_report(one) == {"faces": 12, "pieces": 1, "boundary_edges": 0, "watertight": True}
    two = Mesh.concatenate([one, _box([3, 0, 0], [4, 1, 1])])
    assert mesh_report(two)["pieces"] == 2 and mesh_report(two)["watertight"]
    open_box = Mesh(one.vertices, one.faces[2:])  # one side removed: a square hole of 4 edges
    report = mesh_report(open_box)
    assert report["boundary_edges"] == 4 and not report["watertight"]
    assert mesh_report(Mesh(np.zeros((0, 3)), np.zeros((0, 3)))) == {"faces": 0, "pieces": 0, "boundary_edges": 0, "watertight": False}


def test_capture_fusion_needs_cameras_when_asked_for():
    from lyra_sim.converters.collision import uses_capture_cameras
    from lyra_sim.converters.config import BuildConfig

    scene = random_scene(16)
    assert not uses_capture_cameras(scene, BuildConfig())
    with pytest.raises(ValueError, match="capture cameras"):
        uses_capture_cameras(scene, BuildConfig(fusion_cameras="capture"))
    scene.metadata.cameras = CaptureCameras.from_camera(Camera.look_at(np.array([[1.0, 0.0, 0.5]]), np.zeros((1, 3))))
    assert uses_capture_cameras(scene, BuildConfig()) and not uses_capture_cameras(scene, BuildConfig(fusion_cameras="virtual"))

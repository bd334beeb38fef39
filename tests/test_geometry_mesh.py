"""Mesh container, OBJ IO, clean-up, mass properties, refinement, TSDF fusion and carving."""

import numpy as np
import pytest

from lyra_sim.errors import BundleError
from lyra_sim.geometry.mesh import (
    Mesh,
    clip_below,
    decimate,
    keep_large_components,
    mass_properties,
    project_to_points,
    read_obj,
    write_obj,
)
from lyra_sim.geometry.tsdf import carve_occupancy, fuse_tsdf, incidence_cosine, occupancy_to_mesh
from lyra_sim.geometry.views import orbit_views


def _box(size=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0)) -> Mesh:
    import trimesh

    box = trimesh.creation.box(extents=size)
    box.apply_translation(offset)
    return Mesh(np.asarray(box.vertices), np.asarray(box.faces))


def _grid_plane(n: int = 40, z: float = 0.0) -> Mesh:
    xs = np.linspace(-0.5, 0.5, n)
    x, y = np.meshgrid(xs, xs)
    vertices = np.stack([x.ravel(), y.ravel(), np.full(n * n, z)], 1)
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, 1:].ravel(), index[1:, :-1].ravel()
    return Mesh(vertices, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]))


def test_obj_round_trip_keeps_groups_and_colours(tmp_path):
    box = _box()
    box.colors = np.tile([0.2, 0.4, 0.6], (len(box.vertices), 1))
    other = _box(offset=(2.0, 0.0, 0.0))
    path = write_obj(tmp_path / "parts.obj", [("first", box), ("second", other)], header="test")
    parts = read_obj(path)
    assert [name for name, _ in parts] == ["first", "second"]
    assert np.allclose(parts[0][1].vertices, box.vertices, atol=1e-6)
    assert np.array_equal(parts[0][1].faces, box.faces)
    assert parts[1][1].vertices[:, 0].min() == pytest.approx(1.5)
    assert parts[0][1].colors is None  # the second group has no colours, so the file mixes: no colours
    only_coloured = read_obj(write_obj(tmp_path / "one.obj", [("first", box)]))
    assert np.allclose(only_coloured[0][1].colors, 0.2 * np.array([1, 2, 3]), atol=1e-4)


def test_read_obj_names_the_file_on_errors(tmp_path):
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    with pytest.raises(BundleError, match="broken.obj"):
        read_obj(broken)
    with pytest.raises(BundleError, match="not found"):
        read_obj(tmp_path / "missing.obj")


def test_keep_large_components_drops_small_blobs():
    big, small = _grid_plane(30), _box((0.01, 0.01, 0.01), (3.0, 0, 0))
    cleaned = keep_large_components(Mesh.concatenate([big, small]), min_fraction=0.05)
    assert len(cleaned) == len(big)
    assert cleaned.vertices[:, 0].max() <= 0.5 + 1e-9


def test_decimate_respects_the_budget_and_keeps_the_shape():
    plane = _grid_plane(60)
    reduced = decimate(plane, 200)
    assert 0 < len(reduced) <= 200
    assert np.allclose(reduced.vertices[:, 2], 0.0, atol=1e-6)
    assert decimate(plane, 10**6) is plane


def test_clip_below_removes_and_clamps():
    box = _box(offset=(0.0, 0.0, 0.2))  # z in [-0.3, 0.7]
    clipped = clip_below(box, 0.0, tolerance=0.01)
    assert clipped.vertices[:, 2].min() >= 0.0
    below = _box(offset=(0.0, 0.0, -2.0))
    assert clip_below(Mesh.concatenate([box, below]), 0.0, 0.01).vertices[:, 2].min() >= 0.0
    assert len(clip_below(below, 0.0, 0.01)) == 0


def test_mass_properties_of_a_box_match_the_closed_form():
    size = np.array([0.2, 0.4, 0.6])
    box = _box(tuple(size), offset=(1.0, 2.0, 3.0))
    properties = mass_properties([box], mass=3.0)
    assert properties.volume == pytest.approx(np.prod(size))
    assert np.allclose(properties.center_of_mass, [1.0, 2.0, 3.0])
    expected = 3.0 / 12 * np.array([size[1] ** 2 + size[2] ** 2, size[0] ** 2 + size[2] ** 2, size[0] ** 2 + size[1] ** 2])
    assert np.allclose(np.diag(properties.inertia), expected)
    assert np.allclose(properties.inertia - np.diag(np.diag(properties.inertia)), 0.0, atol=1e-12)
    # Two half boxes give the same answer as the whole (parallel-axis theorem).
    halves = [_box((0.1, 0.4, 0.6), (0.95, 2.0, 3.0)), _box((0.1, 0.4, 0.6), (1.05, 2.0, 3.0))]
    assert np.allclose(mass_properties(halves, 3.0).inertia, properties.inertia)


def test_project_to_points_removes_an_offset_along_the_normal():
    plane = _grid_plane(20, z=0.012)
    rng = np.random.default_rng(0)
    surface_points = np.column_stack([rng.uniform(-0.6, 0.6, (20_000, 2)), np.zeros(20_000)])
    refined, shift = project_to_points(plane, surface_points, radius=0.03, max_shift=0.05)
    assert np.allclose(refined.vertices[:, 2], 0.0, atol=1e-3)
    assert np.allclose(shift, -0.012, atol=1e-3)
    limited, _ = project_to_points(plane, surface_points, radius=0.03, max_shift=0.005)
    assert np.allclose(limited.vertices[:, 2], 0.007, atol=1e-6)


def _plane_depth(cameras, half: float = 0.5) -> np.ndarray:
    """Exact camera z of the square |x|,|y| <= half on z = 0 (0 outside), pixel centres at +0.5."""
    K, V = cameras.K.double().numpy(), cameras.viewmat.double().numpy()
    depth = np.zeros((len(cameras), cameras.height, cameras.width), np.float32)
    u, v = np.meshgrid(np.arange(cameras.width) + 0.5, np.arange(cameras.height) + 0.5)
    for c in range(len(cameras)):
        to_world = V[c, :3, :3].T
        centre = -to_world @ V[c, :3, 3]
        rays = np.stack([(u - K[c, 0, 2]) / K[c, 0, 0], (v - K[c, 1, 2]) / K[c, 1, 1], np.ones_like(u)], -1) @ to_world.T
        z = -centre[2] / rays[..., 2]  # camera z of the hit, since the camera-space ray has z = 1
        hit = centre + z[..., None] * rays
        depth[c] = np.where((np.abs(hit[..., 0]) <= half) & (np.abs(hit[..., 1]) <= half) & (z > 0), z, 0.0)
    return depth


def test_tsdf_fusion_recovers_a_known_plane():
    # Guards the Open3D pin: 0.20's ScalableTSDFVolume integrates nothing.
    cameras = orbit_views(np.array([-0.5, -0.5, 0.0]), np.array([0.5, 0.5, 0.0]), (35.0, 70.0), 4, 48, 48)
    depth = _plane_depth(cameras)
    mesh = fuse_tsdf(depth, cameras.K.numpy(), cameras.viewmat.numpy(), voxel_size=0.01)
    assert len(mesh) > 5_000
    inner = np.all(np.abs(mesh.vertices[:, :2]) < 0.45, axis=1)
    assert inner.sum() > 0.7 * len(mesh.vertices)  # (0.9 / 1.0)^2 of the area
    assert np.abs(mesh.vertices[inner, 2]).mean() < 0.002
    assert np.abs(mesh.vertices[inner, 2]).max() < 0.008
    low, high = mesh.bounds()
    assert np.all(np.abs(low[:2] + 0.5) < 0.03) and np.all(np.abs(high[:2] - 0.5) < 0.03)


def test_incidence_cosine_of_a_plane_matches_the_geometry():
    cameras = orbit_views(np.array([-0.5, -0.5, 0.0]), np.array([0.5, 0.5, 0.0]), (30.0,), 1, 48, 48)
    depth = _plane_depth(cameras, half=5.0)
    cosine = incidence_cosine(depth, cameras.K.numpy())
    # At the image centre the ray hits the plane at the orbit's elevation.
    assert cosine[0, 24, 24] == pytest.approx(np.sin(np.radians(30.0)), abs=0.02)
    assert np.all(cosine[0, 0, :] == 0) and np.all(cosine[0, :, -1] == 0)  # borders have no neighbours


def test_occupancy_mesh_is_watertight_with_exact_bounds():
    occupancy = np.zeros((20, 30, 10), dtype=bool)
    occupancy[2:18, 3:27, 1:9] = True
    mesh = occupancy_to_mesh(occupancy, np.array([1.0, 2.0, 3.0]), 0.01)
    low, high = mesh.bounds()
    assert np.allclose(low, [1.02, 2.03, 3.01], atol=1e-6) and np.allclose(high, [1.18, 2.27, 3.09], atol=1e-6)
    solid = mesh.to_trimesh()
    assert solid.is_watertight
    assert solid.volume == pytest.approx(16 * 24 * 8 * 1e-6, rel=0.02)


def test_carving_recovers_a_box_from_exact_depth():
    # A 0.4 x 0.4 x 0.2 box on the floor, seen from above: depth maps by ray casting.
    import open3d as o3d

    box = _box((0.4, 0.4, 0.2), (0.0, 0.0, 0.1))
    low, high = np.array([-0.25, -0.25, 0.0]), np.array([0.25, 0.25, 0.25])
    cameras = orbit_views(low, high, (10.0, 40.0, 80.0), 6, 48, 48)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(box.vertices.astype(np.float32)), o3d.core.Tensor(box.faces.astype(np.uint32)))
    K, V = cameras.K.double().numpy(), cameras.viewmat.double().numpy()
    u, v = np.meshgrid(np.arange(48) + 0.5, np.arange(48) + 0.5)
    depth = np.zeros((len(cameras), 48, 48), np.float32)
    for c in range(len(cameras)):
        to_world = V[c, :3, :3].T
        centre = -to_world @ V[c, :3, 3]
        rays = np.stack([(u - K[c, 0, 2]) / K[c, 0, 0], (v - K[c, 1, 2]) / K[c, 1, 1], np.ones_like(u)], -1) @ to_world.T
        query = np.concatenate([np.broadcast_to(centre, rays.shape), rays], -1).reshape(-1, 6).astype(np.float32)
        hit = scene.cast_rays(o3d.core.Tensor(query))["t_hit"].numpy().reshape(48, 48)
        depth[c] = np.where(np.isfinite(hit), hit, 0.0)  # t along a ray with camera z = 1 is camera z
    alpha = (depth > 0).astype(np.float32)
    voxel = 0.01
    shape = tuple(np.ceil((high - low) / voxel).astype(int))
    occupancy = carve_occupancy(alpha, depth, K, V, low, voxel, shape)
    solid = occupancy_to_mesh(occupancy, low, voxel).to_trimesh()
    assert solid.is_watertight
    assert solid.volume == pytest.approx(0.4 * 0.4 * 0.2, rel=0.12)
    assert np.allclose(solid.bounds[1], [0.2, 0.2, 0.2], atol=0.025)

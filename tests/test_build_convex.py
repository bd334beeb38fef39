"""Convex decomposition (CoACD and PyBullet's V-HACD) and the URDF writers, on an L-shaped solid
with known volume; PyBullet must load the object as one convex shape per OBJ group."""

import numpy as np
import pytest

from lyra_sim.converters.convex import convex_decomposition, convex_hull
from lyra_sim.converters.urdf import object_urdf, static_scene_urdf
from lyra_sim.geometry.mesh import mass_properties, write_obj
from lyra_sim.geometry.tsdf import occupancy_to_mesh
from lyra_sim.rotations import quat_xyzw_to_matrix
from lyra_sim.sim.robot_splats import link_frame_poses
from lyra_sim.sim.world import reset_body_frame_pose

VOXEL = 0.01


@pytest.fixture(scope="module")
def l_shape():
    """A 30 x 10 x 10 cm bar with a 10 x 10 x 25 cm post on one end: volume 5.5e-3 m^3."""
    occupancy = np.zeros((30, 10, 35), dtype=bool)
    occupancy[:, :, :10] = True
    occupancy[20:30, :, :] = True
    return occupancy_to_mesh(occupancy, np.array([-0.15, -0.05, -0.05]), VOXEL)


@pytest.mark.parametrize("method", ["coacd", "vhacd"])
def test_decomposition_of_an_l_shape(l_shape, method):
    result = convex_decomposition(l_shape, method=method, threshold=0.05, max_hulls=8)
    assert 2 <= len(result.hulls) <= 8  # an L is not convex, and 2 hulls describe it
    assert result.mesh_volume == pytest.approx(5.5e-3, rel=0.02)
    assert result.volume_error is not None and result.volume_error < 0.15
    for hull in result.hulls:
        solid = hull.to_trimesh()
        assert solid.is_watertight and solid.is_convex
    report = result.report()
    assert report["hulls"] == len(result.hulls) and report["method"] == method
    # Hulls stay inside the L's bounding box (within a voxel).
    low, high = l_shape.bounds()
    for hull in result.hulls:
        assert np.all(hull.vertices >= low - VOXEL) and np.all(hull.vertices <= high + VOXEL)


@pytest.mark.parametrize("method", ["coacd", "vhacd"])
def test_max_hulls_is_respected(l_shape, method):
    single = convex_decomposition(l_shape, method=method, max_hulls=1)
    assert len(single.hulls) == 1
    assert single.hull_volume > single.mesh_volume  # one hull must cover the whole L


def test_bad_method_and_empty_mesh():
    with pytest.raises(ValueError, match="method"):
        convex_decomposition(convex_hull(np.eye(3).tolist() + [[0, 0, 0]]), method="magic")
    from lyra_sim.geometry.mesh import Mesh

    with pytest.raises(ValueError, match="empty"):
        convex_decomposition(Mesh(np.zeros((0, 3)), np.zeros((0, 3))))


def test_pybullet_loads_hulls_as_a_compound_with_our_inertia(l_shape, tmp_path):
    import pybullet as p

    hulls = convex_decomposition(l_shape, method="coacd", max_hulls=8).hulls
    properties = mass_properties(hulls, mass=2.0)
    body_hulls = [hull.translated(-properties.center_of_mass) for hull in hulls]
    (tmp_path / "meshes").mkdir()
    (tmp_path / "objects").mkdir()
    write_obj(tmp_path / "meshes" / "l_collision.obj", [(f"hull{k}", hull) for k, hull in enumerate(body_hulls)])
    (tmp_path / "objects" / "l.urdf").write_text(object_urdf("l", "../meshes/l_collision.obj", 2.0, properties.inertia))
    write_obj(tmp_path / "meshes" / "ground.obj", [("ground", convex_hull(np.array([[-1, -1, -0.1], [1, -1, -0.1], [1, 1, -0.1], [-1, 1, -0.1], [-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0.0]])))])
    (tmp_path / "scene.urdf").write_text(static_scene_urdf("scene", "meshes/ground.obj", None, slab=(np.array([0, 0, -0.5]), np.array([4.0, 4.0, 0.2]))))
    client = p.connect(p.DIRECT)
    try:
        p.setGravity(0, 0, -9.81, physicsClientId=client)
        scene = p.loadURDF(str(tmp_path / "scene.urdf"), useFixedBase=True, physicsClientId=client)
        body = p.loadURDF(str(tmp_path / "objects" / "l.urdf"), basePosition=[0, 0, 0.3], flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)
        assert scene >= 0 and body >= 0
        # One URDF collision element; PyBullet builds a compound of one hull per OBJ group.
        assert len(p.getCollisionShapeData(body, -1, physicsClientId=client)) == 1
        assert len(p.getCollisionShapeData(scene, -1, physicsClientId=client)) == 2  # mesh + slab
        info = p.getDynamicsInfo(body, -1, physicsClientId=client)
        assert info[0] == pytest.approx(2.0)
        # The full tensor: PyBullet diagonalises it, so its inertial frame is turned to the principal
        # axes, and diag(moments) in that frame is our tensor again.
        rotation = quat_xyzw_to_matrix(info[4])
        np.testing.assert_allclose(rotation @ np.diag(info[2]) @ rotation.T, properties.inertia, rtol=1e-4, atol=1e-9)
        # The body (link) frame is still where loadURDF put it, and reset_body_frame_pose keeps it.
        positions, orientations = link_frame_poses(client, body, [-1])
        np.testing.assert_allclose(positions[0], [0, 0, 0.3], atol=1e-9)
        np.testing.assert_allclose(np.abs(orientations[0]), [0, 0, 0, 1], atol=1e-9)
        reset_body_frame_pose(client, body, [0.1, 0.0, 0.3], [0, 0, np.sin(0.3), np.cos(0.3)])
        positions, orientations = link_frame_poses(client, body, [-1])
        np.testing.assert_allclose(positions[0], [0.1, 0, 0.3], atol=1e-9)
        np.testing.assert_allclose(orientations[0] * np.sign(orientations[0][3]), [0, 0, np.sin(0.3), np.cos(0.3)], atol=1e-9)
        reset_body_frame_pose(client, body, [0, 0, 0.3], [0, 0, 0, 1])
        # A compound, not one hull of all vertices: a ray cast down into the L's inner corner
        # hits the bar (top at z = 0.05 in the L's frame), not a slanted face of one big hull.
        centre = properties.center_of_mass
        fixed = p.loadURDF(str(tmp_path / "objects" / "l.urdf"), basePosition=[2, 0, 1], useFixedBase=True, physicsClientId=client)
        x, y = 2 - 0.1 - centre[0], -centre[1]
        hit = p.rayTest([x, y, 2.0], [x, y, 0.5], physicsClientId=client)[0]
        assert hit[0] == fixed and hit[3][2] == pytest.approx(1 + 0.05 - centre[2], abs=0.01)
        for _ in range(480):
            p.stepSimulation(physicsClientId=client)
        assert fixed >= 0
        position, _ = p.getBasePositionAndOrientation(body, physicsClientId=client)
        # The bar's bottom (z = -0.05 in the L's original frame) rests on the ground at z = 0.
        bottom = position[2] - properties.center_of_mass[2] + (-0.05)
        assert abs(bottom) < 0.01
    finally:
        p.disconnect(client)

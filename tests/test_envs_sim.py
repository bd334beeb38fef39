"""Unit tests of the simulation side of the envs: composed splat scenes, robot link splats, the
TinyRenderer depth compositor. No bundle needed; everything is built in code."""

from __future__ import annotations

import numpy as np
import pybullet
import pybullet_data
import pytest
import torch

from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.transforms import transform_scene
from lyra_sim.sim.compositor import ComposedScene, RigidPart, composite_by_depth, tinyrenderer_images
from lyra_sim.sim.robot_splats import body_link_splats, link_frame_poses


def _random_scene(count: int, sh_degree: int, seed: int) -> GaussianScene:
    generator = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return GaussianScene(
        torch.randn(count, 3, generator=generator),
        torch.randn(count, 4, generator=generator),
        torch.randn(count, 3, generator=generator) - 3,
        torch.randn(count, generator=generator),
        torch.randn(count, k, 3, generator=generator),
    )


@pytest.fixture
def client():
    client_id = pybullet.connect(pybullet.DIRECT)
    yield client_id
    pybullet.disconnect(client_id)


def test_composed_scene_matches_transform_scene_for_each_part():
    static = _random_scene(50, 1, seed=0)
    parts = [RigidPart("a", _random_scene(30, 0, seed=1), 1), RigidPart("b", _random_scene(20, 2, seed=2), 2)]
    composed = ComposedScene(static, parts)
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(2, 3))
    orientations = rng.normal(size=(2, 4))
    orientations /= np.linalg.norm(orientations, axis=1, keepdims=True)
    composed.set_poses(positions, orientations)
    scene = composed.scene
    torch.testing.assert_close(scene.means[:50], static.means)  # the static part never moves
    assert composed.labels.tolist() == [0] * 50 + [1] * 30 + [2] * 20
    for index, part in enumerate(parts):
        rotation = np.asarray(pybullet.getMatrixFromQuaternion(orientations[index].tolist())).reshape(3, 3)
        expected = transform_scene(part.local, rotation, positions[index])
        got = scene[composed.part_slices[index]]
        torch.testing.assert_close(got.means, expected.means, atol=1e-5, rtol=1e-5)
        # Quaternions are compared as rotations (q and -q are the same rotation).
        torch.testing.assert_close(got.rotation_matrices(), expected.rotation_matrices(), atol=1e-5, rtol=1e-5)
        k = part.local.sh.shape[1]
        torch.testing.assert_close(got.sh[:, :k], expected.sh, atol=1e-4, rtol=1e-4)


def test_composed_scene_rejects_wrong_pose_shapes_and_hides_parts():
    composed = ComposedScene(None, [RigidPart("a", _random_scene(10, 0, seed=3), 1)])
    with pytest.raises(ValueError, match=r"positions \[1, 3\]"):
        composed.set_poses(np.zeros((2, 3)), np.zeros((2, 4)))
    before = composed.scene.opacities().clone()
    composed.set_visible(0, False)
    assert float(composed.scene.opacities().max()) < 1e-10
    composed.set_visible(0, True)
    torch.testing.assert_close(composed.scene.opacities(), before)
    with pytest.raises(ValueError, match="non-empty static scene"):
        ComposedScene(None, [])


def test_composite_by_depth_keeps_the_nearer_surface():
    splat_rgb = torch.zeros(2, 2, 3)
    splat_depth = torch.tensor([[[1.0], [1.0]], [[0.0], [3.0]]])
    splat_alpha = torch.tensor([[[1.0], [1.0]], [[0.0], [0.3]]])
    mesh_rgb = torch.ones(2, 2, 3)
    mesh_depth = torch.tensor([[[0.5], [2.0]], [[2.0], [4.0]]])
    mesh_mask = torch.tensor([[[True], [True]], [[True], [False]]])
    rgb, depth, wins = composite_by_depth(splat_rgb, splat_depth, splat_alpha, mesh_rgb, mesh_depth, mesh_mask)
    # nearer mesh wins; farther mesh loses; empty splat pixel shows the mesh; no mesh keeps the splat.
    assert wins[..., 0].tolist() == [[True, False], [True, False]]
    assert depth[..., 0].tolist() == [[0.5, 1.0], [2.0, 3.0]]
    assert rgb[0, 0].tolist() == [1.0, 1.0, 1.0] and rgb[0, 1].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="matching shapes"):
        composite_by_depth(splat_rgb, splat_depth, splat_alpha, mesh_rgb[:1], mesh_depth, mesh_mask)


def test_box_link_splats_lie_on_the_box_surface_in_the_link_frame(client):
    half = np.array([0.1, 0.05, 0.2])
    visual = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=half.tolist(), rgbaColor=[1, 0, 0, 1],
                                        visualFramePosition=[0.0, 0.0, 0.1], physicsClientId=client)
    body = pybullet.createMultiBody(1.0, -1, visual, basePosition=[1, 2, 3], baseInertialFramePosition=[0.05, 0, 0], physicsClientId=client)
    (link,) = body_link_splats(client, body, spacing=0.01)
    means = link.scene.means.numpy() - np.array([0.0, 0.0, 0.1])
    # Every mean is on a face: its largest coordinate ratio to the half extent is 1.
    assert np.allclose(np.abs(means / half).max(axis=1), 1.0, atol=1e-4)
    area = 8 * (half[0] * half[1] + half[1] * half[2] + half[0] * half[2])
    assert abs(len(link.scene) - area / 0.01**2) < 0.05 * area / 0.01**2
    assert np.allclose(link.scene.colors().numpy(), [1.0, 0.0, 0.0], atol=0.01)
    # The URDF link frame of the base is where the body was placed, not its centre of mass.
    positions, orientations = link_frame_poses(client, body, [-1])
    np.testing.assert_allclose(positions[0], [1, 2, 3], atol=1e-9)
    np.testing.assert_allclose(orientations[0], [0, 0, 0, 1], atol=1e-9)


def test_kuka_link_splats_cover_the_tinyrenderer_silhouette(client):
    """Link Gaussians moved with link_frame_poses land where TinyRenderer draws the arm."""
    robot = pybullet.loadURDF(f"{pybullet_data.getDataPath()}/kuka_iiwa/model.urdf", [0.1, 0.2, 0.3], useFixedBase=True, physicsClientId=client)
    for joint in range(7):
        pybullet.resetJointState(robot, joint, 0.5 * (-1) ** joint + 0.3, physicsClientId=client)
    links = body_link_splats(client, robot, spacing=0.01)
    composed = ComposedScene(None, [RigidPart(str(link.link_index), link.scene, 1) for link in links])
    composed.set_poses(*link_frame_poses(client, robot, [link.link_index for link in links]))
    camera = Camera.look_at([1.6, 1.2, 1.2], [0.1, 0.2, 0.7], width=64, height=64, near=0.05, far=10.0)
    mesh_mask = tinyrenderer_images(client, camera)["segmentation"] == robot
    means = composed.scene.means
    view = camera.viewmat[0]
    in_camera = means @ view[:3, :3].T + view[:3, 3]
    pixels = (in_camera @ camera.K[0].T)[:, :2] / in_camera[:, 2:]
    u, v = pixels[:, 0].long().clamp(0, 63), pixels[:, 1].long().clamp(0, 63)
    splat_mask = np.zeros((64, 64), dtype=bool)
    splat_mask[v.numpy(), u.numpy()] = True
    # TinyRenderer marks a silhouette pixel only when its centre is covered, so Gaussians on the
    # rim may land one pixel outside its mask: compare against the mask grown by one pixel.
    from scipy import ndimage

    assert ndimage.binary_dilation(mesh_mask)[splat_mask].mean() > 0.95  # the Gaussians fall on the arm
    assert splat_mask[mesh_mask].mean() > 0.95  # and cover all of it

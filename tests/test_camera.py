"""Camera: look-at, intrinsics, batching, PyBullet conversion (checked against PyBullet itself), trajectories."""

from __future__ import annotations

import math

import numpy as np
import pybullet
import pytest
import torch

from lyra_sim.render.camera import Camera, intrinsics_from_fov, orbit_cameras, path_cameras


def project(cam: Camera, points: torch.Tensor) -> torch.Tensor:  # [C, P, 2]
    """Pixel coordinates (continuous, pixel centres at +0.5) of world points in every camera."""
    homogeneous = torch.cat([points, torch.ones(len(points), 1)], -1)
    p_cam = (cam.viewmat @ homogeneous.T).transpose(1, 2)[..., :3]
    uvw = p_cam @ cam.K.transpose(1, 2)
    return uvw[..., :2] / uvw[..., 2:]


def test_intrinsics_from_fov_is_vertical_fov_with_centred_principal_point():
    K = intrinsics_from_fov(90.0, 64, 32)
    assert torch.allclose(K, torch.tensor([[16.0, 0, 32], [0, 16.0, 16], [0, 0, 1]]), atol=1e-5)
    with pytest.raises(ValueError, match="fov_deg"):
        intrinsics_from_fov(180.0, 8, 8)


def test_look_at_puts_target_at_centre_and_up_at_the_top():
    cam = Camera.look_at([3.0, -2.0, 1.5], [0.5, 0.2, 0.3], up=(0, 0, 1), width=64, height=48)
    uv = project(cam, torch.tensor([[0.5, 0.2, 0.3], [0.5, 0.2, 0.8]]))[0]
    assert torch.allclose(uv[0], torch.tensor([32.0, 24.0]), atol=1e-4)
    assert uv[1, 1] < uv[0, 1] - 1.0  # a point above the target is higher in the image (smaller row)
    assert torch.allclose(cam.position[0], torch.tensor([3.0, -2.0, 1.5]), atol=1e-5)
    rotation = cam.viewmat[0, :3, :3]
    assert torch.allclose(rotation @ rotation.T, torch.eye(3), atol=1e-6)
    assert torch.det(rotation) > 0


def test_look_at_straight_down_along_up_still_gives_a_rotation():
    cam = Camera.look_at([0.0, 0.0, 5.0], [0.0, 0.0, 0.0], up=(0, 0, 1))
    rotation = cam.viewmat[0, :3, :3]
    assert torch.allclose(rotation @ rotation.T, torch.eye(3), atol=1e-6)
    assert torch.allclose(rotation[2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)
    with pytest.raises(ValueError, match="coincide"):
        Camera.look_at([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])


def test_batching_indexing_and_stack():
    eyes = torch.tensor([[2.0, 0, 1], [0, 2.0, 1], [-2.0, 0, 1]])
    cams = Camera.look_at(eyes, [0.0, 0.0, 0.0], width=40, height=30)
    assert len(cams) == 3 and cams.K.shape == (3, 3, 3) and cams.viewmat.shape == (3, 4, 4)
    assert torch.allclose(cams.position, eyes, atol=1e-5)
    one = cams[1]
    assert len(one) == 1 and torch.allclose(one.position[0], eyes[1], atol=1e-5)
    assert torch.allclose(cams[-1].viewmat, cams.viewmat[2:])
    assert torch.equal(cams[np.int64(1)].viewmat, one.viewmat) and len(cams[torch.tensor([0, 2])]) == 2
    restacked = Camera.stack([cams[2], cams[0]])
    assert torch.allclose(restacked.viewmat, cams.viewmat[[2, 0]])
    with pytest.raises(ValueError, match="image size"):
        Camera.stack([cams[0], Camera.look_at([1.0, 0, 0], [0.0, 0, 0], width=8, height=8)])
    with pytest.raises(IndexError):
        cams[3]
    # A shared K broadcasts over a batch of view matrices.
    shared = Camera(intrinsics_from_fov(60, 40, 30), cams.viewmat, 40, 30)
    assert shared.K.shape == (3, 3, 3)


def test_constructor_reports_bad_shapes_with_the_actual_shape():
    with pytest.raises(ValueError, match=r"\[2, 3\]"):
        Camera(torch.eye(3)[:2], torch.eye(4), 8, 8)
    with pytest.raises(ValueError, match=r"\[4, 3\]"):
        Camera(torch.eye(3), torch.eye(4)[:, :3], 8, 8)
    with pytest.raises(ValueError, match="camera count"):
        Camera(torch.eye(3).repeat(2, 1, 1), torch.eye(4).repeat(3, 1, 1), 8, 8)
    with pytest.raises(ValueError, match="near"):
        Camera(torch.eye(3), torch.eye(4), 8, 8, near=1.0, far=0.5)
    with pytest.raises(ValueError, match="eye"):
        Camera.look_at([1.0, 2.0], [0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    "eye, target, up, fov, size",
    [
        ([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [0, 0, 1], 60.0, (96, 64)),
        ([-0.5, 4.0, 0.7], [0.3, -0.2, 0.4], [0, 0, 1], 45.0, (32, 80)),
        ([2.0, 0.1, -1.0], [0.0, 0.5, 0.0], [0, 1, 0], 75.0, (64, 64)),
    ],
)
def test_to_pybullet_matches_pybullet_matrices(eye, target, up, fov, size):
    width, height = size
    cam = Camera.look_at(eye, target, up, fov, width, height, near=0.05, far=50.0)
    view, projection = cam.to_pybullet()
    expected_view = pybullet.computeViewMatrix(eye, target, up)
    expected_projection = pybullet.computeProjectionMatrixFOV(fov, width / height, 0.05, 50.0)
    np.testing.assert_allclose(view, expected_view, atol=1e-5)
    np.testing.assert_allclose(projection, expected_projection, atol=1e-5)
    back = Camera.from_pybullet(expected_view, expected_projection, width, height)
    assert torch.allclose(back.K, cam.K, atol=1e-3)
    assert torch.allclose(back.viewmat, cam.viewmat, atol=1e-5)
    assert back.near == pytest.approx(0.05, rel=1e-4) and back.far == pytest.approx(50.0, rel=1e-3)


def test_from_pybullet_projects_like_the_opengl_pipeline_with_an_off_centre_frustum():
    width, height, near, far = 80, 60, 0.1, 20.0
    # An asymmetric frustum: the principal point is off centre.
    projection = pybullet.computeProjectionMatrix(-0.06, 0.1, -0.05, 0.07, near, far)
    view = pybullet.computeViewMatrix([1.0, -3.0, 2.0], [0.2, 0.1, 0.3], [0, 0, 1])
    cam = Camera.from_pybullet(view, projection, width, height)
    points = torch.tensor([[0.2, 0.1, 0.3], [0.5, 0.0, 0.6], [-0.3, 0.4, 0.1]])
    view_np = np.asarray(view).reshape(4, 4).T
    proj_np = np.asarray(projection).reshape(4, 4).T
    clip = (proj_np @ view_np @ np.c_[points.numpy(), np.ones(3)].T).T
    ndc = clip[:, :3] / clip[:, 3:]
    expected = np.stack([(ndc[:, 0] + 1) / 2 * width, (1 - ndc[:, 1]) / 2 * height], -1)  # rows from the top
    np.testing.assert_allclose(project(cam, points)[0].numpy(), expected, atol=1e-3)
    view_back, projection_back = cam.to_pybullet()
    np.testing.assert_allclose(view_back, view, atol=1e-5)
    np.testing.assert_allclose(projection_back, projection, atol=1e-5)


def test_pybullet_renders_a_sphere_where_the_camera_projects_it():
    """The conversion holds for real images: PyBullet's TinyRenderer puts a sphere at our pixel."""
    client = pybullet.connect(pybullet.DIRECT)
    try:
        centre = [0.3, -0.2, 0.5]
        shape = pybullet.createVisualShape(pybullet.GEOM_SPHERE, radius=0.08, rgbaColor=[1, 0, 0, 1], physicsClientId=client)
        pybullet.createMultiBody(0, -1, shape, basePosition=centre, physicsClientId=client)
        cam = Camera.look_at([2.0, 1.0, 1.2], [0.0, 0.0, 0.3], fov_deg=50.0, width=64, height=48, near=0.1, far=10.0)
        view, projection = cam.to_pybullet()
        _, _, rgba, _, _ = pybullet.getCameraImage(
            64, 48, view, projection, renderer=pybullet.ER_TINY_RENDERER, physicsClientId=client
        )
    finally:
        pybullet.disconnect(client)
    rgba = np.reshape(np.asarray(rgba, dtype=np.uint8), (48, 64, 4))
    red = (rgba[..., 0] > 150) & (rgba[..., 1] < 80) & (rgba[..., 2] < 80)
    assert red.sum() > 4
    rows, cols = np.nonzero(red)
    observed = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
    expected = project(cam, torch.tensor([centre]))[0, 0].numpy()
    assert np.abs(observed - expected).max() < 1.0


def test_orbit_cameras_circle_the_centre_at_radius_and_height():
    center = torch.tensor([1.0, 2.0, 0.5])
    cams = orbit_cameras(center, radius=3.0, height=1.0, n=8, width=32, image_height=24)
    assert len(cams) == 8 and (cams.width, cams.height) == (32, 24)
    offsets = cams.position - center
    assert torch.allclose(offsets[:, 2], torch.ones(8), atol=1e-5)
    assert torch.allclose(offsets[:, :2].norm(dim=-1), torch.full((8,), 3.0), atol=1e-5)
    assert torch.allclose(offsets[0], torch.tensor([3.0, 0.0, 1.0]), atol=1e-5)  # angle 0 on +X
    angles = torch.atan2(offsets[:, 1], offsets[:, 0])
    steps = torch.remainder(torch.diff(angles), 2 * math.pi)
    assert torch.allclose(steps, torch.full((7,), math.pi / 4), atol=1e-5)  # counter-clockwise
    assert torch.allclose(project(cams, center[None])[:, 0], torch.tensor([16.0, 12.0]).expand(8, 2), atol=1e-3)


def test_orbit_cameras_about_another_up_axis():
    cams = orbit_cameras([0.0, 0.0, 0.0], radius=2.0, height=0.5, n=5, up=(0, -1, 0))
    assert torch.allclose(cams.position @ torch.tensor([0.0, -1.0, 0.0]), torch.full((5,), 0.5), atol=1e-5)
    top = project(cams, torch.tensor([[0.0, -1.0, 0.0]]))[:, 0, 1]
    assert bool((top < 64).all())  # "up" (-Y) appears above the image centre in every view


def test_path_cameras_look_along_the_path_or_at_targets():
    points = torch.tensor([[0.0, 0, 1], [1.0, 0, 1], [2.0, 0.5, 1]])
    cams = path_cameras(points, width=32, height=32)
    forward = cams.viewmat[:, 2, :3]
    assert torch.allclose(forward[0], torch.tensor([1.0, 0, 0]), atol=1e-6)
    assert torch.allclose(forward[2], forward[1], atol=1e-6)
    looking = path_cameras(points, targets=[0.0, 5.0, 0.0], width=32, height=32)
    uv = project(looking, torch.tensor([[0.0, 5.0, 0.0]]))[:, 0]
    assert torch.allclose(uv, torch.full((3, 2), 16.0), atol=1e-3)
    with pytest.raises(ValueError, match="targets"):
        path_cameras(points, targets=torch.zeros(2, 3))


def test_with_size_keeps_the_field_of_view():
    cam = Camera.look_at([2.0, 0, 0], [0.0, 0, 0], fov_deg=70.0, width=64, height=48)
    small = cam.with_size(32, 24)
    assert torch.allclose(small.fov_deg, torch.tensor([70.0]), atol=1e-4)
    assert torch.allclose(small.K[0, :2, 2], torch.tensor([16.0, 12.0]))

"""Lyra trajectories and Plücker ray maps: poses, focus tracking, ray geometry."""

import math

import pytest
import torch

from lyra_sim.generate.plucker import block_centres, pixel_rays, plucker_rays
from lyra_sim.generate.trajectories import DEFAULT_TRAJECTORIES, lyra_trajectories, relative_poses, stack_trajectories

K = torch.tensor([[40.0, 0.0, 16.0], [0.0, 40.0, 16.0], [0.0, 0.0, 1.0]])


def _random_viewmat(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    viewmat = torch.eye(4)
    viewmat[:3, :3] = q
    viewmat[:3, 3] = torch.randn(3, generator=g)
    return viewmat


def test_six_trajectories_start_at_the_input_view():
    input_viewmat = _random_viewmat(0)
    trajectories = lyra_trajectories(input_viewmat, K, 32, 32, num_frames=9, focus_depth=2.0)
    assert [t.name for t in trajectories] == list(DEFAULT_TRAJECTORIES)
    viewmats, Ks = stack_trajectories(trajectories)
    assert viewmats.shape == (6, 9, 4, 4) and Ks.shape == (6, 9, 3, 3)
    torch.testing.assert_close(viewmats[:, 0], input_viewmat.expand(6, 4, 4), atol=1e-5, rtol=0)
    rotations = viewmats[..., :3, :3]
    torch.testing.assert_close(rotations @ rotations.transpose(-1, -2), torch.eye(3).expand(6, 9, 3, 3), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kind, axis, sign",
    [("orbit_left", 0, -1), ("orbit_right", 0, 1), ("up", 1, -1), ("down", 1, 1), ("forward", 2, 1), ("backward", 2, -1)],
)
def test_trajectory_directions_in_opencv_axes(kind, axis, sign):
    poses = relative_poses(kind, 5, focus_depth=2.0, orbit_degrees=40.0, dolly_fraction=0.5)
    centre = poses[-1, :3, 3]
    assert sign * centre[axis] > 0.1  # the camera moved the named way (OpenCV: x right, y down, z forward)
    if kind.startswith("orbit") or kind in ("up", "down"):
        # Orbits keep the focus point (0, 0, 2) on the optical axis at the same distance.
        focus = torch.tensor([0.0, 0.0, 2.0])
        axis_direction = poses[-1, :3, 2]
        torch.testing.assert_close(axis_direction, (focus - centre) / (focus - centre).norm(), atol=1e-5, rtol=0)
        assert (focus - centre).norm().item() == pytest.approx(2.0, abs=1e-5)
        cos_angle = float(poses[-1, :3, 2] @ torch.tensor([0.0, 0.0, 1.0]))
        assert math.degrees(math.acos(min(1.0, cos_angle))) == pytest.approx(40.0, abs=1e-3)
    else:
        assert centre[axis].abs().item() == pytest.approx(1.0, abs=1e-6)


def test_trajectory_argument_errors():
    with pytest.raises(ValueError, match="trajectory kind"):
        relative_poses("sideways", 5)
    with pytest.raises(ValueError, match="dolly_fraction"):
        relative_poses("forward", 5, dolly_fraction=1.0)
    with pytest.raises(ValueError, match=r"\[4, 4\]"):
        lyra_trajectories(torch.eye(3), K, 32, 32, 5)


def test_pixel_rays_hit_their_pixels():
    viewmats = torch.stack([_random_viewmat(1), _random_viewmat(2)])
    Ks = K.expand(2, 3, 3)
    u, v = block_centres(32, 24, 8)
    assert u.shape == (3, 4) and float(u[0, 0]) == 4.0 and float(v[-1, 0]) == 20.0
    origins, directions = pixel_rays(viewmats, Ks, u, v)
    points = origins[:, None, None] + 3.0 * directions  # depth 3 along every ray
    camera = (viewmats[:, None, None, :3, :3] @ points[..., None]).squeeze(-1) + viewmats[:, None, None, :3, 3]
    torch.testing.assert_close(camera[..., 2], torch.full((2, 3, 4), 3.0), atol=1e-4, rtol=0)
    projected_u = 40.0 * camera[..., 0] / camera[..., 2] + 16.0
    torch.testing.assert_close(projected_u, u.expand(2, 3, 4), atol=1e-3, rtol=0)


def test_plucker_rays_are_lines():
    viewmats = torch.stack([_random_viewmat(3), _random_viewmat(4)])
    plucker = plucker_rays(viewmats, K.expand(2, 3, 3), 32, 32, stride=8)
    assert plucker.shape == (2, 6, 4, 4)
    directions, moments = plucker[:, :3], plucker[:, 3:]
    torch.testing.assert_close(directions.norm(dim=1), torch.ones(2, 4, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close((directions * moments).sum(dim=1), torch.zeros(2, 4, 4), atol=1e-5, rtol=0)
    # Moving a camera along its own optical axis keeps the central ray's line, so its Plücker
    # coordinates stay the same although the origin changed.
    moved = viewmats.clone()
    moved[:, 2, 3] -= 0.7
    centre_k = torch.tensor([[40.0, 0.0, 16.0], [0.0, 40.0, 16.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    a = plucker_rays(viewmats, centre_k, 32, 32, stride=32)
    b = plucker_rays(moved, centre_k, 32, 32, stride=32)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="multiple of the ray stride"):
        plucker_rays(viewmats, K.expand(2, 3, 3), 30, 32, stride=8)

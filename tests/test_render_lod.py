"""Level-of-detail decimation: fewer Gaussians, moments kept, PSNR loss bounded."""

from __future__ import annotations

import math

import pytest
import torch

from lyra_sim.render.camera import orbit_cameras
from lyra_sim.render.lod import decimate_for_resolution, measure_decimation, pixel_size_beyond, psnr, world_pixel_size
from lyra_sim.scene.gaussian_scene import GaussianScene, matrix_to_quat, quat_to_matrix


def textured_sphere(n: int, radius: float = 1.0, seed: int = 0) -> GaussianScene:
    """Flat Gaussians tangent to a sphere, coloured by a smooth pattern (a surface, not noise)."""
    g = torch.Generator().manual_seed(seed)
    normal = torch.randn(n, 3, generator=g)
    normal = normal / normal.norm(dim=1, keepdim=True)
    color = 0.5 + 0.4 * torch.stack([torch.sin(3 * normal[:, 0]), torch.cos(2 * normal[:, 1]), torch.sin(4 * normal[:, 2])], -1)
    tangent = torch.linalg.cross(normal, torch.tensor([0.0, 0.0, 1.0]).expand(n, 3))
    tangent = tangent / tangent.norm(dim=1, keepdim=True).clamp_min(1e-6)
    frame = torch.stack([tangent, torch.linalg.cross(normal, tangent), normal], -1)
    scales = torch.tensor([0.012, 0.012, 0.002]) * radius
    return GaussianScene.from_activated(normal * radius, color, torch.full((n,), 0.8), scales.expand(n, 3), matrix_to_quat(frame))


def test_decimation_of_a_distant_surface_keeps_the_image():
    scene = textured_sphere(12000)
    cams = orbit_cameras([0.0, 0.0, 0.0], 6.0, 1.0, 3, fov_deg=40.0, width=32, image_height=32)
    decimated = decimate_for_resolution(scene, cams, voxel_pixels=0.5)
    report = measure_decimation(scene, decimated, cams, backend="cpu")
    assert report["gaussians_decimated"] < 0.4 * report["gaussians_full"]
    assert report["psnr_db"] > 25.0, report
    coarser = decimate_for_resolution(scene, cams, voxel_pixels=2.0)
    assert len(coarser) < len(decimated)  # bigger cells merge more


def test_large_gaussians_are_kept_verbatim_and_near_ones_stay():
    big = GaussianScene.from_activated(torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]), torch.rand(2, 3),
                                       torch.tensor([0.5, 0.9]), torch.full((2, 3), 0.3))
    scene = GaussianScene.concat([big, textured_sphere(3000, radius=0.2)])
    decimated = decimate_for_resolution(scene, pixel_size=0.05)
    assert len(decimated) < len(scene)
    assert torch.equal(decimated.means[:2], big.means) and torch.equal(decimated.sh[:2], big.sh)
    # At a pixel as small as the Gaussians themselves nothing is a merge candidate.
    assert len(decimate_for_resolution(scene, pixel_size=1e-4)) == len(scene)


def test_merge_is_moment_matched():
    """Two tiny Gaussians in one cell merge into their coverage-weighted mean and second moment."""
    means = torch.tensor([[0.10, 0.20, 0.30], [0.12, 0.21, 0.30]])
    rotation = quat_to_matrix(torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, -0.1, 0.3], [1.0, -0.4, 0.1, 0.0]]), dim=-1))
    scales = torch.tensor([[0.002, 0.001, 0.0015], [0.001, 0.001, 0.001]])
    scene = GaussianScene.from_activated(means, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([0.6, 0.6]), scales,
                                         matrix_to_quat(rotation))
    merged = decimate_for_resolution(scene, pixel_size=0.05, voxel_pixels=4.0, spread_gain=1.0)
    assert len(merged) == 1
    # Equal opacity and nearly equal (dilation-dominated) footprints: weights close to 1/2 each.
    mean = merged.means[0]
    assert torch.allclose(mean, means.mean(0), atol=2e-4)
    covariance = rotation @ torch.diag_embed(scales**2) @ rotation.transpose(-1, -2)
    offsets = means - mean
    expected = (covariance + offsets[:, :, None] * offsets[:, None, :]).mean(0)
    actual = merged.rotation_matrices()[0] @ torch.diag(merged.scales()[0] ** 2) @ merged.rotation_matrices()[0].T
    assert torch.allclose(actual, expected, atol=1e-6, rtol=2e-2)
    assert torch.allclose(merged.colors()[0], torch.tensor([0.5, 0.0, 0.5]), atol=0.02)
    # Two translucent members over the merged footprint: more opaque than either, below the cap.
    assert 0.6 < float(merged.opacities()[0]) <= 0.99


def test_world_pixel_size_uses_the_nearest_camera_and_ignores_unseen():
    cams = orbit_cameras([0.0, 0.0, 0.0], 4.0, 0.0, 2, fov_deg=60.0, width=64, image_height=64)
    scene = GaussianScene.from_activated(torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), torch.rand(2, 3),
                                         torch.full((2,), 0.5), torch.full((2, 3), 0.01))
    pixel = world_pixel_size(scene, cams)
    focal = float(cams.K[0, 0, 0])
    assert pixel[0] == pytest.approx(4.0 / focal, rel=1e-5)
    assert pixel[1] == pytest.approx(2.0 / focal, rel=1e-5)  # the camera at +X sees it from 2 m
    behind = GaussianScene.from_activated(torch.tensor([[10.0, 0.0, 0.0]]), torch.rand(1, 3), torch.full((1,), 0.5), torch.full((1, 3), 1e-4))
    one_camera = orbit_cameras([0.0, 0.0, 0.0], 4.0, 0.0, 1, fov_deg=60.0)  # at +X looking towards -X
    assert torch.isinf(world_pixel_size(behind, one_camera)).all()
    # Gaussians no camera sees are never merged, however small.
    pair = GaussianScene.concat([behind, behind._replace(means=torch.tensor([[10.0, 1e-4, 0.0]]))])
    assert len(decimate_for_resolution(pair, one_camera)) == 2


def test_decimation_validates_arguments_and_psnr():
    scene = textured_sphere(100)
    with pytest.raises(ValueError, match="exactly one"):
        decimate_for_resolution(scene)
    with pytest.raises(ValueError, match="pixel_size"):
        decimate_for_resolution(scene, pixel_size=-1.0)
    assert len(decimate_for_resolution(GaussianScene.empty(), pixel_size=0.1)) == 0
    image = torch.rand(1, 4, 4, 3)
    assert psnr(image, image) == float("inf")
    assert psnr(torch.zeros(1, 2, 2, 3), torch.full((1, 2, 2, 3), 0.1)) == pytest.approx(20.0)


def test_pixel_size_beyond_is_a_lower_bound_over_cameras_at_that_distance():
    scene = textured_sphere(2000, radius=0.5)
    focal = 16.0 / math.tan(math.radians(20.0))  # 32 px, 40 degrees
    pixel = pixel_size_beyond(scene, [0.0, 0.0, 0.0], 4.0, focal, fov_deg=40.0)
    half_diagonal = math.atan(math.tan(math.radians(20.0)) * 2**0.5)
    expected = (4.0 - scene.means.norm(dim=1)) * math.cos(half_diagonal) / focal
    assert torch.allclose(pixel, expected, rtol=1e-5)
    # every camera at distance >= 4 sees each Gaussian at least that coarse
    for radius in (4.0, 7.0):
        cams = orbit_cameras([0.0, 0.0, 0.0], radius * 0.8, radius * 0.6, 4, fov_deg=40.0, width=32, image_height=32)
        assert bool((world_pixel_size(scene, cams) >= pixel - 1e-7).all())
        assert float((world_pixel_size(scene, cams) / pixel).min()) < 1.3 * radius / 4.0  # and not loose
    near_and_far = GaussianScene.concat([scene, GaussianScene.from_activated(torch.tensor([[5.0, 0.0, 0.0]]), torch.rand(1, 3),
                                                                             torch.tensor([0.5]), torch.full((1, 3), 1e-4))])
    assert float(pixel_size_beyond(near_and_far, [0.0, 0.0, 0.0], 4.0, 32.0)[-1]) == 0.0  # a camera may touch it
    with pytest.raises(ValueError, match="min_distance"):
        pixel_size_beyond(scene, [0.0, 0.0, 0.0], 0.0, 32.0)


def test_a_static_level_serves_every_camera_beyond_its_distance():
    scene = textured_sphere(12000)
    pixel = pixel_size_beyond(scene, [0.0, 0.0, 0.0], 6.0, 16.0 / math.tan(math.radians(20.0)), fov_deg=40.0)
    level = decimate_for_resolution(scene, pixel_size=pixel, voxel_pixels=0.5)
    assert len(level) < 0.6 * len(scene)
    for radius in (6.1, 9.0):
        cams = orbit_cameras([0.0, 0.0, 0.0], radius * 0.95, radius * 0.3, 3, fov_deg=40.0, width=32, image_height=32)
        assert measure_decimation(scene, level, cams, backend="cpu")["psnr_db"] > 25.0


def test_per_gaussian_pixel_sizes_are_checked_and_zero_keeps_a_gaussian():
    scene = textured_sphere(3000, radius=0.2)
    pixel = torch.full((len(scene),), 0.05)
    pixel[:100] = 0.0
    decimated = decimate_for_resolution(scene, pixel_size=pixel)
    assert len(decimated) < len(scene)
    assert torch.equal(decimated.means[:100], scene.means[:100])  # kept rows come first, in order
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        decimate_for_resolution(scene, pixel_size=torch.ones(5))
    with pytest.raises(ValueError, match=">= 0"):
        decimate_for_resolution(scene, pixel_size=-pixel - 1)

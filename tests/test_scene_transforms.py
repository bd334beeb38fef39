"""Similarity transforms, exact SH rotation and sanitize()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lyra_sim import GaussianScene
from lyra_sim.scene import quat_to_matrix, rotate_sh, sanitize, similarity_matrix, transform_scene
from lyra_sim.scene.sh import eval_sh, num_sh_bases
from lyra_sim.scene.transforms import decompose_similarity


def random_scene(n: int, degree: int, seed: int = 0) -> GaussianScene:
    generator = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    return GaussianScene(randn(n, 3), randn(n, 4), randn(n, 3) - 3, randn(n), randn(n, num_sh_bases(degree), 3))


def unit_directions(n: int, seed: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=torch.Generator().manual_seed(seed)), dim=-1)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_rotated_sh_seen_from_rotated_direction_matches_original(degree, seed):
    rotation = Rotation.random(random_state=seed).as_matrix()
    scene = random_scene(200, degree, seed)
    moved = transform_scene(scene, rotation, translation=[0.5, -2.0, 3.0], scale=1.7)
    directions = unit_directions(200, seed + 100)
    rotated_directions = directions @ torch.tensor(rotation, dtype=torch.float32).T
    before = eval_sh(scene.sh, directions)
    after = eval_sh(moved.sh, rotated_directions)
    torch.testing.assert_close(after, before, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_rotate_sh_band_by_band_for_axis_rotations(degree):
    """A quarter turn about z maps direction +x to +y: a coefficient set that peaks at +x must peak at +y."""
    quarter_turn = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    sh = torch.randn(1, num_sh_bases(degree), 3, generator=torch.Generator().manual_seed(degree))
    rotated = rotate_sh(sh, quarter_turn)
    x, y = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    torch.testing.assert_close(eval_sh(rotated, y), eval_sh(sh, x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rotated[:, 0], sh[:, 0])  # DC untouched
    assert not torch.allclose(rotated, sh)


def test_rotate_sh_is_a_group_action_and_keeps_the_norm():
    first, second = (Rotation.random(random_state=s).as_matrix() for s in (1, 2))
    sh = torch.randn(50, 16, 3, dtype=torch.float64)
    composed = rotate_sh(rotate_sh(sh, first), second)
    torch.testing.assert_close(composed, rotate_sh(sh, second @ first), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(composed.norm(dim=1), sh.norm(dim=1), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(rotate_sh(rotate_sh(sh, first), first.T), sh, atol=1e-10, rtol=1e-10)


def test_transform_moves_means_quats_and_scales():
    rotation = Rotation.random(random_state=7).as_matrix()
    translation, scale = np.array([1.0, 2.0, -3.0]), 2.5
    scene = random_scene(300, 1, seed=3)
    moved = scene.transform(rotation, translation, scale)
    r = torch.tensor(rotation, dtype=torch.float32)
    torch.testing.assert_close(moved.means, scale * scene.means @ r.T + torch.tensor(translation, dtype=torch.float32), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved.log_scales, scene.log_scales + math.log(scale))
    torch.testing.assert_close(moved.opacity_logits, scene.opacity_logits)
    # Orientation composes: R_new = R @ R_old, and quaternion norms are kept.
    torch.testing.assert_close(quat_to_matrix(moved.rotations()), r @ quat_to_matrix(scene.rotations()), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved.quats.norm(dim=-1), scene.quats.norm(dim=-1), atol=1e-5, rtol=1e-5)
    # The world covariance transforms as s^2 R Sigma R^T.
    def covariance(s: GaussianScene) -> torch.Tensor:
        m = quat_to_matrix(s.rotations()) * s.scales()[:, None, :]
        return m @ m.transpose(1, 2)

    expected = scale**2 * r @ covariance(scene) @ r.T
    torch.testing.assert_close(covariance(moved), expected, atol=1e-5, rtol=1e-4)


def test_transform_records_the_composed_similarity_and_frame():
    first = Rotation.random(random_state=11).as_matrix()
    scene = random_scene(10, 0)
    once = transform_scene(scene, first, [1, 0, 0], 2.0, frame="z-up")
    twice = transform_scene(once, np.eye(3), [0, 0, 1], 0.5)
    assert once.metadata.frame == "z-up" and scene.metadata.frame == "unknown"
    composed = np.array(twice.metadata.extras["transform"])
    expected = similarity_matrix(np.eye(3), [0, 0, 1], 0.5) @ similarity_matrix(first, [1, 0, 0], 2.0)
    np.testing.assert_allclose(composed, expected, atol=1e-12)
    rotation, translation, scale = decompose_similarity(composed)
    np.testing.assert_allclose(rotation, first, atol=1e-12)
    np.testing.assert_allclose(translation, [0.5, 0, 1], atol=1e-12)
    assert scale == pytest.approx(1.0)
    homogeneous = np.c_[scene.means.double().numpy(), np.ones(len(scene))] @ composed.T
    np.testing.assert_allclose(twice.means.numpy(), homogeneous[:, :3], atol=1e-5)


@pytest.mark.parametrize(
    "rotation, translation, scale, message",
    [
        (np.diag([1.0, 1.0, -1.0]), [0, 0, 0], 1.0, "reflection"),
        (np.eye(3) * 2, [0, 0, 0], 1.0, "orthonormal"),
        (np.eye(3), [0, 0], 1.0, "translation must have shape"),
        (np.eye(3), [0, 0, 0], -1.0, "scale"),
        (np.eye(3), [0, np.nan, 0], 1.0, "NaN"),
    ],
)
def test_transform_rejects_bad_arguments(rotation, translation, scale, message):
    with pytest.raises(ValueError, match=message):
        transform_scene(random_scene(4, 0), rotation, translation, scale)


def test_transform_is_differentiable():
    scene = random_scene(20, 2)
    scene.sh.requires_grad_(True)
    scene.means.requires_grad_(True)
    moved = transform_scene(scene, Rotation.random(random_state=0).as_matrix(), [0, 0, 0], 1.5)
    (moved.sh.sum() + moved.means.sum()).backward()
    assert scene.sh.grad is not None and scene.means.grad is not None


def test_sanitize_drops_and_counts_each_reason():
    scene = random_scene(10, 1)
    scene.means[0, 1] = float("nan")
    scene.log_scales[1, 0] = float("inf")
    scene.quats[2] = 0.0
    scene.opacity_logits[3] = float("-inf")
    scene.sh[4, 2, 1] = float("nan")
    scene.quats[5, 0] = float("nan")
    scene.means[5, 0] = float("inf")  # two reasons, one Gaussian
    cleaned, report = sanitize(scene)
    assert len(cleaned) == 4 and report["kept"] == 4 and report["dropped"] == 6 and report["input"] == 10
    assert report["reasons"] == {
        "non_finite_mean": 2,
        "non_finite_quat": 1,
        "non_finite_scale": 1,
        "non_finite_opacity": 1,
        "non_finite_sh": 1,
        "zero_quat": 1,
    }
    torch.testing.assert_close(cleaned.means, scene.means[6:])
    assert "dropped 6 of 10" in cleaned.metadata.notes[-1]


def test_sanitize_keeps_a_clean_scene_unchanged():
    scene = random_scene(50, 3)
    cleaned, report = sanitize(scene)
    assert report == {"input": 50, "kept": 50, "dropped": 0, "reasons": {}}
    torch.testing.assert_close(cleaned.sh, scene.sh)
    assert cleaned.sh is not scene.sh

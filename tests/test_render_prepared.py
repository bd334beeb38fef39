"""``prepare_scene`` (camera-independent arrays computed once), rigid updates of its rows,
per-camera Gaussian ranges (many scenes in one batched call) and the thread setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lyra_sim
from lyra_sim.render import PreparedScene, prepare_scene, render
from lyra_sim.render.prepared import covariance_rotation
from lyra_sim.scene.gaussian_scene import GaussianScene, quat_to_matrix
from lyra_sim.sim.compositor import ComposedScene, RigidPart
from conftest import assert_parity, random_cameras, random_labels, random_scene

MODES = ("rgb", "alpha", "depth", "median_depth", "instance")


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_prepared_scene_renders_like_the_raw_scene_and_the_reference(sh_degree):
    scene = random_scene(600, seed=5, sh_degree=sh_degree)
    cams = random_cameras(3, seed=5, width=40, height=28)
    labels = random_labels(len(scene), seed=5)
    prepared = prepare_scene(scene)
    ours = render(prepared, cams, MODES, backend="cpu", labels=labels)
    raw = render(scene, cams, MODES, backend="cpu", labels=labels)
    for mode in MODES:  # the same kernels from the same arrays
        torch.testing.assert_close(ours[mode], raw[mode], rtol=1e-5, atol=1e-5, msg=mode)
    assert_parity(ours, render(scene, cams, MODES, backend="reference", labels=labels))
    # other backends render the raw scene behind it
    reference = render(prepared, cams, ("rgb",), backend="reference")["rgb"]
    torch.testing.assert_close(reference, render(scene, cams, ("rgb",), backend="reference")["rgb"])


def test_prepared_arrays_hold_the_activated_parameters():
    scene = random_scene(50, seed=1, sh_degree=1)
    arrays = prepare_scene(scene).arrays
    rotation = quat_to_matrix(scene.rotations().double())
    scales = scene.scales().double()
    covariance = rotation @ torch.diag_embed(scales**2) @ rotation.transpose(1, 2)
    rows = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    expected = torch.stack([covariance[:, i, j] for i, j in rows]).numpy()
    np.testing.assert_allclose(arrays["covariances"], expected, rtol=1e-4, atol=1e-8)
    opacity = scene.opacities().numpy()
    np.testing.assert_allclose(arrays["opacity"], opacity, rtol=1e-6)
    np.testing.assert_allclose(arrays["sigma_max"], np.log(255 * opacity), rtol=1e-5)
    np.testing.assert_allclose(arrays["extent"], np.minimum(3.33, np.sqrt(2 * np.log(255 * opacity))), rtol=1e-5)
    np.testing.assert_allclose(arrays["colours"], (0.5 + 0.28209479177387814 * scene.sh[:, 0]).T.numpy(), rtol=1e-6)
    np.testing.assert_allclose(arrays["positions"], scene.means.T.numpy())


def test_a_gaussian_below_the_alpha_threshold_is_never_a_candidate():
    scene = random_scene(20, seed=2, sh_degree=0)
    scene.opacity_logits[:10] = -10.0  # opacity 4.5e-5 < 1/255
    arrays = prepare_scene(scene).arrays
    assert (arrays["extent"][:10] == 0).all() and (arrays["extent"][10:] > 0).all()


def test_covariance_rotation_is_r_sigma_r_transpose():
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    a = rng.normal(size=(3, 3))
    sigma = a @ a.T
    vec = np.array([sigma[0, 0], sigma[0, 1], sigma[0, 2], sigma[1, 1], sigma[1, 2], sigma[2, 2]])
    rotated = rotation @ sigma @ rotation.T
    want = np.array([rotated[0, 0], rotated[0, 1], rotated[0, 2], rotated[1, 1], rotated[1, 2], rotated[2, 2]])
    np.testing.assert_allclose(covariance_rotation(rotation) @ vec, want, rtol=1e-12, atol=1e-12)


def test_composed_scene_keeps_its_prepared_rows_in_step_with_poses_and_visibility():
    static = random_scene(300, seed=3, sh_degree=1)
    parts = [RigidPart("a", random_scene(80, seed=4, sh_degree=1, extent=0.2), 1),
             RigidPart("b", random_scene(60, seed=6, sh_degree=0, extent=0.2), 2)]
    composed = ComposedScene(static, parts)
    rng = np.random.default_rng(1)
    positions = rng.uniform(-0.5, 0.5, (2, 3))
    first_prepared = composed.prepared  # built before the first pose, then updated in place
    for _ in range(2):
        orientations = rng.normal(size=(2, 4))
        orientations /= np.linalg.norm(orientations, axis=1, keepdims=True)
        composed.set_poses(positions, orientations)
        positions = positions + 0.1
    composed.set_visible(1, False)
    assert composed.prepared is first_prepared
    fresh = prepare_scene(composed.scene).arrays
    for name, array in composed.prepared.arrays.items():
        np.testing.assert_allclose(array, fresh[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert (composed.prepared.arrays["extent"][composed.part_slices[1]] == 0).all()
    composed.set_visible(1, True)
    np.testing.assert_allclose(composed.prepared.arrays["extent"], prepare_scene(composed.scene).arrays["extent"], rtol=1e-6)
    cams = random_cameras(2, seed=8)
    ours = render(composed.prepared, cams, ("rgb", "depth"), backend="cpu")
    raw = render(composed.scene, cams, ("rgb", "depth"), backend="cpu")
    for mode in ("rgb", "depth"):
        torch.testing.assert_close(ours[mode], raw[mode], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_camera_ranges_give_each_camera_its_own_scene(backend):
    first, second = random_scene(300, seed=10, sh_degree=1), random_scene(200, seed=11, sh_degree=1)
    both = GaussianScene.concat([first, second])
    cams = random_cameras(3, seed=12, width=36, height=20)
    ranges = np.array([[0, 300], [300, 500], [0, 500]])
    labels = random_labels(len(both), seed=3)
    target = prepare_scene(both) if backend == "cpu" else both
    batched = render(target, cams, MODES, backend=backend, labels=labels, camera_ranges=ranges)
    expected = [render(first, cams[0], MODES, backend=backend, labels=labels[:300]),
                render(second, cams[1], MODES, backend=backend, labels=labels[300:]),
                render(both, cams[2], MODES, backend=backend, labels=labels)]
    for c, want in enumerate(expected):
        for mode in MODES:
            torch.testing.assert_close(batched[mode][c:c + 1], want[mode], rtol=1e-4, atol=1e-4, msg=f"{mode} {c}")


def test_bad_camera_ranges_and_stale_prepared_scenes_raise_clear_errors():
    scene = random_scene(50, seed=1)
    cams = random_cameras(2, seed=1)
    with pytest.raises(ValueError, match=r"camera_ranges must be integers of shape \[C, 2\] = \[2, 2\]"):
        render(scene, cams, camera_ranges=[[0, 50]])
    with pytest.raises(ValueError, match="0 <= start <= end <= N = 50"):
        render(scene, cams, camera_ranges=[[0, 50], [10, 60]])
    prepared = prepare_scene(scene)
    prepared.scene = random_scene(40, seed=2)
    with pytest.raises(ValueError, match="prepared arrays hold 50 Gaussians but its scene 40"):
        render(prepared, cams)
    with pytest.raises(TypeError, match="GaussianScene or a PreparedScene"):
        render("scene.ply", cams)


def test_set_num_threads_round_trips_and_rejects_zero():
    previous = lyra_sim.get_num_threads()
    try:
        assert lyra_sim.set_num_threads(1) == previous
        assert lyra_sim.get_num_threads() == 1
        cams = random_cameras(1, seed=0)
        single = render(random_scene(200, seed=0), cams, backend="cpu")["rgb"]
    finally:
        lyra_sim.set_num_threads(previous)
    torch.testing.assert_close(render(random_scene(200, seed=0), cams, backend="cpu")["rgb"], single)
    with pytest.raises(ValueError, match="count >= 1"):
        lyra_sim.set_num_threads(0)


def test_concatenated_prepared_scenes_equal_preparing_the_concatenation():
    first, second = random_scene(40, seed=1, sh_degree=1), random_scene(30, seed=2, sh_degree=1)
    both = GaussianScene.concat([first, second])
    joined = PreparedScene.concat([prepare_scene(first), prepare_scene(second)], both)
    for name, array in prepare_scene(both).arrays.items():
        np.testing.assert_array_equal(joined.arrays[name], array, err_msg=name)
    assert np.shares_memory(joined.sh, both.sh.numpy())  # SH updates of the buffer reach the renderer
    with pytest.raises(ValueError, match="hold 70 Gaussians, the scene 40"):
        PreparedScene.concat([prepare_scene(first), prepare_scene(second)], first)

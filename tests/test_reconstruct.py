"""Reconstruction from posed photos: losses, density control, a tiny end-to-end run, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lyra_sim.reconstruct import densify
from lyra_sim.reconstruct.losses import gaussian_window, photometric_loss, psnr, psnr_per_image, ssim, ssim_map
from lyra_sim.reconstruct.trainer import ReconstructionConfig, backproject_depth, evaluate, reconstruct, viewed_point
from lyra_sim.kits import make_scene
from lyra_sim.scene.gaussian_scene import GaussianScene


@pytest.fixture(scope="module")
def photos():
    """A 2-object tabletop seen from 14 hemisphere views at 32x32 (every 8th view held out).

    Rendered at 96x96 and box-filtered to 32x32, as a camera integrates over its pixels:
    point-sampled 32 px photos of 512 px textures alias, and no splat can fit aliasing.
    """
    kit = make_scene("tabletop", seed=0, n_objects=2)
    cameras = kit.cameras("hemisphere", 14, width=32, height=32, radius=0.7)
    return kit.render_photos(cameras.with_size(96, 96), progress=False).resized(32, 32)


# --------------------------------------------------------------------- losses
def test_ssim_and_psnr_known_values():
    rng = torch.Generator().manual_seed(0)
    a = torch.rand(2, 24, 24, 3, generator=rng)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    assert float(psnr(a, a)) > 100
    b = (a + 0.1).clamp(0, 1)
    mse = float(((a - b) ** 2).mean())
    assert float(psnr(a, b)) == pytest.approx(-10 * math.log10(mse), rel=1e-5)
    # Constant images: SSIM reduces to the luminance term (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    x, y = torch.full((1, 16, 16, 1), 0.2), torch.full((1, 16, 16, 1), 0.6)
    c1 = 0.01**2
    assert float(ssim(x, y)) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1), rel=1e-5)
    assert ssim_map(a, b).shape == (2, 14, 14, 3)  # "valid" windows only
    assert ssim_map(a, b, padding="same").shape == a.shape
    assert float(gaussian_window().sum()) == pytest.approx(1.0)
    per_view_mse = ((a - b) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(psnr_per_image(a, b), -10 * torch.log10(per_view_mse))
    with pytest.raises(ValueError, match="images must both be"):
        ssim(a, b[:1])


def test_ssim_drops_with_structure_not_only_brightness():
    rng = torch.Generator().manual_seed(1)
    a = torch.rand(1, 32, 32, 1, generator=rng)
    noisy = (a + 0.2 * torch.randn(1, 32, 32, 1, generator=rng)).clamp(0, 1)
    shifted = (a + 0.05).clamp(0, 1)
    assert float(ssim(a, noisy)) < float(ssim(a, shifted)) < 1.0


def test_photometric_loss_gradient_flows():
    target = torch.rand(1, 16, 16, 3)
    rendered = torch.rand(1, 16, 16, 3, requires_grad=True)
    loss = photometric_loss(rendered, target, ssim_weight=0.2)
    loss.backward()
    assert rendered.grad is not None and float(rendered.grad.abs().sum()) > 0


# --------------------------------------------------------------------- density control
def test_relocation_preserves_single_gaussian_and_composite_opacity():
    opacity = torch.tensor([0.3, 0.8, 0.95])
    log_scales = torch.zeros(3, 3)
    same_opacity, same_scales = densify.relocation_opacity_and_scale(opacity, log_scales, torch.tensor([1, 1, 1]))
    torch.testing.assert_close(same_opacity, opacity)
    torch.testing.assert_close(same_scales, log_scales)
    copies = torch.tensor([2, 3, 5])
    new_opacity, new_scales = densify.relocation_opacity_and_scale(opacity, log_scales, copies)
    # n coincident copies stack back to the original opacity.
    torch.testing.assert_close(1 - (1 - new_opacity) ** copies, opacity)
    assert (new_opacity < opacity).all()
    # Two copies, closed form: o / (2 o' - o'^2 / sqrt(2)).
    o, o2 = 0.3, float(new_opacity[0])
    assert float(new_scales[0, 0]) == pytest.approx(math.log(o / (2 * o2 - o2**2 / math.sqrt(2))), rel=1e-5)


def _params(count=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    scene = GaussianScene.from_activated(torch.randn(count, 3, generator=g), torch.rand(count, 3, generator=g),
                                         torch.rand(count, generator=g) * 0.9 + 0.05, torch.full((count, 3), 0.05), sh_degree=1)
    rates = {name: 1e-2 for name in densify.PARAMETER_NAMES}
    return densify.GaussianParameters(scene, rates)


def test_parameters_rows_stay_aligned_with_adam_state():
    params = _params()
    loss = sum((params[name] ** 2).sum() for name in densify.PARAMETER_NAMES)
    loss.backward()
    params.step()
    assert len(params.optimizer.state) == len(densify.PARAMETER_NAMES)
    params.append_rows({name: params[name].detach()[:5] for name in densify.PARAMETER_NAMES})
    assert len(params) == 205 and params.scene().sh.shape == (205, 4, 3)
    for tensor in params.tensors.values():
        state = params.optimizer.state[tensor]
        assert state["exp_avg"].shape == tensor.shape
        assert float(state["exp_avg"][200:].abs().sum()) == 0
    keep = torch.ones(205, dtype=torch.bool)
    keep[::2] = False
    params.keep_rows(keep)
    assert len(params) == 102
    assert params.optimizer.state[params["means"]]["exp_avg_sq"].shape == (102, 3)
    # The optimiser still steps the new leaves.
    before = params["means"].detach().clone()
    (params["means"] ** 2).sum().backward()
    params.step()
    assert not torch.equal(before, params["means"].detach())


def test_mcmc_relocates_dead_and_grows_to_the_cap():
    params = _params()
    with torch.no_grad():
        params["opacity_logits"][:20] = -10.0  # dead
    generator = torch.Generator().manual_seed(0)
    moved = densify.mcmc_relocate(params, generator)
    assert moved == 20
    assert float(torch.sigmoid(params["opacity_logits"].detach()).min()) > densify.DEAD_OPACITY
    added = densify.mcmc_add(params, cap=206, generator=generator)
    assert added == 6 and len(params) == 206
    assert densify.mcmc_add(params, cap=206, generator=generator) == 0


def test_adc_splits_clones_and_prunes():
    params = _params(100)
    stats = densify.GradientStatistics(100)
    stats.total[:10] = 1.0  # high gradient
    stats.views[:10] = 1.0
    with torch.no_grad():
        params["log_scales"][:5] = math.log(0.5)  # large: split
        params["log_scales"][5:10] = math.log(0.001)  # small: clone
        params["opacity_logits"][50:60] = -10.0  # transparent: pruned
    cloned, split, pruned = densify.adc_densify_and_prune(params, stats, gradient_threshold=0.5, scene_extent=10.0,
                                                          cap=1000, generator=torch.Generator().manual_seed(0))
    assert (cloned, split, pruned) == (5, 5, 10)
    assert len(params) == 100 + 5 + 10 - 5 - 10


# --------------------------------------------------------------------- initialisation
def test_depth_backprojection_lands_on_the_true_surface(photos):
    points, colours = backproject_depth(photos, 500, np.random.default_rng(0))
    assert points.shape == (500, 3) and colours.shape == (500, 3)
    # Every pixel with depth sees the floor (z = 0), the table or an object: nothing below the floor.
    assert points[:, 2].min() > -1e-3 and points[:, 2].max() < 0.8
    np.testing.assert_allclose(viewed_point(photos.cameras), [0.0, 0.0, 0.625], atol=1e-3)


# --------------------------------------------------------------------- end to end
def test_tiny_reconstruction_improves_heldout_psnr_by_5db(photos, tmp_path):
    config = ReconstructionConfig(
        iterations=250, init="depth", init_count=3000, max_gaussians=5000, sh_degree=0, refine_start=50,
        refine_every=25, eval_every=125, backend="cpu", render_threads=1, checkpoint_every=125,
        checkpoint_dir=str(tmp_path / "checkpoints"),
    )
    history = []
    result = reconstruct(photos, config, progress=False, callback=history.append)
    gain = result.test_metrics["psnr"] - result.initial_test_metrics["psnr"]
    assert gain >= 5.0, f"held-out PSNR {result.initial_test_metrics['psnr']:.2f} -> {result.test_metrics['psnr']:.2f}"
    assert result.test_metrics["views"] == 2 and result.test_metrics["ssim"] > 0.5
    assert [h["step"] for h in history] == [125, 250] and history == result.history
    assert 3000 < len(result.scene) <= 5000
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000125.pt", "step_000250.pt"]
    # The evaluation function agrees with the recorded metric.
    _, test = photos.train_test()
    assert evaluate(result.scene, test, backend="cpu")["psnr"] == pytest.approx(result.test_metrics["psnr"], abs=1e-3)

    # Resuming from step 125 continues from the trained state (not from scratch).
    resumed = reconstruct(photos, ReconstructionConfig(**{**config.__dict__, "resume": str(tmp_path / "checkpoints" / "step_000125.pt"),
                                                          "iterations": 135, "checkpoint_every": 0, "eval_every": 0}), progress=False)
    assert resumed.history[-1]["step"] == 135 and len(resumed.history) == 1
    assert resumed.test_metrics["psnr"] > history[0]["test_psnr"] - 1.0


def test_adc_run_and_time_budget(photos):
    config = ReconstructionConfig(iterations=1000, time_budget_s=0.5, density_control="adc", init="depth", init_count=1000,
                                  max_gaussians=3000, sh_degree=1, backend="cpu", render_threads=1, refine_start=5, refine_every=5)
    result = reconstruct(photos, config, progress=False)
    assert result.history[-1]["step"] < 1000  # stopped by the time budget
    assert result.scene.sh_degree == 1 and len(result.scene) <= 3000


def test_config_validation(photos):
    with pytest.raises(ValueError, match="density_control"):
        reconstruct(photos, ReconstructionConfig(density_control="sgd"), progress=False)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        reconstruct(photos, ReconstructionConfig(checkpoint_every=10), progress=False)
    with pytest.raises(ValueError, match="point cloud"):
        reconstruct(photos, ReconstructionConfig(init="points", iterations=1, backend="cpu"), progress=False)


def test_cli_writes_ply_and_metrics(photos, tmp_path, capsys):
    import json

    from lyra_sim.cli import main
    from lyra_sim.photos import save_lyra_dataset
    from lyra_sim.scene.io import load_scene

    save_lyra_dataset(photos, tmp_path / "data")
    out = tmp_path / "scene.ply"
    code = main(["reconstruct", str(tmp_path / "data"), "-o", str(out), "--iterations", "20", "--resolution", "16",
                 "--sh-degree", "1", "--backend", "cpu", "--render-threads", "1", "--no-progress", "--eval-every", "10"])
    assert code == 0
    scene = load_scene(out)
    assert len(scene) > 100 and scene.sh_degree == 1
    report = json.loads((tmp_path / "scene.ply.json").read_text())
    assert report["resolution"] == [16, 16] and [h["step"] for h in report["history"]] == [10, 20]
    assert "held-out PSNR" in capsys.readouterr().out
    assert main(["reconstruct", str(tmp_path / "missing"), "-o", str(tmp_path / "x.ply")]) == 1
    assert "no such dataset folder" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path / "data"), "-o", str(tmp_path / "x.ply"), "--init", "points", "--backend", "cpu", "--no-progress"]) == 1
    assert "point cloud" in capsys.readouterr().err
    assert not (tmp_path / "x.ply").exists()

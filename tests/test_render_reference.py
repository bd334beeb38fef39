"""The torch reference renderer and ``render()``: the maths checked against gsplat's own torch
projection and an independent per-pixel loop, analytic cases, edge cases, gradients, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lyra_sim.errors import LyraSimError
from lyra_sim.render import _reference
from lyra_sim.render.api import render, resolve_backend
from lyra_sim.render.camera import Camera, intrinsics_from_fov
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.sh import SH_C0
from conftest import ALL_MODES, random_cameras, random_labels, random_scene, scene_tensors


def gsplat_projection(scene: GaussianScene, cams: Camera):
    """Projection, depth, conics and colours from gsplat's pure-torch implementation (CPU)."""
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics

    covars, _ = _quat_scale_to_covar_preci(scene.quats.double(), scene.scales().double(), compute_preci=False, triu=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        scene.means.double(), covars, cams.viewmat.double(), cams.K.double(), cams.width, cams.height,
        eps2d=0.3, near_plane=cams.near, far_plane=cams.far,
    )
    directions = scene.means.double()[None] - cams.position.double()[:, None]
    colors = _spherical_harmonics(scene.sh_degree, directions, scene.sh.double()[None].expand(len(cams), -1, -1, -1))
    return radii, means2d, depths, conics, torch.clamp_min(colors + 0.5, 0.0)


def brute_force_render(scene: GaussianScene, cams: Camera, background: np.ndarray, labels: np.ndarray):
    """Every output by an explicit per-pixel loop over depth-sorted Gaussians (float64 numpy),
    built on gsplat's projection: independent of the reference's vectorised code."""
    radii, means2d, depths, conics, colors = (t.numpy() if t is not None else None for t in gsplat_projection(scene, cams))
    opacities = scene.opacities().double().numpy()
    C, H, W = len(cams), cams.height, cams.width
    out = {
        "rgb": np.zeros((C, H, W, 3)), "alpha": np.zeros((C, H, W, 1)), "depth": np.zeros((C, H, W, 1)),
        "median_depth": np.zeros((C, H, W, 1)), "instance": np.full((C, H, W, 1), -1),
    }
    for c in range(C):
        visible = [i for i in np.argsort(depths[c], kind="stable") if radii[c, i].max() > 0 and opacities[i] >= 1 / 255]
        for v in range(H):
            for u in range(W):
                T, rgb, depth_sum, median, label_weight = 1.0, np.zeros(3), 0.0, 0.0, {}
                for i in visible:
                    a, b, cc = conics[c, i]
                    dx, dy = means2d[c, i, 0] - (u + 0.5), means2d[c, i, 1] - (v + 0.5)
                    alpha = min(0.999, opacities[i] * math.exp(-(0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy)))
                    if alpha < 1 / 255:
                        continue
                    next_T = T * (1 - alpha)
                    if next_T <= 1e-4:
                        break
                    w = alpha * T
                    rgb += w * colors[c, i]
                    depth_sum += w * depths[c, i]
                    label_weight[labels[i]] = label_weight.get(labels[i], 0.0) + w
                    if median == 0.0 and next_T <= 0.5:
                        median = depths[c, i]
                    T = next_T
                out["rgb"][c, v, u] = rgb + T * background[c]
                out["alpha"][c, v, u] = 1 - T
                out["depth"][c, v, u] = depth_sum / (1 - T) if T < 1 else 0.0
                out["median_depth"][c, v, u] = median
                if 1 - T >= 0.5:
                    best = max(label_weight.values())
                    out["instance"][c, v, u] = min(k for k, w in label_weight.items() if w == best)
    return out


def test_projection_and_colours_match_gsplat_torch_implementation():
    scene = random_scene(300, seed=1, sh_degree=3)
    cams = random_cameras(2, seed=1, width=48, height=32)
    radii, means2d, depths, conics, colors = gsplat_projection(scene, cams)
    for c in range(2):
        mean2d, z, cov2d = _reference.project_gaussians(
            scene.means.double(), scene.quats.double(), scene.log_scales.double(),
            cams.viewmat[c].double(), cams.K[c].double(), cams.width, cams.height,
        )
        conic = torch.linalg.inv(cov2d)
        ours = torch.stack([conic[:, 0, 0], conic[:, 0, 1], conic[:, 1, 1]], -1)
        assert torch.allclose(mean2d, means2d[c], rtol=1e-9, atol=1e-9)
        assert torch.allclose(z, depths[c], rtol=1e-12)
        assert torch.allclose(ours, conics[c], rtol=1e-5, atol=1e-6)
        ours_color = _reference.gaussian_colors(scene.means.double(), scene.sh.double(), cams.position[c].double(), 3)
        assert torch.allclose(ours_color, colors[c], atol=1e-6)


def test_reference_matches_an_independent_per_pixel_loop():
    scene = random_scene(60, seed=2, sh_degree=1, scale_range=(0.05, 0.3), opacity_range=(0.2, 0.99))
    cams = random_cameras(2, seed=2, width=14, height=11)
    labels = random_labels(60, count=3, seed=2)
    background = np.array([[0.2, 0.3, 0.4], [1.0, 0.0, 0.5]])
    expected = brute_force_render(scene, cams, background, labels.numpy())
    out = _reference.rasterize(
        *scene_tensors(scene, torch.float64), cams.viewmat, cams.K, cams.width, cams.height,
        near=cams.near, far=cams.far, sh_degree=1, background=torch.tensor(background),
        labels=labels, modes=ALL_MODES, radius_clip=0.0,
    )
    assert float(out["alpha"].mean()) > 0.3  # the scene really covers the images
    for name in ("rgb", "alpha", "depth", "median_depth"):
        np.testing.assert_allclose(out[name].detach().numpy(), expected[name], atol=1e-6, err_msg=name)
    assert out["instance"].dtype == torch.int32
    np.testing.assert_array_equal(out["instance"].numpy(), expected["instance"])


def test_single_gaussian_matches_the_closed_form():
    """An isotropic Gaussian on the optical axis: alpha at a pixel is o·exp(-½ r²/(s²f²/z² + 0.3))."""
    width = height = 33
    K = intrinsics_from_fov(60.0, width, height)
    cam = Camera(K, torch.eye(4), width, height)
    z, sigma, opacity = 4.0, 0.05, 0.8
    scene = GaussianScene.from_activated(
        torch.tensor([[0.0, 0.0, z]]), torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([opacity]), torch.full((1, 3), sigma)
    )
    out = render(scene, cam, modes=("rgb", "alpha", "depth", "median_depth"), backend="reference", background=[0.0, 0.0, 1.0])
    focal = float(K[0, 0])
    variance = (sigma * focal / z) ** 2 + 0.3
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    r2 = (u - width / 2) ** 2 + (v - height / 2) ** 2
    alpha = opacity * torch.exp(-0.5 * r2 / variance)
    alpha = torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))
    assert torch.allclose(out["alpha"][0, ..., 0], alpha, atol=1e-5)
    color = torch.tensor([0.9, 0.5, 0.1])
    expected_rgb = alpha[..., None] * color + (1 - alpha[..., None]) * torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(out["rgb"][0], expected_rgb, atol=1e-5)
    assert torch.allclose(out["depth"][0, ..., 0], torch.where(alpha > 0, torch.tensor(z), torch.tensor(0.0)), atol=1e-5)
    assert torch.allclose(out["median_depth"][0, ..., 0], torch.where(alpha >= 0.5, torch.tensor(z), torch.tensor(0.0)))


def test_opaque_stack_stops_at_the_transmittance_floor_and_median_picks_the_crossing():
    """Three nearly opaque layers: the third would push T below 1e-4, so it is not blended."""
    cam = Camera(intrinsics_from_fov(60.0, 8, 8), torch.eye(4), 8, 8)
    means = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    colors = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    scene = GaussianScene.from_activated(means, colors, torch.full((3,), 0.98), torch.full((3, 3), 5.0))
    out = render(scene, cam, modes=("rgb", "alpha", "median_depth", "depth"), backend="reference")
    pixel = {k: v[0, 4, 4] for k, v in out.items()}
    a = 0.98  # α is exp(-tiny) close to the opacity at the centre for a huge Gaussian
    assert pixel["rgb"][0] == pytest.approx(a, abs=1e-3)
    assert pixel["rgb"][1] == pytest.approx(a * (1 - a), abs=1e-3)
    assert pixel["rgb"][2] == pytest.approx(0.0, abs=1e-6)  # the far layer never blends
    assert pixel["alpha"][0] == pytest.approx(1 - (1 - a) ** 2, abs=1e-4)
    assert pixel["median_depth"][0] == pytest.approx(1.0)
    assert pixel["depth"][0] == pytest.approx((a * 1.0 + a * (1 - a) * 2.0) / (1 - (1 - a) ** 2), abs=1e-3)


@pytest.mark.parametrize("backend", ["reference"])
def test_edge_cases_empty_behind_covering_and_tiny_images(backend):
    cam = Camera.look_at([0.0, -3.0, 0.0], [0.0, 0.0, 0.0], width=20, height=12)
    background = torch.tensor([0.1, 0.2, 0.3])
    # Empty scene: background everywhere, zero alpha and depth, no instance.
    out = render(GaussianScene.empty(sh_degree=1), cam, modes=ALL_MODES, backend=backend, background=background,
                 labels=torch.zeros(0, dtype=torch.int32))
    assert torch.allclose(out["rgb"], background.expand(1, 12, 20, 3))
    assert float(out["alpha"].abs().max()) == 0 and float(out["depth"].abs().max()) == 0
    assert bool((out["instance"] == -1).all()) and float(out["median_depth"].abs().max()) == 0
    # Every Gaussian behind the camera: same as empty.
    scene = random_scene(100, seed=4)
    behind = scene._replace(means=scene.means * 0.3 + torch.tensor([0.0, -5.0, 0.0]))
    out = render(behind, cam, modes=("rgb", "alpha"), backend=backend, background=background)
    assert torch.allclose(out["rgb"], background.expand(1, 12, 20, 3)) and float(out["alpha"].max()) == 0
    # A Gaussian much larger than the view covers every pixel.
    covering = GaussianScene.from_activated(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]),
                                            torch.tensor([0.9]), torch.full((1, 3), 20.0))
    out = render(covering, Camera.look_at([0.0, -0.5, 0.0], [0.0, 0.0, 0.0], width=20, height=12), modes=("rgb", "alpha"), backend=backend)
    assert torch.allclose(out["alpha"], torch.full((1, 12, 20, 1), 0.9), atol=1e-3)
    # 1x1 and non-square images agree with a crop of a bigger render of the same camera.
    scene = random_scene(200, seed=5)
    for width, height in ((1, 1), (7, 3), (3, 9)):
        small = Camera.look_at([3.0, 1.0, 0.5], [0.0, 0.0, 0.0], fov_deg=40.0, width=width, height=height)
        out = render(scene, small, modes=("rgb", "depth"), backend=backend)
        assert out["rgb"].shape == (1, height, width, 3) and out["depth"].shape == (1, height, width, 1)
        assert bool(torch.isfinite(out["rgb"]).all())
    one = render(scene, Camera.look_at([3.0, 1.0, 0.5], [0.0, 0.0, 0.0], width=1, height=1), modes=("alpha",), backend=backend)
    assert 0.0 < float(one["alpha"]) <= 1.0


def test_batched_cameras_equal_one_at_a_time():
    scene = random_scene(300, seed=6, sh_degree=2)
    cams = random_cameras(3, seed=6, width=24, height=20)
    labels = random_labels(300, seed=6)
    background = torch.rand(3, 3, generator=torch.Generator().manual_seed(6))
    batched = render(scene, cams, modes=ALL_MODES, backend="reference", labels=labels, background=background)
    for c in range(3):
        single = render(scene, cams[c], modes=ALL_MODES, backend="reference", labels=labels, background=background[c])
        for name in ALL_MODES:
            assert torch.equal(single[name][0], batched[name][c]), name


def test_sh_degree_and_radius_clip_options():
    scene = random_scene(200, seed=7, sh_degree=3)
    cam = random_cameras(1, seed=7)
    full = render(scene, cam, backend="reference")["rgb"]
    dc_only = render(scene, cam, backend="reference", sh_degree=0)["rgb"]
    assert torch.allclose(dc_only, render(scene.with_sh_degree(0), cam, backend="reference")["rgb"])
    assert not torch.allclose(full, dc_only, atol=1e-3)
    # Clipping at a radius larger than every Gaussian leaves nothing.
    clipped = render(scene, cam, modes=("alpha",), backend="reference", radius_clip=1000.0)["alpha"]
    assert float(clipped.max()) == 0.0
    partly = render(scene, cam, modes=("alpha",), backend="reference", radius_clip=3.0)["alpha"]
    whole = render(scene, cam, modes=("alpha",), backend="reference")["alpha"]
    assert 0 < float(partly.sum()) < float(whole.sum())


def test_gradients_match_finite_differences_in_float64():
    scene = random_scene(6, seed=8, sh_degree=1, scale_range=(0.2, 0.4), opacity_range=(0.3, 0.7))
    cam = random_cameras(1, seed=8, width=8, height=6, distance=3.0)
    tensors = scene_tensors(scene, torch.float64, requires_grad=True)
    weights = torch.rand(1, 6, 8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss(*params):
        out = _reference.rasterize(
            *params, cam.viewmat, cam.K, cam.width, cam.height, near=cam.near, far=cam.far, sh_degree=1,
            background=torch.tensor([[0.3, 0.2, 0.1]]), labels=None, modes=("rgb", "alpha", "depth"), radius_clip=0.0,
        )
        return (torch.cat([out["rgb"], out["alpha"], out["depth"]], -1) * weights).sum()

    assert torch.autograd.gradcheck(loss, tuple(tensors), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_render_validates_its_inputs():
    scene = random_scene(10, seed=9)
    cam = random_cameras(2, seed=9)
    with pytest.raises(ValueError, match="modes='colour'.*'rgb'"):
        render(scene, cam, modes=("colour",), backend="reference")
    with pytest.raises(ValueError, match="backend='vulkan'"):
        render(scene, cam, backend="vulkan")
    with pytest.raises(ValueError, match=r"\[7\]"):
        render(scene, cam, modes=("instance",), backend="reference", labels=np.zeros(7, dtype=np.int64))
    with pytest.raises(ValueError, match="integer"):
        render(scene, cam, modes=("instance",), backend="reference", labels=np.zeros(10))
    with pytest.raises(ValueError, match=">= 0|range"):
        render(scene, cam, modes=("instance",), backend="reference", labels=-np.ones(10, dtype=np.int32))
    with pytest.raises(ValueError, match=r"\[2, 3\].*\[4\]"):
        render(scene, cam, backend="reference", background=[0.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="sh_degree"):
        render(scene, cam, backend="reference", sh_degree=4)
    with pytest.raises(TypeError, match="GaussianScene"):
        render(scene.means, cam, backend="reference")
    out = render(scene, cam, modes="instance", backend="reference")
    assert set(out) == {"instance"} and bool((out["instance"] == -1).all())  # no labels: -1 everywhere


def test_auto_backend_picks_gsplat_only_with_cuda():
    assert resolve_backend("auto") == ("gsplat" if torch.cuda.is_available() else "cpu")
    assert resolve_backend("reference") == "reference"
    if not torch.cuda.is_available():
        with pytest.raises(LyraSimError, match="CUDA"):
            render(random_scene(5), random_cameras(1), backend="gsplat")


def test_lyra_sim_render_is_callable_even_after_submodule_imports():
    import lyra_sim
    import lyra_sim.render.camera  # binds the package to lyra_sim.render

    scene = random_scene(20, seed=13)
    cam = random_cameras(1, seed=13, width=8, height=6)
    out = lyra_sim.render(scene, cam, modes=("alpha",), backend="reference")
    assert torch.equal(out["alpha"], render(scene, cam, modes=("alpha",), backend="reference")["alpha"])

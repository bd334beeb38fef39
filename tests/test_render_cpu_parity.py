"""The numba CPU backend against the torch reference: outputs, gradients and edge cases."""

from __future__ import annotations

import pytest
import torch

from lyra_sim.render import _reference
from lyra_sim.render.api import render
from lyra_sim.render.camera import Camera, intrinsics_from_fov
from lyra_sim.scene.gaussian_scene import GaussianScene
from conftest import ALL_MODES, assert_parity, random_cameras, random_labels, random_scene, scene_tensors

_cpu = pytest.importorskip("lyra_sim.render._cpu", reason="the CPU backend module is not in this build")


@pytest.mark.parametrize("camera_count, sh_degree", [(1, 0), (2, 3), (4, 2), (4, 1)])
def test_cpu_matches_reference_on_random_scenes(camera_count, sh_degree):
    n = 1500
    scene = random_scene(n, seed=camera_count * 10 + sh_degree, sh_degree=sh_degree)
    cams = random_cameras(camera_count, seed=camera_count * 10 + sh_degree, width=40, height=30)
    labels = random_labels(n, count=5, seed=camera_count)
    background = torch.rand(camera_count, 3, generator=torch.Generator().manual_seed(camera_count))
    ours = render(scene, cams, modes=ALL_MODES, backend="cpu", labels=labels, background=background)
    ref = render(scene, cams, modes=ALL_MODES, backend="reference", labels=labels, background=background)
    for name in ALL_MODES:
        assert ours[name].shape == ref[name].shape, name
    assert float(ref["alpha"].mean()) > 0.3
    assert_parity(ours, ref)


def test_cpu_handles_mode_subsets_and_radius_clip():
    scene = random_scene(800, seed=40, sh_degree=1)
    cams = random_cameras(2, seed=40, width=32, height=24)
    for modes in (("alpha",), ("depth",), ("median_depth", "rgb"), ("instance",)):
        labels = random_labels(800, seed=40) if "instance" in modes else None
        ours = render(scene, cams, modes=modes, backend="cpu", labels=labels)
        ref = render(scene, cams, modes=modes + ("alpha",), backend="reference", labels=labels)  # alpha: for the edge mask
        assert set(ours) == set(modes)
        assert_parity(ours, ref, modes)
    for clip in (2.0, 4.0):
        ours = render(scene, cams, modes=("rgb", "alpha"), backend="cpu", radius_clip=clip)
        ref = render(scene, cams, modes=("rgb", "alpha"), backend="reference", radius_clip=clip)
        assert_parity(ours, ref, ("rgb", "alpha"))


def test_cpu_edge_cases():
    cam = Camera.look_at([0.0, -3.0, 0.0], [0.0, 0.0, 0.0], width=20, height=12)
    background = torch.tensor([0.1, 0.2, 0.3])
    out = render(GaussianScene.empty(sh_degree=1), cam, modes=ALL_MODES, backend="cpu", background=background,
                 labels=torch.zeros(0, dtype=torch.int32))
    assert torch.allclose(out["rgb"], background.expand(1, 12, 20, 3))
    assert float(out["alpha"].abs().max()) == 0 and float(out["depth"].abs().max()) == 0
    assert float(out["median_depth"].abs().max()) == 0 and bool((out["instance"] == -1).all())

    scene = random_scene(300, seed=41)
    behind = scene._replace(means=scene.means * 0.3 + torch.tensor([0.0, -5.0, 0.0]))
    out = render(behind, cam, modes=("rgb", "alpha"), backend="cpu", background=background)
    assert torch.allclose(out["rgb"], background.expand(1, 12, 20, 3)) and float(out["alpha"].max()) == 0

    covering = GaussianScene.from_activated(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]),
                                            torch.tensor([0.9]), torch.full((1, 3), 20.0))
    close = Camera.look_at([0.0, -0.5, 0.0], [0.0, 0.0, 0.0], width=20, height=12)
    ours = render(covering, close, modes=("rgb", "alpha", "depth"), backend="cpu")
    ref = render(covering, close, modes=("rgb", "alpha", "depth"), backend="reference")
    assert torch.allclose(ours["alpha"], torch.full((1, 12, 20, 1), 0.9), atol=1e-3)
    assert_parity(ours, ref, ("rgb", "alpha", "depth"))

    # A Gaussian straddling the near plane and one past the far plane are culled alike.
    clipped = Camera(intrinsics_from_fov(60.0, 16, 16), torch.eye(4), 16, 16, near=1.0, far=3.0)
    straddling = GaussianScene.from_activated(torch.tensor([[0.0, 0.0, 0.999], [0.1, 0.0, 2.0], [0.0, 0.1, 3.5]]),
                                              torch.rand(3, 3), torch.full((3,), 0.8), torch.full((3, 3), 0.1))
    ours = render(straddling, clipped, modes=("rgb", "alpha", "depth"), backend="cpu")
    ref = render(straddling, clipped, modes=("rgb", "alpha", "depth"), backend="reference")
    assert_parity(ours, ref, ("rgb", "alpha", "depth"))

    for width, height in ((1, 1), (7, 3), (3, 9), (33, 17)):
        small = Camera.look_at([3.0, 1.0, 0.5], [0.0, 0.0, 0.0], fov_deg=40.0, width=width, height=height)
        ours = render(scene, small, modes=("rgb", "alpha", "depth", "median_depth"), backend="cpu")
        ref = render(scene, small, modes=("rgb", "alpha", "depth", "median_depth"), backend="reference")
        assert ours["rgb"].shape == (1, height, width, 3)
        assert_parity(ours, ref, ("rgb", "alpha", "depth"))


def _loss_weights(shape, seed=0):
    return torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_cpu_gradients_match_reference_autograd():
    scene = random_scene(400, seed=50, sh_degree=2, scale_range=(0.05, 0.2))
    cams = random_cameras(2, seed=50, width=32, height=24)
    weights = _loss_weights((2, 24, 32, 5)).float()
    grads = {}
    for backend in ("cpu", "reference"):
        params = scene_tensors(scene, torch.float32, requires_grad=True)
        trainable = GaussianScene(*params)
        out = render(trainable, cams, modes=("rgb", "alpha", "depth"), backend=backend, background=[0.2, 0.4, 0.1])
        loss = (torch.cat([out["rgb"], out["alpha"], out["depth"] * 0.2], -1) * weights).sum()
        grads[backend] = torch.autograd.grad(loss, params)
    for name, ours, ref in zip(("means", "quats", "log_scales", "opacity_logits", "sh"), grads["cpu"], grads["reference"]):
        scale = ref.abs().max().clamp_min(1e-8)
        error = (ours - ref).abs().max() / scale
        assert error < 2e-2, f"{name}: max gradient error {float(error):.3g} of the largest entry"
        cosine = torch.nn.functional.cosine_similarity(ours.flatten(), ref.flatten(), dim=0)
        assert cosine > 0.999, f"{name}: cosine {float(cosine):.5f}"


def test_cpu_gradients_match_finite_differences():
    """Central differences of the float64 reference on a tiny scene vs the CPU backward."""
    scene = random_scene(5, seed=51, sh_degree=1, scale_range=(0.2, 0.35), opacity_range=(0.3, 0.7))
    cam = random_cameras(1, seed=51, width=10, height=8, distance=3.0)
    weights = _loss_weights((1, 8, 10, 5), seed=1)

    def loss_of(params, backend):
        out = (_cpu if backend == "cpu" else _reference).rasterize(
            *params, cam.viewmat, cam.K, cam.width, cam.height, near=cam.near, far=cam.far, sh_degree=1,
            background=torch.tensor([[0.3, 0.2, 0.1]]), labels=None, modes=("rgb", "alpha", "depth"), radius_clip=0.0,
        )
        return (torch.cat([out["rgb"], out["alpha"], out["depth"]], -1).double() * weights).sum()

    params = scene_tensors(scene, torch.float32, requires_grad=True)
    analytic = torch.autograd.grad(loss_of(params, "cpu"), params)
    base = scene_tensors(scene, torch.float64)
    step = 1e-5
    for index, (name, grad) in enumerate(zip(("means", "quats", "log_scales", "opacity_logits", "sh"), analytic)):
        numeric = torch.zeros_like(base[index])
        flat = numeric.view(-1)
        for k in range(flat.numel()):
            plus = [t.clone() for t in base]
            minus = [t.clone() for t in base]
            plus[index].view(-1)[k] += step
            minus[index].view(-1)[k] -= step
            flat[k] = (loss_of(plus, "reference") - loss_of(minus, "reference")) / (2 * step)
        scale = numeric.abs().max().clamp_min(1e-6)
        error = (grad.double() - numeric).abs().max() / scale
        assert error < 2e-2, f"{name}: finite-difference mismatch {float(error):.3g}"


def test_cpu_no_grad_path_leaves_no_graph():
    scene = random_scene(200, seed=52)
    out = render(scene, random_cameras(1, seed=52), backend="cpu")
    assert not out["rgb"].requires_grad

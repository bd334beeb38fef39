"""Surface-aware training terms: values on known cases, gradients vs finite differences and vs
the torch reference renderer, and their effect on a tiny reconstruction."""

from __future__ import annotations

import math

import torch

from lyra_sim.reconstruct import surface
from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene
from conftest import random_cameras, random_scene, scene_tensors

NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh")


def _camera(width: int = 16, height: int = 16) -> Camera:
    return Camera.look_at(torch.tensor([[0.0, 0.0, 3.0]]), torch.zeros(1, 3), (0.0, 1.0, 0.0), 50.0, width, height,
                          near=0.05, far=100.0)


def test_min_scale_and_opacity_terms_values():
    log_scales = torch.log(torch.tensor([[0.1, 0.02, 0.3], [0.05, 0.05, 0.01]]))
    assert math.isclose(float(surface.min_scale_loss(log_scales, 2.0)), (0.02 + 0.01) / 2 / 2.0, rel_tol=1e-6)
    logits = torch.logit(torch.tensor([0.5, 1e-6, 1 - 1e-6]).double())
    assert math.isclose(float(surface.opacity_binary_loss(logits)), 0.25 / 3, rel_tol=1e-4)


def test_distortion_is_zero_for_one_depth_and_positive_for_two():
    alpha = torch.full((4, 4, 1), 0.8)
    depth = torch.full((4, 4, 1), 2.0)
    assert abs(float(surface.distortion_loss(depth, alpha, alpha * 4.0, 1.0))) < 1e-6
    # weights 0.4 at z=1 and 0.4 at z=3: ½ Σᵢⱼ wᵢwⱼ(zᵢ-zⱼ)² = 0.4·0.4·4 = 0.64
    squared = torch.full((4, 4, 1), 0.4 * 1 + 0.4 * 9)
    assert math.isclose(float(surface.distortion_loss(depth, alpha, squared, 1.0)), 0.64, rel_tol=1e-5)


def test_depth_normals_of_a_tilted_plane():
    camera = _camera(24, 24)
    K = camera.K[0].double()
    v, u = torch.meshgrid(torch.arange(24.0, dtype=torch.float64), torch.arange(24.0, dtype=torch.float64), indexing="ij")
    rays = torch.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    normal = torch.tensor([0.3, -0.2, -1.0], dtype=torch.float64)
    normal = normal / normal.norm()
    depth = (-2.0 / (rays @ normal))[..., None]  # plane n·x = 2 in front of the camera, normal facing it
    found = surface.depth_normals(depth, K)
    assert float((found - normal).abs().max()) < 1e-9


def test_pure_terms_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(3)
    depth = (2.0 + torch.rand(6, 6, 1, generator=g, dtype=torch.float64)).requires_grad_(True)
    alpha = (0.6 + 0.4 * torch.rand(6, 6, 1, generator=g, dtype=torch.float64)).requires_grad_(True)
    squared = (depth.detach() ** 2 * alpha.detach() + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d, a, s: surface.distortion_loss(d, a, s, 1.5), (depth, alpha, squared))
    normals = torch.randn(6, 6, 3, generator=g, dtype=torch.float64)
    normals[..., 2] = -2.0
    normals.requires_grad_(True)
    K = _camera(6, 6).K[0].double()
    assert torch.autograd.gradcheck(lambda d, n: surface.normal_consistency_loss(d, alpha.detach(), n, K), (depth, normals))
    log_scales = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    logits = torch.randn(5, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: surface.min_scale_loss(s, 2.0), (log_scales,))
    assert torch.autograd.gradcheck(surface.opacity_binary_loss, (logits,))
    quats = torch.randn(5, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q: surface.gaussian_normals(q, log_scales.detach()), (quats,))


def _render_terms(params, camera, backend: str, term: str) -> torch.Tensor:
    from lyra_sim.render.api import render

    scene = GaussianScene(*params)
    out = render(scene, camera, modes=("rgb", "depth", "alpha"), backend=backend)
    weights = dict(min_scale_weight=0.0, opacity_binary_weight=0.0, distortion_weight=0.0, normal_weight=0.0)
    weights[f"{term}_weight"] = 1.0
    loss, _ = surface.surface_loss(scene, camera, out["depth"], out["alpha"], extent=2.0, backend=backend, **weights)
    return loss


def test_render_terms_cpu_gradients_match_reference():
    scene = random_scene(300, seed=7, sh_degree=0, scale_range=(0.05, 0.2), opacity_range=(0.5, 0.95))
    camera = random_cameras(1, seed=7, width=24, height=24)
    for term in ("distortion", "normal"):
        grads = {}
        for backend in ("cpu", "reference"):
            params = scene_tensors(scene, torch.float32, requires_grad=True)
            grads[backend] = torch.autograd.grad(_render_terms(params, camera, backend, term), params, allow_unused=True)
        for name, ours, ref in zip(NAMES, grads["cpu"], grads["reference"]):
            if ref is None:
                continue
            cosine = torch.nn.functional.cosine_similarity(ours.flatten().double(), ref.flatten().double(), dim=0)
            assert cosine > 0.99, f"{term} / {name}: cosine {float(cosine):.4f}"


def test_render_terms_gradients_match_finite_differences():
    """Central differences of the reference renderer vs the CPU backward, per parameter."""
    # opaque, overlapping Gaussians: many pixels with alpha > 0.5, so both terms are non-zero
    scene = random_scene(8, seed=8, sh_degree=0, extent=0.4, scale_range=(0.3, 0.5), opacity_range=(0.8, 0.95))
    camera = random_cameras(1, seed=8, width=10, height=10, distance=3.0)
    for term in ("distortion", "normal"):
        params = scene_tensors(scene, torch.float32, requires_grad=True)
        loss = _render_terms(params, camera, "cpu", term)
        assert float(loss.detach()) > 1e-4, f"{term}: the case must exercise the term (loss {float(loss):.3g})"
        analytic = torch.autograd.grad(loss, params, allow_unused=True)
        base = scene_tensors(scene, torch.float64)
        for index in range(4):  # the colour coefficients do not enter these terms
            if analytic[index] is None:
                continue
            step = 1e-3  # the renderer computes in float32: smaller steps measure its rounding
            for k in range(6):  # single coordinates: a random direction over all of them crosses sort swaps
                plus = [t.clone() for t in base]
                minus = [t.clone() for t in base]
                plus[index].view(-1)[k] += step
                minus[index].view(-1)[k] -= step
                numeric = float(_render_terms(plus, camera, "reference", term) - _render_terms(minus, camera, "reference", term)) / (2 * step)
                ours = float(analytic[index].reshape(-1)[k])
                # the normal term's pixel mask (alpha > 0.5) moves under a finite step: a looser bound
                tolerance = 5e-2 if term == "distortion" else 1.2e-1
                assert abs(ours - numeric) <= tolerance * abs(numeric) + 2e-5, f"{term} / {NAMES[index]}[{k}]: {ours:.6g} vs {numeric:.6g}"

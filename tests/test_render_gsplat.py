"""The gsplat backend. Its median-depth / instance post-processing runs on CPU against a pure-torch
stand-in for gsplat's CUDA pair listing; the full parity test needs CUDA and skips without it."""

from __future__ import annotations

import types

import pytest
import torch

from lyra_sim.render import _gsplat, _reference
from lyra_sim.render.api import render
from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene
from conftest import ALL_MODES, assert_parity, random_cameras, random_labels, random_scene
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat needs CUDA; no GPU here")


def fake_meta_and_gsplat(scene: GaussianScene, cams: Camera, pixel_order_seed: int = 0):
    """gsplat's projection (its torch implementation) as ``meta``, and a stand-in module whose
    ``rasterize_to_indices_in_range`` lists blended pairs like the CUDA kernel, but with the
    pixels in a shuffled order (each pixel's own list stays front to back)."""
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    covars, _ = _quat_scale_to_covar_preci(scene.quats, scene.scales(), compute_preci=False, triu=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        scene.means, covars, cams.viewmat, cams.K, cams.width, cams.height, eps2d=0.3, near_plane=cams.near, far_plane=cams.far
    )
    opacities = scene.opacities().expand(len(cams), -1)
    meta = {"means2d": means2d, "conics": conics, "opacities": opacities, "depths": depths, "radii": radii,
            "flatten_ids": torch.zeros(0, dtype=torch.int32), "isect_offsets": None}

    def rasterize_to_indices_in_range(start, end, transmittances, means2d, conics, opacities, width, height, tile, offsets, ids):
        gaussian_ids, pixel_ids, image_ids = [], [], []
        v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        centres = torch.stack([u, v], -1).reshape(-1, 2)
        for c in range(means2d.shape[0]):
            order = [i for i in torch.sort(depths[c], stable=True).indices.tolist() if radii[c, i].max() > 0 and opacities[c, i] >= 1 / 255]
            order = torch.tensor(order, dtype=torch.long)
            conic = torch.stack([conics[c, order, 0], conics[c, order, 1], conics[c, order, 1], conics[c, order, 2]], -1).reshape(-1, 2, 2)
            weights, _ = _reference._composite_block(centres, means2d[c, order], conic, opacities[c, order])
            pixel, slot = torch.nonzero(weights > 0, as_tuple=True)  # row-major: by pixel, then front to back
            gaussian_ids.append(order[slot])
            pixel_ids.append(pixel)
            image_ids.append(torch.full_like(pixel, c))
        gaussian_ids, pixel_ids, image_ids = torch.cat(gaussian_ids), torch.cat(pixel_ids), torch.cat(image_ids)
        # Shuffle whole pixels: only the order inside a pixel carries meaning.
        global_pixel = image_ids * height * width + pixel_ids
        rank = torch.randperm(int(global_pixel.max()) + 1, generator=torch.Generator().manual_seed(pixel_order_seed))
        shuffled = torch.sort(rank[global_pixel], stable=True).indices
        return gaussian_ids[shuffled], pixel_ids[shuffled], image_ids[shuffled]

    return meta, types.SimpleNamespace(rasterize_to_indices_in_range=rasterize_to_indices_in_range)


def test_median_depth_and_instance_from_the_pair_list_match_the_reference():
    scene = random_scene(120, seed=11, opacity_range=(0.3, 0.99), scale_range=(0.05, 0.25))
    cams = random_cameras(2, seed=11, width=20, height=14)
    labels = random_labels(120, count=5, seed=11) * 7 + 3  # sparse, non-contiguous label values
    expected = render(scene, cams, modes=("alpha", "median_depth", "instance"), backend="reference", labels=labels)
    meta, fake = fake_meta_and_gsplat(scene, cams, pixel_order_seed=3)
    pairs = _gsplat._blended_pairs(fake, meta, len(cams), cams.width, cams.height)
    median = _gsplat._median_depth_image(pairs, meta["depths"], len(cams), cams.width, cams.height)
    instance = _gsplat._instance_image(pairs, labels, expected["alpha"], len(cams), cams.width, cams.height)
    assert float((expected["median_depth"] > 0).float().mean()) > 0.2
    assert torch.allclose(median, expected["median_depth"], atol=1e-5)
    assert torch.equal(instance, expected["instance"])
    # The summed weights reproduce alpha: the rebuilt transmittances are right.
    alpha = torch.zeros(len(cams) * cams.height * cams.width, dtype=torch.float64).index_add_(0, pairs["pixel"], pairs["weight"])
    assert torch.allclose(alpha.float().reshape(expected["alpha"].shape), expected["alpha"], atol=1e-5)


def test_empty_scene_outputs_without_calling_gsplat():
    out = _gsplat._empty_outputs(2, 6, 4, torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.0, 1.0]]), ALL_MODES, torch.device("cpu"))
    assert out["rgb"].shape == (2, 4, 6, 3) and torch.allclose(out["rgb"][1, 2, 3], torch.tensor([0.0, 0.0, 1.0]))
    assert bool((out["instance"] == -1).all()) and float(out["alpha"].abs().max()) == 0


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("camera_count", [1, 2, 4])
def test_gsplat_matches_reference_and_cpu(camera_count):
    scene = random_scene(3000, seed=20 + camera_count, sh_degree=3)
    cams = random_cameras(camera_count, seed=20 + camera_count, width=64, height=48)
    labels = random_labels(3000, count=6, seed=camera_count)
    background = torch.rand(camera_count, 3, generator=torch.Generator().manual_seed(camera_count))
    options = dict(modes=ALL_MODES, labels=labels, background=background)
    ours = {k: v.cpu() for k, v in render(scene.to("cuda"), cams.to("cuda"), backend="gsplat", **options).items()}
    for name in ALL_MODES:
        assert ours[name].shape == (camera_count, 48, 64, 3 if name == "rgb" else 1), name
    assert_parity(ours, render(scene, cams, backend="reference", **options))
    assert_parity(ours, render(scene, cams, backend="cpu", **options))


@needs_cuda
@pytest.mark.gpu
def test_gsplat_gradients_match_reference_autograd():
    scene = random_scene(200, seed=30, sh_degree=1, scale_range=(0.08, 0.2))
    cams = random_cameras(2, seed=30, width=32, height=24)
    grads = {}
    for backend, device in (("gsplat", "cuda"), ("reference", "cpu")):
        params = [t.detach().to(device).clone().requires_grad_(True) for t in (scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh)]
        trainable = GaussianScene(*params)
        out = render(trainable, cams.to(device), modes=("rgb", "alpha", "depth"), backend=backend)
        weights = torch.linspace(0.1, 1.0, 7, device=device)
        loss = (torch.cat([out["rgb"], out["alpha"], out["depth"] * 0.1], -1) * weights).sum()
        grads[backend] = [g.cpu() for g in torch.autograd.grad(loss, params)]
    for name, ours, ref in zip(("means", "quats", "log_scales", "opacity_logits", "sh"), grads["gsplat"], grads["reference"]):
        scale = ref.abs().max().clamp_min(1e-6)
        assert (ours - ref).abs().max() / scale < 2e-2, name

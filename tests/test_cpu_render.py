"""The numba CPU backend: its stages (exp polynomial, radix depth sort, tile binning) checked
directly, its images against the torch reference, and its hand-written backward against the
reference's autograd and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lyra_sim.render import _cpu, _cpu_kernels, _reference
from lyra_sim.render.api import render
from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene
from conftest import random_cameras, random_labels, random_scene, scene_tensors

ALL_MODES = ("rgb", "alpha", "depth", "median_depth", "instance")
PARAM_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh")


def backend_kwargs(cams: Camera, sh_degree: int, background: torch.Tensor, modes=("rgb", "alpha", "depth"), labels=None):
    return dict(near=cams.near, far=cams.far, sh_degree=sh_degree, background=background, labels=labels,
                modes=modes, radius_clip=0.0)


def test_fast_exp_relative_error_below_1e_4():
    s = np.linspace(0.0, 5.6, 200_001).astype(np.float32)
    approx = np.array([_cpu_kernels.fast_exp_neg(v) for v in s[::97]], np.float64)
    exact = np.exp(-s[::97].astype(np.float64))
    assert np.max(np.abs(approx / exact - 1.0)) < 1e-4


@pytest.mark.parametrize("n,cameras", [(20_000, 1), (70_000, 1), (9_000, 3)])  # serial, parallel, per-camera
def test_radix_sort_is_a_stable_exact_depth_sort(n, cameras):
    rng = np.random.default_rng(n)
    n_chunks = 5
    depths = rng.uniform(0.05, 80.0, (cameras, n)).astype(np.float32)
    depths[:, ::7] = depths[:, 3:4]  # many ties: stability decides their order
    depths[:, 1::11] = -rng.uniform(0.0, 1.0, depths[:, 1::11].shape).astype(np.float32)  # negative keys first
    bounds = _cpu_kernels.even_chunks(n, n_chunks)
    counts = np.repeat(np.diff(bounds)[None], cameras, 0).astype(np.int64)  # every entry "visible"
    assert (cameras == 1 and n >= _cpu_kernels.PARALLEL_SORT_MIN) == (n == 70_000)  # both paths covered
    region_start = np.repeat(bounds[:-1][None], cameras, 0)
    order, offsets = _cpu_kernels.sort_by_depth(depths.view(np.uint32), region_start, counts, 4)
    assert list(offsets) == [c * n for c in range(cameras + 1)]
    for c in range(cameras):
        np.testing.assert_array_equal(order[c * n:(c + 1) * n], np.argsort(depths[c], kind="stable"))


def test_tile_lists_hold_exactly_the_gaussians_whose_box_reaches_the_tile():
    scene = random_scene(400, seed=11, sh_degree=0)
    cams = random_cameras(2, seed=11, width=50, height=37)
    params = {name: _cpu._as_numpy(t) for name, t in zip(PARAM_NAMES, scene_tensors(scene, torch.float32))}
    params.update(viewmats=_cpu._as_numpy(cams.viewmat), Ks=_cpu._as_numpy(cams.K))
    frame = _cpu._forward(params, 50, 37, cams.near, cams.far, 0, np.zeros((2, 3), np.float32), None, ("alpha",), 0.0)
    tiles_x, tiles_y = frame.tiles_x, frame.tiles_y
    assert (tiles_x, tiles_y) == (4, 3)
    for c in range(2):
        lo, hi = frame.camera_offsets[c], frame.camera_offsets[c + 1]
        depth = frame.packed[lo:hi, _cpu_kernels.REC_Z]
        assert bool(np.all(np.diff(depth) >= 0))  # front to back
        for tile in range(tiles_x * tiles_y):
            job = c * tiles_x * tiles_y + tile
            entries = frame.tile_entries[frame.tile_start[job]:frame.tile_start[job + 1]]
            tx, ty = tile % tiles_x, tile // tiles_x
            rec = frame.packed[lo:hi]
            reaches = ((rec[:, _cpu_kernels.REC_U0] <= tx * 16 + 15) & (rec[:, _cpu_kernels.REC_U1] >= tx * 16)
                       & (rec[:, _cpu_kernels.REC_V0] <= ty * 16 + 15) & (rec[:, _cpu_kernels.REC_V1] >= ty * 16))
            np.testing.assert_array_equal(entries, lo + np.nonzero(reaches)[0])


@pytest.mark.parametrize("sh_degree,cameras,size", [(0, 1, (32, 24)), (1, 3, (37, 19)), (3, 2, (16, 40))])
def test_images_match_the_reference(sh_degree, cameras, size):
    width, height = size
    scene = random_scene(500, seed=sh_degree, sh_degree=sh_degree)
    cams = random_cameras(cameras, seed=sh_degree, width=width, height=height)
    labels = random_labels(500, seed=sh_degree)
    background = torch.rand(cameras, 3, generator=torch.Generator().manual_seed(1))
    ours = render(scene, cams, ALL_MODES, backend="cpu", background=background, labels=labels)
    ref = render(scene, cams, ALL_MODES, backend="reference", background=background, labels=labels)
    assert float((ours["rgb"] - ref["rgb"]).abs().max()) < 1e-3
    assert float((ours["alpha"] - ref["alpha"]).abs().max()) < 1e-3
    hit = ref["alpha"] > 0.05
    assert float(((ours["depth"] - ref["depth"]).abs() / ref["depth"].clamp_min(1e-6))[hit].max()) < 1e-3
    # median depth and instance ids may differ only where a pixel sits on a decision boundary
    median_differs = (ours["median_depth"] - ref["median_depth"]).abs() > 1e-4 * ref["median_depth"].abs() + 1e-6
    assert float(median_differs.float().mean()) < 0.01
    assert float((ours["instance"] != ref["instance"]).float().mean()) < 0.01
    assert ours["instance"].dtype == torch.int32 and ours["rgb"].dtype == torch.float32


def test_batched_render_equals_one_camera_at_a_time():
    scene = random_scene(400, seed=5, sh_degree=2)
    cams = random_cameras(3, seed=5, width=30, height=22)
    labels = random_labels(400, seed=5)
    batched = render(scene, cams, ALL_MODES, backend="cpu", labels=labels, background=(0.3, 0.2, 0.1))
    for c in range(3):
        single = render(scene, cams[c], ALL_MODES, backend="cpu", labels=labels, background=(0.3, 0.2, 0.1))
        for name in ALL_MODES:
            assert torch.equal(single[name][0], batched[name][c]), name


def test_only_requested_modes_and_instance_without_labels():
    scene = random_scene(100, seed=2)
    cams = random_cameras(1, seed=2)
    out = render(scene, cams, ("depth", "instance"), backend="cpu")
    assert set(out) == {"depth", "instance"}
    assert bool((out["instance"] == -1).all())


def test_edge_cases_empty_behind_covering_and_tiny_images():
    cam = Camera.look_at([0.0, -3.0, 0.0], [0.0, 0.0, 0.0], width=20, height=12)
    background = torch.tensor([0.1, 0.2, 0.3])
    out = render(GaussianScene.empty(sh_degree=1), cam, ALL_MODES, backend="cpu", background=background,
                 labels=torch.zeros(0, dtype=torch.int32))
    assert torch.allclose(out["rgb"], background.expand(1, 12, 20, 3))
    assert float(out["alpha"].abs().max()) == 0 and float(out["depth"].abs().max()) == 0
    assert bool((out["instance"] == -1).all())
    scene = random_scene(100, seed=4)
    behind = scene._replace(means=scene.means * 0.3 + torch.tensor([0.0, -5.0, 0.0]))
    out = render(behind, cam, ("rgb", "alpha"), backend="cpu", background=background)
    assert torch.allclose(out["rgb"], background.expand(1, 12, 20, 3)) and float(out["alpha"].max()) == 0
    covering = GaussianScene.from_activated(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]]),
                                            torch.tensor([0.9]), torch.full((1, 3), 20.0))
    near_cam = Camera.look_at([0.0, -0.5, 0.0], [0.0, 0.0, 0.0], width=20, height=12)
    out = render(covering, near_cam, ("rgb", "alpha"), backend="cpu")
    assert torch.allclose(out["alpha"], torch.full((1, 12, 20, 1), 0.9), atol=1e-3)
    assert torch.allclose(out["rgb"][..., 0], torch.full((1, 12, 20), 0.9), atol=1e-3)
    scene = random_scene(200, seed=5)
    for width, height in ((1, 1), (7, 3), (3, 9), (17, 33)):
        small = Camera.look_at([3.0, 1.0, 0.5], [0.0, 0.0, 0.0], fov_deg=40.0, width=width, height=height)
        ours = render(scene, small, ("rgb", "depth"), backend="cpu")
        ref = render(scene, small, ("rgb", "depth"), backend="reference")
        assert ours["rgb"].shape == (1, height, width, 3)
        assert float((ours["rgb"] - ref["rgb"]).abs().max()) < 1e-3


def test_an_opaque_stack_stops_pixels_and_the_tile_exits_early():
    # 40 opaque, wide Gaussians at increasing depth: every pixel stops within the first few,
    # so the tile loop must stop early and the result equals the reference.
    n = 40
    means = torch.zeros(n, 3)
    means[:, 1] = torch.linspace(0.0, 2.0, n)
    scene = GaussianScene.from_activated(means, torch.rand(n, 3, generator=torch.Generator().manual_seed(0)),
                                         torch.full((n,), 0.99), torch.full((n, 3), 3.0))
    cam = Camera.look_at([0.0, -2.0, 0.0], [0.0, 0.0, 0.0], width=16, height=16)
    params = {name: _cpu._as_numpy(t) for name, t in zip(PARAM_NAMES, scene_tensors(scene, torch.float32))}
    params.update(viewmats=_cpu._as_numpy(cam.viewmat), Ks=_cpu._as_numpy(cam.K))
    frame = _cpu._forward(params, 16, 16, cam.near, cam.far, 0, np.zeros((1, 3), np.float32), None, ("rgb",), 0.0,
                          for_backward=True)
    assert frame.tile_entries.shape[0] == n and frame.tile_end[0] < n
    assert bool((frame.stop < n).all())
    ref = render(scene, cam, ("rgb", "alpha"), backend="reference")
    ours = render(scene, cam, ("rgb", "alpha"), backend="cpu")
    assert float((ours["rgb"] - ref["rgb"]).abs().max()) < 1e-3


def _image_loss(outputs: dict, weights: dict) -> torch.Tensor:
    return sum((outputs[m].double() * weights[m]).sum() for m in weights)


def _random_weights(cameras: int, height: int, width: int, modes) -> dict:
    g = torch.Generator().manual_seed(3)
    channels = {"rgb": 3, "alpha": 1, "depth": 1}
    return {m: torch.randn(cameras, height, width, channels[m], generator=g, dtype=torch.float64) for m in modes}


@pytest.mark.parametrize("modes,sh_degree,cameras", [(("rgb", "alpha", "depth"), 3, 2), (("rgb",), 1, 1), (("depth",), 0, 1), (("alpha", "median_depth"), 2, 2)])
def test_gradients_match_the_reference_autograd(modes, sh_degree, cameras):
    width, height = 28, 20
    scene = random_scene(150, seed=10 + sh_degree, sh_degree=sh_degree)
    cams = random_cameras(cameras, seed=10 + sh_degree, width=width, height=height)
    background = torch.rand(cameras, 3, generator=torch.Generator().manual_seed(2))
    weights = _random_weights(cameras, height, width, [m for m in modes if m in ("rgb", "alpha", "depth")])
    ours = scene_tensors(scene, torch.float32, requires_grad=True)
    out = _cpu.rasterize(*ours, cams.viewmat, cams.K, width, height, **backend_kwargs(cams, sh_degree, background, modes))
    assert set(out) == set(modes)
    _image_loss(out, weights).backward()
    ref = scene_tensors(scene, torch.float64, requires_grad=True)
    ref_out = _reference.rasterize(*ref, cams.viewmat.double(), cams.K.double(), width, height,
                                   **backend_kwargs(cams, sh_degree, background.double(), modes))
    _image_loss(ref_out, weights).backward()
    for name, a, b in zip(PARAM_NAMES, ours, ref):
        expected = b.grad if b.grad is not None else torch.zeros_like(b)  # sh gets none without rgb
        relative = float((a.grad.double() - expected).norm() / expected.norm().clamp_min(1e-12))
        assert relative < 2e-3, f"{name}: relative error {relative:.2e}"


def test_gradients_match_finite_differences():
    # A few Gaussians, float32 forward: central differences with a step large enough to beat
    # float32 noise, compared on the coordinates that matter most.
    width, height = 20, 16
    scene = random_scene(6, seed=21, sh_degree=1, scale_range=(0.2, 0.4), opacity_range=(0.4, 0.8))
    cams = random_cameras(1, seed=21, width=width, height=height, distance=3.0)
    background = torch.tensor([[0.1, 0.4, 0.2]])
    weights = _random_weights(1, height, width, ("rgb", "alpha", "depth"))
    kwargs = backend_kwargs(cams, 1, background)
    tensors = scene_tensors(scene, torch.float32, requires_grad=True)
    _image_loss(_cpu.rasterize(*tensors, cams.viewmat, cams.K, width, height, **kwargs), weights).backward()
    step = 2e-3
    for index, tensor in enumerate(tensors):
        flat_grad = tensor.grad.reshape(-1)
        for coordinate in torch.argsort(flat_grad.abs(), descending=True)[:4].tolist():
            values = []
            for sign in (1.0, -1.0):
                shifted = [t.detach().clone() for t in tensors]
                shifted[index].view(-1)[coordinate] += sign * step
                with torch.no_grad():
                    values.append(float(_image_loss(_cpu.rasterize(*shifted, cams.viewmat, cams.K, width, height, **kwargs), weights)))
            numeric = (values[0] - values[1]) / (2 * step)
            analytic = float(flat_grad[coordinate])
            assert abs(numeric - analytic) <= 0.03 * abs(analytic) + 2e-2, (PARAM_NAMES[index], coordinate, numeric, analytic)


def test_backward_runs_only_when_a_scene_tensor_requires_grad():
    scene = random_scene(50, seed=1)
    cams = random_cameras(1, seed=1)
    kwargs = backend_kwargs(cams, 1, torch.zeros(1, 3))
    plain = _cpu.rasterize(*scene_tensors(scene, torch.float32), cams.viewmat, cams.K, 32, 24, **kwargs)
    assert all(t.grad_fn is None for t in plain.values())
    tracked = _cpu.rasterize(*scene_tensors(scene, torch.float32, requires_grad=True), cams.viewmat, cams.K, 32, 24, **kwargs)
    assert tracked["rgb"].grad_fn is not None
    with torch.no_grad():
        again = _cpu.rasterize(*scene_tensors(scene, torch.float32, requires_grad=True), cams.viewmat, cams.K, 32, 24, **kwargs)
    assert again["rgb"].grad_fn is None
    assert torch.equal(plain["rgb"], tracked["rgb"].detach())


def test_bad_input_shapes_raise_clear_errors():
    scene = random_scene(10, seed=1)
    cams = random_cameras(2, seed=1)
    kwargs = backend_kwargs(cams, 1, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"quats must have shape \[10, 4\], got \[9, 4\]"):
        _cpu.rasterize(scene.means, scene.quats[:9], scene.log_scales, scene.opacity_logits, scene.sh,
                       cams.viewmat, cams.K, 32, 24, **kwargs)
    with pytest.raises(ValueError, match=r"Ks must have shape \[2, 3, 3\]"):
        _cpu.rasterize(scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh,
                       cams.viewmat, cams.K[:1], 32, 24, **kwargs)


def test_float64_inputs_get_float64_gradients():
    scene = random_scene(40, seed=3)
    cams = random_cameras(1, seed=3)
    tensors = scene_tensors(scene, torch.float64, requires_grad=True)
    out = _cpu.rasterize(*tensors, cams.viewmat, cams.K, 32, 24, **backend_kwargs(cams, 1, torch.zeros(1, 3)))
    assert out["rgb"].dtype == torch.float32  # the kernels render in float32
    (out["rgb"].sum() + out["depth"].sum()).backward()
    for tensor in tensors:
        assert tensor.grad.dtype == torch.float64 and bool(torch.isfinite(tensor.grad).all())
    assert float(tensors[0].grad.abs().sum()) > 0


def test_job_order_is_a_permutation_whose_halves_cover_the_whole_range():
    for n in (1, 2, 7, 64, 100):
        order = _cpu_kernels.job_order(n)
        assert sorted(order.tolist()) == list(range(n))
    first_half = _cpu_kernels.job_order(64)[:32]  # what thread 0 of 2 gets
    assert set(first_half.tolist()) == set(range(0, 64, 2))

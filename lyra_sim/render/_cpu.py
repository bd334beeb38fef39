"""The CPU render backend: numba kernels (``_cpu_kernels``) behind the shared backend signature.

``rasterize`` runs projection -> depth sort -> tile binning -> rasterisation, batched over
cameras, and returns torch tensors [C, H, W, ch]. When a scene tensor requires grad (and rgb,
alpha or depth is asked for) it goes through ``_RasterizeFunction``, whose forward keeps what
the hand-written backward needs. This module imports torch, numpy, numba and the kernels only.
"""

from __future__ import annotations

import time

import numba
import numpy as np
import torch

from lyra_sim.render import _cpu_kernels as kernels

DIFFERENTIABLE_MODES = ("rgb", "alpha", "depth")
# Gaussians per projection chunk: enough chunks for load balance, few enough that the per-chunk
# visible-count bookkeeping stays negligible.
_PROJECTION_CHUNK = 4096


def _as_numpy(tensor: torch.Tensor, dtype=np.float32) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=dtype)


def _check(name: str, array: np.ndarray, shape: tuple) -> None:
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {expected}, got {list(array.shape)}")


class _StageClock:
    """Adds the seconds since the previous lap to ``timings[name]`` (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.last = timings, time.perf_counter()

    def lap(self, name: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
            self.last = now


class _Frame:
    """Everything one forward pass produced: images, plus the state the backward reuses."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def prepare_arrays(means: np.ndarray, quats: np.ndarray, log_scales: np.ndarray, opacity_logits: np.ndarray,
                   sh: np.ndarray) -> dict[str, np.ndarray]:
    """The per-scene SoA float32 arrays of ``kernels.prepare_gaussians`` (computed in parallel)."""
    n = means.shape[0]
    arrays = {"positions": np.empty((3, n), np.float32), "covariances": np.empty((6, n), np.float32),
              "opacity": np.empty(n, np.float32), "sigma_max": np.empty(n, np.float32),
              "extent": np.empty(n, np.float32), "max_scale": np.empty(n, np.float32),
              "colours": np.empty((3, n), np.float32)}
    if n:
        kernels.prepare_gaussians(means, quats, log_scales, opacity_logits, sh, arrays["positions"],
                                  arrays["covariances"], arrays["opacity"], arrays["sigma_max"], arrays["extent"],
                                  arrays["max_scale"], arrays["colours"])
    return arrays


def _forward(params: dict[str, np.ndarray], width: int, height: int, near: float, far: float, sh_degree: int,
             background: np.ndarray, labels: np.ndarray | None, modes: tuple[str, ...], radius_clip: float,
             timings: dict[str, float] | None = None, for_backward: bool = False,
             prepared: dict[str, np.ndarray] | None = None, ranges: np.ndarray | None = None) -> _Frame:
    """Run the stages; ``timings``, when given, receives seconds per stage (benchmarks).

    ``params`` holds the raw scene arrays (only ``sh`` is read when ``prepared``, the arrays of
    ``prepare_arrays``, is given) and the cameras; ``ranges`` [C, 2] limits camera c to
    Gaussians [ranges[c, 0], ranges[c, 1]) (None: all of them).
    """
    clock = _StageClock(timings)
    viewmats, Ks = params["viewmats"], params["Ks"]
    n_cams = viewmats.shape[0]
    threads = numba.get_num_threads()
    want_rgb = "rgb" in modes
    want_instance = "instance" in modes and labels is not None
    if prepared is None:
        prepared = prepare_arrays(params["means"], params["quats"], params["log_scales"], params["opacity_logits"],
                                  params["sh"])
        clock.lap("prepare")
    n_gaussians = prepared["opacity"].shape[0]
    if ranges is None:
        ranges = np.zeros((n_cams, 2), np.int64)
        ranges[:, 1] = n_gaussians
    bounds = kernels.camera_jobs(ranges, _PROJECTION_CHUNK)
    proj, source, depth_keys, counts, region_start = kernels.project(
        prepared["positions"], prepared["covariances"], prepared["opacity"], prepared["sigma_max"], prepared["extent"],
        prepared["max_scale"], prepared["colours"], params["sh"], viewmats, Ks, float(width), float(height),
        float(near), float(far), sh_degree, float(radius_clip), want_rgb, bounds,
    )
    clock.lap("project")
    order, camera_offsets = kernels.sort_by_depth(depth_keys.view(np.uint32), region_start, counts, 4 * threads)
    clock.lap("sort")

    tiles_x = -(-width // kernels.TILE)
    tiles_y = -(-height // kernels.TILE)
    label_array = labels if want_instance else np.zeros(0, np.int32)
    bin_chunks = max(1, min(4 * threads, order.shape[0] // 4096))
    packed, packed_source, packed_label, tile_start, tile_entries = kernels.bin_tiles(
        proj, source, order, camera_offsets, label_array, tiles_x, tiles_y, bin_chunks
    )
    clock.lap("bin")

    def image(channels: int, wanted: bool, dtype=np.float32) -> np.ndarray:
        return np.empty((n_cams, height, width, channels) if wanted else (0, 0, 0, channels), dtype)

    out_rgb = image(3, want_rgb)
    out_alpha = image(1, True)
    out_depth = image(1, "depth" in modes)
    out_median = image(1, "median_depth" in modes)
    out_instance = image(1, want_instance, np.int32)
    transmittance = np.empty((n_cams, height, width), np.float32)
    stop = np.empty((n_cams, height, width), np.int32)
    tile_end = np.empty(n_cams * tiles_x * tiles_y, np.int64)
    kernels.rasterize_tiles(
        packed, packed_label, tile_start, tile_entries, n_cams, width, height, tiles_x, tiles_y, background,
        want_rgb, "depth" in modes, "median_depth" in modes, want_instance, for_backward,
        out_rgb, out_alpha, out_depth, out_median, out_instance, transmittance, stop, tile_end,
    )
    clock.lap("rasterize")
    return _Frame(
        rgb=out_rgb, alpha=out_alpha, depth=out_depth, median_depth=out_median, instance=out_instance,
        transmittance=transmittance, stop=stop, tile_end=tile_end, packed=packed, packed_source=packed_source,
        source=source, order=order, camera_offsets=camera_offsets, tile_start=tile_start, tile_entries=tile_entries,
        tiles_x=tiles_x, tiles_y=tiles_y,
    )


def _slots(frame: _Frame, n_cams: int, n_gaussians: int) -> np.ndarray:  # [C, N] packed row or -1
    slot = np.full((n_cams, n_gaussians), -1, np.int32)
    for c in range(n_cams):
        lo, hi = frame.camera_offsets[c], frame.camera_offsets[c + 1]
        slot[c, frame.packed_source[lo:hi]] = np.arange(lo, hi, dtype=np.int32)
    return slot


def _backward(frame: _Frame, params: dict[str, np.ndarray], width: int, height: int, sh_degree: int,
              background: np.ndarray, grad_rgb: np.ndarray, grad_alpha: np.ndarray, grad_depth: np.ndarray,
              want_color: bool, timings: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Gradients of the loss w.r.t. the raw Gaussian parameters, from the image gradients."""
    clock = _StageClock(timings)
    means = params["means"]
    n_gaussians, n_cams = means.shape[0], params["viewmats"].shape[0]
    threads = numba.get_num_threads()
    grad_buffer = np.zeros((threads, frame.packed.shape[0], kernels.GRAD_WIDTH), np.float32)
    kernels.rasterize_tiles_backward(
        frame.packed, frame.tile_start, frame.tile_entries, frame.tile_end, n_cams, width, height,
        frame.tiles_x, frame.tiles_y, background, frame.alpha, frame.depth, frame.transmittance, frame.stop,
        grad_rgb, grad_alpha, grad_depth, grad_buffer,
    )
    clock.lap("rasterize_backward")
    # uninitialised: project_backward writes every element (zeros included)
    grads = {name: np.empty_like(params[name]) for name in _PARAM_NAMES}
    kernels.project_backward(
        means, params["quats"], params["log_scales"], params["opacity_logits"], params["sh"], params["viewmats"],
        params["Ks"], float(width), float(height), sh_degree, frame.packed, _slots(frame, n_cams, n_gaussians),
        grad_buffer, want_color, grads["means"], grads["quats"], grads["log_scales"], grads["opacity_logits"], grads["sh"],
    )
    clock.lap("project_backward")
    return grads


_PARAM_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh")


class _RasterizeFunction(torch.autograd.Function):
    """rgb/alpha/depth (and any non-differentiable extras) with the numba backward."""

    @staticmethod
    def forward(ctx, means, quats, log_scales, opacity_logits, sh, settings):
        params = {name: _as_numpy(t) for name, t in zip(_PARAM_NAMES, (means, quats, log_scales, opacity_logits, sh))}
        params.update(settings["cameras"])
        frame = _forward(params, **settings["forward"], for_backward=True)
        ctx.frame, ctx.params, ctx.settings = frame, params, settings
        ctx.input_types = [(t.dtype, t.device) for t in (means, quats, log_scales, opacity_logits, sh)]
        outputs = _outputs(frame, settings["forward"]["modes"], settings["labels_given"])
        ctx.mode_order = tuple(outputs)
        tensors = tuple(outputs.values())
        ctx.mark_non_differentiable(*(t for name, t in outputs.items() if name not in DIFFERENTIABLE_MODES))
        return tensors

    @staticmethod
    def backward(ctx, *grad_outputs):
        frame, settings = ctx.frame, ctx.settings
        forward = settings["forward"]
        n_cams = ctx.params["viewmats"].shape[0]
        empty = np.zeros((0, 0, 0, 1), np.float32)
        grads = {"rgb": np.zeros((0, 0, 0, 3), np.float32), "alpha": empty, "depth": empty}
        for name, grad in zip(ctx.mode_order, grad_outputs):
            if name in DIFFERENTIABLE_MODES and grad is not None:
                grads[name] = _as_numpy(grad)
        assert n_cams == forward["background"].shape[0]
        result = _backward(
            frame, ctx.params, forward["width"], forward["height"], forward["sh_degree"], forward["background"],
            grads["rgb"], grads["alpha"], grads["depth"], "rgb" in forward["modes"],
        )
        # the kernels work in float32 on the host: hand back gradients like the inputs
        return tuple(torch.from_numpy(result[name]).to(dtype=dtype, device=device)
                     for name, (dtype, device) in zip(_PARAM_NAMES, ctx.input_types)) + (None,)


def _outputs(frame: _Frame, modes: tuple[str, ...], labels_given: bool) -> dict[str, torch.Tensor]:
    out = {}
    for mode in modes:
        if mode == "instance" and not labels_given:
            shape = frame.alpha.shape
            out[mode] = torch.full(shape, -1, dtype=torch.int32)
        else:
            out[mode] = torch.from_numpy(getattr(frame, mode))
    return out


def rasterize(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4]
    log_scales: torch.Tensor,  # [N, 3]
    opacity_logits: torch.Tensor,  # [N]
    sh: torch.Tensor,  # [N, K, 3]
    viewmats: torch.Tensor,  # [C, 4, 4]
    Ks: torch.Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    near: float,
    far: float,
    sh_degree: int,
    background: torch.Tensor | None,  # [C, 3]
    labels: torch.Tensor | None,  # [N] int32
    modes: tuple[str, ...],
    radius_clip: float,
    prepared=None,  # a lyra_sim.render.prepared.PreparedScene of these tensors
    ranges: np.ndarray | None = None,  # [C, 2] int64 Gaussian range per camera
) -> dict[str, torch.Tensor]:
    """Render C cameras on the CPU; returns the requested images [C, H, W, ch] (float32, instance int32).

    Same maths and signature as ``lyra_sim.render._reference.rasterize``; exp is a polynomial
    with relative error < 1e-4. Differentiable w.r.t. the five scene tensors for rgb, alpha
    and depth when any of them requires grad. ``prepared`` (forward only) skips the
    per-scene preparation; ``ranges`` gives each camera its own slice of the Gaussians.
    """
    width, height = int(width), int(height)
    if width < 1 or height < 1:
        raise ValueError(f"image size must be at least 1x1, got {width}x{height}")
    cameras = {"viewmats": _as_numpy(viewmats), "Ks": _as_numpy(Ks)}
    if cameras["viewmats"].ndim == 2:
        cameras = {"viewmats": cameras["viewmats"][None], "Ks": cameras["Ks"].reshape(1, 3, 3)}
    n_cams = cameras["viewmats"].shape[0]
    _check("viewmats", cameras["viewmats"], (None, 4, 4))
    _check("Ks", cameras["Ks"], (n_cams, 3, 3))
    if means.dim() != 2 or means.shape[1] != 3:
        raise ValueError(f"means must have shape [N, 3], got {list(means.shape)}")
    n_gaussians = means.shape[0]
    for name, tensor, shape in (("quats", quats, (n_gaussians, 4)), ("log_scales", log_scales, (n_gaussians, 3)),
                                ("opacity_logits", opacity_logits, (n_gaussians,)), ("sh", sh, (n_gaussians, None, 3))):
        if tensor.dim() != len(shape) or any(s is not None and s != t for s, t in zip(shape, tensor.shape)):
            expected = "[" + ", ".join("K" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"{name} must have shape {expected}, got {list(tensor.shape)}")
    stored_degree = int(round(sh.shape[1] ** 0.5)) - 1
    if (stored_degree + 1) ** 2 != sh.shape[1] or stored_degree > 3:
        raise ValueError(f"sh must hold (degree+1)^2 <= 16 coefficients per channel, got {sh.shape[1]}")
    sh_degree = max(0, min(int(sh_degree), stored_degree))
    background_array = np.zeros((n_cams, 3), np.float32) if background is None else _as_numpy(background).reshape(-1, 3)
    if background_array.shape[0] == 1 and n_cams > 1:
        background_array = np.repeat(background_array, n_cams, axis=0)
    _check("background", background_array, (n_cams, 3))
    labels_array = None
    if labels is not None:
        labels_array = _as_numpy(torch.as_tensor(labels), np.int32)
        _check("labels", labels_array, (n_gaussians,))

    forward = dict(width=width, height=height, near=float(near), far=float(far), sh_degree=sh_degree,
                   background=background_array, labels=labels_array, modes=tuple(modes), radius_clip=float(radius_clip),
                   ranges=ranges)
    params = (means, quats, log_scales, opacity_logits, sh)
    needs_grad = (torch.is_grad_enabled() and any(t.requires_grad for t in params)
                  and any(m in DIFFERENTIABLE_MODES for m in modes))
    if needs_grad:
        settings = {"cameras": cameras, "forward": forward, "labels_given": labels_array is not None}
        tensors = _RasterizeFunction.apply(*params, settings)
        return dict(zip(tuple(dict.fromkeys(modes)), tensors))
    if prepared is not None:
        numpy_params = {"sh": prepared.sh, **cameras}  # the kernels read only the bands asked for
        frame = _forward(numpy_params, **forward, prepared=prepared.arrays)
    else:
        numpy_params = {name: _as_numpy(t) for name, t in zip(_PARAM_NAMES, params)}
        numpy_params.update(cameras)
        frame = _forward(numpy_params, **forward)
    return _outputs(frame, tuple(dict.fromkeys(modes)), labels_array is not None)

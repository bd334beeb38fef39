"""The gsplat (CUDA) backend: ``gsplat.rasterization`` with the conventions of ``_reference``.

rgb, alpha and depth come from one ``gsplat.rasterization`` call (packed=False, eps2d=0.3,
classic mode, "RGB+ED"), so gsplat's own CUDA backward gives the gradients. median_depth and
instance are not linear in the blending weights, so they come from an extra pass:
``gsplat.rasterize_to_indices_in_range`` lists every (Gaussian, pixel) pair that gsplat blends,
in blending order, and the transmittance along each pixel's list is rebuilt in torch.

gsplat is imported lazily; ``lyra_sim.render.api`` selects this backend only with CUDA
(gsplat 1.5 tries to compile its extension on first use and fails without a GPU).
"""

from __future__ import annotations

import torch

from lyra_sim.errors import MissingDependencyError
from lyra_sim.render._reference import INSTANCE_MIN_ALPHA, MAX_ALPHA, MEDIAN_TRANSMITTANCE

TILE_SIZE = 16


def _import_gsplat():
    try:
        import gsplat
    except ImportError as error:
        raise MissingDependencyError(
            f"render backend 'gsplat' needs the gsplat package ({error}); `pip install gsplat` on a CUDA machine"
        ) from None
    return gsplat


def _empty_outputs(camera_count, width, height, background, modes, device) -> dict[str, torch.Tensor]:
    """Outputs for a scene without Gaussians (gsplat's kernels do not accept N = 0)."""
    out = {}
    if "rgb" in modes:
        out["rgb"] = background.to(device, torch.float32)[:, None, None, :].expand(camera_count, height, width, 3).clone()
    for name in ("alpha", "depth", "median_depth"):
        if name in modes:
            out[name] = torch.zeros(camera_count, height, width, 1, device=device)
    if "instance" in modes:
        out["instance"] = torch.full((camera_count, height, width, 1), -1, dtype=torch.int32, device=device)
    return out


def _blended_pairs(gsplat, meta: dict, camera_count: int, width: int, height: int):
    """Every (Gaussian, pixel) pair gsplat blends, with its weight and transmittances.

    Returns a dict of 1-D tensors over pairs, ordered by global pixel and, within a pixel, front
    to back: ``pixel`` (camera * H * W + row * W + col), ``gaussian``, ``camera``, ``weight``
    (α T before), ``transmittance_before`` and ``transmittance_after``.
    """
    device = meta["means2d"].device
    flatten_ids = meta["flatten_ids"]
    # Enough batches of TILE_SIZE² Gaussians for the fullest tile: the whole list, one pass.
    batches = flatten_ids.numel() // (TILE_SIZE * TILE_SIZE) + 1
    gaussian, pixel_in_image, camera = gsplat.rasterize_to_indices_in_range(
        0,
        batches,
        torch.ones(camera_count, height, width, device=device),
        meta["means2d"],
        meta["conics"],
        meta["opacities"],
        width,
        height,
        TILE_SIZE,
        meta["isect_offsets"],
        flatten_ids,
    )
    gaussian, camera = gaussian.long(), camera.long()
    pixel = camera * (height * width) + pixel_in_image.long()
    # gsplat writes each pixel's pairs contiguously in blending order; a stable sort by pixel
    # keeps that order and does not depend on how the pixels themselves are laid out.
    order = torch.sort(pixel, stable=True).indices
    pixel, gaussian, camera, pixel_in_image = pixel[order], gaussian[order], camera[order], pixel_in_image.long()[order]

    mean2d = meta["means2d"][camera, gaussian].double()  # [M, 2]
    conic = meta["conics"][camera, gaussian].double()  # [M, 3]
    opacity = meta["opacities"][camera, gaussian].double()  # [M]
    dx = mean2d[:, 0] - ((pixel_in_image % width).double() + 0.5)
    dy = mean2d[:, 1] - ((pixel_in_image // width).double() + 0.5)
    sigma = 0.5 * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) + conic[:, 1] * dx * dy
    alpha = torch.clamp_max(opacity * torch.exp(-sigma), MAX_ALPHA)  # gsplat kept only α >= 1/255

    # Transmittance along each pixel's list: a segmented exclusive product, done as a cumulative
    # sum of log(1 - α) minus its value at the segment start (float64 keeps it exact enough).
    log_keep = torch.log1p(-alpha)
    before_log = torch.cumsum(log_keep, 0) - log_keep
    _, counts = torch.unique_consecutive(pixel, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    segment_start = torch.repeat_interleave(starts, counts)
    transmittance_before = torch.exp(before_log - before_log[segment_start]) if len(pixel) else alpha
    return {
        "pixel": pixel,
        "gaussian": gaussian,
        "camera": camera,
        "weight": alpha * transmittance_before,
        "transmittance_before": transmittance_before,
        "transmittance_after": transmittance_before * (1.0 - alpha),
    }


def _median_depth_image(pairs, depths, camera_count, width, height) -> torch.Tensor:  # [C, H, W, 1]
    image = torch.zeros(camera_count * height * width, dtype=torch.float32, device=depths.device)
    crossing = (pairs["transmittance_after"] <= MEDIAN_TRANSMITTANCE) & (pairs["transmittance_before"] > MEDIAN_TRANSMITTANCE)
    image[pairs["pixel"][crossing]] = depths[pairs["camera"][crossing], pairs["gaussian"][crossing]].float()
    return image.reshape(camera_count, height, width, 1)


def _instance_image(pairs, labels, alpha, camera_count, width, height) -> torch.Tensor:  # [C, H, W, 1] int32
    """Per pixel the label with the largest summed weight (ties: the smallest label)."""
    pixel_count = camera_count * height * width
    label_values, label_index = torch.unique(labels.long(), sorted=True, return_inverse=True)
    label_count = len(label_values)
    # Sum weights per (pixel, label) without a dense [pixels, labels] table.
    keys, key_index = torch.unique(pairs["pixel"] * label_count + label_index[pairs["gaussian"]], return_inverse=True)
    sums = torch.zeros(len(keys), dtype=torch.float64, device=keys.device).index_add_(0, key_index, pairs["weight"])
    key_pixel, key_label = keys // label_count, keys % label_count
    best = torch.full((pixel_count,), -1.0, dtype=torch.float64, device=keys.device)
    best = best.scatter_reduce(0, key_pixel, sums, reduce="amax")
    is_best = sums == best[key_pixel]
    winner = torch.full((pixel_count,), label_count, dtype=torch.long, device=keys.device)
    winner = winner.scatter_reduce(0, key_pixel[is_best], key_label[is_best], reduce="amin")
    instance = torch.where(winner < label_count, label_values[winner.clamp_max(label_count - 1)], torch.full_like(winner, -1))
    instance = torch.where(alpha.reshape(-1) >= INSTANCE_MIN_ALPHA, instance, torch.full_like(instance, -1))
    return instance.to(torch.int32).reshape(camera_count, height, width, 1)


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
    background: torch.Tensor,  # [C, 3]
    labels: torch.Tensor | None,  # [N] int32
    modes: tuple[str, ...],
    radius_clip: float,
) -> dict[str, torch.Tensor]:
    """Render C cameras with gsplat; same signature and outputs as ``_reference.rasterize``."""
    gsplat = _import_gsplat()
    camera_count, device = viewmats.shape[0], means.device
    if means.shape[0] == 0:
        return _empty_outputs(camera_count, width, height, background, modes, device)
    want_rgb, want_depth = "rgb" in modes, "depth" in modes
    if want_rgb:
        render_mode, colors, degree = ("RGB+ED" if want_depth else "RGB"), sh, sh_degree
    else:  # depth and/or alpha only: gsplat replaces colours by depth in "ED" mode
        render_mode, colors, degree = "ED", torch.zeros(means.shape[0], 1, device=device), None
    rendered, alpha, meta = gsplat.rasterization(
        means.contiguous(),
        quats.contiguous(),
        torch.exp(log_scales).contiguous(),
        torch.sigmoid(opacity_logits).contiguous(),
        colors.contiguous(),
        viewmats.float().contiguous(),
        Ks.float().contiguous(),
        width,
        height,
        near_plane=near,
        far_plane=far,
        radius_clip=radius_clip,
        eps2d=0.3,
        sh_degree=degree,
        packed=False,
        tile_size=TILE_SIZE,
        backgrounds=background.float().contiguous() if want_rgb else None,
        render_mode=render_mode,
        rasterize_mode="classic",
    )
    out: dict[str, torch.Tensor] = {}
    if want_rgb:
        out["rgb"] = rendered[..., :3]
    if "alpha" in modes:
        out["alpha"] = alpha
    if want_depth:
        out["depth"] = rendered[..., -1:]
    if "median_depth" in modes or "instance" in modes:
        with torch.no_grad():
            pairs = _blended_pairs(gsplat, meta, camera_count, width, height)
            if "median_depth" in modes:
                out["median_depth"] = _median_depth_image(pairs, meta["depths"], camera_count, width, height)
            if "instance" in modes:
                if labels is None:
                    out["instance"] = torch.full((camera_count, height, width, 1), -1, dtype=torch.int32, device=device)
                else:
                    out["instance"] = _instance_image(pairs, labels.to(device), alpha.detach(), camera_count, width, height)
    return out

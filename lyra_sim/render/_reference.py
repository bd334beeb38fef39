"""The slow, readable torch reference renderer: the agreed maths, nothing else.

Every backend (``_cpu`` numba, ``_gsplat`` CUDA) is tested against this module on outputs and
gradients. It is plain torch, so autograd differentiates it, it runs on any device and in any
floating dtype (float64 for gradient checks). It imports torch and ``lyra_sim.scene`` only.

The maths (gsplat 1.x conventions; the contract every backend implements):

* p = R m + t; Gaussians with z <= near or z >= far are culled.
* Σ2d = J R Σ3d Rᵀ Jᵀ + 0.3 I with the gsplat Jacobian (x/z, y/z clamped to 1.3x the frustum),
  Σ3d = R_q diag(s²) R_qᵀ; Gaussians with det(Σ2d) <= 0 are culled.
* colour = max(eval_sh(sh, normalize(m - camera centre)), 0).
* Front to back over Gaussians sorted by z (stable: ties keep index order): σ = ½ dᵀ Σ2d⁻¹ d with
  d = mean2d - pixel centre, α = min(0.999, o·exp(-σ)); α < 1/255 is skipped; a Gaussian whose
  next transmittance T·(1-α) would be <= 1e-4 ends the pixel and is not added.
* radius (for ``radius_clip`` only): gsplat's opacity-aware box, per axis
  ceil(k·sqrt(Σ2d[a,a])) with k = min(3.33, sqrt(2 ln(255 o))); a Gaussian is skipped when both
  are <= radius_clip. No pixel with α >= 1/255 lies outside that box, so the box does not
  change which pixels a Gaussian reaches; this module uses it (unrounded) only to skip work.
* Outputs with blending weights w = α·T: rgb = Σ w·c + T_final·background; alpha = 1 - T_final
  (= Σ w); depth = Σ w·z / alpha (0 where alpha = 0); median_depth = z of the first blended
  Gaussian after which T <= 0.5 (0 if none); instance = the label with the largest Σ w (ties: the
  smallest label), -1 where alpha < 0.5 or without labels.
"""

from __future__ import annotations

import torch

from lyra_sim.rotations import quat_to_matrix
from lyra_sim.scene.sh import eval_sh

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
TRANSMITTANCE_STOP = 1e-4
BLUR_EPS = 0.3  # 3DGS screen-space dilation, in pixels²
MEDIAN_TRANSMITTANCE = 0.5
INSTANCE_MIN_ALPHA = 0.5
TILE = 16  # pixels per side of the blocks this module loops over (a work split, not maths)
MAX_BOX_EXTENT = 3.33  # gsplat's cap on the opacity-aware extent, in standard deviations


def project_gaussians(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4]
    log_scales: torch.Tensor,  # [N, 3]
    viewmat: torch.Tensor,  # [4, 4]
    K: torch.Tensor,  # [3, 3]
    width: int,
    height: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA projection of 3D Gaussians into one camera.

    Returns ``mean2d`` [N, 2] (pixels), ``depth`` [N] (camera z) and ``cov2d`` [N, 2, 2]
    (dilated by 0.3 px²). Culling is left to the caller.
    """
    rotation, translation = viewmat[:3, :3], viewmat[:3, 3]
    p_cam = means @ rotation.T + translation  # [N, 3]
    x, y, z = p_cam.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    # gsplat clamps the Jacobian's x/z, y/z to 1.3x the frustum, which keeps Gaussians far off
    # screen from blowing up into huge 2D ellipses.
    tan_half_x, tan_half_y = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_half_x, cx / fx + 0.3 * tan_half_x
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_half_y, cy / fy + 0.3 * tan_half_y
    tx = torch.minimum(torch.maximum(x / z, -lim_x_neg), lim_x_pos)
    ty = torch.minimum(torch.maximum(y / z, -lim_y_neg), lim_y_pos)
    zeros = torch.zeros_like(z)
    jacobian = torch.stack(
        [torch.stack([fx / z, zeros, -fx * tx / z], -1), torch.stack([zeros, fy / z, -fy * ty / z], -1)], -2
    )  # [N, 2, 3]

    unit_quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scaled_axes = quat_to_matrix(unit_quats) * torch.exp(log_scales).unsqueeze(-2)  # R_q diag(s)
    cov_world = scaled_axes @ scaled_axes.transpose(-1, -2)  # [N, 3, 3]
    cov_cam = rotation @ cov_world @ rotation.T
    cov2d = jacobian @ cov_cam @ jacobian.transpose(-1, -2)
    cov2d = cov2d + BLUR_EPS * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    mean2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    return mean2d, z, cov2d


def gaussian_colors(
    means: torch.Tensor,  # [N, 3]
    sh: torch.Tensor,  # [N, K, 3]
    camera_position: torch.Tensor,  # [3]
    sh_degree: int,
) -> torch.Tensor:  # [N, 3]
    """View-dependent colour of each Gaussian, clamped at 0 (gsplat: max(sh + 0.5, 0))."""
    directions = means - camera_position
    directions = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return eval_sh(sh, directions, sh_degree).clamp_min(0.0)


def opacity_aware_extent(opacities: torch.Tensor) -> torch.Tensor:  # [N] -> [N]
    """Mahalanobis extent (in standard deviations) beyond which α < 1/255, capped at 3.33."""
    ratio = (opacities / ALPHA_THRESHOLD).clamp_min(1.0)
    return torch.sqrt(2.0 * torch.log(ratio)).clamp_max(MAX_BOX_EXTENT)


def _composite_block(
    pixel_centres: torch.Tensor,  # [P, 2]
    mean2d: torch.Tensor,  # [M, 2], sorted front to back
    conic: torch.Tensor,  # [M, 2, 2]
    opacity: torch.Tensor,  # [M]
) -> tuple[torch.Tensor, torch.Tensor]:  # [P, M], [P, M]
    """Blending weights w = α·T of sorted Gaussians at a block of pixels (skip and stop rules
    applied) and the transmittance after each blended Gaussian (1 where none is blended yet)."""
    if mean2d.shape[0] == 0:
        empty = mean2d.new_zeros(pixel_centres.shape[0], 0)
        return empty, empty
    dx = mean2d[:, 0] - pixel_centres[:, :1]  # [P, M]
    dy = mean2d[:, 1] - pixel_centres[:, 1:]
    sigma = 0.5 * (conic[:, 0, 0] * dx * dx + conic[:, 1, 1] * dy * dy) + conic[:, 0, 1] * dx * dy  # ½ dᵀ Σ⁻¹ d
    alpha = torch.clamp_max(opacity * torch.exp(-sigma), MAX_ALPHA)
    alpha = torch.where(alpha >= ALPHA_THRESHOLD, alpha, torch.zeros_like(alpha))
    transmittance_after = torch.cumprod(1.0 - alpha, dim=1)
    transmittance_before = torch.cat([torch.ones_like(alpha[:, :1]), transmittance_after[:, :-1]], dim=1)
    # T only decreases, so "T_after > 1e-4" holds for a prefix of the sorted list: exactly the
    # Gaussians blended before the pixel stops.
    blended = transmittance_after > TRANSMITTANCE_STOP
    weights = torch.where(blended, alpha * transmittance_before, torch.zeros_like(alpha))
    return weights, torch.where(blended, transmittance_after, torch.ones_like(alpha))


def _render_camera(
    means, quats, log_scales, opacity_logits, sh, viewmat, K, width, height, *,
    near, far, sh_degree, background, label_index, label_values, modes, radius_clip,
) -> dict[str, torch.Tensor]:
    """All requested outputs for one camera, each [H, W, ch]."""
    dtype, device = means.dtype, means.device
    mean2d, depth, cov2d = project_gaussians(means, quats, log_scales, viewmat, K, width, height)
    determinant = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    opacity = torch.sigmoid(opacity_logits)
    visible = (depth > near) & (depth < far) & (determinant > 0) & (opacity >= ALPHA_THRESHOLD)

    # The opacity-aware half-extent of the box in x and y (exact ellipse extent at α = 1/255).
    extent = opacity_aware_extent(opacity.detach())
    var_x = cov2d[:, 0, 0].detach().clamp_min(0)
    var_y = cov2d[:, 1, 1].detach().clamp_min(0)
    half_x, half_y = extent * torch.sqrt(var_x), extent * torch.sqrt(var_y)
    if radius_clip > 0:
        visible &= ~((torch.ceil(half_x) <= radius_clip) & (torch.ceil(half_y) <= radius_clip))
    # Off-image Gaussians cannot reach a pixel centre; dropping them only saves work.
    m2 = mean2d.detach()
    visible &= (m2[:, 0] + half_x > 0) & (m2[:, 0] - half_x < width) & (m2[:, 1] + half_y > 0) & (m2[:, 1] - half_y < height)

    index = torch.nonzero(visible).squeeze(-1)
    index = index[torch.sort(depth.detach()[index], stable=True).indices]  # front to back
    mean2d, depth, cov2d, opacity = mean2d[index], depth[index], cov2d[index], opacity[index]
    half_x, half_y = half_x[index], half_y[index]
    conic = torch.linalg.inv(cov2d) if len(index) else cov2d
    camera_position = -viewmat[:3, :3].T @ viewmat[:3, 3]
    need_color = "rgb" in modes
    color = gaussian_colors(means[index], sh[index], camera_position, sh_degree) if need_color else None

    sorted_mean2d = mean2d.detach()
    # Per block (a TILE x TILE piece of the image): the requested per-pixel sums, [rows*cols, ch].
    block_rows: list[list[dict[str, torch.Tensor]]] = []
    for top in range(0, height, TILE):
        block_rows.append([])
        for left in range(0, width, TILE):
            rows = torch.arange(top, min(top + TILE, height), device=device, dtype=dtype)
            cols = torch.arange(left, min(left + TILE, width), device=device, dtype=dtype)
            v, u = torch.meshgrid(rows, cols, indexing="ij")
            centres = torch.stack([u + 0.5, v + 0.5], -1).reshape(-1, 2)  # [P, 2]
            reaches_block = (
                (sorted_mean2d[:, 0] + half_x > left) & (sorted_mean2d[:, 0] - half_x < left + len(cols))
                & (sorted_mean2d[:, 1] + half_y > top) & (sorted_mean2d[:, 1] - half_y < top + len(rows))
            )
            sub = torch.nonzero(reaches_block).squeeze(-1)  # still sorted front to back
            weights, transmittance = _composite_block(centres, mean2d[sub], conic[sub], opacity[sub])  # [P, M]
            sums = {"alpha": weights.sum(1, keepdim=True)}  # Σ w = 1 - T_final (the products telescope)
            if need_color:
                sums["rgb"] = weights @ color[sub]
            if "depth" in modes:
                sums["depth"] = weights @ depth[sub, None]
            if "median_depth" in modes:
                sums["median_depth"] = _median_depth(transmittance.detach(), depth[sub].detach())[:, None]
            if "instance" in modes and label_index is not None:
                sums["instance"] = _dominant_label(weights.detach(), label_index[index][sub], label_values)[:, None]
            block_rows[-1].append({name: value.reshape(len(rows), len(cols), -1) for name, value in sums.items()})

    def assemble(name: str) -> torch.Tensor:  # [H, W, ch]
        return torch.cat([torch.cat([block[name] for block in row], dim=1) for row in block_rows], dim=0)

    alpha = assemble("alpha")
    out: dict[str, torch.Tensor] = {}
    if need_color:
        out["rgb"] = assemble("rgb") + (1.0 - alpha) * background.to(dtype)
    if "alpha" in modes:
        out["alpha"] = alpha
    if "depth" in modes:
        accumulated = assemble("depth")
        out["depth"] = torch.where(alpha > 0, accumulated / alpha.clamp_min(1e-10), torch.zeros_like(alpha))
    if "median_depth" in modes:
        out["median_depth"] = assemble("median_depth")
    if "instance" in modes:
        if label_index is None:
            out["instance"] = torch.full((height, width, 1), -1, dtype=torch.int32, device=device)
        else:
            instance = assemble("instance").to(torch.int32)
            out["instance"] = torch.where(alpha.detach() >= INSTANCE_MIN_ALPHA, instance, torch.full_like(instance, -1))
    return out


def _median_depth(transmittance_after: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:  # [P, M], [M] -> [P]
    """z of the first Gaussian after which the transmittance is <= 0.5 (0 if it never is)."""
    if transmittance_after.shape[1] == 0:
        return transmittance_after.new_zeros(transmittance_after.shape[0])
    crossed = transmittance_after <= MEDIAN_TRANSMITTANCE
    first = crossed.to(torch.int8).argmax(dim=1)  # first True (0 when none)
    return torch.where(crossed.any(dim=1), depth[first], torch.zeros_like(depth[first]))


def _dominant_label(weights: torch.Tensor, label_index: torch.Tensor, label_values: torch.Tensor) -> torch.Tensor:
    """Per pixel, the label with the largest summed weight (ties: the smallest label).

    ``label_index`` [M] holds compact label ids 0..L-1 into the sorted ``label_values`` [L].
    Returns label values [P] (int64).
    """
    labels = label_values
    if weights.shape[1] == 0:
        return torch.full((weights.shape[0],), -1, dtype=torch.int64, device=weights.device)
    one_hot = torch.nn.functional.one_hot(label_index, len(labels)).to(weights.dtype)  # [M, L]
    per_label = weights @ one_hot  # [P, L]
    return labels[per_label.argmax(dim=1)]  # argmax returns the first maximum: the smallest label


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
    """Render C cameras with the reference maths; outputs [C, H, W, ch] (see module docstring).

    Inputs are expected validated (``lyra_sim.render.api.render`` does it). Computation runs in
    the dtype and on the device of ``means``; camera matrices are cast to it.
    """
    dtype = means.dtype
    viewmats, Ks, background = viewmats.to(dtype), Ks.to(dtype), background.to(dtype)
    label_index = label_values = None
    if labels is not None and "instance" in modes:
        label_values, label_index = torch.unique(labels.long(), sorted=True, return_inverse=True)
    per_camera = [
        _render_camera(
            means, quats, log_scales, opacity_logits, sh, viewmats[c], Ks[c], width, height,
            near=near, far=far, sh_degree=sh_degree, background=background[c], label_index=label_index,
            label_values=label_values, modes=modes, radius_clip=radius_clip,
        )
        for c in range(viewmats.shape[0])
    ]
    out = {name: torch.stack([images[name] for images in per_camera]) for name in per_camera[0]}
    if "instance" in out:
        out["instance"] = out["instance"].to(torch.int32)
    return out

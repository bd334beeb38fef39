"""Image losses and quality metrics for reconstruction: L1, SSIM (own implementation), PSNR.

Images are [C, H, W, 3] (or [C, H, W, ch]) float tensors in [0, 1], as ``render()`` returns them.
SSIM follows Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03
and a data range of 1, the settings 3DGS and most NeRF papers report. This module imports torch only.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2


def _check_images(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"images must both be [C, H, W, ch], got {list(a.shape)} and {list(b.shape)}")


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:  # [size]
    """Normalised 1D Gaussian weights (the separable SSIM window)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    weights = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return (weights / weights.sum()).to(dtype)


def _blur(x: torch.Tensor, window: torch.Tensor, padding: int) -> torch.Tensor:  # [B, ch, H, W]
    channels = x.shape[1]
    horizontal = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    x = F.conv2d(x, horizontal, padding=(0, padding), groups=channels)
    return F.conv2d(x, vertical, padding=(padding, 0), groups=channels)


def ssim_map(
    a: torch.Tensor,  # [C, H, W, ch]
    b: torch.Tensor,  # [C, H, W, ch]
    window_size: int = 11,
    sigma: float = 1.5,
    padding: Literal["valid", "same"] = "valid",
) -> torch.Tensor:  # [C, H', W', ch]
    """Per-pixel SSIM. "valid" keeps only windows fully inside the image (evaluation);
    "same" zero-pads like the 3DGS training loss so every pixel gets a gradient."""
    _check_images(a, b)
    if padding not in ("valid", "same"):
        raise ValueError(f"padding={padding!r} is not valid; choose one of 'valid', 'same'")
    if padding == "valid" and min(a.shape[1:3]) < window_size:
        raise ValueError(f"images of {a.shape[1]}x{a.shape[2]} are smaller than the {window_size}px SSIM window")
    window = gaussian_window(window_size, sigma, a.dtype).to(a.device)
    pad = window_size // 2 if padding == "same" else 0
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    mu_x, mu_y = _blur(x, window, pad), _blur(y, window, pad)
    var_x = _blur(x * x, window, pad) - mu_x**2
    var_y = _blur(y * y, window, pad) - mu_y**2
    covariance = _blur(x * y, window, pad) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * covariance + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return (numerator / denominator).permute(0, 2, 3, 1)


def ssim(a: torch.Tensor, b: torch.Tensor, padding: Literal["valid", "same"] = "valid") -> torch.Tensor:  # []
    """Mean SSIM of two image batches [C, H, W, ch] (1 = identical)."""
    return ssim_map(a, b, padding=padding).mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # []
    """Peak signal-to-noise ratio in dB for images in [0, 1], over the whole batch."""
    _check_images(a, b)
    mse = torch.mean((a - b) ** 2)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # [C]
    """PSNR of each image of the batch (the usual way papers average over views)."""
    _check_images(a, b)
    mse = torch.mean((a - b) ** 2, dim=(1, 2, 3))
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def photometric_loss(
    rendered: torch.Tensor,  # [C, H, W, 3]
    target: torch.Tensor,  # [C, H, W, 3]
    ssim_weight: float = 0.2,
) -> torch.Tensor:  # []
    """The 3DGS training loss: (1 - w) * L1 + w * (1 - SSIM), SSIM zero-padded ("same")."""
    _check_images(rendered, target)
    l1 = torch.abs(rendered - target).mean()
    if ssim_weight == 0.0:
        return l1
    return (1.0 - ssim_weight) * l1 + ssim_weight * (1.0 - ssim(rendered, target, padding="same"))


def masked_depth_l1(
    rendered: torch.Tensor,  # [C, H, W, 1]
    target: torch.Tensor,  # [C, H, W, 1], 0 = unknown
) -> torch.Tensor:  # []
    """Mean |rendered - target| over pixels with known (positive, finite) target depth."""
    _check_images(rendered, target)
    valid = (target > 0) & torch.isfinite(target)
    if not bool(valid.any()):
        return rendered.sum() * 0.0
    return torch.abs(rendered[valid] - target[valid]).mean()


def psnr_from_mse(mse: float) -> float:
    return -10.0 * math.log10(max(mse, 1e-12))

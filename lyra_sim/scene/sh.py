"""Real spherical harmonics as 3DGS uses them: evaluation and rotation of coefficients.

Coefficient order within one colour channel follows the INRIA code (FORMATS.md 1.2): index 0 is
the DC term, 1-3 degree 1 (-y, z, -x ordering implied by the constants), 4-8 degree 2, 9-15
degree 3. Colour = SH_C0 * dc + ... + 0.5, clamped at 0 by the renderers.
"""

from __future__ import annotations

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    """Number of coefficients per channel for an SH degree (0-3)."""
    if degree not in (0, 1, 2, 3):
        raise ValueError(f"SH degree must be 0-3, got {degree}")
    return (degree + 1) ** 2


def sh_degree_from_bases(k: int) -> int:
    """Inverse of :func:`num_sh_bases`; raises ValueError for a count that is not a square <= 16."""
    for degree in range(4):
        if (degree + 1) ** 2 == k:
            return degree
    raise ValueError(f"{k} SH coefficients per channel is not (degree+1)^2 for a degree 0-3")


def sh_basis(directions: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis values for unit ``directions`` [..., 3] -> [..., (degree+1)^2]."""
    x, y, z = directions.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(sh: torch.Tensor, directions: torch.Tensor, degree: int | None = None) -> torch.Tensor:
    """Colour from SH coefficients ``sh`` [..., K, 3] seen along unit ``directions`` [..., 3].

    Returns [..., 3] = sum_k basis_k * sh_k + 0.5 (not clamped). ``degree`` defaults to the
    degree stored in ``sh`` and may be lower to use only the first bands.
    """
    stored = sh_degree_from_bases(sh.shape[-2])
    degree = stored if degree is None else min(degree, stored)
    k = num_sh_bases(degree)
    basis = sh_basis(directions, degree)  # [..., k]
    return (basis.unsqueeze(-1) * sh[..., :k, :]).sum(-2) + 0.5

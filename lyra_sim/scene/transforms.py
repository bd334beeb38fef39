"""Similarity transforms of Gaussian scenes, exact SH rotation, and removal of invalid Gaussians.

``transform_scene`` maps x -> scale * R x + t: means move, quaternions are composed with R,
log-scales shift by log(scale) and the view-dependent SH bands 1-3 are rotated exactly, so the
colour seen along R d after the transform equals the colour seen along d before it.

Capture cameras in ``metadata.cameras`` follow the same similarity.

This module may import torch, numpy, ``lyra_sim.rotations`` and ``lyra_sim.scene.sh`` only
(``gaussian_scene`` for type hints: it imports this module; ``cameras`` is duck-typed).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lyra_sim.rotations import matrix_to_quat, quat_multiply
from lyra_sim.scene.sh import sh_basis, sh_degree_from_bases

if TYPE_CHECKING:  # a runtime import would close a circle: gaussian_scene imports this module
    from lyra_sim.scene.gaussian_scene import GaussianScene

# How far a rotation matrix may be from orthonormal with det +1 (float32 inputs round-trip).
_ROTATION_TOLERANCE = 1e-4
# Quaternions shorter than this cannot be normalised: the Gaussian has no defined orientation.
_ZERO_QUATERNION_NORM = 1e-8
# Finite raw values whose activation overflows float32: a covariance holds scale^2 = exp(2 s),
# infinite once s > ln(float32 max) / 2 ~ 44.36 (a 1.9e19-unit Gaussian, never a real one).
MAX_LOG_SCALE = 0.5 * float(np.log(np.finfo(np.float32).max))


def _as_float64(value, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or Inf: {array.tolist()}")
    return array


def check_rotation(rotation) -> np.ndarray:  # [3, 3] float64
    """Validate a proper rotation matrix (orthonormal, det +1) and return it as float64.

    Reflections are rejected: a quaternion cannot represent them, so a mirrored scene would
    silently keep the wrong handedness of every Gaussian.
    """
    matrix = _as_float64(rotation, "rotation", (3, 3))
    error = np.abs(matrix @ matrix.T - np.eye(3)).max()
    if error > _ROTATION_TOLERANCE:
        raise ValueError(f"rotation is not orthonormal (max |R R^T - I| = {error:.2e}): {matrix.tolist()}")
    determinant = np.linalg.det(matrix)
    if determinant < 0:
        raise ValueError(f"rotation has determinant {determinant:.3f}: reflections cannot be applied to Gaussians")
    return matrix


def similarity_matrix(rotation, translation, scale: float = 1.0) -> np.ndarray:  # [4, 4]
    """The 4x4 homogeneous matrix of x -> scale * rotation @ x + translation (float64)."""
    matrix = np.eye(4)
    matrix[:3, :3] = float(scale) * check_rotation(rotation)
    matrix[:3, 3] = _as_float64(translation, "translation", (3,))
    return matrix


def decompose_similarity(matrix) -> tuple[np.ndarray, np.ndarray, float]:
    """Split a 4x4 similarity into (rotation [3,3], translation [3], scale); inverse of ``similarity_matrix``."""
    matrix = _as_float64(matrix, "matrix", (4, 4))
    linear = matrix[:3, :3]
    scale = float(np.cbrt(np.linalg.det(linear)))
    if scale <= 0:
        raise ValueError(f"matrix is not a similarity with positive scale (det = {np.linalg.det(linear):.3g})")
    return check_rotation(linear / scale), matrix[:3, 3].copy(), scale


# Fixed, well-spread unit directions used to identify the SH rotation matrices: any set whose
# basis values span each band (2l+1 independent rows) makes the least-squares solve exact.
def _probe_directions(count: int = 64) -> np.ndarray:  # [count, 3]
    index = np.arange(count) + 0.5
    polar = np.arccos(1.0 - 2.0 * index / count)
    azimuth = math.pi * (1.0 + 5.0**0.5) * index
    return np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=-1)


def sh_rotation_matrices(rotation, degree: int) -> list[np.ndarray]:
    """Per band l = 1..degree, the orthogonal matrix D_l [2l+1, 2l+1] with Y_l(R d) = D_l Y_l(d).

    Each band of real SH is closed under rotation, so D_l is identified exactly (to float64
    rounding) by solving Y_l(R d_i) = D_l Y_l(d_i) over probe directions spanning the band.
    """
    matrix = check_rotation(rotation)
    directions = torch.from_numpy(_probe_directions())
    basis = sh_basis(directions, degree).numpy()  # [M, K]
    rotated_basis = sh_basis(directions @ torch.from_numpy(matrix).T, degree).numpy()  # [M, K]
    blocks = []
    for band in range(1, degree + 1):
        columns = slice(band * band, (band + 1) ** 2)
        solution, *_ = np.linalg.lstsq(basis[:, columns], rotated_basis[:, columns], rcond=None)
        blocks.append(solution.T)  # rows: Y(R d) = D Y(d)  ->  Y(d)^T D^T = Y(R d)^T
    return blocks


def rotate_sh(sh: torch.Tensor, rotation) -> torch.Tensor:  # [N, K, 3] -> [N, K, 3]
    """Rotate SH coefficients ``sh`` [N, K, 3] (K = 1, 4, 9 or 16) by ``rotation`` [3, 3].

    The result evaluated along R d equals the input evaluated along d, for every band. The DC
    term is unchanged. Differentiable with respect to ``sh``.
    """
    if sh.dim() != 3 or sh.shape[-1] != 3:
        raise ValueError(f"sh must have shape [N, K, 3], got {list(sh.shape)}")
    degree = sh_degree_from_bases(sh.shape[1])
    if degree == 0:
        check_rotation(rotation)
        return sh.clone()
    bands = [sh[:, :1]]
    for band, block in enumerate(sh_rotation_matrices(rotation, degree), start=1):
        d = torch.as_tensor(block, dtype=sh.dtype, device=sh.device)
        coefficients = sh[:, band * band : (band + 1) ** 2]  # [N, 2l+1, 3]
        # c' = D c makes c'.Y(R d) = c.D^T D Y(d) = c.Y(d), since D is orthogonal.
        bands.append(torch.einsum("ij,njc->nic", d, coefficients))
    return torch.cat(bands, dim=1)


def transform_scene(
    scene: GaussianScene,
    rotation,  # [3, 3] proper rotation
    translation,  # [3]
    scale: float = 1.0,
    *,
    frame: str | None = None,
) -> GaussianScene:
    """Apply x -> scale * R x + t to every Gaussian; returns a new scene.

    Means are mapped, quaternions become q_R * q (their norm is kept, so unnormalised inputs
    stay unnormalised), log-scales gain log(scale), and SH bands 1-3 are rotated exactly.
    ``frame`` optionally renames the coordinate frame in the result's metadata; the composed
    source-to-result similarity is kept in ``metadata.extras["transform"]`` (4x4 list).
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    matrix = similarity_matrix(rotation, translation, scale)
    rotation64 = matrix[:3, :3] / scale
    device, dtype = scene.device, scene.means.dtype
    r = torch.as_tensor(rotation64, dtype=dtype, device=device)
    t = torch.as_tensor(matrix[:3, 3], dtype=dtype, device=device)
    q_r = matrix_to_quat(torch.from_numpy(rotation64)).to(dtype=dtype, device=device)

    result = scene._replace(
        means=scale * (scene.means @ r.T) + t,
        quats=quat_multiply(q_r.expand_as(scene.quats), scene.quats),
        log_scales=scene.log_scales + math.log(scale),
        sh=rotate_sh(scene.sh, rotation64),
    )
    previous = np.asarray(scene.metadata.extras.get("transform", np.eye(4)), dtype=np.float64)
    result.metadata.extras["transform"] = (matrix @ previous).tolist()
    if result.metadata.cameras is not None:
        result.metadata.cameras = result.metadata.cameras.transformed(matrix)
    if frame is not None:
        result.metadata.frame = frame
    return result


def _non_finite_rows(values: torch.Tensor) -> np.ndarray:  # [N, ...] -> [N] bool
    """Rows holding a NaN or Inf; one reduction pass, exact checks only where the row sum is not finite.

    numpy, single-threaded: on a busy machine torch's thread pool costs more than it saves here.
    """
    # reshape(N, -1) is ambiguous for N = 0 (an empty scene): give the row length explicitly.
    flat = values.detach().reshape(len(values), math.prod(values.shape[1:])).cpu().numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        # A row sum is finite unless the row has NaN/Inf (or finite values that overflow, re-checked).
        suspects = np.flatnonzero(~np.isfinite(flat.sum(axis=1)))
    rows = np.zeros(len(values), dtype=bool)
    rows[suspects] = ~np.isfinite(flat[suspects]).all(axis=1)
    return rows


def _rows_above(values: torch.Tensor, limit: float) -> np.ndarray:  # [N, C] -> [N] bool
    """Rows with a finite value above ``limit`` (infinite ones are reported as non-finite)."""
    array = values.detach().cpu().numpy()
    return ((array > limit) & np.isfinite(array)).any(axis=1) if len(array) else np.zeros(0, dtype=bool)


def invalid_gaussian_reasons(scene: GaussianScene) -> dict[str, torch.Tensor]:
    """Boolean masks [N] (on the CPU) per reason a Gaussian cannot be rendered; reasons may overlap."""
    quats = scene.quats.detach().cpu().numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.nan_to_num(np.sqrt((quats.astype(np.float64) ** 2).sum(axis=1)), nan=1.0)
    masks = {
        "non_finite_mean": _non_finite_rows(scene.means),
        "non_finite_quat": _non_finite_rows(scene.quats),
        "non_finite_scale": _non_finite_rows(scene.log_scales),
        "non_finite_opacity": _non_finite_rows(scene.opacity_logits),
        "non_finite_sh": _non_finite_rows(scene.sh),
        "zero_quat": norms < _ZERO_QUATERNION_NORM,
        "overflowing_scale": _rows_above(scene.log_scales, MAX_LOG_SCALE),
    }
    return {name: torch.from_numpy(mask) for name, mask in masks.items()}


def count_reasons(reasons: dict[str, torch.Tensor]) -> dict[str, int]:
    """{reason: count} for the reasons that occur (counted in numpy: no thread-pool start-up)."""
    counts = {name: int(np.count_nonzero(mask.numpy())) for name, mask in reasons.items()}
    return {name: count for name, count in counts.items() if count}


def sanitize(scene: GaussianScene) -> tuple[GaussianScene, dict[str, Any]]:
    """Drop Gaussians with NaN/Inf parameters, a zero quaternion, or a log-scale whose activation
    overflows float32 (above ``MAX_LOG_SCALE``, e.g. 4.7e30: ``scales()`` would be inf).

    Returns the cleaned scene and a report ``{"input": N, "kept": M, "dropped": N - M,
    "reasons": {reason: count}}``; a Gaussian with several problems counts under each reason
    but once in ``dropped``.
    """
    reasons = invalid_gaussian_reasons(scene)
    invalid = np.logical_or.reduce([mask.numpy() for mask in reasons.values()])
    dropped = int(np.count_nonzero(invalid))
    report = {"input": len(scene), "kept": len(scene) - dropped, "dropped": dropped, "reasons": count_reasons(reasons)}
    cleaned = scene[torch.from_numpy(~invalid)] if dropped else scene.clone()
    if dropped:
        summary = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in report["reasons"].items())
        cleaned.metadata.notes.append(f"sanitize dropped {dropped} of {len(scene)} Gaussians ({summary})")
    return cleaned, report


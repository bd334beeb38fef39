"""Rotations, in one place: quaternions in both orders, matrices, yaw.

Two quaternion orders meet in this project: **(w, x, y, z)** (the INRIA PLY, gsplat, COLMAP's
``qvec``, ``GaussianScene.quats``) and **(x, y, z, w)** (PyBullet, bundle manifests, kits). The
torch functions work on (w, x, y, z) batches ``[..., 4]``; the numpy helpers name their order.
This module imports numpy and torch only.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch


# ------------------------------------------------------------------ torch, (w, x, y, z), batched
def quat_to_matrix(quats: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (w, x, y, z) [..., 4] -> rotation matrices [..., 3, 3]."""
    w, x, y, z = quats.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))


def quat_multiply(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:  # [..., 4] x [..., 4] -> [..., 4]
    """Hamilton product of (w, x, y, z) quaternions: the rotation ``right`` followed by ``left``."""
    w1, x1, y1, z1 = left.unbind(-1)
    w2, x2, y2, z2 = right.unbind(-1)
    return torch.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        dim=-1,
    )


def matrix_to_quat(matrices: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> unit quaternions (w, x, y, z) [..., 4] with w >= 0."""
    m = matrices
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate formulas; pick, per matrix, the one with the largest (best-conditioned) pivot.
    candidates = torch.stack(
        [
            torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        dim=-2,
    )  # [..., 4, 4]
    pivots = torch.stack([1 + trace, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    best = pivots.argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


# ------------------------------------------------------------------ numpy, order in the name
def wxyz_to_xyzw(quaternion) -> np.ndarray:  # [..., 4] -> [..., 4]
    return np.asarray(quaternion)[..., [1, 2, 3, 0]]


def xyzw_to_wxyz(quaternion) -> np.ndarray:  # [..., 4] -> [..., 4]
    return np.asarray(quaternion)[..., [3, 0, 1, 2]]


def quat_wxyz_to_matrix(quaternion_wxyz) -> np.ndarray:  # [..., 4] -> [..., 3, 3] float64
    """Rotation matrix of a (w, x, y, z) quaternion (normalised first), e.g. COLMAP's ``qvec``."""
    q = torch.as_tensor(np.asarray(quaternion_wxyz, dtype=np.float64))
    return quat_to_matrix(q / q.norm(dim=-1, keepdim=True)).numpy()


def quat_xyzw_to_matrix(quaternion_xyzw) -> np.ndarray:  # [..., 4] -> [..., 3, 3] float64
    """Rotation matrix of an (x, y, z, w) quaternion (normalised first), PyBullet's order."""
    return quat_wxyz_to_matrix(xyzw_to_wxyz(np.asarray(quaternion_xyzw, dtype=np.float64)))


def matrix_to_quat_wxyz(rotation) -> np.ndarray:  # [..., 3, 3] -> [..., 4] float64, w >= 0
    return matrix_to_quat(torch.as_tensor(np.asarray(rotation, dtype=np.float64))).numpy()


def matrix_to_quat_xyzw(rotation) -> np.ndarray:  # [..., 3, 3] -> [..., 4] float64, w >= 0
    return wxyz_to_xyzw(matrix_to_quat_wxyz(rotation))


def yaw_quaternion_xyzw(yaw: float) -> np.ndarray:  # [4] (x, y, z, w)
    """The rotation by ``yaw`` radians about +Z."""
    return np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])


def yaw_of(orientation_xyzw: Sequence[float]) -> float:
    """Heading (rotation about +Z) of an (x, y, z, w) quaternion, in radians."""
    x, y, z, w = orientation_xyzw
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))

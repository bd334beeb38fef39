"""Placing Gaussians read from scene-graph formats (glTF nodes, USD xforms) and frame conventions.

``apply_affine`` maps a scene by a 4x4 affine matrix: similarities go through the exact
``transform_scene``; other matrices (non-uniform scale, shear) transform each covariance
exactly (Sigma' = A Sigma A^T, refactored by SVD into a rotation and axis scales) and rotate
the SH by the rotation part of A. ``to_file_frame_rotation`` names the rotation a writer applies
to bring a scene into a +Y-up file (glTF, Y-up USD).

This module may import numpy, torch, ``lyra_sim.rotations`` and ``lyra_sim.scene`` only.
"""

from __future__ import annotations

import numpy as np
import torch

from lyra_sim.scene.formats._common import scene_from_arrays, scene_to_arrays
from lyra_sim.scene.formats.spz import flip_rdf_rub
from lyra_sim.rotations import matrix_to_quat, quat_to_matrix
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.transforms import decompose_similarity, rotate_sh, transform_scene

# Frame conventions of SceneMetadata.frame -> rotation into a right-handed +Y-up frame.
# z-up (our world): (x, y, z) -> (x, z, -y). PLY-style frames (OpenCV/COLMAP, up roughly -Y) get
# the 180 degree turn about X that spz also uses between its RUB and the PLY frame.
_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])
Y_UP_ROTATIONS = {"z-up": _Z_UP_TO_Y_UP, "opengl": np.eye(3), "spz-rub": np.eye(3)}


def to_y_up_rotation(frame: str) -> np.ndarray:  # [3, 3]
    """The rotation that brings a scene in ``frame`` into a +Y-up file frame."""
    return Y_UP_ROTATIONS.get(frame, _FLIP_YZ)


def rotate_frame(scene: GaussianScene, rotation: np.ndarray) -> GaussianScene:
    """``scene`` turned by the frame rotation ``rotation`` [3, 3]; the common 180-degree flip about X
    takes the sign-only path spz uses (no SH matrices), the rest goes through ``transform_scene``."""
    rotation = np.asarray(rotation, dtype=np.float64)
    if np.allclose(rotation, np.eye(3)):
        return scene
    if np.allclose(rotation, _FLIP_YZ):
        arrays = scene_to_arrays(scene)
        means, quats, sh = flip_rdf_rub(arrays["means"], arrays["quats"], arrays["sh"])  # copies: the arrays share the scene's memory
        return scene_from_arrays(means, quats, arrays["log_scales"], arrays["opacity_logits"], sh, scene.metadata.copy())
    return scene.transform(rotation, np.zeros(3))


def apply_affine(scene: GaussianScene, matrix) -> GaussianScene:
    """Map every Gaussian by the 4x4 affine ``matrix`` (column vectors: x' = A x + t).

    Raises ValueError for a singular or mirroring matrix (a quaternion cannot hold a reflection).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if np.allclose(matrix, np.eye(4), atol=1e-12):
        return scene
    linear, translation = matrix[:3, :3], matrix[:3, 3]
    determinant = np.linalg.det(linear)
    if not np.isfinite(determinant) or abs(determinant) < 1e-30:
        raise ValueError(f"transform matrix is singular (det {determinant:.3g})")
    if determinant < 0:
        raise ValueError("transform matrix mirrors (negative determinant): Gaussians cannot be reflected")
    try:
        rotation, _, scale = decompose_similarity(matrix)
        if np.allclose(linear, scale * rotation, atol=1e-6 * scale):
            return transform_scene(scene, rotation, translation, scale)
    except ValueError:
        pass
    u, _, vt = np.linalg.svd(linear)
    rotation_part = u @ vt  # polar decomposition: the rotation closest to A (det +1 here)
    a = torch.as_tensor(linear, dtype=torch.float64)
    factors = a @ quat_to_matrix(scene.rotations().double()) * scene.scales().double()[:, None, :]  # [N, 3, 3] = A R S
    left, singular, _ = torch.linalg.svd(factors)  # A R S = U D V^T  ->  Sigma' = U D^2 U^T
    flip = torch.linalg.det(left) < 0
    left[flip, :, 2] *= -1  # Sigma' does not change when a column of U changes sign
    means = scene.means.double() @ a.T + torch.as_tensor(translation)
    return scene._replace(
        means=means.float(),
        quats=matrix_to_quat(left).float(),
        log_scales=torch.log(singular.clamp_min(1e-30)).float(),
        sh=rotate_sh(scene.sh, rotation_part),
    )

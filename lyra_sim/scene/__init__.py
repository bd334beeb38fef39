"""Gaussian scenes: the ``GaussianScene`` container, file readers and writers, transforms."""

from lyra_sim.rotations import matrix_to_quat, quat_multiply, quat_to_matrix
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.transforms import rotate_sh, sanitize, similarity_matrix, transform_scene

__all__ = [
    "GaussianScene",
    "SceneMetadata",
    "quat_to_matrix",
    "matrix_to_quat",
    "quat_multiply",
    "transform_scene",
    "rotate_sh",
    "similarity_matrix",
    "sanitize",
]

"""Gaussian scenes: the ``GaussianScene`` container, file readers and writers, transforms."""

from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata, matrix_to_quat, quat_to_matrix

__all__ = ["GaussianScene", "SceneMetadata", "quat_to_matrix", "matrix_to_quat"]

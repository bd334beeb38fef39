"""``PreparedScene``: a scene with the CPU renderer's per-scene work done once.

Rendering the same Gaussians frame after frame (an env's observations, a benchmark, a video)
repeats work that does not depend on the camera: normalising quaternions, world covariances
R diag(s²) Rᵀ, sigmoid opacities and their alpha >= 1/255 reach, degree-0 colours, and the
conversion to float32 structure-of-arrays layouts that the culling loop vectorises over.
``prepare_scene(scene)`` does it once; ``render(prepared, cameras)`` then starts from projection.
Rigid parts that move (objects, robot links) update only their own rows with
:meth:`PreparedScene.move_rigid` (a rotation of their cached body-frame covariances).

The prepared arrays are a snapshot: after changing the scene's tensors in place, prepare again
(or call :meth:`PreparedScene.refresh` on the rows that changed). Other backends than "cpu"
render ``prepared.scene``, the raw scene. This module imports numpy, torch and lyra_sim.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lyra_sim.scene.gaussian_scene import GaussianScene

# Row order of the 6-vector a symmetric 3x3 covariance is stored as.
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
# vec6(R Σ Rᵀ)[a] = Σ_b (R[i,k] R[j,l] + [k != l] R[i,l] R[j,k]) vec6(Σ)[b], (i, j) = pair a, (k, l) = pair b
_I, _K = np.meshgrid([p[0] for p in _PAIRS], [p[0] for p in _PAIRS], indexing="ij")
_J, _L = np.meshgrid([p[1] for p in _PAIRS], [p[1] for p in _PAIRS], indexing="ij")
_OFF_DIAGONAL = (_K != _L).astype(np.float64)


def _host_float32(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)


def covariance_rotation(rotation: np.ndarray) -> np.ndarray:  # [3, 3] -> [6, 6]
    """The linear map M with vec6(R Σ Rᵀ) = M vec6(Σ) on the (xx, xy, xz, yy, yz, zz) storage."""
    r = np.asarray(rotation, np.float64)
    return r[_I, _K] * r[_J, _L] + _OFF_DIAGONAL * r[_I, _L] * r[_J, _K]


class PreparedScene:
    """A ``GaussianScene`` plus the camera-independent arrays the CPU renderer needs (float32, SoA).

    Attributes:
        scene: the raw scene (what other backends render; ``sh`` is read from it for SH degree > 0).
        arrays: ``positions`` [3, N], ``covariances`` [6, N] (world Σ3d), ``opacity`` [N],
            ``sigma_max`` [N] (ln(255 opacity)), ``extent`` [N] (opacity-aware reach in standard
            deviations, 0 for Gaussians that can never reach alpha 1/255), ``max_scale`` [N],
            ``colours`` [3, N] (degree-0 colour).
        sh: the scene's SH coefficients as a float32 numpy array [N, K, 3] (shares memory with
            ``scene.sh`` when that is float32 on the CPU).
    """

    def __init__(self, scene: GaussianScene) -> None:
        if not isinstance(scene, GaussianScene):
            raise TypeError(f"prepare_scene needs a GaussianScene, got {type(scene).__name__}")
        self.scene = scene
        self.sh = _host_float32(scene.sh)
        self.arrays = self._compute(slice(0, len(scene)))

    @classmethod
    def concat(cls, prepared: Sequence["PreparedScene"], scene: GaussianScene) -> "PreparedScene":
        """One prepared scene from several, back to back, for ``scene`` (their concatenation,
        e.g. one buffer of many envs' scenes); the arrays are copied, nothing is recomputed."""
        if sum(len(p) for p in prepared) != len(scene):
            raise ValueError(f"concat: the prepared scenes hold {sum(len(p) for p in prepared)} Gaussians, "
                             f"the scene {len(scene)}")
        result = cls.__new__(cls)
        result.scene, result.sh = scene, _host_float32(scene.sh)
        result.arrays = {name: np.concatenate([p.arrays[name] for p in prepared], axis=-1) for name in prepared[0].arrays}
        return result

    def _compute(self, rows: slice) -> dict[str, np.ndarray]:
        from lyra_sim.render._cpu import prepare_arrays

        scene = self.scene
        return prepare_arrays(*(_host_float32(t[rows]) for t in (scene.means, scene.quats, scene.log_scales,
                                                                  scene.opacity_logits)), self.sh[rows])

    def __len__(self) -> int:
        return self.arrays["opacity"].shape[0]

    @property
    def sh_degree(self) -> int:
        return self.scene.sh_degree

    @property
    def device(self) -> torch.device:
        return self.scene.device

    def refresh(self, rows: slice | None = None) -> None:
        """Recompute the prepared arrays of ``rows`` (all when None) from the raw scene."""
        rows = slice(0, len(self)) if rows is None else rows
        fresh = self._compute(rows)
        for name, array in fresh.items():
            self.arrays[name][..., rows] = array

    def move_rigid(
        self,
        rows: slice,
        rotation: np.ndarray,  # [3, 3] body -> world
        translation: np.ndarray,  # [3]
        local_positions: np.ndarray,  # [3, n] body frame
        local_covariances: np.ndarray,  # [6, n] body frame
    ) -> None:
        """Place rows ``rows`` (one rigid part) at a world pose from their body-frame arrays."""
        rotation = np.asarray(rotation, np.float64)
        positions = self.arrays["positions"][:, rows]
        np.matmul(rotation.astype(np.float32), local_positions, out=positions)
        positions += np.asarray(translation, np.float32)[:, None]
        np.matmul(covariance_rotation(rotation).astype(np.float32), local_covariances,
                  out=self.arrays["covariances"][:, rows])


def prepare_scene(scene: GaussianScene) -> PreparedScene:
    """Compute ``scene``'s camera-independent render arrays once (see ``PreparedScene``)."""
    return PreparedScene(scene)

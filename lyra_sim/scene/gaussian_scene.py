"""``GaussianScene``: the one object that flows through lyra-sim.

Parameters are stored raw, exactly as the INRIA PLY stores them (FORMATS.md 1.1); activated
views are computed on demand. This module may import torch, numpy, ``lyra_sim.rotations``,
``lyra_sim.scene.sh`` and ``lyra_sim.scene.transforms`` (which needs this module for type hints
only); readers and writers live beside it and import it, never the other way round.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

# quat_to_matrix, matrix_to_quat and quat_multiply lived here before lyra_sim.rotations; kept importable.
from lyra_sim.rotations import matrix_to_quat, quat_multiply, quat_to_matrix  # noqa: F401
from lyra_sim.scene.sh import SH_C0, num_sh_bases, sh_degree_from_bases
from lyra_sim.scene.transforms import transform_scene

if TYPE_CHECKING:
    from lyra_sim.scene.cameras import CaptureCameras


@dataclass
class SceneMetadata:
    """Where a scene came from and which frame it is in.

    Attributes:
        source: path of the file it was read from, or None for scenes built in code.
        format: format name it was read from (see ``lyra_sim.typed.SceneFormat``), or None.
        frame: coordinate convention of the means: "z-up" (our world: +Z up, metres),
            "opencv-first-camera" (Lyra: up is roughly -Y, not metric), "opengl", "opencv",
            "spz-rub" (spz as stored) or "unknown".
        metric: True when one unit is one metre.
        time: the time stamp of this frame for dynamic (time-indexed) scenes, else None.
        notes: human-readable remarks from the reader (ignored properties, conversions).
        extras: anything else a reader or converter wants to keep (JSON-serialisable values).
        cameras: the capture cameras in this scene's frame (``lyra_sim.scene.cameras``), found
            beside the file or set by the producer; ``transform_scene`` moves them with the scene.
    """

    source: str | None = None
    format: str | None = None
    frame: str = "unknown"
    metric: bool = False
    time: float | None = None
    notes: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    cameras: "CaptureCameras | None" = None

    def copy(self) -> "SceneMetadata":
        return dataclasses.replace(self, notes=list(self.notes), extras=dict(self.extras))


def _check_shape(name: str, tensor: torch.Tensor, shape: Sequence[int | None]) -> None:
    if tensor.dim() != len(shape) or any(s is not None and s != t for s, t in zip(shape, tensor.shape)):
        expected = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {expected}, got {list(tensor.shape)}")


class GaussianScene:
    """A set of 3D Gaussians with raw (pre-activation) parameters.

    Args:
        means: centres [N, 3], in the frame named by ``metadata.frame``.
        quats: rotations [N, 4] as (w, x, y, z), not necessarily normalised.
        log_scales: natural-log standard deviations along the local axes [N, 3].
        opacity_logits: opacity before the sigmoid [N].
        sh: spherical-harmonic coefficients [N, K, 3], K = (degree + 1)^2, DC first.
        metadata: provenance and frame; a default ``SceneMetadata()`` when omitted.

    All tensors are converted to float32 on the device of ``means``.
    """

    def __init__(
        self,
        means: torch.Tensor,  # [N, 3]
        quats: torch.Tensor,  # [N, 4]
        log_scales: torch.Tensor,  # [N, 3]
        opacity_logits: torch.Tensor,  # [N]
        sh: torch.Tensor,  # [N, K, 3]
        metadata: SceneMetadata | None = None,
    ) -> None:
        means = torch.as_tensor(means, dtype=torch.float32)
        device = means.device
        as_f32 = lambda t: torch.as_tensor(t, dtype=torch.float32, device=device)  # noqa: E731
        quats, log_scales, opacity_logits, sh = map(as_f32, (quats, log_scales, opacity_logits, sh))
        n = means.shape[0] if means.dim() == 2 else -1
        _check_shape("means", means, (None, 3))
        _check_shape("quats", quats, (n, 4))
        _check_shape("log_scales", log_scales, (n, 3))
        _check_shape("opacity_logits", opacity_logits, (n,))
        _check_shape("sh", sh, (n, None, 3))
        sh_degree_from_bases(sh.shape[1])  # raises for an invalid K
        self.means, self.quats, self.log_scales = means, quats, log_scales
        self.opacity_logits, self.sh = opacity_logits, sh
        self.metadata = metadata if metadata is not None else SceneMetadata()

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_activated(
        cls,
        means: torch.Tensor,  # [N, 3]
        colors: torch.Tensor,  # [N, 3] linear RGB in [0, 1]
        opacities: torch.Tensor,  # [N] in (0, 1)
        scales: torch.Tensor,  # [N, 3] standard deviations (> 0)
        quats: torch.Tensor | None = None,  # [N, 4] (w, x, y, z); identity when None
        sh_degree: int = 0,
        metadata: SceneMetadata | None = None,
    ) -> "GaussianScene":
        """Build a scene from activated values (colour, opacity in (0,1), positive scales)."""
        means = torch.as_tensor(means, dtype=torch.float32)
        n = means.shape[0]
        colors = torch.as_tensor(colors, dtype=torch.float32, device=means.device)
        opacities = torch.as_tensor(opacities, dtype=torch.float32, device=means.device)
        scales = torch.as_tensor(scales, dtype=torch.float32, device=means.device)
        if quats is None:
            quats = torch.zeros(n, 4, device=means.device)
            quats[:, 0] = 1.0
        eps = 1e-6
        sh = torch.zeros(n, num_sh_bases(sh_degree), 3, device=means.device)
        sh[:, 0, :] = (colors - 0.5) / SH_C0
        return cls(
            means,
            quats,
            torch.log(scales.clamp_min(1e-12)),
            torch.logit(opacities.clamp(eps, 1 - eps)),
            sh,
            metadata,
        )

    @classmethod
    def empty(cls, sh_degree: int = 0) -> "GaussianScene":
        """A scene with no Gaussians."""
        k = num_sh_bases(sh_degree)
        return cls(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, k, 3))

    @classmethod
    def concat(cls, scenes: Sequence["GaussianScene"]) -> "GaussianScene":
        """Concatenate scenes; SH is padded with zeros to the highest degree among them."""
        if not scenes:
            raise ValueError("concat needs at least one scene")
        k = max(s.sh.shape[1] for s in scenes)
        pad = lambda s: torch.nn.functional.pad(s.sh, (0, 0, 0, k - s.sh.shape[1]))  # noqa: E731
        device = scenes[0].device
        metadata = scenes[0].metadata.copy()
        return cls(
            torch.cat([s.means.to(device) for s in scenes]),
            torch.cat([s.quats.to(device) for s in scenes]),
            torch.cat([s.log_scales.to(device) for s in scenes]),
            torch.cat([s.opacity_logits.to(device) for s in scenes]),
            torch.cat([pad(s).to(device) for s in scenes]),
            metadata,
        )

    # ----------------------------------------------------------------- basic protocol
    def __len__(self) -> int:
        return self.means.shape[0]

    def __getitem__(self, index) -> "GaussianScene":
        """Select Gaussians by int, slice, index array or boolean mask; returns a new scene."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        if isinstance(index, torch.Tensor):
            index = index.to(self.device)
            if index.dtype == torch.bool and index.shape != (len(self),):
                raise IndexError(f"boolean mask must have shape [{len(self)}], got {list(index.shape)}")
        return self._replace(
            means=self.means[index],
            quats=self.quats[index],
            log_scales=self.log_scales[index],
            opacity_logits=self.opacity_logits[index],
            sh=self.sh[index],
        )

    def __repr__(self) -> str:
        return (
            f"GaussianScene(n={len(self)}, sh_degree={self.sh_degree}, frame={self.metadata.frame!r}, "
            f"format={self.metadata.format!r}, source={self.metadata.source!r})"
        )

    def _replace(self, **tensors) -> "GaussianScene":
        fields = dict(
            means=self.means,
            quats=self.quats,
            log_scales=self.log_scales,
            opacity_logits=self.opacity_logits,
            sh=self.sh,
            metadata=self.metadata.copy(),
        )
        fields.update(tensors)
        return GaussianScene(**fields)

    def clone(self) -> "GaussianScene":
        return self._replace(
            means=self.means.clone(),
            quats=self.quats.clone(),
            log_scales=self.log_scales.clone(),
            opacity_logits=self.opacity_logits.clone(),
            sh=self.sh.clone(),
        )

    def to(self, device) -> "GaussianScene":
        """The same scene with every tensor on ``device``."""
        return self._replace(
            means=self.means.to(device),
            quats=self.quats.to(device),
            log_scales=self.log_scales.to(device),
            opacity_logits=self.opacity_logits.to(device),
            sh=self.sh.to(device),
        )

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_bases(self.sh.shape[1])

    def with_sh_degree(self, degree: int) -> "GaussianScene":
        """Truncate (or zero-pad) the SH coefficients to ``degree``."""
        k = num_sh_bases(degree)
        sh = self.sh[:, :k] if k <= self.sh.shape[1] else torch.nn.functional.pad(self.sh, (0, 0, 0, k - self.sh.shape[1]))
        return self._replace(sh=sh.contiguous())

    def transform(self, rotation, translation, scale: float = 1.0, *, frame: str | None = None) -> "GaussianScene":
        """x -> scale * rotation @ x + translation; see :func:`lyra_sim.scene.transforms.transform_scene`."""
        return transform_scene(self, rotation, translation, scale, frame=frame)

    # ----------------------------------------------------------------- activated views
    def scales(self) -> torch.Tensor:  # [N, 3]
        """Standard deviations along the local axes (exp of log-scales)."""
        return torch.exp(self.log_scales)

    def opacities(self) -> torch.Tensor:  # [N]
        """Opacities in (0, 1) (sigmoid of the logits)."""
        return torch.sigmoid(self.opacity_logits)

    def rotations(self) -> torch.Tensor:  # [N, 4]
        """Unit quaternions (w, x, y, z); a zero quaternion stays zero (see ``sanitize``)."""
        return self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def rotation_matrices(self) -> torch.Tensor:  # [N, 3, 3]
        """Rotation matrices from the normalised quaternions."""
        return quat_to_matrix(self.rotations())

    def colors(self) -> torch.Tensor:  # [N, 3]
        """View-independent colour from the DC term, clamped to [0, 1]."""
        return (self.sh[:, 0, :] * SH_C0 + 0.5).clamp(0.0, 1.0)

    def bounds(self, percentile: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Axis-aligned bounds of the means; ``percentile`` p > 0 gives the robust [p, 100-p] range."""
        if len(self) == 0:
            raise ValueError("an empty scene has no bounds")
        if percentile <= 0:
            return self.means.min(0).values, self.means.max(0).values
        q = torch.tensor([percentile / 100.0, 1.0 - percentile / 100.0], device=self.device)
        m = self.means
        if len(self) > 1_000_000:  # torch.quantile's input limit is 16M elements; subsample
            m = m[torch.randperm(len(self), generator=torch.Generator().manual_seed(0))[:1_000_000].to(self.device)]
        lo_hi = torch.quantile(m, q, dim=0)
        return lo_hi[0], lo_hi[1]

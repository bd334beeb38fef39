"""Scene builders shared by the test files (pytest fixtures)."""

from __future__ import annotations

import pytest
import torch

from lyra_sim import GaussianScene


def capture_like_scene(n: int, seed: int = 0, frame: str = "unknown") -> GaussianScene:
    """SH-3 Gaussians with the statistics of real captures (DESIGN.md): low median opacity,
    centimetre scales, a 5% far-field tail, SH energy falling by band and correlated with the
    base colour. ``frame`` also sets ``metric`` (True for "z-up")."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 2.0
    far = torch.rand(n, generator=g) < 0.05
    means[far] *= 60.0
    dc = torch.randn(n, 1, 3, generator=g) * 0.8
    bands = [dc] + [0.5**band * (0.3 * dc + 0.15 * torch.randn(n, width, 3, generator=g)) for band, width in ((1, 3), (2, 5), (3, 7))]
    scene = GaussianScene(means, torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g) * 0.7 - 4.5, torch.randn(n, generator=g) * 1.5 - 1.2, torch.cat(bands, 1))
    scene.metadata.frame, scene.metadata.metric = frame, frame == "z-up"
    return scene


@pytest.fixture
def capture_like():
    """The :func:`capture_like_scene` builder."""
    return capture_like_scene

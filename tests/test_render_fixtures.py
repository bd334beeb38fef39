"""Checks of the shared scene and camera builders in ``conftest.py``."""

from __future__ import annotations

import torch
from conftest import random_cameras, random_scene


def test_random_scene_builders_are_deterministic_and_in_view():
    a, b = random_scene(50, seed=3), random_scene(50, seed=3)
    assert torch.equal(a.means, b.means) and torch.equal(a.sh, b.sh)
    cams = random_cameras(3, seed=1)
    homogeneous = torch.cat([a.means, torch.ones(50, 1)], -1)
    z = (cams.viewmat @ homogeneous.T)[:, 2]
    assert bool((z > 1.0).all())  # every Gaussian in front of every camera

"""lyra-sim: Gaussian-splat scenes as robot simulation environments.

Public API (stable): ``GaussianScene``, ``load_scene``, ``save_scene``, ``Camera``, ``render``,
``export`` (a SimBundle for PyBullet, MuJoCo or OpenUSD) and ``compose`` (object bundles into a scene bundle).
Heavy submodules are imported lazily so ``import lyra_sim`` stays fast.
"""

from __future__ import annotations

import os

# OpenMP threads (torch's libgomp, which numba's CPU renderer shares) spin-wait between parallel
# regions by default; on a machine shared with other work that starves the threads doing the
# work (128x128 render: 136 ms spinning vs 26 ms passive on a loaded 2-core machine). libgomp
# reads this once, when torch loads it: set before the torch import below; a user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lyra_sim.errors import BundleError, LyraSimError, MissingDependencyError, MissingWeightsError, SceneFormatError
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata

__version__ = "0.1.0"

_LAZY = {
    "load_scene": ("lyra_sim.scene.io", "load_scene"),
    "save_scene": ("lyra_sim.scene.io", "save_scene"),
    "Camera": ("lyra_sim.render.camera", "Camera"),
    "render": ("lyra_sim.render.api", "render"),
    "export": ("lyra_sim.converters.export", "export"),
    "compose": ("lyra_sim.converters.compose", "compose"),
    "ObjectPlacement": ("lyra_sim.converters.compose", "ObjectPlacement"),
}


def set_num_threads(count: int) -> int:
    """Threads the CPU renderer (numba) and torch may use in this process; returns the previous count.

    The default is every core. On a machine shared with other busy processes, or with N envs in
    N processes, give each process ``cores // processes`` threads (subprocess vector envs default
    to 1): a parallel region waits for its slowest thread, and a descheduled one stalls it.
    ``count`` is capped at the cores numba started with.
    """
    import numba
    import torch

    if int(count) < 1:
        raise ValueError(f"set_num_threads needs a count >= 1, got {count}")
    previous = numba.get_num_threads()
    count = min(int(count), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(count)
    torch.set_num_threads(count)
    return previous


def get_num_threads() -> int:
    """Threads the CPU renderer uses in this process (see ``set_num_threads``)."""
    import numba

    return numba.get_num_threads()


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module 'lyra_sim' has no attribute {name!r}")


__all__ = [
    "GaussianScene",
    "SceneMetadata",
    "load_scene",
    "save_scene",
    "Camera",
    "render",
    "set_num_threads",
    "get_num_threads",
    "export",
    "compose",
    "ObjectPlacement",
    "LyraSimError",
    "SceneFormatError",
    "BundleError",
    "MissingDependencyError",
    "MissingWeightsError",
    "__version__",
]

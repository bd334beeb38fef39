"""Lyra-style generation: the self-distillation decoder (``decoder``), its trainer (``distill``),
teachers (``teachers``), video VAEs (``vae``), Plücker rays (``plucker``) and camera
trajectories (``trajectories``). May import torch, diffusers (lazily) and ``lyra_sim.scene`` /
``lyra_sim.render`` (and ``lyra_sim.reconstruct.losses``); photo datasets live in ``lyra_sim.photos``, reconstruction in ``lyra_sim.reconstruct``.

Deprecated paths (kept for one release, 0.1 -> 0.2): ``lyra_sim.generate.datasets`` is now
``lyra_sim.photos``, ``lyra_sim.generate.reconstruct`` is ``lyra_sim.reconstruct.trainer``,
``lyra_sim.generate.densify`` and ``.losses`` are ``lyra_sim.reconstruct.densify`` / ``.losses``.
Importing an old path warns (DeprecationWarning) and gives the new module itself, so patching
either name patches the same object.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

_MOVED = {
    "datasets": "lyra_sim.photos",
    "reconstruct": "lyra_sim.reconstruct.trainer",
    "densify": "lyra_sim.reconstruct.densify",
    "losses": "lyra_sim.reconstruct.losses",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``lyra_sim.generate.<old>`` to the module it moved to (no file at the old path,
    so git follows the moves and no copy can drift)."""

    def __init__(self) -> None:
        self._real_specs: dict = {}

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new_name = _MOVED[spec.name.rpartition(".")[2]]
        warnings.warn(f"{spec.name} moved to {new_name}; the old path goes away in lyra-sim 0.2",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new_name)
        self._real_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # The import system stamped the alias spec on the real module: give it back its own.
        module.__spec__ = self._real_specs[module.__spec__.name]


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name: str):
    if name in _MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

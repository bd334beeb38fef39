"""Old import paths of modules that moved, kept for one release (0.1 -> 0.2).

A package calls ``alias_moved_modules(__name__, {"old_name": "new.module.path"})`` in its
``__init__``: importing ``package.old_name`` then warns (DeprecationWarning) and gives the new
module itself, so patching either name patches the same object, and no file stays at the old path
(git follows the move, no copy can drift). Imports nothing of lyra_sim.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

_REMOVED_IN = "lyra-sim 0.2"


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self.moved: dict[str, str] = {}  # old full name -> new full name
        self._real_specs: dict = {}

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in self.moved else None

    def create_module(self, spec):
        new_name = self.moved[spec.name]
        warnings.warn(f"{spec.name} moved to {new_name}; the old path goes away in {_REMOVED_IN}", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new_name)
        self._real_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # The import system stamped the alias spec on the real module: give it back its own.
        module.__spec__ = self._real_specs[module.__spec__.name]


def _finder() -> _MovedModuleFinder:
    for finder in sys.meta_path:
        if isinstance(finder, _MovedModuleFinder):
            return finder
    finder = _MovedModuleFinder()
    sys.meta_path.append(finder)
    return finder


def alias_moved_modules(package: str, moved: dict[str, str]):
    """Register ``package.<old>`` -> ``moved[old]``; returns a module ``__getattr__`` for the package
    (so ``package.old`` as an attribute also resolves)."""
    finder = _finder()
    finder.moved.update({f"{package}.{old}": new for old, new in moved.items()})

    def __getattr__(name: str):
        if name in moved:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__

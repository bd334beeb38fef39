"""Modules that moved keep importing from their old paths for one release, with a warning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

OLD_TO_NEW = {
    "lyra_sim.generate.datasets": "lyra_sim.photos",
    "lyra_sim.generate.reconstruct": "lyra_sim.reconstruct.trainer",
    "lyra_sim.generate.densify": "lyra_sim.reconstruct.densify",
    "lyra_sim.generate.losses": "lyra_sim.reconstruct.losses",
    "lyra_sim.sim.bundle": "lyra_sim.bundle.loader",
}


@pytest.mark.parametrize("old, new", OLD_TO_NEW.items())
def test_old_path_warns_and_is_the_new_module(old, new):
    # A fresh interpreter: in this one the old name may already sit in sys.modules (no warning then).
    code = (
        "import warnings, importlib\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        "assert old is new, (old, new)\n"
        "assert new.__spec__.name == new.__name__, new.__spec__\n"
        "messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]\n"
        f"assert any({new!r} in m for m in messages), messages\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_names_still_resolve():
    from lyra_sim.generate.datasets import PhotoDataset, load_dataset  # noqa: F401
    from lyra_sim.generate.reconstruct import ReconstructionConfig  # noqa: F401
    from lyra_sim.photos import PhotoDataset as NewPhotoDataset
    from lyra_sim.reconstruct import ReconstructionConfig as NewReconstructionConfig

    assert PhotoDataset is NewPhotoDataset and ReconstructionConfig is NewReconstructionConfig
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("lyra_sim.generate.not_a_module")

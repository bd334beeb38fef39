"""Finding bundles and sharing their Gaussians: the packaged bundles shipped in the wheel, a name
or path -> bundle folder, and the per-process cache of loaded bundles.

May import ``lyra_sim.bundle.loader`` and the splat reader (through it); nothing of envs.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from lyra_sim.bundle.loader import SimBundle, load_bundle
from lyra_sim.bundle.manifest import MANIFEST_NAME
from lyra_sim.errors import BundleError

# Built by scripts/make_default_bundle.py from the scene kits; shipped inside the wheel.
PACKAGED_BUNDLES_DIR = Path(str(files("lyra_sim"))) / "assets" / "bundles"

# Bundles are immutable once built: load their Gaussians once per process and share them.
# Key: (folder, manifest mtime), so a rebuilt bundle is read again.
_BUNDLE_CACHE: dict[tuple[str, float], tuple[SimBundle, object, list]] = {}


def packaged_bundle_names() -> list[str]:
    """Names of the bundles shipped with lyra-sim (``room``, ``tabletop``)."""
    return sorted(p.name for p in PACKAGED_BUNDLES_DIR.glob("*") if (p / MANIFEST_NAME).is_file())


def resolve_bundle_path(bundle: str | Path | None, default_name: str) -> Path:
    """The directory of ``bundle``: a path, the name of a packaged bundle, or None for ``default_name``."""
    if bundle is None:
        bundle = default_name
    candidate = Path(bundle).expanduser()
    if not candidate.exists() and (PACKAGED_BUNDLES_DIR / str(bundle)).exists():
        candidate = PACKAGED_BUNDLES_DIR / str(bundle)
    if not (candidate / MANIFEST_NAME).is_file():
        raise BundleError(
            f"{candidate}: not a SimBundle (no manifest.json). Pass a bundle directory built with "
            f"`lyra-sim build`, or one of the packaged bundles: {', '.join(packaged_bundle_names()) or 'none installed'}"
        )
    return candidate.resolve()


def load_bundle_assets(path: Path) -> tuple[SimBundle, object, list]:
    """(SimBundle, background ``GaussianScene``, body-frame object scenes), cached per bundle directory."""
    path = Path(path)
    key = (str(path), (path / MANIFEST_NAME).stat().st_mtime)
    if key not in _BUNDLE_CACHE:
        bundle = load_bundle(path)
        _BUNDLE_CACHE[key] = (bundle, bundle.background_scene(), [obj.scene() for obj in bundle.objects])
    return _BUNDLE_CACHE[key]


def clear_bundle_cache() -> None:
    """Forget every cached bundle (tests; a long-lived process that rebuilds bundles in place)."""
    _BUNDLE_CACHE.clear()

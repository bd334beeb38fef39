"""The SimBundle, in one home: the typed, versioned manifest (``manifest``: read, validate,
write), the loader (``loader``: ``load_bundle`` -> ``SimBundle``, ``summarize_bundle``) and the
lookup of packaged bundles with the per-process cache (``lookup``).

The builder (``lyra_sim.converters.bundle``) writes through ``write_manifest``; PyBullet loading
and the compositor stay in ``lyra_sim.sim``. May import numpy and the splat reader (lazily).
"""

from lyra_sim.bundle.loader import BundleObject, SimBundle, format_bundle_summary, load_bundle, summarize_bundle
from lyra_sim.bundle.lookup import PACKAGED_BUNDLES_DIR, load_bundle_assets, packaged_bundle_names, resolve_bundle_path
from lyra_sim.bundle.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    Background,
    Bounds,
    Manifest,
    ObjectEntry,
    Pose,
    SourceInfo,
    SpawnRegion,
    manifest_problems,
    read_manifest,
    write_manifest,
)

__all__ = [
    "MANIFEST_NAME", "PACKAGED_BUNDLES_DIR", "SCHEMA_VERSION", "SUPPORTED_SCHEMA_VERSIONS", "Background", "Bounds",
    "BundleObject", "Manifest", "ObjectEntry", "Pose", "SimBundle", "SourceInfo", "SpawnRegion", "format_bundle_summary",
    "load_bundle", "load_bundle_assets", "manifest_problems", "packaged_bundle_names", "read_manifest",
    "resolve_bundle_path", "summarize_bundle", "write_manifest",
]

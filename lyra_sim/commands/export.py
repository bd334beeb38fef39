"""``lyra-sim export``: write a SimBundle for PyBullet (URDF), MuJoCo (MJCF) or Isaac / OpenUSD (USD)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lyra_sim.cli import option
from lyra_sim.typed import ExportFormat


@dataclass
class Config:
    """Export a SimBundle for a simulator.

    --format urdf writes a folder PyBullet loads (the bundle's URDFs and meshes plus world.json);
    --format mjcf writes one MuJoCo XML (meshes inline, objects as free bodies with full
    inertia, splat PLYs copied beside it in <stem>_splats/); --format usd writes an OpenUSD
    stage (.usda text or .usdc binary) with UsdPhysics colliders and rigid bodies and the splats
    as UsdVol ParticleField3DGaussianSplat prims. BUNDLE is a bundle folder or the name of a
    packaged bundle (tabletop, room).
    """

    bundle: str = option(help="SimBundle folder or packaged bundle name", positional=True)
    format: ExportFormat = option(help="simulator format")
    out: str = option(help="output: a folder (urdf), an .xml file (mjcf), a .usda/.usdc/.usd file (usd)", short="-o")


def run(config: Config) -> int:
    from lyra_sim.converters.export import export
    from lyra_sim.bundle import resolve_bundle_path

    bundle = resolve_bundle_path(config.bundle, config.bundle)
    started = time.perf_counter()
    path = export(bundle, config.format, Path(config.out))
    print(f"wrote {path} ({config.format}) in {time.perf_counter() - started:.2f} s")
    return 0

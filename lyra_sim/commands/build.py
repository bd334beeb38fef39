"""``lyra-sim build``: a splat scene file -> a SimBundle folder."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.cli import option
from lyra_sim.converters.config import BuildConfig
from lyra_sim.options import settings_of


@dataclass
class Config:
    """Build a SimBundle (URDF + OBJ collision meshes + splats + manifest) from a splat scene.

    Normalises the scene (+Z up, metres, floor at z = 0; far field and floaters removed),
    reconstructs collision and visual meshes from rendered depth (TSDF), decomposes movable
    objects into convex hulls and writes the bundle atomically. `lyra-sim info BUNDLE` summarises it.
    """

    scene: str = option(help="splat scene file (.ply, compressed .ply, .splat, .spz, .pt)", positional=True)
    output: str = option(help="bundle folder to write (replaced atomically if it exists)", short="-o")
    build: BuildConfig = settings_of(BuildConfig)
    progress: bool = option(help="show progress bars", default=True)


def run(config: Config) -> int:
    from lyra_sim.converters.bundle import build_bundle
    from lyra_sim.scene.io import load_scene
    from lyra_sim.bundle import format_bundle_summary, summarize_bundle

    scene = load_scene(config.scene)
    path = build_bundle(scene, config.output, config.build, progress=config.progress)
    print(format_bundle_summary(summarize_bundle(path)))
    return 0

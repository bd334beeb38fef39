"""``lyra-sim build``: a splat scene file -> a SimBundle folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lyra_sim.cli import option
from lyra_sim.converters.config import BuildConfig
from lyra_sim.options import settings_of


@dataclass(kw_only=True)
class BuildOptions:
    """The build options ``lyra-sim build`` and ``lyra-sim build-many`` share: the fields of
    ``BuildConfig`` it offers (``setting(..., cli=...)``: names, help and defaults written there
    once) and the two switches that set its ``kind``."""

    as_object: bool = option(help="build an object bundle (the capture is one object) whatever the evidence says", default=False)
    as_scene: bool = option(help="build a scene bundle even when the capture looks like one object", default=False)
    build: BuildConfig = settings_of(BuildConfig)
    progress: bool = option(help="show progress bars", default=True)

    def build_config(self) -> BuildConfig:
        """The ``BuildConfig`` of these options (``build`` was validated when it was made; the
        switches only pick ``kind``); UsageError if both switches are given."""
        from lyra_sim.commands.checks import UsageError

        if self.as_object and self.as_scene:
            raise UsageError("--as-object and --as-scene exclude each other")
        if not (self.as_object or self.as_scene):
            return self.build
        return dataclasses.replace(self.build, kind="object" if self.as_object else "scene")


@dataclass(kw_only=True)
class Config(BuildOptions):
    """Build a SimBundle (URDF + OBJ collision meshes + splats + manifest) from a splat scene or an object scan.

    Normalises the scene (+Z up, metres, floor at z = 0; far field and floaters removed, from the
    capture cameras found beside the file when there are any), reconstructs collision and visual
    meshes from rendered depth (TSDF), decomposes movable objects into convex hulls and writes the
    bundle atomically; an object scan becomes an object bundle. The summary says where up, floor and
    scale came from and prints a WARNING when they are uncertain. `lyra-sim info BUNDLE` repeats it.
    """

    scene: str = option(help="splat scene file (.ply, compressed .ply, .splat, .spz, .pt)", positional=True)
    output: str = option(help="bundle folder to write (replaced atomically if it exists)", short="-o")
    cameras: str | None = option(help="capture cameras (cameras.json, transforms.json or a COLMAP folder); default: found beside the scene", default=None)


def run(config: Config) -> int:
    from lyra_sim.commands.checks import check_output
    from lyra_sim.converters.bundle import build_bundle
    from lyra_sim.scene.io import load_scene
    from lyra_sim.bundle import format_bundle_summary, summarize_bundle

    build_config = config.build_config()
    check_output(config.output, "--output", kind="folder")
    scene = load_scene(config.scene, cameras=config.cameras if config.cameras else True)
    path = build_bundle(scene, config.output, build_config, progress=config.progress)
    print(format_bundle_summary(summarize_bundle(path)))
    return 0

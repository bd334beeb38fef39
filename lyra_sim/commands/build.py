"""``lyra-sim build``: a splat scene file -> a SimBundle folder."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.cli import option
from lyra_sim.typed import ConvexMethod, RenderBackend, UpAxis


@dataclass(kw_only=True)
class BuildOptions:
    """The build options ``lyra-sim build`` and ``lyra-sim build-many`` share."""

    known_height: float | None = option(help="height in metres of the scene's top above the floor (its 99.5th percentile of opaque Gaussians, not the highest floater)", default=None)
    scale: float | None = option(help="metres per source unit (overrides every other scale source)", default=None)
    up_axis: UpAxis = option(help="up axis of the source, trusted as given unless --refine-up (auto: from the capture cameras, the file's frame, the floor or the object's resting face)", default="auto")
    refine_up: bool = option(help="refine --up-axis with the floor plane", default=False)
    floor_height: float | None = option(help="floor height along the up axis, in source units (picks the floor by hand)", default=None)
    as_object: bool = option(help="build an object bundle (the capture is one object) whatever the evidence says", default=False)
    as_scene: bool = option(help="build a scene bundle even when the capture looks like one object", default=False)
    segment_objects: bool = option(help="find movable objects standing on the floor automatically", default=False)
    convex_method: ConvexMethod = option(help="convex decomposition for objects", default="coacd")
    voxel_size: float | None = option(help="TSDF voxel in metres (default: scene extent / 400, within 5 mm - 5 cm)", default=None)
    image_size: int = option(help="width and height of the virtual depth images (at most 4096)", default=192)
    ground_slab: bool = option(help="add a solid slab under the floor beyond the reconstruction", default=True)
    backend: RenderBackend = option(help="renderer backend", default="auto")
    progress: bool = option(help="show progress bars", default=True)

    def build_config(self, **more):
        """The ``BuildConfig`` of these options (plus ``more`` of its fields); UsageError if invalid."""
        from lyra_sim.commands.checks import UsageError
        from lyra_sim.converters.config import BuildConfig

        if self.as_object and self.as_scene:
            raise UsageError("--as-object and --as-scene exclude each other")
        try:
            return BuildConfig(
                up_axis=self.up_axis,
                refine_up=self.refine_up,
                floor_height=self.floor_height,
                kind="object" if self.as_object else "scene" if self.as_scene else "auto",
                scale=self.scale,
                known_height=self.known_height,
                segment_objects=self.segment_objects,
                convex_method=self.convex_method,
                voxel_size=self.voxel_size,
                image_size=self.image_size,
                ground_slab=self.ground_slab,
                render_backend=self.backend,
                **more,
            )
        except ValueError as error:
            raise UsageError(f"invalid build options: {error}") from None


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
    crop: list[float] | None = option(help="keep only XMIN YMIN ZMIN XMAX YMAX ZMAX (metres, bundle frame)", default=None)
    cameras: str | None = option(help="capture cameras (cameras.json, transforms.json or a COLMAP folder); default: found beside the scene", default=None)


def run(config: Config) -> int:
    from lyra_sim.commands.checks import check_output
    from lyra_sim.converters.bundle import build_bundle
    from lyra_sim.scene.io import load_scene
    from lyra_sim.bundle import format_bundle_summary, summarize_bundle

    build_config = config.build_config(crop=tuple(config.crop) if config.crop else None)
    check_output(config.output, "--output", kind="folder")
    scene = load_scene(config.scene, cameras=config.cameras if config.cameras else True)
    path = build_bundle(scene, config.output, build_config, progress=config.progress)
    print(format_bundle_summary(summarize_bundle(path)))
    return 0

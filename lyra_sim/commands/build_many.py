"""``lyra-sim build-many``: many splat scenes -> many SimBundles, one Ray task per scene."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.cli import option
from lyra_sim.typed import ConvexMethod, RenderBackend, UpAxis


@dataclass
class Config:
    """Build a SimBundle per scene file in parallel on Ray (a local Ray, or a cluster).

    One Ray task per scene; OUTPUT/NAME is written atomically for each, so an interrupted run
    leaves only complete bundles, and a rerun skips the scenes whose bundle records the same
    source SHA-256 and build options. A bad file fails alone: its error is in the summary table
    and in OUTPUT/build-many.json. A true surface beside a scene (NAME.truth.obj, .ply, .stl or
    .glb, in the scene file's coordinates) adds the collision mesh's F-score to the table.
    Needs the [ray] extra: pip install 'lyra-sim[ray]'. Exit status 1 when any scene failed.
    """

    inputs: list[str] = option(help="splat scene files (.ply, compressed .ply, .splat, .spz, .pt)", positional=True)
    output: str = option(help="folder that receives one bundle folder per scene", short="-o")
    address: str | None = option(help="Ray cluster: 'auto' (the cluster this machine is in) or ray://HEAD:10001; default: a local Ray, or $RAY_ADDRESS", default=None)
    cpus_per_task: float = option(help="Ray CPUs per scene task (also its torch/numba threads)", default=1.0)
    fscore_threshold: float = option(help="distance in metres of the F-score against a truth mesh", default=0.01)
    known_height: float | None = option(help="height in metres of every scene's top above its floor", default=None)
    scale: float | None = option(help="metres per source unit, for every scene", default=None)
    up_axis: UpAxis = option(help="up axis prior of the sources (auto: from each file's frame, else the floor plane)", default="auto")
    segment_objects: bool = option(help="find movable objects standing on the floor automatically", default=False)
    convex_method: ConvexMethod = option(help="convex decomposition for objects", default="coacd")
    voxel_size: float | None = option(help="TSDF voxel in metres (default: scene extent / 400, within 5 mm - 5 cm)", default=None)
    image_size: int = option(help="width and height of the virtual depth images", default=192)
    ground_slab: bool = option(help="add a solid slab under the floor beyond the reconstruction", default=True)
    backend: RenderBackend = option(help="renderer backend on the workers", default="auto")
    progress: bool = option(help="show a progress bar across the scenes", default=True)


def run(config: Config) -> int:
    from lyra_sim.converters.config import BuildConfig
    from lyra_sim.errors import BundleError, LyraSimError
    from lyra_sim.scale import require_ray
    from lyra_sim.scale.build_many import build_many, format_table

    require_ray("lyra-sim build-many")
    try:
        build_config = BuildConfig(
            up_axis=config.up_axis,
            scale=config.scale,
            known_height=config.known_height,
            segment_objects=config.segment_objects,
            convex_method=config.convex_method,
            voxel_size=config.voxel_size,
            image_size=config.image_size,
            ground_slab=config.ground_slab,
            render_backend=config.backend,
        )
        results = build_many(config.inputs, config.output, build_config, address=config.address,
                             cpus_per_task=config.cpus_per_task, fscore_threshold=config.fscore_threshold,
                             progress=config.progress)
    except LyraSimError:
        raise
    except ValueError as error:
        raise BundleError(f"invalid build-many options: {error}") from None
    print(format_table(results))
    return 1 if any(r.status == "failed" for r in results) else 0

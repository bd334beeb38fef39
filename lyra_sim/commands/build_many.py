"""``lyra-sim build-many``: many splat scenes -> many SimBundles, one Ray task per scene."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.cli import option
from lyra_sim.commands.build import BuildOptions


@dataclass(kw_only=True)
class Config(BuildOptions):
    """Build a SimBundle per scene file in parallel on Ray (a local Ray, or a cluster).

    One Ray task per scene; OUTPUT/NAME is written atomically for each, so an interrupted run
    leaves only complete bundles, and a rerun skips the scenes whose bundle records the same
    source SHA-256 and build options. A bad file fails alone: its error is in the summary table
    and in OUTPUT/build-many.json. A true surface beside a scene (NAME.truth.obj, .ply, .stl or
    .glb, in the scene file's coordinates) adds the collision mesh's F-score to the table.
    The build options apply to every scene. Needs the [ray] extra: pip install 'lyra-sim[ray]'.
    Exit status 1 when any scene failed.
    """

    inputs: list[str] = option(help="splat scene files (.ply, compressed .ply, .splat, .spz, .pt)", positional=True)
    output: str = option(help="folder that receives one bundle folder per scene", short="-o")
    address: str | None = option(help="Ray cluster: 'auto' (the cluster this machine is in) or ray://HEAD:10001; default: a local Ray, or $RAY_ADDRESS", default=None)
    cpus_per_task: float = option(help="Ray CPUs per scene task (also its torch/numba threads)", default=1.0)
    fscore_threshold: float = option(help="distance in metres of the F-score against a truth mesh", default=0.01)


def run(config: Config) -> int:
    from lyra_sim.scale import require_ray
    from lyra_sim.scale.build_many import build_many, format_table

    from lyra_sim.errors import BundleError

    require_ray("lyra-sim build-many")
    from lyra_sim.commands.checks import check_output

    build_config = config.build_config()
    check_output(config.output, "--output", kind="folder")
    if config.cpus_per_task <= 0 or config.fscore_threshold <= 0:
        raise BundleError(f"--cpus-per-task and --fscore-threshold must be > 0, got {config.cpus_per_task} and {config.fscore_threshold}")
    results = build_many(config.inputs, config.output, build_config, address=config.address,
                         cpus_per_task=config.cpus_per_task, fscore_threshold=config.fscore_threshold,
                         progress=config.progress)
    print(format_table(results))
    return 1 if any(r.status == "failed" for r in results) else 0

"""``lyra-sim demo``: the whole pipeline on the bundled default scene, with a report."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.demo import DemoConfig
from lyra_sim.options import settings_of


@dataclass
class Config:
    """Run the whole pipeline on the default scene kit: photos -> splats -> bundle -> envs -> report.

    Writes into OUT: photos.png, heldout_truth_vs_splat.png, splat_mesh_overlay.png, the agent's
    observation videos (MP4 and GIF), reconstruction.ply, bundle/ (URDF, meshes, splats),
    metrics.json and report.md. About 4 minutes on 2 CPU cores.
    """

    demo: DemoConfig = settings_of(DemoConfig)


def run(config: Config) -> int:
    from lyra_sim.commands.checks import check_output
    from lyra_sim.demo import run_demo

    check_output(config.demo.out, "--out", kind="folder")

    run_demo(config.demo)
    return 0

"""``lyra-sim demo``: the whole pipeline on the bundled default scene, with a report."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.cli import option


@dataclass
class Config:
    """Run the whole pipeline on the default scene kit: photos -> splats -> bundle -> envs -> report.

    Writes into OUT: photos.png, heldout_truth_vs_splat.png, splat_mesh_overlay.png, the agent's
    observation videos (MP4 and GIF), reconstruction.ply, bundle/ (URDF, meshes, splats),
    metrics.json and report.md. About 4 minutes on 2 CPU cores.
    """

    out: str = option("output folder (replaced when the demo finishes)", "demo_out", short="-o")
    seed: int = option("scene layout and training seed", 0)
    photo_size: int = option("width = height of the rendered photos in pixels", 96)
    photo_count: int = option("number of photos (every 8th is held out)", 56)
    reconstruction_seconds: float = option("CPU time budget of the reconstruction in seconds", 150.0)
    observation_size: int = option("width = height of the env observations", 96)
    rollout_steps: int = option("steps per env rollout", 60)
    backend: str = option("renderer backend", "auto", choices=["auto", "cpu", "gsplat", "reference"])


def run(config: Config) -> int:
    from lyra_sim.commands.checks import check_output
    from lyra_sim.demo import DemoConfig, run_demo

    check_output(config.out, "--out", kind="folder")

    run_demo(DemoConfig(**vars(config)))
    return 0

"""``lyra-sim reconstruct``: optimise a Gaussian scene from posed photos and write it as INRIA PLY."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lyra_sim.cli import option
from lyra_sim.typed import DatasetFormat, DensityControl, ReconstructionInit, RenderBackend
from lyra_sim.io_utils import write_json


@dataclass
class Config:
    """Reconstruct a Gaussian-splat scene from posed photos.

    DATA is a COLMAP folder (images/ + sparse/0, text or binary), a nerfstudio folder
    (transforms.json, or Blender's transforms_{train,test}.json) or a lyra-sim photo dataset
    (dataset.json). Every 8th view (or the dataset's test split) is held out and reported as
    PSNR/SSIM. Writes the scene as INRIA PLY and, beside it, <stem>.cameras.json (the capture
    cameras, with the dataset's frame and units: `lyra-sim build` finds them and takes up, floor,
    scale and floaters from them) and <out>.json with the metrics and the PSNR-over-time history.
    """

    data: str = option(help="dataset folder (COLMAP, nerfstudio/Blender or lyra-sim format)", positional=True)
    out: str = option(help="output splat file (.ply recommended: INRIA PLY)", short="-o")
    iterations: int = option(help="optimisation steps", default=3000)
    resolution: int | None = option(help="image width in pixels to train at (the width, not the long side; height keeps the aspect; images are downscaled on load)", default=None)
    skip_missing: bool = option(help="leave out views whose image is missing (otherwise one error lists them all)", default=False)
    format: DatasetFormat = option(help="dataset format", default="auto")
    density_control: DensityControl = option(help="MCMC relocation (fixed budget) or adaptive density control", default="mcmc")
    init: ReconstructionInit = option(help="initial Gaussians: dataset points, depth back-projection or random", default="auto")
    max_gaussians: int = option(help="Gaussian budget", default=150_000)
    sh_degree: int = option(help="final spherical-harmonics degree (0-3)", default=3)
    minutes: float | None = option(help="stop after this much wall time of training (evaluations included; the result says when it stopped)", default=None)
    eval_every: int = option(help="evaluate the held-out views every n steps (0: only at the end)", default=500)
    checkpoint_dir: str | None = option(help="folder for checkpoints (every --checkpoint-every steps)", default=None)
    checkpoint_every: int = option(help="steps between checkpoints (with --checkpoint-dir)", default=1000)
    resume: str | None = option(help="checkpoint to continue from", default=None)
    backend: RenderBackend = option(help="renderer backend", default="auto")
    render_threads: int | None = option(help="numba threads for the CPU renderer (default: numba's)", default=None)
    seed: int = option(help="random seed", default=0)
    progress: bool = option(help="show a progress bar", default=True)


def run(config: Config) -> int:
    from lyra_sim.errors import LyraSimError
    from lyra_sim.photos import load_dataset
    from lyra_sim.reconstruct import ReconstructionConfig, reconstruct
    from lyra_sim.scene.io import save_scene

    from lyra_sim.commands.checks import check_output

    check_output(config.out, "--out")
    dataset = load_dataset(config.data, format=config.format, resolution=config.resolution, progress=config.progress,
                           skip_missing=config.skip_missing)
    for note in dataset.metadata.get("notes", []):
        if note.startswith("skipped"):
            print(f"note: {note}")
    settings = ReconstructionConfig(
        iterations=config.iterations,
        density_control=config.density_control,
        init=config.init,
        max_gaussians=config.max_gaussians,
        init_count=min(ReconstructionConfig.init_count, config.max_gaussians),
        sh_degree=config.sh_degree,
        time_budget_s=None if config.minutes is None else 60.0 * config.minutes,
        eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every if config.checkpoint_dir else 0,
        checkpoint_dir=config.checkpoint_dir,
        resume=config.resume,
        backend=config.backend,
        render_threads=config.render_threads,
        seed=config.seed,
    )
    try:
        result = reconstruct(dataset, settings, progress=config.progress)
    except ValueError as error:  # bad settings for this dataset: report, no traceback
        raise LyraSimError(str(error)) from None
    out = save_scene(result.scene, config.out)
    report = {
        "data": str(config.data),
        "views": len(dataset),
        "resolution": [dataset.width, dataset.height],
        "gaussians": len(result.scene),
        "initialisation": result.initialisation,
        "stopped_by": result.stopped_by,
        "initial_test": result.initial_test_metrics,
        "test": result.test_metrics,
        "history": result.history,
    }
    write_json(Path(str(out) + ".json"), report, indent=1)
    metrics = result.test_metrics
    print(f"{out}: {len(result.scene)} Gaussians; held-out PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f} "
          f"({metrics['views']} views; {result.initial_test_metrics['psnr']:.2f} dB before); initialised from {result.initialisation}, "
          f"stopped by {result.stopped_by} at step {result.history[-1]['step'] if result.history else 0} of {config.iterations}")
    if result.scene.metadata.cameras is not None:
        from lyra_sim.scene.cameras import sidecar_path

        print(f"capture cameras: {sidecar_path(out)} ({len(result.scene.metadata.cameras)} views)")
    return 0

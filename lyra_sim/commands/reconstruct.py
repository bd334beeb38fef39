"""``lyra-sim reconstruct``: optimise a Gaussian scene from posed photos and write it as INRIA PLY."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from lyra_sim.cli import option
from lyra_sim.io_utils import write_json
from lyra_sim.options import settings_of
from lyra_sim.reconstruct.trainer import ReconstructionConfig
from lyra_sim.typed import DatasetFormat


@dataclass
class Config:
    """Reconstruct a Gaussian-splat scene from posed photos.

    DATA is a COLMAP folder (images/ + sparse/0, text or binary), a nerfstudio folder
    (transforms.json, or Blender's transforms_{train,test}.json) or a lyra-sim photo dataset
    (dataset.json). Every 8th view (or the dataset's test split) is held out and reported as
    PSNR/SSIM. Writes the scene as INRIA PLY and, beside it, <out>.json with the metrics and
    the PSNR-over-time history.
    """

    data: str = option(help="dataset folder (COLMAP, nerfstudio/Blender or lyra-sim format)", positional=True)
    out: str = option(help="output splat file (.ply recommended: INRIA PLY)", short="-o")
    resolution: int | None = option(help="image width in pixels to train at (the width, not the long side; height keeps the aspect; images are downscaled on load)", default=None)
    skip_missing: bool = option(help="leave out views whose image is missing (otherwise one error lists them all)", default=False)
    format: DatasetFormat = option(help="dataset format", default="auto")
    minutes: float | None = option(help="stop after this much wall time of training (evaluations included; the result says when it stopped)", default=None)
    reconstruction: ReconstructionConfig = settings_of(ReconstructionConfig)
    progress: bool = option(help="show a progress bar", default=True)


def run(config: Config) -> int:
    from lyra_sim.errors import LyraSimError
    from lyra_sim.photos import load_dataset
    from lyra_sim.reconstruct import reconstruct
    from lyra_sim.scene.io import save_scene

    from lyra_sim.commands.checks import check_output

    check_output(config.out, "--out")
    dataset = load_dataset(config.data, format=config.format, resolution=config.resolution, progress=config.progress,
                           skip_missing=config.skip_missing)
    for note in dataset.metadata.get("notes", []):
        if note.startswith("skipped"):
            print(f"note: {note}")
    settings = dataclasses.replace(
        config.reconstruction,
        init_count=min(config.reconstruction.init_count, config.reconstruction.max_gaussians),
        time_budget_s=None if config.minutes is None else 60.0 * config.minutes,
        checkpoint_every=config.reconstruction.checkpoint_every if config.reconstruction.checkpoint_dir else 0,
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
          f"stopped by {result.stopped_by} at step {result.history[-1]['step'] if result.history else 0} of {config.reconstruction.iterations}")
    if result.scene.metadata.cameras is not None:
        from lyra_sim.scene.cameras import sidecar_path

        print(f"capture cameras: {sidecar_path(out)} ({len(result.scene.metadata.cameras)} views)")
    return 0

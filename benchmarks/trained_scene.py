"""A benchmark scene made of trained splats: our own reconstruction of a scene kit, cached on disk.

Surface-sampled kit splats are thin, opaque and barely overlap; real captures are not (median
opacity 0.17-0.24, heavy overlap, floaters; DESIGN.md "Measured on real data"). The render and
env benchmarks therefore time a scene trained the way a capture is: the "tabletop" kit
photographed from 72 views on a hemisphere (128x128, 2x supersampled, every 9th view held
out), reconstructed from depth back-projection with the CPU trainer (MCMC density control, SH
degree 3, L1 + D-SSIM + depth) up to ``--gaussians`` Gaussians. Nothing is synthesised after
training: the file holds exactly what the optimiser produced.

The result is cached under ``benchmarks/.cache/`` (gitignored) with a JSON sidecar (training
settings, held-out PSNR, opacity / scale / overlap statistics), so benchmarks train once:

    python benchmarks/trained_scene.py [--gaussians 150000] [--minutes 8] [--force]

``trained_scene()`` returns the cached scene and its sidecar (training it first when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import lyra_sim  # noqa: F401  first: it sets the OpenMP environment before torch loads
import numpy as np

from lyra_sim.io_utils import write_json

CACHE = Path(__file__).resolve().parent / ".cache"
KIT, KIT_SEED, VIEWS, SIZE = "tabletop", 0, 72, 128


def cache_path(gaussians: int) -> Path:
    return CACHE / f"trained_{KIT}_{gaussians // 1000}k.ply"


def scene_statistics(scene) -> dict:
    """What tells trained splats from surface samples: opacity, size and overlap."""
    opacity = scene.opacities().numpy()
    max_scale = scene.log_scales.max(dim=1).values.exp().numpy()
    means = scene.means.numpy()
    low, high = np.percentile(means, 1, axis=0), np.percentile(means, 99, axis=0)
    return {
        "gaussians": len(scene),
        "sh_degree": scene.sh_degree,
        "opacity_median": float(np.median(opacity)),
        "opacity_p01": float(np.percentile(opacity, 1)),
        "opacity_p99": float(np.percentile(opacity, 99)),
        "max_scale_median_m": float(np.median(max_scale)),
        "max_scale_p99_m": float(np.percentile(max_scale, 99)),
        "core_extent_m": (high - low).round(3).tolist(),  # 1st-99th percentile box
        "full_extent_m": (means.max(0) - means.min(0)).round(3).tolist(),  # floaters included
    }


def train(gaussians: int, minutes: float, out: Path) -> dict:
    from lyra_sim.kits import make_scene
    from lyra_sim.scene.io import save_scene

    try:  # the trainer's home after the generate/ split (issue 12), else its old one
        from lyra_sim.reconstruct import ReconstructionConfig, reconstruct
    except ImportError:
        from lyra_sim.generate.reconstruct import ReconstructionConfig, reconstruct

    kit = make_scene(KIT, seed=KIT_SEED, n_objects=2)
    cameras = kit.cameras("hemisphere", VIEWS, width=SIZE, height=SIZE, seed=0)
    photos = kit.render_photos(cameras.with_size(2 * SIZE, 2 * SIZE), progress=True).resized(SIZE, SIZE)
    config = ReconstructionConfig(
        iterations=4000, time_budget_s=60.0 * minutes, init="depth", init_count=min(60_000, gaussians),
        max_gaussians=gaussians, sh_degree=3, sh_degree_interval=300, refine_start=100, refine_every=50,
        refine_stop=None, eval_every=0, test_every=9, backend="cpu", seed=0,
    )
    started = time.perf_counter()
    result = reconstruct(photos, config, progress=True)
    seconds = time.perf_counter() - started
    scene = result.scene
    scene.metadata.frame, scene.metadata.metric = "z-up", True
    scene.metadata.notes.append(f"benchmark scene: {KIT} kit (seed {KIT_SEED}), {VIEWS} views at {SIZE} px")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_scene(scene, out)
    sidecar = {
        "kit": KIT, "kit_seed": KIT_SEED, "views": VIEWS, "size": SIZE,
        "config": dataclass_dict(config),
        "train_seconds": round(seconds, 1), "steps": result.history[-1]["step"] if result.history else None,
        "test_psnr": round(float(result.test_metrics.get("psnr", float("nan"))), 3),
        "test_ssim": round(float(result.test_metrics.get("ssim", float("nan"))), 4),
        "load_average_after": list(os.getloadavg()),
        "statistics": scene_statistics(scene),
    }
    write_json(out.with_suffix(".json"), sidecar, indent=1, default=float)
    return sidecar


def dataclass_dict(config) -> dict:
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def trained_scene(gaussians: int = 150_000, minutes: float = 8.0):
    """(scene, sidecar dict) of the cached trained benchmark scene, training it when missing."""
    from lyra_sim.scene.io import load_scene

    path = cache_path(gaussians)
    if not path.is_file() or not path.with_suffix(".json").is_file():
        print(f"training the benchmark scene ({gaussians} Gaussians, up to {minutes:.0f} min); cached at {path}", flush=True)
        train(gaussians, minutes, path)
    return load_scene(path), json.loads(path.with_suffix(".json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gaussians", type=int, default=150_000)
    parser.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    parser.add_argument("--force", action="store_true", help="retrain even when cached")
    args = parser.parse_args()
    path = cache_path(args.gaussians)
    if args.force or not path.is_file():
        sidecar = train(args.gaussians, args.minutes, path)
    else:
        sidecar = json.loads(path.with_suffix(".json").read_text())
    print(json.dumps({k: sidecar[k] for k in ("train_seconds", "steps", "test_psnr", "statistics")}, indent=1))
    print(f"scene: {path}")


if __name__ == "__main__":
    main()

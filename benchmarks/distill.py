"""Self-distillation of the tiny Lyra-style decoder on a scene kit, for a fixed CPU budget.

The scene teacher renders the tabletop kit (textured meshes, PyBullet TinyRenderer, flat light)
along Lyra's six trajectories from several input views and encodes the videos with a small
random-weight Cosmos VAE (no pretrained weights on CPU machines). The decoder trains on
``--train-views`` input views for ``--budget`` seconds; then decoded scenes are rendered at every
camera of the training samples and of ``--held-out-views`` input views it never saw, and
compared with the teacher's frames (PSNR). Baselines in the same run: the mean colour of the
training frames (a constant image) and the untrained decoder.

    python benchmarks/distill.py                    # 8-minute budget
    python benchmarks/distill.py --budget 60 --size 32

Prints a table and writes ``benchmarks/results/distill.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "distill.json"


def mean_colour_psnr(teacher, indices, colour: torch.Tensor) -> float:
    """PSNR of a constant image of ``colour`` against every frame of the given samples."""
    from lyra_sim.reconstruct.losses import psnr_per_image

    scores = []
    for index in indices:
        frames = teacher.sample(index).frames.flatten(0, 1).permute(0, 2, 3, 1)  # [C, H, W, 3]
        scores.extend(psnr_per_image(colour.expand_as(frames).contiguous(), frames).tolist())
    return sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=480.0, help="training seconds")
    parser.add_argument("--size", type=int, default=64, help="frame width and height (multiple of 8)")
    parser.add_argument("--frames", type=int, default=9, help="frames per trajectory (1 + 8k for Cosmos)")
    parser.add_argument("--train-views", type=int, default=4)
    parser.add_argument("--held-out-views", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--views-per-step", type=int, default=8)
    parser.add_argument("--gaussian-upsample", type=int, default=1, help="Gaussians per latent pixel along each axis")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from lyra_sim.generate.decoder import GaussianDecoder, decoder_config
    from lyra_sim.generate.distill import DistillConfig, Distiller
    from lyra_sim.generate.teachers import SceneTeacher
    from lyra_sim.generate.vae import tiny_vae
    from lyra_sim.io_utils import write_json
    from lyra_sim.kits import make_scene

    torch.manual_seed(args.seed)
    kit = make_scene("tabletop", seed=args.seed)
    count = args.train_views + args.held_out_views
    cameras = kit.cameras("hemisphere", count, width=args.size, height=args.size, fov_deg=60.0, seed=args.seed)
    # Interleave so training and held-out views both spread over the hemisphere.
    order = torch.randperm(count, generator=torch.Generator().manual_seed(args.seed))
    train_viewmats, held_viewmats = cameras.viewmat[order[: args.train_views]], cameras.viewmat[order[args.train_views :]]
    vae = tiny_vae("cosmos", seed=args.seed)
    common = dict(K=cameras.K[0], width=args.size, height=args.size, num_frames=args.frames, backend=args.backend, near=0.05, far=50.0)
    teacher = SceneTeacher(kit, vae, train_viewmats, **common)
    held_out = SceneTeacher(kit, vae, held_viewmats, **common)
    t0 = time.perf_counter()
    teacher.prepare()
    held_out.prepare()
    teacher_seconds = time.perf_counter() - t0

    decoder = GaussianDecoder(decoder_config("tiny", "cosmos", gaussian_upsample=args.gaussian_upsample))
    config = DistillConfig(
        steps=1_000_000, learning_rate=args.learning_rate, views_per_step=args.views_per_step, backend=args.backend,
        time_budget_s=args.budget, seed=args.seed,
    )
    distiller = Distiller(decoder, teacher, config)
    train_indices, held_indices = range(len(teacher)), range(len(held_out))
    # Compile the renderer's kernels (forward and backward) outside the timed budget.
    distiller.loss(teacher.sample(0), torch.arange(2))["total"].backward()
    decoder.zero_grad(set_to_none=True)
    untrained = {"train": distiller.evaluate(teacher)["psnr"], "held_out": distiller.evaluate(held_out)["psnr"]}
    result = distiller.train()
    trained = {"train": distiller.evaluate(teacher)["psnr"], "held_out": distiller.evaluate(held_out)["psnr"]}
    mean_colour = torch.cat([teacher.sample(i).frames.flatten(0, 1) for i in train_indices]).mean(dim=(0, 2, 3))
    baseline = {"train": mean_colour_psnr(teacher, train_indices, mean_colour), "held_out": mean_colour_psnr(held_out, held_indices, mean_colour)}
    history = result.history
    window = max(1, min(20, len(history) // 10))
    mse_first = sum(h["mse"] for h in history[:window]) / window
    mse_last = sum(h["mse"] for h in history[-window:]) / window

    rows = [
        ("mean colour of the training frames (baseline)", baseline),
        ("untrained decoder (baseline)", untrained),
        (f"distilled decoder, {result.steps} steps", trained),
    ]
    print(f"\nTabletop kit, {args.size}x{args.size}, {args.frames} frames x 6 trajectories per input view; "
          f"{args.train_views} training / {args.held_out_views} held-out input views; budget {args.budget:.0f} s")
    print(f"{'method':<50} {'train PSNR':>11} {'held-out PSNR':>14}")
    for name, scores in rows:
        print(f"{name:<50} {scores['train']:>11.2f} {scores['held_out']:>14.2f}")
    print(f"training MSE {mse_first:.4f} -> {mse_last:.4f} ({mse_first / mse_last:.1f}x) in {result.seconds:.0f} s, "
          f"{result.steps / result.seconds:.2f} steps/s; teacher rendering + encoding {teacher_seconds:.1f} s")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "distill",
        "scene": "tabletop kit seed 0 (PyBullet TinyRenderer, flat light)",
        "vae": "tiny random-weight Cosmos (8x8x8, 16 channels)",
        "decoder": f"tiny, gaussian_upsample={args.gaussian_upsample}",
        "learning_rate": args.learning_rate,
        "views_per_step": args.views_per_step,
        "size": args.size,
        "frames": args.frames,
        "train_views": args.train_views,
        "held_out_views": args.held_out_views,
        "budget_s": args.budget,
        "steps": result.steps,
        "train_seconds": result.seconds,
        "teacher_seconds": teacher_seconds,
        "psnr": {name: scores for name, scores in rows},
        "training_mse": {"first": mse_first, "last": mse_last},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "numba_threads": __import__("numba").get_num_threads()},
        "note": "timings taken on a shared 2-core machine while other jobs ran",
    }
    write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""A short CPU reconstruction of the tabletop kit at SH degree 3: real trained splats for the format
round-trip error table of ``io.py --trained`` (synthetic white-noise SH compresses unlike trained SH).

Usage: ``python benchmarks/trained_scene.py [--out trained_tabletop.ply] [--seconds 240]``
(about 4 minutes on 2 cores; the io.json figures used the defaults: 58,524 Gaussians).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lyra_sim.kits import make_scene
from lyra_sim.reconstruct.trainer import ReconstructionConfig, reconstruct
from lyra_sim.scene.io import save_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("trained_tabletop.ply"))
    parser.add_argument("--seconds", type=float, default=240.0, help="training time budget")
    args = parser.parse_args()
    kit = make_scene("tabletop", seed=0)
    photos = kit.render_photos(kit.cameras("hemisphere", 48, width=128, height=128, seed=0), progress=False)
    config = ReconstructionConfig(
        iterations=3000, time_budget_s=args.seconds, max_gaussians=60_000, init_count=20_000, sh_degree=3,
        sh_degree_interval=300, refine_every=100, refine_start=200, seed=0, test_every=8,
    )
    scene = reconstruct(photos, config, progress=True).scene
    scene.metadata.frame, scene.metadata.metric = "z-up", True
    save_scene(scene, args.out)
    print(f"wrote {len(scene)} Gaussians (SH {scene.sh_degree}) to {args.out}")


if __name__ == "__main__":
    main()

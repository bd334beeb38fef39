"""Build the packaged default SimBundles of the environments from the scene kits.

    python scripts/make_default_bundle.py                 # all: room (Navigate), tabletop (Push), room_dynamic
    python scripts/make_default_bundle.py --kind room --gaussians 40000

Each bundle is ``build_bundle`` run on the kit's surface-sampled splat with the kit's movable
objects as object masks, written atomically to ``lyra_sim/assets/bundles/<kind>``.
``room_dynamic`` (NavigateDynamic) is ``build_dynamic_bundle`` on a room sequence whose first box
drives there and back across the floor (``lyra_sim.kits.sequences``), a looped track. Budgets are
chosen so the bundles together stay a few MB (they ship inside the wheel).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

# Budgets per kit: enough Gaussians for 64-256 px views, meshes decimated for a small wheel.
KIT_SETTINGS = {
    "room": {"gaussians": 30_000, "voxel_size": 0.03, "collision_faces": 12_000, "visual_faces": 12_000},
    "tabletop": {"gaussians": 20_000, "voxel_size": 0.015, "collision_faces": 12_000, "visual_faces": 12_000},
    "room_dynamic": {"gaussians": 20_000, "voxel_size": 0.04, "collision_faces": 8_000, "visual_faces": 8_000},
}
# room_dynamic's mover (the box at (-0.5, 0.6)): 1.6 m along -y (clear of the table and the other boxes) and back
# in 8 s (0.4 m/s, below the robot's 0.6 m/s), 3 stored steps per second.
DYNAMIC_SEQUENCE = {"frames": 25, "distance": 1.6, "turn_deg": 30.0, "return_trip": True, "direction": (0.0, -1.0)}
DYNAMIC_FPS = 3.0


def build_default_bundle(kind: str, out_root: Path, *, seed: int = 0, gaussians: int | None = None, progress: bool = True) -> Path:
    """Build the ``kind`` kit ("room", "tabletop" or "room_dynamic") into ``out_root / kind``; returns the bundle path."""
    from lyra_sim.converters.bundle import build_bundle
    from lyra_sim.converters.config import BuildConfig
    from lyra_sim.kits import make_scene

    settings = KIT_SETTINGS[kind]
    config = BuildConfig(
        up_axis="+Z",
        refine_up=False,
        scale=1.0,
        voxel_size=settings["voxel_size"],
        collision_face_budget=settings["collision_faces"],
        visual_face_budget=settings["visual_faces"],
        image_size=128,
        object_resolution=32,
        convex_threshold=0.1,
        max_hulls=6,
        convex_method="vhacd",  # CoACD takes minutes per carved object on a busy 2-core machine
        preview_size=320,
        seed=seed,
    )
    if kind == "room_dynamic":
        from lyra_sim.converters.dynamic import build_dynamic_bundle
        from lyra_sim.kits.sequences import moving_object_sequence

        sequence = moving_object_sequence("room", seed=seed, gaussians=gaussians or settings["gaussians"], **DYNAMIC_SEQUENCE)
        config = dataclasses.replace(config, kind="scene")
        return build_dynamic_bundle(sequence.frames, out_root / kind, config, fps=DYNAMIC_FPS, progress=progress)[0]
    kit = make_scene(kind, seed=seed)
    scene, labels = kit.to_gaussians(gaussians or settings["gaussians"], seed=seed)
    scene.metadata.frame = "z-up"
    scene.metadata.metric = True
    return build_bundle(scene, out_root / kind, config, object_masks=kit.object_masks(labels), progress=progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=[*KIT_SETTINGS, "all"], default="all", help="which bundle to build")
    parser.add_argument("--out", type=Path, default=None, help="output root (default: the packaged lyra_sim/assets/bundles)")
    parser.add_argument("--seed", type=int, default=0, help="kit layout seed")
    parser.add_argument("--gaussians", type=int, default=None, help="override the Gaussian count")
    args = parser.parse_args(argv)
    from lyra_sim.envs.constants import PACKAGED_BUNDLES_DIR

    out_root = args.out or PACKAGED_BUNDLES_DIR
    for kind in KIT_SETTINGS if args.kind == "all" else [args.kind]:
        start = time.perf_counter()
        path = build_default_bundle(kind, out_root, seed=args.seed, gaussians=args.gaussians)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(f"{kind}: {path} ({size / 1e6:.2f} MB) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Collision-mesh accuracy of photo reconstructions: surface-aware training and capture-camera meshing.

For each kit (tabletop: hemisphere photos; room: a walk-through at eye height), photos are
rendered at 2x and box-filtered, each with a random exposure gain (log-normal, sigma
``--exposure``), no depth; training starts from a structure-from-motion-like point cloud
(sparse, noisy, 5% outliers), as a COLMAP capture does. Every 8th photo is held out.
Reconstruction runs a FIXED number of steps (the surface terms cost an extra render per step,
so their variant takes longer: both times are reported). Each reconstruction is meshed twice by
``build_bundle`` (the demo's build settings): with the virtual orbit views (the path before
issue 15) and with the capture cameras (confidence-weighted fusion, issue 15). Scored: the
collision geometry (scenery + object hulls) against the kit's true mesh inside the
photographed box: F-score at 1 and 2 cm, Chamfer-L1 (mm), normal consistency; the held-out
PSNR; pieces and faces of the scenery mesh; PyBullet step time with the bundle's objects
resting in contact on it. With ``--ablation`` the first kit is also trained with each surface
term off in turn. All variants run in one process so they share the machine's state.

    /work/wt/heavy python benchmarks/geometry.py            # writes benchmarks/results/geometry.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import lyra_sim  # noqa: F401  first: it sets the OpenMP environment before torch loads
import numpy as np

from lyra_sim.io_utils import write_json

TERMS = ("min_scale_weight", "opacity_binary_weight", "distortion_weight", "normal_weight")
MAIN_VARIANTS = [("plain", {"surface": False}), ("surface", {"surface": True})]
ABLATIONS = [(f"surface without {term.removesuffix('_weight')}", {"surface": True, term: 0.0}) for term in TERMS]
TRAJECTORY = {"tabletop": "hemisphere", "room": "walkthrough"}
VOXEL = {"tabletop": 0.01, "room": 0.02}


def capture_photos(kit, count: int, size: int, exposure: float, seed: int):
    """Photos as a capture gives them: box-filtered, exposure varying per photo, no depth, SfM points."""
    from lyra_sim.kits.captures import structure_from_motion_points

    rng = np.random.default_rng(seed)
    cameras = kit.cameras(TRAJECTORY[kit.kind], count, width=2 * size, height=2 * size, seed=seed)
    photos = kit.render_photos(cameras, progress=False).resized(size, size)
    points, colours = structure_from_motion_points(photos, 10_000, rng)
    gains = np.exp(rng.normal(0.0, exposure, len(photos)))
    images = np.clip(photos.images.astype(np.float32) * gains[:, None, None, None], 0, 255).round().astype(np.uint8)
    return dataclasses.replace(photos, images=images, depths=None, instances=None, points=points, point_colors=colours)


def pybullet_step_ms(bundle_path: Path, steps: int = 500) -> float:
    """Mean wall time (ms) of one PyBullet step with the bundle's objects resting on its scenery."""
    import pybullet

    from lyra_sim.bundle import load_bundle
    from lyra_sim.sim.world import load_into_pybullet

    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
        load_into_pybullet(load_bundle(bundle_path), client)
        for _ in range(100):  # settle into contact first
            pybullet.stepSimulation(physicsClientId=client)
        started = time.perf_counter()
        for _ in range(steps):
            pybullet.stepSimulation(physicsClientId=client)
        return 1000.0 * (time.perf_counter() - started) / steps
    finally:
        pybullet.disconnect(client)


def mesh_scores(scene, kit, fusion: str, seed: int) -> dict:
    from lyra_sim.bundle import load_bundle
    from lyra_sim.converters.bundle import build_bundle
    from lyra_sim.converters.config import BuildConfig
    from lyra_sim.kits.evaluation import bundle_mesh_accuracy, object_masks_near_truth

    # Objects the reconstruction barely formed (a few dozen Gaussians) stay scenery: carving cannot make a solid of them.
    masks = {name: mask for name, mask in object_masks_near_truth(kit, scene.means.numpy(), max_distance=0.02).items() if mask.sum() >= 100}
    # The kit's floor is z = 0: given, because a short reconstruction's floor can be too faint for the
    # floor search (it then takes the table top and clips everything below it; measured here).
    build = BuildConfig(up_axis="+Z", refine_up=False, scale=1.0, floor_height=0.0, voxel_size=VOXEL[kit.kind], image_size=192,
                        refine_to_gaussians=False, fusion_cameras=fusion, render_backend="cpu", convex_method="vhacd", seed=seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        path = build_bundle(scene, Path(folder) / "bundle", build, object_masks=masks, progress=False)
        build_seconds = time.perf_counter() - started
        bundle = load_bundle(path)
        at_1cm = bundle_mesh_accuracy(bundle, kit, 0.01)
        at_2cm = bundle_mesh_accuracy(bundle, kit, 0.02)
        scenery = bundle.manifest.build["scenery"]
        step_ms = pybullet_step_ms(path)
    report = scenery["collision_mesh"]
    return {
        "fscore_1cm": at_1cm["fscore"], "precision_1cm": at_1cm["precision"], "recall_1cm": at_1cm["recall"],
        "fscore_2cm": at_2cm["fscore"], "chamfer_mm": round(1000 * at_1cm["chamfer_l1"], 2),
        "normal_consistency": at_1cm["normal_consistency"], "objects": len(masks), "collision_faces": report["faces"],
        "pieces": report["pieces"], "fused_pieces": scenery["fused_pieces"],
        "watertight": report["watertight"], "pybullet_step_ms": round(step_ms, 3), "build_s": round(build_seconds, 1),
    }


def run_case(kit_name: str, args, variants: list[tuple[str, dict]], fusions: tuple[str, ...]) -> list[dict]:
    import torch

    from lyra_sim.kits import make_scene
    from lyra_sim.reconstruct import ReconstructionConfig, reconstruct
    from lyra_sim.scene.io import load_scene, save_scene

    kit = make_scene(kit_name, seed=args.seed)
    photos = capture_photos(kit, args.photos, args.size, args.exposure, args.seed)
    rows = []
    for name, overrides in variants:
        config = ReconstructionConfig(
            iterations=args.iterations, init="points", init_count=min(args.gaussians, 20_000), max_gaussians=args.gaussians,
            sh_degree=1, sh_degree_interval=max(1, args.iterations // 2), refine_start=200, refine_every=100,
            backend="cpu", render_threads=1, seed=args.seed, test_every=8, **overrides,
        )
        started = time.perf_counter()
        cached = Path(args.scenes) / f"{kit_name}_{name.replace(' ', '_')}.ply" if args.scenes else None
        if cached is not None and cached.is_file():  # re-mesh a kept reconstruction (its figures come with it)
            scene = load_scene(cached)
            scene.metadata.frame, scene.metadata.metric = "z-up", True
            metrics = json.loads(cached.with_suffix(".json").read_text())
        else:
            result = reconstruct(photos, config, progress=False)
            scene = result.scene
            scene.metadata.frame, scene.metadata.metric = "z-up", True
            metrics = {"test_psnr": result.test_metrics["psnr"], "train_seconds": time.perf_counter() - started}
            if cached is not None:
                save_scene(scene, cached)
                cached.with_suffix(".json").write_text(json.dumps(metrics))
        train_seconds = metrics["train_seconds"]
        scales = torch.exp(scene.log_scales)
        common = {
            "kit": kit_name, "variant": name, "test_psnr": round(metrics["test_psnr"], 2), "steps": args.iterations,
            "train_seconds": round(train_seconds, 1), "gaussians": len(scene),
            "median_min_over_max_scale": round(float((scales.min(1).values / scales.max(1).values).median()), 3),
            "median_opacity": round(float(scene.opacities().median()), 3),
        }
        for fusion in fusions:
            row = {**common, "meshing": fusion, **mesh_scores(scene, kit, fusion, args.seed)}
            print(" | ".join(f"{k} {v}" for k, v in row.items()), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/geometry.json")
    parser.add_argument("--kits", nargs="+", default=["tabletop", "room"])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--exposure", type=float, default=0.08, help="sigma of the log exposure gain per photo")
    parser.add_argument("--iterations", type=int, default=1500, help="reconstruction steps per variant (fixed)")
    parser.add_argument("--gaussians", type=int, default=30_000)
    parser.add_argument("--ablation", action="store_true", help="also each surface term off in turn (first kit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", default=None, help="folder to keep reconstructions in and re-mesh them from")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = list(os.getloadavg())
    rows = []
    for kit in args.kits:
        rows += run_case(kit, args, MAIN_VARIANTS, ("virtual", "capture"))
    if args.ablation:
        rows += run_case(args.kits[0], args, ABLATIONS, ("capture",))
    result = {
        "benchmark": "geometry", "settings": vars(args), "rows": rows,
        "baseline": "plain 3DGS (surface=False) meshed from virtual orbit views (the path before issue 15), same run",
        "targets": {"fscore_1cm": 0.80, "chamfer_mm": 8.0},
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg": list(os.getloadavg())},
    }
    write_json(args.out, result)
    print(f"wrote {args.out} ({result['seconds']} s, load {result['machine']['loadavg']})")


if __name__ == "__main__":
    main()

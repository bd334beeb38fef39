"""Export times (URDF, MJCF, USD) and cross-engine rest positions (PyBullet vs MuJoCo) of bundles.

Usage: ``python benchmarks/export.py [--repeats 3] [--lift 0.02] [--out benchmarks/results/export.json]``

For each packaged bundle (and the tabletop with two kit objects composed onto its table):
- wall and CPU seconds of ``export`` to each format, and of loading the result (PyBullet
  ``loadURDF`` of every URDF — the baseline —, ``mujoco.MjModel.from_xml_path``, ``Usd.Stage.Open``);
- where each object rests after falling ``--lift`` metres for 2 s in PyBullet (240 Hz) and in
  MuJoCo (the exported MJCF, 500 Hz). The baseline for those differences, in the same run, is
  PyBullet against itself at 1 kHz: how much the answer moves when only the step changes.
Prints a table and writes JSON (with the load average).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np

from lyra_sim.converters.compose import ObjectPlacement, compose, kit_object_bundle
from lyra_sim.converters.export import export
from lyra_sim.envs.constants import PACKAGED_BUNDLES_DIR
from lyra_sim.io_utils import write_json
from lyra_sim.sim import settle
from lyra_sim.bundle import load_bundle
from timing import time_call  # benchmarks/timing.py

FORMATS = (("urdf", "urdf_out"), ("mjcf", "model.xml"), ("usd", "stage.usdc"), ("usd", "stage.usda"))


def _load(format: str, path: Path) -> None:
    if format == "urdf":  # what a PyBullet user does with the folder: world.json says what goes where
        import json

        import pybullet

        world = json.loads((path / "world.json").read_text())
        client = pybullet.connect(pybullet.DIRECT)
        try:
            pybullet.loadURDF(str(path / world["scenery"]["urdf"]), useFixedBase=True, physicsClientId=client)
            for entry in world["objects"]:
                pybullet.loadURDF(str(path / entry["urdf"]), entry["position"], entry["orientation_xyzw"], flags=pybullet.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)
        finally:
            pybullet.disconnect(client)
    elif format == "mjcf":
        import mujoco

        mujoco.MjModel.from_xml_path(str(path))
    else:
        from pxr import Usd

        Usd.Stage.Open(str(path))


def _rest_differences(bundle, lift: float, mjcf: Path) -> dict:
    pybullet_poses = settle.rest_poses(bundle, "pybullet", lift=lift)
    mujoco_poses = settle.rest_poses(bundle, "mujoco", lift=lift, mjcf=mjcf)
    rate = settle.PYBULLET_HZ
    try:
        settle.PYBULLET_HZ = 1000.0
        fine_poses = settle.rest_poses(bundle, "pybullet", lift=lift)
    finally:
        settle.PYBULLET_HZ = rate
    objects = {}
    for obj in bundle.objects:
        objects[obj.name] = {
            "start": (obj.position + [0, 0, lift]).tolist(),
            "pybullet": pybullet_poses[obj.name][0].tolist(),
            "mujoco": mujoco_poses[obj.name][0].tolist(),
            "mujoco_vs_pybullet_mm": 1000 * float(np.linalg.norm(mujoco_poses[obj.name][0] - pybullet_poses[obj.name][0])),
            "pybullet_1khz_vs_240hz_mm": 1000 * float(np.linalg.norm(fine_poses[obj.name][0] - pybullet_poses[obj.name][0])),
        }
    return objects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lift", type=float, default=0.02, help="drop height above the initial pose (m)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "export.json"))
    args = parser.parse_args()

    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "lift_m": args.lift, "bundles": {}}
    with tempfile.TemporaryDirectory(prefix="lyra_export_bench_") as folder:
        folder = Path(folder)
        from lyra_sim.kits.layouts import make_scene

        kit = make_scene("tabletop", seed=0)
        placements = [ObjectPlacement(kit_object_bundle(kit, name, folder / f"kit_{name}"), xy, name=f"kit_{name}") for name, xy in (("object_0", (-0.3, 0.2)), ("object_1", (-0.35, -0.2)))]
        composed = compose(PACKAGED_BUNDLES_DIR / "tabletop", placements, folder / "tabletop_composed", preview=False)
        for name, root in (("tabletop", PACKAGED_BUNDLES_DIR / "tabletop"), ("room", PACKAGED_BUNDLES_DIR / "room"), ("tabletop+2 kit objects", composed)):
            bundle = load_bundle(root)
            entry = {"objects": len(bundle.objects), "formats": {}}
            for format, filename in FORMATS:
                target = folder / name.replace(" ", "_").replace("+", "_") / filename
                wall, cpu = time_call(lambda: export(bundle, format, target), args.repeats)
                load_wall, load_cpu = time_call(lambda: _load(format, target), args.repeats)
                size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) if target.is_dir() else target.stat().st_size
                entry["formats"][filename.split(".")[-1] if format == "usd" else format] = {
                    "export_wall_s": statistics.median(wall), "export_cpu_s": statistics.median(cpu),
                    "load_wall_s": statistics.median(load_wall), "load_cpu_s": statistics.median(load_cpu), "bytes": size,
                }
            entry["rest"] = _rest_differences(bundle, args.lift, folder / name.replace(" ", "_").replace("+", "_") / "model.xml")
            results["bundles"][name] = entry
    results["loadavg_end"] = os.getloadavg()

    print(f"{'bundle':<24} {'format':<6} {'export s':>9} {'load s':>8} {'MB':>6}")
    for name, entry in results["bundles"].items():
        for format, row in entry["formats"].items():
            print(f"{name:<24} {format:<6} {row['export_wall_s']:>9.2f} {row['load_wall_s']:>8.2f} {row['bytes'] / 1e6:>6.1f}")
    print(f"\nrest position after a {args.lift * 100:.0f} cm drop, 2 s: MuJoCo vs PyBullet (baseline: PyBullet 1 kHz vs 240 Hz), mm")
    for name, entry in results["bundles"].items():
        for obj, row in entry["rest"].items():
            print(f"{name:<24} {obj:<16} {row['mujoco_vs_pybullet_mm']:>7.1f}   ({row['pybullet_1khz_vs_240hz_mm']:.1f})")
    write_json(args.out, results)
    print(f"wrote {args.out} (load average {results['loadavg_start'][0]:.1f} -> {results['loadavg_end'][0]:.1f})")


if __name__ == "__main__":
    main()

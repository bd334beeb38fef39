"""Benchmark: up, floor, scale and kind from evidence, against today's dominant-plane method.

Cases are realistic captures (``lyra_sim.kits.captures``): kit scenes (tabletop, room) and
single kit objects without a floor, photographed by hand-held cameras (random roll), then
reconstructed by our trainer from random Gaussians (so they keep real floaters). Each capture
is written in every convention (OpenCV -Y up with frame "unknown", OpenGL +Y up, +Z up, and an
arbitrary rotation), with a random yaw, offset and scale, with and without its cameras (the
arbitrary rotation only with them: nothing else can tell its up). With cameras, the scene is
written to disk and its cameras beside it in one of four forms (our sidecar with units, INRIA
``cameras.json``, ``transforms.json``, COLMAP ``sparse/0``), then read back by ``load_scene``,
so discovery is part of what is measured.

For every case: the up error (degrees between the chosen and the true up), the scale error
(when a scale is claimed), whether an object scan became an object and a scene a scene, and
whether a non-metric scale was assumed silently. The baseline is the method of lyra-sim 0.x
before this change: the file frame's up as a prior refined by RANSAC, or the dominant plane
when the frame is unknown, and "1 unit = 1 m" when nothing says otherwise.

    python benchmarks/normalise.py [--cache DIR] [--out benchmarks/results/normalise.json]

Reconstructions are cached in ``--cache`` (they take most of the time); ``--captures-only``
builds the cache and stops.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from lyra_sim.converters.config import BuildConfig
from lyra_sim.converters.evidence import FRAME_UP, angle_deg
from lyra_sim.converters.normalise import find_floor, normalise_scene
from lyra_sim.geometry.pointcloud import statistical_outliers, voxel_components
from lyra_sim.io_utils import write_json
from lyra_sim.kits import make_scene
from lyra_sim.kits.captures import disguise, object_kit, reconstruct_capture
from lyra_sim.scene import cameras as camera_files
from lyra_sim.scene.io import load_scene, save_scene

CAPTURES = [
    ("object", "duck", 0), ("object", "blob", 1), ("object", "cube", 2), ("object", "duck", 3),
    ("scene", "tabletop", 0), ("scene", "tabletop", 1), ("scene", "room", 0), ("scene", "room", 1),
]
CAMERA_FILES = ("sidecar", "inria", "transforms", "colmap")
UPRIGHT_DEG = 5.0


def capture_path(cache: Path, kind: str, name: str, seed: int) -> Path:
    return cache / f"{kind}_{name}_{seed}.ply"


def build_captures(cache: Path, views: int, size: int, iterations: int, gaussians: int) -> list[dict]:
    """Reconstruct every capture not in the cache yet; returns their reports."""
    cache.mkdir(parents=True, exist_ok=True)
    reports = []
    for kind, name, seed in CAPTURES:
        path = capture_path(cache, kind, name, seed)
        if path.is_file():
            continue
        started = time.perf_counter()
        kit = object_kit(name, seed) if kind == "object" else make_scene(name, seed=seed, n_objects=2)
        capture = reconstruct_capture(kit, views=views, size=size, iterations=iterations, gaussians=gaussians, seed=seed)
        save_scene(capture.scene, path)
        reports.append({"capture": path.name, "psnr": round(capture.psnr, 2), "seconds": round(time.perf_counter() - started, 1)})
        print(f"captured {path.name}: held-out PSNR {capture.psnr:.2f} dB in {reports[-1]['seconds']} s", flush=True)
    return reports


def baseline_up(scene, config: BuildConfig) -> np.ndarray:
    """Today's method (before evidence): far-field, outlier and cluster clean-up, then the frame's
    up refined by RANSAC within 30 degrees, or the dominant plane when the frame is unknown."""
    opacities = scene.opacities().numpy()
    means = scene.means.numpy().astype(np.float64)[opacities >= config.min_opacity]
    opacities = opacities[opacities >= config.min_opacity]
    centre = np.median(means, axis=0)
    distance = np.linalg.norm(means - centre, axis=1)
    keep = distance <= config.far_field_factor * np.median(distance)
    means, opacities = means[keep], opacities[keep]
    keep = ~statistical_outliers(means, config.outlier_neighbours, config.outlier_std_ratio)
    means, opacities = means[keep], opacities[keep]
    low, high = np.percentile(means, [1, 99], axis=0)
    extent = float(np.max(high - low))
    labels, sizes = voxel_components(means, config.cluster_cell_fraction * extent)
    keep = ~(sizes < config.min_cluster_fraction * len(means))[labels]
    means, opacities = means[keep], opacities[keep]
    low, high = np.percentile(means, [1, 99], axis=0)
    threshold = config.floor_threshold * float(np.max(high - low))
    opaque = means[opacities >= 0.5]
    points = opaque if len(opaque) >= 3 else means
    prior = FRAME_UP.get(scene.metadata.frame)
    prior = None if prior is None else np.asarray(prior)
    try:
        return find_floor(points, threshold, prior, config.up_prior_max_angle_deg, config.seed).normal
    except ValueError:  # the old build stopped with "could not find a floor plane"
        return None


def write_with_cameras(scene, folder: Path, form: str) -> Path:
    """Write ``scene`` and its cameras as a capture tool would lay them out; returns the scene path."""
    cameras = scene.metadata.cameras
    if form == "sidecar":
        path = folder / "scene.ply"
        save_scene(scene, path)  # writes scene.cameras.json with the frame and units
        return path
    bare = scene.clone()
    bare.metadata.cameras = None
    if form == "inria":
        path = folder / "point_cloud" / "iteration_300" / "point_cloud.ply"
        camera_files.write_inria_cameras(cameras, folder / "cameras.json")
    elif form == "transforms":
        path = folder / "exports" / "splat.ply"
        camera_files.write_transforms(cameras, folder / "transforms.json")
    else:
        path = folder / "output" / "scene.ply"
        camera_files.write_colmap_text(cameras, folder / "sparse" / "0")
    save_scene(bare, path)
    return path


def run_case(scene, truth: dict, kind: str) -> dict:
    config = BuildConfig(render_backend="cpu")
    started = time.perf_counter()
    result = normalise_scene(scene, config)
    seconds = time.perf_counter() - started
    record = result.steps["up_and_floor"]
    up = np.asarray(record["up_in_source"])
    baseline = baseline_up(scene, config)
    baseline_error = 90.0 if baseline is None else angle_deg(baseline, np.asarray(truth["up"]))
    scale_kind = result.steps["scale"]["kind"]
    claimed = scale_kind in ("metric", "measured", "explicit", "prior")
    scale_error = abs(result.scale / truth["metres_per_unit"] - 1.0) if claimed else None
    return {
        "up_error_deg": angle_deg(up, np.asarray(truth["up"])),
        "baseline_up_error_deg": baseline_error,
        "baseline_failed": baseline is None,  # counted as a 90-degree error
        "chosen_source": record["chosen_source"],
        "confidence": result.confidence,
        "kind": result.kind,
        "kind_correct": result.kind == kind,
        "scale_kind": scale_kind,
        "scale_error": scale_error,
        "baseline_scale_error": abs(1.0 / truth["metres_per_unit"] - 1.0),  # "1 unit = 1 m"
        "silent_metres": scale_kind == "unknown" and not any("units unknown" in w for w in result.warnings),
        "baseline_silent_metres": True,
        "warnings": result.warnings,
        "removed": {k: v["removed"] for k, v in result.steps.items() if isinstance(v, dict) and "removed" in v},
        "seconds": round(seconds, 3),
    }


def summarise(cases: list[dict], key: str) -> dict:
    errors = np.array([c[key] for c in cases])
    return {
        "cases": len(cases),
        "median_deg": round(float(np.median(errors)), 3),
        "p95_deg": round(float(np.percentile(errors, 95)), 3),
        "max_deg": round(float(errors.max()), 3),
        "upright_share": round(float(np.mean(errors <= UPRIGHT_DEG)), 3),
    }


def scale_summary(cases: list[dict], key: str) -> dict | None:
    errors = [c[key] for c in cases if c[key] is not None]
    if not errors:
        return None
    return {"cases": len(errors), "median": round(float(np.median(errors)), 4), "p95": round(float(np.percentile(errors, 95)), 4),
            "within_5_percent": round(float(np.mean(np.asarray(errors) <= 0.05)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "lyra-bench-normalise"))
    parser.add_argument("--out", default="benchmarks/results/normalise.json")
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--gaussians", type=int, default=4000)
    parser.add_argument("--captures-only", action="store_true")
    args = parser.parse_args()
    cache = Path(args.cache)
    started = time.perf_counter()
    capture_reports = build_captures(cache, args.views, args.size, args.iterations, args.gaussians)
    if args.captures_only:
        return
    cases = []
    case_seed = 0
    with tempfile.TemporaryDirectory() as scratch:
        for kind, name, seed in CAPTURES:
            source = load_scene(capture_path(cache, kind, name, seed))
            for convention in ("opencv", "opengl", "z-up", "arbitrary"):
                for with_cameras in (True, False):
                    if convention == "arbitrary" and not with_cameras:
                        continue
                    case_seed += 1
                    form = CAMERA_FILES[case_seed % len(CAMERA_FILES)] if with_cameras else None
                    scene, truth = disguise(source, convention, case_seed, cameras=with_cameras, metric_cameras=form == "sidecar")
                    folder = Path(scratch) / f"case_{case_seed:03d}"
                    path = write_with_cameras(scene, folder, form) if with_cameras else save_scene(scene, folder / "scene.ply")
                    loaded = load_scene(path)
                    loaded.metadata.frame = scene.metadata.frame  # what the tool's reader reports (an INRIA PLY says nothing)
                    case = {"capture": f"{kind}_{name}_{seed}", "kind_truth": kind, "convention": convention, "cameras": form,
                            "frame": loaded.metadata.frame, **run_case(loaded, truth, kind)}
                    cases.append(case)
                    print(f"{case['capture']:>18} {convention:>9} cameras={str(form):>10}: up {case['up_error_deg']:6.2f} deg "
                          f"(baseline {case['baseline_up_error_deg']:6.2f}) from {case['chosen_source']:>12}, conf {case['confidence']:.2f}, "
                          f"{case['kind']:>6}, scale {case['scale_kind']}"
                          + (f" err {case['scale_error']:.3f}" if case["scale_error"] is not None else ""), flush=True)
    groups = {
        "all": cases,
        "with_cameras": [c for c in cases if c["cameras"]],
        "without_cameras": [c for c in cases if not c["cameras"]],
        "scenes": [c for c in cases if c["kind_truth"] == "scene"],
        "objects": [c for c in cases if c["kind_truth"] == "object"],
        **{f"convention_{name}": [c for c in cases if c["convention"] == name] for name in ("opencv", "opengl", "z-up", "arbitrary")},
    }
    summary = {
        name: {
            "new": summarise(group, "up_error_deg"),
            "baseline": summarise(group, "baseline_up_error_deg"),
            "kind_correct": round(float(np.mean([c["kind_correct"] for c in group])), 3),
            "scale_error_new": scale_summary(group, "scale_error"),
            "scale_error_baseline": scale_summary(group, "baseline_scale_error"),
            "silent_metres_new": int(sum(c["silent_metres"] for c in group)),
            "silent_metres_baseline": int(sum(c["baseline_silent_metres"] for c in group)),
        }
        for name, group in groups.items() if group
    }
    summary["scale_metric_cameras"] = scale_summary([c for c in cases if c["cameras"] == "sidecar"], "scale_error")
    summary["scale_camera_prior"] = scale_summary([c for c in cases if c["scale_kind"] == "prior"], "scale_error")
    result = {
        "benchmark": "normalise",
        "description": __doc__.split("\n\n")[0],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())},
        "settings": {"views": args.views, "size": args.size, "iterations": args.iterations, "gaussians": args.gaussians,
                     "upright_deg": UPRIGHT_DEG, "captures": [f"{k}_{n}_{s}" for k, n, s in CAPTURES]},
        "captures_built": capture_reports,
        "summary": summary,
        "cases": cases,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(args.out, result)
    print(f"\n{'group':>22} {'cases':>5} | {'new median':>10} {'p95':>7} {'upright':>7} | {'old median':>10} {'p95':>7} {'upright':>7} | kind ok")
    for name, entry in summary.items():
        if "new" not in entry:
            continue
        new, old = entry["new"], entry["baseline"]
        print(f"{name:>22} {new['cases']:>5} | {new['median_deg']:>10.2f} {new['p95_deg']:>7.2f} {new['upright_share']:>7.2f} | "
              f"{old['median_deg']:>10.2f} {old['p95_deg']:>7.2f} {old['upright_share']:>7.2f} | {entry['kind_correct']:.2f}")
    print(f"scale, metric cameras: {summary['scale_metric_cameras']}; camera-height prior: {summary['scale_camera_prior']}")
    print(f"silent metre assumptions: new {summary['all']['silent_metres_new']}, baseline {summary['all']['silent_metres_baseline']}")
    print(f"wrote {args.out} ({result['seconds']} s, load {result['machine']['loadavg']})")


if __name__ == "__main__":
    main()

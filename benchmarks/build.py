"""Benchmark: scene -> SimBundle build time per stage and collision accuracy against analytic truth.

For each size (default 100k and 500k Gaussians) an analytic room-corner scene is sampled as
flat Gaussians (3 m floor, boxes, a ball as a movable object), turned and scaled by a random
similarity, and built with the default ``BuildConfig`` (CPU renderer). Reported: seconds per
stage, collision-mesh F-score / precision / recall at 1 cm and Chamfer-L1 against the visible
true surfaces, hull counts and volume error of the object, and in the same run a naive baseline:
a Poisson surface straight from the Gaussian centres and their normals (Open3D, depth 9,
low-density trim), timed and scored the same way.

    python benchmarks/build.py [--sizes 100000 500000] [--out benchmarks/results/build.json]

Timings on a shared 2-core machine are noisy; the JSON records the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from lyra_sim.bundle import read_manifest
from lyra_sim.converters.bundle import build_bundle
from lyra_sim.converters.config import BuildConfig
from lyra_sim.converters.segment import gaussian_normals
from lyra_sim.geometry.analytic import tabletop_scene
from lyra_sim.geometry.mesh import Mesh, read_obj
from lyra_sim.geometry.metrics import compare_point_sets, sample_surface
from lyra_sim.scene.transforms import transform_scene
from lyra_sim.io_utils import write_json

BOXES = (
    (-0.9, -0.8, 0.0, 0.5, 0.4, 0.45),
    (0.7, 0.6, 0.0, 0.6, 0.6, 0.75),
    (-0.6, 0.9, 0.0, 0.3, 0.3, 0.3),
    (0.9, -0.7, 0.0, 0.4, 0.25, 0.2),
)
BALL = (0.1, -0.2, 0.15)
THRESHOLD = 0.01


def benchmark_scene(gaussians: int, seed: int = 0):
    """The analytic scene, and a disguised copy (random similarity, frame unknown, not metric)."""
    analytic = tabletop_scene(gaussians, floor_size=3.0, boxes=BOXES, sphere=BALL, seed=seed)
    rotation = Rotation.random(random_state=seed + 5).as_matrix()
    scale, translation = 0.7, np.array([2.0, 1.0, -3.0])
    source = transform_scene(analytic.scene, rotation, translation, scale)
    source.metadata.frame, source.metadata.metric = "unknown", False
    disguise = np.eye(4)
    disguise[:3, :3], disguise[:3, 3] = scale * rotation, translation
    return analytic, source, disguise


def score(mesh: Mesh, truth: np.ndarray) -> dict:
    points, _ = sample_surface(mesh.vertices, mesh.faces, 300_000, seed=1)
    accuracy = compare_point_sets(points, truth, THRESHOLD)
    return {k: round(v, 5) for k, v in accuracy.to_dict().items() if v is not None} | {"faces": len(mesh)}


def poisson_baseline(scene, floor_z: float = 0.0) -> tuple[Mesh, float]:
    """Poisson surface from the Gaussian centres with their normals (flipped to face up/outward)."""
    import open3d as o3d

    started = time.perf_counter()
    points = scene.means.numpy().astype(np.float64)
    normals = gaussian_normals(scene)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.normals = o3d.utility.Vector3dVector(normals)
    # Gaussian normals have no sign: orient them consistently from a tangent-plane graph.
    cloud.orient_normals_consistent_tangent_plane(10)
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=9)
    densities = np.asarray(densities)
    mesh.remove_vertices_by_mask(densities < np.quantile(densities, 0.05))
    result = Mesh.from_open3d(mesh)
    result.colors = None
    return result, time.perf_counter() - started


def run_size(gaussians: int, work: Path) -> dict:
    analytic, source, disguise = benchmark_scene(gaussians)
    top = max(part.top for part in analytic.parts)
    config = BuildConfig(known_height=top, render_backend="cpu")
    ball = analytic.mask("sphere")
    started = time.perf_counter()
    path = build_bundle(source, work / f"bundle_{gaussians}", config, object_masks={"ball": ball}, progress=True)
    total = time.perf_counter() - started
    manifest = read_manifest(path)
    to_bundle = manifest.transform @ disguise
    truth = analytic.visible_truth(300_000, exclude=("sphere",)) @ to_bundle[:3, :3].T + to_bundle[:3, 3]
    (_, collision), = read_obj(path / "meshes" / "background_collision.obj")
    ours = score(collision, truth)

    # Baseline on the same normalised scenery Gaussians (so only the meshing differs).
    from lyra_sim.scene.io import load_scene

    background = load_scene(path / "splats" / "background.ply")
    baseline_mesh, baseline_seconds = poisson_baseline(background)
    baseline = score(baseline_mesh, truth) | {"seconds": round(baseline_seconds, 2)}

    ball_entry = manifest.object("ball")
    ball_report = manifest.build["objects"]["ball"]
    true_volume = 4 / 3 * np.pi * BALL[2] ** 3
    return {
        "gaussians": gaussians,
        "total_seconds": round(total, 2),
        "stage_seconds": manifest.build["stage_seconds"],
        "scenery": manifest.build["scenery"],
        "collision": ours,
        "baseline_poisson_on_centres": baseline,
        "object": {
            "hulls": ball_entry.hulls,
            "volume_error_vs_carved_mesh": ball_report["decomposition"]["volume_error"],
            "volume_error_vs_truth": round(abs(ball_report["volume"] - true_volume) / true_volume, 4),
            "decomposition_seconds": round(ball_report["decomposition"]["seconds"], 2),
        },
        "normalisation": {
            "up_error_deg": float(np.degrees(np.arccos(np.clip((to_bundle[:3, :3] @ [0, 0, 1])[2] / np.linalg.norm(to_bundle[:3, :3] @ [0, 0, 1]), -1, 1)))),
            "scale_error": float(abs(np.linalg.norm(to_bundle[:3, :3] @ [0, 0, 1]) - 1.0)),
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "build.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lyra_build_bench_"))
    results = []
    try:
        for size in args.sizes:
            print(f"== {size} Gaussians", flush=True)
            results.append(run_size(size, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = f"{'gaussians':>10} {'total s':>8} {'normalise':>9} {'scenery':>8} {'convex':>7} {'write':>6} | {'F@1cm':>6} {'P':>6} {'R':>6} {'CD mm':>6} | {'Poisson F':>9} {'CD mm':>6} {'s':>6} | hulls"
    print(header)
    print("-" * len(header))
    for r in results:
        s, c, b = r["stage_seconds"], r["collision"], r["baseline_poisson_on_centres"]
        print(
            f"{r['gaussians']:>10} {r['total_seconds']:>8.1f} {s['normalise']:>9.1f} {s['scenery']:>8.1f} {s['convex']:>7.1f} {s['write']:>6.1f} | "
            f"{c['fscore']:>6.3f} {c['precision']:>6.3f} {c['recall']:>6.3f} {1000 * c['chamfer_l1']:>6.2f} | "
            f"{b['fscore']:>9.3f} {1000 * b['chamfer_l1']:>6.2f} {b['seconds']:>6.1f} | {r['object']['hulls']}"
        )
    record = {
        "benchmark": "build",
        "threshold_m": THRESHOLD,
        "target": "500k Gaussians -> bundle <= 120 s on 2 cores (goal 30 s); F-score at 1 cm >= 0.95",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": sys.version.split()[0]},
        "results": results,
    }
    out = write_json(args.out, record)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

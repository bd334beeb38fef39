"""Benchmark: scale-out on Ray on this machine (2 cores by default).

1. Bundles per minute: ``build_many`` over the same small analytic scenes on a local Ray with 1
   and with 2 CPUs (1 CPU and 1 thread per task), and the baseline in the same run: the same
   builds one after the other in this process with ``build_bundle`` and all cores (no Ray).
   Ray's cost is the difference between the 1-worker Ray run and the baseline's bundles/min
   (it includes starting the worker, shipping the input and the bundle through the object store,
   and the worker's first-build imports).
2. Aggregate env steps per second of ``LyraSim/Navigate-v0`` (64x64 RGB + depth, CPU splat
   renderer, random actions): the local vector env (one process, renderer threads on all cores)
   against ``RayVectorEnv`` (one actor per env, one thread each), for 2 and 4 envs; plus the
   round-trip time of a no-op actor call (the floor of what Ray adds to every step).

    python benchmarks/scale_out.py [--scenes 10] [--gaussians 50000] [--steps 150] [--envs 2 4] [--repeats 2] [--cpus 2]

Writes ``benchmarks/results/scale_out.json`` with the machine's load average before and after.
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

from lyra_sim.converters.config import BuildConfig
from lyra_sim.io_utils import write_json

BOXES = ((-0.5, -0.4, 0.0, 0.4, 0.3, 0.35), (0.4, 0.3, 0.0, 0.3, 0.4, 0.5))


def make_scenes(folder: Path, count: int, gaussians: int) -> list[Path]:
    from lyra_sim.geometry.analytic import tabletop_scene
    from lyra_sim.geometry.mesh import write_obj
    from lyra_sim.scene.io import save_scene

    paths = []
    for seed in range(count):
        analytic = tabletop_scene(gaussians, floor_size=2.0, boxes=BOXES, sphere=None, seed=seed)
        paths.append(save_scene(analytic.scene, folder / f"scene{seed}.ply"))
        write_obj(folder / f"scene{seed}.truth.obj", [(part.name, part.surface) for part in analytic.parts])
    return paths


def build_baseline(paths: list[Path], out: Path, config: BuildConfig) -> float:
    """Seconds to build every scene one after the other in this process (all cores)."""
    from lyra_sim.converters.bundle import build_bundle
    from lyra_sim.scene.io import load_scene

    started = time.perf_counter()
    for path in paths:
        build_bundle(load_scene(path), out / path.stem, config, progress=False)
    return time.perf_counter() - started


def build_on_ray(paths: list[Path], out: Path, config: BuildConfig, cpus: int) -> dict:
    import ray

    from lyra_sim.scale.build_many import build_many

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        started = time.perf_counter()
        results = build_many(paths, out, config, cpus_per_task=1, progress=False)
        seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
    failed = [r.error for r in results if r.status != "built"]
    if failed:
        raise RuntimeError(f"build-many failed: {failed}")
    fscores = [r.fscore for r in results]
    return {"ray_cpus": cpus, "seconds": round(seconds, 2), "bundles_per_minute": round(60 * len(paths) / seconds, 2),
            "task_seconds": [r.seconds for r in results], "fscore_mean": round(float(np.mean(fscores)), 4)}


def env_steps(vector_env, steps: int, seed: int = 0) -> float:
    """Aggregate env steps per second over ``steps`` vector steps after a warm-up."""
    vector_env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (steps + 5,) + vector_env.action_space.shape).astype(np.float32)
    for action in actions[:5]:
        vector_env.step(action)
    started = time.perf_counter()
    for action in actions[5:]:
        vector_env.step(action)
    return steps * vector_env.num_envs / (time.perf_counter() - started)


def env_throughput(env_counts: list[int], steps: int, cpus: int, repeats: int) -> list[dict]:
    """Steps/s of both vector envs, measured alternately ``repeats`` times (best of each kept:
    the machine is shared, and a neighbour's burst should not decide the ratio)."""
    import gymnasium
    import ray

    import lyra_sim.envs  # noqa: F401
    from lyra_sim.scale.ray_vector import make_ray_vector_env

    kwargs = {"render_backend": "cpu"}
    rows = []
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        for count in env_counts:
            local = gymnasium.make_vec("LyraSim/Navigate-v0", num_envs=count, vectorization_mode="vector_entry_point", **kwargs)
            remote = make_ray_vector_env("LyraSim/Navigate-v0", count, cpus_per_actor=min(1.0, cpus / count), **kwargs)
            local_rates, remote_rates = [], []
            for _ in range(repeats):
                local_rates.append(env_steps(local, steps))
                remote_rates.append(env_steps(remote, steps))
            actor = remote.actors[0]
            ray.get(actor.call.remote("elapsed_steps", (), {}))
            started = time.perf_counter()
            for _ in range(200):
                ray.get(actor.call.remote("elapsed_steps", (), {}))
            round_trip_ms = (time.perf_counter() - started) / 200 * 1000
            remote.close()
            local.close()
            local_rate, remote_rate = max(local_rates), max(remote_rates)
            rows.append({"envs": count, "local_vector_steps_per_s": round(local_rate, 1), "ray_actors_steps_per_s": round(remote_rate, 1),
                         "ray_over_local": round(remote_rate / local_rate, 3), "actor_round_trip_ms": round(round_trip_ms, 3),
                         "all_local": [round(r, 1) for r in local_rates], "all_ray": [round(r, 1) for r in remote_rates]})
            print(f"  {count} envs: local {local_rate:.1f} steps/s, Ray actors {remote_rate:.1f} steps/s, "
                  f"no-op actor call {round_trip_ms:.2f} ms", flush=True)
    finally:
        ray.shutdown()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--gaussians", type=int, default=50_000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--voxel-size", type=float, default=0.02)
    parser.add_argument("--steps", type=int, default=150, help="vector steps per env-throughput run")
    parser.add_argument("--envs", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeats", type=int, default=2, help="alternating measurements per env count (best kept)")
    parser.add_argument("--cpus", type=int, default=2, help="Ray CPUs for the 'many workers' runs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "scale_out.json"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    config = BuildConfig(image_size=args.image_size, voxel_size=args.voxel_size, render_backend="cpu", convex_method="vhacd", preview_size=160)
    work = Path(tempfile.mkdtemp(prefix="lyra_scale_bench_"))
    try:
        (work / "scenes").mkdir()
        paths = make_scenes(work / "scenes", args.scenes, args.gaussians)
        print(f"== build: {args.scenes} scenes of {args.gaussians} Gaussians", flush=True)
        from lyra_sim.converters.bundle import build_bundle
        from lyra_sim.scene.io import load_scene

        build_bundle(load_scene(paths[0]), work / "warm", config, progress=False)  # JIT caches warm for everyone
        baseline_seconds = build_baseline(paths, work / "baseline", config)
        print(f"  in-process, sequential: {baseline_seconds:.1f} s", flush=True)
        ray_runs = []
        for cpus in sorted({1, args.cpus}):
            ray_runs.append(build_on_ray(paths, work / f"ray{cpus}", config, cpus))
            print(f"  Ray, {cpus} worker(s): {ray_runs[-1]['seconds']:.1f} s", flush=True)
        print("== env throughput", flush=True)
        envs = env_throughput(args.envs, args.steps, args.cpus, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    baseline_rate = 60 * args.scenes / baseline_seconds
    one, many = ray_runs[0], ray_runs[-1]
    build = {
        "scenes": args.scenes, "gaussians": args.gaussians, "image_size": args.image_size, "voxel_size": args.voxel_size,
        "baseline_in_process_sequential": {"seconds": round(baseline_seconds, 2), "bundles_per_minute": round(baseline_rate, 2)},
        "ray": ray_runs,
        "speedup_2_vs_1_ray_workers": round(many["bundles_per_minute"] / one["bundles_per_minute"], 3),
        "ray_1_worker_overhead_vs_baseline": round(baseline_rate / one["bundles_per_minute"] - 1.0, 3),
        "ray_2_workers_vs_baseline": round(many["bundles_per_minute"] / baseline_rate, 3),
    }
    print(f"\n{'build':<34} {'s':>7} {'bundles/min':>12}")
    print(f"{'in-process sequential (baseline)':<34} {baseline_seconds:>7.1f} {baseline_rate:>12.2f}")
    for run in ray_runs:
        print(f"{'Ray, ' + str(run['ray_cpus']) + ' worker(s)':<34} {run['seconds']:>7.1f} {run['bundles_per_minute']:>12.2f}")
    print(f"\n{'envs':>4} {'local steps/s':>14} {'Ray steps/s':>12} {'ratio':>6} {'RPC ms':>7}")
    for row in envs:
        print(f"{row['envs']:>4} {row['local_vector_steps_per_s']:>14.1f} {row['ray_actors_steps_per_s']:>12.1f} "
              f"{row['ray_over_local']:>6.2f} {row['actor_round_trip_ms']:>7.2f}")
    record = {
        "benchmark": "scale_out",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "build": build,
        "env_throughput": {"env": "LyraSim/Navigate-v0", "observation": "64x64 rgb + depth, CPU splat renderer",
                           "steps_per_run": args.steps, "repeats": args.repeats, "ray_cpus": args.cpus, "rows": envs},
    }
    out = write_json(args.out, record)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

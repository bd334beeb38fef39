"""Read/write speed of every splat format on a large SH-3 scene, against a naive PLY baseline.

Usage: ``python benchmarks/io.py [--count 1000000] [--repeats 3] [--out benchmarks/results/io.json]``

The baseline is the straightforward PLY reader/writer most scripts use (plyfile-style: a numpy
structured array and one strided copy per property). Target (issue 3): read a 1M-Gaussian SH-3
PLY in < 2 s on a 2-core machine. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lyra_sim import GaussianScene
from lyra_sim.scene.formats.ply import inria_property_names
from lyra_sim.scene.io import load_scene, save_scene
from lyra_sim.io_utils import write_json
from timing import time_call  # benchmarks/timing.py

TARGET_PLY_READ_S = 2.0


def synthetic_scene(count: int, seed: int = 0) -> GaussianScene:
    """A scene with realistic value ranges (positions within +-20, SH-3)."""
    g = torch.Generator().manual_seed(seed)
    return GaussianScene(
        torch.randn(count, 3, generator=g) * 5,
        torch.randn(count, 4, generator=g),
        torch.randn(count, 3, generator=g) * 0.5 - 4.5,
        torch.randn(count, generator=g) * 2,
        torch.randn(count, 16, 3, generator=g) * 0.2,
    )


# ------------------------------------------------------------------ the baseline (naive numpy PLY)
def naive_write_ply(scene: GaussianScene, path: Path) -> None:
    names = inria_property_names(scene.sh_degree)
    table = np.zeros(len(scene), dtype=[(name, "<f4") for name in names])
    k = scene.sh.shape[1] - 1
    sources = {"x": scene.means[:, 0], "y": scene.means[:, 1], "z": scene.means[:, 2], "opacity": scene.opacity_logits}
    sources.update({f"f_dc_{c}": scene.sh[:, 0, c] for c in range(3)})
    sources.update({f"f_rest_{c * k + j}": scene.sh[:, 1 + j, c] for c in range(3) for j in range(k)})
    sources.update({f"scale_{i}": scene.log_scales[:, i] for i in range(3)})
    sources.update({f"rot_{i}": scene.quats[:, i] for i in range(4)})
    for name, values in sources.items():  # one strided write per property
        table[name] = values.numpy()
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {len(scene)}\n"
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    with open(path, "wb") as handle:
        handle.write(header.encode())
        handle.write(table.tobytes())


def naive_read_ply(path: Path) -> GaussianScene:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode().splitlines()
    count = int(next(line for line in lines if line.startswith("element vertex")).split()[2])
    names = [line.split()[2] for line in lines if line.startswith("property")]
    table = np.frombuffer(data, dtype=[(name, "<f4") for name in names], count=count, offset=end)
    column = lambda group: np.stack([table[name] for name in group], axis=1)  # noqa: E731
    rest_names = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n.rsplit("_", 1)[1]))
    rest = column(rest_names).reshape(count, 3, -1).transpose(0, 2, 1)
    sh = np.concatenate([column(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :], rest], axis=1)
    return GaussianScene(
        torch.from_numpy(column(["x", "y", "z"])),
        torch.from_numpy(column(["rot_0", "rot_1", "rot_2", "rot_3"])),
        torch.from_numpy(column(["scale_0", "scale_1", "scale_2"])),
        torch.from_numpy(table["opacity"].copy()),
        torch.from_numpy(np.ascontiguousarray(sh)),
    )


# ------------------------------------------------------------------ measurement
CASES = [
    # name, file name, save options, writer override, reader override
    ("ply (lyra-sim)", "scene.ply", {}, None, None),
    ("ply (naive numpy baseline)", "naive.ply", {}, naive_write_ply, naive_read_ply),
    ("ply ascii", "scene_ascii.ply", {"encoding": "ascii"}, None, None),
    ("compressed ply", "scene.compressed.ply", {}, None, None),
    ("splat", "scene.splat", {}, None, None),
    ("spz v4", "scene.spz", {}, None, None),
    ("spz v3 (gzip)", "scene_v3.spz", {"version": 3}, None, None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="Gaussians in the synthetic scene")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (best and median reported)")
    parser.add_argument("--ascii-count", type=int, default=100_000, help="Gaussians for the (slow) ASCII case")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "io.json")
    args = parser.parse_args()

    scene = synthetic_scene(args.count)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .splat truncates SH to degree 0 by design
        for name, file_name, options, writer, reader in tqdm(CASES, desc="formats", unit="format"):
            path = Path(folder) / file_name
            case_scene = scene[: args.ascii_count] if "ascii" in name else scene
            write = (lambda: writer(case_scene, path)) if writer else (lambda: save_scene(case_scene, path, **options))
            read = (lambda: reader(path)) if reader else (lambda: load_scene(path))
            write_times, write_cpu = time_call(write, args.repeats)
            read_times, read_cpu = time_call(read, args.repeats)
            count = len(case_scene)
            rows.append(
                {
                    "case": name,
                    "count": count,
                    "file_mb": path.stat().st_size / 1e6,
                    "write_best_s": min(write_times),
                    "write_median_s": statistics.median(write_times),
                    "read_best_s": min(read_times),
                    "read_median_s": statistics.median(read_times),
                    "read_million_per_s": count / min(read_times) / 1e6,
                    "write_cpu_median_s": statistics.median(write_cpu),
                    "read_cpu_median_s": statistics.median(read_cpu),
                }
            )
            path.unlink()

    header = f"{'case':<28}{'count':>9}{'MB':>8}{'write s':>9}{'read s':>9}{'read M/s':>10}{'write cpu':>11}{'read cpu':>10}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['case']:<28}{row['count']:>9}{row['file_mb']:>8.1f}{row['write_median_s']:>9.2f}{row['read_median_s']:>9.2f}"
            f"{row['read_million_per_s']:>10.2f}{row['write_cpu_median_s']:>11.2f}{row['read_cpu_median_s']:>10.2f}"
        )
    ours = next(r for r in rows if r["case"] == "ply (lyra-sim)")
    baseline = next(r for r in rows if r["case"].startswith("ply (naive"))
    large_enough = ours["count"] >= 1_000_000
    ply_target_met = large_enough and ours["read_median_s"] < TARGET_PLY_READ_S
    ply_target_met_cpu = large_enough and ours["read_cpu_median_s"] < TARGET_PLY_READ_S
    print(
        f"\nPLY read {ours['read_median_s']:.2f} s wall / {ours['read_cpu_median_s']:.2f} s CPU (medians) vs naive "
        f"{baseline['read_median_s']:.2f} s wall: {baseline['read_median_s'] / ours['read_median_s']:.1f}x faster; "
        f"target < {TARGET_PLY_READ_S} s: wall {'met' if ply_target_met else 'NOT met'}, CPU {'met' if ply_target_met_cpu else 'NOT met'}"
    )
    print("(times are medians; reads include validation of non-finite values and zero quaternions;")
    print(f" load average before/after: {load_before[0]:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    result = {
        "benchmark": "io",
        "count": args.count,
        "sh_degree": 3,
        "repeats": args.repeats,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "target_ply_read_s": TARGET_PLY_READ_S,
        "ply_read_target_met": ply_target_met,
        "ply_read_target_met_cpu_time": ply_target_met_cpu,
        "results": rows,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Read/write speed and round-trip error of every splat format on a large SH-3 scene, against a naive PLY baseline.

Usage: ``python benchmarks/io.py [--count 1000000] [--repeats 3] [--trained scene.ply] [--out benchmarks/results/io.json]``

The baseline is the straightforward PLY reader/writer most scripts use (plyfile-style: a numpy
structured array and one strided copy per property). Target (issue 3): read a 1M-Gaussian SH-3
PLY in < 2 s on a 2-core machine. Each case also reports the round-trip error of what it read
back (positions, rotation angle, log-scales, opacity, SH); ``--trained`` adds the same error
table for a real trained scene (the synthetic scene's SH is white noise, which no palette
compresses, so its shN error is a worst case). Prints tables and writes JSON.
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
from lyra_sim.scene.formats.compressed_ply import morton_order
from lyra_sim.scene.formats.ply import inria_property_names
from lyra_sim.scene.io import load_scene, save_scene
from lyra_sim.scene.sh import eval_sh
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
    ("sog v2 (.sog zip)", "scene.sog", {}, None, None),
    ("sog v2 (folder)", "sog/meta.json", {}, None, None),
    ("glb (KHR_gaussian_splatting)", "scene.glb", {}, None, None),
    ("usd crate (float)", "scene.usdc", {}, None, None),
    ("usd crate (half)", "scene_half.usdc", {"precision": "half"}, None, None),
]
# Formats whose writer reorders the Gaussians along a Morton curve (compare in that order).
MORTON_ORDERED = ("compressed ply", "sog")
SLOW_WRITERS = ("sog",)  # k-means palettes: at most two timed writes


def round_trip_errors(original: GaussianScene, back: GaussianScene, case: str) -> dict[str, float | None]:
    """How far what was read back is from what was written, per parameter group."""
    if any(case.startswith(prefix) for prefix in MORTON_ORDERED):
        original = original[torch.from_numpy(morton_order(original.means.numpy().astype(np.float64)))]
    if len(back) != len(original):
        return {}
    unit = lambda q: q.double() / q.double().norm(dim=-1, keepdim=True).clamp_min(1e-300)  # noqa: E731
    a, b = unit(back.quats), unit(original.quats)
    b = b * torch.where((a * b).sum(-1, keepdim=True) < 0, -1.0, 1.0)  # q and -q are the same rotation
    angle = torch.rad2deg(4 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1)))  # exact near 0, unlike acos
    position = (back.means - original.means).abs().max(-1).values
    errors = {
        "position_max_abs": position.max().item(),
        "position_max_relative": (position / (original.means.abs().max(-1).values + 1.0)).max().item(),
        "rotation_deg_mean": angle.mean().item(),
        "rotation_deg_max": angle.max().item(),
        "log_scale_mean_abs": (back.log_scales - original.log_scales).abs().mean().item(),
        "log_scale_max_abs": (back.log_scales - original.log_scales).abs().max().item(),
        "opacity_max_abs": (back.opacities() - original.opacities()).abs().max().item(),
        "sh0_mean_abs": (back.sh[:, 0] - original.sh[:, 0]).abs().mean().item(),
        "shN_relative_rms": None,
        "colour_rms": None,
        "colour_max": None,
    }
    if back.sh_degree == original.sh_degree:  # view-dependent colour along one random direction per Gaussian
        directions = torch.nn.functional.normalize(torch.randn(len(original), 3, generator=torch.Generator().manual_seed(1)), dim=-1)
        difference = (eval_sh(back.sh, directions) - eval_sh(original.sh, directions)).abs()
        errors.update(colour_rms=difference.pow(2).mean().sqrt().item(), colour_max=difference.max().item())
    if back.sh_degree == original.sh_degree and original.sh_degree > 0:
        signal = original.sh[:, 1:].double().pow(2).mean().sqrt()
        errors["shN_relative_rms"] = ((back.sh[:, 1:].double() - original.sh[:, 1:].double()).pow(2).mean().sqrt() / signal).item()
    return errors


def trained_scene_errors(path: Path, folder: Path) -> list[dict]:
    """Round-trip errors of the lossy formats on a real trained scene (no timing)."""
    scene = load_scene(path)
    rows = []
    for name, file_name, options, writer, _ in CASES:
        if writer is not None or "ascii" in name or name.startswith("ply"):
            continue
        target = folder / ("trained_" + file_name.replace("/", "_"))
        if file_name.endswith("meta.json"):
            continue  # the same bytes as the .sog zip
        save_scene(scene, target, **options)
        rows.append({"case": name, "count": len(scene), "sh_degree": scene.sh_degree, **round_trip_errors(scene, load_scene(target), name)})
        target.unlink()
    return rows


def print_errors(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    header = (
        f"{'case':<30}{'pos max':>10}{'pos rel':>10}{'rot deg':>9}{'rot max':>9}{'lnS mean':>10}{'lnS max':>9}{'alpha':>8}"
        f"{'dc mean':>9}{'shN rel':>9}{'rgb rms':>9}{'rgb max':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        e = row["round_trip"]
        if not e:
            continue
        cell = lambda key, width, spec: f"{e[key]:>{width}{spec}}" if e.get(key) is not None else f"{'-':>{width}}"  # noqa: E731
        print(
            f"{row['case']:<30}{cell('position_max_abs', 10, '.2e')}{cell('position_max_relative', 10, '.2e')}{cell('rotation_deg_mean', 9, '.3f')}"
            f"{cell('rotation_deg_max', 9, '.3f')}{cell('log_scale_mean_abs', 10, '.2e')}{cell('log_scale_max_abs', 9, '.3f')}"
            f"{cell('opacity_max_abs', 8, '.4f')}{cell('sh0_mean_abs', 9, '.2e')}{cell('shN_relative_rms', 9, '.3f')}"
            f"{cell('colour_rms', 9, '.4f')}{cell('colour_max', 9, '.3f')}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="Gaussians in the synthetic scene")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (best and median reported)")
    parser.add_argument("--ascii-count", type=int, default=100_000, help="Gaussians for the (slow) ASCII case")
    parser.add_argument("--trained", type=Path, default=None, help="a trained scene (PLY) to state round-trip errors on as well")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "io.json")
    args = parser.parse_args()

    scene = synthetic_scene(args.count)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .splat truncates SH to degree 0 by design
        for name, file_name, options, writer, reader in tqdm(CASES, desc="formats", unit="format"):
            path = Path(folder) / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            case_scene = scene[: args.ascii_count] if "ascii" in name else scene
            repeats = min(args.repeats, 2) if name.startswith(SLOW_WRITERS) else args.repeats
            write = (lambda: writer(case_scene, path)) if writer else (lambda: save_scene(case_scene, path, **options))
            read = (lambda: reader(path)) if reader else (lambda: load_scene(path))
            write_times, write_cpu = time_call(write, repeats)
            read_times, read_cpu = time_call(read, repeats)
            count = len(case_scene)
            file_bytes = sum(p.stat().st_size for p in path.parent.iterdir()) if file_name.endswith("meta.json") else path.stat().st_size
            rows.append(
                {
                    "case": name,
                    "count": count,
                    "file_mb": file_bytes / 1e6,
                    "repeats": repeats,
                    "write_best_s": min(write_times),
                    "write_median_s": statistics.median(write_times),
                    "read_best_s": min(read_times),
                    "read_median_s": statistics.median(read_times),
                    "read_million_per_s": count / min(read_times) / 1e6,
                    "write_cpu_median_s": statistics.median(write_cpu),
                    "read_cpu_median_s": statistics.median(read_cpu),
                    "round_trip": round_trip_errors(case_scene, read(), name) if reader is None else {},
                }
            )
            if file_name.endswith("meta.json"):
                for file in path.parent.iterdir():
                    file.unlink()
            else:
                path.unlink()
        trained_rows = trained_scene_errors(args.trained, Path(folder)) if args.trained else []

    header = f"{'case':<30}{'count':>9}{'MB':>8}{'write s':>9}{'read s':>9}{'read M/s':>10}{'write cpu':>11}{'read cpu':>10}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['case']:<30}{row['count']:>9}{row['file_mb']:>8.1f}{row['write_median_s']:>9.2f}{row['read_median_s']:>9.2f}"
            f"{row['read_million_per_s']:>10.2f}{row['write_cpu_median_s']:>11.2f}{row['read_cpu_median_s']:>10.2f}"
        )
    print_errors("round-trip error (synthetic scene, white-noise SH)", rows)
    if trained_rows:
        print_errors(f"round-trip error (trained scene {args.trained.name}, {trained_rows[0]['count']} Gaussians)", [{"case": r["case"], "round_trip": r} for r in trained_rows])
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
        "trained_scene": str(args.trained) if args.trained else None,
        "trained_scene_errors": trained_rows,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

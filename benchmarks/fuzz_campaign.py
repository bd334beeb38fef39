"""Fuzz campaign (issue 16): thousands of malformed scene files, decompression bombs, odd tensor
layouts, hostile bundles and bad command lines; prints and writes the count of each outcome.

Every case runs in a worker process with a per-case alarm (a hang is an outcome) and an
address-space limit of its start-up size plus ``--memory-mib`` (a reader allocating past its
budget fails there). Compressed readers run under a decompression limit of ``--limit-mib``, so
a reader that keeps its documented budget (about 2.5x the limit) never gets near the memory cap.
Passing outcomes: the case loads (or runs), or raises the library's error naming the file (the
command exits non-zero with one line); anything else is counted as a failure and listed.

    python benchmarks/fuzz_campaign.py --cases 6000 --workers 2 --json benchmarks/results/fuzz_campaign.json
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import signal
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

MESSAGE_LIMIT = 1300  # format_error cuts the message at 1000 characters, plus the file name


# ------------------------------------------------------------------------------------ seeds
def small_scene(n: int, degree: int, seed: int):
    import torch

    from lyra_sim.scene.gaussian_scene import GaussianScene

    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return GaussianScene(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g) - 3,
                         torch.randn(n, generator=g), torch.randn(n, k, 3, generator=g) * 0.3)  # fmt: skip


def seed_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, suffix) of small valid files of every readable format, empty ones too."""
    import warnings

    import torch

    from lyra_sim.scene.gaussian_scene import GaussianScene
    from lyra_sim.scene.io import save_scene

    writes = {
        "ply_le": ("a.ply", {}), "ply_be": ("a.ply", {"encoding": "binary_big_endian"}), "ply_ascii": ("a.ply", {"encoding": "ascii"}),
        "lyra_ply": ("a.ply", {"format": "lyra_ply"}), "compressed_ply": ("a.compressed.ply", {}), "splat": ("a.splat", {}),
        "spz_v4": ("a.spz", {}), "spz_v3": ("a.spz", {"version": 3}), "spz_v2": ("a.spz", {"version": 2}),
    }  # fmt: skip
    seeds = {}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(folder)
        for name, (file_name, options) in writes.items():
            for degree in (0, 1, 3):
                if degree and name in ("lyra_ply", "splat"):
                    continue
                scene = small_scene(300 if degree < 3 else 40, degree, degree + len(name))
                path = save_scene(scene, folder / file_name, **options)
                seeds[f"{name}_d{degree}"] = (path.read_bytes(), path.name[path.name.index("."):])
                path = save_scene(GaussianScene.empty(degree if name not in ("lyra_ply", "splat") else 0), folder / file_name, **options)
                seeds[f"{name}_empty_d{degree}"] = (path.read_bytes(), path.name[path.name.index("."):])
        for n, degree in ((200, 0), (50, 3), (0, 1)):
            k = (degree + 1) ** 2
            splats = {"means": torch.randn(n, 3), "scales": torch.randn(n, 3), "quats": torch.randn(n, 4), "opacities": torch.randn(n),
                      "sh0": torch.randn(n, 1, 3)} | ({"shN": torch.randn(n, k - 1, 3)} if degree else {})  # fmt: skip
            buffer = io.BytesIO()
            torch.save({"step": 1, "splats": splats}, buffer)
            seeds[f"pt_n{n}_d{degree}"] = (buffer.getvalue(), ".pt")
    return seeds


# ------------------------------------------------------------------------------------ mutations
SPECIAL_U32 = [0, 1, 2, 7, 255, 256, 2**16, 2**24, 2**31 - 1, 2**31, 2**32 - 1]


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    data = bytearray(data)
    kind = rng.choice(["truncate", "bitflip", "overwrite", "insert", "header_u32", "ply_count", "splice", "zero_run", "duplicate"])
    if kind == "truncate" and data:
        return kind, bytes(data[: rng.randrange(len(data))])
    if kind == "bitflip" and data:
        for _ in range(rng.randint(1, 16)):
            at = rng.randrange(len(data))
            data[at] ^= 1 << rng.randrange(8)
        return kind, bytes(data)
    if kind == "overwrite" and data:
        at = rng.randrange(len(data))
        run = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        data[at : at + len(run)] = run
        return kind, bytes(data)
    if kind == "insert":
        at = rng.randrange(len(data) + 1)
        return kind, bytes(data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + data[at:])
    if kind == "header_u32" and len(data) >= 8:
        at = rng.randrange(min(len(data), 96) - 3)
        data[at : at + 4] = struct.pack("<I", rng.choice(SPECIAL_U32))
        return kind, bytes(data)
    if kind == "ply_count" and data.startswith(b"ply") and b"element " in data:
        head, rest = bytes(data).split(b"element ", 1)
        line, after = rest.split(b"\n", 1)
        label = line.split(b" ")[0]
        count = rng.choice([0, 1, 5, 255, 256, 257, 10**6, 2**31, 2**40, 10**18, 10**30])
        return kind, head + b"element " + label + b" " + str(count).encode() + b"\n" + after
    if kind == "zero_run" and data:
        at = rng.randrange(len(data))
        data[at : at + rng.randint(1, 256)] = bytes(min(256, len(data) - at))
        return kind, bytes(data)
    if kind == "duplicate" and data:
        at, size = rng.randrange(len(data)), rng.randint(1, 4096)
        return kind, bytes(data[:at] + data[at : at + size] + data[at:])
    at = rng.randrange(len(data) + 1) if data else 0
    return "splice", bytes(data[:at]) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 128)))


# ------------------------------------------------------------------------------------ bombs
def gzip_bomb(rng: random.Random) -> tuple[str, bytes, str]:
    from lyra_sim.scene.formats.spz import LEGACY_HEADER, SPZ_MAGIC

    version, degree = rng.choice([1, 2, 3]), rng.choice([0, 1, 2, 3, 4])
    n = rng.choice([10**4, 10**5, 10**6, 4 * 10**6, 5 * 10**7, 2**31 - 1])
    flags = rng.choice([0, 0, 2])
    real = rng.choice([1 << 20, 8 << 20, 64 << 20, 100 << 20])  # zeros actually in the stream
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [deflater.compress(LEGACY_HEADER.pack(SPZ_MAGIC, version, n, degree, 12, flags, 0))]
    chunk = bytes(1 << 20)
    for _ in range(real >> 20):
        out.append(deflater.compress(chunk))
    if rng.random() < 0.5:  # padding that passes the "more points than the file can hold" ratio check
        out.append(deflater.compress(rng.randbytes(rng.choice([10_000, 100_000, 1_000_000]))))
    out.append(deflater.flush())
    return f"gzip_v{version}", b"".join(out), ".spz"


def zstd_bomb(rng: random.Random) -> tuple[str, bytes, str]:
    import zstandard

    from lyra_sim.scene.formats.spz import SPZ_MAGIC, TOC_ENTRY, V4_HEADER

    degree = rng.choice([0, 1, 3])
    n = rng.choice([10**4, 10**5, 10**6, 4 * 10**6, 4 * 10**7])
    sizes = [n * 9, n, n * 3, n * 3, n * 4] + ([n * {1: 3, 3: 15}[degree] * 3] if degree else [])
    compressor = zstandard.ZstdCompressor(level=3)
    real = [min(size + rng.choice([0, 0, 100, 1 << 20, 32 << 20]), 96 << 20) for size in sizes]
    payloads = [compressor.compress(bytes(size)) for size in real]
    declared = [size if rng.random() < 0.8 else rng.choice(SPECIAL_U32) for size in sizes]
    padding = rng.choice([0, 8192, 1 << 20])
    extension = struct.pack("<II", 0xADBE0002, padding) + rng.randbytes(padding) if padding else b""
    header = V4_HEADER.pack(SPZ_MAGIC, 4, n, degree, 12, 2 if padding else 0, len(sizes), V4_HEADER.size + len(extension))
    toc = b"".join(TOC_ENTRY.pack(len(p), d) for p, d in zip(payloads, declared))
    return "zstd_v4", header + extension + toc + b"".join(payloads), ".spz"


def zip_bomb(rng: random.Random) -> tuple[str, bytes, str]:
    import torch

    n = rng.choice([10, 10**4, 10**5, 10**6])
    buffer = io.BytesIO()
    splats = {"means": torch.zeros(n, 3), "scales": torch.zeros(n, 3), "quats": torch.ones(n, 4), "opacities": torch.zeros(n), "sh0": torch.zeros(n, 1, 3)}
    torch.save({"splats": splats}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info))
    data = bytearray(out.getvalue())
    if rng.random() < 0.5:  # lie about one uncompressed size in the central directory
        at = data.rfind(b"PK\x01\x02")
        if at > 0:
            data[at + 24 : at + 28] = struct.pack("<I", rng.choice(SPECIAL_U32))
    return "zip_deflate", bytes(data), ".pt"


def tensor_layout_case(rng: random.Random) -> tuple[str, bytes, str]:
    import torch

    n = rng.choice([0, 1, 7, 100])
    splats = {"means": torch.randn(n, 3), "scales": torch.randn(n, 3), "quats": torch.randn(n, 4), "opacities": torch.randn(n), "sh0": torch.randn(n, 1, 3)}
    key = rng.choice(sorted(splats))
    layout = rng.choice(["coo", "csr", "quantized", "half", "bfloat16", "int", "bool", "complex", "huge_sparse", "bad_sparse", "transposed"])
    value = splats[key]
    try:
        if layout == "coo":
            value = value.to_sparse()
        elif layout == "csr" and value.dim() == 2:
            value = value.to_sparse_csr()
        elif layout == "quantized":
            value = torch.quantize_per_tensor(value, 0.01, 0, torch.qint32)
        elif layout in ("half", "bfloat16"):
            value = value.to(getattr(torch, "float16" if layout == "half" else "bfloat16"))
        elif layout == "int":
            value = value.to(torch.int32)
        elif layout == "bool":
            value = value > 0
        elif layout == "complex":
            value = value.to(torch.complex64)
        elif layout == "huge_sparse":
            value = torch.sparse_coo_tensor(torch.zeros(value.dim(), 1, dtype=torch.long), torch.ones(1), (10**9,) + tuple(value.shape[1:]))
        elif layout == "bad_sparse":
            value = torch.sparse_coo_tensor(torch.full((value.dim(), 1), 10**6, dtype=torch.long), torch.ones(1), tuple(value.shape), check_invariants=False)
        elif layout == "transposed" and value.dim() == 2:
            value = value.t().contiguous().t()
    except (RuntimeError, ValueError):
        pass
    splats[key] = value
    buffer = io.BytesIO()
    torch.save({"splats": splats}, buffer)
    return f"layout_{layout}", buffer.getvalue(), ".pt"


# ------------------------------------------------------------------------------------ hostile bundles
BUNDLE_MUTATIONS = [
    "urdf_absolute", "urdf_dotdot", "urdf_symlink_out", "urdf_url", "urdf_missing", "urdf_garbage", "urdf_entity", "urdf_not_robot",
    "obj_mtllib_out", "mtl_texture_abs", "manifest_path_abs", "manifest_path_dotdot", "manifest_symlink_dir",
    "value_nan", "value_inf", "value_string", "value_list", "value_null", "value_huge", "missing_key", "deep_nesting",
    "zero_quaternion", "nan_quaternion", "negative_mass", "inverted_bounds", "short_vector", "schema_version", "manifest_not_json",
    "manifest_not_object", "duplicate_object", "big_array",
]  # fmt: skip
ESCAPES = {"urdf_absolute", "urdf_dotdot", "urdf_symlink_out", "urdf_url", "obj_mtllib_out", "mtl_texture_abs", "manifest_path_abs",
           "manifest_path_dotdot", "manifest_symlink_dir"}  # fmt: skip
# Mutations that always make the bundle invalid: loading one is a finding ("invalid_accepted").
INVALID = {"urdf_missing", "urdf_entity", "urdf_not_robot", "value_nan", "value_inf", "value_string", "value_list", "deep_nesting",
           "zero_quaternion", "nan_quaternion", "negative_mass", "short_vector", "schema_version", "manifest_not_json",
           "manifest_not_object", "duplicate_object", "big_array"}  # fmt: skip


def _set_random_number(manifest: dict, rng: random.Random, value) -> str:
    """Put ``value`` at a random numeric leaf of the manifest; returns its path."""
    leaves = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, child in node.items():
                if key not in ("build", "normalisation", "source", "tool_version"):
                    walk(child, path + [key])
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, path + [index])
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            leaves.append(path)

    walk(manifest, [])
    path = rng.choice(leaves)
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return "/".join(map(str, path))


def hostile_bundle(root: Path, rng: random.Random) -> str:
    from lyra_sim.kits.minimal_bundle import CUBE_OBJ, write_minimal_bundle

    write_minimal_bundle(root)
    outside = root.parent / "outside.obj"
    outside.write_text(CUBE_OBJ)
    kind = rng.choice(BUNDLE_MUTATIONS)
    urdf = root / rng.choice(["scene.urdf", "objects/cube.urdf"])
    text = urdf.read_text()
    name = text.split('filename="', 1)[1].split('"', 1)[0]
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if kind == "urdf_absolute":
        urdf.write_text(text.replace(name, str(outside)))
    elif kind == "urdf_dotdot":
        urdf.write_text(text.replace(name, "../" * rng.randint(1, 4) + "outside.obj"))
    elif kind == "urdf_symlink_out":
        os.symlink(outside, root / "meshes" / "link.obj")
        urdf.write_text(text.replace(name, "meshes/link.obj" if urdf.name == "scene.urdf" else "../meshes/link.obj"))
    elif kind == "urdf_url":
        urdf.write_text(text.replace(name, rng.choice(["file:///etc/passwd", "package://x/y.obj", "http://example.com/a.obj"])))
    elif kind == "urdf_missing":
        urdf.write_text(text.replace(name, "meshes/none.obj"))
    elif kind == "urdf_garbage":
        data = bytearray(text.encode())
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        urdf.write_bytes(bytes(data))
    elif kind == "urdf_entity":
        urdf.write_text('<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>' + text.split("?>", 1)[1].replace("<robot ", "<robot x='&b;' "))
    elif kind == "urdf_not_robot":
        urdf.write_text("<html><mesh filename='/etc/passwd'/></html>")
    elif kind == "obj_mtllib_out":
        mesh = root / "meshes" / "background_visual.obj"
        mesh.write_text(f"mtllib {rng.choice(['../../x.mtl', '/etc/x.mtl'])}\n" + mesh.read_text())
    elif kind == "mtl_texture_abs":
        mesh = root / "meshes" / "background_visual.obj"
        mesh.write_text("mtllib v.mtl\n" + mesh.read_text())
        (root / "meshes" / "v.mtl").write_text(f"newmtl a\nmap_Kd {rng.choice(['/etc/hostname', '../../t.png'])}\n")
    elif kind in ("manifest_path_abs", "manifest_path_dotdot"):
        key = rng.choice(["splat", "urdf", "collision_mesh", "visual_mesh"])
        manifest["background"][key] = str(outside) if kind == "manifest_path_abs" else "../outside.obj"
    elif kind == "manifest_symlink_dir":
        import shutil

        shutil.rmtree(root / "meshes")
        (root.parent / "meshes").mkdir(exist_ok=True)
        for mesh in ("background_collision", "background_visual", "cube_collision"):
            (root.parent / "meshes" / f"{mesh}.obj").write_text(CUBE_OBJ)
        os.symlink(root.parent / "meshes", root / "meshes")
    elif kind in ("value_nan", "value_inf", "value_huge"):
        _set_random_number(manifest, rng, {"value_nan": float("nan"), "value_inf": float("inf"), "value_huge": 1e308 * rng.choice([1, -1])}[kind])
    elif kind in ("value_string", "value_list", "value_null"):
        _set_random_number(manifest, rng, {"value_string": "1.0", "value_list": [1, 2], "value_null": None}[kind])
    elif kind == "missing_key":
        section = rng.choice([manifest, manifest["background"], manifest["objects"][0], manifest["bounds"], manifest["spawn_region"]])
        section.pop(rng.choice(sorted(section)))
    elif kind == "deep_nesting":
        manifest_path.write_text('{"schema_version": 1, "bounds": ' + "[" * 100_000 + "]" * 100_000 + "}")
        return kind
    elif kind in ("zero_quaternion", "nan_quaternion"):
        manifest["objects"][0]["initial_pose"]["orientation_xyzw"] = [0.0, 0.0, 0.0, 0.0] if kind == "zero_quaternion" else [float("nan")] * 4
    elif kind == "negative_mass":
        manifest["objects"][0]["mass"] = rng.choice([-1.0, 0.0, float("inf")])
    elif kind == "inverted_bounds":
        section = rng.choice(["bounds", "spawn_region"])
        manifest[section]["min"], manifest[section]["max"] = manifest[section]["max"], manifest[section]["min"]
    elif kind == "short_vector":
        manifest["objects"][0]["initial_pose"]["position"] = [0.0]
    elif kind == "schema_version":
        manifest["schema_version"] = rng.choice([0, 2, "1", 1.5, None])
    elif kind == "manifest_not_json":
        manifest_path.write_bytes(rng.randbytes(200))
        return kind
    elif kind == "manifest_not_object":
        manifest_path.write_text(json.dumps(rng.choice([[], 1, "x", None])))
        return kind
    elif kind == "duplicate_object":
        manifest["objects"].append(dict(manifest["objects"][0]))
    elif kind == "big_array":
        manifest["bounds"]["min"] = [0.0] * 1_000_000
    manifest_path.write_text(json.dumps(manifest))
    return kind


# ------------------------------------------------------------------------------------ CLI
def cli_case(rng: random.Random, scene_file: str, folder: Path) -> list[str]:
    out = str(folder / rng.choice(["o.png", "o.jpg", "o.gif", "", "dir.png", "a_file/o.png", "/proc/o.png", "/sys/o.png", "new/deep/o.png"]))
    numbers = ["0", "-10", "180", "nan", "inf", "-inf", "1e308", "1e-308", "abc", "", "90", "-90", "1e9"]
    command = rng.choice(["render", "render", "render", "build", "convert", "info"])
    if command == "render":
        argv = ["render", scene_file, "-o", out]
        for option in rng.sample(["--fov", "--width", "--height", "--elevation", "--distance", "--orbit-angle", "--sh-degree"], rng.randint(1, 3)):
            argv += [option, rng.choice(numbers + ["100000", "16385", "1", "3", "9"])]
        for option in rng.sample(["--eye", "--target", "--up", "--background"], rng.randint(0, 2)):
            argv += [option, *rng.choice([["0", "0", "0"], ["1", "2", "3"], ["1", "2"], ["nan", "0", "1"], ["2", "0", "0"]])]
        return argv
    if command == "build":
        argv = ["build", scene_file, "-o", str(folder / rng.choice(["bundle", "a_file", "/proc/b"])), "--no-progress"]
        option = rng.choice(["--image-size", "--voxel-size", "--scale", "--known-height", "--crop"])
        values = ["0", "-1", "nan", "inf", "100000"] if option != "--crop" else ["1 0 0 0 1 1", "0 0 0 1 1", "nan 0 0 1 1 1"]
        return argv + [option, *rng.choice(values).split()]
    if command == "convert":
        return ["convert", rng.choice([scene_file, str(folder / "missing.ply"), str(folder / "a_file")]), str(folder / rng.choice(["o.xyz", "o.spz", "dir.png", "/proc/o.ply"]))]
    return ["info", rng.choice([scene_file, str(folder / "missing.ply"), str(folder / "a_file"), str(folder)])]


# ------------------------------------------------------------------------------------ worker
def _initialise(limit_bytes: int, memory_mib: int) -> None:
    import resource

    os.environ["LYRA_SIM_MAX_DECOMPRESSED_BYTES"] = str(limit_bytes)
    import lyra_sim.scene.io  # noqa: F401  (start-up imports count in the baseline, not in the cases)
    from lyra_sim.scene.formats import _common

    _common.set_decompression_limit(limit_bytes)
    import pybullet  # noqa: F401
    import torch  # noqa: F401

    with open("/proc/self/status") as handle:
        size = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + (memory_mib << 20), size + (memory_mib << 20)))


def _alarm(signum, frame):
    raise TimeoutError("case timed out")


def run_case(case: dict) -> dict:
    """One case in a worker: returns its outcome ("ok", "clear_error" or a failure kind) and details."""
    import pybullet

    from lyra_sim.errors import BundleError, LyraSimError, SceneFormatError

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(case.get("timeout", 60))
    start = time.perf_counter()
    result = {"group": case["group"], "kind": case["kind"]}
    try:
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            if case["group"] in ("scene", "bomb", "layout"):
                path = folder / f"case{case['suffix']}"
                path.write_bytes(case["data"])
                from lyra_sim.scene.io import load_scene

                try:
                    scene = load_scene(path, invalid="keep")
                    scene.scales()  # activations of whatever loaded must be computable
                    result["outcome"] = "ok"
                except SceneFormatError as error:
                    message = str(error)
                    result["outcome"] = "clear_error" if str(path) in message and len(message) <= MESSAGE_LIMIT else "unclear_error"
                    if "out of memory" in message:
                        result["outcome"] = "out_of_memory"
                    result["message"] = message[:200]
            elif case["group"] == "bundle":
                rng = random.Random(case["seed"])
                root = folder / "bundle"
                kind = hostile_bundle(root, rng)
                result["kind"] = kind
                from lyra_sim.sim.world import load_into_pybullet

                client = pybullet.connect(pybullet.DIRECT)
                try:
                    load_into_pybullet(str(root), client)
                    result["outcome"] = "escape_accepted" if kind in ESCAPES else "invalid_accepted" if kind in INVALID else "ok"
                except BundleError as error:
                    result["outcome"] = "clear_error" if len(str(error)) <= MESSAGE_LIMIT else "unclear_error"
                    result["message"] = str(error)[:200]
                finally:
                    pybullet.disconnect(client)
            else:  # cli
                import contextlib

                from lyra_sim.cli import main
                from lyra_sim.scene.io import save_scene

                scene_file = save_scene(small_scene(50, 1, case["seed"]), folder / "scene.ply")
                (folder / "a_file").write_text("x")
                (folder / "dir.png").mkdir()
                rng = random.Random(case["seed"])
                argv = cli_case(rng, str(scene_file), folder)
                result["kind"] = argv[0]
                stderr, stdout = io.StringIO(), io.StringIO()
                with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
                    try:
                        status = main(argv)
                    except SystemExit as exit_:
                        status = exit_.code
                text = stderr.getvalue()
                if "Traceback" in text or "internal error" in text:
                    result["outcome"] = "traceback"
                elif status == 0:
                    result["outcome"] = "ok"
                else:
                    result["outcome"] = "clear_error" if text.strip() else "silent_error"
                result["message"] = (" ".join(argv[1:]) + " -> " + text.strip().splitlines()[-1] if text.strip() else " ".join(argv))[:300]
    except TimeoutError:
        result["outcome"] = "hang"
    except MemoryError:
        result["outcome"] = "memory_error_escaped"
    except LyraSimError as error:
        result["outcome"] = "wrong_error_type"
        result["message"] = f"{type(error).__name__}: {str(error)[:200]}"
    except BaseException as error:  # noqa: BLE001 - every other exception is a finding
        result["outcome"] = "crash"
        result["message"] = f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        signal.alarm(0)
    result["seconds"] = time.perf_counter() - start
    return result


# ------------------------------------------------------------------------------------ driver
def generate_cases(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    seeds = seed_files()
    names = sorted(seeds)
    mix = [("scene", 0.62), ("bomb", 0.08), ("layout", 0.08), ("bundle", 0.14), ("cli", 0.08)]
    cases = []
    for index in range(count):
        group = rng.choices([g for g, _ in mix], [w for _, w in mix])[0]
        if group == "scene":
            name = rng.choice(names)
            data, suffix = seeds[name]
            kind, data = mutate(data, rng)
            for _ in range(rng.choice([0, 0, 0, 1, 2])):  # sometimes several mutations
                kind, data = mutate(data, rng)
            cases.append({"group": group, "kind": f"{name.split('_d')[0].replace('_empty', '')}:{kind}", "data": data, "suffix": rng.choice([suffix, suffix, ".bin"])})
        elif group == "bomb":
            kind, data, suffix = rng.choice([gzip_bomb, zstd_bomb, zip_bomb])(rng)
            cases.append({"group": group, "kind": kind, "data": data, "suffix": suffix})
        elif group == "layout":
            kind, data, suffix = tensor_layout_case(rng)
            cases.append({"group": group, "kind": kind, "data": data, "suffix": suffix})
        else:
            cases.append({"group": group, "kind": group, "seed": seed * 1_000_003 + index})
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--limit-mib", type=int, default=64, help="decompression limit in the workers")
    parser.add_argument("--memory-mib", type=int, default=1024, help="address space a case may add to a worker's start-up size")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    cases = generate_cases(args.cases, args.seed)
    generated = time.perf_counter() - start
    counts: dict[str, Counter] = defaultdict(Counter)
    failures, slowest = [], []
    # Spawned, not forked: this process has torch's thread pools, which a fork would deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=_initialise, initargs=(args.limit_mib << 20, args.memory_mib)) as pool:
        for result in pool.map(run_case, cases, chunksize=8):
            counts[result["group"]][result["outcome"]] += 1
            slowest.append((result["seconds"], result["group"], result["kind"]))
            if result["outcome"] not in ("ok", "clear_error"):
                failures.append(result)
    seconds = time.perf_counter() - start
    slowest = sorted(slowest, reverse=True)[:5]
    total = Counter()
    for group_counts in counts.values():
        total.update(group_counts)
    print(f"{len(cases)} cases in {seconds:.0f} s (generation {generated:.0f} s), {args.workers} workers, load {os.getloadavg()[0]:.1f}")
    for group, group_counts in sorted(counts.items()):
        print(f"  {group:8s} {sum(group_counts.values()):6d}  " + ", ".join(f"{k} {v}" for k, v in sorted(group_counts.items())))
    print(f"  {'total':8s} {sum(total.values()):6d}  " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    for failure in failures[:40]:
        print(f"  FAIL {failure['group']}/{failure['kind']}: {failure['outcome']} {failure.get('message', '')}")
    print("  slowest: " + "; ".join(f"{g}/{k} {s:.2f} s" for s, g, k in slowest))
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from lyra_sim.io_utils import write_json

        write_json(args.json, {
            "cases": len(cases), "seconds": seconds, "workers": args.workers, "seed": args.seed, "loadavg": os.getloadavg(),
            "decompression_limit_bytes": args.limit_mib << 20, "memory_limit_mib": args.memory_mib,
            "counts": {group: dict(c) for group, c in sorted(counts.items())}, "total": dict(total),
            "failures": failures[:200], "slowest": slowest,
        })  # fmt: skip
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

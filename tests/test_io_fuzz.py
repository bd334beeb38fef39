"""Property-based corruption of every readable format: load_scene returns a scene or raises
SceneFormatError, never another exception, a hang or a huge allocation.

Each format starts from a small valid file built here; hypothesis truncates it, overwrites
bytes, inserts bytes and rewrites header counts. Examples are bounded so the file runs in
well under a minute.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lyra_sim import GaussianScene, SceneFormatError
from lyra_sim.scene.io import load_scene, save_scene

EXAMPLES = int(os.environ.get("LYRA_FUZZ_EXAMPLES", "60"))  # raise it locally for a deeper search
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def small_scene(degree: int) -> GaussianScene:
    g = torch.Generator().manual_seed(degree)
    k = (degree + 1) ** 2
    return GaussianScene(torch.randn(6, 3, generator=g), torch.randn(6, 4, generator=g), torch.randn(6, 3, generator=g) - 3, torch.randn(6, generator=g), torch.randn(6, k, 3, generator=g) * 0.3)


def compressed_ply_bytes() -> bytes:
    """A structurally valid compressed PLY: one 18-float chunk, 6 packed splats, degree-1 SH."""
    header = "ply\nformat binary_little_endian 1.0\nelement chunk 1\n"
    names = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y", "min_scale_z",
             "max_scale_x", "max_scale_y", "max_scale_z", "min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]  # fmt: skip
    header += "".join(f"property float {n}\n" for n in names) + "element vertex 6\n"
    header += "".join(f"property uint {n}\n" for n in ("packed_position", "packed_rotation", "packed_scale", "packed_color"))
    header += "element sh 6\n" + "".join(f"property uchar f_rest_{i}\n" for i in range(9)) + "end_header\n"
    chunk = struct.pack("<18f", -1, -1, -1, 1, 1, 1, -5, -5, -5, -2, -2, -2, 0, 0, 0, 1, 1, 1)
    words = b"".join(struct.pack("<4I", 0x12345678 * i & 0xFFFFFFFF, 0x29037B21, 0x9FE80732, 0xA17425E1) for i in range(6))
    return header.encode() + chunk + words + bytes(range(54))


def seed_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files = {
            "ply_le": save_scene(small_scene(1), folder / "a.ply"),
            "ply_ascii": save_scene(small_scene(0), folder / "b.ply", encoding="ascii"),
            "ply_be": save_scene(small_scene(2), folder / "c.ply", encoding="binary_big_endian"),
            "lyra_ply": save_scene(small_scene(0), folder / "d.ply", format="lyra_ply"),
            "splat": save_scene(small_scene(0), folder / "e.splat"),
            "spz_v4": save_scene(small_scene(3), folder / "f.spz"),
            "spz_v3": save_scene(small_scene(1), folder / "g.spz", version=3),
            "spz_v2": save_scene(small_scene(0), folder / "h.spz", version=2),
            "compressed_ply_ours": save_scene(small_scene(3), folder / "j.compressed.ply"),
        }
        torch.save({"step": 0, "splats": {"means": torch.zeros(3, 3), "scales": torch.zeros(3, 3), "quats": torch.ones(3, 4), "opacities": torch.zeros(3), "sh0": torch.zeros(3, 1, 3)}}, folder / "i.pt")
        files["gsplat_pt"] = folder / "i.pt"
        contents = {name: path.read_bytes() for name, path in files.items()}
    contents["compressed_ply"] = compressed_ply_bytes()
    return contents


SEEDS = seed_files()


def check_loads_or_raises_format_error(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            scene = load_scene(path, invalid="keep")
        except SceneFormatError as error:
            assert str(path) in str(error)
        else:
            assert isinstance(scene, GaussianScene)


@st.composite
def corruptions(draw, name: str):
    data = bytearray(SEEDS[name])
    kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "header_int"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "insert":
        at = draw(st.integers(0, len(data)))
        return bytes(data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:])
    if kind == "header_int":  # rewrite a 4-byte field near the start (counts, sizes, offsets)
        at = draw(st.integers(0, min(len(data), 64) - 4))
        data[at : at + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 7, 255, 2**16, 2**31 - 1, 2**32 - 1])))
        return bytes(data)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def ply_count_edits(draw, name: str):
    """Replace the first element count of a PLY header with an arbitrary (often absurd) number."""
    data = SEEDS[name]
    count = draw(st.sampled_from([0, 1, 5, 7, 255, 10**6, 2**31, 10**18]))
    head, rest = data.split(b"element ", 1)
    element, after = rest.split(b"\n", 1)
    label = element.split(b" ")[0]
    return head + b"element " + label + b" " + str(count).encode() + b"\n" + after


SUFFIX = {"splat": ".splat", "gsplat_pt": ".pt"}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_files_are_valid(name):
    check_loads_or_raises_format_error(SEEDS[name], SUFFIX.get(name, ".bin"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"seed{SUFFIX.get(name, '.bin')}"
        path.write_bytes(SEEDS[name])
        assert len(load_scene(path, invalid="keep")) > 0


@pytest.mark.parametrize("name", sorted(set(SEEDS) - {"gsplat_pt"}))
def test_corrupted_files_raise_only_scene_format_error(name):
    @FUZZ_SETTINGS
    @given(corruptions(name))
    def run(data):
        check_loads_or_raises_format_error(data, SUFFIX.get(name, ".bin"))

    run()


@pytest.mark.parametrize("name", ["ply_le", "ply_ascii", "compressed_ply"])
def test_absurd_ply_counts_raise_scene_format_error(name):
    @settings(max_examples=8, deadline=None, database=None)
    @given(ply_count_edits(name))
    def run(data):
        check_loads_or_raises_format_error(data, ".ply")

    run()


def test_corrupted_torch_checkpoints_raise_scene_format_error():
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(corruptions("gsplat_pt"))
    def run(data):
        check_loads_or_raises_format_error(data, ".pt")

    run()

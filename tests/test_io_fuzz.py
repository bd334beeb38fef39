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


# ------------------------------------------------------------------ decompression bombs (issue 16)
import io as _io  # noqa: E402
import resource  # noqa: E402
import zipfile  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402

from lyra_sim.scene.formats import _common  # noqa: E402
from lyra_sim.scene.formats.spz import LEGACY_HEADER, SPZ_MAGIC, TOC_ENTRY, V4_HEADER  # noqa: E402
from lyra_sim.scene.io import decompression_limit, set_decompression_limit  # noqa: E402


@pytest.fixture
def small_limit():
    previous = set_decompression_limit(1 << 20)  # 1 MiB: bombs of a few MB trip it quickly
    yield 1 << 20
    set_decompression_limit(previous)


def gzip_bytes(chunks, level=9) -> bytes:
    deflater = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(deflater.compress(c) for c in chunks) + deflater.flush()


def peak_rss_growth(function) -> int:
    """Bytes by which the process's peak resident size grew while ``function`` ran (0 if not)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    function()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before


def test_gzip_spz_bomb_declaring_50m_points_is_refused_before_decoding(tmp_path):
    # The campaign's 0.92 MB spz v2: 50 M degree-0 points. Its float32 scene (3.4 GB) exceeds the
    # default 2 GiB budget, so nothing past the header is inflated.
    header = LEGACY_HEADER.pack(SPZ_MAGIC, 2, 50_000_000, 0, 12, 0, 0)
    path = tmp_path / "bomb_v2.spz"
    path.write_bytes(gzip_bytes([header, np.random.default_rng(0).bytes(950_000)], level=0))
    assert decompression_limit() == 2 << 30
    grew = peak_rss_growth(lambda: pytest.raises(SceneFormatError, load_scene, path))
    with pytest.raises(SceneFormatError, match=r"bomb_v2.spz: the spz header declares 50000000 Gaussians.*decompression limit of 2147483648 bytes"):
        load_scene(path)
    assert grew < 200 << 20


def test_gzip_spz_stream_is_inflated_within_the_budget(tmp_path, small_limit):
    # 200 k degree-3 points: 12.8 MB of zeros in a ~13 kB file; the header is within budget for
    # the raised limit below but the stream would pass it: inflation stops at the cap.
    n = 200_000
    header = LEGACY_HEADER.pack(SPZ_MAGIC, 3, n, 3, 12, 0, 0)
    path = tmp_path / "bomb_v3.spz"
    # 40 kB of incompressible trailing data (ignored, as by the reference reader) passes the
    # "more points than the file can hold" ratio check.
    path.write_bytes(gzip_bytes([header, bytes(n * 65), np.random.default_rng(1).bytes(40_000)]))
    assert path.stat().st_size < 60_000
    with pytest.raises(SceneFormatError, match=r"bomb_v3.spz: the spz header declares 200000 Gaussians, a 49600000 bytes .* float32 scene"):
        load_scene(path)
    set_decompression_limit(60 << 20)  # the scene fits, so the stream itself is read (incrementally)
    assert len(load_scene(path, invalid="keep")) == n


def test_budget_stops_a_stream_that_exceeds_its_declared_size(tmp_path, small_limit):
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = stream.compress(bytes(50 << 20)) + stream.flush()  # 50 MiB of zeros in ~50 kB
    read = _common.zlib_reader(zlib.decompressobj(16 + zlib.MAX_WBITS), data)
    with pytest.raises(SceneFormatError, match=r"x.spz: the test stream decompresses to more than 66560 bytes \(its header justifies 1024 bytes\)"):
        _common.decompress_within_budget("x.spz", read, expected=1024, what="the test stream")
    read = _common.zlib_reader(zlib.decompressobj(16 + zlib.MAX_WBITS), data)
    with pytest.raises(SceneFormatError, match=r"x.spz: the test stream decompresses to more bytes, more than the decompression limit of 1048576 bytes.*LYRA_SIM_MAX_DECOMPRESSED_BYTES"):
        _common.decompress_within_budget("x.spz", read, expected=None, what="the test stream")
    read = _common.zlib_reader(zlib.decompressobj(16 + zlib.MAX_WBITS), data)
    assert len(_common.decompress_within_budget("x.spz", read, expected=4096, what="s", stop_at_expected=True)) == 4096
    with pytest.raises(SceneFormatError, match="declares 2097152 bytes"):
        _common.check_decompressed_size("x.spz", 2 << 20, "the test stream")


def v4_bomb(n: int, degree: int, *, actual_extra: int = 0, padding: int = 8192) -> bytes:
    """An spz v4 file whose ZSTD streams are zeros; stream 0 may hold more than its TOC entry says.

    An extension record of ``padding`` random bytes makes the file large enough for the
    header's "more points than the file can hold" check (about 113 points per byte).
    """
    import zstandard

    sizes = [n * 9, n, n * 3, n * 3, n * 4] + ([n * {1: 3, 2: 8, 3: 15}[degree] * 3] if degree else [])
    compressor = zstandard.ZstdCompressor(level=19)
    payloads = [compressor.compress(bytes(size + (actual_extra if i == 0 else 0))) for i, size in enumerate(sizes)]
    extension = struct.pack("<II", 0xADBE0002, padding) + np.random.default_rng(2).bytes(padding)
    header = V4_HEADER.pack(SPZ_MAGIC, 4, n, degree, 12, 0x2, len(sizes), V4_HEADER.size + len(extension))
    toc = b"".join(TOC_ENTRY.pack(len(p), size) for p, size in zip(payloads, sizes))
    return header + extension + toc + b"".join(payloads)


def test_zstd_spz_bombs_are_refused(tmp_path, small_limit):
    path = tmp_path / "bomb_v4.spz"
    path.write_bytes(v4_bomb(400_000, 3))  # 25.6 MB of streams in ~1 kB
    with pytest.raises(SceneFormatError, match=r"bomb_v4.spz: the spz header declares 400000 Gaussians.*decompression limit"):
        load_scene(path)
    set_decompression_limit(200 << 20)
    # A stream holding more than its table-of-contents entry declares stops at the entry + margin.
    path.write_bytes(v4_bomb(1000, 0, actual_extra=10 << 20))
    with pytest.raises(SceneFormatError, match=r"spz ZSTD stream 0 decompresses to more than 74536 bytes \(its header justifies 9000 bytes\)"):
        load_scene(path)
    path.write_bytes(v4_bomb(1000, 0, actual_extra=100))  # within the margin: reported as a size mismatch
    with pytest.raises(SceneFormatError, match="spz stream 0 decompresses to 9100 bytes, expected 9000"):
        load_scene(path)
    path.write_bytes(v4_bomb(1000, 0))
    assert len(load_scene(path, invalid="keep")) == 1000


def zip_checkpoint(tmp_path, name: str, splats: dict, compression=zipfile.ZIP_DEFLATED) -> Path:
    """A torch checkpoint re-packed with every record deflated (torch itself stores them)."""
    buffer = _io.BytesIO()
    torch.save({"splats": splats}, buffer)
    source = zipfile.ZipFile(_io.BytesIO(buffer.getvalue()))
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info))
    return path


def gsplat_splats(n: int) -> dict:
    return {"means": torch.zeros(n, 3), "scales": torch.zeros(n, 3), "quats": torch.ones(n, 4), "opacities": torch.zeros(n), "sh0": torch.zeros(n, 1, 3)}


def test_deflated_pt_checkpoints_are_read_within_the_budget(tmp_path, small_limit):
    small = zip_checkpoint(tmp_path, "small.pt", gsplat_splats(100))
    assert len(load_scene(small)) == 100  # deflated records are fine within the budget
    big = zip_checkpoint(tmp_path, "bomb.pt", gsplat_splats(100_000))  # 7.6 MB of zeros, ~10 kB file
    assert big.stat().st_size < 100_000
    with pytest.raises(SceneFormatError, match=r"bomb.pt: .*compressed zip entries declares .* more than the decompression limit"):
        load_scene(big)


def test_zip_entry_expanding_past_its_declared_size_is_refused(tmp_path, small_limit):
    path = zip_checkpoint(tmp_path, "liar.pt", gsplat_splats(10))
    with zipfile.ZipFile(path) as archive:
        entry = next(e for e in archive.infolist() if e.filename.endswith("/data/0"))
    data = bytearray(path.read_bytes())
    # Declare 8 bytes for a 120-byte record in the local header and the central directory.
    data[entry.header_offset + 22 : entry.header_offset + 26] = struct.pack("<I", 8)
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(entry.filename.encode()))
    assert data[central + 46 : central + 46 + len(entry.filename)] == entry.filename.encode()
    data[central + 24 : central + 28] = struct.pack("<I", 8)
    path.write_bytes(bytes(data))
    # zipfile stops at the declared size and the CRC no longer matches: refused before torch runs.
    with pytest.raises(SceneFormatError, match=r"liar.pt: zip entry '.*/data/0' is corrupt \(BadZipFile: Bad CRC-32"):
        load_scene(path)


def test_decompression_limit_is_validated():
    with pytest.raises(ValueError, match="positive number of bytes"):
        set_decompression_limit(0)
    previous = set_decompression_limit(12345)
    assert decompression_limit() == 12345
    set_decompression_limit(None)
    assert decompression_limit() == 2 << 30
    set_decompression_limit(previous)


def test_decompression_limit_from_the_environment():
    import subprocess
    import sys

    code = "from lyra_sim.scene.io import decompression_limit; print(decompression_limit())"
    env = dict(os.environ, LYRA_SIM_MAX_DECOMPRESSED_BYTES="5e6")
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip() == "5000000"


# ------------------------------------------------------------------ empty scenes (issue 16)
EMPTY_WRITES = {
    "ply": ("e.ply", {}),
    "ply_ascii": ("e.ply", {"encoding": "ascii"}),
    "ply_be": ("e.ply", {"encoding": "binary_big_endian"}),
    "lyra_ply": ("e.ply", {"format": "lyra_ply"}),
    "compressed_ply": ("e.compressed.ply", {}),
    "splat": ("e.splat", {}),
    "spz_v4": ("e.spz", {}),
    "spz_v3": ("e.spz", {"version": 3}),
    "spz_v2": ("e.spz", {"version": 2}),
}


@pytest.mark.filterwarnings("ignore:writing an empty spz")
@pytest.mark.filterwarnings("ignore:.* stores SH degree")
@pytest.mark.parametrize("name", sorted(EMPTY_WRITES))
@pytest.mark.parametrize("degree", [0, 3])
def test_empty_scenes_round_trip_every_format(tmp_path, name, degree):
    file_name, options = EMPTY_WRITES[name]
    path = save_scene(GaussianScene.empty(degree), tmp_path / file_name, **options)
    scene = load_scene(path)
    assert len(scene) == 0 and scene.means.shape == (0, 3) and scene.sh.shape[0] == 0
    kept = {"lyra_ply": 0, "splat": 0}.get(name, degree)
    assert scene.sh_degree == kept
    from lyra_sim.scene.transforms import sanitize

    cleaned, report = sanitize(scene)
    assert len(cleaned) == 0 and report == {"input": 0, "kept": 0, "dropped": 0, "reasons": {}}


@pytest.mark.parametrize("degree", [0, 3])
def test_empty_pt_checkpoint(tmp_path, degree):
    splats = gsplat_splats(0) | ({"shN": torch.zeros(0, 15, 3)} if degree else {})
    torch.save({"splats": splats}, tmp_path / "empty.pt")
    scene = load_scene(tmp_path / "empty.pt")
    assert len(scene) == 0 and scene.sh_degree == degree


# ------------------------------------------------------------------ other tensor layouts (issue 16)
def test_pt_tensor_layouts_are_densified(tmp_path):
    g = torch.Generator().manual_seed(3)
    means = torch.randn(20, 3, generator=g)
    means[means.abs() < 0.5] = 0  # a sparse-ish tensor
    reference = gsplat_splats(20) | {"means": means, "opacities": torch.randn(20, generator=g)}
    layouts = {
        "coo": lambda t: t.to_sparse(),
        "csr": lambda t: t.to_sparse_csr() if t.dim() == 2 else t.to_sparse(),
        "quantized": lambda t: torch.quantize_per_tensor(t, 0.01, 0, torch.qint32),
        "float64": lambda t: t.double(),
        "half": lambda t: t.half(),
    }
    expected = load_scene_from(tmp_path / "dense.pt", reference)
    for name, convert in layouts.items():
        scene = load_scene_from(tmp_path / f"{name}.pt", {key: convert(value) for key, value in reference.items()})
        tolerance = {"quantized": 0.006, "half": 2e-3}.get(name, 0)
        assert torch.allclose(scene.means, expected.means, atol=tolerance), name
        assert torch.allclose(scene.opacity_logits, expected.opacity_logits, atol=tolerance, rtol=tolerance), name


def load_scene_from(path: Path, splats: dict) -> GaussianScene:
    torch.save({"splats": splats}, path)
    return load_scene(path)


def test_pt_tensors_that_cannot_be_splats_are_refused(tmp_path):
    base = gsplat_splats(4)
    with pytest.raises(SceneFormatError, match=r"complex.pt: splats\['means'\] is complex"):
        load_scene_from(tmp_path / "complex.pt", base | {"means": torch.zeros(4, 3, dtype=torch.complex64)})
    # A sparse tensor of a few bytes declaring a huge dense shape is a bomb too.
    huge = torch.sparse_coo_tensor(torch.zeros(2, 1, dtype=torch.long), torch.ones(1), (10**9, 3))
    with pytest.raises(SceneFormatError, match=r"huge.pt: splats\['means'\] \(torch.sparse_coo, shape \[1000000000, 3\]\) declares .* decompression limit"):
        load_scene_from(tmp_path / "huge.pt", base | {"means": huge})

    # Indices outside the declared shape would crash the process when densified.
    outside = torch.sparse_coo_tensor(torch.tensor([[7], [0]]), torch.ones(1), (4, 3), check_invariants=False)
    with pytest.raises(SceneFormatError, match=r"outside.pt: cannot load the checkpoint .*"):
        load_scene_from(tmp_path / "outside.pt", base | {"means": outside})


# ------------------------------------------------------------------ sanitize, messages, ASCII PLY (issue 16)
def test_sanitize_drops_scales_whose_activation_overflows(tmp_path):
    from lyra_sim.scene.transforms import MAX_LOG_SCALE, sanitize

    scene = small_scene(0)
    scene.log_scales[1, 2] = 4.7e30  # finite, but exp() is inf
    scene.log_scales[2, 0] = MAX_LOG_SCALE + 0.5  # the covariance exp(2 s) overflows float32
    scene.log_scales[3, 1] = float("inf")  # already non-finite: counted there only
    cleaned, report = sanitize(scene)
    assert report == {"input": 6, "kept": 3, "dropped": 3, "reasons": {"non_finite_scale": 1, "overflowing_scale": 2}}
    assert torch.isfinite(cleaned.scales() ** 2).all()
    path = save_scene(scene, tmp_path / "overflow.ply")
    with pytest.raises(SceneFormatError, match="overflow.ply: invalid Gaussians out of 6: 1 with non finite scale, 2 with overflowing scale"):
        load_scene(path)
    assert len(load_scene(path, invalid="drop")) == 3


def test_error_messages_are_bounded_in_length(tmp_path):
    names = [f"k{i}" for i in range(200_000)]
    torch.save({"splats": {name: torch.zeros(1) for name in names[:20_000]}}, tmp_path / "keys.pt")
    with pytest.raises(SceneFormatError) as info:
        load_scene(tmp_path / "keys.pt")
    assert len(str(info.value)) < 1200 and "(20000 in all)" in str(info.value)
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 1\n" + "".join(f"property float {n}\n" for n in names) + "end_header\n"
    (tmp_path / "props.ply").write_bytes(header.encode()[: 1 << 20])  # a header of a megabyte
    with pytest.raises(SceneFormatError) as info:
        load_scene(tmp_path / "props.ply")
    assert len(str(info.value)) < 1200
    (tmp_path / "line.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement " + b"v" * 500_000 + b" x\nend_header\n")
    with pytest.raises(SceneFormatError, match="malformed element line") as info:
        load_scene(tmp_path / "line.ply")
    assert len(str(info.value)) < 1200 and "more characters" in str(info.value)


def test_ascii_ply_is_read_in_chunks(tmp_path, monkeypatch):
    from lyra_sim.scene.formats import ply_container

    scene = small_scene(2)
    binary = load_scene(save_scene(scene, tmp_path / "b.ply"))
    ascii_path = save_scene(scene, tmp_path / "a.ply", encoding="ascii")
    # An element before the vertices (skipped by token count) and irregular whitespace.
    data = ascii_path.read_bytes().replace(b"element vertex", b"element camera 2\nproperty float fx\nproperty float fy\nelement vertex")
    head, body = data.split(b"end_header\n")
    ascii_path.write_bytes(head + b"end_header\n  500  \t 501\n\n502 503\n" + body.replace(b" ", b"   "))
    for chunk in (1, 7, 64, 1 << 22):  # every cut position: inside a token, at whitespace, in the next element
        monkeypatch.setattr(ply_container, "ASCII_CHUNK_BYTES", chunk)
        scene = load_scene(ascii_path)
        assert torch.equal(scene.means, binary.means) and torch.equal(scene.sh, binary.sh), chunk
    with pytest.raises(SceneFormatError, match="not a number \\(b'oops'\\)"):
        ascii_path.write_bytes(head + b"end_header\n1 2 3 4\n" + body.replace(b" ", b" oops ", 1))
        load_scene(ascii_path)
    ascii_path.write_bytes(head.replace(b"element vertex 6", b"element vertex 100000000") + b"end_header\n1 2 3 4\n" + body)
    with pytest.raises(SceneFormatError, match="truncated: ASCII element 'vertex' declares 100000000 records"):
        load_scene(ascii_path)


def test_ascii_ply_memory_is_a_small_multiple_of_its_size(tmp_path):
    g = torch.Generator().manual_seed(5)
    n = 60_000
    scene = GaussianScene(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g), torch.randn(n, generator=g), torch.randn(n, 16, 3, generator=g))
    path = save_scene(scene, tmp_path / "big_ascii.ply", encoding="ascii")
    import tracemalloc

    tracemalloc.start()
    load_scene(path, invalid="keep")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # The file bytes, the float64 values and the float32 scene: ~2.5x; tokenising it all at once took ~21x.
    assert peak < 4 * path.stat().st_size, (peak, path.stat().st_size)

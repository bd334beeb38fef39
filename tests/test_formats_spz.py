""".spz reader/writer: hand-packed v1-v4 files, FORMATS.md 8.1 test vectors, round trips, frame flip.

The fixtures are packed point by point with ``struct`` straight from FORMATS.md section 5, an
independent path from the vectorised numpy codec under test.
"""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
import zstandard
from scipy.spatial.transform import Rotation

from lyra_sim import GaussianScene, SceneFormatError
from lyra_sim.scene import quat_to_matrix
from lyra_sim.scene.formats import spz
from lyra_sim.scene.io import detect_format, load_scene, save_scene
from lyra_sim.scene.sh import num_sh_bases
from lyra_sim.scene.transforms import transform_scene

MAGIC = 0x5053474E


# ------------------------------------------------------------------ an independent, per-point packer
def pack_fixed24(value: float, fractional_bits: int = 12) -> bytes:
    fixed = int(math.floor(abs(value) * (1 << fractional_bits) + 0.5)) * (1 if value >= 0 else -1)
    return (fixed & 0xFFFFFF).to_bytes(3, "little")


def pack_smallest_three(xyzw) -> bytes:
    q = np.asarray(xyzw, dtype=np.float64)
    q = q / np.linalg.norm(q)
    largest = int(np.argmax(np.abs(q)))
    negate = q[largest] < 0
    word = largest
    for i in range(4):
        if i == largest:
            continue
        sign = int((q[i] < 0) != negate)
        magnitude = int(math.floor(511 * abs(q[i]) / math.sqrt(0.5) + 0.5))
        word = (word << 10) | (sign << 9) | magnitude
    return struct.pack("<I", word)


def pack_first_three(xyzw) -> bytes:
    q = np.asarray(xyzw, dtype=np.float64)
    q = q / np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return bytes(min(255, max(0, int(math.floor(c * 127.5 + 127.5 + 0.5)))) for c in q[:3])


def byte(value: float) -> int:
    return min(255, max(0, int(math.floor(value + 0.5))))


def sample_points(degree: int):
    """Five Gaussians with known raw values (PLY frame not involved: tests use keep_frame)."""
    positions = [(0.5, -1.25, 2.0), (-3.0, 0.125, 0.0), (10.0, 20.0, -30.0), (0.0, 0.0, 0.0), (1.0 / 4096, -2.5, 7.75)]
    log_scales = [(-3.0, -2.0, -1.0), (-5.0, -5.0, -5.0), (0.5, -0.25, 1.0), (-10.0, 5.9375, 0.0), (-4.0, -4.5, -3.5)]
    alphas = [128, 255, 10, 200, 64]  # bytes
    colors = [(166, 128, 90), (0, 255, 128), (100, 150, 200), (128, 128, 128), (30, 60, 90)]  # bytes
    rotations = [(0.2, -0.4, 0.4, 0.8), (0.0, 0.0, 0.0, 1.0), (0.6, 0.0, -0.8, 0.0), (-0.1, 0.7, 0.1, -0.7), (0.5, 0.5, 0.5, 0.5)]  # xyzw
    dim = (degree + 1) ** 2 - 1
    rng = np.random.default_rng(degree)
    sh = rng.integers(0, 256, size=(5, dim, 3))  # bytes, coefficient-major, channel fastest
    return positions, log_scales, alphas, colors, rotations, sh


def streams_for(version: int, degree: int) -> list[bytes]:
    positions, log_scales, alphas, colors, rotations, sh = sample_points(degree)
    if version == 1:
        position_stream = b"".join(struct.pack("<3e", *p) for p in positions)
    else:
        position_stream = b"".join(pack_fixed24(c) for p in positions for c in p)
    rotation_stream = b"".join((pack_first_three if version <= 2 else pack_smallest_three)(q) for q in rotations)
    return [
        position_stream,
        bytes(alphas),
        b"".join(bytes(c) for c in colors),
        b"".join(bytes(byte((s + 10) * 16) for s in scales) for scales in log_scales),
        rotation_stream,
        bytes(sh.astype(np.uint8).flatten().tolist()),
    ]


def legacy_file(version: int, degree: int, extensions: bytes = b"") -> bytes:
    flags = 0x2 if extensions else 0
    header = struct.pack("<IIIBBBB", MAGIC, version, 5, degree, 12, flags, 0)
    return gzip.compress(header + b"".join(streams_for(version, degree)) + extensions)


def v4_file(degree: int, extensions: bytes = b"") -> bytes:
    streams = [s for s in streams_for(4, degree) if s]
    compressed = [zstandard.ZstdCompressor(level=3).compress(s) for s in streams]
    flags = 0x2 if extensions else 0
    header = struct.pack("<IIIBBBBI", MAGIC, 4, 5, degree, 12, flags, len(streams), 32 + len(extensions)) + bytes(12)
    toc = b"".join(struct.pack("<QQ", len(c), len(s)) for c, s in zip(compressed, streams))
    return header + extensions + toc + b"".join(compressed)


def expected_values(version: int, degree: int):
    positions, log_scales, alphas, colors, rotations, sh = sample_points(degree)
    means = np.array(positions, dtype=np.float64)
    if version > 1:
        means = np.round(means * 4096) / 4096
    return {
        "means": means,
        "log_scales": np.array([[byte((s + 10) * 16) / 16 - 10 for s in row] for row in log_scales]),
        "alpha": np.array(alphas) / 255.0,
        "dc": (np.array(colors) / 255.0 - 0.5) / 0.15,
        "rotations_xyzw": np.array([np.array(q) / np.linalg.norm(q) for q in rotations]),
        "sh_rest": (sh - 128) / 128.0,
    }


def check_decoded(scene: GaussianScene, version: int, degree: int) -> None:
    expected = expected_values(version, degree)
    atol_position = 2e-3 if version == 1 else 1e-6  # float16 vs exact 1/4096 steps
    np.testing.assert_allclose(scene.means.numpy(), expected["means"], rtol=1e-3 if version == 1 else 0, atol=atol_position)
    np.testing.assert_allclose(scene.log_scales.numpy(), expected["log_scales"], atol=1e-6)
    alpha = np.clip(expected["alpha"], 1e-6, 1 - 1e-6)
    np.testing.assert_allclose(scene.opacities().numpy(), alpha, atol=1e-6)
    np.testing.assert_allclose(scene.sh[:, 0].numpy(), expected["dc"], atol=1e-5)
    if degree:
        np.testing.assert_allclose(scene.sh[:, 1:].numpy(), expected["sh_rest"], atol=1e-6)
    # Quantised rotations: v2 first-three ~ 1/127.5 per component, v3+ smallest-three ~ 1.4e-3.
    got = scene.rotations().numpy()[:, [1, 2, 3, 0]]
    dots = np.abs((got * expected["rotations_xyzw"]).sum(-1))
    # First-three loses precision when w is near 0 (w is rebuilt from sqrt(1 - |xyz|^2)).
    assert dots.min() > (0.995 if version <= 2 else 0.99999), dots


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_reads_hand_packed_legacy_files(tmp_path, version, degree):
    path = tmp_path / "points.spz"
    path.write_bytes(legacy_file(version, degree))
    assert detect_format(path) == "spz"
    scene = load_scene(path, keep_spz_frame=True)
    assert len(scene) == 5 and scene.sh_degree == degree
    assert scene.metadata.extras["spz_version"] == version and scene.metadata.frame == "spz-rub"
    check_decoded(scene, version, degree)


@pytest.mark.parametrize("degree", [0, 2, 3])
def test_reads_hand_packed_v4_files(tmp_path, degree):
    path = tmp_path / "points.bin"  # no extension: detected by content
    path.write_bytes(v4_file(degree))
    assert detect_format(path) == "spz"
    scene = load_scene(path, keep_spz_frame=True)
    assert len(scene) == 5 and scene.sh_degree == degree
    check_decoded(scene, 4, degree)


def test_v4_header_layout_of_our_writer(tmp_path):
    scene = GaussianScene.from_activated(torch.zeros(7, 3), torch.full((7, 3), 0.5), torch.full((7,), 0.5), torch.full((7, 3), 0.1))
    path = save_scene(scene, tmp_path / "a.spz")
    data = path.read_bytes()
    # FORMATS.md 5.3: NGSP | 4 | N | degree 0 | 12 fraction bits | no flags | 5 streams | TOC at 32.
    assert data[:16] == bytes.fromhex("4E475350 04000000 07000000 00 0C 00 05".replace(" ", ""))
    assert struct.unpack_from("<I", data, 16)[0] == 32 and data[20:32] == bytes(12)
    assert struct.unpack_from("<QQ", data, 32)[1] == 7 * 9  # first stream: positions, N*9 bytes


def test_extensions_are_skipped_and_noted(tmp_path):
    record = struct.pack("<II", 0xADBE0002, 5) + b"hello"
    for name, content in (("v4.spz", v4_file(1, record)), ("v3.spz", legacy_file(3, 1, record))):
        path = tmp_path / name
        path.write_bytes(content)
        scene = load_scene(path, keep_spz_frame=True)
        check_decoded(scene, 4 if name == "v4.spz" else 3, 1)
        assert any("0xADBE0002" in note for note in scene.metadata.notes)


# ------------------------------------------------------------------ FORMATS.md 8.1 test vectors
def test_vector_smallest_three_rotation():
    xyzw = np.array([[0.2, -0.4, 0.4, 0.8]])
    word = spz.encode_smallest_three(xyzw / np.linalg.norm(xyzw))
    assert int(word[0]) == 0xC91C8521
    assert word.astype("<u4").tobytes() == bytes([0x21, 0x85, 0x1C, 0xC9])
    decoded = spz._decode_smallest_three(word)
    np.testing.assert_allclose(decoded[0], [0.2006, -0.3999, 0.3999, 0.7999], atol=1e-4)


def test_vector_first_three_rotation():
    xyzw = np.array([[0.2, -0.4, 0.4, 0.8]])
    assert spz.encode_first_three(xyzw).tolist() == [[153, 77, 179]]


def test_vector_positions_with_wraparound():
    encoded = spz.encode_fixed24(np.array([[1.5, -1.5, 2047.9], [2048.0, 0, 0]]), 12).reshape(-1, 3)
    assert [bytes(row).hex(" ").upper() for row in encoded[:4]] == ["00 18 00", "00 E8 FF", "66 FE 7F", "00 00 80"]
    decoded = spz._decode_fixed24(encoded[:4].reshape(1, 4, 3)[:, :3], 12)
    np.testing.assert_allclose(decoded[0], [1.5, -1.5, 2047.8999], atol=1e-4)
    assert spz._decode_fixed24(encoded[3].reshape(1, 1, 3), 12)[0, 0] == -2048.0  # the wrap the spec warns about
    assert spz.choose_fractional_bits(np.array([[2048.0, 0, 0]])) == 11  # our writer avoids it


def test_vector_colour_scale_alpha_and_sh(tmp_path):
    assert [byte(v * 0.15 * 255 + 127.5) for v in (1.0, 0.0, -3.4, 3.4)] == [166, 128, 0, 255]
    assert (166 / 255 - 0.5) / 0.15 == pytest.approx(1.00654, abs=1e-5)
    assert [byte((v + 10) * 16) for v in (-3.0, -12.0, 6.0)] == [112, 0, 255]
    assert [spz.quantize_sh(np.array([0.3]), bits)[0] for bits in (8, 5, 4)] == [166, 168, 160]
    # The same values through our writer and reader (keep_frame: no sign flips).
    scene = GaussianScene(
        torch.zeros(3, 3),
        torch.tensor([[1.0, 0, 0, 0]] * 3),
        torch.tensor([[-3.0, -12.0, 6.0]] * 3),
        torch.tensor([0.0, 8.0, -8.0]),
        torch.tensor([[[1.0, 0.0, -3.4]] + [[0.3, 0.3, 0.3]] * 3] * 3),
    )
    path = save_scene(scene, tmp_path / "v.spz", keep_frame=True)
    back = load_scene(path, keep_spz_frame=True)
    np.testing.assert_allclose(back.sh[0, 0].numpy(), [1.00654, 0.01307, -3.33333], atol=1e-4)
    np.testing.assert_allclose(back.log_scales[0].numpy(), [-3.0, -10.0, 5.9375])
    np.testing.assert_allclose(back.opacities().numpy(), [128 / 255, 1 - 1e-6, 1e-6], atol=1e-7)
    np.testing.assert_allclose(back.sh[0, 1:].numpy(), 0.3125)  # degree-1 bands at 5 bits


# ------------------------------------------------------------------ round trips and the frame
def random_scene(n: int, degree: int, seed: int = 0) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    return GaussianScene(
        torch.randn(n, 3, generator=g) * 5,
        torch.randn(n, 4, generator=g),
        torch.rand(n, 3, generator=g) * 6 - 8,
        torch.randn(n, generator=g) * 2,
        torch.rand(n, num_sh_bases(degree), 3, generator=g) * 1.8 - 0.9,
    )


@pytest.mark.parametrize("version", [2, 3, 4])
def test_round_trip_within_stated_quantisation(tmp_path, version):
    scene = random_scene(600, 3, seed=version)
    back = load_scene(save_scene(scene, tmp_path / "r.spz", version=version))
    assert back.metadata.frame == "unknown" and len(back) == 600
    # Bounds: position half a 1/4096 step; log-scale half of 1/16; alpha half of 1/255;
    # DC half of 1/(0.15*255); SH rest half a bucket plus the 1/128 rounding before bucketing
    # (5 bits: 4.5/128, 4 bits: 8.5/128).
    assert (back.means - scene.means).abs().max() <= 0.5 / 4096 + 1e-6
    assert (back.log_scales - scene.log_scales).abs().max() <= 0.5 / 16 + 1e-6
    assert (back.opacities() - scene.opacities()).abs().max() <= 0.5 / 255 + 1e-6
    assert (back.sh[:, 0] - scene.sh[:, 0]).abs().max() <= 0.5 / (0.15 * 255) + 1e-6
    assert (back.sh[:, 1:4] - scene.sh[:, 1:4]).abs().max() <= 4.5 / 128 + 1e-6
    assert (back.sh[:, 4:] - scene.sh[:, 4:]).abs().max() <= 8.5 / 128 + 1e-6
    dots = (back.rotations() * scene.rotations()).sum(-1).abs()
    # v2 rebuilds w from sqrt(1 - |xyz|^2): coarse when w is near 0.
    assert dots.min() >= (0.995 if version == 2 else 0.99999)


def covariances(rotations: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:  # [N, 4], [N, 3] -> [N, 3, 3]
    m = quat_to_matrix(rotations) * scales[:, None, :]
    return m @ m.transpose(1, 2)


def test_stored_frame_is_rub_and_flip_matches_a_rotation_about_x(tmp_path):
    scene = random_scene(50, 3, seed=9)
    path = save_scene(scene, tmp_path / "f.spz")
    stored = load_scene(path, keep_spz_frame=True)
    flipped = transform_scene(scene, Rotation.from_euler("x", 180, degrees=True).as_matrix(), [0, 0, 0])
    # spz stores the RUB frame: the scene rotated 180 degrees about X (SH signs of FORMATS.md 1.4).
    assert (stored.means - flipped.means).abs().max() <= 0.5 / 4096 + 1e-5
    assert (stored.sh[:, 1:4] - flipped.sh[:, 1:4]).abs().max() <= 4.5 / 128 + 1e-5
    assert (stored.sh[:, 4:] - flipped.sh[:, 4:]).abs().max() <= 8.5 / 128 + 1e-5
    # The spec's quaternion flip (w, x, -y, -z) is F R F, the rotation gives F R: they differ by
    # flipping two local axes, which leaves every covariance unchanged.
    # (Scales are taken from the original: spz quantises log-scales to 1/16.)
    scales = torch.tensor([[1.0, 0.5, 0.1]]).expand(len(scene), 3)
    torch.testing.assert_close(covariances(stored.rotations(), scales), covariances(flipped.rotations(), scales), atol=5e-3, rtol=0)
    means, quats, sh = spz.flip_rdf_rub(scene.means.numpy(), scene.quats.numpy(), scene.sh.numpy())
    np.testing.assert_allclose(sh, flipped.sh.numpy(), atol=1e-5)
    np.testing.assert_allclose(means, flipped.means.numpy(), atol=1e-5)


# ------------------------------------------------------------------ malformed files
@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d[:-1], "end at byte"),
        (lambda d: d + b"\0", "end at byte"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[:8] + struct.pack("<I", 0) + d[12:], "streams"),  # 0 points: no stream at all
        (lambda d: d[:8] + struct.pack("<I", 2**31 - 1) + d[12:], "can hold"),
        (lambda d: d[:12] + bytes([7]) + d[13:], "SH degree 7"),
        (lambda d: d[:15] + bytes([6]) + d[16:], "streams"),
        (lambda d: d[:4] + struct.pack("<I", 5) + d[8:], "version 5"),
        (lambda d: d[:16] + struct.pack("<I", 8) + d[20:], "table of contents"),
    ],
)
def test_malformed_v4_raises_scene_format_error(tmp_path, mutate, message):
    path = tmp_path / "bad.spz"
    path.write_bytes(mutate(v4_file(0)))
    with pytest.raises(SceneFormatError, match=message) as info:
        load_scene(path)
    assert "bad.spz" in str(info.value)


def test_malformed_legacy_raises_scene_format_error(tmp_path):
    path = tmp_path / "bad.spz"
    good = legacy_file(2, 1)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(SceneFormatError, match="truncated|corrupt"):
        load_scene(path)
    header = struct.pack("<IIIBBBB", MAGIC, 2, 2**31 - 1, 3, 12, 0, 0)
    path.write_bytes(gzip.compress(header + bytes(100)))
    with pytest.raises(SceneFormatError, match="can hold"):
        load_scene(path)

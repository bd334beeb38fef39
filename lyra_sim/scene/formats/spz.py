"""Niantic ``.spz``: reader for versions 1-4 and writer for versions 2, 3 and 4 (FORMATS.md 5).

Versions 1-3 are one gzip stream (16-byte header, then struct-of-arrays); version 4 is a 32-byte
plain header, a table of contents and one ZSTD frame per attribute. By default positions,
quaternions and SH are converted from spz's RUB frame to the PLY frame (180 degrees about X,
FORMATS.md 1.4 / 5.9) on read, and back on write, so PLY -> spz -> PLY is the identity;
``keep_frame=True`` keeps the values as stored.

Quantisation (default writer): positions 1/4096 (12 fractional bits), log-scales 1/16,
colour DC 1/(0.15*255) ~ 0.026, alpha 1/255, SH 1/128 rounded to 5 bits (degree 1) / 4 bits
(degrees 2-3), rotations ~ 1.4e-3 per component (smallest-three, 9 bits + sign).
"""

from __future__ import annotations

import math
import struct
import warnings
import zlib

import numpy as np

from lyra_sim.scene.formats._common import (
    ALPHA_BYTE_TO_LOGIT,
    OTHER_COMPONENTS,
    assemble_largest_dropped,
    byte_table,
    check_decoded_scene_size,
    decompress_within_budget,
    format_error,
    logit_to_alpha,
    normalized_quaternions,
    scene_from_arrays,
    scene_to_arrays,
    to_uint8_rounded,
    zlib_reader,
)
from lyra_sim.scene.formats.spec import SceneFormatSpec, reading_bytes
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata

SPZ_MAGIC = 0x5053474E  # "NGSP" little-endian
GZIP_MAGIC = b"\x1f\x8b"
COLOR_SCALE = 0.15
SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15, 4: 24}  # coefficients per channel excluding DC
FLAG_ANTIALIASED = 0x1
FLAG_EXTENSIONS = 0x2
LEGACY_HEADER = struct.Struct("<IIIBBBB")  # magic, version, numPoints, shDegree, fractionalBits, flags, reserved
V4_HEADER = struct.Struct("<IIIBBBBI12x")  # ... numStreams, tocByteOffset, 12 reserved bytes
TOC_ENTRY = struct.Struct("<QQ")  # compressedSize, uncompressedSize
INT32_MAX = 2**31 - 1
# Deflate cannot expand data by more than ~1032:1; a point count needing more cannot be in the file.
MAX_DEFLATE_RATIO = 1032
MAX_EXTENSION_BYTES = 1 << 20
# RDF <-> RUB sign of SH coefficient k = 1..15 (FORMATS.md 1.4); the same for every channel.
FLIP_SH_SIGNS = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], dtype=np.float32)
SQRT_HALF = math.sqrt(0.5)
# Byte decoders of FORMATS.md 5.4 as lookup tables.
COLOR_BYTE_TO_DC = byte_table(lambda b: (b / 255.0 - 0.5) / COLOR_SCALE)
SCALE_BYTE_TO_LOG = byte_table(lambda b: b / 16.0 - 10.0)
SH_BYTE_TO_VALUE = byte_table(lambda b: (b - 128.0) / 128.0)


def is_spz(head: bytes) -> bool:
    """True for an NGSP (v4) header or a gzip stream whose payload starts with NGSP."""
    if head[:4] == struct.pack("<I", SPZ_MAGIC):
        return True
    if head[:2] != GZIP_MAGIC:
        return False
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4) == struct.pack("<I", SPZ_MAGIC)
    except zlib.error:
        return False


# ---------------------------------------------------------------------------------------- reading
def _stream_sizes(n: int, degree: int, version: int) -> list[int]:
    """Uncompressed sizes of positions, alphas, colors, scales, rotations, sh."""
    position_bytes = 6 if version == 1 else 9
    rotation_bytes = 3 if version <= 2 else 4
    return [n * position_bytes, n, n * 3, n * 3, n * rotation_bytes, n * SH_DIM[degree] * 3]


def read_spz(path, data: bytes, *, keep_frame: bool = False) -> GaussianScene:
    """Decode an ``.spz`` file held in ``data`` (any version 1-4)."""
    if data[:4] == struct.pack("<I", SPZ_MAGIC):
        fields, streams, extensions = _read_v4(path, data)
    elif data[:2] == GZIP_MAGIC:
        fields, streams, extensions = _read_legacy(path, data)
    else:
        raise format_error(path, "not an spz file (neither the NGSP magic nor a gzip stream)")
    version, n, degree, fractional_bits, flags = fields
    metadata = SceneMetadata(source=str(path), format="spz", frame="spz-rub" if keep_frame else "unknown")
    metadata.extras.update(spz_version=version, antialiased=bool(flags & FLAG_ANTIALIASED), fractional_bits=fractional_bits)
    for kind, length in extensions:
        metadata.notes.append(f"ignored spz extension 0x{kind:08X} ({length} bytes); a coordinate-system extension may change the frame")
    if not keep_frame:
        metadata.notes.append("converted from spz's RUB frame to the PLY frame (y and z negated)")

    positions, alphas, colors, scales, rotations, sh_bytes = streams
    if version == 1:
        means = np.frombuffer(positions, dtype="<f2").reshape(n, 3).astype(np.float32)
    else:
        means = _decode_fixed24(np.frombuffer(positions, dtype=np.uint8).reshape(n, 3, 3), fractional_bits)
    opacity = ALPHA_BYTE_TO_LOGIT[np.frombuffer(alphas, dtype=np.uint8)]
    dc = COLOR_BYTE_TO_DC[np.frombuffer(colors, dtype=np.uint8).reshape(n, 3)]
    log_scales = SCALE_BYTE_TO_LOG[np.frombuffer(scales, dtype=np.uint8).reshape(n, 3)]
    raw_rotations = np.frombuffer(rotations, dtype=np.uint8)
    xyzw = _decode_first_three(raw_rotations.reshape(n, 3)) if version <= 2 else _decode_smallest_three(raw_rotations.view("<u4"))
    quats = xyzw[:, [3, 0, 1, 2]].astype(np.float32)

    kept_degree = min(degree, 3)
    sh = np.empty((n, (kept_degree + 1) ** 2, 3), dtype=np.float32)
    sh[:, 0] = dc
    if degree > 0:
        sh[:, 1:] = SH_BYTE_TO_VALUE[np.frombuffer(sh_bytes, dtype=np.uint8).reshape(n, SH_DIM[degree], 3)[:, : SH_DIM[kept_degree]]]
    if degree == 4:
        metadata.notes.append("degree-4 SH truncated to degree 3 (GaussianScene stores up to degree 3)")
    if not keep_frame:
        means, quats, sh = flip_rdf_rub(means, quats, sh, in_place=True)
    return scene_from_arrays(means, quats, log_scales, opacity, sh, metadata)


def _check_counts(path, version: int, n: int, degree: int, fractional_bits: int) -> None:
    if n > INT32_MAX:
        raise format_error(path, f"spz header declares {n} points (more than 2^31-1)")
    if degree > 4:
        raise format_error(path, f"unknown SH layout: spz SH degree {degree} (expected 0-4)")
    if fractional_bits > 24:
        raise format_error(path, f"spz fractional bits {fractional_bits} out of range (0-24)")


def _read_v4(path, data: bytes):
    if len(data) < V4_HEADER.size:
        raise format_error(path, f"truncated: {len(data)} bytes, the spz v4 header needs {V4_HEADER.size}")
    magic, version, n, degree, fractional_bits, flags, num_streams, toc_offset = V4_HEADER.unpack_from(data)
    if version != 4:
        raise format_error(path, f"unsupported spz version {version} in an NGSP (v4) container")
    _check_counts(path, version, n, degree, fractional_bits)
    if n > len(data) * 1024 // 9:
        raise format_error(path, f"spz header declares {n} points, more than a {len(data)}-byte file can hold")
    check_decoded_scene_size(path, n, (min(degree, 3) + 1) ** 2, "the spz header")
    expected = [size for size in _stream_sizes(n, degree, version) if size > 0]
    if num_streams != len(expected):
        raise format_error(path, f"spz v4 header declares {num_streams} streams; SH degree {degree} needs {len(expected)}")
    toc_end = toc_offset + num_streams * TOC_ENTRY.size
    if toc_offset < V4_HEADER.size or toc_end > len(data):
        raise format_error(path, f"truncated: spz table of contents at byte {toc_offset} does not fit in {len(data)} bytes")
    extensions = _parse_extensions(path, data[V4_HEADER.size : toc_offset]) if flags & FLAG_EXTENSIONS else []
    entries = [TOC_ENTRY.unpack_from(data, toc_offset + i * TOC_ENTRY.size) for i in range(num_streams)]
    for index, ((_, uncompressed), size) in enumerate(zip(entries, expected)):
        if uncompressed != size:
            raise format_error(path, f"spz stream {index} declares {uncompressed} bytes; {n} points need {size}")
    if toc_end + sum(c for c, _ in entries) != len(data):
        raise format_error(
            path, f"spz streams end at byte {toc_end + sum(c for c, _ in entries)} but the file has {len(data)} bytes (truncated or trailing data)"
        )
    import zstandard  # lazy: only spz v4 needs it

    streams, offset, view = [], toc_end, memoryview(data)
    for index, (compressed, uncompressed) in enumerate(entries):
        reader = zstandard.ZstdDecompressor().stream_reader(view[offset : offset + compressed])
        payload = decompress_within_budget(path, reader.read, expected=uncompressed, what=f"spz ZSTD stream {index}", errors=(zstandard.ZstdError,))
        if len(payload) != uncompressed:
            raise format_error(path, f"spz stream {index} decompresses to {len(payload)} bytes, expected {uncompressed}")
        streams.append(payload)
        offset += compressed
    # The file holds only the non-empty streams (none at all for 0 points); put the empty ones back.
    present = iter(streams)
    streams = [next(present) if size > 0 else b"" for size in _stream_sizes(n, degree, version)]
    return (version, n, degree, fractional_bits, flags), streams, extensions


def _read_legacy(path, data: bytes):
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = inflater.decompress(data, LEGACY_HEADER.size)
    except zlib.error as error:
        raise format_error(path, f"corrupt gzip stream ({error})") from None
    if len(head) < LEGACY_HEADER.size:
        raise format_error(path, "truncated: the gzip stream ends inside the spz header")
    magic, version, n, degree, fractional_bits, flags, _ = LEGACY_HEADER.unpack(head)
    if magic != SPZ_MAGIC:
        raise format_error(path, "gzip stream does not hold an spz file (no NGSP magic)")
    if not 1 <= version <= 4:
        raise format_error(path, f"unsupported spz version {version}")
    _check_counts(path, version, n, degree, fractional_bits)
    sizes = _stream_sizes(n, degree, version)
    if sum(sizes) > len(data) * MAX_DEFLATE_RATIO + 1024:
        raise format_error(path, f"spz header declares {n} points, more than a {len(data)}-byte gzip file can hold")
    check_decoded_scene_size(path, n, (min(degree, 3) + 1) ** 2, "the spz header")
    # Inflate incrementally: memory grows with the data actually present, not with the header's
    # count. Like the reference reader, data after the streams is ignored unless flagged as
    # extension records, which are small (a few hundred bytes): at most MAX_EXTENSION_BYTES.
    read = zlib_reader(inflater, inflater.unconsumed_tail)
    payload = decompress_within_budget(path, read, expected=sum(sizes), what="the spz gzip stream", errors=(zlib.error,), stop_at_expected=True)
    if len(payload) < sum(sizes):
        raise format_error(path, f"truncated: {n} points need {sum(sizes)} bytes after the header, the stream holds {len(payload)}")
    view = memoryview(payload)
    streams, offset = [], 0
    for size in sizes:
        streams.append(view[offset : offset + size])
        offset += size
    extensions = []
    if flags & FLAG_EXTENSIONS:
        block = decompress_within_budget(path, read, expected=0, margin=MAX_EXTENSION_BYTES, what="the spz extension records", errors=(zlib.error,))
        extensions = _parse_extensions(path, bytes(block))
    return (version, n, degree, fractional_bits, flags), streams, extensions


def _parse_extensions(path, block: bytes) -> list[tuple[int, int]]:
    records, offset = [], 0
    while offset < len(block):
        if offset + 8 > len(block):
            raise format_error(path, "truncated spz extension record header")
        kind, length = struct.unpack_from("<II", block, offset)
        if offset + 8 + length > len(block):
            raise format_error(path, f"spz extension 0x{kind:08X} declares {length} bytes, only {len(block) - offset - 8} remain")
        records.append((kind, length))
        offset += 8 + length
    return records


def _decode_fixed24(raw: np.ndarray, fractional_bits: int) -> np.ndarray:  # [N, 3, 3] bytes -> [N, 3]
    raw = raw.astype(np.int32)
    fixed = raw[..., 0] | (raw[..., 1] << 8) | (raw[..., 2] << 16)
    fixed = (fixed ^ 0x800000) - 0x800000  # sign-extend bit 23
    return (fixed / float(1 << fractional_bits)).astype(np.float32)


def _decode_first_three(raw: np.ndarray) -> np.ndarray:  # [N, 3] bytes -> xyzw [N, 4]
    xyz = raw / 127.5 - 1.0
    w = np.sqrt(np.maximum(0.0, 1.0 - (xyz * xyz).sum(-1)))
    return np.concatenate([xyz, w[:, None]], axis=-1)


def _decode_smallest_three(words: np.ndarray) -> np.ndarray:  # [N] uint32 -> xyzw [N, 4]
    words = words.astype(np.uint32)
    largest = (words >> 30).astype(np.int64)
    fields = np.stack([(words >> 20) & 1023, (words >> 10) & 1023, words & 1023], axis=-1)  # bit order
    values = SQRT_HALF * (fields & 511) / 511.0
    return assemble_largest_dropped(largest, np.where(fields >> 9, -values, values))


def flip_rdf_rub(means: np.ndarray, quats: np.ndarray, sh: np.ndarray, *, in_place: bool = False):
    """The 180-degree rotation about X between the PLY (RDF) and spz (RUB) frames; its own inverse.

    means [N, 3], quats [N, 4] (w, x, y, z), sh [N, K, 3] -> the flipped arrays (the inputs
    themselves when ``in_place``, which saves copying a reader's freshly decoded arrays).
    """
    if not in_place:
        means, quats, sh = means.copy(), quats.copy(), sh.copy()
    means[:, 1:] *= -1
    quats[:, 2:] *= -1
    sh[:, 1:] *= FLIP_SH_SIGNS[: sh.shape[1] - 1, None]
    return means, quats, sh


# ---------------------------------------------------------------------------------------- writing
def choose_fractional_bits(means: np.ndarray, preferred: int = 12) -> int:
    """The most fractional bits (<= preferred) whose 24-bit range holds every position (no wrap-around)."""
    largest = float(np.abs(means).max()) if means.size else 0.0
    for bits in range(preferred, -1, -1):
        if round(largest * (1 << bits)) < (1 << 23):
            return bits
    raise ValueError(f"positions up to {largest:.3g} do not fit spz's 24-bit fixed point even without fractional bits")


def encode_fixed24(means: np.ndarray, fractional_bits: int) -> np.ndarray:  # [N, 3] -> [N, 9] bytes
    scaled = means.astype(np.float64) * (1 << fractional_bits)
    fixed = np.trunc(scaled + np.copysign(0.5, scaled)).astype(np.int64) & 0xFFFFFF
    return np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=-1).astype(np.uint8).reshape(len(means), 9)


def encode_first_three(xyzw: np.ndarray) -> np.ndarray:  # unit [N, 4] -> [N, 3] bytes
    sign = np.where(xyzw[:, 3:4] < 0, -1.0, 1.0)
    return to_uint8_rounded(xyzw[:, :3] * sign * 127.5 + 127.5)


def encode_smallest_three(xyzw: np.ndarray) -> np.ndarray:  # unit [N, 4] -> [N] uint32
    largest = np.abs(xyzw).argmax(-1)  # first index wins ties
    rows = np.arange(len(xyzw))
    negate = xyzw[rows, largest] < 0
    others = xyzw[rows[:, None], OTHER_COMPONENTS[largest]]  # [N, 3] in increasing index order
    magnitude = np.minimum(np.floor(511.0 * np.abs(others) / SQRT_HALF + 0.5), 511).astype(np.uint32)
    sign = ((others < 0) ^ negate[:, None]).astype(np.uint32)
    fields = (sign << 9) | magnitude
    return (largest.astype(np.uint32) << 30) | (fields[:, 0] << 20) | (fields[:, 1] << 10) | fields[:, 2]


def quantize_sh(values: np.ndarray, bits: int) -> np.ndarray:
    """spz SH byte: round(v*128)+128 snapped to 2^(8-bits) buckets, clamped to [0, 255]."""
    if not 1 <= bits <= 8:
        raise ValueError(f"SH bits must be 1-8, got {bits}")
    # float32 is exact here: v is clipped to +-2, so v*128 and the +-0.5 are representable.
    scaled = np.clip(values.astype(np.float32, copy=False), -2.0, 2.0) * np.float32(128.0)
    scaled += np.copysign(np.float32(0.5), scaled)
    code = np.clip(np.trunc(scaled, out=scaled) + 128.0, 0, 255).astype(np.uint8)  # round half away from zero
    bucket = 1 << (8 - bits)
    snapped = np.minimum((np.arange(256) + bucket // 2) // bucket * bucket, 255).astype(np.uint8)
    return snapped[code]


def write_spz(
    scene: GaussianScene,
    path,
    *,
    version: int = 4,
    keep_frame: bool = False,
    sh1_bits: int = 5,
    sh_rest_bits: int = 4,
    compression_level: int = 3,
) -> None:
    """Write ``scene`` as ``.spz`` (version 4 by default; 3 or 2 make a gzip'd legacy file).

    ``keep_frame=False`` converts the scene from the PLY frame to spz's RUB frame (180 degrees
    about X), which the reader undoes by default. ``compression_level`` is the ZSTD level of
    version 4 streams (3 writes ~3x faster than the reference writer's 12 for ~15% larger files)
    and the gzip level (at most 9) of versions 2-3.
    """
    if version not in (2, 3, 4):
        raise ValueError(f"spz version must be 2, 3 or 4 for writing, got {version}")
    if len(scene) == 0:
        warnings.warn("writing an empty spz (0 points): lyra-sim reads it, Niantic's reference reader rejects it", stacklevel=3)
    arrays = scene_to_arrays(scene)
    means, quats, sh = arrays["means"], arrays["quats"], arrays["sh"]
    if not keep_frame:
        means, quats, sh = flip_rdf_rub(means, quats, sh)
    n, degree = len(scene), scene.sh_degree
    fractional_bits = choose_fractional_bits(means)
    xyzw = normalized_quaternions(quats)[:, [1, 2, 3, 0]]
    rest = sh[:, 1:].reshape(n, 3 * (sh.shape[1] - 1))  # coefficient-major, channel fastest: the spz order
    streams = [
        encode_fixed24(means, fractional_bits).tobytes(),
        to_uint8_rounded(logit_to_alpha(arrays["opacity_logits"]) * 255.0).tobytes(),
        to_uint8_rounded(sh[:, 0].astype(np.float64) * (COLOR_SCALE * 255.0) + 0.5 * 255.0).tobytes(),
        to_uint8_rounded((arrays["log_scales"].astype(np.float64) + 10.0) * 16.0).tobytes(),
        (encode_first_three(xyzw) if version == 2 else encode_smallest_three(xyzw).astype("<u4")).tobytes(),
        np.concatenate([quantize_sh(rest[:, :9], sh1_bits), quantize_sh(rest[:, 9:], sh_rest_bits)], axis=1).tobytes(),
    ]
    with open(path, "wb") as handle:
        if version == 4:
            import zstandard  # lazy: only spz v4 needs it

            streams = [s for s in streams if s]
            compressor = zstandard.ZstdCompressor(level=compression_level)
            compressed = [compressor.compress(s) for s in streams]
            handle.write(V4_HEADER.pack(SPZ_MAGIC, 4, n, degree, fractional_bits, 0, len(streams), V4_HEADER.size))
            handle.write(b"".join(TOC_ENTRY.pack(len(c), len(s)) for c, s in zip(compressed, streams)))
            for chunk in compressed:
                handle.write(chunk)
        else:
            header = LEGACY_HEADER.pack(SPZ_MAGIC, version, n, degree, fractional_bits, 0, 0)
            deflater = zlib.compressobj(min(compression_level, 9), zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9)
            handle.write(deflater.compress(header))
            for stream in streams:
                handle.write(deflater.compress(stream))
            handle.write(deflater.flush())


FORMAT = SceneFormatSpec(
    "spz", lambda path, head: is_spz(head), reading_bytes(read_spz), write_spz, extensions=(".spz",), max_sh_degree=3,
    read_options=("keep_frame",), write_options=("version", "keep_frame", "sh1_bits", "sh_rest_bits", "compression_level"),
)

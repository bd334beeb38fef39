"""PlayCanvas / SuperSplat ``compressed.ply``: reader and writer (FORMATS.md 3).

Splats come in chunks of 256 (the last may be shorter) with per-chunk float ranges; each splat
is four packed uint32 words (position 11-10-11, rotation 2-10-10-10 largest-dropped in w,x,y,z
order, log-scale 11-10-11, colour RGBA 8-8-8-8) plus optional uint8 SH in [-4, 4].
Both chunk variants are read: 18 floats (colour range) and the older 12 (absolute colour).
The writer follows splat-transform: 18-float chunks, splats in 3-D Morton order by default
(compact chunks keep the 11/10/11-bit positions precise), SH bytes (v/8 + 0.5)*256 truncated.
"""

from __future__ import annotations

import math

import numpy as np

from lyra_sim.scene.formats._common import (
    ALPHA_BYTE_TO_LOGIT,
    OTHER_COMPONENTS,
    brief_list,
    assemble_largest_dropped,
    byte_table,
    channel_major_rest_to_sh,
    color_to_dc,
    dc_to_color,
    format_error,
    logit_to_alpha,
    normalized_quaternions,
    scene_from_arrays,
    scene_to_arrays,
    sh_to_channel_major_rest,
)
from lyra_sim.scene.formats.ply_container import PlyHeader, element_matrix, is_ply, parse_ply_header, ply_header_text, read_ply_elements
from lyra_sim.scene.formats.ply import REST_COUNT_TO_DEGREE
from lyra_sim.scene.formats.spec import SceneFormatSpec, reading_bytes
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.sh import num_sh_bases

CHUNK_SIZE = 256
CHUNK_PROPERTIES = [
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
    "min_r", "min_g", "min_b", "max_r", "max_g", "max_b",
]  # fmt: skip
PACKED_PROPERTIES = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]


def is_compressed_header(header: PlyHeader) -> bool:
    vertex = header.element("vertex")
    return vertex is not None and vertex.property("packed_position") is not None


def _check_layout(header: PlyHeader, path) -> tuple[int, int]:
    """Validate the element layout; returns (chunk property count, SH rest count)."""
    if header.encoding != "binary_little_endian":
        raise format_error(path, f"compressed PLY must be binary_little_endian, not {header.encoding}")
    chunk, vertex, sh = header.element("chunk"), header.element("vertex"), header.element("sh")
    if chunk is None or vertex is None:
        raise format_error(path, "compressed PLY needs 'chunk' and 'vertex' elements")
    names = chunk.property_names
    if names not in (CHUNK_PROPERTIES[:12], CHUNK_PROPERTIES) or any(p.dtype != "f4" for p in chunk.properties):
        raise format_error(path, f"compressed PLY chunk element must have the 12 or 18 float ranges of FORMATS.md 3.1, got {brief_list(names)}")
    if vertex.property_names != PACKED_PROPERTIES or any(p.dtype != "u4" for p in vertex.properties):
        raise format_error(path, f"compressed PLY vertex element must be uint {PACKED_PROPERTIES}, got {brief_list(vertex.property_names)}")
    expected_chunks = math.ceil(vertex.count / CHUNK_SIZE)
    if chunk.count != expected_chunks:
        raise format_error(path, f"compressed PLY has {chunk.count} chunks; {vertex.count} splats need {expected_chunks}")
    rest = 0
    if sh is not None:
        rest = len(sh.properties)
        if rest not in (0, 9, 24, 45) or sh.property_names != [f"f_rest_{i}" for i in range(rest)]:
            raise format_error(path, f"unknown SH layout: compressed PLY 'sh' element has properties {brief_list(sh.property_names)}")
        if any(p.dtype != "u1" for p in sh.properties):
            raise format_error(path, "compressed PLY SH properties must be uchar")
        if sh.count != vertex.count:
            raise format_error(path, f"compressed PLY 'sh' has {sh.count} records for {vertex.count} splats")
    return len(names), rest


def _unpack_unorm(words: np.ndarray, shift: int, bits: int) -> np.ndarray:  # float32 in [0, 1]
    return ((words >> shift) & ((1 << bits) - 1)).astype(np.float32) / np.float32((1 << bits) - 1)


def _unpack_111011(words: np.ndarray) -> np.ndarray:  # [N] -> [N, 3] in [0, 1]
    return np.stack([_unpack_unorm(words, 21, 11), _unpack_unorm(words, 11, 10), _unpack_unorm(words, 0, 11)], axis=-1)


def _lerp(low: np.ndarray, high: np.ndarray, t: np.ndarray) -> np.ndarray:
    return low * (1.0 - t) + high * t


def decode_rotations(words: np.ndarray) -> np.ndarray:  # [N] uint32 -> [N, 4] (w, x, y, z)
    largest = (words >> 30).astype(np.int64)
    values = (np.stack([_unpack_unorm(words, 20, 10), _unpack_unorm(words, 10, 10), _unpack_unorm(words, 0, 10)], -1) - 0.5) * math.sqrt(2.0)
    return assemble_largest_dropped(largest, values)


# SH byte -> value, splat-transform's decoder (bucket centres, matching the writer's truncation).
SH_BYTE_TO_VALUE = byte_table(lambda b: (np.where(b == 0, 0.0, np.where(b == 255, 1.0, (b + 0.5) / 256.0)) - 0.5) * 8.0)


def read_compressed_ply(path, data: bytes) -> GaussianScene:
    """Decode a compressed PLY held in ``data``."""
    header = parse_ply_header(data, path)
    chunk_width, rest_count = _check_layout(header, path)
    tables = read_ply_elements(data, header, path, {"chunk", "vertex", "sh"} if rest_count else {"chunk", "vertex"})
    chunks = element_matrix(tables["chunk"]).astype(np.float32)  # [C, 12 or 18]
    words = element_matrix(tables["vertex"]).astype(np.uint32)  # [N, 4]: position, rotation, scale, colour
    n = len(words)
    chunk_of = np.arange(n) // CHUNK_SIZE  # splat i belongs to chunk floor(i / 256)
    in_range = lambda low, high, t: _lerp(chunks[chunk_of, low : low + 3], chunks[chunk_of, high : high + 3], t)  # noqa: E731

    means = in_range(0, 3, _unpack_111011(words[:, 0]))
    log_scales = in_range(6, 9, _unpack_111011(words[:, 2]))
    rgb = np.stack([_unpack_unorm(words[:, 3], shift, 8) for shift in (24, 16, 8)], axis=-1)
    if chunk_width == 18:
        rgb = in_range(12, 15, rgb)
    opacity = ALPHA_BYTE_TO_LOGIT[words[:, 3] & 255]

    degree = REST_COUNT_TO_DEGREE[rest_count]
    sh = np.empty((n, (degree + 1) ** 2, 3), dtype=np.float32)
    sh[:, 0] = color_to_dc(rgb)
    if rest_count:
        sh[:, 1:] = channel_major_rest_to_sh(SH_BYTE_TO_VALUE[element_matrix(tables["sh"])])
    metadata = SceneMetadata(source=str(path), format="compressed_ply", frame="unknown")
    if chunk_width == 12:
        metadata.notes.append("old compressed PLY variant (12 chunk floats): colours are absolute")
    return scene_from_arrays(means, decode_rotations(words[:, 1]), log_scales, opacity, sh, metadata)


# ---------------------------------------------------------------------------------------- writing
def morton_order(means: np.ndarray) -> np.ndarray:  # [N, 3] -> [N] permutation
    """Indices sorting points along a 3-D Morton (Z-order) curve of 10 bits per axis."""
    low, high = means.min(0), means.max(0)
    cells = ((means - low) / np.maximum(high - low, 1e-12) * 1023).astype(np.uint64)
    code = np.zeros(len(means), dtype=np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def _pack_unorm(t: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(t * top + 0.5), 0, top).astype(np.uint32)


def _normalize_in_range(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(v - low) / (high - low) in [0, 1]; 0 where the range is degenerate (splat-transform's guard)."""
    extent = high - low
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(extent < 1e-5, 0.0, (values - low) / np.where(extent < 1e-5, 1.0, extent))
    return np.clip(t, 0.0, 1.0)


def _pack_111011(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:  # [N, 3] -> [N]
    t = _normalize_in_range(values, low, high)
    return (_pack_unorm(t[:, 0], 11) << 21) | (_pack_unorm(t[:, 1], 10) << 11) | _pack_unorm(t[:, 2], 11)


def encode_rotations(quats: np.ndarray) -> np.ndarray:  # unit [N, 4] (w, x, y, z) -> [N] uint32
    largest = np.abs(quats).argmax(-1)
    rows = np.arange(len(quats))
    signed = quats * np.where(quats[rows, largest] < 0, -1.0, 1.0)[:, None]
    others = signed[rows[:, None], OTHER_COMPONENTS[largest]] * math.sqrt(0.5) + 0.5
    fields = _pack_unorm(others, 10)
    return (largest.astype(np.uint32) << 30) | (fields[:, 0] << 20) | (fields[:, 1] << 10) | fields[:, 2]


def write_compressed_ply(scene: GaussianScene, path, *, sort: bool = True) -> None:
    """Write ``scene`` as a compressed PLY (18-float chunks); ``sort`` reorders splats in Morton order."""
    arrays = scene_to_arrays(scene)
    n, degree = len(scene), scene.sh_degree
    if n == 0:  # an empty scene: 0 chunks, 0 vertices (and an empty 'sh' element for degree > 0)
        elements = [("chunk", 0, [("float", name) for name in CHUNK_PROPERTIES]), ("vertex", 0, [("uint", name) for name in PACKED_PROPERTIES])]
        if degree > 0:
            elements.append(("sh", 0, [("uchar", f"f_rest_{i}") for i in range(3 * (num_sh_bases(degree) - 1))]))
        with open(path, "wb") as handle:
            handle.write(ply_header_text("binary_little_endian", elements, ["Generated by lyra-sim"]))
        return
    order = morton_order(arrays["means"].astype(np.float64)) if sort else np.arange(n)
    means = arrays["means"][order].astype(np.float64)
    log_scales = arrays["log_scales"][order].astype(np.float64)
    colors = dc_to_color(arrays["sh"][order, 0])
    chunks = math.ceil(n / CHUNK_SIZE)
    # Pad the last chunk with copies of the last splat: ranges are unchanged, reshape is possible.
    padded = np.concatenate([np.arange(n), np.full(chunks * CHUNK_SIZE - n, n - 1)])
    per_chunk = lambda values: values[padded].reshape(chunks, CHUNK_SIZE, -1)  # noqa: E731
    position_low, position_high = per_chunk(means).min(1), per_chunk(means).max(1)
    scale_low = np.clip(per_chunk(log_scales).min(1), -20.0, 20.0)
    scale_high = np.clip(per_chunk(log_scales).max(1), -20.0, 20.0)
    color_low, color_high = per_chunk(colors).min(1), per_chunk(colors).max(1)
    chunk_of = np.arange(n) // CHUNK_SIZE

    vertex = np.empty((n, 4), dtype="<u4")
    vertex[:, 0] = _pack_111011(means, position_low[chunk_of], position_high[chunk_of])
    vertex[:, 1] = encode_rotations(normalized_quaternions(arrays["quats"][order]))
    vertex[:, 2] = _pack_111011(log_scales, scale_low[chunk_of], scale_high[chunk_of])
    rgb = _normalize_in_range(colors, color_low[chunk_of], color_high[chunk_of])
    alpha = logit_to_alpha(arrays["opacity_logits"][order])
    vertex[:, 3] = (_pack_unorm(rgb[:, 0], 8) << 24) | (_pack_unorm(rgb[:, 1], 8) << 16) | (_pack_unorm(rgb[:, 2], 8) << 8) | _pack_unorm(alpha, 8)

    chunk_table = np.concatenate([position_low, position_high, scale_low, scale_high, color_low, color_high], axis=1).astype("<f4")
    elements = [
        ("chunk", chunks, [("float", name) for name in CHUNK_PROPERTIES]),
        ("vertex", n, [("uint", name) for name in PACKED_PROPERTIES]),
    ]
    sh_bytes = None
    if degree > 0:
        rest = sh_to_channel_major_rest(arrays["sh"][order, 1:])
        sh_bytes = np.clip(np.trunc((rest.astype(np.float64) / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8)
        elements.append(("sh", n, [("uchar", f"f_rest_{i}") for i in range(rest.shape[1])]))
    with open(path, "wb") as handle:
        handle.write(ply_header_text("binary_little_endian", elements, ["Generated by lyra-sim"]))
        chunk_table.tofile(handle)
        vertex.tofile(handle)
        if sh_bytes is not None:
            sh_bytes.tofile(handle)


def sniff(path, head: bytes) -> bool:
    return is_ply(head) and is_compressed_header(parse_ply_header(head, path))


FORMAT = SceneFormatSpec("compressed_ply", sniff, reading_bytes(read_compressed_ply), write_compressed_ply,
                         extensions=(".compressed.ply",), max_sh_degree=3, write_options=("sort",))

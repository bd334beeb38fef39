"""antimatter15 ``.splat``: headerless 32-byte records, reader and writer (FORMATS.md 4).

Record: position 3 x float32, linear scale 3 x float32, RGBA uint8 (base colour and sigmoid
opacity), quaternion w, x, y, z as uint8 (q*128 + 128). SH beyond DC is not stored.
Quantisation: colour and alpha 1/255 (rounded), quaternion components 1/128 (renormalised on
read); positions and scales are exact float32 (scales pass through exp/log).
"""

from __future__ import annotations

import numpy as np

from lyra_sim.scene.formats._common import (
    ALPHA_BYTE_TO_LOGIT,
    byte_table,
    color_to_dc,
    dc_to_color,
    file_size,
    format_error,
    logit_to_alpha,
    normalized_quaternions,
    scene_from_arrays,
    scene_to_arrays,
    to_uint8_rounded,
)
from lyra_sim.scene.formats.spec import SceneFormatSpec, reading_bytes
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])
assert RECORD.itemsize == 32
COLOR_BYTE_TO_DC = byte_table(lambda b: color_to_dc(b / 255.0))
ROTATION_BYTE_TO_VALUE = byte_table(lambda b: b / 128.0 - 1.0)


def looks_like_splat(path, head: bytes, size: int) -> bool:
    """A content check for a format without magic: size a multiple of 32 and sane first records."""
    if size == 0 or size % RECORD.itemsize:
        return False
    count = min(len(head), size) // RECORD.itemsize
    if count == 0:
        return False
    records = np.frombuffer(head, dtype=RECORD, count=count)
    return bool(
        np.isfinite(records["position"]).all()
        and np.isfinite(records["scale"]).all()
        and (records["scale"] > 0).all()
        and (records["scale"] < 1e6).all()
        and (np.abs(records["position"]) < 1e9).all()
    )


def read_splat(path, data: bytes) -> GaussianScene:
    """Decode a ``.splat`` file held in ``data`` (an empty file is an empty scene)."""
    if len(data) % RECORD.itemsize:
        raise format_error(path, f"truncated: {len(data)} bytes is not a multiple of the 32-byte .splat record")
    records = np.frombuffer(data, dtype=RECORD)
    scale = records["scale"]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_scales = np.log(scale.astype(np.float64)).astype(np.float32)  # non-positive -> -inf/NaN, caught by validation
    rgba = records["rgba"]
    quats = normalized_quaternions(ROTATION_BYTE_TO_VALUE[records["rotation"]]).astype(np.float32)
    metadata = SceneMetadata(source=str(path), format="splat", frame="unknown")
    metadata.notes.append(".splat stores no SH beyond DC and no frame; read as the source PLY's frame")
    return scene_from_arrays(
        records["position"], quats, log_scales, ALPHA_BYTE_TO_LOGIT[rgba[:, 3]], COLOR_BYTE_TO_DC[rgba[:, None, :3]], metadata
    )


def write_splat(scene: GaussianScene, path) -> None:
    """Write ``scene`` (its DC colour only) as ``.splat`` records in the scene's order."""
    arrays = scene_to_arrays(scene)
    records = np.empty(len(scene), dtype=RECORD)
    records["position"] = arrays["means"]
    records["scale"] = np.exp(arrays["log_scales"].astype(np.float64))
    records["rgba"][:, :3] = to_uint8_rounded(dc_to_color(arrays["sh"][:, 0]) * 255.0)
    records["rgba"][:, 3] = to_uint8_rounded(logit_to_alpha(arrays["opacity_logits"]) * 255.0)
    records["rotation"] = to_uint8_rounded(normalized_quaternions(arrays["quats"]) * 128.0 + 128.0)
    with open(path, "wb") as handle:
        handle.write(records.tobytes())


def sniff(path, head: bytes) -> bool:
    return looks_like_splat(path, head, file_size(path))


def unsniffed(path) -> None:
    if file_size(path) == 0:
        return  # headerless records: an empty .splat file is an empty scene (what write_splat makes of one)
    raise format_error(path, f"not a valid .splat file ({file_size(path)} bytes; records must be 32 bytes with finite positive scales)")


FORMAT = SceneFormatSpec("splat", sniff, reading_bytes(read_splat), write_splat, extensions=(".splat",), max_sh_degree=0,
                         unsniffed=unsniffed)

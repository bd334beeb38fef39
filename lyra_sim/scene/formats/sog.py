"""PlayCanvas SOG ("Spatially Ordered Gaussians"): reader for versions 1 and 2, writer for version 2.

A SOG is a ``meta.json`` plus 8-bit RGBA images (lossless WebP), either as files in one folder
or zipped at the root of a ``.sog`` archive (FORMATS.md 10). Texel ``i`` (row-major from the
top-left) of every per-Gaussian image belongs to Gaussian ``i``. The data is in the PLY frame.

- means: two images (low and high byte) of 16-bit values lerped between per-axis ``mins``/``maxs``
  in the log domain, position = sign(n) (exp|n| - 1).
- quats: smallest-three, 3 bytes (v/255*2-1)/sqrt(2) and a tag byte 252 + index of the dropped
  (largest, non-negative) component in PLY rot_0..rot_3 (w, x, y, z) order.
- v2: scales and sh0 bytes index 256-entry codebooks (log-sigma, f_dc), the sh0 alpha is
  sigmoid(opacity)*255; shN is a palette (k-means centroids, each value a byte through a third
  codebook) addressed by a 16-bit label per Gaussian.
- v1: per-channel linear ranges instead of codebooks; the sh0 alpha is the opacity *logit* lerped
  between mins[3] and maxs[3]; shN bytes lerp between scalar mins and maxs, bands come from the
  centroid image width.

Quantisation of the writer (version 2), the round-trip error it makes:
positions 16 bits per axis in the log domain (relative error <= span/65535/2 of |x|+1, e.g.
< 1e-4 relative for |x| <= 20); quaternion components in steps of sqrt(2)/255 (rotation error < 1 degree, ~0.35 mean);
log-scales and f_dc through 256-entry 1-D k-means codebooks (on a trained scene: log-scale
error RMS 0.012, max 0.15; f_dc RMS 0.004); opacity 1/255 in alpha; shN: a k-means palette of ``palette_size`` entries (the error
depends on the data and the palette; the benchmark reports it) with 256-entry value codebook.

This module may import numpy, torch, Pillow, ``lyra_sim.scene`` and ``lyra_sim.errors``.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lyra_sim.scene.formats._common import (
    ALPHA_BYTE_TO_LOGIT,
    assemble_largest_dropped,
    format_error,
    logit_to_alpha,
    normalized_quaternions,
    read_file_bytes,
    read_file_head,
    scene_from_arrays,
    scene_to_arrays,
    sniff_json,
    to_uint8_rounded,
    zip_names,
)
from lyra_sim.scene.formats.compressed_ply import morton_order
from lyra_sim.scene.formats.spec import SceneFormatSpec
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata

ZIP_MAGIC = b"PK\x03\x04"
META_NAME = "meta.json"
MAX_META_BYTES = 64 << 20  # a version-2 meta.json is a few kB (three 256-float codebooks)
# Per image: 8192 x 8192 texels (67 M Gaussians, 256 MiB decoded), below Pillow's bomb limit.
MAX_TEXELS = 1 << 26
# A compressed image may not claim more than this many decoded bytes per stored byte.
MAX_IMAGE_EXPANSION = 4096
SH_COEFFICIENTS_PER_BAND = (0, 3, 8, 15)  # K for bands 0..3
V1_BANDS_BY_CENTROID_WIDTH = {64 * 3: 1, 64 * 8: 2, 64 * 15: 3}
PALETTE_ENTRIES_PER_ROW = 64
SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------------------- sources
class SogSource:
    """The files of one SOG: ``meta.json`` and the images it names, from a folder or a ``.sog`` zip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive: zipfile.ZipFile | None = None
        if path.is_dir():
            self.folder, meta_name = path, META_NAME
        elif path.is_file() and read_file_head(path, 4) == ZIP_MAGIC:
            self.folder, meta_name = None, META_NAME
            try:
                self.archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
                raise format_error(path, f"not a readable .sog zip archive: {error}") from None
        else:
            self.folder, meta_name = path.parent, path.name
        raw = self.read(meta_name, MAX_META_BYTES)
        try:
            meta = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise format_error(path, f"{meta_name} is not valid JSON: {error}") from None
        if not isinstance(meta, dict):
            raise format_error(path, f"{meta_name} holds a {type(meta).__name__}, not a JSON object")
        self.meta: dict[str, Any] = meta

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()

    def read(self, name: str, limit: int) -> bytes:
        """The bytes of the file ``name`` (a plain name in the SOG's root), at most ``limit`` of them."""
        if not isinstance(name, str) or not name or name != Path(name).name or name in (".", ".."):
            raise format_error(self.path, f"file name {name!r} in meta.json is not a plain file name in the SOG's root")
        if self.archive is None:
            file = self.folder / name
            if not file.is_file():
                raise format_error(self.path, f"the file {name!r} named in meta.json is missing from {self.folder}")
            if file.stat().st_size > limit:
                raise format_error(self.path, f"{name} is {file.stat().st_size} bytes, more than the {limit} allowed")
            return read_file_bytes(file)
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise format_error(self.path, f"the archive has no entry {name!r} (entries: {self.archive.namelist()[:20]})") from None
        if info.file_size > limit:
            raise format_error(self.path, f"archive entry {name} declares {info.file_size} bytes, more than the {limit} allowed")
        try:
            with self.archive.open(info) as handle:
                data = handle.read(limit + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as error:
            raise format_error(self.path, f"cannot extract {name}: {type(error).__name__}: {error}") from None
        if len(data) > limit:
            raise format_error(self.path, f"archive entry {name} inflates past the {limit} bytes allowed")
        return data


def looks_like_sog_meta(meta: Any) -> bool:
    return isinstance(meta, dict) and isinstance(meta.get("means"), dict) and isinstance(meta.get("quats"), dict)


def is_sog(path: Path, head: bytes) -> bool:
    """A folder holding a SOG meta.json, a SOG meta.json itself, or a zip with meta.json at its root."""
    if path.is_dir():
        meta = path / META_NAME
        return meta.is_file() and is_sog(meta, read_file_head(meta, 4096))
    names = zip_names(path, head)
    if names is not None:
        return META_NAME in names
    return looks_like_sog_meta(sniff_json(path, head, MAX_META_BYTES))


# ---------------------------------------------------------------------------------------- images
def webp_is_lossy(data: bytes) -> bool:
    """True when a WebP holds a lossy ('VP8 ') bitstream; lossless is 'VP8L'."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    offset = 12
    while offset + 8 <= len(data):
        fourcc, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        if fourcc == b"VP8 ":
            return True
        if fourcc == b"VP8L":
            return False
        offset += 8 + size + (size & 1)
    return False


class _ImageReader:
    """Decodes the SOG's images with Pillow, checking declared sizes before decoding anything."""

    def __init__(self, source: SogSource, notes: list[str]) -> None:
        self.source, self.notes = source, notes

    def __call__(self, name: str, *, min_texels: int, max_texels: int) -> tuple[np.ndarray, int, int]:
        """RGBA bytes [height * width, 4] of image ``name``, its width and height."""
        from PIL import Image, UnidentifiedImageError

        path = self.source.path
        max_texels = min(max_texels, MAX_TEXELS)
        data = self.source.read(name, max(4096, max_texels * 4 + 4096))
        if webp_is_lossy(data):
            self.notes.append(f"{name} is lossy WebP: its quantised values are not exact (SOG requires lossless images)")
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ("WEBP", "PNG"):
                    raise format_error(path, f"{name} is a {image.format} image; SOG images are lossless WebP (or PNG)")
                width, height = image.size
                texels = width * height
                if texels > max_texels or texels * 4 > MAX_IMAGE_EXPANSION * max(len(data), 1):
                    raise format_error(path, f"{name} declares {width}x{height} texels, more than the {max_texels} this SOG can need")
                if texels < min_texels:
                    raise format_error(path, f"{name} has {width}x{height} = {texels} texels, fewer than the {min_texels} needed")
                rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
            raise format_error(path, f"cannot decode image {name}: {type(error).__name__}: {error}") from None
        return rgba.reshape(-1, 4), width, height


# ---------------------------------------------------------------------------------------- meta fields
def _field(path, meta: dict, dotted: str, kind: str, length: int | None = None):
    """Fetch ``a.b.c`` from ``meta`` and check its type: 'numbers', 'number', 'int', 'files', 'dict'."""
    value: Any = meta
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise format_error(path, f"meta.json has no {dotted!r}")
        value = value[key]
    if kind == "dict":
        if not isinstance(value, dict):
            raise format_error(path, f"meta.json {dotted!r} must be an object, got {type(value).__name__}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise format_error(path, f"meta.json {dotted!r} must be a non-negative integer, got {value!r}"[:300])
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise format_error(path, f"meta.json {dotted!r} must be a finite number, got {value!r}"[:300])
        return float(value)
    if kind == "files":
        if not isinstance(value, list) or len(value) < (length or 1) or not all(isinstance(v, str) for v in value):
            raise format_error(path, f"meta.json {dotted!r} must list {length or 1} file name(s), got {value!r}"[:300])
        return value
    # numbers
    if (
        not isinstance(value, list)
        or (length is not None and len(value) != length)
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        expected = f"{length} finite numbers" if length is not None else "finite numbers"
        raise format_error(path, f"meta.json {dotted!r} must be {expected}, got {str(value)[:200]}")
    return np.asarray(value, dtype=np.float64)


def _codebook(path, meta: dict, dotted: str) -> np.ndarray:  # [256] float64, NaN beyond the stored entries
    values = _field(path, meta, dotted, "numbers")
    if not 1 <= len(values) <= 256:
        raise format_error(path, f"meta.json {dotted!r} must hold 1 to 256 values, got {len(values)}")
    table = np.full(256, np.nan)
    table[: len(values)] = values
    return table


def _lookup(path, table: np.ndarray, indices: np.ndarray, what: str) -> np.ndarray:
    values = table[indices]
    if np.isnan(values).any():
        raise format_error(path, f"{what} bytes index past the end of its codebook")
    return values


# ---------------------------------------------------------------------------------------- reading
def read_sog(path) -> GaussianScene:
    """Decode a SOG given as its folder, its ``meta.json`` or a ``.sog`` archive."""
    path = Path(path)
    source = SogSource(path)
    try:
        return _decode(path, source)
    finally:
        source.close()


def _decode(path: Path, source: SogSource) -> GaussianScene:
    meta = source.meta
    if not looks_like_sog_meta(meta):
        raise format_error(path, "meta.json is not a SOG description (no 'means' and 'quats' objects)")
    version = meta.get("version")
    if version is None:
        version = 1
    elif version != 2:
        raise format_error(path, f"unsupported SOG version {version!r} (this reader knows versions 1 and 2)"[:200])
    if version == 2:
        count = _field(path, meta, "count", "int")
    else:
        shape = _field(path, meta, "means.shape", "numbers")
        if len(shape) < 1 or shape[0] < 0 or shape[0] != int(shape[0]):
            raise format_error(path, f"meta.json 'means.shape' must start with the Gaussian count, got {shape.tolist()}")
        count = int(shape[0])
    if count > MAX_TEXELS:
        raise format_error(path, f"meta.json declares {count} Gaussians, more than the {MAX_TEXELS} supported")
    notes: list[str] = []
    image = _ImageReader(source, notes)
    # Writers pad each side to a multiple of 4; allow any layout up to twice the count plus slack.
    texels = {"min_texels": count, "max_texels": 2 * count + 65536}

    means = _decode_means(path, meta, image, count, texels)
    quats = _decode_quats(path, meta, image, count, texels, notes, version)
    if version == 2:
        log_scales, dc, opacity = _decode_v2_scales_colours(path, meta, image, count, texels)
    else:
        log_scales, dc, opacity = _decode_v1_scales_colours(path, meta, image, count, texels)
    rest = _decode_shn(path, meta, image, count, texels, version, notes)
    sh = np.concatenate([dc[:, None, :], rest], axis=1) if rest is not None else dc[:, None, :]

    known = {"version", "count", "antialias", "asset", "means", "scales", "quats", "sh0", "shN", "lyra_sim"}
    skipped = sorted(key for key in meta if key not in known)
    ours = meta.get("lyra_sim") if isinstance(meta.get("lyra_sim"), dict) else {}
    frame = ours.get("frame") if isinstance(ours.get("frame"), str) else "unknown"
    metadata = SceneMetadata(source=str(path), format="sog", frame=frame, metric=ours.get("metric") is True, notes=notes)
    metadata.extras["format_version"] = version
    metadata.extras["container"] = "zip" if source.archive is not None else "folder"
    if skipped:
        metadata.extras["skipped_extensions"] = skipped
        notes.append(f"ignored meta.json fields: {', '.join(skipped)}"[:300])
    if isinstance(meta.get("antialias"), bool):
        metadata.extras["antialias"] = meta["antialias"]
    if version == 1:
        notes.append("SOG version 1 (legacy): per-channel ranges instead of codebooks")
    return scene_from_arrays(means, quats, log_scales, opacity, sh, metadata)


def _decode_means(path, meta, image, count, texels) -> np.ndarray:  # [N, 3]
    files = _field(path, meta, "means.files", "files", 2)
    mins = _field(path, meta, "means.mins", "numbers", 3)
    maxs = _field(path, meta, "means.maxs", "numbers", 3)
    low, width, height = image(files[0], **texels)
    high, width_high, height_high = image(files[1], **texels)
    if (width, height) != (width_high, height_high):
        raise format_error(path, f"means images differ in size: {width}x{height} and {width_high}x{height_high}")
    quantised = low[:count, :3].astype(np.float64) + high[:count, :3].astype(np.float64) * 256.0
    span = np.where(maxs == mins, 1.0, maxs - mins)
    logged = mins + span * (quantised / 65535.0)
    return (np.sign(logged) * np.expm1(np.abs(logged))).astype(np.float32)


def _decode_quats(path, meta, image, count, texels, notes, version) -> np.ndarray:  # [N, 4] (w, x, y, z)
    encoding = meta["quats"].get("encoding")
    if version == 1 and encoding is not None and encoding != "quaternion_packed":
        raise format_error(path, f"unsupported quaternion encoding {encoding!r} (only 'quaternion_packed')"[:200])
    files = _field(path, meta, "quats.files", "files", 1)
    packed, _, _ = image(files[0], **texels)
    packed = packed[:count]
    tags = packed[:, 3].astype(np.int64)
    valid = (tags >= 252) & (tags <= 255)
    others = (packed[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0) / SQRT2
    quats = assemble_largest_dropped(np.where(valid, tags - 252, 0), others)
    invalid = int((~valid).sum())
    if invalid:
        quats[~valid] = (1.0, 0.0, 0.0, 0.0)
        notes.append(f"{invalid} quaternion tag(s) outside 252-255 read as the identity rotation")
    return quats.astype(np.float32)


def _decode_v2_scales_colours(path, meta, image, count, texels):
    scale_table = _codebook(path, meta, "scales.codebook")
    colour_table = _codebook(path, meta, "sh0.codebook")
    scales, _, _ = image(_field(path, meta, "scales.files", "files", 1)[0], **texels)
    colours, _, _ = image(_field(path, meta, "sh0.files", "files", 1)[0], **texels)
    log_scales = _lookup(path, scale_table, scales[:count, :3], "scales")
    dc = _lookup(path, colour_table, colours[:count, :3], "sh0")
    return log_scales, dc, ALPHA_BYTE_TO_LOGIT[colours[:count, 3]]


def _decode_v1_scales_colours(path, meta, image, count, texels):
    scale_low, scale_high = _field(path, meta, "scales.mins", "numbers", 3), _field(path, meta, "scales.maxs", "numbers", 3)
    colour_low, colour_high = _field(path, meta, "sh0.mins", "numbers", 4), _field(path, meta, "sh0.maxs", "numbers", 4)
    scales, _, _ = image(_field(path, meta, "scales.files", "files", 1)[0], **texels)
    colours, _, _ = image(_field(path, meta, "sh0.files", "files", 1)[0], **texels)
    t_scale = scales[:count, :3].astype(np.float64) / 255.0
    t_colour = colours[:count, :4].astype(np.float64) / 255.0
    log_scales = scale_low + (scale_high - scale_low) * t_scale
    lerped = colour_low + (colour_high - colour_low) * t_colour  # [N, 4]: f_dc r, g, b and the opacity logit
    return log_scales, lerped[:, :3], lerped[:, 3]


def _decode_shn(path, meta, image, count, texels, version, notes) -> np.ndarray | None:  # [N, K, 3] or None
    if "shN" not in meta or meta["shN"] is None:
        return None
    _field(path, meta, "shN", "dict")
    files = _field(path, meta, "shN.files", "files", 2)
    if version == 2:
        bands = _field(path, meta, "shN.bands", "int")
        if bands not in (1, 2, 3):
            raise format_error(path, f"meta.json 'shN.bands' must be 1, 2 or 3, got {bands}")
        palette = _field(path, meta, "shN.count", "int")
        if not 1 <= palette <= 65536:
            raise format_error(path, f"meta.json 'shN.count' must be 1 to 65536, got {palette}")
        table = _codebook(path, meta, "shN.codebook")
    k_max = SH_COEFFICIENTS_PER_BAND[3]
    max_rows = math.ceil(65536 / PALETTE_ENTRIES_PER_ROW)
    centroids, width, height = image(files[0], min_texels=1, max_texels=PALETTE_ENTRIES_PER_ROW * k_max * max_rows)
    if version == 1:
        bands = V1_BANDS_BY_CENTROID_WIDTH.get(width)
        if bands is None:
            raise format_error(path, f"shN centroid image is {width} wide; version 1 expects 192, 512 or 960 (bands 1-3)")
        palette = PALETTE_ENTRIES_PER_ROW * height
        low, high = _field(path, meta, "shN.mins", "number"), _field(path, meta, "shN.maxs", "number")
        table = low + (high - low) * np.arange(256) / 255.0
    k = SH_COEFFICIENTS_PER_BAND[bands]
    if width != PALETTE_ENTRIES_PER_ROW * k:
        raise format_error(path, f"shN centroid image is {width} wide, {PALETTE_ENTRIES_PER_ROW * k} expected for {bands} band(s)")
    if height * PALETTE_ENTRIES_PER_ROW < palette:
        raise format_error(path, f"shN centroid image has {height} rows, too few for a {palette}-entry palette")
    labels_image, _, _ = image(files[1], **texels)
    labels = labels_image[:count, 0].astype(np.int64) | (labels_image[:count, 1].astype(np.int64) << 8)
    # Entry e occupies texels ((e % 64) * K + j, e // 64), j = 0..K-1: rows of 64 entries of K texels.
    entries = centroids[:, :3].reshape(height * PALETTE_ENTRIES_PER_ROW, k, 3)[:palette]  # [P, K, 3] bytes
    values = _lookup(path, table, entries, "shN centroid")  # [P, K, 3]
    out_of_range = labels >= palette
    rest = values[np.where(out_of_range, 0, labels)]
    if out_of_range.any():
        rest[out_of_range] = 0.0
        notes.append(f"{int(out_of_range.sum())} shN label(s) past the {palette}-entry palette read as zero SH")
    return rest


# ---------------------------------------------------------------------------------------- writing
def quantize_1d(values: np.ndarray, levels: int = 256, iterations: int = 50, uniform_share: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """1-D k-means codebook [levels] float32 and uint8 labels per value (Lloyd on sorted values).

    Plain k-means spends its levels where the values are dense and leaves the sparse tails to a
    few centroids: on a trained scene the rare tiny Gaussians (log-scale -16 among a median of
    -4.4) came back up to e^3 = 20x too large. Mixing in a uniform grid over [min, max] worth
    ``uniform_share`` of the mass keeps some levels everywhere: on that scene the largest
    log-scale error fell from 3.07 to 0.10 and the RMS from 0.036 to 0.012. Centroids start at
    evenly spaced quantiles; prefix sums make an iteration O(n log levels).
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        return np.zeros(levels, dtype=np.float32), np.zeros(np.shape(values), dtype=np.uint8)
    grid = np.linspace(flat.min(), flat.max(), int(flat.size * uniform_share / (1.0 - uniform_share)))
    ordered = np.sort(np.concatenate([flat, grid]))
    prefix = np.concatenate([[0.0], np.cumsum(ordered)])
    centroids = np.quantile(ordered, (np.arange(levels) + 0.5) / levels)
    for _ in range(iterations):
        bounds = np.searchsorted(ordered, (centroids[1:] + centroids[:-1]) / 2.0)
        starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [ordered.size]])
        sizes = ends - starts
        updated = np.where(sizes > 0, (prefix[ends] - prefix[starts]) / np.maximum(sizes, 1), centroids)
        updated = np.sort(updated)
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    codebook = centroids.astype(np.float32)
    # Label by the float32 codebook actually stored, so decoding gives the nearest stored value.
    stored = codebook.astype(np.float64)
    labels = np.searchsorted((stored[1:] + stored[:-1]) / 2.0, flat).astype(np.uint8)
    return codebook, labels.reshape(np.shape(values))


def kmeans(data: np.ndarray, clusters: int, iterations: int = 10, seed: int = 0, sample: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd k-means of ``data`` [N, D]: centroids [clusters, D] float32 and labels [N] int64.

    Trains on a random subsample (default 16 points per cluster, at least 65536) for speed,
    then assigns every point once and moves each centroid to the mean of its points.
    """
    data = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    n = len(data)
    if n <= clusters:
        centroids = torch.zeros(clusters, data.shape[1])
        centroids[:n] = data
        return centroids.numpy(), np.arange(n, dtype=np.int64)
    generator = torch.Generator().manual_seed(seed)
    sample = min(n, sample or max(65536, 16 * clusters))
    training = data[torch.randperm(n, generator=generator)[:sample]] if sample < n else data
    centroids = training[torch.randperm(len(training), generator=generator)[:clusters]].clone()
    for _ in range(iterations):
        labels = _assign(training, centroids)
        centroids = _update(training, labels, centroids, generator)
    labels = _assign(data, centroids)
    centroids = _update(data, labels, centroids, generator)
    return centroids.numpy(), labels.numpy()


def _assign(data: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:  # [N] nearest centroid
    squared = (centroids * centroids).sum(1)
    rows = max(256, (1 << 24) // max(len(centroids), 1))  # ~64 MB of distances per block
    labels = torch.empty(len(data), dtype=torch.int64)
    for start in range(0, len(data), rows):
        block = data[start : start + rows]
        # min(1).indices: the same as argmin(1), 2-3x faster in torch 2.13 on CPU
        labels[start : start + rows] = torch.addmm(squared, block, centroids.T, alpha=-2.0).min(1).indices
    return labels


def _update(data: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor, generator) -> torch.Tensor:
    sums = torch.zeros_like(centroids).index_add_(0, labels, data)
    counts = torch.bincount(labels, minlength=len(centroids)).to(data.dtype)
    updated = sums / counts.clamp_min(1)[:, None]
    empty = counts == 0
    if empty.any():  # re-seed empty clusters on random points
        updated[empty] = data[torch.randint(len(data), (int(empty.sum()),), generator=generator)]
    return updated


DEFAULT_MAX_PALETTE = 4096  # CPU k-means: ~10 s for 1M Gaussians at SH 3 on 2 cores; up to 65536 on request


def default_palette_size(count: int) -> int:
    """shN palette entries: the power of two at or below count/64, between 1 and 4096.

    splat-transform uses up to 65536 entries (k-means on a GPU); on a CPU every doubling
    doubles the k-means time, so larger palettes are an explicit ``palette_size``.
    """
    if count <= 1:
        return 1
    return int(min(DEFAULT_MAX_PALETTE, 2 ** max(0, math.floor(math.log2(max(count / 64, 1))))))


def texture_size(count: int) -> tuple[int, int]:
    """Width and height of the per-Gaussian images, each a multiple of 4 (as splat-transform pads)."""
    width = max(4, math.ceil(math.sqrt(count) / 4) * 4)
    height = max(4, math.ceil(count / width / 4) * 4)
    return width, height


def encode_quats(quats: np.ndarray) -> np.ndarray:  # [N, 4] (w, x, y, z) -> [N, 4] bytes
    """Smallest-three: the largest |component| is dropped (made non-negative), the rest stored as bytes."""
    q = normalized_quaternions(quats)
    largest = np.abs(q).argmax(1)
    rows = np.arange(len(q))
    q = q * np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]
    others = np.take_along_axis(q, np.array([[j for j in range(4) if j != i] for i in range(4)])[largest], axis=1)
    out = np.empty((len(q), 4), dtype=np.uint8)
    out[:, :3] = to_uint8_rounded((others * SQRT2 * 0.5 + 0.5) * 255.0)
    out[:, 3] = 252 + largest
    return out


def write_sog(
    scene: GaussianScene,
    path,
    *,
    bundle: bool | None = None,
    sort: bool = True,
    palette_size: int | None = None,
    iterations: int = 10,
    webp_method: int = 4,
    webp_quality: int = 50,
) -> None:
    """Write ``scene`` as SOG version 2.

    Args:
        bundle: True writes one ``.sog`` zip at ``path``; False writes ``path`` as meta.json with
            the images beside it. None decides by the name: ``.sog`` bundles, anything else
            (``meta.json``) is the folder form.
        sort: order the Gaussians along a Morton curve (smaller images, as the reference does).
        palette_size: shN palette entries (1-65536); default :func:`default_palette_size`.
        iterations: k-means iterations for the shN palette.
        webp_method, webp_quality: libwebp effort settings of the lossless encoder (speed only).
    """
    path = Path(path)
    if bundle is None:
        bundle = path.suffix.lower() == ".sog" or path.name.lower().endswith(".sog.tmp")
    arrays = scene_to_arrays(scene)
    n = len(scene)
    order = morton_order(arrays["means"].astype(np.float64)) if sort and n > 1 else np.arange(n)
    arrays = {key: value[order] for key, value in arrays.items()}
    width, height = texture_size(n)
    images: dict[str, np.ndarray] = {}

    def texture(values: np.ndarray, alpha: np.ndarray | int = 255) -> np.ndarray:  # [N, C<=4] -> [H, W, 4]
        out = np.zeros((width * height, 4), dtype=np.uint8)
        out[:, 3] = 255
        out[:n, : values.shape[1]] = values
        if not isinstance(alpha, int):
            out[:n, 3] = alpha
        return out.reshape(height, width, 4)

    means = arrays["means"].astype(np.float64)
    logged = np.sign(means) * np.log1p(np.abs(means))
    mins = logged.min(0) if n else np.zeros(3)
    maxs = logged.max(0) if n else np.zeros(3)
    span = np.where(maxs > mins, maxs - mins, 1.0)
    quantised = np.clip(np.rint((logged - mins) / span * 65535.0), 0, 65535).astype(np.uint16)
    images["means_l.webp"] = texture((quantised & 0xFF).astype(np.uint8))
    images["means_u.webp"] = texture((quantised >> 8).astype(np.uint8))
    images["quats.webp"] = texture(encode_quats(arrays["quats"])[:, :3], encode_quats(arrays["quats"])[:, 3])
    scale_codebook, scale_labels = quantize_1d(arrays["log_scales"])
    images["scales.webp"] = texture(scale_labels)
    colour_codebook, colour_labels = quantize_1d(arrays["sh"][:, 0])
    images["sh0.webp"] = texture(colour_labels, to_uint8_rounded(logit_to_alpha(arrays["opacity_logits"]) * 255.0))
    meta: dict[str, Any] = {
        "version": 2,
        "asset": {"generator": "lyra-sim"},
        "count": n,
        "antialias": bool(scene.metadata.extras.get("antialias", False)),
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_codebook.tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": colour_codebook.tolist(), "files": ["sh0.webp"]},
        "lyra_sim": {"frame": scene.metadata.frame, "metric": bool(scene.metadata.metric)},
    }
    bands = scene.sh_degree
    if bands > 0 and n > 0:
        meta["shN"], centroid_image, label_image = _encode_shn(arrays["sh"][:, 1:], bands, palette_size, iterations, texture)
        images["shN_centroids.webp"], images["shN_labels.webp"] = centroid_image, label_image
    encoded = {name: _encode_webp(image, webp_method, webp_quality) for name, image in images.items()}
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    if bundle:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(zipfile.ZipInfo(META_NAME, date_time=(1980, 1, 1, 0, 0, 0)), meta_bytes, compress_type=zipfile.ZIP_DEFLATED)
            for name, data in encoded.items():
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
        return
    from lyra_sim.io_utils import atomic_path

    # Folder form: images first (each atomically), meta.json last, so a SOG is never readable half-written.
    for name, data in encoded.items():
        with atomic_path(path.parent / name) as temporary:
            temporary.write_bytes(data)
    path.write_bytes(meta_bytes)


def _encode_shn(rest: np.ndarray, bands: int, palette_size: int | None, iterations: int, texture: Callable):
    n, k, _ = rest.shape
    palette = palette_size or default_palette_size(n)
    if not 1 <= palette <= 65536:
        raise ValueError(f"palette_size must be 1 to 65536, got {palette}")
    palette = min(palette, n)
    centroids, labels = kmeans(rest.reshape(n, k * 3), palette, iterations=iterations)
    codebook, centroid_bytes = quantize_1d(centroids.reshape(palette, k, 3))  # [P, K, 3] bytes
    rows = math.ceil(palette / PALETTE_ENTRIES_PER_ROW)
    centroid_image = np.zeros((rows * PALETTE_ENTRIES_PER_ROW, k, 4), dtype=np.uint8)
    centroid_image[:, :, 3] = 255
    centroid_image[:palette, :, :3] = centroid_bytes
    label_rgb = np.stack([labels & 0xFF, labels >> 8], axis=1).astype(np.uint8)
    meta = {"count": palette, "bands": bands, "codebook": codebook.tolist(), "files": ["shN_centroids.webp", "shN_labels.webp"]}
    return meta, centroid_image.reshape(rows, PALETTE_ENTRIES_PER_ROW * k, 4), texture(label_rgb)


def _encode_webp(image: np.ndarray, method: int, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    # exact=True keeps the RGB of fully transparent texels (sh0 alpha 0 is a valid opacity byte).
    Image.fromarray(image, "RGBA").save(buffer, format="WEBP", lossless=True, quality=quality, method=method, exact=True)
    return buffer.getvalue()


FORMAT = SceneFormatSpec(
    "sog", is_sog, read_sog, write_sog, extensions=(".sog", "meta.json"), max_sh_degree=3,
    write_options=("bundle", "sort", "palette_size", "iterations", "webp_method", "webp_quality"), folders=True,
    unsniffed=lambda path: None,  # a broken meta.json or .sog: the reader says what is wrong
    options_from_name=lambda path: {"bundle": not path.name.lower().endswith(".json")},
)

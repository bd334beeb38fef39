"""Helpers shared by the format readers and writers: errors, file access, activations, packing.

Readers work on numpy arrays and build the ``GaussianScene`` once at the end (zero-copy), so no
reader loops over Gaussians in Python. This module may import numpy, torch and
``lyra_sim.scene``/``lyra_sim.errors`` only.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from lyra_sim.errors import SceneFormatError
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.sh import SH_C0

# ------------------------------------------------------------------------- decompression budget
# What a compressed file may expand to, whatever its header declares (a 0.35 MB ZSTD or 0.9 MB
# gzip stream of zeros can declare 40-50 M points). The cap counts both the decompressed bytes
# of one file and the float32 scene decoded from them (4 * (14 + 3K) bytes per Gaussian, K SH
# coefficients per channel), so a compressed read's peak memory stays within about 2.5 times
# the cap. Default 2 GiB: an 8.6 M-Gaussian degree-3 or a 31 M-Gaussian degree-0 scene. Set it
# with the environment variable below (read at import) or ``set_decompression_limit``.
DECOMPRESSION_LIMIT_ENV = "LYRA_SIM_MAX_DECOMPRESSED_BYTES"
DEFAULT_DECOMPRESSION_LIMIT = 2 << 30
# Slack above a header-justified size: lets a reader see that a stream holds more than declared
# (trailing data) without reading it all.
DECOMPRESSION_MARGIN = 1 << 16
_CHUNK = 1 << 24


def _limit_from_environment() -> int:
    value = os.environ.get(DECOMPRESSION_LIMIT_ENV, "")
    try:
        limit = int(float(value)) if value.strip() else DEFAULT_DECOMPRESSION_LIMIT
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ValueError(f"{DECOMPRESSION_LIMIT_ENV}={value!r} must be a positive number of bytes")
    return limit


_decompression_limit = _limit_from_environment()


def decompression_limit() -> int:
    """The most bytes one compressed file may expand to (see ``set_decompression_limit``)."""
    return _decompression_limit


def set_decompression_limit(limit: int | None) -> int:
    """Set the global expansion cap of every compressed reader (None: the default); returns the old one."""
    global _decompression_limit
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0):
        raise ValueError(f"the decompression limit must be a positive number of bytes, got {limit!r}")
    previous, _decompression_limit = _decompression_limit, (DEFAULT_DECOMPRESSION_LIMIT if limit is None else limit)
    return previous


def size_text(size: int) -> str:
    """``123 bytes`` or ``123456789 bytes (117.7 MiB)``."""
    return f"{size} bytes" if size < 1 << 20 else f"{size} bytes ({size / (1 << 20):.1f} MiB)"


def _over_limit(path, what: str, size_phrase: str) -> SceneFormatError:
    return format_error(
        path,
        f"{what} {size_phrase}, more than the decompression limit of {size_text(_decompression_limit)} "
        f"(raise it with {DECOMPRESSION_LIMIT_ENV} or lyra_sim.scene.io.set_decompression_limit)",
    )


def check_decompressed_size(path, size: int, what: str) -> None:
    """Refuse, before any work, a declared decompressed size above the global cap."""
    if size > _decompression_limit:
        raise _over_limit(path, what, f"declares {size_text(size)} of decompressed data")


def check_decoded_scene_size(path, count: int, sh_bases: int, what: str = "the header") -> None:
    """Refuse, before decoding, a compressed file whose float32 scene would exceed the global cap."""
    size = 4 * count * (14 + 3 * sh_bases)
    if size > _decompression_limit:
        raise _over_limit(path, what, f"declares {count} Gaussians, a {size_text(size)} float32 scene")


def decompress_within_budget(
    path,
    read: Callable[[int], bytes],
    *,
    expected: int | None,
    what: str,
    errors: tuple = (),
    margin: int = DECOMPRESSION_MARGIN,
    stop_at_expected: bool = False,
    keep: bool = True,
) -> bytearray | int:
    """Decompress incrementally: ``read(n)`` returns up to ``n`` more bytes (empty at the end).

    Stops with ``SceneFormatError`` naming the file and the sizes as soon as the output passes
    ``expected`` (the size the header justifies) plus ``margin``, or the global cap; the
    exception types in ``errors`` (the decompressor's) become ``SceneFormatError`` too. With
    ``stop_at_expected`` it reads exactly ``expected`` bytes at most and leaves the rest unread.
    Memory grows with the data actually present, never with a declared size. Returns the bytes
    (or, with ``keep=False``, only their count); the caller compares the length with
    ``expected`` (a short stream means a truncated file).
    """
    if expected is not None:
        check_decompressed_size(path, expected, what)
        limit = min(expected + (0 if stop_at_expected else margin), _decompression_limit)
    else:
        limit = _decompression_limit
    output, total = bytearray(), 0
    while True:
        wanted = min(_CHUNK, limit - total if stop_at_expected else limit + 1 - total)
        try:
            chunk = read(wanted) if wanted > 0 else b""
        except MemoryError:
            raise format_error(path, f"out of memory decompressing {what} after {size_text(total)}") from None
        except errors as error:
            raise format_error(path, f"{what} is corrupt ({type(error).__name__}: {error})") from None
        if not chunk:
            return output if keep else total
        total += len(chunk)
        if total > limit:
            if limit < _decompression_limit:
                raise format_error(path, f"{what} decompresses to more than {size_text(limit)} (its header justifies {size_text(expected)})")
            raise _over_limit(path, what, "decompresses to more bytes")
        if keep:
            output += chunk


def zlib_reader(decompressor, data) -> Callable[[int], bytes]:
    """``read(n)`` over a ``zlib.decompressobj`` fed ``data`` (it keeps only the unconsumed input)."""
    pending = [data]

    def read(size: int) -> bytes:
        if decompressor.eof or size <= 0:
            return b""
        chunk = decompressor.decompress(pending[0], size)
        pending[0] = decompressor.unconsumed_tail
        return chunk

    return read


# Opacities are clamped to [ALPHA_EPS, 1 - ALPHA_EPS] before the logit so that fully opaque or
# transparent bytes give finite logits (about +-13.8), which still re-encode to the same byte.
ALPHA_EPS = 1e-6


# Error messages and notes quote names and values from the file: a hostile file can hold 200k
# property names or a megabyte-long name, so what is quoted is cut to these lengths.
MAX_MESSAGE_CHARS = 1000
MAX_LISTED_ITEMS = 12


def format_error(path, message: str) -> SceneFormatError:
    """The one error type for malformed input, always naming the file; the message is bounded in length."""
    return SceneFormatError(f"{path}: {bounded(message)}")


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def brief_list(items, limit: int = MAX_LISTED_ITEMS) -> str:
    """``[a, b, c]`` for a short list; ``[a, b, ..., (200000 in all)]`` for a long one; items cut to 60 characters."""
    items = list(items)
    shown = [repr(bounded(item, 60)) if isinstance(item, str) else bounded(repr(item), 60) for item in items[:limit]]
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return "[" + ", ".join(shown) + more + "]"


@contextlib.contextmanager
def _reading(path) -> Iterator[None]:
    """Turn the OS errors of opening a splat file into ``SceneFormatError`` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise format_error(path, "no such file") from None
    except IsADirectoryError:
        raise format_error(path, "is a directory, not a splat file") from None
    except OSError as error:
        raise format_error(path, f"cannot read ({error.strerror or error})") from None


def read_file_bytes(path) -> bytes:
    """The whole file; a missing or unreadable file is a ``SceneFormatError`` naming it."""
    with _reading(path):
        return Path(path).read_bytes()


def read_file_head(path, size: int) -> bytes:
    """The first ``size`` bytes of the file (fewer if it is shorter)."""
    with _reading(path), open(path, "rb") as handle:
        return handle.read(size)


def file_size(path) -> int:
    return os.stat(path).st_size


def alpha_to_logit(alpha: np.ndarray) -> np.ndarray:
    """Opacity in [0, 1] -> logit, clamped so bytes 0 and 255 stay finite."""
    alpha = np.clip(alpha.astype(np.float64), ALPHA_EPS, 1.0 - ALPHA_EPS)
    return np.log(alpha / (1.0 - alpha)).astype(np.float32)


def byte_table(decode) -> np.ndarray:  # [256] float32
    """A lookup table of ``decode`` over every byte value: decoding N bytes becomes one gather."""
    return np.asarray(decode(np.arange(256, dtype=np.float64)), dtype=np.float32)


# Opacity byte (alpha * 255) -> logit, shared by .splat, .spz and compressed PLY.
ALPHA_BYTE_TO_LOGIT = byte_table(lambda b: alpha_to_logit(b / 255.0))


def logit_to_alpha(logit: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float64)


def dc_to_color(dc: np.ndarray) -> np.ndarray:
    """SH DC coefficient -> base colour 0.5 + C0 * dc (FORMATS.md 1.1)."""
    return 0.5 + SH_C0 * dc.astype(np.float64)


def color_to_dc(color: np.ndarray) -> np.ndarray:
    return ((color.astype(np.float64) - 0.5) / SH_C0).astype(np.float32)


def to_uint8_rounded(values: np.ndarray) -> np.ndarray:
    """Round half away from zero (C++ std::round) and clamp to [0, 255]."""
    values = np.asarray(values, dtype=np.float64)
    return np.clip(np.trunc(values + np.copysign(0.5, values)), 0, 255).astype(np.uint8)


def normalized_quaternions(quats: np.ndarray) -> np.ndarray:  # [N, 4] -> [N, 4]
    """Unit quaternions; zero quaternions become the identity (w, x, y, z) = (1, 0, 0, 0)."""
    quats = quats.astype(np.float64)
    norms = np.linalg.norm(quats, axis=-1, keepdims=True)
    identity = np.zeros_like(quats)
    identity[:, 0] = 1.0
    return np.where(norms > 1e-12, quats / np.maximum(norms, 1e-12), identity)


# For each index of a dropped (largest) quaternion component, the other three in increasing order.
OTHER_COMPONENTS = np.array([[j for j in range(4) if j != i] for i in range(4)])


def assemble_largest_dropped(largest: np.ndarray, others: np.ndarray) -> np.ndarray:  # [N], [N, 3] -> [N, 4]
    """Rebuild quaternions stored as 'largest component dropped' (compressed PLY, spz v3+).

    ``others`` fill the three remaining slots in increasing index order; the dropped one is
    sqrt(1 - |others|^2) (clamped at 0 for corrupt data).
    """
    quats = np.empty((len(largest), 4))
    rows = np.arange(len(largest))
    quats[rows[:, None], OTHER_COMPONENTS[largest]] = others
    quats[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - (others * others).sum(-1)))
    return quats


def channel_major_rest_to_sh(rest: np.ndarray) -> np.ndarray:  # [N, 3*K] -> [N, K, 3]
    """PLY f_rest_{c*K + k-1} (channel-major, FORMATS.md 2.3) -> coefficient-major [N, K, 3]."""
    n, count = rest.shape
    return rest.reshape(n, 3, count // 3).transpose(0, 2, 1)


def sh_to_channel_major_rest(sh_rest: np.ndarray) -> np.ndarray:  # [N, K, 3] -> [N, 3*K]
    n, k, _ = sh_rest.shape
    return sh_rest.transpose(0, 2, 1).reshape(n, 3 * k)


def scene_from_arrays(
    means: np.ndarray,  # [N, 3]
    quats: np.ndarray,  # [N, 4] (w, x, y, z)
    log_scales: np.ndarray,  # [N, 3]
    opacity_logits: np.ndarray,  # [N]
    sh: np.ndarray,  # [N, K, 3]
    metadata: SceneMetadata,
) -> GaussianScene:
    """Wrap float arrays into a scene, copying only what is not already a writable contiguous float32."""

    def as_tensor(array: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(array, dtype=np.float32)
        # Views into the file's bytes are read-only: a scene must own memory it may modify.
        return torch.from_numpy(array if array.flags.writeable else array.copy())

    return GaussianScene(
        as_tensor(means), as_tensor(quats), as_tensor(log_scales), as_tensor(opacity_logits), as_tensor(sh), metadata
    )


def scene_to_arrays(scene: GaussianScene) -> dict[str, np.ndarray]:
    """float32 numpy copies (CPU, detached) of the raw parameters, keyed by attribute name."""
    grab = lambda t: t.detach().to("cpu", torch.float32).numpy()  # noqa: E731
    return {
        "means": grab(scene.means),
        "quats": grab(scene.quats),
        "log_scales": grab(scene.log_scales),
        "opacity_logits": grab(scene.opacity_logits),
        "sh": grab(scene.sh),
    }


def sniff_json(path, head: bytes, limit: int):
    """The JSON value in the file at ``path`` when ``head`` opens an object and it parses, else None.

    For content detection only: files above ``limit`` bytes are not parsed.
    """
    if head.lstrip()[:1] != b"{":
        return None
    try:
        if os.stat(path).st_size > limit:
            return None
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, OSError):
        return None


def zip_names(path, head: bytes) -> list[str] | None:
    """The entry names of the zip archive at ``path``, or None when it is not a readable zip."""
    if head[:4] != b"PK\x03\x04":
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None

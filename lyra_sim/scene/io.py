"""Loading and saving Gaussian scenes: format detection by content, dispatch, validation.

Public entry points: :func:`load_scene`, :func:`save_scene`, :func:`load_sequence` (Lyra dynamic
output), :func:`detect_format` and :func:`set_decompression_limit` / :func:`decompression_limit`
(the cap on what one compressed file may expand to). Formats are detected from the bytes (PLY header, NGSP / gzip
magic, torch zip or pickle, .splat record sanity), never from the extension alone. Every
malformed input raises ``SceneFormatError`` naming the file; writes are atomic.

``FORMATS`` is the one table of formats. Adding a format: write its module in
``lyra_sim/scene/formats/`` ending with ``FORMAT = SceneFormatSpec(...)`` (sniffing, reader,
writer, extensions, max SH degree, options) and add that entry to ``FORMATS`` below, where its
position is its sniffing order.
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any, Iterable

from tqdm.auto import tqdm

from lyra_sim.errors import SceneFormatError
from lyra_sim.io_utils import atomic_path
from lyra_sim.scene.capture import resolve_capture_folder
from lyra_sim.scene.formats import compressed_ply, gltf, gsplat_pt, ply, sog, splat, spz, usd
from lyra_sim.scene.formats._common import (
    DECOMPRESSION_LIMIT_ENV,
    decompression_limit,
    file_size,
    format_error,
    read_file_head,
    set_decompression_limit,
)
from lyra_sim.scene.formats.ply_container import MAX_HEADER_BYTES
from lyra_sim.scene.formats.spec import SceneFormatSpec
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.transforms import count_reasons, invalid_gaussian_reasons, sanitize
from lyra_sim.typed import CoordinateFrame, InvalidGaussianPolicy, SceneFormat, check_choice

# In sniffing order: the PLY variants from the most specific header to the plainest, magic
# numbers next, and .splat (no magic, a plausibility check on its records) last.
FORMATS: dict[str, SceneFormatSpec] = {
    spec.name: spec
    for spec in (
        compressed_ply.FORMAT,
        ply.LYRA_FORMAT,
        ply.FORMAT,
        spz.FORMAT,
        gltf.FORMAT,
        usd.FORMAT,
        sog.FORMAT,  # before the torch checkpoint: a .sog, a .usdz (usd) and a .pt are all zips
        gsplat_pt.FORMAT,
        splat.FORMAT,
    )
}


def detect_format(path) -> str:
    """The format of the file at ``path`` from its content (a key of ``FORMATS``)."""
    path = Path(path)
    if path.is_dir():
        for spec in FORMATS.values():
            if spec.folders and spec.sniff(path, b""):
                return spec.name
        raise format_error(path, "is a directory (load_scene reads capture folders; use load_sequence for a folder of per-time files)")
    head = read_file_head(path, MAX_HEADER_BYTES)
    for spec in FORMATS.values():
        if spec.sniff(path, head):
            return spec.name
    implied = format_for_extension(path)
    if implied is not None and FORMATS[implied].unsniffed is not None:
        FORMATS[implied].unsniffed(path)  # raises a precise error, or returns: read it as that format
        return implied
    raise format_error(path, f"unrecognised splat format (first bytes {head[:8].hex(' ')}); supported: {', '.join(FORMATS)}")


def load_scene(
    path,
    *,
    keep_spz_frame: bool = False,
    invalid: InvalidGaussianPolicy = "error",
    frame: CoordinateFrame | None = None,
    cameras: bool | str | Path = True,
) -> GaussianScene:
    """Read a Gaussian scene from any supported file (format detected from the content).

    Args:
        path: a .ply (INRIA, Lyra, compressed), .splat, .spz (v1-4), gsplat .pt checkpoint, a
            PlayCanvas SOG (``.sog`` zip, its ``meta.json`` or folder; versions 1 and 2), glTF/GLB
            with ``KHR_gaussian_splatting``, or OpenUSD (.usd/.usda/.usdc/.usdz, needs the ``[usd]``
            extra); or a capture folder (INRIA output: the latest ``point_cloud/iteration_N``
            with its ``cameras.json`` noted in ``metadata.extras["capture_folder"]``; gsplat
            results; a folder holding one scene file), see ``lyra_sim.scene.capture``.
        keep_spz_frame: keep .spz data in its stored RUB frame instead of converting it to the
            PLY frame (y and z negated).
        invalid: what to do with Gaussians that have NaN/Inf parameters or a zero quaternion:
            "error" raises ``SceneFormatError`` with counts per reason, "drop" removes them
            (see ``sanitize``; the report lands in ``metadata.notes``), "keep" leaves them.
        frame: override the coordinate frame recorded in the metadata.
        cameras: True finds the capture cameras beside the file (``lyra_sim.scene.cameras``:
            our sidecar, INRIA ``cameras.json``, ``transforms.json``, COLMAP ``sparse/``) and
            puts them in ``metadata.cameras``; a path reads them from there; False skips them.
            A sidecar's frame and units fill in what the file itself does not say.

    Compressed inputs (spz gzip/ZSTD streams, deflated zip entries of a .pt) are decompressed
    incrementally under a budget: the size the header justifies, and a global cap on what one
    file may expand to (decompressed bytes, and the float32 scene decoded from them; default
    2 GiB, set by the ``LYRA_SIM_MAX_DECOMPRESSED_BYTES`` environment variable or
    :func:`set_decompression_limit`). Beyond it, and on any malformed input or lack of memory,
    ``SceneFormatError`` names the file and the sizes.
    """
    check_choice(invalid, InvalidGaussianPolicy, "invalid")
    if frame is not None:
        check_choice(frame, CoordinateFrame, "frame")
    path = Path(path)
    if path.is_dir() and not any(spec.folders and spec.sniff(path, b"") for spec in FORMATS.values()):
        capture = resolve_capture_folder(path)
        scene = load_scene(capture.scene_file, keep_spz_frame=keep_spz_frame, invalid=invalid, frame=frame, cameras=cameras)
        scene.metadata.notes.extend(capture.notes)
        scene.metadata.extras["capture_folder"] = {"folder": str(path), "kind": capture.kind}
        if capture.cameras_file is not None:
            scene.metadata.extras["capture_folder"]["cameras_file"] = str(capture.cameras_file)
        return scene
    kind = detect_format(path)
    spec = FORMATS[kind]
    if spec.read is None:
        raise format_error(path, f"{kind} files can be written but not read")
    options = {"keep_frame": keep_spz_frame}
    try:
        scene = spec.read(path, **{name: value for name, value in options.items() if name in spec.read_options})
    except SceneFormatError:
        raise
    except MemoryError:
        raise format_error(path, f"out of memory decoding as {kind} ({file_size(path)}-byte file)") from None
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, struct.error, zlib.error, EOFError) as error:
        # A decoder bug on hostile input must still surface as the library's error type.
        raise format_error(path, f"cannot decode as {kind}: {type(error).__name__}: {error}") from error
    if cameras is not False:
        _attach_cameras(scene, path, cameras)
    if frame is not None:
        scene.metadata.frame = frame
    return _apply_invalid_policy(scene, path, invalid)


def _attach_cameras(scene: GaussianScene, path: Path, cameras) -> None:
    from lyra_sim.scene.cameras import CameraFileError, find_cameras, load_cameras

    try:
        found = find_cameras(path) if cameras is True else load_cameras(cameras)
    except CameraFileError as error:
        if cameras is not True:  # named explicitly: a broken file is an error
            raise SceneFormatError(f"{path}: capture cameras: {error}") from None
        # Found by looking around: say so loudly, but the scene itself is fine.
        warnings.warn(f"{path}: ignoring capture cameras beside it: {error}", stacklevel=3)
        scene.metadata.notes.append(f"capture cameras ignored: {error}")
        return
    if found is None:
        return
    capture, camera_frame = found
    scene.metadata.cameras = capture
    if scene.metadata.frame == "unknown" and camera_frame != "unknown":
        scene.metadata.frame = camera_frame
    if capture.metres_per_unit == 1.0:
        scene.metadata.metric = True
    scene.metadata.notes.append(f"capture cameras: {len(capture)} from {capture.source} ({capture.kind})")


def _apply_invalid_policy(scene: GaussianScene, path, invalid: str) -> GaussianScene:
    if invalid == "keep":
        return scene
    if invalid == "drop":
        return sanitize(scene)[0]
    counts = count_reasons(invalid_gaussian_reasons(scene))
    if counts:
        summary = ", ".join(f"{count} with {name.replace('_', ' ')}" for name, count in counts.items())
        raise format_error(path, f"invalid Gaussians out of {len(scene)}: {summary} (load with invalid='drop' to remove them)")
    return scene


def format_for_extension(path) -> str | None:
    """The format a file name implies (``.compressed.ply`` -> compressed_ply), or None: the
    longest of the table's extensions the name ends with."""
    name = Path(path).name.lower()
    matches = [(len(ext), spec.name) for spec in FORMATS.values() for ext in spec.extensions if name.endswith(ext)]
    return max(matches)[1] if matches else None


def save_scene(scene: GaussianScene, path, *, format: SceneFormat | None = None, cameras: bool = True, **options: Any) -> Path:
    """Write ``scene`` atomically; the format comes from ``format`` or the extension (``.compressed.ply``
    selects the compressed PLY, ``meta.json`` the SOG folder form). With ``cameras`` (default) and
    capture cameras in ``scene.metadata.cameras``, they are written beside it as
    ``<stem>.cameras.json`` (with the scene's frame and units), so they travel with the file.

    Options by format: ply/lyra_ply ``encoding`` ("binary_little_endian", "binary_big_endian",
    "ascii"), ply ``normals`` (bool); compressed_ply ``sort`` (Morton order, default True);
    spz ``version`` (4, 3 or 2), ``keep_frame`` (bool: write the scene as is, without
    converting it to spz's RUB frame), ``sh1_bits``, ``sh_rest_bits``,
    ``compression_level``; sog ``palette_size``, ``iterations``, ``sort`` (a ``.sog`` name writes
    the zip, a ``meta.json`` name the folder form); gltf ``keep_frame``, ``color_space``
    (``.glb`` binary, ``.gltf`` JSON); usd ``precision`` ("float"/"half"), ``keep_frame``
    (``.usda`` text, ``.usd``/``.usdc`` crate). A scene with more SH than the format stores is truncated with a warning.
    """
    path = Path(path)
    writable = [name for name, spec in FORMATS.items() if spec.write is not None]
    if format is None:
        format = format_for_extension(path)
        if format is None or format not in writable:
            raise ValueError(f"cannot tell the format of {path} from its extension; pass format= one of {sorted(writable)}")
    check_choice(format, writable, "format")
    spec = FORMATS[format]
    writer, max_degree, accepted = spec.write, spec.max_sh_degree, spec.write_options
    options = (spec.options_from_name(path) if spec.options_from_name else {}) | options
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"save_scene(format={format!r}) got unknown options {unknown}; accepted: {list(accepted)}")
    if scene.sh_degree > max_degree:
        warnings.warn(f"{format} stores SH degree {max_degree} at most: the scene's degree-{scene.sh_degree} SH is truncated", stacklevel=2)
        scene = scene.with_sh_degree(max_degree)
    with atomic_path(path) as temporary:
        writer(scene, temporary, **options)
    if cameras and scene.metadata.cameras is not None:
        from lyra_sim.scene.cameras import write_sidecar

        write_sidecar(scene.metadata.cameras, path, scene.metadata.frame)
    return path


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def sequence_files(folder) -> list[Path]:
    """Splat files in ``folder`` in natural order (frame_2 before frame_10)."""
    folder = Path(folder)
    extensions = sorted({ext for spec in FORMATS.values() for ext in spec.extensions})
    files = [p for p in folder.iterdir() if p.is_file() and format_for_extension(p) is not None]
    if not files:
        raise format_error(folder, f"holds no splat files ({', '.join(extensions)})")
    return sorted(files, key=_natural_key)


def load_sequence(path_or_list: str | Path | Iterable, *, progress: bool = True, **load_options: Any) -> list[GaussianScene]:
    """A time-indexed sequence (Lyra dynamic output): a folder of per-time files, or a list of paths.

    Scene ``i`` gets ``metadata.time = i`` (frame index) and ``metadata.extras["sequence_index"]``.
    ``load_options`` are passed to :func:`load_scene`.
    """
    if isinstance(path_or_list, (str, Path)):
        folder = Path(path_or_list)
        if not folder.is_dir():
            raise format_error(folder, "is not a folder; load_sequence needs a folder or a list of files")
        files = sequence_files(folder)
    else:
        files = [Path(p) for p in path_or_list]
        if not files:
            raise ValueError("load_sequence got an empty list of files")
    scenes = []
    for index, file in enumerate(tqdm(files, desc="loading frames", unit="frame", disable=None if progress else True)):
        scene = load_scene(file, **load_options)
        scene.metadata.time = float(index)
        scene.metadata.extras["sequence_index"] = index
        scenes.append(scene)
    return scenes

"""INRIA 3DGS PLY and the Lyra PLY variant: reader and writer (FORMATS.md 2).

Properties are looked up by name (any order, any PLY scalar type, binary LE/BE or ASCII);
f_rest count gives the SH degree (0, 9, 24, 45; 72 = degree 4 is truncated to 3 with a note).
Lyra's layout (x,y,z, f_dc, opacity, scale, rot: no normals, no f_rest) is reported as
``lyra_ply`` with the frame "opencv-first-camera". Our writer stores the scene's frame in a
``comment lyra_sim frame=... metric=...`` header line so a round trip keeps it.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from lyra_sim.scene.formats._common import (
    brief_list,
    channel_major_rest_to_sh,
    color_to_dc,
    format_error,
    scene_from_arrays,
    scene_to_arrays,
    sh_to_channel_major_rest,
)
from lyra_sim.scene.formats.ply_container import PlyHeader, element_matrix, is_ply, parse_ply_header, ply_header_text, read_ply_elements
from lyra_sim.scene.formats.spec import SceneFormatSpec, reading_bytes
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.sh import num_sh_bases
from lyra_sim.typed import CoordinateFrame, PlyEncoding, check_choice

POSITION = ["x", "y", "z"]
NORMALS = ["nx", "ny", "nz"]
DC = ["f_dc_0", "f_dc_1", "f_dc_2"]
SCALES = ["scale_0", "scale_1", "scale_2"]
ROTATIONS = ["rot_0", "rot_1", "rot_2", "rot_3"]
REQUIRED = POSITION + DC + ["opacity"] + SCALES + ROTATIONS
# Lyra-1 GaussianRenderer.save_ply writes exactly the required names, in this order (no normals,
# no f_rest): 14 floats, 56 bytes per splat.
LYRA_PROPERTIES = REQUIRED
REST_COUNT_TO_DEGREE = {0: 0, 9: 1, 24: 2, 45: 3, 72: 4}
METADATA_COMMENT = "lyra_sim"
_REST_NAME = re.compile(r"f_rest_(\d+)$")


def inria_property_names(sh_degree: int, normals: bool = True) -> list[str]:
    """INRIA property order (FORMATS.md 2.2) for an SH degree."""
    rest = [f"f_rest_{i}" for i in range(3 * (num_sh_bases(sh_degree) - 1))]
    return POSITION + (NORMALS if normals else []) + DC + rest + ["opacity"] + SCALES + ROTATIONS


def is_lyra_layout(header: PlyHeader) -> bool:
    """True for Lyra's 14-property vertex layout, unless our own writer marked the file."""
    vertex = header.element("vertex")
    ours = any(c.split()[:1] == [METADATA_COMMENT] for c in header.comments)
    return vertex is not None and vertex.property_names == LYRA_PROPERTIES and not ours


def read_ply(path, data: bytes) -> GaussianScene:
    """Decode an INRIA-style (or Lyra) splat PLY held in ``data``."""
    header = parse_ply_header(data, path)
    vertex = header.element("vertex")
    if vertex is None:
        raise format_error(path, f"PLY has no 'vertex' element (elements: {brief_list(e.name for e in header.elements)})")
    if vertex.property("packed_position") is not None:
        raise format_error(path, "this is a compressed PLY (packed_position); read it as format 'compressed_ply'")
    names = set(vertex.property_names)
    metadata = SceneMetadata(source=str(path), format="ply", frame="unknown")
    if is_lyra_layout(header):
        metadata.format, metadata.frame = "lyra_ply", "opencv-first-camera"
        metadata.notes.append("Lyra PLY: OpenCV first-camera frame (up is roughly -Y), not metric")
    _apply_metadata_comments(header.comments, metadata, path)

    point_cloud = not names & set(DC + ["opacity"] + SCALES + ROTATIONS) and {"red", "green", "blue"} <= names
    if not point_cloud:
        missing = [name for name in REQUIRED if name not in names]
        if missing:
            raise format_error(path, f"PLY vertex element lacks required properties {missing}")
    rest_names = _rest_property_names(names, path)
    degree = REST_COUNT_TO_DEGREE[len(rest_names)]

    table = read_ply_elements(data, header, path, {"vertex"})["vertex"]
    n = vertex.count
    columns = _column_reader(table)
    means = columns(POSITION)
    if point_cloud:
        quats, log_scales, opacity, sh = _point_cloud_defaults(columns(["red", "green", "blue"]), table.dtype["red"].kind, n)
        metadata.notes.append("colour-only point cloud: opacity 1, scale 0.01, identity rotation (antimatter15 defaults)")
    else:
        quats, log_scales, opacity = columns(ROTATIONS), columns(SCALES), columns(["opacity"])[:, 0]
        sh = np.empty((n, num_sh_bases(min(degree, 3)), 3), dtype=np.float32)
        sh[:, 0, :] = columns(DC)
        if degree > 0:
            rest = channel_major_rest_to_sh(columns(rest_names))
            sh[:, 1:, :] = rest[:, : sh.shape[1] - 1]
        if degree == 4:
            metadata.notes.append("degree-4 SH truncated to degree 3 (GaussianScene stores up to degree 3)")
        _note_activated_values(log_scales, opacity, metadata, path)

    ignored = sorted(names - set(REQUIRED) - set(NORMALS) - set(rest_names) - ({"red", "green", "blue"} if point_cloud else set()))
    if ignored:
        metadata.notes.append(f"ignored vertex properties: {brief_list(ignored)}")
    others = [e.name for e in header.elements if e.name != "vertex"]
    if others:
        metadata.notes.append(f"ignored PLY elements: {brief_list(others)}")
    metadata.extras["ply_encoding"] = header.encoding
    return scene_from_arrays(means, quats, log_scales, opacity, sh, metadata)


def _column_reader(table: np.ndarray):
    """A function names -> float32 [N, len(names)] over a structured vertex table.

    When every property has one type (the usual all-float file), the table is viewed as a plain
    [N, P] matrix and columns are gathered in one pass instead of one strided pass per name.
    """
    matrix = element_matrix(table)
    if matrix is not None and len(table):
        index = {name: i for i, name in enumerate(table.dtype.names)}

        def gather(names: list[str]) -> np.ndarray:
            positions = [index[name] for name in names]
            if positions == list(range(positions[0], positions[0] + len(positions))):  # contiguous: a slice
                block = matrix[:, positions[0] : positions[0] + len(positions)]
            else:
                block = matrix[:, positions]
            # A view when already native float32: callers copy it once into the scene's arrays.
            return block.astype(np.float32, copy=False)

        return gather

    def stack(names: list[str]) -> np.ndarray:
        out = np.empty((len(table), len(names)), dtype=np.float32)
        for column, name in enumerate(names):
            out[:, column] = table[name]
        return out

    return stack


def _rest_property_names(names: set[str], path) -> list[str]:
    indices = sorted(int(m.group(1)) for m in map(_REST_NAME.match, names) if m)  # numeric, not lexicographic
    if indices != list(range(len(indices))):
        raise format_error(path, f"unknown SH layout: f_rest indices are not 0..{len(indices) - 1} without gaps")
    if len(indices) not in REST_COUNT_TO_DEGREE:
        raise format_error(path, f"unknown SH layout: {len(indices)} f_rest properties (expected 0, 9, 24, 45 or 72)")
    return [f"f_rest_{i}" for i in indices]


def _point_cloud_defaults(rgb: np.ndarray, kind: str, n: int):
    if kind in "ui":
        rgb = rgb / 255.0
    quats = np.zeros((n, 4), dtype=np.float32)
    quats[:, 0] = 1.0
    log_scales = np.full((n, 3), np.log(0.01), dtype=np.float32)
    opacity = np.full(n, np.log((1 - 1e-6) / 1e-6), dtype=np.float32)
    sh = color_to_dc(rgb)[:, None, :]
    return quats, log_scales, opacity, sh


def _note_activated_values(log_scales: np.ndarray, opacity: np.ndarray, metadata: SceneMetadata, path) -> None:
    """Lyra's compatible=False writes activated values under raw names (FORMATS.md 2.8)."""
    if len(opacity) < 16:
        return
    finite = np.isfinite(opacity)
    if finite.all() and opacity.min() >= 0 and opacity.max() <= 1 and np.isfinite(log_scales).all() and log_scales.min() > 0:
        message = (
            f"{path}: every 'opacity' is in [0, 1] and every 'scale_*' is positive: the file probably holds "
            "activated values under raw names (e.g. Lyra save_ply(compatible=False)); they are read as raw"
        )
        metadata.notes.append(message)
        warnings.warn(message, stacklevel=3)


def _apply_metadata_comments(comments: list[str], metadata: SceneMetadata, path) -> None:
    for comment in comments:
        words = comment.split()
        if words[:1] != [METADATA_COMMENT]:
            continue
        fields = dict(word.split("=", 1) for word in words[1:] if "=" in word)
        frame = fields.get("frame")
        if frame is not None:
            try:
                metadata.frame = check_choice(frame, CoordinateFrame, "frame")
            except ValueError:
                metadata.notes.append(f"unknown frame {frame!r} in the lyra_sim header comment; using 'unknown'")
        if "metric" in fields:
            metadata.metric = fields["metric"] in ("1", "true", "True")


def write_ply(
    scene: GaussianScene,
    path,
    *,
    layout: str = "inria",
    encoding: str = "binary_little_endian",
    normals: bool = True,
) -> None:
    """Write ``scene`` as a PLY at ``path`` (a plain file path; the caller makes it atomic).

    ``layout="inria"``: the INRIA property order with ``nx, ny, nz`` zeros when ``normals``.
    ``layout="lyra"``: Lyra's 14 properties (the scene must be degree 0).
    ``encoding``: binary_little_endian (what every tool reads), binary_big_endian or ascii.
    """
    check_choice(layout, ("inria", "lyra"), "layout")
    check_choice(encoding, PlyEncoding, "encoding")
    arrays = scene_to_arrays(scene)
    n, degree = len(scene), scene.sh_degree
    if layout == "lyra":
        if degree != 0:
            raise ValueError(f"the Lyra PLY layout has no f_rest: reduce the scene to SH degree 0 first (it has {degree})")
        names = LYRA_PROPERTIES
    else:
        names = inria_property_names(degree, normals)
    means, dc = arrays["means"], arrays["sh"][:, 0, :]
    opacity = arrays["opacity_logits"][:, None]
    if layout == "lyra":
        blocks = [means, dc, opacity, arrays["log_scales"], arrays["quats"]]
    else:
        rest = sh_to_channel_major_rest(arrays["sh"][:, 1:, :])
        normal_block = [np.zeros((n, 3), dtype=np.float32)] if normals else []  # INRIA writes zeros
        blocks = [means, *normal_block, dc, rest, opacity, arrays["log_scales"], arrays["quats"]]
    body = np.concatenate(blocks, axis=1)  # one pass; columns follow ``names``
    assert body.shape == (n, len(names)), f"PLY body has shape {body.shape}, expected {(n, len(names))}"

    comments = ["Generated by lyra-sim"]
    if layout == "inria":
        comments.append(f"{METADATA_COMMENT} frame={scene.metadata.frame} metric={int(scene.metadata.metric)}")
    header = ply_header_text(encoding, [("vertex", n, [("float", name) for name in names])], comments)
    with open(path, "wb") as handle:
        handle.write(header)
        if encoding == "ascii":
            # 9 significant digits reproduce every float32 exactly.
            np.savetxt(handle, body, fmt="%.9g")
        else:
            body.astype(">f4" if encoding == "binary_big_endian" else "<f4", copy=False).tofile(handle)


def write_lyra_ply(scene: GaussianScene, path, *, encoding: str = "binary_little_endian") -> None:
    """Write ``scene`` (degree 0) in Lyra's 14-property layout."""
    write_ply(scene, path, layout="lyra", encoding=encoding)


def sniff_lyra(path, head: bytes) -> bool:
    return is_ply(head) and is_lyra_layout(parse_ply_header(head, path))


# Sniffed after the compressed PLY (same container); INRIA last of the PLY variants.
LYRA_FORMAT = SceneFormatSpec("lyra_ply", sniff_lyra, reading_bytes(read_ply), write_lyra_ply, max_sh_degree=0,
                              write_options=("encoding",))
FORMAT = SceneFormatSpec("ply", lambda path, head: is_ply(head), reading_bytes(read_ply), write_ply, extensions=(".ply",),
                         max_sh_degree=3, write_options=("encoding", "normals"))

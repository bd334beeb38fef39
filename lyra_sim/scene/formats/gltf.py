"""glTF 2.0 / GLB with ``KHR_gaussian_splatting`` (Khronos, release candidate): reader and writer.

A splat field is a mesh primitive of mode POINTS carrying the extension (FORMATS.md 11, checked
against the extension's README in KhronosGroup/glTF). Attributes:

- ``POSITION`` VEC3; ``KHR_gaussian_splatting:ROTATION`` VEC4 unit quaternion **x, y, z, w**;
  ``KHR_gaussian_splatting:SCALE`` VEC3 **linear** sigma (not negative);
  ``KHR_gaussian_splatting:OPACITY`` SCALAR in [0, 1] (**after** the sigmoid);
- ``KHR_gaussian_splatting:SH_DEGREE_l_COEF_n`` VEC3 (r, g, b): coefficient index l*l + n in the
  INRIA order (n runs m = -l..l), the DC term raw (colour = 0.5 + C0 * dc).

Conversions are exact up to float32: log_scale = log(scale), logit = log(a / (1 - a)) with the
opacity clamped to [1e-6, 1 - 1e-6] (|logit| <= 13.8), quaternions reordered and normalised.
Pre-ratification drafts stored log-space scales; a file with negative SCALE values is read as
log-space (and says so in the notes). Accessors may be float or (normalised) integers (the
quantised types the extension and KHR_mesh_quantization allow); sparse accessors are not read.
Node transforms (TRS or matrix) are applied to the Gaussians they instantiate.

Frames: glTF is +Y up. The writer rotates a scene into it from its frame (z-up: +Z -> +Y;
PLY-style frames: 180 degrees about X; see ``_placement.to_y_up_rotation``) and records the
source frame in ``asset.extras.lyra_sim`` so this reader restores it; a foreign file reads in
the glTF frame ("opengl"). ``.gltf`` embeds its buffer as a base64 data URI; ``.glb`` is binary.

This module may import numpy, torch, ``lyra_sim.scene`` and ``lyra_sim.errors``.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
from lyra_sim.rotations import quat_xyzw_to_matrix, wxyz_to_xyzw, xyzw_to_wxyz
from lyra_sim.scene.formats._common import (
    alpha_to_logit,
    format_error,
    logit_to_alpha,
    normalized_quaternions,
    read_file_bytes,
    scene_from_arrays,
    scene_to_arrays,
    sniff_json,
)
from lyra_sim.scene.formats._placement import apply_affine, rotate_frame, to_y_up_rotation
from lyra_sim.scene.formats.spec import SceneFormatSpec
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata

GLB_MAGIC = b"glTF"
CHUNK_JSON, CHUNK_BIN = 0x4E4F534A, 0x004E4942
EXTENSION = "KHR_gaussian_splatting"
PREFIX = EXTENSION + ":"
# Extensions whose presence changes nothing this reader needs (quantised accessor types are read anyway).
UNDERSTOOD_EXTENSIONS = {EXTENSION, "KHR_mesh_quantization"}
COMPONENT_TYPES = {5120: ("i1", 127.0), 5121: ("u1", 255.0), 5122: ("<i2", 32767.0), 5123: ("<u2", 65535.0), 5125: ("<u4", None), 5126: ("<f4", None)}
TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
MAX_JSON_BYTES = 256 << 20


def is_glb(head: bytes) -> bool:
    return head[:4] == GLB_MAGIC


def looks_like_gltf_json(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("asset"), dict) and "version" in document["asset"]


def is_gltf_json(path: Path, head: bytes) -> bool:
    return looks_like_gltf_json(sniff_json(path, head, MAX_JSON_BYTES))


# ---------------------------------------------------------------------------------------- reading
def _parse_container(path: Path, data: bytes) -> tuple[dict, memoryview | None]:
    """The JSON document and the GLB binary chunk (None for .gltf)."""
    if not is_glb(data):
        try:
            return json.loads(data.decode("utf-8")), None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise format_error(path, f"not glTF JSON: {error}") from None
    if len(data) < 20:
        raise format_error(path, f"GLB too short ({len(data)} bytes)")
    _, version, length = struct.unpack_from("<4sII", data, 0)
    if version != 2:
        raise format_error(path, f"GLB container version {version}; only glTF 2 is supported")
    if length != len(data):
        raise format_error(path, f"GLB header says {length} bytes, the file has {len(data)}")
    document, binary, offset = None, None, 12
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from("<II", data, offset)
        if offset + 8 + size > len(data):
            raise format_error(path, f"GLB chunk at byte {offset} runs past the end ({size} bytes)")
        body = memoryview(data)[offset + 8 : offset + 8 + size]  # no copy of the (large) binary chunk
        if kind == CHUNK_JSON and document is None:
            try:
                document = json.loads(bytes(body).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
                raise format_error(path, f"GLB JSON chunk is not valid JSON: {error}") from None
        elif kind == CHUNK_BIN and binary is None:
            binary = body
        offset += 8 + size
    if document is None:
        raise format_error(path, "GLB has no JSON chunk")
    return document, binary


class _Document:
    """Typed access to one glTF document's buffers, views and accessors, with bounds checks."""

    def __init__(self, path: Path, document: dict, binary: bytes | memoryview | None) -> None:
        if not looks_like_gltf_json(document):
            raise format_error(path, "JSON has no glTF 'asset.version'")
        self.path, self.document, self.binary = path, document, binary
        self._buffers: dict[int, bytes | memoryview] = {}

    def error(self, message: str):
        return format_error(self.path, message)

    def list(self, key: str) -> list:
        value = self.document.get(key, [])
        if not isinstance(value, list):
            raise self.error(f"'{key}' must be a list")
        return value

    def item(self, key: str, index: Any) -> dict:
        items = self.list(key)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(items) or not isinstance(items[index], dict):
            raise self.error(f"{key}[{index!r}] does not exist ({len(items)} {key})"[:200])
        return items[index]

    def buffer(self, index: int) -> bytes | memoryview:
        if index in self._buffers:
            return self._buffers[index]
        buffer = self.item("buffers", index)
        uri = buffer.get("uri")
        if uri is None:
            if self.binary is None:
                raise self.error(f"buffers[{index}] has no uri and there is no GLB binary chunk")
            data = self.binary
        elif isinstance(uri, str) and uri.startswith("data:"):
            header, _, payload = uri.partition(",")
            if not header.endswith(";base64"):
                raise self.error(f"buffers[{index}] data URI is not base64")
            try:
                data = base64.b64decode(payload, validate=True)
            except ValueError as error:
                raise self.error(f"buffers[{index}] data URI is not valid base64: {error}") from None
        elif isinstance(uri, str):
            relative = Path(uri)
            if relative.is_absolute() or ".." in relative.parts or "://" in uri:
                raise self.error(f"buffers[{index}] uri {uri!r} points outside the file's folder")
            data = read_file_bytes(self.path.parent / relative)
        else:
            raise self.error(f"buffers[{index}] uri must be a string")
        length = buffer.get("byteLength")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0 or length > len(data):
            raise self.error(f"buffers[{index}] byteLength {length!r} does not fit its {len(data)} bytes of data")
        self._buffers[index] = data[:length]
        return self._buffers[index]

    def accessor(self, index: Any, widths: tuple[int, ...]) -> np.ndarray:  # [count, width] float32 (float data) or float64
        accessor = self.item("accessors", index)
        kind = accessor.get("type")
        if kind not in TYPE_WIDTHS or TYPE_WIDTHS[kind] not in widths:
            raise self.error(f"accessors[{index}] has type {kind!r}, expected width {widths}")
        width = TYPE_WIDTHS[kind]
        component = accessor.get("componentType")
        if component not in COMPONENT_TYPES:
            raise self.error(f"accessors[{index}] has unknown componentType {component!r}")
        dtype_name, normaliser = COMPONENT_TYPES[component]
        dtype = np.dtype(dtype_name)
        count = accessor.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise self.error(f"accessors[{index}] count {count!r} is not a non-negative integer")
        if "sparse" in accessor:
            raise self.error(f"accessors[{index}] is sparse; sparse accessors are not supported")
        if "bufferView" not in accessor:
            return np.zeros((count, width))
        view = self.item("bufferViews", accessor["bufferView"])
        buffer = self.buffer(view.get("buffer"))
        view_offset, view_length = view.get("byteOffset", 0), view.get("byteLength")
        offset = accessor.get("byteOffset", 0)
        element = dtype.itemsize * width
        stride = view.get("byteStride", element)
        for name, value in (("bufferView byteOffset", view_offset), ("byteLength", view_length), ("byteOffset", offset), ("byteStride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self.error(f"accessors[{index}] {name} {value!r} is not a non-negative integer")
        if stride < element:
            raise self.error(f"accessors[{index}] byteStride {stride} is smaller than its {element}-byte elements")
        if view_offset + view_length > len(buffer):
            raise self.error(f"bufferView of accessors[{index}] runs past its buffer ({view_offset}+{view_length} > {len(buffer)})")
        needed = offset + (stride * (count - 1) + element if count else 0)
        if needed > view_length:
            raise self.error(f"accessors[{index}] needs {needed} bytes, its bufferView holds {view_length}")
        values = np.ndarray((count, width), dtype=dtype, buffer=buffer, offset=view_offset + offset, strides=(stride, dtype.itemsize))
        if accessor.get("normalized") is True and normaliser is not None:
            return np.maximum(values.astype(np.float64) / normaliser, -1.0)
        return values.astype(np.float32 if dtype.kind == "f" else np.float64)  # float data stays float32


def read_gltf(path, data: bytes | None = None) -> GaussianScene:
    """Decode every ``KHR_gaussian_splatting`` primitive of a .gltf/.glb (node transforms applied)."""
    path = Path(path)
    data = read_file_bytes(path) if data is None else data
    document = _Document(path, *_parse_container(path, data))
    doc = document.document
    used = [e for e in doc.get("extensionsUsed", []) if isinstance(e, str)]
    required = [e for e in doc.get("extensionsRequired", []) if isinstance(e, str)]
    unsupported = [e for e in required if e not in UNDERSTOOD_EXTENSIONS]
    if unsupported:
        raise document.error(f"requires extension(s) {', '.join(unsupported)} that lyra-sim cannot decode")
    notes: list[str] = []
    parts: list[GaussianScene] = []
    properties: list[dict] = []
    for mesh_index, matrix in _mesh_instances(document):
        mesh = document.item("meshes", mesh_index)
        for primitive_index, primitive in enumerate(mesh.get("primitives", []) if isinstance(mesh.get("primitives"), list) else []):
            extension = (primitive.get("extensions") or {}).get(EXTENSION) if isinstance(primitive, dict) else None
            if not isinstance(extension, dict):
                continue
            where = f"meshes[{mesh_index}].primitives[{primitive_index}]"
            part = _read_primitive(document, primitive, extension, where, notes)
            try:
                part = apply_affine(part, matrix)
            except ValueError as error:
                raise document.error(f"{where}: node transform cannot be applied: {error}") from None
            parts.append(part)
            properties.append({key: extension[key] for key in ("kernel", "colorSpace", "projection", "sortingMethod") if key in extension})
            for name in (extension.get("extensions") or {}) if isinstance(extension.get("extensions"), dict) else ():
                notes.append(f"{where}: ignored {EXTENSION} sub-extension {name}")
    ours = (doc["asset"].get("extras") or {}).get("lyra_sim") if isinstance(doc["asset"].get("extras"), dict) else None
    ours = ours if isinstance(ours, dict) else {}
    if not parts:
        if ours.get("count") == 0:
            parts = [GaussianScene.empty()]
        else:
            raise document.error(f"no mesh primitive carries {EXTENSION} (extensionsUsed: {used})")
    scene = GaussianScene.concat(parts) if len(parts) > 1 else parts[0]
    frame = "opengl"
    rotation = ours.get("to_gltf")
    if isinstance(ours.get("frame"), str) and rotation is not None:
        try:
            rotation = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
            scene = rotate_frame(scene, rotation.T)
            frame = ours["frame"]
        except ValueError as error:
            notes.append(f"ignored asset.extras.lyra_sim frame record: {error}")
    skipped = sorted({e for e in used if e not in UNDERSTOOD_EXTENSIONS})
    if skipped:
        notes.append(f"ignored extension(s): {', '.join(skipped)}")
    metadata = SceneMetadata(source=str(path), format="gltf", frame=frame, metric=ours.get("metric") is True, notes=notes)
    metadata.extras.update(
        format_version=f"glTF {doc['asset'].get('version')} + {EXTENSION}",
        container="glb" if is_glb(data) else "gltf",
        skipped_extensions=skipped,
        splat_properties=properties[0] if properties else {},
    )
    scene.metadata = metadata
    return scene


def _node_matrix(document: _Document, node: dict, index: int) -> np.ndarray:
    if "matrix" in node:
        values = node["matrix"]
        if not isinstance(values, list) or len(values) != 16 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise document.error(f"nodes[{index}].matrix must be 16 finite numbers")
        return np.asarray(values, dtype=np.float64).reshape(4, 4).T  # glTF stores column-major
    matrix = np.eye(4)

    def vector(key: str, default: list[float]) -> np.ndarray:
        value = node.get(key, default)
        if not isinstance(value, list) or len(value) != len(default) or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
            raise document.error(f"nodes[{index}].{key} must be {len(default)} finite numbers")
        return np.asarray(value, dtype=np.float64)

    translation, rotation, scale = vector("translation", [0, 0, 0]), vector("rotation", [0, 0, 0, 1]), vector("scale", [1, 1, 1])
    if np.linalg.norm(rotation) < 1e-12:
        raise document.error(f"nodes[{index}].rotation is a zero quaternion")
    rotation_matrix = quat_xyzw_to_matrix(rotation)
    matrix[:3, :3] = rotation_matrix * scale[None, :]
    matrix[:3, 3] = translation
    return matrix


def _mesh_instances(document: _Document) -> list[tuple[int, np.ndarray]]:
    """(mesh index, world matrix) for every node of the default scene (all root nodes if none)."""
    doc = document.document
    nodes = document.list("nodes")
    scenes = document.list("scenes")
    if not scenes:  # a file without scenes: every mesh once, untransformed
        return [(index, np.eye(4)) for index in range(len(document.list("meshes")))]
    scene_index = doc.get("scene", 0)
    roots = document.item("scenes", scene_index).get("nodes", [])
    if not isinstance(roots, list):
        raise document.error(f"scenes[{scene_index}].nodes must be a list")
    instances, stack, visited = [], [(root, np.eye(4)) for root in roots], set()
    while stack:
        index, parent = stack.pop()
        node = document.item("nodes", index)
        if index in visited or len(visited) > len(nodes):
            raise document.error(f"node hierarchy has a cycle through nodes[{index}]")
        visited.add(index)
        world = parent @ _node_matrix(document, node, index)
        if "mesh" in node:
            instances.append((node["mesh"], world))
        children = node.get("children", [])
        stack.extend((child, world) for child in (children if isinstance(children, list) else []))
    return instances


def _read_primitive(document: _Document, primitive: dict, extension: dict, where: str, notes: list[str]) -> GaussianScene:
    attributes = primitive.get("attributes")
    if not isinstance(attributes, dict):
        raise document.error(f"{where} has no attributes")
    if primitive.get("mode", 4) != 0:
        notes.append(f"{where}: mode {primitive.get('mode', 4)} is not POINTS (0) as {EXTENSION} requires; read anyway")
    if extension.get("kernel", "ellipse") != "ellipse":
        notes.append(f"{where}: kernel {extension.get('kernel')!r} read as the ellipse kernel")
    missing = [name for name in ("POSITION", PREFIX + "ROTATION", PREFIX + "SCALE", PREFIX + "OPACITY") if name not in attributes]
    if missing:
        nested = sorted((extension.get("extensions") or {}) if isinstance(extension.get("extensions"), dict) else [])
        if nested:
            raise document.error(f"{where} stores its splats through {', '.join(nested)}, which lyra-sim cannot decode")
        raise document.error(f"{where} lacks required attribute(s) {', '.join(missing)}")
    means = document.accessor(attributes["POSITION"], (3,))
    n = len(means)

    def attribute(name: str, width: int) -> np.ndarray:
        values = document.accessor(attributes[name], (width,))
        if len(values) != n:
            raise document.error(f"{where}: {name} has {len(values)} values, POSITION has {n}")
        return values

    xyzw = attribute(PREFIX + "ROTATION", 4)
    scales = attribute(PREFIX + "SCALE", 3)
    opacity = attribute(PREFIX + "OPACITY", 1)[:, 0]
    if n and (scales < 0).any():
        log_scales = scales  # pre-ratification drafts stored log-space scales
        notes.append(f"{where}: SCALE has negative values, read as log-space (pre-ratification draft layout)")
    else:
        log_scales = np.log(np.maximum(scales.astype(np.float64), 1e-30))
    degree = 0
    while degree < 3 and all(f"{PREFIX}SH_DEGREE_{degree + 1}_COEF_{m}" in attributes for m in range(2 * degree + 3)):
        degree += 1
    partial = [name for name in attributes if name.startswith(f"{PREFIX}SH_DEGREE_{degree + 1}_")]
    if partial:
        raise document.error(f"{where}: SH degree {degree + 1} is partially defined ({', '.join(sorted(partial))})")
    sh = np.zeros((n, (degree + 1) ** 2, 3), dtype=np.float32)
    if PREFIX + "SH_DEGREE_0_COEF_0" in attributes:
        for band in range(degree + 1):
            for m in range(2 * band + 1):
                sh[:, band * band + m] = attribute(f"{PREFIX}SH_DEGREE_{band}_COEF_{m}", 3)
    elif "COLOR_0" in attributes:
        colour = document.accessor(attributes["COLOR_0"], (3, 4))[:, :3]
        sh[:, 0] = (colour - 0.5) / 0.28209479177387814
        notes.append(f"{where}: no SH_DEGREE_0_COEF_0; base colour taken from COLOR_0")
    else:
        notes.append(f"{where}: no colour attributes; Gaussians are grey")
    if (opacity < 0).any() or (opacity > 1).any():
        notes.append(f"{where}: OPACITY values outside [0, 1] clamped")
    quats = xyzw_to_wxyz(xyzw)
    metadata = SceneMetadata(format="gltf", frame="opengl")
    return scene_from_arrays(means, quats, log_scales, alpha_to_logit(np.clip(opacity, 0.0, 1.0)), sh, metadata)


# ---------------------------------------------------------------------------------------- writing
def write_gltf(scene: GaussianScene, path, *, binary: bool = True, keep_frame: bool = False, color_space: str = "srgb_rec709_display") -> None:
    """Write ``scene`` as one ``KHR_gaussian_splatting`` point primitive (float32 attributes).

    Args:
        binary: GLB (one binary file) when True, else glTF JSON with the buffer as a data URI.
        keep_frame: write the coordinates as they are instead of rotating them to glTF's +Y up.
        color_space: the extension's ``colorSpace`` ("srgb_rec709_display" for 3DGS training).
    """
    rotation = np.eye(3) if keep_frame else to_y_up_rotation(scene.metadata.frame)
    placed = rotate_frame(scene, rotation)
    arrays = scene_to_arrays(placed)
    n = len(scene)
    quats = normalized_quaternions(arrays["quats"])
    columns: list[tuple[str, np.ndarray, str]] = []
    if n:
        columns = [
            ("POSITION", arrays["means"], "VEC3"),
            (PREFIX + "ROTATION", wxyz_to_xyzw(quats), "VEC4"),
            (PREFIX + "SCALE", np.exp(arrays["log_scales"].astype(np.float64)), "VEC3"),
            (PREFIX + "OPACITY", logit_to_alpha(arrays["opacity_logits"]), "SCALAR"),
        ]
        for band in range(scene.sh_degree + 1):
            for m in range(2 * band + 1):
                columns.append((f"{PREFIX}SH_DEGREE_{band}_COEF_{m}", arrays["sh"][:, band * band + m], "VEC3"))
    blob, views, accessors, attributes = bytearray(), [], [], {}
    for name, values, kind in columns:
        values = np.ascontiguousarray(values, dtype="<f4").reshape(n, -1)
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": values.nbytes})
        accessor = {"bufferView": len(views) - 1, "componentType": 5126, "count": n, "type": kind}
        if name == "POSITION":  # glTF requires bounds on POSITION
            accessor.update(min=values.min(0).tolist(), max=values.max(0).tolist())
        accessors.append(accessor)
        attributes[name] = len(accessors) - 1
        blob += values.tobytes()  # every value is 4 bytes, so views stay 4-byte aligned
    record = {"frame": scene.metadata.frame, "metric": bool(scene.metadata.metric), "to_gltf": rotation.reshape(-1).tolist(), "count": n}
    document: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "lyra-sim", "extras": {"lyra_sim": record}},
        "extensionsUsed": [EXTENSION],
        "scene": 0,
        "scenes": [{"nodes": [0] if n else []}],
        "nodes": [{"mesh": 0, "name": "gaussians"}] if n else [],
    }
    if n:
        extension = {"kernel": "ellipse", "colorSpace": color_space, "projection": "perspective", "sortingMethod": "cameraDistance"}
        document["meshes"] = [{"name": "gaussians", "primitives": [{"attributes": attributes, "mode": 0, "extensions": {EXTENSION: extension}}]}]
        document.update(accessors=accessors, bufferViews=views, buffers=[{"byteLength": len(blob)}])
    if not binary:
        if n:
            document["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(bytes(blob)).decode("ascii")
        Path(path).write_text(json.dumps(document, separators=(",", ":")))
        return
    json_bytes = json.dumps(document, separators=(",", ":")).encode("utf-8")
    json_bytes += b" " * (-len(json_bytes) % 4)
    blob += b"\x00" * (-len(blob) % 4)
    chunks = struct.pack("<II", len(json_bytes), CHUNK_JSON) + json_bytes
    if n:
        chunks += struct.pack("<II", len(blob), CHUNK_BIN) + bytes(blob)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<4sII", GLB_MAGIC, 2, 12 + len(chunks)))
        handle.write(chunks)



FORMAT = SceneFormatSpec(
    "gltf", lambda path, head: is_glb(head) or is_gltf_json(path, head), read_gltf, write_gltf, extensions=(".glb", ".gltf"),
    max_sh_degree=3, write_options=("binary", "keep_frame", "color_space"), unsniffed=lambda path: None,
    options_from_name=lambda path: {"binary": not path.name.lower().endswith(".gltf")},
)

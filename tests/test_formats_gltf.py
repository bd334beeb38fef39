"""glTF / GLB with KHR_gaussian_splatting: a minimal hand-written file from the extension's
README, quantised and interleaved accessors, node transforms, legacy log scales, round trips in
every frame, corrupted inputs.
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import load_mutated_file
from lyra_sim import GaussianScene, SceneFormatError
from lyra_sim.scene.formats import gltf
from lyra_sim.scene.io import detect_format, load_scene, save_scene
from lyra_sim.scene.sh import SH_C0

P = "KHR_gaussian_splatting:"
POSITIONS = [(1.0, 2.0, 3.0), (-0.5, 0.0, 4.25)]
ROTATIONS_XYZW = [(0.0, 0.0, 0.0, 1.0), (0.5, -0.5, 0.5, 0.5)]
SCALES = [(0.01, 0.02, 0.5), (1.0, 0.25, 0.125)]
OPACITIES = [0.5, 0.9]
DC = [(0.1, -0.2, 0.3), (1.0, 0.0, -1.0)]
SH1 = [[(0.01 * (3 * i + m), -0.02, 0.03) for m in range(3)] for i in range(2)]


def minimal_document(extra_attributes: dict | None = None, **overrides) -> tuple[dict, bytes]:
    """The README's example primitive: float accessors, one bufferView per attribute, SH degree 1."""
    columns = [("POSITION", POSITIONS, "VEC3"), (P + "ROTATION", ROTATIONS_XYZW, "VEC4"), (P + "SCALE", SCALES, "VEC3"), (P + "OPACITY", [(o,) for o in OPACITIES], "SCALAR"), (P + "SH_DEGREE_0_COEF_0", DC, "VEC3")]
    columns += [(f"{P}SH_DEGREE_1_COEF_{m}", [SH1[i][m] for i in range(2)], "VEC3") for m in range(3)]
    blob, views, accessors, attributes = b"", [], [], {}
    for name, rows, kind in columns:
        data = b"".join(struct.pack(f"<{len(row)}f", *row) for row in rows)
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
        accessors.append({"bufferView": len(views) - 1, "componentType": 5126, "count": 2, "type": kind})
        attributes[name] = len(accessors) - 1
        blob += data
    attributes.update(extra_attributes or {})
    document = {
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_gaussian_splatting"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": attributes, "mode": 0, "extensions": {"KHR_gaussian_splatting": {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}}}]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
    }
    document.update(overrides)
    return document, blob


def write_gltf_json(path, document: dict, blob: bytes):
    document["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    path.write_text(json.dumps(document))
    return path


def write_glb(path, document: dict, blob: bytes):
    body = json.dumps(document).encode()
    body += b" " * (-len(body) % 4)
    blob += b"\0" * (-len(blob) % 4)
    chunks = struct.pack("<II", len(body), 0x4E4F534A) + body + struct.pack("<II", len(blob), 0x004E4942) + blob
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks)
    return path


def check_minimal(scene: GaussianScene) -> None:
    assert len(scene) == 2 and scene.sh_degree == 1 and scene.metadata.frame == "opengl"
    np.testing.assert_allclose(scene.means.numpy(), POSITIONS, atol=1e-7)
    np.testing.assert_allclose(scene.log_scales.numpy(), np.log(SCALES), rtol=1e-6)
    np.testing.assert_allclose(scene.opacities().numpy(), OPACITIES, rtol=1e-6)
    np.testing.assert_allclose(scene.quats.numpy(), [(w, x, y, z) for x, y, z, w in ROTATIONS_XYZW], atol=1e-7)
    np.testing.assert_allclose(scene.sh[:, 0].numpy(), DC, atol=1e-7)
    np.testing.assert_allclose(scene.sh[:, 1:4].numpy(), SH1, atol=1e-7)
    np.testing.assert_allclose(scene.colors()[0].numpy(), np.clip(0.5 + SH_C0 * np.array(DC[0]), 0, 1), rtol=1e-6)


def test_minimal_hand_written_gltf_and_glb(tmp_path):
    document, blob = minimal_document()
    a = write_gltf_json(tmp_path / "a.gltf", json.loads(json.dumps(document)), blob)
    b = write_glb(tmp_path / "b.glb", document, blob)
    for path in (a, b):
        assert detect_format(path) == "gltf"
        scene = load_scene(path)
        check_minimal(scene)
        assert scene.metadata.extras["format_version"] == "glTF 2.0 + KHR_gaussian_splatting"
        assert scene.metadata.extras["splat_properties"]["colorSpace"] == "srgb_rec709_display"


def test_quantised_interleaved_accessors_and_external_buffer(tmp_path):
    """ROTATION as normalised shorts and OPACITY as normalised bytes, POSITION/SCALE interleaved."""
    rows = b"".join(struct.pack("<3f3f", *p, *s) for p, s in zip(POSITIONS, SCALES))
    rotations = b"".join(struct.pack("<4h", *(round(c * 32767) for c in q)) for q in ROTATIONS_XYZW)
    opacity = bytes([round(o * 255) for o in OPACITIES]) + b"\0\0"
    dc = b"".join(struct.pack("<3f", *c) for c in DC)
    blob = rows + rotations + opacity + dc
    views = [
        {"buffer": 0, "byteOffset": 0, "byteLength": len(rows), "byteStride": 24},
        {"buffer": 0, "byteOffset": len(rows), "byteLength": len(rotations)},
        {"buffer": 0, "byteOffset": len(rows) + len(rotations), "byteLength": 2},
        {"buffer": 0, "byteOffset": len(rows) + len(rotations) + 4, "byteLength": len(dc)},
    ]
    accessors = [
        {"bufferView": 0, "componentType": 5126, "count": 2, "type": "VEC3"},
        {"bufferView": 0, "byteOffset": 12, "componentType": 5126, "count": 2, "type": "VEC3"},
        {"bufferView": 1, "componentType": 5122, "normalized": True, "count": 2, "type": "VEC4"},
        {"bufferView": 2, "componentType": 5121, "normalized": True, "count": 2, "type": "SCALAR"},
        {"bufferView": 3, "componentType": 5126, "count": 2, "type": "VEC3"},
    ]
    attributes = {"POSITION": 0, P + "SCALE": 1, P + "ROTATION": 2, P + "OPACITY": 3, P + "SH_DEGREE_0_COEF_0": 4}
    (tmp_path / "data.bin").write_bytes(blob)
    document = {
        "asset": {"version": "2.0"},
        "meshes": [{"primitives": [{"attributes": attributes, "mode": 0, "extensions": {"KHR_gaussian_splatting": {"kernel": "ellipse", "colorSpace": "lin_rec709_display"}}}]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob), "uri": "data.bin"}],
    }
    (tmp_path / "q.gltf").write_text(json.dumps(document))
    scene = load_scene(tmp_path / "q.gltf")
    np.testing.assert_allclose(scene.means.numpy(), POSITIONS, atol=1e-7)
    np.testing.assert_allclose(scene.scales().numpy(), SCALES, rtol=1e-6)
    np.testing.assert_allclose(scene.rotations().numpy(), [(w, x, y, z) for x, y, z, w in ROTATIONS_XYZW], atol=1e-4)
    np.testing.assert_allclose(scene.opacities().numpy(), [round(o * 255) / 255 for o in OPACITIES], rtol=1e-5)


def test_node_transforms_are_applied(tmp_path):
    document, blob = minimal_document()
    angle = math.pi / 2  # 90 degrees about Z, uniform scale 2, then a translation
    document["nodes"] = [{"children": [1], "translation": [10.0, 0.0, 0.0]}, {"mesh": 0, "rotation": [0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)], "scale": [2.0, 2.0, 2.0]}]
    scene = load_scene(write_glb(tmp_path / "n.glb", document, blob))
    expected = [(10.0 - 2 * y, 2 * x, 2 * z) for x, y, z in POSITIONS]
    np.testing.assert_allclose(scene.means.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(scene.log_scales.numpy(), np.log(np.array(SCALES) * 2), rtol=1e-5)
    # non-uniform scale: the covariance must be A Sigma A^T exactly
    document["nodes"] = [{"mesh": 0, "scale": [1.0, 3.0, 0.5]}]
    stretched = load_scene(write_glb(tmp_path / "s.glb", document, blob))
    plain = load_scene(write_glb(tmp_path / "p.glb", minimal_document()[0], blob))
    a = torch.diag(torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64))

    def covariance(scene):
        m = scene.rotation_matrices().double() * scene.scales().double()[:, None, :]
        return m @ m.transpose(1, 2)

    np.testing.assert_allclose(covariance(stretched).numpy(), (a @ covariance(plain) @ a.T).numpy(), rtol=1e-4, atol=1e-7)


def test_legacy_log_space_scales_are_recognised(tmp_path):
    document, blob = minimal_document()
    offset = document["bufferViews"][document["accessors"][2]["bufferView"]]["byteOffset"]
    logs = b"".join(struct.pack("<3f", *np.log(s)) for s in SCALES)
    blob = blob[:offset] + logs + blob[offset + len(logs) :]
    scene = load_scene(write_glb(tmp_path / "legacy.glb", document, blob))
    np.testing.assert_allclose(scene.scales().numpy(), SCALES, rtol=1e-5)
    assert any("log-space" in note for note in scene.metadata.notes)


@pytest.mark.parametrize("name", ["a.glb", "a.gltf"])
@pytest.mark.parametrize("frame", ["z-up", "unknown", "opengl", "opencv-first-camera"])
def test_round_trip_restores_frame_and_values(tmp_path, name, frame, capture_like):
    scene = capture_like(500, frame=frame)
    before = scene.clone()
    back = load_scene(save_scene(scene, tmp_path / name))
    for key in ("means", "quats", "log_scales", "opacity_logits", "sh"):  # the writer leaves its input alone
        assert torch.equal(getattr(scene, key), getattr(before, key))
    assert back.metadata.frame == frame and back.metadata.metric == scene.metadata.metric
    assert torch.allclose(back.means, scene.means, atol=1e-5)
    assert torch.allclose(back.log_scales, scene.log_scales, atol=1e-5)
    assert torch.allclose(back.opacity_logits, scene.opacity_logits, atol=1e-4)  # float32 of sigmoid then logit
    assert torch.allclose(back.sh, scene.sh, atol=1e-5)
    assert ((back.rotations() * scene.rotations()).sum(-1).abs() > 1 - 1e-6).all()


def test_written_file_follows_the_extension(tmp_path, capture_like):
    scene = capture_like(50, frame="z-up")
    path = save_scene(scene, tmp_path / "w.glb")
    data = path.read_bytes()
    assert data[:4] == b"glTF" and struct.unpack_from("<I", data, 8)[0] == len(data)
    length = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20 : 20 + length])
    primitive = document["meshes"][0]["primitives"][0]
    assert primitive["mode"] == 0 and primitive["extensions"]["KHR_gaussian_splatting"]["kernel"] == "ellipse"
    assert {f"{P}SH_DEGREE_3_COEF_{m}" for m in range(7)} <= set(primitive["attributes"])
    assert document["accessors"][primitive["attributes"]["POSITION"]]["min"] is not None
    # glTF is +Y up: the z-up scene's heights are now the file's y
    position = document["accessors"][primitive["attributes"]["POSITION"]]
    assert position["max"][1] == pytest.approx(scene.means[:, 2].max().item(), abs=1e-5)
    foreign = json.loads(json.dumps(document))
    del foreign["asset"]["extras"]
    body = json.dumps(foreign).encode() + b" " * (-len(json.dumps(foreign).encode()) % 4)
    binary = data[20 + length :]
    (tmp_path / "foreign.glb").write_bytes(b"glTF" + struct.pack("<II", 2, 12 + 8 + len(body) + len(binary)) + struct.pack("<II", len(body), 0x4E4F534A) + body + binary)
    foreign_scene = load_scene(tmp_path / "foreign.glb")
    assert foreign_scene.metadata.frame == "opengl"
    assert torch.allclose(foreign_scene.means[:, 1], scene.means[:, 2], atol=1e-5)


def corrupt_cases():
    document, blob = minimal_document()
    yield "required extension", dict(document, extensionsRequired=["KHR_spz_gaussian_splats_compression"]), blob, "cannot decode"
    bad = json.loads(json.dumps(document))
    bad["accessors"][0]["count"] = 1000
    yield "accessor past its view", bad, blob, "needs"
    bad = json.loads(json.dumps(document))
    del bad["meshes"][0]["primitives"][0]["attributes"][P + "SCALE"]
    yield "missing scale", bad, blob, "lacks required"
    bad = json.loads(json.dumps(document))
    del bad["meshes"][0]["primitives"][0]["attributes"][P + "SH_DEGREE_1_COEF_2"]
    yield "partial SH degree", bad, blob, "partially defined"
    bad = json.loads(json.dumps(document))
    bad["nodes"][0]["scale"] = [1.0, -1.0, 1.0]
    yield "mirroring node", bad, blob, "mirrors"
    bad = json.loads(json.dumps(document))
    bad["bufferViews"][0]["byteOffset"] = 10**9
    yield "view past the buffer", bad, blob, "past its buffer"
    bad = json.loads(json.dumps(document))
    bad["nodes"] = [{"children": [0], "mesh": 0}]
    yield "node cycle", bad, blob, "cycle"
    bad = json.loads(json.dumps(document))
    bad["meshes"][0]["primitives"][0]["extensions"] = {}
    yield "no splat primitive", bad, blob, "no mesh primitive"
    bad = json.loads(json.dumps(document))
    primitive = bad["meshes"][0]["primitives"][0]
    primitive["attributes"] = {"POSITION": 0}
    primitive["extensions"]["KHR_gaussian_splatting"]["extensions"] = {"KHR_gaussian_splatting_compression_spz_2": {"bufferView": 0}}
    yield "compressed splats", bad, blob, "compression_spz_2, which lyra-sim cannot decode"


@pytest.mark.parametrize("case", list(corrupt_cases()), ids=lambda case: case[0])
def test_corrupted_documents_raise_scene_format_error(tmp_path, case):
    _, document, blob, message = case
    path = write_glb(tmp_path / "c.glb", document, blob)
    with pytest.raises(SceneFormatError, match=message) as raised:
        load_scene(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("mutate", ["truncate", "length", "json"])
def test_corrupted_containers_raise_scene_format_error(tmp_path, mutate, capture_like):
    data = save_scene(capture_like(20, frame="unknown"), tmp_path / "a.glb").read_bytes()
    if mutate == "truncate":
        data = data[: len(data) // 2]
    elif mutate == "length":
        data = data[:8] + struct.pack("<I", 999) + data[12:]
    else:
        data = data[:20] + b"#" + data[21:]
    (tmp_path / "b.glb").write_bytes(data)
    with pytest.raises(SceneFormatError):
        load_scene(tmp_path / "b.glb")
    accessors = [{"bufferView": 0, "componentType": 5126, "count": 1, "type": kind} for kind in ("VEC3", "VEC4", "VEC3", "SCALAR")]
    attributes = {"POSITION": 0, P + "ROTATION": 1, P + "SCALE": 2, P + "OPACITY": 3}
    escaping = {
        "asset": {"version": "2.0"},
        "buffers": [{"uri": "../../etc/passwd", "byteLength": 16}],
        "bufferViews": [{"buffer": 0, "byteLength": 16}],
        "accessors": accessors,
        "meshes": [{"primitives": [{"mode": 0, "attributes": attributes, "extensions": {"KHR_gaussian_splatting": {}}}]}],
    }
    (tmp_path / "c.gltf").write_text(json.dumps(escaping))
    with pytest.raises(SceneFormatError, match="outside"):
        load_scene(tmp_path / "c.gltf")


def test_glb_reader_is_the_module_entry(tmp_path, capture_like):
    path = save_scene(capture_like(10, frame="unknown"), tmp_path / "x.glb")
    assert len(gltf.read_gltf(path)) == 10


FUZZ_SETTINGS = settings(max_examples=int(os.environ.get("LYRA_FUZZ_EXAMPLES", "40")), deadline=None, database=None, suppress_health_check=list(HealthCheck))
SEED_GLB = write_glb(Path(tempfile.mkdtemp()) / "seed.glb", *minimal_document()).read_bytes()


@FUZZ_SETTINGS
@given(st.data())
def test_fuzzed_glb_raises_only_scene_format_error(data):
    load_mutated_file(SEED_GLB, data, ".glb")

"""INRIA / Lyra PLY: hand-written headers and bodies, exact round trips, validation errors."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import torch

from lyra_sim import GaussianScene, SceneFormatError
from lyra_sim.scene.io import detect_format, load_scene, save_scene
from lyra_sim.scene.sh import num_sh_bases


def random_scene(n: int, degree: int, seed: int = 0) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    return GaussianScene(
        torch.randn(n, 3, generator=g) * 4,
        torch.randn(n, 4, generator=g),
        torch.randn(n, 3, generator=g) - 4,
        torch.randn(n, generator=g) * 3,
        torch.randn(n, num_sh_bases(degree), 3, generator=g),
    )


def ply_bytes(names_types: list[tuple[str, str]], rows: list[list[float]], encoding="binary_little_endian", extra_header="") -> bytes:
    """A vertex-only PLY packed with struct, independent of the writer under test."""
    header = f"ply\nformat {encoding} 1.0\n{extra_header}element vertex {len(rows)}\n"
    header += "".join(f"property {kind} {name}\n" for name, kind in names_types) + "end_header\n"
    codes = {"float": "f", "double": "d", "uchar": "B", "int": "i", "float32": "f"}
    if encoding == "ascii":
        return (header + "".join(" ".join(repr(v) for v in row) + "\n" for row in rows)).encode()
    order = "<" if encoding == "binary_little_endian" else ">"
    fmt = order + "".join(codes[kind] for _, kind in names_types)
    return header.encode() + b"".join(struct.pack(fmt, *row) for row in rows)


def inria_rows(scene: GaussianScene) -> tuple[list[str], list[list[float]]]:
    """INRIA names and rows, with f_rest laid out channel-major by explicit loops (FORMATS.md 2.3)."""
    k = num_sh_bases(scene.sh_degree) - 1
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * k)] + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rows = []
    for i in range(len(scene)):
        rest = [scene.sh[i, 1 + j, c].item() for c in range(3) for j in range(k)]
        rows.append(
            scene.means[i].tolist() + [0.0, 0.0, 0.0] + scene.sh[i, 0].tolist() + rest
            + [scene.opacity_logits[i].item()] + scene.log_scales[i].tolist() + scene.quats[i].tolist()
        )  # fmt: skip
    return names, rows


def assert_same_scene(a: GaussianScene, b: GaussianScene, atol: float = 0.0) -> None:
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=atol, rtol=0)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("encoding", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_reads_hand_packed_inria_files(tmp_path, degree, encoding):
    scene = random_scene(20, degree, seed=degree)
    names, rows = inria_rows(scene)
    path = tmp_path / "scene.ply"
    path.write_bytes(ply_bytes([(n, "float") for n in names], rows, encoding))
    assert detect_format(path) == "ply"
    back = load_scene(path)
    assert back.sh_degree == degree and back.metadata.extras["ply_encoding"] == encoding
    assert_same_scene(back, scene, atol=1e-6 if encoding == "ascii" else 0.0)  # repr() of float32 via float64 is exact


def test_properties_by_name_in_any_order_and_type_with_numeric_f_rest_sorting(tmp_path):
    scene = random_scene(6, 2, seed=5)
    names, rows = inria_rows(scene)
    order = list(reversed(range(len(names))))  # f_rest_23 ... f_rest_0: lexicographic sorting would break
    kinds = ["double" if i % 2 else "float" for i in range(len(names))]
    extra = [("confidence", "uchar")]
    shuffled = [(names[i], kinds[i]) for i in order] + extra
    packed_rows = [[row[i] for i in order] + [7] for row in rows]
    path = tmp_path / "shuffled.ply"
    path.write_bytes(ply_bytes(shuffled, packed_rows, extra_header="comment made by hand\nobj_info nothing\n"))
    back = load_scene(path)
    assert_same_scene(back, scene, atol=1e-6)
    assert any("confidence" in note for note in back.metadata.notes)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("encoding", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_round_trip_is_exact(tmp_path, degree, encoding):
    scene = random_scene(64, degree, seed=degree + 10)
    scene.metadata.frame, scene.metadata.metric = "z-up", True
    back = load_scene(save_scene(scene, tmp_path / "rt.ply", encoding=encoding))
    assert_same_scene(back, scene)
    assert back.metadata.frame == "z-up" and back.metadata.metric and back.metadata.format == "ply"


def test_writer_layout_matches_the_inria_recipe(tmp_path):
    scene = random_scene(3, 3)
    data = save_scene(scene, tmp_path / "a.ply").read_bytes()
    header, body = data.split(b"end_header\n", 1)
    lines = header.decode().splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"] and "element vertex 3" in lines
    properties = [line.split()[2] for line in lines if line.startswith("property float")]
    assert properties == inria_rows(scene)[0] and len(body) == 3 * 62 * 4  # 248-byte records
    values = np.frombuffer(body, "<f4").reshape(3, 62)
    np.testing.assert_array_equal(values[:, 3:6], 0)  # normals
    np.testing.assert_array_equal(values[:, 9:24], scene.sh[:, 1:, 0].numpy())  # f_rest_0..14 = red


def test_lyra_ply_is_detected_and_marked_with_its_frame(tmp_path):
    scene = random_scene(10, 0)
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rows = [scene.means[i].tolist() + scene.sh[i, 0].tolist() + [scene.opacity_logits[i].item()] + scene.log_scales[i].tolist() + scene.quats[i].tolist() for i in range(10)]
    path = tmp_path / "lyra.ply"
    path.write_bytes(ply_bytes([(n, "float") for n in names], rows))
    assert detect_format(path) == "lyra_ply"
    back = load_scene(path)
    assert back.metadata.format == "lyra_ply" and back.metadata.frame == "opencv-first-camera" and not back.metadata.metric
    assert_same_scene(back, scene)
    # Our Lyra writer produces the same layout and reads back identically.
    written = save_scene(scene, tmp_path / "ours.ply", format="lyra_ply")
    assert written.read_bytes().split(b"end_header\n")[1] == path.read_bytes().split(b"end_header\n")[1]
    assert detect_format(written) == "lyra_ply"


def test_lyra_writer_truncates_sh_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="truncated"):
        path = save_scene(random_scene(4, 2), tmp_path / "l.ply", format="lyra_ply")
    assert load_scene(path).sh_degree == 0


def test_activated_values_under_raw_names_are_flagged(tmp_path):
    scene = GaussianScene(torch.randn(32, 3), torch.randn(32, 4), torch.rand(32, 3) + 0.01, torch.rand(32), torch.randn(32, 1, 3))
    path = save_scene(scene, tmp_path / "act.ply")
    with pytest.warns(UserWarning, match="activated"):
        back = load_scene(path)
    assert any("activated" in note for note in back.metadata.notes)


def test_colour_only_point_cloud_gets_default_gaussians(tmp_path):
    path = tmp_path / "cloud.ply"
    path.write_bytes(ply_bytes([("x", "float"), ("y", "float"), ("z", "float"), ("red", "uchar"), ("green", "uchar"), ("blue", "uchar")], [[1, 2, 3, 255, 0, 51]]))
    scene = load_scene(path)
    np.testing.assert_allclose(scene.colors()[0].numpy(), [1.0, 0.0, 0.2], atol=1e-6)
    np.testing.assert_allclose(scene.scales()[0].numpy(), [0.01] * 3, rtol=1e-5)
    assert scene.opacities()[0] > 0.999


def test_degree_four_is_truncated_to_three(tmp_path):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(72)] + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rest = list(range(72))  # channel-major: red k=1..24 are 0..23
    path = tmp_path / "d4.ply"
    path.write_bytes(ply_bytes([(n, "float") for n in names], [[0, 0, 0, 0.1, 0.2, 0.3] + rest + [0, -1, -1, -1, 1, 0, 0, 0]]))
    scene = load_scene(path)
    assert scene.sh_degree == 3 and any("degree-4" in n for n in scene.metadata.notes)
    assert scene.sh[0, 1:, 0].tolist() == list(range(15)) and scene.sh[0, 1:, 1].tolist() == list(range(24, 39))


# ------------------------------------------------------------------ malformed files
def good_file() -> bytes:
    names, rows = inria_rows(random_scene(4, 1))
    return ply_bytes([(n, "float") for n in names], rows)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d[:-5], "truncated"),
        (lambda d: d.replace(b"element vertex 4", b"element vertex 4000000000"), "4000000000 records"),
        (lambda d: d.replace(b"property float opacity\n", b""), "lacks required properties \\['opacity'\\]"),
        (lambda d: d.replace(b"property float f_rest_8\n", b""), "unknown SH layout"),
        (lambda d: d.replace(b"property float f_rest_8\n", b"property float f_rest_8\nproperty float f_rest_9\n"), "unknown SH layout"),
        (lambda d: d.replace(b"end_header", b"end_headr"), "end_header"),
        (lambda d: d.replace(b"binary_little_endian", b"binary_middle_endian"), "unsupported format"),
        (lambda d: d.replace(b"property float x", b"property quad x"), "unsupported property"),
        (lambda d: d.replace(b"comment", b"remark").replace(b"element vertex", b"bogus\nelement vertex", 1), "unknown keyword"),
        (lambda d: d.replace(b"element vertex", b"element face"), "no 'vertex' element"),
    ],
)
def test_malformed_files_raise_scene_format_error(tmp_path, mutate, message):
    path = tmp_path / "bad.ply"
    path.write_bytes(mutate(good_file()))
    with pytest.raises(SceneFormatError, match=message) as info:
        load_scene(path)
    assert str(path) in str(info.value)


def test_non_finite_values_and_zero_quaternions_are_reported_with_counts(tmp_path):
    scene = random_scene(10, 0)
    scene.means[0, 0] = float("nan")
    scene.log_scales[1:3, 1] = float("inf")
    scene.quats[4] = 0
    path = save_scene(scene, tmp_path / "nan.ply")
    with pytest.raises(SceneFormatError, match="1 with non finite mean, 2 with non finite scale, 1 with zero quat") as info:
        load_scene(path)
    assert "nan.ply" in str(info.value) and "out of 10" in str(info.value)
    dropped = load_scene(path, invalid="drop")
    assert len(dropped) == 6 and "dropped 4 of 10" in dropped.metadata.notes[-1]
    assert len(load_scene(path, invalid="keep")) == 10


def test_trailing_elements_are_ignored_with_a_note(tmp_path):
    data = good_file().replace(b"end_header\n", b"element camera 1\nproperty float fx\nend_header\n") + struct.pack("<f", 500.0)
    path = tmp_path / "cam.ply"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene = load_scene(path)
    assert len(scene) == 4 and any("camera" in note for note in scene.metadata.notes)

"""``lyra-sim info`` and ``lyra-sim convert`` through the CLI entry point."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from lyra_sim import GaussianScene
from lyra_sim.cli import main
from lyra_sim.scene.io import load_scene, save_scene


def make_scene(n: int = 50, degree: int = 2) -> GaussianScene:
    g = torch.Generator().manual_seed(n)
    scene = GaussianScene(torch.rand(n, 3, generator=g) * 4 - 2, torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 2 - 5, torch.randn(n, generator=g), torch.rand(n, (degree + 1) ** 2, 3, generator=g) - 0.5)
    scene.means[0] = torch.tensor([-2.0, -2.0, -2.0])
    scene.means[1] = torch.tensor([2.0, 2.0, 2.0])
    return scene


def info_json(path, capsys) -> dict:
    assert main(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.filterwarnings("ignore:.*truncated")
@pytest.mark.parametrize(
    "name, options, expected_format, expected_degree",
    [
        ("a.ply", {}, "ply", 2),
        ("b.ply", {"format": "lyra_ply"}, "lyra_ply", 0),
        ("c.spz", {}, "spz", 2),
        ("d.spz", {"version": 2}, "spz", 2),
        ("e.splat", {}, "splat", 0),
    ],
)
def test_info_reports_counts_for_each_format(tmp_path, capsys, name, options, expected_format, expected_degree):
    path = save_scene(make_scene(), tmp_path / name, **options)
    summary = info_json(path, capsys)
    assert summary["format"] == expected_format and summary["count"] == 50 and summary["sh_degree"] == expected_degree
    assert summary["bounds_min"] == pytest.approx([-2, -2, -2], abs=1e-3)
    assert summary["bounds_max"] == pytest.approx([2, 2, 2], abs=1e-3)
    assert 0 < summary["opacity"]["min"] <= summary["opacity"]["median"] <= summary["opacity"]["max"] < 1
    assert summary["scale"]["max"] <= 1.0
    for low, p01 in zip(summary["bounds_min"], summary["bounds_p01"]):
        assert low <= p01


def test_info_on_compressed_ply_and_checkpoint(tmp_path, capsys):
    torch.save({"splats": {"means": torch.zeros(7, 3), "scales": torch.zeros(7, 3), "quats": torch.ones(7, 4), "opacities": torch.zeros(7), "sh0": torch.zeros(7, 1, 3)}}, tmp_path / "c.pt")
    assert info_json(tmp_path / "c.pt", capsys)["count"] == 7
    header = "ply\nformat binary_little_endian 1.0\nelement chunk 1\n" + "".join(f"property float {n}\n" for n in [
        "min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"
    ]) + "element vertex 3\n" + "".join(f"property uint {n}\n" for n in ("packed_position", "packed_rotation", "packed_scale", "packed_color")) + "end_header\n"  # fmt: skip
    body = struct.pack("<12f", 0, 0, 0, 1, 1, 1, -3, -3, -3, -1, -1, -1) + struct.pack("<4I", 0, 0x29037B21, 0, 0x808080FF) * 3
    (tmp_path / "c.ply").write_bytes(header.encode() + body)
    summary = info_json(tmp_path / "c.ply", capsys)
    assert summary["format"] == "compressed_ply" and summary["count"] == 3


def test_info_text_and_errors(tmp_path, capsys):
    path = save_scene(make_scene(), tmp_path / "a.ply")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "count       50" in out and "sh degree   2" in out and "opacity" in out
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n")
    assert main(["info", str(tmp_path / "bad.ply")]) == 1
    assert "bad.ply" in capsys.readouterr().err


def test_info_on_a_sequence_folder(tmp_path, capsys):
    for index in range(3):
        save_scene(make_scene(10 + index), tmp_path / "seq" / f"{index}.ply")
    summary = info_json(tmp_path / "seq", capsys)
    assert summary["format"] == "sequence" and summary["frames"] == 3 and summary["count"] == 33


def test_convert_between_formats_with_options(tmp_path, capsys):
    source = save_scene(make_scene(), tmp_path / "in.ply")
    assert main(["convert", str(source), str(tmp_path / "out.spz"), "--spz-version", "3", "--sh-degree", "1"]) == 0
    converted = load_scene(tmp_path / "out.spz")
    assert converted.metadata.extras["spz_version"] == 3 and converted.sh_degree == 1 and len(converted) == 50
    assert main(["convert", str(tmp_path / "out.spz"), str(tmp_path / "raw.ply"), "--keep-spz-frame"]) == 0
    raw = load_scene(tmp_path / "raw.ply")
    torch.testing.assert_close(raw.means[:, 1:], -converted.means[:, 1:])  # still in spz's RUB frame
    assert main(["convert", str(source), str(tmp_path / "a.txt"), "--format", "ply", "--ply-encoding", "ascii"]) == 0
    torch.testing.assert_close(load_scene(tmp_path / "a.txt").sh, make_scene().sh)
    capsys.readouterr()
    assert main(["convert", str(source), str(tmp_path / "x.obj")]) == 1  # unknown extension: a one-line error
    assert "cannot tell the format" in capsys.readouterr().err

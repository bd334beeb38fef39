"""Capture output folders in load_scene / lyra-sim info, and lyra-sim convert between every
readable and writable format pair."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from lyra_sim import GaussianScene, SceneFormatError
from lyra_sim.cli import main
from lyra_sim.scene.io import FORMATS, load_scene, save_scene


def make_scene(n: int, seed: int = 0, degree: int = 3) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    return GaussianScene(torch.rand(n, 3, generator=g) * 4 - 2, torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 2 - 5, torch.randn(n, generator=g), (torch.rand(n, (degree + 1) ** 2, 3, generator=g) - 0.5) * 0.5)


def test_inria_output_folder_picks_the_latest_iteration_and_its_cameras(tmp_path):
    for iteration, n in ((7000, 10), (30000, 25), (900, 5)):
        folder = tmp_path / "output" / "point_cloud" / f"iteration_{iteration}"
        folder.mkdir(parents=True)
        save_scene(make_scene(n), folder / "point_cloud.ply")
    (tmp_path / "output" / "cameras.json").write_text("[]")
    (tmp_path / "output" / "input.ply").write_bytes(b"not read")
    scene = load_scene(tmp_path / "output")
    assert len(scene) == 25
    assert scene.metadata.extras["capture_folder"]["kind"] == "inria"
    assert scene.metadata.extras["capture_folder"]["cameras_file"].endswith("cameras.json")
    assert len(load_scene(tmp_path / "output" / "point_cloud")) == 25  # the point_cloud folder itself


def test_gsplat_results_and_single_file_folders(tmp_path):
    (tmp_path / "results" / "ply").mkdir(parents=True)
    save_scene(make_scene(8), tmp_path / "results" / "ply" / "point_cloud_6999.ply")
    save_scene(make_scene(12), tmp_path / "results" / "ply" / "point_cloud_29999.ply")
    assert len(load_scene(tmp_path / "results")) == 12
    (tmp_path / "export").mkdir()
    save_scene(make_scene(9), tmp_path / "export" / "splat.ply")
    (tmp_path / "export" / "notes.txt").write_text("hello")
    scene = load_scene(tmp_path / "export")
    assert len(scene) == 9 and scene.metadata.extras["capture_folder"]["kind"] == "single-file"


def test_folders_that_are_not_one_scene_raise_scene_format_error(tmp_path):
    (tmp_path / "two").mkdir()
    save_scene(make_scene(3), tmp_path / "two" / "a.ply")
    save_scene(make_scene(4), tmp_path / "two" / "b.spz")
    with pytest.raises(SceneFormatError, match="load_sequence"):
        load_scene(tmp_path / "two")
    (tmp_path / "none").mkdir()
    with pytest.raises(SceneFormatError, match="no scene file"):
        load_scene(tmp_path / "none")
    (tmp_path / "broken" / "point_cloud" / "iteration_5").mkdir(parents=True)
    with pytest.raises(SceneFormatError, match="no point_cloud.ply"):
        load_scene(tmp_path / "broken")


def test_info_on_capture_and_sog_folders(tmp_path, capsys):
    folder = tmp_path / "out" / "point_cloud" / "iteration_100"
    folder.mkdir(parents=True)
    save_scene(make_scene(30), folder / "point_cloud.ply")
    assert main(["info", str(tmp_path / "out"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 30 and summary["format"] == "ply" and summary["file_bytes"] > 0
    (tmp_path / "sog").mkdir()
    save_scene(make_scene(40), tmp_path / "sog" / "meta.json")
    assert main(["info", str(tmp_path / "sog")]) == 0
    text = capsys.readouterr().out
    assert "format      sog" in text and "version     2" in text and "count       40" in text


SOURCES = {
    "ply": "s.ply",
    "compressed_ply": "s.compressed.ply",
    "splat": "s.splat",
    "spz": "s.spz",
    "sog": "s.sog",
    "sog_folder": "sogdir/meta.json",
    "glb": "s.glb",
    "gltf": "s.gltf",
    "usd": "s.usd",
    "usda": "s.usda",
    "gsplat_pt": "s.pt",
}
TARGETS = ["t.ply", "t.compressed.ply", "t.splat", "t.spz", "t.sog", "t_meta/meta.json", "t.glb", "t.gltf", "t.usdc", "t.usda"]
# Position error each format's quantisation allows for a scene within +-2 (absolute, generous).
POSITION_TOLERANCE = {"compressed_ply": 5e-3, "spz": 5e-3, "sog": 5e-4}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    scene = make_scene(60)
    (folder / "sogdir").mkdir()
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, file in SOURCES.items():
            if name == "gsplat_pt":
                torch.save({"splats": {"means": scene.means, "scales": scene.log_scales, "quats": scene.quats, "opacities": scene.opacity_logits, "sh0": scene.sh[:, :1], "shN": scene.sh[:, 1:]}}, folder / file)
                paths[name] = folder / file
            else:
                paths[name] = save_scene(scene, folder / file)
    return scene, paths


@pytest.mark.filterwarnings("ignore:.*truncated")
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_convert_every_readable_to_every_writable_format(tmp_path, capsys, sources, source):
    scene, paths = sources
    (tmp_path / "t_meta").mkdir()
    source_format = load_scene(paths[source]).metadata.format
    assert {"ply", "compressed_ply", "splat", "spz", "sog", "gltf", "usd"} <= {name for name, spec in FORMATS.items() if spec.write}
    for target in TARGETS:
        output = tmp_path / target
        assert main(["convert", str(paths[source]), str(output)]) == 0, (source, target)
        assert "wrote 60 Gaussians" in capsys.readouterr().out
        back = load_scene(output)
        assert len(back) == 60
        tolerance = max(POSITION_TOLERANCE.get(source_format, 1e-4), POSITION_TOLERANCE.get(back.metadata.format, 1e-4))
        # SOG and compressed PLY reorder Gaussians (Morton order): compare the sorted coordinates
        for axis in range(3):
            a, b = torch.sort(back.means[:, axis]).values, torch.sort(scene.means[:, axis]).values
            assert torch.allclose(a, b, atol=2 * tolerance + 1e-5), (source, target, (a - b).abs().max())


def test_convert_reads_a_capture_folder(tmp_path, capsys):
    folder = tmp_path / "out" / "point_cloud" / "iteration_30000"
    folder.mkdir(parents=True)
    save_scene(make_scene(33), folder / "point_cloud.ply")
    assert main(["convert", str(tmp_path / "out"), str(tmp_path / "scene.glb")]) == 0
    assert "wrote 33 Gaussians" in capsys.readouterr().out
    assert len(load_scene(tmp_path / "scene.glb")) == 33

"""``lyra-sim build`` from a PLY file with automatic object segmentation, then ``lyra-sim info``."""

import json

import numpy as np
import pytest

from lyra_sim.cli import main
from lyra_sim.geometry.analytic import tabletop_scene
from lyra_sim.scene.io import save_scene


def test_build_command_segments_an_object_and_info_reads_the_bundle(tmp_path, capsys):
    analytic = tabletop_scene(4000, floor_size=1.0, boxes=((0.1, 0.05, 0.0, 0.2, 0.2, 0.2),), sphere=None, seed=2)
    scene = analytic.scene
    scene.metadata.metric = False  # the scale must come from --known-height
    source = save_scene(scene, tmp_path / "table.ply")
    out = tmp_path / "bundle"
    status = main([
        "build", str(source), "-o", str(out), "--known-height", "0.2", "--segment-objects",
        "--image-size", "48", "--voxel-size", "0.02", "--backend", "cpu", "--no-progress",
        "--convex-method", "vhacd",  # bounded time; CoACD is covered by the other build tests
    ])
    printed = capsys.readouterr().out
    assert status == 0
    assert "SimBundle" in printed and "object_0" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["path"] == str(source) and len(manifest["source"]["sha256"]) == 64
    assert manifest["build"]["segmentation"] == "automatic (1 objects)"
    (box,) = manifest["objects"]
    assert np.allclose(box["size"], [0.2, 0.2, 0.2], atol=0.03)
    assert box["initial_pose"]["position"][2] == pytest.approx(0.1, abs=0.015)  # centre of mass of a 20 cm cube
    assert manifest["normalisation"]["scale"]["scale"] == pytest.approx(1.0, rel=0.01)

    assert main(["info", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["objects"][0]["name"] == "object_0" and summary["ground_slab"] is True

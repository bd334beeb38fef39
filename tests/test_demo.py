"""The demo pipeline end to end on a reduced budget: every artefact is written and makes sense."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from lyra_sim.cli import main


def test_demo_writes_report_images_videos_and_bundle(tmp_path):
    out = tmp_path / "demo"
    status = main([
        "demo", "-o", str(out), "--photo-count", "24", "--photo-size", "64", "--reconstruction-seconds", "15",
        "--observation-size", "32", "--rollout-steps", "4",
    ])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    recon = metrics["reconstruction"]
    # Even a 15 s reconstruction must beat its own starting point on held-out views.
    assert recon["test_psnr"] > recon["initial_test_psnr"] + 1.0
    assert 0.0 < metrics["collision_mesh"]["fscore"] <= 1.0
    for name in ("navigate", "push"):
        assert metrics[f"env_{name}"]["steps"] >= 1
        assert (out / f"{name}_observations.gif").stat().st_size > 0
    overlay = np.asarray(Image.open(out / "splat_mesh_overlay.png"))
    assert overlay.shape[0] > 100 and overlay.std() > 10
    report = (out / "report.md").read_text()
    for image in ("photos.png", "heldout_truth_vs_splat.png", "splat_mesh_overlay.png"):
        assert f"({image})" in report and (out / image).is_file()
    assert (out / "bundle" / "scene.urdf").is_file() and (out / "reconstruction.ply").is_file()
    assert not list(tmp_path.glob(".demo*"))  # no temporary folder left behind

"""``lyra-sim render``: PNG and depth output, default viewpoints per frame, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lyra_sim.cli import main
from lyra_sim.commands.render import Config, default_camera
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.io import save_scene
from conftest import random_scene


def project(cam, points: torch.Tensor) -> torch.Tensor:  # [P, 3] -> [P, 3] (u, v, z)
    p = points @ cam.viewmat[0, :3, :3].T + cam.viewmat[0, :3, 3]
    uv = p @ cam.K[0].T
    return torch.cat([uv[:, :2] / uv[:, 2:], p[:, 2:]], -1)


def config(**overrides) -> Config:
    values = dict(scene="x.ply", out="x.png", width=64, height=48, fov=60.0, orbit_angle=None, elevation=None, distance=None,
                  eye=None, target=None, up=None, backend="reference", sh_degree=None, background=None, depth_out=None, lod=False)
    values.update(overrides)
    return Config(**values)


def test_render_command_writes_png_and_depth(tmp_path, capsys):
    scene = random_scene(1500, seed=60, extent=0.5)
    scene = scene._replace(means=scene.means + torch.tensor([5.0, -2.0, 1.0]))  # far from the origin
    path = save_scene(scene, tmp_path / "scene.ply")
    out, depth_png, depth_npy = tmp_path / "view.png", tmp_path / "depth.png", tmp_path / "depth.npy"
    status = main(["render", str(path), "--out", str(out), "--width", "48", "--height", "32", "--backend", "reference",
                   "--depth-out", str(depth_png), "--background", "0", "0", "1"])
    assert status == 0 and "wrote" in capsys.readouterr().out
    image = np.asarray(Image.open(out))
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    covered = image[..., 2] < 250  # anything not pure background blue
    assert 0.1 < covered.mean() < 0.95  # the default view frames the scene, with margin
    depth = np.asarray(Image.open(depth_png)).astype(np.float64) / 1000.0
    assert depth.shape == (32, 48)
    seen = depth[depth > 0]
    camera = default_camera(scene, config(width=48, height=32))
    distance = float((camera.position[0] - scene.means.mean(0)).norm())
    assert abs(np.median(seen) - distance) < 0.5  # depth in scene units around the scene centre
    assert main(["render", str(path), "-o", str(out), "--width", "16", "--height", "16", "--backend", "reference",
                 "--depth-out", str(depth_npy), "--eye", "5", "-5", "1", "--target", "5", "-2", "1"]) == 0
    assert np.load(depth_npy).shape == (16, 16) and float(np.load(depth_npy).max()) > 0
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_default_camera_follows_the_frame():
    scene = random_scene(500, seed=61)
    z_up = default_camera(scene, config())
    assert float(z_up.position[0, 2]) > 0.5  # above the scene: elevation 30 degrees about +Z
    centre = project(z_up, torch.zeros(1, 3))[0]
    assert abs(float(centre[0]) - 32) < 3 and abs(float(centre[1]) - 24) < 3
    inside = project(z_up, scene.means)
    assert float(((inside[:, 0] > 0) & (inside[:, 0] < 64) & (inside[:, 1] > 0) & (inside[:, 1] < 48)).float().mean()) > 0.98

    lyra = scene._replace(means=scene.means + torch.tensor([0.0, 0.0, 4.0]))
    lyra.metadata = SceneMetadata(frame="opencv-first-camera")
    first = default_camera(lyra, config())
    assert torch.equal(first.viewmat[0], torch.eye(4))

    opengl = scene._replace()
    opengl.metadata = SceneMetadata(frame="opengl")
    y_up = default_camera(opengl, config())
    above = project(y_up, torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert float(above[1, 1]) < float(above[0, 1])  # +Y appears higher in the image

    moved = default_camera(scene, config(orbit_angle=180.0, elevation=0.0, distance=3.0))
    assert torch.allclose(moved.position[0, :2].norm(), torch.tensor(3.0), atol=0.3)
    assert float(moved.position[0, 0]) < 0


def test_render_command_reports_bad_arguments(tmp_path, capsys):
    path = save_scene(random_scene(50, seed=62), tmp_path / "s.ply")
    assert main(["render", str(path), "--out", str(tmp_path / "x.gif"), "--backend", "reference"]) == 1
    assert "png" in capsys.readouterr().err
    assert main(["render", str(path), "--out", str(tmp_path / "x.png"), "--eye", "1", "2", "--backend", "reference"]) == 1
    assert "--eye takes 3 numbers" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "missing.ply"), "--out", str(tmp_path / "x.png")]) != 0
    with pytest.raises(SystemExit):
        main(["render", str(path), "--out", str(tmp_path / "x.png"), "--backend", "opengl"])


def test_render_command_with_lod(tmp_path, capsys):
    scene = GaussianScene.concat([random_scene(800, seed=63, scale_range=(0.002, 0.004), opacity_range=(0.8, 0.95))])
    path = save_scene(scene, tmp_path / "tiny.ply")
    assert main(["render", str(path), "--out", str(tmp_path / "lod.png"), "--width", "24", "--height", "24",
                 "--backend", "reference", "--lod"]) == 0
    message = capsys.readouterr().out
    kept = int(message.split(" of ")[0].split(", ")[-1])
    assert kept < 800

"""Capture cameras travel with a scene: sidecar, INRIA cameras.json, transforms.json (+ nerfstudio's
dataparser transform) and COLMAP models are found beside a scene file, read into the scene's frame,
and moved by every transform of the scene."""

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lyra_sim.converters.evidence import angle_deg, camera_up
from lyra_sim.errors import SceneFormatError
from lyra_sim.kits import make_scene
from lyra_sim.kits.captures import capture_cameras
from lyra_sim.scene import cameras as camera_files
from lyra_sim.scene.cameras import CaptureCameras, find_cameras, load_cameras
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.io import load_scene, save_scene
from lyra_sim.scene.transforms import transform_scene


@pytest.fixture(scope="module")
def cameras():
    kit = make_scene("tabletop", seed=0, n_objects=1)
    return CaptureCameras.from_camera(capture_cameras(kit, 12, size=40, seed=3, roll_deg=3.0), names=tuple(f"view_{i}" for i in range(12)))


def _scene(count=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GaussianScene.from_activated(torch.randn(count, 3, generator=g), torch.rand(count, 3, generator=g),
                                        torch.full((count,), 0.8), torch.full((count, 3), 0.02))


def _same(a: CaptureCameras, b: CaptureCameras, atol=1e-6):
    np.testing.assert_allclose(a.positions, b.positions, atol=atol)
    np.testing.assert_allclose(a.rotations, b.rotations, atol=atol)
    np.testing.assert_allclose(a.intrinsics, b.intrinsics, atol=1e-6)
    np.testing.assert_array_equal(a.sizes, b.sizes)


def test_viewmats_round_trip_and_render_camera(cameras):
    again = CaptureCameras.from_viewmats(cameras.viewmats, cameras.intrinsics, cameras.sizes)
    _same(cameras, again)
    camera = cameras.to_camera(width=20)
    assert len(camera) == 12 and (camera.width, camera.height) == (20, 20)
    np.testing.assert_allclose(camera.position.double().numpy(), cameras.positions, atol=1e-5)
    assert float(camera.K[0, 0, 0]) == pytest.approx(cameras.intrinsics[0, 0, 0] / 2, rel=1e-6)


@pytest.mark.parametrize("form", ["sidecar", "inria", "inria_output", "transforms", "colmap"])
def test_found_beside_the_scene_in_every_layout(cameras, form, tmp_path):
    scene = _scene()
    if form == "sidecar":
        scene.metadata.cameras, scene.metadata.frame = cameras, "z-up"
        path = save_scene(scene, tmp_path / "scene.ply")
        assert (tmp_path / "scene.cameras.json").is_file()
    elif form == "inria":
        path = save_scene(scene, tmp_path / "scene.ply")
        camera_files.write_inria_cameras(cameras, tmp_path / "cameras.json")
    elif form == "inria_output":
        path = save_scene(scene, tmp_path / "point_cloud" / "iteration_7000" / "point_cloud.ply")
        camera_files.write_inria_cameras(cameras, tmp_path / "cameras.json")
    elif form == "transforms":
        path = save_scene(scene, tmp_path / "exports" / "splat.ply")
        camera_files.write_transforms(cameras, tmp_path / "transforms.json")
    else:
        path = save_scene(scene, tmp_path / "output" / "scene.ply")
        camera_files.write_colmap_text(cameras, tmp_path / "sparse" / "0")
    loaded = load_scene(path)
    assert loaded.metadata.cameras is not None and len(loaded.metadata.cameras) == 12
    _same(cameras, loaded.metadata.cameras, atol=1e-5)
    assert any("capture cameras: 12" in note for note in loaded.metadata.notes)
    if form == "sidecar":
        assert loaded.metadata.frame == "z-up" and loaded.metadata.cameras.kind == "sidecar"
    if form == "colmap":
        assert loaded.metadata.frame == "opencv"  # COLMAP worlds: the OpenCV habit
    assert load_scene(path, cameras=False).metadata.cameras is None


def test_nerfstudio_dataparser_transform_maps_poses_into_the_model_frame(cameras, tmp_path):
    rotation = Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix()
    transform, scale = np.hstack([rotation, [[0.5], [-1.0], [2.0]]]), 0.25
    camera_files.write_transforms(cameras, tmp_path / "transforms.json")
    (tmp_path / "dataparser_transforms.json").write_text(json.dumps({"transform": transform.tolist(), "scale": scale}))
    found, frame = find_cameras(tmp_path / "splat.ply")
    np.testing.assert_allclose(found.positions, scale * (cameras.positions @ rotation.T + transform[:, 3]), atol=1e-9)
    np.testing.assert_allclose(found.rotations, rotation[None] @ cameras.rotations, atol=1e-9)
    assert frame == "unknown"


def test_cameras_follow_every_transform_of_the_scene(cameras):
    scene = _scene()
    scene.metadata.cameras = CaptureCameras(cameras.rotations, cameras.positions, cameras.intrinsics, cameras.sizes, metres_per_unit=1.0, up=(0, 0, 1))
    rotation = Rotation.from_euler("zyx", [40, 10, -70], degrees=True).as_matrix()
    moved = transform_scene(scene, rotation, [1.0, 2.0, 3.0], 4.0)
    result = moved.metadata.cameras
    np.testing.assert_allclose(result.positions, 4.0 * cameras.positions @ rotation.T + [1, 2, 3], atol=1e-9)
    assert result.metres_per_unit == pytest.approx(0.25)
    np.testing.assert_allclose(result.up, rotation @ [0, 0, 1], atol=1e-12)
    # A point seen at pixel (u, v) before is seen at the same pixel after.
    point = np.array([[0.1, -0.2, 0.7]])
    from lyra_sim.converters.floaters import project

    before = project(point, cameras.viewmats, cameras.intrinsics)
    after = project(4.0 * point @ rotation.T + [1, 2, 3], result.viewmats, result.intrinsics)
    np.testing.assert_allclose(before[1], after[1], atol=1e-6)
    np.testing.assert_allclose(4.0 * before[0], after[0], atol=1e-6)
    assert scene[torch.arange(10)].metadata.cameras is scene.metadata.cameras  # selection keeps them


def test_camera_up_is_gravity_despite_roll_and_pitch(cameras):
    for seed in range(3):
        rotation = Rotation.random(random_state=seed).as_matrix()
        moved = cameras.transformed(np.block([[rotation, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]]))
        candidate = camera_up(moved.rotations)
        assert angle_deg(candidate.up, rotation @ [0, 0, 1]) < 2.0  # 3 degrees of random roll per camera
        assert candidate.confidence > 0.8
    # All cameras facing one way (a wall): the mean image-up, level across the right axis.
    one_way = cameras.subset([0])
    assert angle_deg(camera_up(one_way.rotations).up, [0, 0, 1]) < 45.0


def test_malformed_camera_files_name_the_file(cameras, tmp_path):
    path = save_scene(_scene(), tmp_path / "scene.ply")
    (tmp_path / "cameras.json").write_text("[{\"width\": 4}]")
    with pytest.warns(UserWarning, match="ignoring capture cameras.*cameras.json.*camera 0 needs"):
        assert load_scene(path).metadata.cameras is None  # found by looking around: warned, ignored
    with pytest.raises(SceneFormatError, match="cameras.json.*camera 0 needs"):
        load_scene(path, cameras=tmp_path / "cameras.json")  # named explicitly: an error
    (tmp_path / "cameras.json").write_text("{not json")
    with pytest.raises(SceneFormatError, match="cannot read camera file"):
        load_scene(path, cameras=tmp_path / "cameras.json")
    with pytest.raises(ValueError, match="no such camera file"):
        load_cameras(tmp_path / "missing")
    (tmp_path / "cameras.json").unlink()
    assert load_scene(path).metadata.cameras is None


def test_render_command_defaults_to_the_central_capture_camera(cameras, tmp_path, capsys):
    from lyra_sim.cli import main

    scene = _scene()
    scene.metadata.cameras = cameras
    path = save_scene(scene, tmp_path / "scene.ply")
    assert main(["render", str(path), "-o", str(tmp_path / "view.png"), "--width", "24", "--height", "16", "--backend", "cpu"]) == 0
    central = cameras.positions[cameras.central_index()]
    printed = capsys.readouterr().out.split("camera at (")[1].split(")")[0]
    np.testing.assert_allclose([float(v) for v in printed.split(",")], central, atol=5e-3)
    camera = cameras.viewpoint(24, 16)
    assert (camera.width, camera.height) == (24, 16)
    assert float(camera.K[0, 0, 0]) == pytest.approx(cameras.intrinsics[cameras.central_index(), 0, 0] * 24 / 40)

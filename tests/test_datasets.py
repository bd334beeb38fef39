"""Posed-photo datasets: nerfstudio, COLMAP text/binary and our format agree on cameras."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lyra_sim.photos import (
    DatasetError,
    PhotoDataset,
    load_dataset,
    save_colmap,
    save_lyra_dataset,
    save_nerfstudio,
    undistort_image,
)
from lyra_sim.render.camera import Camera, orbit_cameras


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    cameras = orbit_cameras([0.1, -0.2, 0.5], 2.0, 1.0, 5, width=32, image_height=24, fov_deg=50.0)
    # An off-centre principal point and non-square pixels catch swapped or dropped terms.
    K = cameras.K.clone()
    K[:, 0, 0] *= 1.1
    K[:, 0, 2] += 1.5
    K[:, 1, 2] -= 0.75
    cameras = Camera(K, cameras.viewmat, 32, 24)
    return PhotoDataset(
        images=rng.integers(0, 256, (5, 24, 32, 3), dtype=np.uint8),
        cameras=cameras,
        depths=rng.uniform(0.5, 4.0, (5, 24, 32, 1)).astype(np.float32),
        names=[f"frame_{i:02d}.png" for i in range(5)],
        points=rng.normal(size=(50, 3)).astype(np.float32),
        point_colors=rng.random((50, 3)).astype(np.float32),
        split=["train", "test", "train", "train", "train"],
    )


def assert_same_cameras(a: Camera, b: Camera, atol=1e-4):
    assert (a.width, a.height) == (b.width, b.height)
    np.testing.assert_allclose(a.K.numpy(), b.K.numpy(), atol=atol)
    np.testing.assert_allclose(a.viewmat.numpy(), b.viewmat.numpy(), atol=atol)


@pytest.mark.parametrize("writer", ["nerfstudio", "colmap_text", "colmap_binary", "lyra"])
def test_round_trip_agrees_on_cameras_images_depth(tmp_path, dataset, writer):
    folder = tmp_path / writer
    if writer == "nerfstudio":
        save_nerfstudio(dataset, folder)
    elif writer == "lyra":
        save_lyra_dataset(dataset, folder)
    else:
        save_colmap(dataset, folder, binary=writer == "colmap_binary")
    loaded = load_dataset(folder, progress=False)
    assert loaded.metadata["format"] == ("colmap" if writer.startswith("colmap") else writer)
    order = np.argsort(loaded.names)  # COLMAP sorts images by name
    assert_same_cameras(loaded.cameras[torch.from_numpy(order)], dataset.cameras)
    np.testing.assert_array_equal(loaded.images[order], dataset.images)
    depth_tolerance = 0 if writer == "lyra" else 0.5e-3  # 16-bit millimetre PNGs
    np.testing.assert_allclose(loaded.depths[order], dataset.depths, atol=depth_tolerance + 1e-6)
    if writer in ("lyra", "nerfstudio"):
        assert loaded.split == dataset.split
    if writer != "nerfstudio":
        np.testing.assert_allclose(loaded.points, dataset.points, atol=1e-5)
        np.testing.assert_allclose(loaded.point_colors, dataset.point_colors, atol=1 / 255 if writer != "lyra" else 1e-7)


def test_all_loaders_agree_with_each_other(tmp_path, dataset):
    save_nerfstudio(dataset, tmp_path / "ns")
    save_colmap(dataset, tmp_path / "ct")
    save_colmap(dataset, tmp_path / "cb", binary=True)
    loaded = [load_dataset(tmp_path / name, progress=False) for name in ("ns", "ct", "cb")]
    for other in loaded[1:]:
        assert_same_cameras(loaded[0].cameras, other.cameras)


def project(cameras: Camera, index: int, point) -> np.ndarray:
    camera_space = cameras.viewmat[index].double().numpy() @ np.append(point, 1.0)
    pixel = cameras.K[index].double().numpy() @ camera_space[:3]
    return pixel[:2] / pixel[2]


def test_nerfstudio_opengl_pose_written_by_hand(tmp_path):
    """A camera at (0, -4, 0) looking at the origin along +y with +z up, written as OpenGL c2w."""
    right, up, back = [1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, back, [0, -4.0, 0]
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 40, 4), dtype=np.uint8)).save(tmp_path / "images" / "a.png")  # transparent
    meta = {"fl_x": 30.0, "fl_y": 30.0, "cx": 20.0, "cy": 10.0, "w": 40, "h": 20,
            "frames": [{"file_path": "images/a.png", "transform_matrix": c2w.tolist()}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    loaded = load_dataset(tmp_path, progress=False)
    np.testing.assert_allclose(project(loaded.cameras, 0, [0, 0, 0]), [20.0, 10.0], atol=1e-5)
    # +z (up) appears above the centre (smaller row), +x to the right.
    np.testing.assert_allclose(project(loaded.cameras, 0, [0, 0, 1.0]), [20.0, 10.0 - 30.0 / 4], atol=1e-5)
    np.testing.assert_allclose(project(loaded.cameras, 0, [1.0, 0, 0]), [20.0 + 30.0 / 4, 10.0], atol=1e-5)
    np.testing.assert_allclose(loaded.cameras.position[0].numpy(), [0, -4.0, 0], atol=1e-5)
    assert (loaded.images == 255).all(), "transparent pixels are composited over white"


def test_blender_synthetic_split_files_and_camera_angle(tmp_path):
    c2w = np.eye(4)
    c2w[2, 3] = 3.0  # looking down -z at the origin (OpenGL)
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        frames = []
        for i in range(2):
            Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(tmp_path / split / f"r_{i}.png")
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()})
        (tmp_path / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.6911, "frames": frames}))
    loaded = load_dataset(tmp_path, resolution=8, progress=False)
    assert len(loaded) == 4 and loaded.split == ["train", "train", "test", "test"]
    focal_16 = 0.5 * 16 / np.tan(0.5 * 0.6911)
    np.testing.assert_allclose(loaded.cameras.K[0, 0, 0].item(), focal_16 / 2, rtol=1e-5)
    assert loaded.images.shape == (4, 8, 8, 3)
    train, test = loaded.train_test()
    assert len(train) == 2 and len(test) == 2


def test_colmap_text_written_by_hand_with_radial_distortion(tmp_path):
    sparse = tmp_path / "sparse" / "0"
    sparse.mkdir(parents=True)
    (sparse / "cameras.txt").write_text("# comment\n7 SIMPLE_RADIAL 40 30 50 20 15 0.0\n")
    # Identity rotation, world origin 5 m in front of the camera.
    (sparse / "images.txt").write_text("# header\n3 1 0 0 0 0 0 5 7 b.png\n10.5 3.5 -1 2 2 4\n1 1 0 0 0 1 0 5 7 a.png\n\n")
    (sparse / "points3D.txt").write_text("1 0.5 0.25 2 255 0 0 0.1 3 0\n")
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
    loaded = load_dataset(tmp_path, progress=False)
    assert loaded.names == ["a.png", "b.png"]
    np.testing.assert_allclose(project(loaded.cameras, 1, [0, 0, 0]), [20.0, 15.0], atol=1e-5)
    np.testing.assert_allclose(project(loaded.cameras, 0, [0, 0, 0]), [20.0 + 50.0 / 5, 15.0], atol=1e-5)
    np.testing.assert_allclose(loaded.points, [[0.5, 0.25, 2.0]])
    np.testing.assert_allclose(loaded.point_colors, [[1.0, 0.0, 0.0]])


def test_undistortion_moves_a_point_to_its_pinhole_position():
    K = np.array([[40.0, 0, 32], [0, 40.0, 32], [0, 0, 1]])
    k1 = 0.2
    ray = np.array([0.5, 0.25])  # normalised pinhole coordinates
    r2 = ray @ ray
    distorted = ray * (1 + k1 * r2) * 40 + 32  # where the lens put it (pixel coordinates)
    image = np.zeros((64, 64, 1), dtype=np.uint8)
    image[int(distorted[1]), int(distorted[0])] = 255
    out = undistort_image(image, K, np.array([k1, 0, 0, 0, 0]), nearest=True)[..., 0]
    row, col = np.unravel_index(np.argmax(out), out.shape)
    pinhole = ray * 40 + 32
    assert abs(col + 0.5 - pinhole[0]) <= 1.0 and abs(row + 0.5 - pinhole[1]) <= 1.0
    np.testing.assert_array_equal(undistort_image(image, K, np.zeros(5)), image)


def test_resolution_scales_intrinsics_and_averages_pixels(tmp_path, dataset):
    save_lyra_dataset(dataset, tmp_path / "d")
    half = load_dataset(tmp_path / "d", resolution=16, progress=False)
    assert half.images.shape == (5, 12, 16, 3)
    np.testing.assert_allclose(half.cameras.K[:, :2].numpy(), dataset.cameras.K[:, :2].numpy() / 2, rtol=1e-6)
    block_mean = dataset.images[0, :2, :2].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(half.images[0, 0, 0], block_mean, atol=1.0)


def test_errors_name_the_file(tmp_path, dataset):
    with pytest.raises(DatasetError, match="no COLMAP model"):
        load_dataset(tmp_path, progress=False)
    save_colmap(dataset, tmp_path / "bin", binary=True)
    images_bin = tmp_path / "bin" / "sparse" / "0" / "images.bin"
    images_bin.write_bytes(images_bin.read_bytes()[:40])
    with pytest.raises(DatasetError, match="images.bin: truncated"):
        load_dataset(tmp_path / "bin", progress=False)
    save_nerfstudio(dataset, tmp_path / "ns")
    (tmp_path / "ns" / "images" / "frame_03.png").unlink()
    with pytest.raises(DatasetError, match=r"1 of 5 images not found: \S*frame_03.png"):
        load_dataset(tmp_path / "ns", progress=False)
    with pytest.raises(ValueError, match="format"):
        load_dataset(tmp_path / "ns", format="blender")

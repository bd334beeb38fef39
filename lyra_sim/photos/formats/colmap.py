"""COLMAP sparse models (text and binary: cameras, images, points3D): reader, writer and sniffing.

Poses are world-to-camera (``qvec`` w, x, y, z and ``tvec``), already our OpenCV convention.
Radial-tangential distortion is removed on load; fisheye models are rejected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lyra_sim.io_utils import atomic_path
from lyra_sim.photos.dataset import DatasetError, PhotoDataset
from lyra_sim.rotations import matrix_to_quat_wxyz, quat_wxyz_to_matrix
from lyra_sim.photos.formats._common import PhotoFormat, ViewOnDisk, assemble_views, depth_to_png16, drop_missing_images, find_depth_file, write_png

def sniff(path: Path) -> bool:
    """A folder holding a COLMAP model (see :func:`colmap_model_folder`)."""
    try:
        colmap_model_folder(path)
    except DatasetError:
        return False
    return True


# model id -> (name, parameter count); see COLMAP's src/colmap/sensor/models.h.
COLMAP_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
    4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
}
COLMAP_MODEL_IDS = {name: (model_id, count) for model_id, (name, count) in COLMAP_MODELS.items()}


@dataclass
class ColmapCamera:
    camera_id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [P] float64


@dataclass
class ColmapImage:
    image_id: int
    qvec: np.ndarray  # [4] w, x, y, z: world-to-camera rotation
    tvec: np.ndarray  # [3] world-to-camera translation
    camera_id: int
    name: str


@dataclass
class ColmapModel:
    """A COLMAP sparse model: cameras by id, registered images, 3D points (xyz [P,3], rgb [P,3] uint8)."""

    cameras: dict[int, ColmapCamera]
    images: list[ColmapImage]
    points: np.ndarray
    colors: np.ndarray


def colmap_intrinsics(camera: ColmapCamera, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K [3, 3], OpenCV distortion k1 k2 p1 p2 k3 [5]) of a COLMAP camera; fisheye models raise."""
    p = camera.params
    model = camera.model
    distortion = np.zeros(5)
    if model == "SIMPLE_PINHOLE":
        fx = fy = p[0]; cx, cy = p[1], p[2]  # noqa: E702
    elif model == "PINHOLE":
        fx, fy, cx, cy = p[:4]
    elif model == "SIMPLE_RADIAL":
        fx = fy = p[0]; cx, cy = p[1], p[2]; distortion[0] = p[3]  # noqa: E702
    elif model == "RADIAL":
        fx = fy = p[0]; cx, cy = p[1], p[2]; distortion[:2] = p[3:5]  # noqa: E702
    elif model == "OPENCV":
        fx, fy, cx, cy = p[:4]
        distortion[:4] = p[4:8]
    elif model == "FULL_OPENCV" and not np.any(p[9:12]):
        fx, fy, cx, cy = p[:4]
        distortion[:] = [p[4], p[5], p[6], p[7], p[8]]
    else:
        raise DatasetError(f"{source}: COLMAP camera {camera.camera_id} uses model {model}, which is not supported "
                           "(use a pinhole/radial/OpenCV model, or undistort with colmap image_undistorter)")
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)
    return K, distortion


# COLMAP's names for the (w, x, y, z) helpers.
qvec_to_matrix = quat_wxyz_to_matrix
matrix_to_qvec = matrix_to_quat_wxyz


class _Reader:
    """Little-endian binary reader that names the file when it runs out of bytes."""

    def __init__(self, path: Path) -> None:
        self.path, self.data, self.offset = path, path.read_bytes(), 0

    def read(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.offset + size > len(self.data):
            raise DatasetError(f"{self.path}: truncated at byte {self.offset} (file has {len(self.data)} bytes)")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def read_string(self) -> str:
        end = self.data.find(b"\x00", self.offset)
        if end < 0:
            raise DatasetError(f"{self.path}: unterminated image name at byte {self.offset}")
        text = self.data[self.offset:end].decode("utf-8")
        self.offset = end + 1
        return text


def _read_colmap_text(folder: Path) -> ColmapModel:
    def rows(name):
        path = folder / name
        for line_number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield line_number, line.split()

    cameras = {}
    try:
        for line_number, fields in rows("cameras.txt"):
            camera_id, model, width, height = int(fields[0]), fields[1], int(fields[2]), int(fields[3])
            if model not in COLMAP_MODEL_IDS:
                raise DatasetError(f"{folder / 'cameras.txt'}:{line_number}: unknown camera model {model!r}")
            params = np.array([float(v) for v in fields[4:]])
            if len(params) != COLMAP_MODEL_IDS[model][1]:
                raise DatasetError(f"{folder / 'cameras.txt'}:{line_number}: {model} needs {COLMAP_MODEL_IDS[model][1]} parameters, got {len(params)}")
            cameras[camera_id] = ColmapCamera(camera_id, model, width, height, params)
        images = []
        lines = (folder / "images.txt").read_text().splitlines()
        line_index = 0
        # Each image takes two lines: its pose, then its 2D points (that line may be empty).
        while line_index < len(lines):
            line = lines[line_index].strip()
            line_index += 1
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) < 10:
                raise DatasetError(f"{folder / 'images.txt'}:{line_index}: expected 'ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
            images.append(ColmapImage(int(fields[0]), np.array([float(v) for v in fields[1:5]]),
                                      np.array([float(v) for v in fields[5:8]]), int(fields[8]), " ".join(fields[9:])))
            line_index += 1  # skip the 2D points line
        points, colors = [], []
        if (folder / "points3D.txt").is_file():
            for _line_number, fields in rows("points3D.txt"):
                points.append([float(v) for v in fields[1:4]])
                colors.append([int(v) for v in fields[4:7]])
    except (ValueError, IndexError) as error:
        raise DatasetError(f"{folder}: malformed COLMAP text model: {error}") from None
    return ColmapModel(cameras, images, np.array(points, dtype=np.float64).reshape(-1, 3), np.array(colors, dtype=np.uint8).reshape(-1, 3))


def _read_colmap_binary(folder: Path) -> ColmapModel:
    reader = _Reader(folder / "cameras.bin")
    cameras = {}
    for _ in range(reader.read("Q")[0]):
        camera_id, model_id, width, height = reader.read("iiQQ")
        if model_id not in COLMAP_MODELS:
            raise DatasetError(f"{reader.path}: unknown camera model id {model_id}")
        name, count = COLMAP_MODELS[model_id]
        cameras[camera_id] = ColmapCamera(camera_id, name, width, height, np.array(reader.read(f"{count}d")))
    reader = _Reader(folder / "images.bin")
    images = []
    for _ in range(reader.read("Q")[0]):
        values = reader.read("i7di")
        name = reader.read_string()
        points2d = reader.read("Q")[0]
        reader.offset += points2d * struct.calcsize("<ddq")
        images.append(ColmapImage(values[0], np.array(values[1:5]), np.array(values[5:8]), values[8], name))
    points, colors = np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8)
    if (folder / "points3D.bin").is_file():
        reader = _Reader(folder / "points3D.bin")
        count = reader.read("Q")[0]
        points, colors = np.zeros((count, 3)), np.zeros((count, 3), dtype=np.uint8)
        for i in range(count):
            values = reader.read("Q3d3Bd")
            points[i], colors[i] = values[1:4], values[4:7]
            track_length = reader.read("Q")[0]
            reader.offset += track_length * struct.calcsize("<ii")
    return ColmapModel(cameras, images, points, colors)


def colmap_model_folder(path: Path) -> Path:
    """The folder holding cameras/images(.txt|.bin) under a dataset root, ``sparse/0``, ``sparse`` or itself."""
    for candidate in (path / "sparse" / "0", path / "sparse", path / "colmap" / "sparse" / "0", path):
        if (candidate / "cameras.bin").is_file() or (candidate / "cameras.txt").is_file():
            return candidate
    raise DatasetError(f"{path}: no COLMAP model (cameras.txt/.bin in sparse/0, sparse or the folder itself)")


def read_colmap_model(folder) -> ColmapModel:
    """Read a COLMAP model folder, binary when ``cameras.bin`` exists, else text."""
    folder = Path(folder)
    binary = (folder / "cameras.bin").is_file()
    for name in ("cameras", "images"):
        if not (folder / f"{name}.{'bin' if binary else 'txt'}").is_file():
            raise DatasetError(f"{folder}: COLMAP model lacks {name}.{'bin' if binary else 'txt'}")
    return _read_colmap_binary(folder) if binary else _read_colmap_text(folder)


def load_colmap(path, *, images_dir=None, resolution: int | None = None, progress: bool = True, skip_missing: bool = False) -> PhotoDataset:
    """A COLMAP dataset: ``path/images`` + a text or binary model (``sparse/0``); depth maps are
    read from ``path/depth`` (same stem, ``.npy`` metres or 16-bit PNG millimetres) when present.
    Radial-tangential distortion is removed on load; fisheye models are rejected. Missing images
    are one error listing them all, or left out with ``skip_missing``."""
    path = Path(path)
    model_folder = colmap_model_folder(path)
    model = read_colmap_model(model_folder)
    root = path if (path / "images").is_dir() else model_folder.parent.parent if model_folder.parent.name == "sparse" else model_folder.parent
    images_dir = Path(images_dir) if images_dir is not None else (root / "images" if (root / "images").is_dir() else root)
    views = []
    for image in sorted(model.images, key=lambda im: im.name):
        if image.camera_id not in model.cameras:
            raise DatasetError(f"{model_folder}: image {image.name!r} refers to missing camera {image.camera_id}")
        K, distortion = colmap_intrinsics(model.cameras[image.camera_id], model_folder)
        viewmat = np.eye(4)
        viewmat[:3, :3], viewmat[:3, 3] = qvec_to_matrix(image.qvec), image.tvec
        image_path = images_dir / image.name
        views.append(ViewOnDisk(image.name, image_path, K, viewmat, distortion, find_depth_file(root, image_path) if image_path.is_file() else None))
    views, notes = drop_missing_images(views, model_folder, skip_missing)
    colors = model.colors.astype(np.float32) / 255.0 if len(model.points) else None
    dataset = assemble_views(views, path, "colmap", resolution, model.points if len(model.points) else None, colors, progress=progress)
    dataset.metadata["notes"] = notes + list(dataset.metadata.get("notes", []))
    return dataset


def save_colmap(dataset: PhotoDataset, folder, *, binary: bool = False) -> Path:
    """Write ``folder/images`` + ``folder/sparse/0`` (PINHOLE cameras, poses, points3D) atomically,
    plus ``folder/depth`` 16-bit millimetre PNGs when the dataset has depth."""
    folder = Path(folder)
    cams = dataset.cameras
    points = dataset.points if dataset.points is not None else np.zeros((0, 3))
    colors = dataset.point_colors if dataset.point_colors is not None else np.full((len(points), 3), 0.5)
    rgb = np.clip(np.round(np.asarray(colors) * 255), 0, 255).astype(np.uint8)
    names = [f"{Path(name).stem}.png" for name in dataset.names]
    with atomic_path(folder) as tmp:
        sparse = tmp / "sparse" / "0"
        sparse.mkdir(parents=True)
        for i, name in enumerate(names):
            write_png(tmp / "images" / name, dataset.images[i])
            if dataset.depths is not None:
                write_png(tmp / "depth" / name, depth_to_png16(dataset.depths[i, ..., 0]))
        intrinsics = [cams.K[i].double().numpy()[[0, 1, 0, 1], [0, 1, 2, 2]] for i in range(len(cams))]
        poses = []
        for i in range(len(cams)):
            viewmat = cams.viewmat[i].double().numpy()
            poses.append((matrix_to_qvec(viewmat[:3, :3]), viewmat[:3, 3]))
        if binary:
            blob = struct.pack("<Q", len(cams))
            for i, params in enumerate(intrinsics):
                blob += struct.pack("<iiQQ4d", i + 1, COLMAP_MODEL_IDS["PINHOLE"][0], cams.width, cams.height, *params)
            (sparse / "cameras.bin").write_bytes(blob)
            blob = struct.pack("<Q", len(cams))
            for i, ((qvec, tvec), name) in enumerate(zip(poses, names)):
                blob += struct.pack("<i7di", i + 1, *qvec, *tvec, i + 1) + name.encode() + b"\x00" + struct.pack("<Q", 0)
            (sparse / "images.bin").write_bytes(blob)
            blob = struct.pack("<Q", len(points))
            for i, (xyz, colour) in enumerate(zip(points, rgb)):
                blob += struct.pack("<Q3d3BdQ", i + 1, *map(float, xyz), *map(int, colour), 0.0, 0)
            (sparse / "points3D.bin").write_bytes(blob)
        else:
            lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
            lines += [f"{i + 1} PINHOLE {cams.width} {cams.height} " + " ".join(f"{v:.10g}" for v in params) for i, params in enumerate(intrinsics)]
            (sparse / "cameras.txt").write_text("\n".join(lines) + "\n")
            lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
            for i, ((qvec, tvec), name) in enumerate(zip(poses, names)):
                lines.append(f"{i + 1} " + " ".join(f"{v:.12g}" for v in (*qvec, *tvec)) + f" {i + 1} {name}")
                lines.append("")
            (sparse / "images.txt").write_text("\n".join(lines) + "\n")
            lines = ["# 3D point list with one line of data per point:", "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
            lines += [f"{i + 1} {x:.9g} {y:.9g} {z:.9g} {r} {g} {b} 0" for i, ((x, y, z), (r, g, b)) in enumerate(zip(points, rgb))]
            (sparse / "points3D.txt").write_text("\n".join(lines) + "\n")
    return folder


FORMAT = PhotoFormat("colmap", sniff, load_colmap, save_colmap, "COLMAP model (cameras.txt/.bin in sparse/0, sparse or the folder itself)")

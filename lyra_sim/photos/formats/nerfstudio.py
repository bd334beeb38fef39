"""nerfstudio ``transforms.json`` datasets, including the Blender NeRF-synthetic variant
(``transforms_{train,val,test}.json``): reader, writer and sniffing.

``transform_matrix`` is camera-to-world in OpenGL axes; we convert to OpenCV world-to-camera.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lyra_sim.io_utils import atomic_path
from lyra_sim.photos.dataset import DatasetError, PhotoDataset
from lyra_sim.photos.formats._common import PhotoFormat, ViewOnDisk, assemble_views, depth_to_png16, drop_missing_images, resolve_image, write_png

def sniff(path: Path) -> bool:
    """A ``.json`` file other than ours, or a folder with ``transforms.json`` / ``transforms_train.json``."""
    if path.is_file():
        return path.suffix == ".json"
    return (path / "transforms.json").is_file() or (path / "transforms_train.json").is_file()


_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def _nerfstudio_intrinsics(entry: dict, defaults: dict, path: Path, image_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    merged = {**defaults, **entry}
    width = merged.get("w", image_size[0] if image_size else None)
    height = merged.get("h", image_size[1] if image_size else None)
    if "fl_x" in merged:
        fx = float(merged["fl_x"])
        fy = float(merged.get("fl_y", fx))
    elif "camera_angle_x" in merged:
        if width is None:
            raise DatasetError(f"{path}: camera_angle_x needs the image width")
        fx = fy = 0.5 * width / np.tan(0.5 * float(merged["camera_angle_x"]))
    else:
        raise DatasetError(f"{path}: no intrinsics (fl_x/fl_y or camera_angle_x)")
    cx = float(merged.get("cx", width / 2 if width else 0.0))
    cy = float(merged.get("cy", height / 2 if height else 0.0))
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    if any(merged.get(key, 0.0) for key in ("k4",)):
        raise DatasetError(f"{path}: fisheye distortion (k4) is not supported")
    distortion = np.array([float(merged.get(key, 0.0)) for key in ("k1", "k2", "p1", "p2", "k3")])
    return K, distortion


def load_nerfstudio(path, *, resolution: int | None = None, progress: bool = True, skip_missing: bool = False) -> PhotoDataset:
    """A nerfstudio ``transforms.json`` (or a Blender NeRF-synthetic folder of
    ``transforms_{train,val,test}.json``). ``transform_matrix`` is camera-to-world in OpenGL axes;
    RGBA images are composited over white (nerfstudio's Blender default)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in (path / "transforms.json",) if p.is_file()]
    if not files and path.is_dir():
        files = [path / f"transforms_{s}.json" for s in ("train", "val", "test") if (path / f"transforms_{s}.json").is_file()]
    if not files:
        raise DatasetError(f"{path}: no transforms.json (or transforms_train.json) found")
    views: list[ViewOnDisk] = []
    points = point_colors = None
    for file in files:
        try:
            meta = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DatasetError(f"cannot read {file}: {error}") from None
        root = file.parent
        split_from_name = "test" if file.stem.endswith(("_test", "_val")) else "train"
        frames = meta.get("frames")
        if not isinstance(frames, list) or not frames:
            raise DatasetError(f"{file}: 'frames' must be a non-empty list")
        defaults = {k: v for k, v in meta.items() if k != "frames"}
        depth_scale = float(meta.get("depth_unit_scale_factor", 1e-3))
        for index, frame in enumerate(frames):
            if "file_path" not in frame or "transform_matrix" not in frame:
                raise DatasetError(f"{file}: frame {index} needs 'file_path' and 'transform_matrix'")
            try:
                image_path = resolve_image(root / frame["file_path"])
            except DatasetError:
                image_path = root / frame["file_path"]  # missing: reported with all the others below
            c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
            if c2w.shape == (3, 4):
                c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
            if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
                raise DatasetError(f"{file}: frame {index} transform_matrix must be a finite 4x4, got shape {list(c2w.shape)}")
            if not image_path.is_file():  # left out or reported by drop_missing_images; no intrinsics needed
                views.append(ViewOnDisk(name=Path(frame["file_path"]).name, image_path=image_path, K=np.eye(3), viewmat=np.eye(4), distortion=None))
                continue
            size = None
            if not any(k in {**defaults, **frame} for k in ("w",)):
                from PIL import Image

                with Image.open(image_path) as image:
                    size = image.size
            K, distortion = _nerfstudio_intrinsics(frame, defaults, file, size)
            depth_path = root / frame["depth_file_path"] if "depth_file_path" in frame else None
            views.append(ViewOnDisk(
                name=Path(frame["file_path"]).name, image_path=image_path, K=K,
                viewmat=np.linalg.inv(c2w @ _OPENGL_TO_OPENCV), distortion=distortion,
                depth_path=depth_path, depth_scale=depth_scale, split=frame.get("split", split_from_name),
            ))
        if "ply_file_path" in meta and points is None:
            points, point_colors = _read_point_ply(root / meta["ply_file_path"])
    views, notes = drop_missing_images(views, path, skip_missing)
    dataset = assemble_views(views, path, "nerfstudio", resolution, points, point_colors, progress=progress)
    dataset.metadata["notes"] = notes + list(dataset.metadata.get("notes", []))
    return dataset


def _read_point_ply(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """xyz [P, 3] and rgb [P, 3] in [0, 1] (or None) of a point-cloud PLY."""
    import trimesh

    try:
        cloud = trimesh.load(path)
    except Exception as error:  # trimesh raises many kinds for a bad file
        raise DatasetError(f"cannot read point cloud {path}: {error}") from None
    colors = getattr(cloud, "colors", None)
    colors = None if colors is None or len(colors) == 0 else np.asarray(colors, dtype=np.float32)[:, :3] / 255.0
    return np.asarray(cloud.vertices, dtype=np.float32), colors


def save_nerfstudio(dataset: PhotoDataset, folder) -> Path:
    """Write ``folder/transforms.json`` + ``images/`` (+ ``depth/`` 16-bit mm PNGs) atomically."""
    folder = Path(folder)
    cams = dataset.cameras
    with atomic_path(folder) as tmp:
        frames = []
        for i, name in enumerate(dataset.names):
            stem = Path(name).stem
            write_png(tmp / "images" / f"{stem}.png", dataset.images[i])
            K = cams.K[i].double().numpy()
            c2w = np.linalg.inv(cams.viewmat[i].double().numpy()) @ _OPENGL_TO_OPENCV
            frame = {"file_path": f"images/{stem}.png", "transform_matrix": c2w.tolist(),
                     "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "split": dataset.split[i]}
            if dataset.depths is not None:
                write_png(tmp / "depth" / f"{stem}.png", depth_to_png16(dataset.depths[i, ..., 0]))
                frame["depth_file_path"] = f"depth/{stem}.png"
            frames.append(frame)
        meta = {"camera_model": "OPENCV", "w": dataset.width, "h": dataset.height, "depth_unit_scale_factor": 1e-3, "frames": frames}
        (tmp / "transforms.json").write_text(json.dumps(meta, indent=1))
    return folder


FORMAT = PhotoFormat("nerfstudio", sniff, load_nerfstudio, save_nerfstudio, "transforms.json or transforms_train.json (nerfstudio)")

"""Posed-photo datasets: one in-memory type and readers/writers for the formats people have.

``PhotoDataset`` holds images, cameras in our convention (OpenCV world-to-camera ``viewmat``,
pixel intrinsics ``K``), optional metric depth, instance ids and a sparse point cloud.
Readers: nerfstudio ``transforms.json`` (also the Blender NeRF-synthetic variant), COLMAP
text and binary models (cameras, images, points3D), and our own format (``dataset.json``).
Writers exist for all three, so kit photos become datasets any tool reads. Images can be
downscaled on load. This module imports numpy, torch, PIL and ``lyra_sim.render.camera``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lyra_sim.errors import LyraSimError
from lyra_sim.io_utils import atomic_path
from lyra_sim.typed import DatasetFormat, check_choice


class DatasetError(LyraSimError, ValueError):
    """A photo dataset is missing, malformed or inconsistent. The message names the file."""


@dataclass
class PhotoDataset:
    """Posed photos with shared image size.

    Attributes:
        images: RGB [C, H, W, 3] uint8.
        cameras: ``Camera`` batch of C views (OpenCV, world-to-camera, pixel intrinsics).
        depths: metric camera-space z [C, H, W, 1] float32 (0 = unknown), or None.
        instances: per-pixel object index [C, H, W, 1] int32 (-1 = none), or None.
        names: one name per view (file names for loaded datasets).
        points: sparse world points [P, 3] float32 (e.g. COLMAP's), or None.
        point_colors: their colours [P, 3] float32 in [0, 1], or None.
        split: "train" or "test" per view.
        metadata: free-form provenance (source path, format, notes).
    """

    images: np.ndarray
    cameras: object
    depths: np.ndarray | None = None
    instances: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    points: np.ndarray | None = None
    point_colors: np.ndarray | None = None
    split: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [C, H, W, 3], got {images.dtype} {list(images.shape)}")
        count, height, width = images.shape[:3]
        if len(self.cameras) != count or (self.cameras.width, self.cameras.height) != (width, height):
            raise ValueError(
                f"cameras ({len(self.cameras)} views, {self.cameras.width}x{self.cameras.height}) do not match "
                f"images [{count}, {height}, {width}, 3]"
            )
        for name in ("depths", "instances"):
            value = getattr(self, name)
            if value is not None and value.shape != (count, height, width, 1):
                raise ValueError(f"{name} must have shape [{count}, {height}, {width}, 1], got {list(value.shape)}")
        if self.points is not None:
            self.points = np.asarray(self.points, dtype=np.float32).reshape(-1, 3)
            if self.point_colors is not None:
                self.point_colors = np.asarray(self.point_colors, dtype=np.float32).reshape(len(self.points), 3)
        self.names = list(self.names) or [f"view_{i:04d}" for i in range(count)]
        self.split = list(self.split) or ["train"] * count
        if len(self.names) != count or len(self.split) != count:
            raise ValueError(f"names ({len(self.names)}) and split ({len(self.split)}) need one entry per view ({count})")
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    def images_float(self, indices=None) -> torch.Tensor:  # [C, H, W, 3]
        """Images as float32 in [0, 1] (optionally a subset of views)."""
        images = self.images if indices is None else self.images[np.asarray(indices)]
        return torch.from_numpy(images.astype(np.float32) / 255.0)

    def subset(self, indices) -> "PhotoDataset":
        """The views at ``indices`` (points and metadata are shared)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        pick = lambda a: None if a is None else a[indices]  # noqa: E731
        return PhotoDataset(
            images=self.images[indices], cameras=self.cameras[torch.from_numpy(indices)],
            depths=pick(self.depths), instances=pick(self.instances),
            names=[self.names[i] for i in indices], points=self.points, point_colors=self.point_colors,
            split=[self.split[i] for i in indices], metadata=dict(self.metadata),
        )

    def train_test(self, test_every: int = 8) -> tuple["PhotoDataset", "PhotoDataset"]:
        """Training and held-out views: the stored split when it has test views, otherwise every
        ``test_every``-th view is held out (the usual 3DGS/Mip-NeRF 360 protocol)."""
        split = np.array(self.split)
        if not (split == "test").any():
            if len(self) < 2:
                raise DatasetError("a held-out split needs at least 2 views")
            split = np.where(np.arange(len(self)) % test_every == 0, "test", "train")
        return self.subset(np.flatnonzero(split != "test")), self.subset(np.flatnonzero(split == "test"))

    def resized(self, width: int, height: int) -> "PhotoDataset":
        """The dataset at another resolution: area-averaged images, nearest depth and instances."""
        from PIL import Image

        if (width, height) == (self.width, self.height):
            return self
        images = np.stack([np.asarray(Image.fromarray(im).resize((width, height), Image.Resampling.BOX)) for im in self.images])
        rows = ((np.arange(height) + 0.5) * self.height / height).astype(np.int64)
        cols = ((np.arange(width) + 0.5) * self.width / width).astype(np.int64)
        nearest = lambda a: None if a is None else np.ascontiguousarray(a[:, rows][:, :, cols])  # noqa: E731
        return PhotoDataset(
            images=images, cameras=self.cameras.with_size(width, height), depths=nearest(self.depths),
            instances=nearest(self.instances), names=self.names, points=self.points,
            point_colors=self.point_colors, split=self.split, metadata=dict(self.metadata),
        )


# ===================================================================== image files
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".JPG", ".JPEG", ".PNG")


def _resolve_image(path: Path) -> Path:
    """``path`` itself, or with an image suffix added (Blender datasets omit ".png")."""
    if path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    raise DatasetError(f"image {path} not found")


def read_image(path: Path, background: tuple[float, float, float] = (1.0, 1.0, 1.0), alpha_found: list | None = None) -> np.ndarray:  # [H, W, 3] uint8
    """An RGB image; images with alpha are composited over ``background`` (and ``alpha_found``,
    when given, gets the path appended)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read image {path}: {error}") from None
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        if alpha_found is not None:
            alpha_found.append(path)
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:] + np.asarray(background, dtype=np.float32) * (1.0 - rgba[..., 3:])
        return (rgb * 255.0 + 0.5).astype(np.uint8)
    return np.asarray(image.convert("RGB"))


def read_depth(path: Path, unit_scale: float = 1e-3) -> np.ndarray:  # [H, W] float32 metres
    """Depth from ``.npy`` (metres, as stored) or a 16-bit PNG/TIFF (integers x ``unit_scale``)."""
    from PIL import Image

    if path.suffix == ".npy":
        depth = np.load(path).astype(np.float32)
        return depth[..., 0] if depth.ndim == 3 else depth
    try:
        with Image.open(path) as image:
            depth = np.asarray(image).astype(np.float32)
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read depth image {path}: {error}") from None
    if depth.ndim != 2:
        raise DatasetError(f"depth image {path} must have one channel, got shape {list(depth.shape)}")
    return depth * unit_scale


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def _depth_to_png16(depth: np.ndarray, unit_scale: float = 1e-3) -> np.ndarray:  # [H, W] -> uint16
    return np.clip(np.round(depth / unit_scale), 0, 65535).astype(np.uint16)


# ===================================================================== lens distortion
def undistort_image(
    image: np.ndarray,  # [H, W, ch]
    K: np.ndarray,  # [3, 3]
    distortion: np.ndarray,  # [5] k1, k2, p1, p2, k3 (OpenCV radial-tangential)
    nearest: bool = False,
) -> np.ndarray:
    """Resample an image taken through a radial-tangential lens onto the pinhole camera ``K``.

    Each output pixel's normalised ray is distorted with the OpenCV model and the input is
    sampled there (bilinear, or nearest for depth and labels).
    """
    from scipy.ndimage import map_coordinates

    k1, k2, p1, p2, k3 = (float(v) for v in distortion)
    height, width = image.shape[:2]
    v, u = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    rows, cols = yd * K[1, 1] + K[1, 2] - 0.5, xd * K[0, 0] + K[0, 2] - 0.5
    channels = [
        map_coordinates(image[..., c].astype(np.float64), [rows, cols], order=0 if nearest else 1, mode="nearest")
        for c in range(image.shape[2])
    ]
    out = np.stack(channels, axis=-1)
    return np.clip(np.round(out), 0, 255).astype(image.dtype) if image.dtype == np.uint8 else out.astype(image.dtype)


# ===================================================================== assembling views
@dataclass
class _View:
    name: str
    image_path: Path
    K: np.ndarray  # [3, 3] at the image's stored size
    viewmat: np.ndarray  # [4, 4]
    distortion: np.ndarray | None = None  # [5]
    depth_path: Path | None = None
    depth_scale: float = 1e-3
    split: str = "train"


def _assemble(
    views: list[_View],
    source: Path,
    format_name: str,
    resolution: int | None,
    points=None,
    point_colors=None,
    background=(1.0, 1.0, 1.0),
    progress: bool = True,
) -> PhotoDataset:
    """Read the images of ``views``, undistort, resize to one size and build a PhotoDataset."""
    from PIL import Image
    from tqdm.auto import tqdm

    from lyra_sim.render.camera import Camera

    if not views:
        raise DatasetError(f"{source}: the dataset has no views")
    images, depths, Ks = [], [], []
    target: tuple[int, int] | None = None
    notes: list[str] = []
    alpha_found: list[Path] = []
    for view in tqdm(views, desc=f"loading {format_name}", unit="image", disable=not progress or len(views) < 16):
        image = read_image(view.image_path, background, alpha_found)
        height, width = image.shape[:2]
        K = view.K.astype(np.float64).copy()
        depth = None
        if view.depth_path is not None:
            depth = read_depth(view.depth_path, view.depth_scale)
            if depth.shape != (height, width):
                raise DatasetError(f"depth {view.depth_path} has shape {list(depth.shape)}, image {view.image_path} {[height, width]}")
        if view.distortion is not None and np.any(np.abs(view.distortion) > 1e-9):
            image = undistort_image(image, K, view.distortion)
            if depth is not None:
                depth = undistort_image(depth[..., None], K, view.distortion, nearest=True)[..., 0]
            notes.append(f"{view.name}: undistorted (k1 k2 p1 p2 k3 = {np.round(view.distortion, 5).tolist()})")
        if target is None:
            target = (resolution, max(1, round(height * resolution / width))) if resolution else (width, height)
        if abs(width / height - target[0] / target[1]) > 0.02:
            raise DatasetError(
                f"{view.image_path}: {width}x{height} has another aspect ratio than the dataset's {target[0]}x{target[1]}"
            )
        if (width, height) != target:
            image = np.asarray(Image.fromarray(image).resize(target, Image.Resampling.BOX))
            if depth is not None:
                rows = ((np.arange(target[1]) + 0.5) * height / target[1]).astype(np.int64)
                cols = ((np.arange(target[0]) + 0.5) * width / target[0]).astype(np.int64)
                depth = depth[rows][:, cols]
            K[0] *= target[0] / width
            K[1] *= target[1] / height
        images.append(image)
        depths.append(depth)
        Ks.append(K)
    has_depth = [d is not None for d in depths]
    if any(has_depth) and not all(has_depth):
        raise DatasetError(f"{source}: only {sum(has_depth)} of {len(views)} views have depth; give depth for all or none")
    cameras = Camera(np.stack(Ks), np.stack([v.viewmat for v in views]), target[0], target[1])
    return PhotoDataset(
        images=np.stack(images),
        cameras=cameras,
        depths=np.stack(depths)[..., None].astype(np.float32) if all(has_depth) else None,
        names=[v.name for v in views],
        points=points,
        point_colors=point_colors,
        split=[v.split for v in views],
        # A background colour only means something when transparent pixels were composited over it.
        metadata={"source": str(source), "format": format_name, "notes": notes,
                  **({"background": list(background)} if alpha_found else {})},
    )


def _find_depth(root: Path, image_path: Path) -> Path | None:
    """A depth map for ``image_path`` in a sibling ``depth``/``depths`` folder (same stem, .npy or .png)."""
    for folder in ("depth", "depths"):
        for suffix in (".npy", ".png", ".tiff", ".tif"):
            candidate = root / folder / (image_path.stem + suffix)
            if candidate.is_file():
                return candidate
    return None


# ===================================================================== nerfstudio / Blender
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


def load_nerfstudio(path, *, resolution: int | None = None, progress: bool = True) -> PhotoDataset:
    """A nerfstudio ``transforms.json`` (or a Blender NeRF-synthetic folder of
    ``transforms_{train,val,test}.json``). ``transform_matrix`` is camera-to-world in OpenGL axes;
    RGBA images are composited over white (nerfstudio's Blender default)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in (path / "transforms.json",) if p.is_file()]
    if not files and path.is_dir():
        files = [path / f"transforms_{s}.json" for s in ("train", "val", "test") if (path / f"transforms_{s}.json").is_file()]
    if not files:
        raise DatasetError(f"{path}: no transforms.json (or transforms_train.json) found")
    views: list[_View] = []
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
            image_path = _resolve_image(root / frame["file_path"])
            c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
            if c2w.shape == (3, 4):
                c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
            if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
                raise DatasetError(f"{file}: frame {index} transform_matrix must be a finite 4x4, got shape {list(c2w.shape)}")
            size = None
            if not any(k in {**defaults, **frame} for k in ("w",)):
                from PIL import Image

                with Image.open(image_path) as image:
                    size = image.size
            K, distortion = _nerfstudio_intrinsics(frame, defaults, file, size)
            depth_path = root / frame["depth_file_path"] if "depth_file_path" in frame else None
            views.append(_View(
                name=Path(frame["file_path"]).name, image_path=image_path, K=K,
                viewmat=np.linalg.inv(c2w @ _OPENGL_TO_OPENCV), distortion=distortion,
                depth_path=depth_path, depth_scale=depth_scale, split=frame.get("split", split_from_name),
            ))
        if "ply_file_path" in meta and points is None:
            points, point_colors = _read_point_ply(root / meta["ply_file_path"])
    return _assemble(views, path, "nerfstudio", resolution, points, point_colors, progress=progress)


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
            _write_png(tmp / "images" / f"{stem}.png", dataset.images[i])
            K = cams.K[i].double().numpy()
            c2w = np.linalg.inv(cams.viewmat[i].double().numpy()) @ _OPENGL_TO_OPENCV
            frame = {"file_path": f"images/{stem}.png", "transform_matrix": c2w.tolist(),
                     "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "split": dataset.split[i]}
            if dataset.depths is not None:
                _write_png(tmp / "depth" / f"{stem}.png", _depth_to_png16(dataset.depths[i, ..., 0]))
                frame["depth_file_path"] = f"depth/{stem}.png"
            frames.append(frame)
        meta = {"camera_model": "OPENCV", "w": dataset.width, "h": dataset.height, "depth_unit_scale_factor": 1e-3, "frames": frames}
        (tmp / "transforms.json").write_text(json.dumps(meta, indent=1))
    return folder


# ===================================================================== COLMAP
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


def qvec_to_matrix(qvec: np.ndarray) -> np.ndarray:  # [4] (w, x, y, z) -> [3, 3]
    """Rotation matrix of a unit quaternion in COLMAP's (w, x, y, z) order."""
    from lyra_sim.scene.gaussian_scene import quat_to_matrix

    q = torch.as_tensor(np.asarray(qvec, dtype=np.float64))
    return quat_to_matrix(q / q.norm()).numpy()


def matrix_to_qvec(rotation: np.ndarray) -> np.ndarray:  # [3, 3] -> [4] (w, x, y, z)
    from lyra_sim.scene.gaussian_scene import matrix_to_quat

    return matrix_to_quat(torch.as_tensor(np.asarray(rotation, dtype=np.float64))).numpy()


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


def load_colmap(path, *, images_dir=None, resolution: int | None = None, progress: bool = True) -> PhotoDataset:
    """A COLMAP dataset: ``path/images`` + a text or binary model (``sparse/0``); depth maps are
    read from ``path/depth`` (same stem, ``.npy`` metres or 16-bit PNG millimetres) when present.
    Radial-tangential distortion is removed on load; fisheye models are rejected."""
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
        if not image_path.is_file():
            raise DatasetError(f"{model_folder}: image {image.name!r} not found in {images_dir}")
        views.append(_View(image.name, image_path, K, viewmat, distortion, _find_depth(root, image_path)))
    colors = model.colors.astype(np.float32) / 255.0 if len(model.points) else None
    return _assemble(views, path, "colmap", resolution, model.points if len(model.points) else None, colors, progress=progress)


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
            _write_png(tmp / "images" / name, dataset.images[i])
            if dataset.depths is not None:
                _write_png(tmp / "depth" / name, _depth_to_png16(dataset.depths[i, ..., 0]))
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


# ===================================================================== our format
LYRA_DATASET_FILE = "dataset.json"


def save_lyra_dataset(dataset: PhotoDataset, folder) -> Path:
    """Write our lossless format atomically: ``dataset.json`` (K, viewmat, split per view, clip
    range, metadata), ``images/*.png``, ``depth/*.npy`` (float32 metres), ``instances/*.png``
    (16-bit, label + 1) and ``points.npy`` ([P, 6] xyz rgb) when present."""
    folder = Path(folder)
    cams = dataset.cameras
    with atomic_path(folder) as tmp:
        frames = []
        for i, name in enumerate(dataset.names):
            stem = Path(name).stem
            frame = {"name": name, "image": f"images/{stem}.png", "K": cams.K[i].double().tolist(),
                     "viewmat": cams.viewmat[i].double().tolist(), "split": dataset.split[i]}
            _write_png(tmp / frame["image"], dataset.images[i])
            if dataset.depths is not None:
                frame["depth"] = f"depth/{stem}.npy"
                (tmp / "depth").mkdir(exist_ok=True)
                np.save(tmp / frame["depth"], dataset.depths[i, ..., 0].astype(np.float32))
            if dataset.instances is not None:
                frame["instances"] = f"instances/{stem}.png"
                _write_png(tmp / frame["instances"], (dataset.instances[i, ..., 0] + 1).astype(np.uint16))
            frames.append(frame)
        meta = {"format": "lyra-sim photos", "version": 1, "width": dataset.width, "height": dataset.height,
                "near": cams.near, "far": cams.far, "metadata": dataset.metadata, "frames": frames}
        if dataset.points is not None:
            colors = dataset.point_colors if dataset.point_colors is not None else np.full((len(dataset.points), 3), 0.5)
            np.save(tmp / "points.npy", np.concatenate([dataset.points, colors], axis=1).astype(np.float32))
            meta["points"] = "points.npy"
        (tmp / LYRA_DATASET_FILE).write_text(json.dumps(meta, indent=1))
    return folder


def load_lyra_dataset(path, *, resolution: int | None = None, progress: bool = True) -> PhotoDataset:
    """Read a folder written by :func:`save_lyra_dataset` (exact cameras, depth and instances)."""
    from lyra_sim.render.camera import Camera

    path = Path(path)
    file = path if path.is_file() else path / LYRA_DATASET_FILE
    try:
        meta = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"cannot read {file}: {error}") from None
    if meta.get("format") != "lyra-sim photos":
        raise DatasetError(f"{file}: not a lyra-sim photo dataset (format {meta.get('format')!r})")
    root, frames = file.parent, meta["frames"]
    try:
        images = np.stack([read_image(root / f["image"]) for f in frames])
        depths = np.stack([np.load(root / f["depth"]) for f in frames])[..., None] if all("depth" in f for f in frames) else None
        instances = None
        if all("instances" in f for f in frames):
            instances = np.stack([read_depth(root / f["instances"], 1.0) for f in frames]).astype(np.int32)[..., None] - 1
        cameras = Camera(np.array([f["K"] for f in frames]), np.array([f["viewmat"] for f in frames]),
                         meta["width"], meta["height"], meta.get("near", 0.01), meta.get("far", 1000.0))
    except (KeyError, OSError, ValueError) as error:
        raise DatasetError(f"{file}: malformed dataset: {error}") from None
    points = colors = None
    if meta.get("points"):
        table = np.load(root / meta["points"])
        points, colors = table[:, :3], table[:, 3:6]
    dataset = PhotoDataset(images=images, cameras=cameras, depths=depths, instances=instances,
                           names=[f["name"] for f in frames], points=points, point_colors=colors,
                           split=[f.get("split", "train") for f in frames],
                           metadata={**meta.get("metadata", {}), "source": str(path), "format": "lyra"})
    if resolution and resolution != dataset.width:
        dataset = dataset.resized(resolution, max(1, round(dataset.height * resolution / dataset.width)))
    return dataset


# ===================================================================== entry point
def detect_dataset_format(path) -> str:
    """"lyra", "nerfstudio" or "colmap" from the files present at ``path``."""
    path = Path(path)
    if path.is_file():
        if path.name == LYRA_DATASET_FILE:
            return "lyra"
        if path.suffix == ".json":
            return "nerfstudio"
        raise DatasetError(f"{path}: not a dataset file (expected dataset.json or transforms.json)")
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset folder")
    if (path / LYRA_DATASET_FILE).is_file():
        return "lyra"
    if (path / "transforms.json").is_file() or (path / "transforms_train.json").is_file():
        return "nerfstudio"
    colmap_model_folder(path)  # raises with the list of places looked at
    return "colmap"


def load_dataset(path, *, format: DatasetFormat = "auto", resolution: int | None = None, progress: bool = True) -> PhotoDataset:
    """Load posed photos from ``path`` in any supported format.

    Args:
        path: dataset folder (or its ``transforms.json`` / ``dataset.json``).
        format: "auto" (detect), "nerfstudio", "colmap" or "lyra".
        resolution: target image width in pixels (height keeps the aspect ratio); None keeps
            the stored size. Images are area-averaged, intrinsics scaled.
        progress: show a progress bar while reading many images.
    """
    check_choice(format, DatasetFormat, "format")
    if resolution is not None and resolution < 1:
        raise ValueError(f"resolution must be a positive width in pixels, got {resolution}")
    if format == "auto":
        format = detect_dataset_format(path)
    loader = {"nerfstudio": load_nerfstudio, "colmap": load_colmap, "lyra": load_lyra_dataset}[format]
    return loader(path, resolution=resolution, progress=progress)

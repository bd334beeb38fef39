"""What the photo-dataset readers and writers share: image and depth files, lens undistortion,
and assembling views read from disk into one ``PhotoDataset`` (one size, scaled intrinsics).

May import numpy, scipy, PIL, tqdm and ``lyra_sim.render.camera``; not the format modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lyra_sim.photos.dataset import DatasetError, PhotoDataset


@dataclass(frozen=True)
class PhotoFormat:
    """What a format module declares for ``lyra_sim.photos.io``'s table."""

    name: str
    sniff: Callable[[Path], bool]  # does this path (file or folder) hold this format?
    read: Callable[..., PhotoDataset]  # read(path, *, resolution=None, progress=True)
    write: Callable[..., Path]  # write(dataset, folder) -> folder, atomically
    looked_for: str  # what sniffing looks for, for the "nothing found" error


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".JPG", ".JPEG", ".PNG")


def resolve_image(path: Path) -> Path:
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


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def depth_to_png16(depth: np.ndarray, unit_scale: float = 1e-3) -> np.ndarray:  # [H, W] -> uint16
    return np.clip(np.round(depth / unit_scale), 0, 65535).astype(np.uint16)



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



@dataclass
class ViewOnDisk:
    name: str
    image_path: Path
    K: np.ndarray  # [3, 3] at the image's stored size
    viewmat: np.ndarray  # [4, 4]
    distortion: np.ndarray | None = None  # [5]
    depth_path: Path | None = None
    depth_scale: float = 1e-3
    split: str = "train"


def drop_missing_images(views: list[ViewOnDisk], source: Path, skip_missing: bool) -> tuple[list[ViewOnDisk], list[str]]:
    """The views whose image exists, and notes. Missing images raise one ``DatasetError`` listing
    them all, unless ``skip_missing`` (then those views are left out, and said so)."""
    missing = [view for view in views if not Path(view.image_path).is_file()]
    if not missing:
        return views, []
    names = ", ".join(str(view.image_path) for view in missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
    if not skip_missing:
        raise DatasetError(f"{source}: {len(missing)} of {len(views)} images not found: {names} (pass --skip-missing to leave those views out)")
    kept = [view for view in views if Path(view.image_path).is_file()]
    if not kept:
        raise DatasetError(f"{source}: none of the {len(views)} images was found: {names}")
    return kept, [f"skipped {len(missing)} views whose images are missing: {names}"]


def assemble_views(
    views: list[ViewOnDisk],
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
    from lyra_sim.io_utils import progress_bar

    from lyra_sim.render.camera import Camera

    if not views:
        raise DatasetError(f"{source}: the dataset has no views")
    images, depths, Ks = [], [], []
    target: tuple[int, int] | None = None
    notes: list[str] = []
    alpha_found: list[Path] = []
    for view in progress_bar(views, desc=f"loading {format_name}", unit="image", enabled=progress and len(views) >= 16):
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


def find_depth_file(root: Path, image_path: Path) -> Path | None:
    """A depth map for ``image_path`` in a sibling ``depth``/``depths`` folder (same stem, .npy or .png)."""
    for folder in ("depth", "depths"):
        for suffix in (".npy", ".png", ".tiff", ".tif"):
            candidate = root / folder / (image_path.stem + suffix)
            if candidate.is_file():
                return candidate
    return None

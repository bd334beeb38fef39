"""Our lossless photo-dataset format (``dataset.json`` + PNG images, float32 depth, 16-bit
instance ids, points): reader, writer and sniffing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lyra_sim.io_utils import atomic_path
from lyra_sim.photos.dataset import DatasetError, PhotoDataset
from lyra_sim.photos.formats._common import PhotoFormat, read_depth, read_image, write_png

def sniff(path: Path) -> bool:
    """Our ``dataset.json``, or a folder holding one."""
    return path.name == LYRA_DATASET_FILE if path.is_file() else (path / LYRA_DATASET_FILE).is_file()


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
            write_png(tmp / frame["image"], dataset.images[i])
            if dataset.depths is not None:
                frame["depth"] = f"depth/{stem}.npy"
                (tmp / "depth").mkdir(exist_ok=True)
                np.save(tmp / frame["depth"], dataset.depths[i, ..., 0].astype(np.float32))
            if dataset.instances is not None:
                frame["instances"] = f"instances/{stem}.png"
                write_png(tmp / frame["instances"], (dataset.instances[i, ..., 0] + 1).astype(np.uint16))
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


FORMAT = PhotoFormat("lyra", sniff, load_lyra_dataset, save_lyra_dataset, f"{LYRA_DATASET_FILE} (lyra)")

"""The posed-photo dataset type: ``PhotoDataset`` and ``DatasetError``.

``PhotoDataset`` holds images, cameras in our convention (OpenCV world-to-camera ``viewmat``,
pixel intrinsics ``K``), optional metric depth, instance ids and a sparse point cloud. Readers
and writers live in ``lyra_sim.photos.formats`` (one module per format) and ``lyra_sim.photos.io``
picks one. This module imports numpy, torch and PIL (lazily); nothing else of lyra_sim but errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lyra_sim.errors import LyraSimError


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

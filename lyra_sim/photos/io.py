"""Reading photo datasets in any supported format: one table of formats, sniffing in order.

Adding a format: write ``lyra_sim/photos/formats/<name>.py`` declaring ``FORMAT = PhotoFormat(...)``
and add it to ``FORMATS`` below. This module imports the format modules and nothing heavier.
"""

from __future__ import annotations

from pathlib import Path

from lyra_sim.photos.dataset import DatasetError, PhotoDataset
from lyra_sim.photos.formats import colmap, lyra, nerfstudio
from lyra_sim.photos.formats._common import PhotoFormat
from lyra_sim.typed import DatasetFormat, check_choice

# Sniffed in this order: our own file first, then nerfstudio's, then a COLMAP model (which
# nerfstudio folders often carry beside their transforms.json).
FORMATS: dict[str, PhotoFormat] = {spec.name: spec for spec in (lyra.FORMAT, nerfstudio.FORMAT, colmap.FORMAT)}


def detect_dataset_format(path) -> str:
    """The name of the format (a key of ``FORMATS``) held at ``path`` (a folder or a file)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset folder")
    for spec in FORMATS.values():
        if spec.sniff(path):
            return spec.name
    if path.is_file():
        raise DatasetError(f"{path}: not a dataset file (expected dataset.json or transforms.json)")
    raise DatasetError(f"{path}: no photo dataset found: " + "; ".join(f"no {spec.looked_for}" for spec in FORMATS.values()))


def load_dataset(path, *, format: DatasetFormat = "auto", resolution: int | None = None, progress: bool = True, skip_missing: bool = False) -> PhotoDataset:
    """Load posed photos from ``path`` in any supported format.

    Args:
        path: dataset folder (or its ``transforms.json`` / ``dataset.json``).
        format: "auto" (detect) or a key of ``FORMATS``: "nerfstudio", "colmap" or "lyra".
        resolution: target image width in pixels (height keeps the aspect ratio); None keeps
            the stored size. Images are area-averaged, intrinsics scaled.
        progress: show a progress bar while reading many images.
        skip_missing: leave out views whose image file is missing (COLMAP, nerfstudio) instead
            of raising one error that lists them all.
    """
    check_choice(format, ("auto", *FORMATS), "format")
    if resolution is not None and resolution < 1:
        raise ValueError(f"resolution must be a positive width in pixels, got {resolution}")
    if format == "auto":
        format = detect_dataset_format(path)
    if skip_missing and format in ("colmap", "nerfstudio"):
        return FORMATS[format].read(path, resolution=resolution, progress=progress, skip_missing=True)
    return FORMATS[format].read(path, resolution=resolution, progress=progress)

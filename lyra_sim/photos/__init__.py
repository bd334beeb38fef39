"""Posed photos: the ``PhotoDataset`` type and its nerfstudio, COLMAP and lyra readers/writers.

``load_dataset(path)`` detects the format; ``save_nerfstudio`` / ``save_colmap`` /
``save_lyra_dataset`` write one. Kits render their photos into a ``PhotoDataset``; reconstruction
(``lyra_sim.reconstruct``) optimises a scene from one. May import numpy, torch, PIL, scipy, trimesh
and ``lyra_sim.render.camera``; not ``lyra_sim.reconstruct`` or ``lyra_sim.generate``.
"""

from lyra_sim.photos.dataset import DatasetError, PhotoDataset
from lyra_sim.photos.formats._common import IMAGE_SUFFIXES, PhotoFormat, read_depth, read_image, undistort_image
from lyra_sim.photos.formats.colmap import (
    COLMAP_MODEL_IDS,
    COLMAP_MODELS,
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    colmap_intrinsics,
    colmap_model_folder,
    load_colmap,
    matrix_to_qvec,
    qvec_to_matrix,
    read_colmap_model,
    save_colmap,
)
from lyra_sim.photos.formats.lyra import LYRA_DATASET_FILE, load_lyra_dataset, save_lyra_dataset
from lyra_sim.photos.formats.nerfstudio import load_nerfstudio, save_nerfstudio
from lyra_sim.photos.io import FORMATS, detect_dataset_format, load_dataset

__all__ = [
    "COLMAP_MODELS", "COLMAP_MODEL_IDS", "ColmapCamera", "ColmapImage", "ColmapModel", "DatasetError", "FORMATS",
    "IMAGE_SUFFIXES", "LYRA_DATASET_FILE", "PhotoDataset", "PhotoFormat", "colmap_intrinsics", "colmap_model_folder",
    "detect_dataset_format", "load_colmap", "load_dataset", "load_lyra_dataset", "load_nerfstudio", "matrix_to_qvec",
    "qvec_to_matrix", "read_colmap_model", "read_depth", "read_image", "save_colmap", "save_lyra_dataset",
    "save_nerfstudio", "undistort_image",
]

"""Gaussian scenes sampled on the surface of a mesh: the exact-geometry scene for tests and benchmarks.

``sample_surface_gaussians`` places flat Gaussians (discs) on the triangles of a textured or
vertex-coloured trimesh: every mean lies on a face, the disc lies in the face's plane and takes
its colour from the texture (bilinear, at the sample's UV), the vertex colours (barycentric) or
the face colours. Samples are stratified over the cumulative face area, so every face whose area
is at least ``total_area / n`` receives a Gaussian. This module imports numpy, torch and trimesh
(lazily), ``lyra_sim.scene`` and ``lyra_sim.geometry.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lyra_sim.geometry.metrics import face_normals_and_areas
from lyra_sim.rotations import matrix_to_quat
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata


@dataclass
class SurfaceSamples:
    """The result of :func:`sample_surface_gaussians`.

    Attributes:
        scene: the Gaussians (SH degree 0), frame "z-up" when the mesh is in our world frame.
        face_index: the face each Gaussian was sampled on [N] (int64).
        labels: per-Gaussian labels [N] (int32) taken from ``face_labels``, or None.
        normals: unit face normals at the samples [N, 3].
    """

    scene: GaussianScene
    face_index: np.ndarray  # [N]
    labels: np.ndarray | None  # [N]
    normals: np.ndarray  # [N, 3]


def stratified_face_samples(
    face_areas: np.ndarray,  # [F]
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:  # [count] face indices, sorted
    """Face index of ``count`` samples placed systematically along the cumulative area.

    One random offset, then equal steps of ``total / count``: a face of area >= total / count
    always gets at least one sample, and the expected count per face is proportional to its area.
    """
    cumulative = np.cumsum(face_areas, dtype=np.float64)
    total = cumulative[-1]
    positions = (np.arange(count) + rng.random()) * (total / count)
    return np.minimum(np.searchsorted(cumulative, positions, side="right"), len(face_areas) - 1)


def sample_texture_bilinear(
    image: np.ndarray,  # [H, W, C] uint8 or float, rows top to bottom
    uv: np.ndarray,  # [N, 2] OBJ convention: u right, v up, repeating outside [0, 1]
) -> np.ndarray:  # [N, C] float64 in the image's units
    """Bilinear texture lookup: UVs outside [0, 1] repeat (the OBJ convention), and filtering
    clamps at the image border so a [0, 1] atlas never bleeds the opposite edge into its rim."""
    height, width = image.shape[:2]
    uv = np.where((uv < 0.0) | (uv > 1.0), uv - np.floor(uv), uv)
    u = uv[:, 0] * width - 0.5
    v = (1.0 - uv[:, 1]) * height - 0.5  # v runs up, image rows run down
    x0, y0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fx, fy = (u - x0)[:, None], (v - y0)[:, None]
    x1, y1 = np.clip(x0 + 1, 0, width - 1), np.clip(y0 + 1, 0, height - 1)
    x0, y0 = np.clip(x0, 0, width - 1), np.clip(y0, 0, height - 1)
    pixels = image.astype(np.float64)
    top = pixels[y0, x0] * (1 - fx) + pixels[y0, x1] * fx
    bottom = pixels[y1, x0] * (1 - fx) + pixels[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def mesh_texture_image(mesh) -> np.ndarray | None:
    """The diffuse texture of a trimesh as an RGB array [H, W, 3] uint8, or None when it has none."""
    material = getattr(mesh.visual, "material", None)
    if material is None:
        return None
    image = getattr(material, "image", None)
    if image is None:
        image = getattr(material, "baseColorTexture", None)
    if image is None:
        return None
    return np.asarray(image.convert("RGB"))


def _material_colour(mesh) -> np.ndarray:  # [3] in [0, 1]
    material = getattr(mesh.visual, "material", None)
    for attribute in ("baseColorFactor", "diffuse"):
        value = getattr(material, attribute, None) if material is not None else None
        if value is not None:
            value = np.asarray(value, dtype=np.float64).reshape(-1)[:3]
            return value / 255.0 if value.max() > 1.0 else value
    return np.full(3, 0.7)


def surface_colours(
    mesh,
    face_index: np.ndarray,  # [N]
    barycentric: np.ndarray,  # [N, 3]
) -> np.ndarray:  # [N, 3] in [0, 1]
    """Colour of the mesh at surface points given by face and barycentric coordinates."""
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        uv = getattr(visual, "uv", None)
        image = mesh_texture_image(mesh)
        if uv is not None and image is not None and len(uv) == len(mesh.vertices):
            corner_uv = np.asarray(uv, dtype=np.float64)[mesh.faces[face_index]]  # [N, 3, 2]
            point_uv = np.einsum("nk,nkc->nc", barycentric, corner_uv)
            return sample_texture_bilinear(image, point_uv) / 255.0
        return np.broadcast_to(_material_colour(mesh), (len(face_index), 3)).copy()
    if kind == "vertex":
        corner = np.asarray(visual.vertex_colors, dtype=np.float64)[mesh.faces[face_index], :3]
        return np.einsum("nk,nkc->nc", barycentric, corner) / 255.0
    if kind == "face":
        return np.asarray(visual.face_colors, dtype=np.float64)[face_index, :3] / 255.0
    return np.broadcast_to(_material_colour(mesh), (len(face_index), 3)).copy()


def sample_surface_gaussians(
    mesh,
    count: int,
    *,
    seed: int = 0,
    face_labels: np.ndarray | None = None,  # [F] int
    opacity: float = 0.98,
    footprint: float = 0.7,
    thickness_ratio: float = 0.02,
    sh_degree: int = 0,
    frame: str = "z-up",
) -> SurfaceSamples:
    """Flat Gaussians on the surface of ``mesh`` (a ``trimesh.Trimesh``), coloured from it.

    Args:
        mesh: triangle mesh with TextureVisuals (uv + image), vertex colours, face colours or a
            plain material colour. Units and frame are kept as they are.
        count: number of Gaussians N (> 0).
        seed: seeds the stratification offset and the in-face positions.
        face_labels: optional per-face integer label [F]; copied to each Gaussian.
        opacity: opacity of every Gaussian, in (0, 1).
        footprint: in-plane standard deviation as a multiple of the sample spacing
            sqrt(area / N); 0.7 gives a hole-free surface at opacity ~1.
        thickness_ratio: standard deviation along the normal relative to the in-plane one.
        sh_degree: SH degree of the scene (higher bands are zero: the colour is view-independent).
        frame: ``SceneMetadata.frame`` of the result ("z-up" for our world frame).

    Returns:
        SurfaceSamples with the scene, the face of each Gaussian, labels and normals.
    """
    faces = np.asarray(mesh.faces)
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"mesh must have triangle faces [F, 3], got {list(faces.shape)}")
    if face_labels is not None:
        face_labels = np.asarray(face_labels)
        if face_labels.shape != (len(faces),):
            raise ValueError(f"face_labels must have shape [{len(faces)}], got {list(face_labels.shape)}")
    rng = np.random.default_rng(seed)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    face_normals, face_areas = face_normals_and_areas(vertices, faces)
    total_area = face_areas.sum()
    if not np.isfinite(total_area) or total_area <= 0:
        raise ValueError("mesh has no surface area to sample")

    face_index = stratified_face_samples(face_areas, count, rng)
    # Uniform point in a triangle: fold the unit square onto the lower triangle.
    r1, r2 = rng.random(count), rng.random(count)
    outside = r1 + r2 > 1.0
    r1[outside], r2[outside] = 1.0 - r1[outside], 1.0 - r2[outside]
    barycentric = np.stack([1.0 - r1 - r2, r1, r2], axis=1)
    sample_corners = vertices[faces[face_index]]  # [N, 3, 3]
    points = np.einsum("nk,nkc->nc", barycentric, sample_corners)

    normals = face_normals[face_index]
    tangent = sample_corners[:, 1] - sample_corners[:, 0]
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    bitangent = np.cross(normals, tangent)  # right-handed frame: tangent x bitangent = normal
    frames = np.stack([tangent, bitangent, normals], axis=2)  # columns = local axes [N, 3, 3]

    sigma = footprint * np.sqrt(total_area / count)
    scales = np.tile([sigma, sigma, max(sigma * thickness_ratio, 1e-7)], (count, 1))
    colours = np.clip(surface_colours(mesh, face_index, barycentric), 0.0, 1.0)
    scene = GaussianScene.from_activated(
        means=torch.from_numpy(points).float(),
        colors=torch.from_numpy(colours).float(),
        opacities=torch.full((count,), float(opacity)),
        scales=torch.from_numpy(scales).float(),
        quats=matrix_to_quat(torch.from_numpy(frames)).float(),
        sh_degree=sh_degree,
        metadata=SceneMetadata(frame=frame, metric=True, notes=[f"surface-sampled from a mesh ({len(faces)} faces)"]),
    )
    labels = None if face_labels is None else face_labels[face_index].astype(np.int32)
    return SurfaceSamples(scene=scene, face_index=face_index.astype(np.int64), labels=labels, normals=normals)

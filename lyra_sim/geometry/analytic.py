"""Scenes with analytic ground truth for tests and benchmarks: a floor, boxes and a sphere, sampled
as flat Gaussians, with the exact surfaces kept for accuracy metrics.

Everything is in our world frame (+Z up, metres, floor at z = 0). Boxes have no bottom face
(a capture never sees it); the floor is one square. Imports trimesh lazily.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lyra_sim.geometry.mesh import Mesh
from lyra_sim.scene.gaussian_scene import GaussianScene


@dataclass
class AnalyticPart:
    """One solid of an analytic scene.

    Attributes:
        name: "floor", "box0", "box1", ..., "sphere".
        kind: "floor", "box" or "sphere".
        center: [3] centre of the solid (the floor's centre for the floor).
        size: [3] extents (for the sphere: the diameter three times).
        surface: the sampled surface (boxes without their bottom).
    """

    name: str
    kind: str
    center: np.ndarray
    size: np.ndarray
    surface: Mesh

    @property
    def top(self) -> float:
        return float(self.center[2] + 0.5 * self.size[2]) if self.kind != "floor" else 0.0


@dataclass
class AnalyticScene:
    """Gaussians on known surfaces.

    Attributes:
        scene: the Gaussians (frame "z-up", metric).
        labels: index into ``parts`` of each Gaussian [N] (int32).
        parts: the solids.
    """

    scene: GaussianScene
    labels: np.ndarray
    parts: list[AnalyticPart]

    def mask(self, name: str) -> np.ndarray:  # [N] bool
        """The Gaussians sampled on part ``name``."""
        names = [part.name for part in self.parts]
        return self.labels == names.index(name)

    def visible_truth(self, count: int, seed: int = 0, exclude: tuple[str, ...] = ()) -> np.ndarray:  # [count', 3]
        """Points on the surfaces a camera above the floor can see: the floor outside the box
        footprints and the sphere's contact cap, box sides and tops, the sphere above its lowest
        10% of height. Parts named in ``exclude`` are left out."""
        from lyra_sim.geometry.metrics import sample_surface

        parts = [p for p in self.parts if p.name not in exclude]
        areas = np.array([_area(p.surface) for p in parts])
        points = []
        for part, area in zip(parts, areas):
            samples, _ = sample_surface(part.surface.vertices, part.surface.faces, max(int(count * area / areas.sum()), 1), seed)
            if part.kind == "sphere":
                samples = samples[samples[:, 2] > part.center[2] - 0.8 * 0.5 * part.size[2]]
            points.append(samples)
        points = np.concatenate(points)
        hidden = np.zeros(len(points), dtype=bool)
        for part in self.parts:
            if part.kind == "box" or (part.kind == "sphere" and part.name not in exclude):
                half = 0.5 * part.size[:2] + (1e-3 if part.kind == "box" else -0.4 * part.size[0])
                on_floor = np.abs(points[:, 2]) < 1e-6
                hidden |= on_floor & np.all(np.abs(points[:, :2] - part.center[:2]) < half, axis=1)
        return points[~hidden]


def _area(mesh: Mesh) -> float:
    corners = mesh.vertices[mesh.faces]
    return float(0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum())


def tabletop_scene(
    gaussians: int = 20_000,
    floor_size: float = 1.6,
    boxes: tuple[tuple[float, float, float, float, float, float], ...] = (
        (-0.35, -0.25, 0.0, 0.3, 0.3, 0.2),
        (0.3, 0.2, 0.0, 0.2, 0.25, 0.4),
    ),
    sphere: tuple[float, float, float] | None = (0.25, -0.35, 0.12),
    seed: int = 0,
    opacity: float = 0.98,
) -> AnalyticScene:
    """A square floor with boxes standing on it and a sphere resting on it.

    Args:
        gaussians: total number of Gaussians, spread uniformly by area.
        floor_size: side of the floor square (m), centred on the origin.
        boxes: (x, y, _, dx, dy, dz) per box: centre of its footprint and its size; it stands on the floor.
        sphere: (x, y, radius) of a sphere resting on the floor, or None.
    """
    import trimesh

    from lyra_sim.geometry.surface_sampling import sample_surface_gaussians

    half = 0.5 * floor_size
    floor = Mesh(np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]]), np.array([[0, 1, 2], [0, 2, 3]]))
    parts = [AnalyticPart("floor", "floor", np.zeros(3), np.array([floor_size, floor_size, 0.0]), floor)]
    for index, (x, y, _, dx, dy, dz) in enumerate(boxes):
        solid = trimesh.creation.box(extents=(dx, dy, dz))
        solid.apply_translation((x, y, 0.5 * dz))
        normals = np.asarray(solid.face_normals)
        surface = Mesh(np.asarray(solid.vertices), np.asarray(solid.faces)[normals[:, 2] > -0.5])  # no bottom
        parts.append(AnalyticPart(f"box{index}", "box", np.array([x, y, 0.5 * dz]), np.array([dx, dy, dz]), surface))
    if sphere is not None:
        x, y, radius = sphere
        solid = trimesh.creation.icosphere(subdivisions=4, radius=radius)
        solid.apply_translation((x, y, radius))
        parts.append(AnalyticPart("sphere", "sphere", np.array([x, y, radius]), np.full(3, 2 * radius), Mesh(np.asarray(solid.vertices), np.asarray(solid.faces))))
    combined = Mesh.concatenate([part.surface for part in parts])
    face_labels = np.concatenate([np.full(len(part.surface.faces), index) for index, part in enumerate(parts)])
    colors = np.random.default_rng(seed).uniform(0.2, 0.9, size=(len(parts), 3))
    mesh = trimesh.Trimesh(combined.vertices, combined.faces, process=False)
    mesh.visual.face_colors = (np.hstack([colors[face_labels], np.ones((len(face_labels), 1))]) * 255).astype(np.uint8)
    samples = sample_surface_gaussians(mesh, gaussians, seed=seed, face_labels=face_labels, opacity=opacity)
    return AnalyticScene(scene=samples.scene, labels=samples.labels, parts=parts)

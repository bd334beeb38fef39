"""Robot links as Gaussians: the visual shapes of a PyBullet body, surface-sampled once per link.

:func:`body_link_splats` turns every visual shape (box, sphere, cylinder, capsule, mesh file) of a
body into flat Gaussians in its link's URDF frame, with
``lyra_sim.geometry.surface_sampling.sample_surface_gaussians``; :func:`link_frame_poses` reads the
world poses of those frames so ``lyra_sim.sim.compositor.ComposedScene`` can move the Gaussians
with the links every step. Results are cached per (file, link, density), so creating many envs
samples each robot once.

This module may import numpy, torch, trimesh (lazily), pybullet (lazily) and ``lyra_sim.scene`` /
``lyra_sim.geometry``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lyra_sim.geometry.surface_sampling import sample_surface_gaussians
from lyra_sim.scene.gaussian_scene import GaussianScene

# The density cap keeps large links (a table-sized base) from dominating the splat budget.
_MAX_GAUSSIANS_PER_LINK = 20_000
_SPLAT_CACHE: dict[tuple, GaussianScene] = {}


@dataclass
class LinkSplats:
    """Gaussians of one link, in the link's URDF frame (``link_index`` -1 is the base)."""

    link_index: int
    scene: GaussianScene


def _shape_mesh(shape: tuple):
    """A trimesh of one ``getVisualShapeData`` entry, in the link frame, or None when unsupported."""
    import pybullet
    import trimesh

    geometry_type, dimensions = shape[2], shape[3]
    filename = shape[4].decode() if isinstance(shape[4], bytes) else shape[4]
    if geometry_type == pybullet.GEOM_BOX:
        mesh = trimesh.creation.box(extents=dimensions)  # full extents
    elif geometry_type == pybullet.GEOM_SPHERE:
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=dimensions[0])
    elif geometry_type == pybullet.GEOM_CYLINDER:
        mesh = trimesh.creation.cylinder(radius=dimensions[1], height=dimensions[0], sections=24)
    elif geometry_type == pybullet.GEOM_CAPSULE:
        mesh = trimesh.creation.capsule(radius=dimensions[1], height=dimensions[0], count=[12, 12])
    elif geometry_type == pybullet.GEOM_MESH and filename:
        loaded = trimesh.load(filename, force="mesh", process=False)
        mesh = loaded.copy()
        mesh.apply_scale(np.asarray(dimensions, dtype=np.float64))
    else:
        return None
    rgba = np.asarray(shape[7], dtype=np.float64)
    has_texture = getattr(mesh.visual, "kind", None) == "texture" and getattr(mesh.visual, "uv", None) is not None
    if not has_texture or not np.allclose(rgba[:3], 1.0):
        # A URDF material colour overrides the file's own (as PyBullet's renderers do).
        mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=np.tile(np.round(rgba * 255).astype(np.uint8), (len(mesh.faces), 1)))
    position, orientation = shape[5], shape[6]
    transform = np.eye(4)
    transform[:3, :3] = np.asarray(pybullet.getMatrixFromQuaternion(orientation)).reshape(3, 3)
    transform[:3, 3] = position
    mesh.apply_transform(transform)
    return mesh


def _visual_shapes_by_link(client_id: int, body_id: int) -> dict[int, list]:
    import pybullet

    shapes_by_link: dict[int, list] = {}
    for shape in pybullet.getVisualShapeData(body_id, physicsClientId=client_id):
        shapes_by_link.setdefault(shape[1], []).append(shape)
    return shapes_by_link


def _link_mesh(shapes: list):
    """All supported visual shapes of one link as one trimesh in the link frame, or None."""
    import trimesh

    meshes = [m for m in (_shape_mesh(shape) for shape in shapes) if m is not None and len(m.faces)]
    if not meshes:
        return None
    return trimesh.util.concatenate(meshes) if len(meshes) > 1 else meshes[0]


def link_visual_meshes(client_id: int, body_id: int) -> dict[int, "trimesh.Trimesh"]:
    """The visual geometry of every link of ``body_id`` that has some: link index (-1 = base) ->
    one trimesh in that link's URDF frame, face colours from the URDF materials."""
    shapes_by_link = _visual_shapes_by_link(client_id, body_id)
    meshes = {link_index: _link_mesh(shapes_by_link[link_index]) for link_index in sorted(shapes_by_link)}
    return {link_index: mesh for link_index, mesh in meshes.items() if mesh is not None}


def mesh_splats(mesh, *, spacing: float = 0.008, opacity: float = 0.95, seed: int = 0) -> GaussianScene:
    """Flat Gaussians on the surface of one link's ``trimesh`` (in its frame), ``spacing`` metres
    apart on average, at most ``_MAX_GAUSSIANS_PER_LINK``; coloured from the mesh."""
    if spacing <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    count = int(min(_MAX_GAUSSIANS_PER_LINK, max(16, math.ceil(mesh.area / spacing**2))))
    return sample_surface_gaussians(mesh, count, seed=seed, opacity=opacity, frame="link").scene


def body_link_splats(client_id: int, body_id: int, *, spacing: float = 0.008, opacity: float = 0.95, seed: int = 0) -> list[LinkSplats]:
    """Surface-sampled Gaussians for every link of ``body_id`` that has visual shapes.

    Args:
        client_id: PyBullet physics client.
        body_id: the body (a robot loaded from URDF or built with ``createMultiBody``).
        spacing: mean distance between neighbouring Gaussians in metres (count = area / spacing²).
        opacity: opacity of every Gaussian.
        seed: seeds the surface sampler.

    Returns:
        One :class:`LinkSplats` per link with visuals, Gaussians in that link's URDF frame.
    """
    if spacing <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    shapes_by_link = _visual_shapes_by_link(client_id, body_id)
    result = []
    for link_index in sorted(shapes_by_link):
        shapes = shapes_by_link[link_index]
        key = (tuple((s[2], tuple(s[3]), s[4], tuple(s[5]), tuple(s[6]), tuple(s[7])) for s in shapes), spacing, opacity, seed)
        if key not in _SPLAT_CACHE:
            mesh = _link_mesh(shapes)
            if mesh is None:
                continue
            _SPLAT_CACHE[key] = mesh_splats(mesh, spacing=spacing, opacity=opacity, seed=seed)
        result.append(LinkSplats(link_index=link_index, scene=_SPLAT_CACHE[key]))
    return result


def link_frame_poses(client_id: int, body_id: int, link_indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """World poses of the URDF frames of ``link_indices`` (-1 = base): positions [L, 3], xyzw [L, 4].

    PyBullet reports the base pose at its centre of mass; the URDF base frame is that pose
    composed with the inverse of the base's local inertial frame.
    """
    import pybullet

    positions = np.zeros((len(link_indices), 3))
    orientations = np.zeros((len(link_indices), 4))
    child_links = [i for i in link_indices if i >= 0]
    states = pybullet.getLinkStates(body_id, child_links, computeForwardKinematics=1, physicsClientId=client_id) if child_links else []
    state_of = dict(zip(child_links, states))
    for row, link_index in enumerate(link_indices):
        if link_index < 0:
            com_position, com_orientation = pybullet.getBasePositionAndOrientation(body_id, physicsClientId=client_id)
            inertial_position, inertial_orientation = pybullet.getDynamicsInfo(body_id, -1, physicsClientId=client_id)[3:5]
            inverse_position, inverse_orientation = pybullet.invertTransform(inertial_position, inertial_orientation)
            position, orientation = pybullet.multiplyTransforms(com_position, com_orientation, inverse_position, inverse_orientation)
        else:
            position, orientation = state_of[link_index][4], state_of[link_index][5]
        positions[row], orientations[row] = position, orientation
    return positions, orientations

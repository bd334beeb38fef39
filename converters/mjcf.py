"""MJCF (MuJoCo) for a SimBundle: ``write_mjcf(model, path)`` from an ``ExportModel``.

The model holds every mesh inline as an asset (``<mesh vertex=...>``), so the XML is one file:

- the scenery is static geometry in ``worldbody``: MuJoCo collides a mesh geom through its
  convex hull, so the concave collision mesh becomes one thin convex prism per triangle
  (the triangle extruded ``thickness`` into the solid along its inward normal; the top face is
  the triangle itself, so surfaces sit exactly where PyBullet's concave mesh puts them); the
  ground slab is a box geom;
- each object is a body named as in the bundle with a free joint of the same name, an
  ``<inertial>`` with the mass, centre of mass and ``fullinertia`` computed from its convex
  parts, and one mesh geom per part;
- friction: PyBullet's coefficient for a contact is the product of the two bodies' lateral
  frictions, MuJoCo's the maximum of the two geoms'. Object geoms get ``mu_object * mu_scenery``
  and scenery geoms ``mu_scenery * min(mu_object)``, so every object-scenery contact has
  PyBullet's coefficient (object-object contacts too when the objects share one);
- MuJoCo's renderer does not load our splats from MJCF: each body's splat PLY is copied next
  to the XML (``<stem>_splats/``) and named in ``<custom><text name="splat:<body>">``, in the
  body frame (the ``background`` entry is in the world frame). Pair them by body name:
  ``data.xpos[body]`` and ``data.xquat[body]`` move the splat's means and rotations.

This module may import numpy and lyra_sim; ``mujoco`` itself is not needed to write, only to load.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from lyra_sim.converters.export import ExportModel
from lyra_sim.rotations import matrix_to_quat_wxyz
from lyra_sim.geometry.mesh import Mesh
from lyra_sim.io_utils import atomic_path

# Prism depth under each scenery triangle: deeper than MuJoCo's contact margins, thinner than
# the thinnest solid our TSDF meshes resolve (a 15 mm voxel gives >= 2 voxels across walls).
SCENERY_PRISM_THICKNESS = 0.01
TIMESTEP = 0.002  # MuJoCo's default; the cross-engine test compares with PyBullet at 240 Hz


def _numbers(values) -> str:
    return " ".join(f"{float(v):.7g}" for v in np.asarray(values).ravel())


def triangle_prisms(mesh: Mesh, thickness: float = SCENERY_PRISM_THICKNESS) -> np.ndarray:  # -> [T, 6, 3]
    """One convex prism per non-degenerate triangle: its 3 corners and the same moved ``thickness`` inward.

    Faces are counter-clockwise seen from outside (our OBJ convention), so the inward normal is
    minus the winding normal.
    """
    corners = mesh.vertices[mesh.faces]  # [F, 3, 3]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normal, axis=1)
    edges = np.max(np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2), axis=1)
    keep = length > 1e-9 * np.maximum(edges, 1e-12) ** 2 + 1e-14  # drop slivers MuJoCo's qhull rejects
    unit = normal[keep] / length[keep, None]
    top = corners[keep]
    return np.concatenate([top, top - thickness * unit[:, None, :]], axis=1)


def mjcf_text(model: ExportModel, splat_paths: dict[str, str], thickness: float = SCENERY_PRISM_THICKNESS) -> str:
    """The MJCF document for ``model``; ``splat_paths`` maps body name -> splat path relative to the XML."""
    assets: list[str] = []
    world: list[str] = []
    scenery = model.scenery
    lowest = min((body.friction for body in model.bodies), default=scenery.friction)
    friction = f"{scenery.friction * lowest:.6g} 0.005 0.0001"
    for mesh_name, mesh in scenery.meshes:
        prisms = triangle_prisms(mesh, thickness)
        for index, prism in enumerate(prisms):
            asset = f"{mesh_name}_prism{index}"
            assets.append(f'    <mesh name="{asset}" vertex="{_numbers(prism)}"/>')
            world.append(f'    <geom name="{asset}" type="mesh" mesh="{asset}" class="scenery"/>')
    for index, box in enumerate(scenery.boxes):
        world.append(
            f'    <geom name="scene_box{index}" type="box" pos="{_numbers(box.center)}" '
            f'quat="{_numbers(matrix_to_quat_wxyz(box.rotation))}" size="{_numbers(0.5 * box.size)}" class="scenery"/>'
        )
    for body in model.bodies:
        geoms = []
        for index, hull in enumerate(body.hulls):
            asset = f"{body.name}_hull{index}"
            assets.append(f'    <mesh name={quoteattr(asset)} vertex="{_numbers(hull.vertices)}"/>')
            geoms.append(
                f'      <geom name={quoteattr(asset)} type="mesh" mesh={quoteattr(asset)} '
                f'friction="{body.friction * scenery.friction:.6g} 0.005 0.0001" rgba="{_numbers(body.rgba)}"/>'
            )
        inertia = body.inertia
        full = [inertia[0, 0], inertia[1, 1], inertia[2, 2], inertia[0, 1], inertia[0, 2], inertia[1, 2]]
        world += [
            f'    <body name={quoteattr(body.name)} pos="{_numbers(body.position)}" quat="{_numbers(body.orientation_wxyz)}">',
            f"      <freejoint name={quoteattr(body.name)}/>",
            f'      <inertial pos="{_numbers(body.center_of_mass)}" mass="{body.mass:.9g}" fullinertia="{" ".join(f"{v:.9g}" for v in full)}"/>',
            *geoms,
            "    </body>",
        ]
    custom = [f"    <text name={quoteattr('splat:' + name)} data={quoteattr(path)}/>" for name, path in splat_paths.items()]
    return "\n".join(
        [
            f"<mujoco model={quoteattr(model.name)}>",
            "  <!-- Written by lyra-sim export from a SimBundle: +Z up, metres, kg. -->",
            '  <compiler angle="radian" autolimits="true" boundmass="1e-6" boundinertia="1e-12"/>',
            f'  <option timestep="{TIMESTEP}" gravity="{_numbers(model.gravity)}" integrator="implicitfast"/>',
            "  <default>",
            f'    <default class="scenery"><geom rgba="0.6 0.6 0.6 1" friction="{friction}"/></default>',
            "  </default>",
            "  <custom>",
            *custom,
            "  </custom>",
            "  <asset>",
            *assets,
            "  </asset>",
            "  <worldbody>",
            '    <light name="sun" pos="0 0 5" dir="0 0 -1" directional="true"/>',
            *world,
            "  </worldbody>",
            "</mujoco>",
            "",
        ]
    )


def write_mjcf(model: ExportModel, path, thickness: float = SCENERY_PRISM_THICKNESS) -> Path:
    """Write ``model`` as MJCF at ``path`` (an ``.xml`` file) and its splats into ``<stem>_splats/``."""
    path = Path(path)
    if path.suffix.lower() != ".xml":
        raise ValueError(f"{path}: an MJCF export is one .xml file; give a path ending in .xml")
    started = time.perf_counter()
    splat_folder = path.with_name(f"{path.stem}_splats")
    sources = {"background": model.background_splat, **{body.name: body.splat for body in model.bodies}}
    splat_paths = {name: os.path.join(splat_folder.name, f"{name}.ply") for name in sources}
    with atomic_path(splat_folder) as folder:
        folder.mkdir(parents=True)
        for name, source in sources.items():
            shutil.copy2(source, folder / f"{name}.ply")
    with atomic_path(path) as temporary:
        temporary.write_text(mjcf_text(model, splat_paths, thickness))
    model.timings["mjcf"] = time.perf_counter() - started
    return path

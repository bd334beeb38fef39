"""``export(bundle, format, path)``: one SimBundle -> the files a simulator loads.

- ``"urdf"`` (PyBullet): a folder with the bundle's URDFs and meshes and ``world.json`` (which
  URDF goes where); PyBullet loads each URDF as is.
- ``"mjcf"`` (MuJoCo): one MJCF XML (``lyra_sim.converters.mjcf``).
- ``"usd"`` (Isaac Sim / Isaac Lab, any OpenUSD app): one ``.usda``/``.usdc``/``.usd`` stage
  (``lyra_sim.converters.usd_stage``).

Every format is written from the same :class:`ExportModel`: the static scenery's collision
shapes as ``scene.urdf`` lists them (concave mesh and the ground slab), and per movable object
its convex parts, mass, centre of mass and **full** inertia tensor computed from the parts,
friction and initial pose. This module may import numpy and lyra_sim (geometry, sim.bundle);
simulator packages are imported by the format modules, only when used.
"""

from __future__ import annotations

import json
import shutil
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lyra_sim.errors import BundleError
from lyra_sim.geometry.mesh import Mesh, mass_properties, read_obj
from lyra_sim.io_utils import atomic_path
from lyra_sim.rotations import wxyz_to_xyzw, xyzw_to_wxyz
from lyra_sim.typed import ExportFormat, check_choice

# PyBullet's default lateral friction, which the bundle's URDFs (no <contact> element) get; the
# other engines are given the same coefficient explicitly.
DEFAULT_FRICTION = 0.5


def rpy_matrix(rpy) -> np.ndarray:  # [3] -> [3, 3]
    """URDF's roll-pitch-yaw (rotations about the fixed X, Y, Z axes, in that order) as a matrix."""
    roll, pitch, yaw = (float(v) for v in rpy)
    cx, sx, cy, sy, cz, sz = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def principal_axes(inertia: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # [3, 3] -> ([3], [3, 3])
    """(principal moments [3], rotation [3, 3] whose columns are the principal axes; det = +1).

    ``inertia == rotation @ diag(moments) @ rotation.T``.
    """
    moments, axes = np.linalg.eigh(0.5 * (inertia + inertia.T))
    if np.linalg.det(axes) < 0:
        axes[:, 2] = -axes[:, 2]
    return moments, axes


@dataclass
class SceneryBox:
    """A box collision shape of the scenery (the ground slab)."""

    center: np.ndarray  # [3] world
    rotation: np.ndarray  # [3, 3]
    size: np.ndarray  # [3] full edge lengths


@dataclass
class Scenery:
    """The static scenery: what ``scene.urdf`` collides with, in the world frame."""

    meshes: list[tuple[str, Mesh]]  # (name, concave triangle mesh)
    boxes: list[SceneryBox]
    visual: Mesh | None  # vertex-coloured visual mesh, world frame
    friction: float


@dataclass
class ExportBody:
    """A movable object as every exporter needs it (body frame = the bundle's link frame).

    Attributes:
        name: the bundle's object name.
        hulls: convex parts in the body frame.
        mass: kg.
        center_of_mass: [3] in the body frame (the parts' centroid; ~0 for bundles we build).
        inertia: [3, 3] full tensor about the centre of mass, body axes (kg m^2), from the parts.
        position: [3] initial position of the body frame in the world.
        orientation_wxyz: [4] initial orientation.
        friction: sliding friction coefficient.
        splat: the body-frame splat PLY.
    """

    name: str
    hulls: list[Mesh]
    mass: float
    center_of_mass: np.ndarray
    inertia: np.ndarray
    position: np.ndarray
    orientation_wxyz: np.ndarray
    friction: float
    splat: Path
    rgba: tuple[float, float, float, float] = (0.7, 0.7, 0.7, 1.0)


@dataclass
class ExportModel:
    """Everything the exporters write, read once from a bundle."""

    name: str
    root: Path
    scenery: Scenery
    bodies: list[ExportBody]
    background_splat: Path
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)
    timings: dict[str, float] = field(default_factory=dict)


def _urdf_collisions(path: Path) -> tuple[list[tuple[Path, np.ndarray, np.ndarray, np.ndarray]], list[SceneryBox]]:
    """The <collision> elements of a one-link URDF: meshes as (file, rotation, translation, scale), boxes."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise BundleError(f"{path}: not a readable URDF ({error})") from None
    links = root.findall("link")
    if len(links) != 1:
        raise BundleError(f"{path}: expected one <link>, found {len(links)} (bundle URDFs are single-link)")
    meshes, boxes = [], []
    for index, collision in enumerate(links[0].findall("collision")):
        origin = collision.find("origin")
        xyz = np.array([float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()])
        rpy = np.array([float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()])
        geometry = collision.find("geometry")
        mesh, box = (geometry.find("mesh"), geometry.find("box")) if geometry is not None else (None, None)
        if mesh is not None:
            scale = np.array([float(v) for v in mesh.get("scale", "1 1 1").split()])
            meshes.append((path.parent / mesh.get("filename", ""), rpy_matrix(rpy), xyz, scale))
        elif box is not None:
            boxes.append(SceneryBox(xyz, rpy_matrix(rpy), np.array([float(v) for v in box.get("size").split()])))
        else:
            raise BundleError(f"{path}: collision {index} is neither a mesh nor a box; only those are exported")
    return meshes, boxes


def _merged_obj(path: Path) -> Mesh:
    parts = [mesh for _, mesh in read_obj(path)]
    if not parts:
        raise BundleError(f"{path}: the mesh file holds no faces")
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    colors = [p.colors for p in parts]
    return Mesh(
        np.concatenate([p.vertices for p in parts]),
        np.concatenate([p.faces + o for p, o in zip(parts, offsets)]),
        np.concatenate(colors) if all(c is not None for c in colors) else None,
    )


def _object_rgba(splat: Path) -> tuple[float, float, float, float]:
    """The mean base colour of an object's splat, for viewers that draw the collision hulls."""
    from lyra_sim.scene.io import load_scene

    scene = load_scene(splat)
    if len(scene) == 0:
        return (0.7, 0.7, 0.7, 1.0)
    rgb = scene.colors().clamp(0, 1).mean(0).tolist()
    return (rgb[0], rgb[1], rgb[2], 1.0)


def export_model(bundle) -> ExportModel:
    """Read ``bundle`` (a ``SimBundle`` or a folder) into an :class:`ExportModel`.

    Inertia tensors are recomputed in full from each object's convex parts and its mass.
    """
    from lyra_sim.bundle.loader import SimBundle, load_bundle

    if not isinstance(bundle, SimBundle):
        bundle = load_bundle(bundle)
    manifest = bundle.manifest
    mesh_entries, boxes = _urdf_collisions(bundle.scene_urdf)
    meshes = []
    for index, (file, rotation, translation, scale) in enumerate(mesh_entries):
        mesh = _merged_obj(file)
        vertices = (mesh.vertices * scale) @ rotation.T + translation
        meshes.append((f"scene_mesh{index}", Mesh(vertices, mesh.faces)))
    background = manifest.background
    visual = _merged_obj(bundle.root / background.visual_mesh) if background.visual_mesh else None
    scenery = Scenery(meshes, boxes, visual, DEFAULT_FRICTION if background.friction is None else background.friction)
    bodies = []
    for entry, obj in zip(manifest.objects, bundle.objects):
        hulls = [mesh for _, mesh in read_obj(obj.collision_mesh)]
        if not hulls:
            raise BundleError(f"{obj.collision_mesh}: object {obj.name!r} has no convex parts")
        try:
            properties = mass_properties(hulls, obj.mass)
        except ValueError as error:
            raise BundleError(f"{obj.collision_mesh}: object {obj.name!r}: {error}") from None
        bodies.append(
            ExportBody(
                name=obj.name,
                hulls=hulls,
                mass=obj.mass,
                center_of_mass=properties.center_of_mass,
                inertia=properties.inertia,
                position=obj.position,
                orientation_wxyz=xyzw_to_wxyz(obj.orientation_xyzw / np.linalg.norm(obj.orientation_xyzw)),
                friction=DEFAULT_FRICTION if entry.friction is None else entry.friction,
                splat=obj.splat,
                rgba=_object_rgba(obj.splat),
            )
        )
    return ExportModel(name=bundle.root.resolve().name or "bundle", root=bundle.root, scenery=scenery, bodies=bodies, background_splat=bundle.background_splat)


def _export_urdf(model: ExportModel, path: Path) -> Path:
    """A folder PyBullet loads: the bundle's URDFs, meshes and splats, plus ``world.json``."""
    with atomic_path(path) as folder:
        folder.mkdir(parents=True)
        for sub in ("meshes", "objects", "splats"):
            if (model.root / sub).is_dir():
                shutil.copytree(model.root / sub, folder / sub)
        shutil.copy2(model.root / "scene.urdf", folder / "scene.urdf")
        world = {
            "format": "urdf",
            "note": "Load scene.urdf with useFixedBase=True, then each object URDF at its pose with "
            "flags=URDF_USE_INERTIA_FROM_FILE. The URDFs carry full inertia tensors, which PyBullet "
            "diagonalises: getBasePositionAndOrientation is then the principal-axes frame, not the "
            "body frame the splat is in (compose with the inverse of getDynamicsInfo's local inertial frame).",
            "gravity": list(model.gravity),
            "scenery": {"urdf": "scene.urdf", "friction": model.scenery.friction},
            "objects": [
                {
                    "name": body.name,
                    "urdf": f"objects/{body.name}.urdf",
                    "splat": f"splats/{body.splat.name}",
                    "position": body.position.tolist(),
                    "orientation_xyzw": wxyz_to_xyzw(body.orientation_wxyz).tolist(),
                    "mass": body.mass,
                    "inertia_full": body.inertia.tolist(),
                    "friction": body.friction,
                }
                for body in model.bodies
            ],
        }
        (folder / "world.json").write_text(json.dumps(world, indent=2) + "\n")
    return path


def export(bundle, format: ExportFormat, path) -> Path:
    """Write ``bundle`` (a ``SimBundle`` or a bundle folder) for a simulator; return the written path.

    Args:
        bundle: a SimBundle (scene or object bundle).
        format: "urdf" (a folder for PyBullet), "mjcf" (an MJCF .xml for MuJoCo) or "usd"
            (an OpenUSD stage: .usda text, .usdc/.usd binary).
        path: the output file (mjcf, usd) or folder (urdf); replaced atomically.

    Raises:
        BundleError: malformed bundle; ValueError: unknown format or file suffix;
        MissingDependencyError: mujoco / usd-core missing for the format that needs it.
    """
    check_choice(format, ExportFormat, "format")
    path = Path(path)
    suffixes = {"mjcf": (".xml",), "usd": (".usda", ".usdc", ".usd")}.get(format)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: a {format} export is one file ending in {' or '.join(suffixes)}")
    started = time.perf_counter()
    model = export_model(bundle)
    model.timings["read"] = time.perf_counter() - started
    if format == "urdf":
        return _export_urdf(model, path)
    if format == "mjcf":
        from lyra_sim.converters.mjcf import write_mjcf

        return write_mjcf(model, path)
    from lyra_sim.converters.usd_stage import write_usd

    return write_usd(model, path)

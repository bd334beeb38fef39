"""Object bundles and composition (SHARED_DECISIONS.md: object bundles).

- :func:`write_object_bundle`: one movable object (a body-frame splat, convex parts, mass) ->
  an object bundle: manifest ``"kind": "object"``, exactly one entry in ``objects`` resting
  upright on the ground at the world origin, scenery = a synthesized ground slab whose top is
  z = 0, an empty background splat.
- :func:`compose`: a scene bundle plus object bundles placed at given points -> a new scene
  bundle whose manifest lists the added objects (splats, hulls and URDFs copied under new
  names when needed); it loads, simulates and exports like any other bundle.

An object is placed by moving its object-bundle world (ground at z = 0, object at the origin)
so that its ground origin lands at ``at``: ``at = (x, y, z)`` puts the object's resting base at
height z; ``at = (x, y)`` finds z as the top of the scene's collision geometry under the
object's footprint (the table top, the floor). This module may import numpy, torch and
lyra_sim (geometry, scene io, sim.bundle, converters).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lyra_sim.bundle.manifest import Bounds, Manifest, ObjectEntry, Pose, SourceInfo, SpawnRegion, write_manifest
from lyra_sim.converters.export import _urdf_collisions, rpy_matrix
from lyra_sim.converters.urdf import object_urdf, static_scene_urdf
from lyra_sim.errors import BundleError
from lyra_sim.geometry.mesh import Mesh, mass_properties, read_obj, write_obj
from lyra_sim.io_utils import atomic_path
from lyra_sim.rotations import quat_multiply, quat_xyzw_to_matrix, wxyz_to_xyzw, xyzw_to_wxyz, yaw_quaternion_xyzw

_OBJECT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
OBJECT_SLAB_SIZE = 2.0  # m: the ground slab of an object bundle (square), 0.2 m thick
_SLAB_THICKNESS = 0.2


@dataclass(frozen=True)
class ObjectPlacement:
    """Where an object bundle goes in a scene.

    Attributes:
        bundle: the object bundle folder.
        at: (x, y, z) of the object's ground origin in the scene, or (x, y) to rest it on the
            top of the scene's collision geometry under its footprint.
        yaw: rotation about +Z in radians, applied about the object's ground origin.
        name: the object's name in the composed bundle (default: its name in the object
            bundle, with ``_2``, ``_3``... appended when the scene already has that name).
    """

    bundle: str | Path
    at: tuple[float, ...]
    yaw: float = 0.0
    name: str | None = None


def _box_mesh(center, rotation, size) -> Mesh:
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]) * np.asarray(size)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return Mesh(corners @ np.asarray(rotation).T + np.asarray(center), faces)


def scenery_triangles(bundle) -> np.ndarray:  # [T, 3, 3]
    """Every collision triangle of a bundle's static scenery in the world frame (meshes and boxes)."""
    meshes, boxes = _urdf_collisions(bundle.scene_urdf)
    triangles = []
    for file, rotation, translation, scale in meshes:
        for _, part in read_obj(file):
            triangles.append(((part.vertices * scale) @ rotation.T + translation)[part.faces])
    for box in boxes:
        mesh = _box_mesh(box.center, box.rotation, box.size)
        triangles.append(mesh.vertices[mesh.faces])
    if not triangles:
        raise BundleError(f"{bundle.scene_urdf}: the scenery has no collision geometry to place objects on")
    return np.concatenate(triangles)


def surface_height(triangles: np.ndarray, points_xy: np.ndarray) -> np.ndarray:  # [T, 3, 3], [P, 2] -> [P]
    """Height of the highest triangle above each xy point (-inf where nothing is under it)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    heights = np.full(len(points_xy), -np.inf)
    denominator = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    usable = np.abs(denominator) > 1e-14  # vertical triangles have no area seen from above
    a, b, c, denominator = a[usable], b[usable], c[usable], denominator[usable]
    for index, (x, y) in enumerate(np.asarray(points_xy, dtype=np.float64)):
        u = ((b[:, 1] - c[:, 1]) * (x - c[:, 0]) + (c[:, 0] - b[:, 0]) * (y - c[:, 1])) / denominator
        v = ((c[:, 1] - a[:, 1]) * (x - c[:, 0]) + (a[:, 0] - c[:, 0]) * (y - c[:, 1])) / denominator
        w = 1.0 - u - v
        inside = (u >= -1e-9) & (v >= -1e-9) & (w >= -1e-9)
        if inside.any():
            z = u[inside] * a[inside, 2] + v[inside] * b[inside, 2] + w[inside] * c[inside, 2]
            heights[index] = z.max()
    return heights


def write_object_bundle(out_dir, name: str, scene, hulls: Sequence[Mesh], mass: float, *, friction: float | None = None, source: str | None = None, report: dict | None = None, manifest_fields: dict | None = None) -> Path:
    """Write an object bundle for one movable object and return its folder.

    Args:
        out_dir: the bundle folder (replaced atomically).
        name: the object's name (letters, digits, '_', '.', '-').
        scene: its Gaussians (``GaussianScene``) in the same frame as ``hulls``.
        hulls: closed convex parts; their volume-weighted centroid becomes the body origin
            (the splat and the parts are moved with it), +Z is up.
        mass: kg.
        friction: sliding friction for every engine (omitted: PyBullet's default 0.5).
        source: where the object came from (a scan path), recorded in the manifest.
        report: extra build information for the manifest (e.g. the scan's reconstruction).
        manifest_fields: ``Manifest`` fields to replace (``build_bundle`` of an object scan: the
            source, its source -> bundle transform, the normalisation record, warnings).
    """
    from lyra_sim import __version__
    from lyra_sim.scene.gaussian_scene import GaussianScene
    from lyra_sim.scene.io import save_scene
    from lyra_sim.scene.transforms import transform_scene
    from lyra_sim.bundle.loader import load_bundle

    if not isinstance(name, str) or not _OBJECT_NAME.match(name) or name == "background":
        raise BundleError(f"object name {name!r} is not allowed: use letters, digits, '_', '.', '-' (and not 'background')")
    hulls = [hull for hull in hulls if not hull.is_empty()]
    if not hulls:
        raise BundleError(f"object {name!r}: no convex parts")
    try:
        properties = mass_properties(hulls, mass)
    except ValueError as error:
        raise BundleError(f"object {name!r}: {error}") from None
    centre = properties.center_of_mass
    hulls = [hull.translated(-centre) for hull in hulls]
    body_scene = transform_scene(scene, np.eye(3), -centre, 1.0)
    low = np.min([h.vertices.min(0) for h in hulls], 0)
    high = np.max([h.vertices.max(0) for h in hulls], 0)
    position = np.array([0.0, 0.0, -low[2]])  # resting upright on z = 0 at the origin
    half = 0.5 * OBJECT_SLAB_SIZE
    slab = _box_mesh([0.0, 0.0, -0.5 * _SLAB_THICKNESS], np.eye(3), [OBJECT_SLAB_SIZE, OBJECT_SLAB_SIZE, _SLAB_THICKNESS])
    entry = ObjectEntry(
        name=name,
        splat=f"splats/{name}.ply",
        urdf=f"objects/{name}.urdf",
        collision_mesh=f"meshes/{name}_collision.obj",
        mass=float(mass),
        initial_pose=Pose(position, np.array([0.0, 0.0, 0.0, 1.0])),
        hulls=len(hulls),
        size=np.asarray(high - low, dtype=np.float64),
        friction=None if friction is None else float(friction),
    )
    manifest = Manifest(
        kind="object",
        tool_version=__version__,
        source=SourceInfo(path=source, sha256=None, format=getattr(scene.metadata, "format", None), frame="z-up"),
        transform=np.eye(4),
        bounds=Bounds(np.array([-half, -half, 0.0]), np.array([half, half, float(high[2] - low[2])])),
        floor_height=0.0,
        spawn_region=SpawnRegion(np.array([-half, -half]), np.array([half, half]), 0.0),
        objects=[entry],
        build={"object": {**(report or {}), "gaussians": len(scene), "volume": properties.volume, "inertia_full": properties.inertia.tolist()}},
    )
    if manifest_fields:  # fields the caller replaces (build_bundle of an object scan)
        manifest = dataclasses.replace(manifest, **manifest_fields)
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as folder:
        for sub in ("splats", "meshes", "objects"):
            (folder / sub).mkdir(parents=True)
        save_scene(GaussianScene.empty(scene.sh_degree), folder / "splats" / "background.ply")
        save_scene(body_scene, folder / "splats" / f"{name}.ply")
        write_obj(folder / "meshes" / "background_collision.obj", [("ground", slab)], header="lyra-sim object bundle: ground slab, top at z = 0")
        write_obj(folder / "meshes" / "background_visual.obj", [("ground", slab)], header="lyra-sim object bundle: ground slab, top at z = 0")
        (folder / "scene.urdf").write_text(static_scene_urdf("ground", "meshes/background_collision.obj", "meshes/background_visual.obj"))
        write_obj(folder / "meshes" / f"{name}_collision.obj", [(f"{name}_hull{k}", hull) for k, hull in enumerate(hulls)],
                  header=f"lyra-sim object {name}: {len(hulls)} convex parts in the body frame (origin = centre of mass)")
        (folder / "objects" / f"{name}.urdf").write_text(object_urdf(name, f"../meshes/{name}_collision.obj", float(mass), properties.inertia))
        write_manifest(manifest, folder)  # validated against the files just written
        load_bundle(folder)  # refuse to publish a bundle our own loader rejects
    return out_dir


def kit_object_bundle(kit, name: str, out_dir, gaussians: int = 4000, seed: int = 0) -> Path:
    """An object bundle of one movable object of a ``SceneKit``: surface-sampled splat, its convex hull."""
    from lyra_sim.converters.convex import convex_hull
    from lyra_sim.geometry.surface_sampling import sample_surface_gaussians

    obj = kit.object(name)
    if not obj.movable:
        raise BundleError(f"kit object {name!r} is static scenery, not a movable object")
    samples = sample_surface_gaussians(obj.mesh, gaussians, seed=seed)
    hull = convex_hull(np.asarray(obj.mesh.vertices))
    return write_object_bundle(out_dir, name, samples.scene, [hull], obj.mass, source=f"kit {kit.kind} seed {kit.seed}, object {name}")


def _world_box(hulls: list[Mesh], position, orientation_xyzw) -> tuple[np.ndarray, np.ndarray]:
    rotation = quat_xyzw_to_matrix(orientation_xyzw)
    points = np.concatenate([h.vertices for h in hulls]) @ rotation.T + np.asarray(position)
    return points.min(0), points.max(0)


def _overlap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], tolerance: float = 1e-3) -> bool:
    return bool(np.all(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]) > tolerance))


def _rewrite_object_urdf(source: Path, target: Path, name: str, mesh_file: str) -> None:
    """Copy an object URDF under a new name, pointing its meshes at ``mesh_file``."""
    try:
        tree = ElementTree.parse(source)
    except (ElementTree.ParseError, OSError) as error:
        raise BundleError(f"{source}: not a readable URDF ({error})") from None
    root = tree.getroot()
    root.set("name", name)
    for link in root.findall("link"):
        link.set("name", name)
    for mesh in root.iter("mesh"):
        mesh.set("filename", mesh_file)
    target.write_text('<?xml version="1.0"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n")


def compose(scene_bundle, placements: Sequence[ObjectPlacement], out_dir, *, preview: bool = True) -> Path:
    """Place object bundles into a scene bundle; write the result as a new bundle at ``out_dir``.

    Args:
        scene_bundle: a scene bundle folder (or ``SimBundle``).
        placements: one :class:`ObjectPlacement` per object to add (an object bundle may be used
            several times).
        out_dir: the new bundle folder (replaced atomically; may not be the scene bundle itself).
        preview: re-render ``preview.png`` with the new objects (otherwise the scene's is kept).

    Raises:
        BundleError: a bundle of the wrong kind, a point with no surface under it, an object
            overlapping another one at its initial pose, a name clash.
    """
    from lyra_sim.bundle.loader import SimBundle, load_bundle

    scene = scene_bundle if isinstance(scene_bundle, SimBundle) else load_bundle(scene_bundle)
    if scene.kind != "scene":
        raise BundleError(f"{scene.root}: is an {scene.kind!r} bundle; compose places objects into a scene bundle")
    out_dir = Path(out_dir)
    if out_dir.resolve() == scene.root.resolve():
        raise BundleError(f"{out_dir}: the output must be a new folder, not the scene bundle itself")
    if not placements:
        raise BundleError("compose needs at least one object bundle to place")
    manifest = copy.deepcopy(scene.manifest)
    names = {entry.name for entry in manifest.objects}
    boxes = {obj.name: _world_box([m for _, m in read_obj(obj.collision_mesh)], obj.position, obj.orientation_xyzw) for obj in scene.objects}
    triangles = None
    added = []
    for placement in placements:
        source = load_bundle(placement.bundle)
        if source.kind != "object" or len(source.objects) != 1:
            raise BundleError(f"{source.root}: not an object bundle (kind {source.kind!r}, {len(source.objects)} objects); build one with an object scan")
        obj = source.objects[0]
        entry = source.manifest.object(obj.name)
        at = np.asarray(placement.at, dtype=np.float64).ravel()
        if at.shape not in ((2,), (3,)) or not np.all(np.isfinite(at)):
            raise BundleError(f"{source.root}: placement must be (x, y) or (x, y, z) finite numbers, got {list(placement.at)}")
        yaw_rotation = rpy_matrix([0.0, 0.0, placement.yaw])
        turned = quat_multiply(torch.from_numpy(xyzw_to_wxyz(yaw_quaternion_xyzw(placement.yaw))), torch.from_numpy(xyzw_to_wxyz(obj.orientation_xyzw)))
        orientation = wxyz_to_xyzw(turned.numpy())
        hulls = [m for _, m in read_obj(obj.collision_mesh)]
        offset = yaw_rotation @ obj.position  # body origin relative to the object's ground origin
        surface = None
        if len(at) == 2:
            if triangles is None:
                triangles = scenery_triangles(scene)
            low, high = _world_box(hulls, np.array([at[0], at[1], 0.0]) + offset, orientation)
            footprint = np.array([[x, y] for x in np.linspace(low[0], high[0], 5) for y in np.linspace(low[1], high[1], 5)])
            heights = surface_height(triangles, footprint)
            if not np.isfinite(heights).any():
                raise BundleError(f"{scene.root}: no collision surface under ({at[0]:.3f}, {at[1]:.3f}) to rest {obj.name!r} on")
            surface = float(heights[np.isfinite(heights)].max())
            at = np.array([at[0], at[1], surface])
        name = placement.name or obj.name
        if placement.name is None:
            base, counter = name, 2
            while name in names:
                name, counter = f"{base}_{counter}", counter + 1
        if name in names or not _OBJECT_NAME.match(name) or name == "background":
            raise BundleError(f"object name {name!r} is taken or not allowed in {scene.root}")
        names.add(name)
        position = at + offset
        box = _world_box(hulls, position, orientation)
        for other, other_box in boxes.items():
            if _overlap(box, other_box):
                raise BundleError(f"{source.root}: {name!r} at {np.round(at, 3).tolist()} overlaps {other!r} at its initial pose; choose another point")
        boxes[name] = box
        added.append((name, source, obj, entry, position, orientation, placement, at, surface))

    from lyra_sim.scene.io import load_scene

    with atomic_path(out_dir) as folder:
        shutil.copytree(scene.root, folder, ignore=shutil.ignore_patterns(".*"))
        for name, source, obj, entry, position, orientation, placement, at, surface in added:
            shutil.copy2(obj.splat, folder / "splats" / f"{name}.ply")
            shutil.copy2(obj.collision_mesh, folder / "meshes" / f"{name}_collision.obj")
            (folder / "objects").mkdir(exist_ok=True)
            _rewrite_object_urdf(obj.urdf, folder / "objects" / f"{name}.urdf", name, f"../meshes/{name}_collision.obj")
            manifest.objects.append(dataclasses.replace(
                copy.deepcopy(entry),
                name=name,
                splat=f"splats/{name}.ply",
                urdf=f"objects/{name}.urdf",
                collision_mesh=f"meshes/{name}_collision.obj",
                initial_pose=Pose(np.asarray(position, dtype=np.float64), np.asarray(orientation, dtype=np.float64)),
            ))
            low, high = boxes[name]
            manifest.bounds = Bounds(np.minimum(manifest.bounds.min, low), np.maximum(manifest.bounds.max, high))
            manifest.build = manifest.build or {}
            manifest.build.setdefault("composition", []).append(
                {"name": name, "object_bundle": str(Path(source.root).resolve()), "source_object": obj.name,
                 "at": at.tolist(), "yaw": placement.yaw, "surface_z": surface}
            )
        manifest.kind = "scene"
        write_manifest(manifest, folder)
        composed = load_bundle(folder)
        if preview and manifest.preview:
            _render_preview(composed, folder / manifest.preview, load_scene)
    return out_dir


def _render_preview(bundle, path: Path, load_scene) -> None:
    """The bundle's overview picture with every object at its initial pose."""
    from lyra_sim.converters.bundle import _write_preview
    from lyra_sim.converters.config import BuildConfig
    from lyra_sim.scene.gaussian_scene import GaussianScene
    from lyra_sim.scene.transforms import transform_scene

    parts = [bundle.background_scene()]
    for obj in bundle.objects:
        parts.append(transform_scene(obj.scene(), quat_xyzw_to_matrix(obj.orientation_xyzw), obj.position, 1.0))
    parts = [p for p in parts if len(p)]
    _write_preview(path, GaussianScene.concat(parts), bundle.manifest, BuildConfig())


def as_placement(value) -> ObjectPlacement:
    """An ``ObjectPlacement`` from itself, ``(bundle, at)`` or ``(bundle, at, yaw)``."""
    if isinstance(value, ObjectPlacement):
        return value
    if isinstance(value, (tuple, list)) and len(value) in (2, 3):
        return ObjectPlacement(value[0], tuple(float(v) for v in value[1]), *(float(v) for v in value[2:]))
    raise BundleError(f"an object to add must be an ObjectPlacement or (object_bundle, (x, y[, z])[, yaw]), got {value!r}")


def composed_bundle(scene_bundle, objects: Sequence) -> Path:
    """A composed bundle for ``objects`` placed in ``scene_bundle``, cached in the temporary folder.

    The cache key covers the scene's and every object bundle's manifest (path and modification
    time) and the placements, so an env created twice with the same objects composes once.
    """
    import hashlib
    import tempfile

    placements = [as_placement(value) for value in objects]
    key = hashlib.sha256()
    for root in [Path(scene_bundle)] + [Path(p.bundle) for p in placements]:
        manifest = root / "manifest.json"
        key.update(f"{root.resolve()}:{manifest.stat().st_mtime_ns if manifest.is_file() else 0};".encode())
    key.update(repr([(tuple(p.at), p.yaw, p.name) for p in placements]).encode())
    out = Path(tempfile.gettempdir()) / "lyra_sim_composed" / key.hexdigest()[:20]
    if not (out / "manifest.json").is_file():
        compose(scene_bundle, placements, out, preview=False)
    return out

"""The SimBundle manifest (``manifest.json``), typed and versioned: read, validate, write.

``Manifest`` and its parts are the one description of the format: the builder fills one and
writes it with :func:`write_manifest` (validated, atomic), every consumer reads one with
:func:`read_manifest` (or through ``lyra_sim.bundle.load_bundle``) and uses its typed fields.
Keys this version does not know are kept in ``extras`` and written back unchanged.

Validation lives in one place, :func:`manifest_problems`, which reports one message per problem
(a field of the wrong shape, a bad value, a path that leaves the bundle or a file that is
missing); :func:`read_manifest` and :func:`write_manifest` raise ``BundleError`` listing them,
prefixed by the manifest's path. A new check is one more ``problems.append(...)`` there.

May import numpy and ``lyra_sim.errors`` / ``lyra_sim.typed`` / ``lyra_sim.io_utils`` only.
"""

from __future__ import annotations

import copy
import json
import math
import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lyra_sim.errors import BundleError
from lyra_sim.io_utils import atomic_path, recover_interrupted_replace
from lyra_sim.sim.manifest_checks import MAX_MANIFEST_BYTES, manifest_value_problems

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1  # what this lyra-sim writes
SUPPORTED_SCHEMA_VERSIONS = (1,)  # what it reads
REQUIRED_KEYS = ("schema_version", "units", "up_axis", "transform", "bounds", "floor_height", "spawn_region", "background", "objects")
BACKGROUND_FILES = ("splat", "urdf", "collision_mesh", "visual_mesh")
OBJECT_FILES = ("urdf", "splat", "collision_mesh")
KINDS = ("scene", "object")  # a manifest's "kind" (no key: "scene")
DYNAMIC_VERSIONS = (1,)  # versions of the optional "dynamic" part this lyra-sim reads
DYNAMIC_KINDS = ("rigid", "frames")  # a moving cluster's track: a rigid pose per step, or Gaussians per step


def _json_value(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def find_named(items: list, name: str, owner: object):
    """The item of ``items`` whose ``.name`` is ``name``; KeyError listing the names there are."""
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"{owner} has no object {name!r}; objects: {[item.name for item in items]}")


class _ComparedAsJson:
    """A manifest part: ``to_dict`` writes its fields (arrays as lists) in declaration order, and
    equality compares what would be written (numpy fields make the generated ``__eq__`` ambiguous)."""

    def to_dict(self) -> dict:
        return {f.name: _json_value(getattr(self, f.name)) for f in fields(self)}

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    __hash__ = None


@dataclass(eq=False)
class Pose(_ComparedAsJson):
    """A body frame's pose in the world: position [3] (m) and orientation [4] (x, y, z, w)."""

    position: np.ndarray
    orientation_xyzw: np.ndarray


@dataclass(eq=False)
class Bounds(_ComparedAsJson):
    """Axis-aligned box [3] + [3] of the bundle's world (m)."""

    min: np.ndarray
    max: np.ndarray


@dataclass(eq=False)
class SpawnRegion(_ComparedAsJson):
    """The free floor area where things may be spawned: xy box min [2], max [2], floor z."""

    min: np.ndarray
    max: np.ndarray
    z: float


@dataclass(eq=False)
class Background(_ComparedAsJson):
    """The static scenery's files, relative to the bundle folder."""

    splat: str = "splats/background.ply"
    urdf: str = "scene.urdf"
    collision_mesh: str = "meshes/background_collision.obj"
    visual_mesh: str = "meshes/background_visual.obj"
    friction: float | None = None  # sliding friction of the scenery for every engine (None: PyBullet's 0.5)
    extras: dict = field(default_factory=dict)  # keys this version does not know

    def to_dict(self) -> dict:
        entry = {name: getattr(self, name) for name in BACKGROUND_FILES}
        if self.friction is not None:
            entry["friction"] = self.friction
        return {**entry, **copy.deepcopy(self.extras)}


@dataclass(eq=False)
class SourceInfo(_ComparedAsJson):
    """Where the bundle came from: the scene file, its SHA-256, its format and frame."""

    path: str | None = None
    sha256: str | None = None
    format: str | None = None
    frame: str | None = None
    extras: dict = field(default_factory=dict)  # keys this version does not know (e.g. the capture cameras)

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "format": self.format, "frame": self.frame, **copy.deepcopy(self.extras)}


@dataclass(eq=False)
class ObjectEntry(_ComparedAsJson):
    """A movable object: its files (relative to the bundle), mass (kg), initial pose of the body
    frame (origin at the centre of mass), number of convex parts and extent [3] in the body frame."""

    name: str
    splat: str
    urdf: str
    collision_mesh: str
    mass: float
    initial_pose: Pose
    hulls: int | None = None
    size: np.ndarray | None = None
    friction: float | None = None  # sliding friction for every engine (None: PyBullet's 0.5)
    extras: dict = field(default_factory=dict)  # keys this version does not know

    def to_dict(self) -> dict:
        entry = {"name": self.name, "splat": self.splat, "urdf": self.urdf, "collision_mesh": self.collision_mesh,
                 "mass": self.mass, "initial_pose": self.initial_pose.to_dict()}
        for name in ("hulls", "size", "friction"):
            if getattr(self, name) is not None:
                entry[name] = _json_value(getattr(self, name))
        return {**entry, **copy.deepcopy(self.extras)}


@dataclass(eq=False)
class DynamicCluster(_ComparedAsJson):
    """A moving cluster of a dynamic bundle: the object that carries its splat and hulls, its
    track kind, the CSV of its body-frame poses over time and (kind "frames") the folder of its
    per-time world-frame Gaussians. Layout: ``lyra_sim.bundle.dynamic``."""

    name: str
    object: str
    kind: str  # one of DYNAMIC_KINDS
    track: str
    frames: str | None = None
    max_residual_m: float | None = None


@dataclass(eq=False)
class DynamicPart(_ComparedAsJson):
    """The ``dynamic`` entry of a dynamic bundle (format ``version``): time base (``fps``, number
    of stored ``frames``, ``duration_s`` = (frames - 1) / fps) and the moving clusters."""

    version: int
    fps: float
    frames: int
    duration_s: float
    clusters: list[DynamicCluster]

    def to_dict(self) -> dict:
        return {"version": self.version, "fps": self.fps, "frames": self.frames, "duration_s": self.duration_s,
                "clusters": [cluster.to_dict() for cluster in self.clusters]}


@dataclass(eq=False)
class Manifest(_ComparedAsJson):
    """``manifest.json`` of a SimBundle (schema version 1; DESIGN.md "SimBundle (on disk)").

    Attributes:
        transform: [4, 4] similarity from the source scene's frame to the bundle world.
        bounds, floor_height, spawn_region: the world's extent (m, +Z up), the floor's z and
            where things may be spawned.
        background, objects: the scenery's files and the movable objects.
        kind: "scene", or "object" for an object bundle (exactly one object, resting upright
            at the origin on a ground slab whose top is z = 0).
        source: the scene file the bundle was built from.
        normalisation, build: free-form reports of the build (steps, parameters, timings).
        preview: the rendered overview's file, or None.
        cameras: a camera file in the bundle (lyra-sim's sidecar or INRIA ``cameras.json``, in
            the bundle world), or None.
        dynamic: the moving clusters of a bundle built from a sequence (``DynamicPart``), or
            None. Their objects are listed in ``objects`` at their frame-0 pose, so a reader that
            ignores ``dynamic`` sees the first frame.
        extras: top-level keys this version does not know (kept and written back).
    """

    transform: np.ndarray
    bounds: Bounds
    floor_height: float
    spawn_region: SpawnRegion
    background: Background = field(default_factory=Background)
    objects: list[ObjectEntry] = field(default_factory=list)
    kind: str = "scene"  # one of KINDS
    schema_version: int = SCHEMA_VERSION
    units: str = "m"
    up_axis: str = "+Z"
    tool_version: str | None = None
    source: SourceInfo | None = None
    normalisation: dict | None = None
    build: dict | None = None
    preview: str | None = None
    cameras: str | None = None
    dynamic: DynamicPart | None = None
    extras: dict = field(default_factory=dict)

    def object(self, name: str) -> ObjectEntry:
        return find_named(self.objects, name, "the manifest")

    def to_dict(self) -> dict:
        """The JSON document, in the key order the builder has always written."""
        data: dict[str, Any] = {"schema_version": self.schema_version, "kind": self.kind}
        if self.tool_version is not None:
            data["tool_version"] = self.tool_version
        data.update(units=self.units, up_axis=self.up_axis)
        if self.source is not None:
            data["source"] = self.source.to_dict()
        data["transform"] = self.transform.tolist()
        if self.normalisation is not None:
            data["normalisation"] = copy.deepcopy(self.normalisation)
        data.update(
            bounds=self.bounds.to_dict(), floor_height=self.floor_height, spawn_region=self.spawn_region.to_dict(),
            background=self.background.to_dict(), objects=[entry.to_dict() for entry in self.objects],
        )
        if self.build is not None:
            data["build"] = copy.deepcopy(self.build)
        for name in ("preview", "cameras"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.dynamic is not None:
            data["dynamic"] = self.dynamic.to_dict()
        return {**data, **copy.deepcopy(self.extras)}

    @classmethod
    def from_dict(cls, data: Any, where: str | Path = MANIFEST_NAME) -> "Manifest":
        """Parse a manifest document; ``BundleError`` (prefixed by ``where``) lists what is wrong."""
        problems: list[str] = []
        manifest = _parse(data, problems)
        if manifest is not None:
            problems += manifest_problems(manifest)
        _raise_if_any(problems, where)
        return manifest

    # One release of dict-style access (``manifest["bounds"]["min"]``) for code written against
    # the raw JSON; read the typed fields instead.
    def __getitem__(self, key: str):
        warnings.warn(f"manifest[{key!r}] is deprecated; read the typed field (Manifest.{key})", DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]

    def get(self, key: str, default=None):
        warnings.warn(f"manifest.get({key!r}) is deprecated; read the typed field (Manifest.{key})", DeprecationWarning, stacklevel=2)
        return self.to_dict().get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.to_dict()


# ----------------------------------------------------------------------------------- validation
def manifest_problems(manifest: Manifest, root: str | Path | None = None) -> list[str]:
    """Every problem of ``manifest``, one message each (empty: valid). With ``root`` (the bundle
    folder), every file it names must be a relative path to an existing file inside it."""
    problems: list[str] = []
    if manifest.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        problems.append(f"schema_version {manifest.schema_version!r} is not supported (this lyra-sim reads {list(SUPPORTED_SCHEMA_VERSIONS)})")
    if manifest.units != "m" or manifest.up_axis != "+Z":
        problems.append(f"units must be 'm' and up_axis '+Z', got {manifest.units!r} and {manifest.up_axis!r}")
    if manifest.kind not in KINDS:
        problems.append(f"kind {manifest.kind!r} is not one of {list(KINDS)}")
    elif manifest.kind == "object" and len(manifest.objects) != 1:
        problems.append(f"an object bundle holds exactly one object, this one {len(manifest.objects)}")
    if not math.isfinite(manifest.floor_height):
        problems.append(f"floor_height must be finite, got {manifest.floor_height}")
    names: set[str] = set()
    for entry in manifest.objects:
        if entry.name in names:
            problems.append(f"object name {entry.name!r} appears twice")
        names.add(entry.name)
        if not entry.mass > 0:
            problems.append(f"object {entry.name!r} has mass {entry.mass}; movable objects need mass > 0")
    root = None if root is None else Path(root)
    for key in BACKGROUND_FILES:
        problems += _path_problems(root, getattr(manifest.background, key), f"background.{key}")
    for index, entry in enumerate(manifest.objects):
        for key in OBJECT_FILES:
            problems += _path_problems(root, getattr(entry, key), f"objects[{index}].{key}")
    if manifest.cameras is not None:
        problems += _path_problems(root, manifest.cameras, "cameras")
    if manifest.dynamic is not None:
        problems += _dynamic_problems(manifest.dynamic, names, root)
    for what, friction in [("background", manifest.background.friction)] + [(e.name, e.friction) for e in manifest.objects]:
        if friction is not None and not (math.isfinite(friction) and friction >= 0):
            problems.append(f"{what}: friction must be a finite number >= 0, got {friction}")
    return problems


def _dynamic_problems(dynamic: DynamicPart, object_names: set[str], root: Path | None) -> list[str]:
    problems = []
    if dynamic.version not in DYNAMIC_VERSIONS:
        problems.append(f"dynamic.version {dynamic.version!r} is not supported (this lyra-sim reads {list(DYNAMIC_VERSIONS)})")
    if not (math.isfinite(dynamic.fps) and dynamic.fps > 0) or dynamic.frames < 1:
        problems.append(f"dynamic needs fps > 0 and frames >= 1, got {dynamic.fps} and {dynamic.frames}")
    seen: set[str] = set()
    for index, cluster in enumerate(dynamic.clusters):
        what = f"dynamic.clusters[{index}]"
        if cluster.name in seen:
            problems.append(f"{what}: cluster name {cluster.name!r} appears twice")
        seen.add(cluster.name)
        if cluster.object not in object_names:
            problems.append(f"{what}: object {cluster.object!r} is not one of the bundle's objects {sorted(object_names)}")
        if cluster.kind not in DYNAMIC_KINDS:
            problems.append(f"{what}: kind {cluster.kind!r} is not one of {list(DYNAMIC_KINDS)}")
        problems += _path_problems(root, cluster.track, f"{what}.track")
        if cluster.kind == "frames":
            if not isinstance(cluster.frames, str) or not cluster.frames:
                problems.append(f"{what}: a 'frames' cluster names its folder of per-time splats in 'frames'")
            elif root is not None and not (root / cluster.frames).is_dir():
                problems.append(f"{what}.frames {cluster.frames!r} is missing")
    return problems


def _path_problems(root: Path | None, relative: Any, what: str) -> list[str]:
    """A file the manifest names must be a relative path inside the bundle (and, given the
    bundle folder ``root``, exist there)."""
    if not isinstance(relative, str) or not relative:
        return [f"{what} must be a relative path string, got {relative!r}"]
    if os.path.isabs(relative):
        return [f"{what} must be relative to the bundle, got absolute {relative!r}"]
    if root is None:
        escapes = os.path.normpath(relative).split(os.sep)[0] == os.pardir
    else:
        escapes = root.resolve() not in (root / relative).resolve().parents  # also through links
    if escapes:
        return [f"{what} {relative!r} points outside the bundle"]
    if root is not None and not (root / relative).is_file():
        return [f"{what} {relative!r} is missing"]
    return []


def _raise_if_any(problems: list[str], where) -> None:
    if problems:
        raise BundleError(f"{where}: " + "; ".join(problems))


# -------------------------------------------------------------------------------------- parsing
def _array(value: Any, shape: tuple[int, ...], what: str, problems: list[str]) -> np.ndarray | None:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != shape:
        problems.append(f"{what} must be {' x '.join(map(str, shape))} numbers, got {value!r:.80}")
        return None
    return array


def _number(value: Any, what: str, problems: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{what} must be a number, got {value!r:.80}")
        return None
    return float(value)


def _mapping(value: Any, what: str, problems: list[str]) -> dict | None:
    if not isinstance(value, dict):
        problems.append(f"{what} must be a JSON object, got {type(value).__name__}")
        return None
    return value


def _parse(data: Any, problems: list[str]) -> Manifest | None:
    """The typed manifest of ``data``, or None with ``problems`` saying why."""
    if not isinstance(data, dict):
        problems.append("the top level must be a JSON object")
        return None
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        problems.append(f"missing keys {missing}")
        return None
    if data["schema_version"] not in SUPPORTED_SCHEMA_VERSIONS:  # later fields may mean something else
        problems.append(f"schema_version {data['schema_version']!r} is not supported (this lyra-sim reads {list(SUPPORTED_SCHEMA_VERSIONS)})")
        return None
    before = len(problems)
    transform = _array(data["transform"], (4, 4), "transform", problems)
    bounds = spawn = background = None
    if (raw := _mapping(data["bounds"], "bounds", problems)) is not None:
        low, high = _array(raw.get("min"), (3,), "bounds.min", problems), _array(raw.get("max"), (3,), "bounds.max", problems)
        bounds = Bounds(low, high)
    floor_height = _number(data["floor_height"], "floor_height", problems)
    if (raw := _mapping(data["spawn_region"], "spawn_region", problems)) is not None:
        spawn = SpawnRegion(_array(raw.get("min"), (2,), "spawn_region.min", problems),
                            _array(raw.get("max"), (2,), "spawn_region.max", problems),
                            _number(raw.get("z", floor_height or 0.0), "spawn_region.z", problems))
    if (raw := _mapping(data["background"], "background", problems)) is not None:
        friction = _number(raw["friction"], "background.friction", problems) if raw.get("friction") is not None else None
        background = Background(**{key: raw.get(key) for key in BACKGROUND_FILES}, friction=friction,
                                extras={k: copy.deepcopy(v) for k, v in raw.items() if k not in (*BACKGROUND_FILES, "friction")})
    objects = []
    if not isinstance(data["objects"], list):
        problems.append(f"objects must be a list, got {type(data['objects']).__name__}")
    else:
        for index, raw in enumerate(data["objects"]):
            entry = _parse_object(raw, f"objects[{index}]", problems)
            if entry is not None:
                objects.append(entry)
    source = None
    if data.get("source") is not None and (raw := _mapping(data["source"], "source", problems)) is not None:
        keys = ("path", "sha256", "format", "frame")
        source = SourceInfo(**{key: raw.get(key) for key in keys}, extras={k: copy.deepcopy(v) for k, v in raw.items() if k not in keys})
    known = {"kind", "tool_version", "source", "normalisation", "build", "preview", "cameras", "dynamic", *REQUIRED_KEYS}
    dynamic = _parse_dynamic(data["dynamic"], problems) if data.get("dynamic") is not None else None
    if len(problems) > before:
        return None
    return Manifest(
        transform=transform, bounds=bounds, floor_height=floor_height, spawn_region=spawn, background=background,
        objects=objects, kind=data.get("kind", "scene"), schema_version=data["schema_version"], units=data["units"],
        up_axis=data["up_axis"], tool_version=data.get("tool_version"), source=source,
        normalisation=copy.deepcopy(data.get("normalisation")), build=copy.deepcopy(data.get("build")),
        preview=data.get("preview"), cameras=data.get("cameras"), dynamic=dynamic, extras={k: copy.deepcopy(v) for k, v in data.items() if k not in known},
    )


def _parse_dynamic(raw: Any, problems: list[str]) -> DynamicPart | None:
    if _mapping(raw, "dynamic", problems) is None:
        return None
    before = len(problems)
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        problems.append(f"dynamic.version must be a whole number, got {version!r:.80}")
    elif version not in DYNAMIC_VERSIONS:  # later fields may mean something else
        problems.append(f"dynamic.version {version} is not supported (this lyra-sim reads {list(DYNAMIC_VERSIONS)})")
        return None
    fps = _number(raw.get("fps"), "dynamic.fps", problems)
    frames = raw.get("frames")
    if isinstance(frames, bool) or not isinstance(frames, int):
        problems.append(f"dynamic.frames must be a whole number, got {frames!r:.80}")
    duration = _number(raw.get("duration_s"), "dynamic.duration_s", problems)
    clusters = []
    if not isinstance(raw.get("clusters"), list):
        problems.append(f"dynamic.clusters must be a list, got {type(raw.get('clusters')).__name__}")
    else:
        for index, item in enumerate(raw["clusters"]):
            what = f"dynamic.clusters[{index}]"
            if _mapping(item, what, problems) is None:
                continue
            missing = [key for key in ("name", "object", "kind", "track") if not isinstance(item.get(key), str)]
            if missing:
                problems.append(f"{what} is malformed (missing or not text: {missing})")
                continue
            residual = item.get("max_residual_m")
            clusters.append(DynamicCluster(item["name"], item["object"], item["kind"], item["track"], item.get("frames"),
                                           None if residual is None else _number(residual, f"{what}.max_residual_m", problems)))
    if len(problems) > before:
        return None
    return DynamicPart(version, fps, frames, duration, clusters)


def _parse_object(raw: Any, what: str, problems: list[str]) -> ObjectEntry | None:
    if _mapping(raw, what, problems) is None:
        return None
    missing = [key for key in ("name", *OBJECT_FILES, "mass", "initial_pose") if key not in raw]
    if missing:
        problems.append(f"{what} is malformed (missing {missing})")
        return None
    before = len(problems)
    if not isinstance(raw["name"], str) or not raw["name"]:
        problems.append(f"{what}.name must be a non-empty string, got {raw['name']!r}")
    mass = _number(raw["mass"], f"{what}.mass", problems)
    pose = _mapping(raw["initial_pose"], f"{what}.initial_pose", problems) or {}
    position = _array(pose.get("position"), (3,), f"{what}.initial_pose.position", problems)
    orientation = _array(pose.get("orientation_xyzw"), (4,), f"{what}.initial_pose.orientation_xyzw", problems)
    hulls = raw.get("hulls")
    if hulls is not None and (isinstance(hulls, bool) or not isinstance(hulls, int) or hulls < 0):
        problems.append(f"{what}.hulls must be a whole number >= 0, got {hulls!r}")
    size = _array(raw["size"], (3,), f"{what}.size", problems) if raw.get("size") is not None else None
    friction = _number(raw["friction"], f"{what}.friction", problems) if raw.get("friction") is not None else None
    if len(problems) > before:
        return None
    known = {"name", *OBJECT_FILES, "mass", "initial_pose", "hulls", "size", "friction"}
    return ObjectEntry(
        name=raw["name"], splat=raw["splat"], urdf=raw["urdf"], collision_mesh=raw["collision_mesh"], mass=mass,
        initial_pose=Pose(position, orientation), hulls=hulls, size=size, friction=friction,
        extras={k: copy.deepcopy(v) for k, v in raw.items() if k not in known},
    )


# ------------------------------------------------------------------------------- read and write
def read_manifest(folder: str | Path, *, check_files: bool = True) -> Manifest:
    """The validated manifest of the bundle ``folder`` (with ``check_files``, every file it names
    must exist inside the folder). ``BundleError`` names the manifest and every problem."""
    root = Path(folder)
    path = root / MANIFEST_NAME
    if not os.path.lexists(root):
        recover_interrupted_replace(root)  # a replace killed between its renames left the old bundle aside
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle folder (does not exist or is not a directory)")
    if not path.is_file():
        raise BundleError(f"{root}: no manifest.json; is this a SimBundle folder?")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({str(error)[:200]})") from None
    except RecursionError:
        raise BundleError(f"{path}: the JSON is nested too deeply") from None
    # The strict value schema (issue 16: types, finiteness, ranges, unit quaternions, boxes) first.
    problems = manifest_value_problems(data)
    _raise_if_any(problems, path)
    manifest = _parse(data, problems)
    if manifest is not None:
        problems += manifest_problems(manifest, root if check_files else None)
    _raise_if_any(problems, path)
    return manifest


def write_manifest(manifest: Manifest, folder: str | Path) -> Path:
    """Validate ``manifest`` against the files already in ``folder`` and write
    ``folder/manifest.json`` atomically (temporary sibling, then rename). Returns its path."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    _raise_if_any(manifest_problems(manifest, folder), path)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path

"""The SimBundle manifest (``manifest.json``), typed and versioned: read, validate, write.

``Manifest`` and its parts are the one description of the format: the builder fills one and
writes it with :func:`write_manifest` (validated, atomic), every consumer reads one with
:func:`read_manifest` (or through ``lyra_sim.bundle.load_bundle``) and uses its typed fields.
Keys this version does not know are kept in ``extras`` and written back unchanged.

Validation: :func:`manifest_problems` reports one message per problem — the document's values
through the value schema (``lyra_sim.bundle.schema``, the one place for value rules, applied to
``Manifest.to_dict()``) and every file it names (a relative path inside the bundle, existing);
:func:`read_manifest` and :func:`write_manifest` raise ``BundleError`` listing them, prefixed by
the manifest's path. A document read from disk passes the value schema before it is parsed.

May import numpy and ``lyra_sim.errors`` / ``lyra_sim.typed`` / ``lyra_sim.io_utils`` only.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lyra_sim.errors import BundleError
from lyra_sim.io_utils import atomic_path, recover_interrupted_replace
from lyra_sim.bundle.schema import KINDS, MAX_MANIFEST_BYTES, REQUIRED_KEYS, SCHEMA_VERSION, SUPPORTED_SCHEMA_VERSIONS, document_problems

MANIFEST_NAME = "manifest.json"
BACKGROUND_FILES = ("splat", "urdf", "collision_mesh", "visual_mesh")
OBJECT_FILES = ("urdf", "splat", "collision_mesh")
__all__ = ["KINDS", "MANIFEST_NAME", "SCHEMA_VERSION", "SUPPORTED_SCHEMA_VERSIONS", "Background", "Bounds", "Manifest",
           "ObjectEntry", "Pose", "SourceInfo", "SpawnRegion", "find_named", "manifest_problems", "read_manifest", "write_manifest"]


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
        return {**data, **copy.deepcopy(self.extras)}

    @classmethod
    def from_dict(cls, data: Any, where: str | Path = MANIFEST_NAME) -> "Manifest":
        """Parse a manifest document; ``BundleError`` (prefixed by ``where``) lists what is wrong."""
        return _validated(data, None, where)

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
    """Every problem of ``manifest``, one message each (empty: valid): its values (the value
    schema of its document) and the files it names. With ``root`` (the bundle folder), every file
    must be a relative path to an existing file inside it."""
    problems = document_problems(manifest.to_dict())
    root = None if root is None else Path(root)
    for key in BACKGROUND_FILES:
        problems += _path_problems(root, getattr(manifest.background, key), f"background.{key}")
    for index, entry in enumerate(manifest.objects):
        for key in OBJECT_FILES:
            problems += _path_problems(root, getattr(entry, key), f"objects[{index}].{key}")
    if manifest.cameras is not None:
        problems += _path_problems(root, manifest.cameras, "cameras")
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
def _validated(data: Any, root: Path | None, where) -> Manifest:
    """The typed manifest of the document ``data`` after the value schema and the file checks;
    ``BundleError`` (prefixed by ``where``) lists every problem."""
    _raise_if_any(document_problems(data), where)
    manifest = _parse(data)
    _raise_if_any(manifest_problems(manifest, root), where)
    return manifest


def _unknown(raw: dict, known) -> dict:
    return {key: copy.deepcopy(value) for key, value in raw.items() if key not in known}


def _floats(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _parse(data: dict) -> Manifest:
    """The typed manifest of a document that passed the value schema."""
    bounds, spawn, background = data["bounds"], data["spawn_region"], data["background"]
    source = data.get("source")
    source_keys = ("path", "sha256", "format", "frame")
    known = {"kind", "tool_version", "source", "normalisation", "build", "preview", "cameras", *REQUIRED_KEYS}
    return Manifest(
        transform=_floats(data["transform"]), bounds=Bounds(_floats(bounds["min"]), _floats(bounds["max"])),
        floor_height=float(data["floor_height"]),
        spawn_region=SpawnRegion(_floats(spawn["min"]), _floats(spawn["max"]), float(spawn["z"])),
        background=Background(**{key: background.get(key) for key in BACKGROUND_FILES}, friction=_optional_float(background.get("friction")),
                              extras=_unknown(background, (*BACKGROUND_FILES, "friction"))),
        objects=[_parse_object(raw) for raw in data["objects"]], kind=data.get("kind", "scene"),
        schema_version=data["schema_version"], units=data["units"], up_axis=data["up_axis"], tool_version=data.get("tool_version"),
        source=None if source is None else SourceInfo(**{key: source.get(key) for key in source_keys}, extras=_unknown(source, source_keys)),
        normalisation=copy.deepcopy(data.get("normalisation")), build=copy.deepcopy(data.get("build")),
        preview=data.get("preview"), cameras=data.get("cameras"), extras=_unknown(data, known),
    )


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def _parse_object(raw: dict) -> ObjectEntry:
    pose = raw["initial_pose"]
    known = ("name", *OBJECT_FILES, "mass", "initial_pose", "hulls", "size", "friction")
    return ObjectEntry(
        name=raw["name"], splat=raw["splat"], urdf=raw["urdf"], collision_mesh=raw["collision_mesh"], mass=float(raw["mass"]),
        initial_pose=Pose(_floats(pose["position"]), _floats(pose["orientation_xyzw"])), hulls=raw.get("hulls"),
        size=None if raw.get("size") is None else _floats(raw["size"]), friction=_optional_float(raw.get("friction")),
        extras=_unknown(raw, known),
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
    return _validated(data, root if check_files else None, path)


def write_manifest(manifest: Manifest, folder: str | Path) -> Path:
    """Validate ``manifest`` against the files already in ``folder`` and write
    ``folder/manifest.json`` atomically (temporary sibling, then rename). Returns its path."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    _raise_if_any(manifest_problems(manifest, folder), path)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path

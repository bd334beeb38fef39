"""Reading a SimBundle folder: ``load_bundle`` validates the manifest and every path in it and
returns a ``SimBundle``; ``summarize_bundle`` is what ``lyra-sim info BUNDLE`` prints.

This module imports no converter code: loading a bundle needs only the manifest, the splat
reader (lazily) and numpy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lyra_sim.errors import BundleError
from lyra_sim.io_utils import recover_interrupted_replace
from lyra_sim.sim.manifest_checks import MAX_MANIFEST_BYTES, SUPPORTED_SCHEMA_VERSIONS, manifest_value_problems
from lyra_sim.sim.trust import resolve_inside

__all__ = ["SUPPORTED_SCHEMA_VERSIONS", "BundleObject", "SimBundle", "load_bundle", "summarize_bundle", "format_bundle_summary"]


def _inside(root: Path, relative: Any, what: str) -> Path:
    """``root / relative`` after checking it is a relative path to an existing file inside the bundle
    (no absolute path, no ``..`` escape, no symlink leaving it)."""
    resolve_inside(root, relative, what)
    return root / relative


@dataclass
class BundleObject:
    """A movable object of a bundle.

    Attributes:
        name: unique name.
        urdf: path of its URDF (link frame = body frame = centre of mass).
        splat: path of its body-frame splat (INRIA PLY).
        collision_mesh: path of its convex-parts OBJ.
        mass: kg.
        position: initial position [3] of the body frame in the world.
        orientation_xyzw: initial orientation [4] (PyBullet order).
        hulls: number of convex parts.
        size: extent [3] of the parts in the body frame.
    """

    name: str
    urdf: Path
    splat: Path
    collision_mesh: Path
    mass: float
    position: np.ndarray
    orientation_xyzw: np.ndarray
    hulls: int
    size: np.ndarray

    def scene(self):
        """The object's Gaussians in its body frame (origin at the centre of mass)."""
        from lyra_sim.scene.io import load_scene

        return load_scene(self.splat)


@dataclass
class SimBundle:
    """A loaded SimBundle (see DESIGN.md for the layout).

    Attributes:
        root: the bundle folder.
        manifest: the parsed manifest.json.
        objects: the movable objects.
    """

    root: Path
    manifest: dict
    objects: list[BundleObject] = field(default_factory=list)

    @property
    def scene_urdf(self) -> Path:
        return self.root / self.manifest["background"]["urdf"]

    @property
    def background_splat(self) -> Path:
        return self.root / self.manifest["background"]["splat"]

    @property
    def floor_height(self) -> float:
        return float(self.manifest["floor_height"])

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.manifest["bounds"]["min"], dtype=np.float64), np.asarray(self.manifest["bounds"]["max"], dtype=np.float64)

    @property
    def spawn_region(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(min [2], max [2], z) of the free floor area where things may be spawned."""
        region = self.manifest["spawn_region"]
        return np.asarray(region["min"], dtype=np.float64), np.asarray(region["max"], dtype=np.float64), float(region["z"])

    @property
    def transform(self) -> np.ndarray:  # [4, 4]
        """Source frame -> bundle world similarity."""
        return np.asarray(self.manifest["transform"], dtype=np.float64)

    def background_scene(self):
        """The scenery Gaussians in the world frame (+Z up, metres)."""
        from lyra_sim.scene.io import load_scene

        return load_scene(self.background_splat)

    def object(self, name: str) -> BundleObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"bundle {self.root} has no object {name!r}; objects: {[o.name for o in self.objects]}")


def load_bundle(path) -> SimBundle:
    """Open and validate a SimBundle folder.

    Raises ``BundleError`` naming the file and the problem: missing folder or manifest,
    invalid or too deeply nested JSON, any value the strict schema refuses
    (``lyra_sim.sim.manifest_checks``: types, finiteness, ranges, unit quaternions,
    non-inverted boxes; one message per problem), or a referenced file that is missing or
    outside the bundle.
    """
    root = Path(path)
    manifest_path = root / "manifest.json"
    if not os.path.lexists(root):
        recover_interrupted_replace(root)  # a replace killed between its renames left the old bundle aside
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle folder (does not exist or is not a directory)")
    if not manifest_path.is_file():
        raise BundleError(f"{root}: no manifest.json; is this a SimBundle folder?")
    size = manifest_path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{manifest_path}: {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{manifest_path}: not valid JSON ({str(error)[:200]})") from None
    except RecursionError:
        raise BundleError(f"{manifest_path}: the JSON is nested too deeply") from None
    problems = manifest_value_problems(manifest)
    if problems:
        raise BundleError(f"{manifest_path}: " + "; ".join(problems))
    background = manifest["background"]
    for key in ("splat", "urdf", "collision_mesh", "visual_mesh"):
        _inside(root, background.get(key), f"background.{key}")
    objects = []
    names = set()
    for index, entry in enumerate(manifest["objects"]):
        try:
            name = entry["name"]
            if name in names:
                raise BundleError(f"{manifest_path}: object name {name!r} appears twice")
            names.add(name)
            pose = entry["initial_pose"]
            obj = BundleObject(
                name=name,
                urdf=_inside(root, entry["urdf"], f"objects[{index}].urdf"),
                splat=_inside(root, entry["splat"], f"objects[{index}].splat"),
                collision_mesh=_inside(root, entry["collision_mesh"], f"objects[{index}].collision_mesh"),
                mass=float(entry["mass"]),
                position=np.asarray(pose["position"], dtype=np.float64).reshape(3),
                orientation_xyzw=np.asarray(pose["orientation_xyzw"], dtype=np.float64).reshape(4),
                hulls=int(entry.get("hulls", 0)),
                size=np.asarray(entry.get("size", [0, 0, 0]), dtype=np.float64).reshape(3),
            )
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, BundleError):
                raise
            raise BundleError(f"{manifest_path}: objects[{index}] is malformed ({type(error).__name__}: {error})") from None
        if not obj.mass > 0:
            raise BundleError(f"{manifest_path}: object {name!r} has mass {obj.mass}; movable objects need mass > 0")
        objects.append(obj)
    return SimBundle(root=root, manifest=manifest, objects=objects)


def summarize_bundle(path) -> dict[str, Any]:
    """A JSON-serialisable summary of a bundle (what ``lyra-sim info BUNDLE --json`` prints)."""
    bundle = load_bundle(path)
    manifest = bundle.manifest
    build = manifest.get("build", {})
    scenery = build.get("scenery", {})
    low, high = bundle.bounds
    return {
        "path": str(bundle.root),
        "kind": "simbundle",
        "bundle_kind": manifest.get("kind", "scene"),
        "schema_version": manifest["schema_version"],
        "tool_version": manifest.get("tool_version"),
        "source": manifest.get("source"),
        "scale": manifest.get("normalisation", {}).get("scale"),
        "bounds_min": low.tolist(),
        "bounds_max": high.tolist(),
        "size": (high - low).tolist(),
        "floor_height": bundle.floor_height,
        "spawn_region": manifest["spawn_region"],
        "gaussians": build.get("gaussians"),
        "collision_faces": scenery.get("collision_faces"),
        "visual_faces": scenery.get("visual_faces"),
        "voxel_size": scenery.get("voxel_size"),
        "ground_slab": build.get("ground_slab") is not None,
        "objects": [
            {"name": o.name, "mass": o.mass, "hulls": o.hulls, "size": o.size.tolist(), "position": o.position.tolist()}
            for o in bundle.objects
        ],
        "stage_seconds": build.get("stage_seconds"),
        "up": _up_summary(manifest),
        "cleanup": _cleanup_summary(manifest.get("normalisation", {})),
        "warnings": list(manifest.get("warnings", [])),
    }


def _up_summary(manifest: dict) -> dict | None:
    record = manifest.get("normalisation", {}).get("up_and_floor")
    if not record or "chosen_source" not in record:
        return None
    return {"source": record["chosen_source"], "confidence": record.get("confidence"), "floor_from": record.get("floor_from"),
            "candidates": {c["source"]: c.get("angle_to_chosen_deg") for c in record.get("candidates", [])}}


def _cleanup_summary(steps: dict) -> dict:
    """Gaussians removed per clean-up reason."""
    removed = {}
    for step, entry in steps.items():
        if isinstance(entry, dict) and "removed" in entry:
            if isinstance(entry.get("reasons"), dict) and step == "camera_floaters":
                removed.update({f"cameras: {k}": v for k, v in entry["reasons"].items()})
            else:
                removed[step] = entry["removed"]
    return removed


def format_bundle_summary(summary: dict[str, Any]) -> str:
    """Human-readable text of :func:`summarize_bundle`'s dict."""
    size = summary["size"]
    scale = summary.get("scale") or {}
    lines = [
        f"SimBundle {summary['path']} ({summary.get('bundle_kind', 'scene')} bundle, schema {summary['schema_version']}, lyra-sim {summary['tool_version']})",
        f"  source        {(summary.get('source') or {}).get('path')} [{(summary.get('source') or {}).get('format')}, frame {(summary.get('source') or {}).get('frame')}]",
        f"  scale         {scale.get('scale')} m per source unit ({scale.get('source')})",
        f"  size          {size[0]:.3f} x {size[1]:.3f} x {size[2]:.3f} m, floor at z = {summary['floor_height']}",
        f"  gaussians     {summary.get('gaussians')}",
        f"  collision     {summary.get('collision_faces')} faces (voxel {summary.get('voxel_size')}), ground slab: {summary['ground_slab']}",
        f"  visual        {summary.get('visual_faces')} faces",
        f"  objects       {len(summary['objects'])}",
    ]
    for obj in summary["objects"]:
        lines.append(f"    - {obj['name']}: {obj['mass']:.3f} kg, {obj['hulls']} hulls, size {' x '.join(f'{v:.3f}' for v in obj['size'])} m")
    up = summary.get("up")
    if up:
        others = ", ".join(f"{source} {angle:.1f} deg" for source, angle in up["candidates"].items() if angle is not None)
        lines.append(f"  up            from {up['source']} (confidence {up['confidence']}; floor: {up['floor_from']}; candidates: {others})")
    cleanup = {k: v for k, v in (summary.get("cleanup") or {}).items() if v}
    if cleanup:
        lines.append("  removed       " + ", ".join(f"{k} {v}" for k, v in cleanup.items()))
    if summary.get("stage_seconds"):
        lines.append("  build time    " + ", ".join(f"{k} {v:.1f}s" for k, v in summary["stage_seconds"].items()))
    for warning in summary.get("warnings") or []:
        lines.append(f"  WARNING       {warning}")
    return "\n".join(lines)

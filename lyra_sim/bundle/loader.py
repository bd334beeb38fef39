"""Reading a SimBundle folder: ``load_bundle`` validates the manifest and every path in it
(``lyra_sim.bundle.manifest``) and returns a ``SimBundle``; ``summarize_bundle`` is what
``lyra-sim info BUNDLE`` prints.

This module imports no converter code: loading a bundle needs only the manifest, the splat
reader (lazily) and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lyra_sim.bundle.manifest import SUPPORTED_SCHEMA_VERSIONS, Manifest, ObjectEntry, find_named, read_manifest  # noqa: F401


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
        manifest: the validated, typed manifest (``lyra_sim.bundle.Manifest``).
        objects: the movable objects, their files resolved against ``root``.
    """

    root: Path
    manifest: Manifest
    objects: list[BundleObject] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """"scene", or "object" for an object bundle."""
        return self.manifest.kind

    @property
    def scene_urdf(self) -> Path:
        return self.root / self.manifest.background.urdf

    @property
    def background_splat(self) -> Path:
        return self.root / self.manifest.background.splat

    @property
    def collision_mesh(self) -> Path:
        """The scenery's concave collision OBJ."""
        return self.root / self.manifest.background.collision_mesh

    @property
    def floor_height(self) -> float:
        return self.manifest.floor_height

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.manifest.bounds.min.copy(), self.manifest.bounds.max.copy()

    @property
    def spawn_region(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(min [2], max [2], z) of the free floor area where things may be spawned."""
        region = self.manifest.spawn_region
        return region.min.copy(), region.max.copy(), region.z

    @property
    def transform(self) -> np.ndarray:  # [4, 4]
        """Source frame -> bundle world similarity."""
        return self.manifest.transform.copy()

    def background_scene(self):
        """The scenery Gaussians in the world frame (+Z up, metres)."""
        from lyra_sim.scene.io import load_scene

        return load_scene(self.background_splat)

    def object(self, name: str) -> BundleObject:
        return find_named(self.objects, name, f"bundle {self.root}")


def load_bundle(path) -> SimBundle:
    """Open and validate a SimBundle folder.

    Raises ``BundleError`` naming the file and the problems: missing folder or manifest,
    invalid JSON, unsupported schema version, missing keys or malformed fields, or a referenced
    file that is missing or outside the bundle (``lyra_sim.bundle.manifest.manifest_problems``).
    """
    root = Path(path)
    manifest = read_manifest(root)
    return SimBundle(root=root, manifest=manifest, objects=[_bundle_object(root, entry) for entry in manifest.objects])


def _bundle_object(root: Path, entry: ObjectEntry) -> BundleObject:
    return BundleObject(
        name=entry.name, urdf=root / entry.urdf, splat=root / entry.splat, collision_mesh=root / entry.collision_mesh,
        mass=entry.mass, position=entry.initial_pose.position.copy(), orientation_xyzw=entry.initial_pose.orientation_xyzw.copy(),
        hulls=entry.hulls or 0, size=np.zeros(3) if entry.size is None else entry.size.copy(),
    )


def summarize_bundle(path) -> dict[str, Any]:
    """A JSON-serialisable summary of a bundle (what ``lyra-sim info BUNDLE --json`` prints)."""
    bundle = load_bundle(path)
    manifest = bundle.manifest
    build = manifest.build or {}
    scenery = build.get("scenery", {})
    low, high = bundle.bounds
    return {
        "path": str(bundle.root),
        "kind": "simbundle",
        "bundle_kind": manifest.kind,
        "schema_version": manifest.schema_version,
        "tool_version": manifest.tool_version,
        "source": None if manifest.source is None else manifest.source.to_dict(),
        "scale": (manifest.normalisation or {}).get("scale"),
        "bounds_min": low.tolist(),
        "bounds_max": high.tolist(),
        "size": (high - low).tolist(),
        "floor_height": bundle.floor_height,
        "spawn_region": manifest.spawn_region.to_dict(),
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
        "up": _up_summary(manifest.normalisation or {}),
        "cleanup": _cleanup_summary(manifest.normalisation or {}),
        "warnings": list(manifest.extras.get("warnings", [])),
        "dynamic": None if manifest.dynamic is None else {
            "fps": manifest.dynamic.fps, "frames": manifest.dynamic.frames, "duration_s": manifest.dynamic.duration_s,
            "clusters": [{"name": c.name, "object": c.object, "kind": c.kind} for c in manifest.dynamic.clusters],
        },
    }


def _up_summary(normalisation: dict) -> dict | None:
    record = normalisation.get("up_and_floor")
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
    dynamic = summary.get("dynamic")
    if dynamic:
        movers = ", ".join(f"{c['name']} ({c['kind']})" for c in dynamic["clusters"])
        lines.append(f"  dynamic       {dynamic['frames']} frames at {dynamic['fps']:g} fps ({dynamic['duration_s']:.3f} s): {movers}")
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

"""``build_bundle``: a Gaussian scene -> a SimBundle folder (layout in DESIGN.md, manifest in
contracts: schema_version 1).

Stages: normalise (up, floor, scale, clean-up; scene or object) -> objects (given masks or
automatic segmentation) -> scenery collision/visual meshes (render depth, TSDF) -> per object:
carved solid, convex decomposition, mass properties, body frame at the centre of mass -> write
(splats, OBJ meshes, URDFs, preview, manifest) into a temporary sibling folder that is renamed
onto ``out_dir`` only when complete and validated by ``lyra_sim.bundle.load_bundle`` (the manifest is
written through ``lyra_sim.bundle.write_manifest``).

An object scan (normalisation found no supported floor and one compact thing, or
``config.kind == "object"``) becomes an *object bundle* (manifest ``"kind": "object"``): its one
object upright on its resting face at the world origin, splat in its body frame, convex hulls,
mass and inertia; the scenery is a synthesized ground slab whose top is z = 0 and the
background splat is empty.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lyra_sim.bundle.manifest import Background, Bounds, Manifest, ObjectEntry, Pose, SourceInfo, SpawnRegion, write_manifest
from lyra_sim.converters.collision import ground_slab, object_solid, preview_camera, scenery_meshes
from lyra_sim.converters.config import BuildConfig
from lyra_sim.converters.convex import convex_decomposition
from lyra_sim.converters.normalise import normalise_scene
from lyra_sim.converters.segment import floor_gaussians, segment_objects
from lyra_sim.converters.urdf import object_urdf, static_scene_urdf
from lyra_sim.errors import BundleError
from lyra_sim.geometry.mesh import Mesh, mass_properties, write_obj
from lyra_sim.io_utils import atomic_path, file_sha256, progress_bar
from lyra_sim.scene.gaussian_scene import GaussianScene

_OBJECT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class BuiltObject:
    """A movable object ready to write: body-frame splat and hulls, pose and mass properties."""

    name: str
    scene: GaussianScene  # body frame
    hulls: list[Mesh]  # body frame
    mass: float
    inertia: np.ndarray  # [3, 3]
    position: np.ndarray  # [3] centre of mass in the world
    report: dict


class _Stages:
    """One progress bar over the build stages, with the wall time of each."""

    def __init__(self, names: list[str], enabled: bool) -> None:
        self.bar = progress_bar(total=len(names), desc="build", unit="stage", enabled=enabled)
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.bar.set_description(f"build: {name}")
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.set_description("build: done")
        self.bar.close()


def _file_sha256(path: str | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    return file_sha256(path)


def _check_masks(scene: GaussianScene, object_masks: dict | None) -> dict[str, np.ndarray]:
    if not object_masks:
        return {}
    masks = {}
    for name, mask in object_masks.items():
        if not isinstance(name, str) or not _OBJECT_NAME.match(name) or name == "background":
            raise BundleError(f"object name {name!r} is not allowed: use letters, digits, '_', '.', '-' (and not 'background')")
        mask = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(scene),):
            raise BundleError(f"object mask {name!r} must be a bool array of shape [{len(scene)}], got {mask.dtype} {list(mask.shape)}")
        if not mask.any():
            raise BundleError(f"object mask {name!r} selects no Gaussians")
        masks[name] = mask
    overlap = np.sum([m.astype(np.int64) for m in masks.values()], axis=0)
    if np.any(overlap > 1):
        raise BundleError(f"object masks overlap on {int(np.sum(overlap > 1))} Gaussians; each Gaussian may belong to one object")
    return masks


def _build_object(name: str, scene: GaussianScene, config: BuildConfig) -> BuiltObject:
    """Carve, decompose and weigh one object given in world coordinates; move it to its body frame."""
    from lyra_sim.scene.transforms import transform_scene

    solid, carve_info = object_solid(scene, config)
    if solid.is_empty():
        raise BundleError(f"object {name!r}: carving its {len(scene)} Gaussians left no solid (too transparent or too small?)")
    decomposition = convex_decomposition(solid, config.convex_method, config.convex_threshold, config.max_hulls, config.seed, config.convex_tolerance)
    volume = decomposition.mesh_volume or decomposition.hull_volume
    mass = config.object_density * volume
    properties = mass_properties(decomposition.hulls, mass)
    centre = properties.center_of_mass
    hulls = [hull.translated(-centre) for hull in decomposition.hulls]
    body_scene = transform_scene(scene, np.eye(3), -centre, 1.0)
    report = {
        "carving": carve_info,
        "decomposition": decomposition.report(),
        "volume": volume,
        "gaussians": len(scene),
        "inertia_full": properties.inertia.tolist(),
    }
    return BuiltObject(name, body_scene, hulls, float(mass), properties.inertia, centre, report)


def build_bundle(
    scene: GaussianScene,
    out_dir,
    config: BuildConfig = BuildConfig(),
    object_masks: dict[str, np.ndarray] | None = None,
    progress: bool = True,
) -> Path:
    """Convert ``scene`` into a SimBundle folder at ``out_dir`` and return its path.

    Args:
        scene: any GaussianScene (its metadata frame is the up prior; see ``BuildConfig``).
        out_dir: the bundle folder; replaced atomically if it exists.
        config: build parameters.
        object_masks: name -> bool [N] over ``scene``: Gaussians of each movable object. Without
            masks and with ``config.segment_objects``, objects are found automatically.
        progress: show a progress bar per stage.

    Raises:
        BundleError: empty or unusable scene, bad masks, nothing reconstructed; no folder is left.
    """
    if not isinstance(scene, GaussianScene):
        raise BundleError(f"build_bundle needs a GaussianScene, got {type(scene).__name__}")
    source_name = scene.metadata.source or "<scene in memory>"
    if len(scene) == 0:
        raise BundleError(f"{source_name}: the scene has no Gaussians; nothing to build")
    out_dir = Path(out_dir)
    masks = _check_masks(scene, object_masks)
    stages = _Stages(["normalise", "objects", "scenery", "convex", "write"], progress)
    try:
        with stages("normalise"):
            normal = normalise_scene(scene, config, masks, progress=progress)
            world = normal.scene
        if normal.kind == "object":
            if masks:
                raise BundleError(f"{source_name}: object masks were given, but the scene is an object scan (pass kind='scene' to build a scene)")
            return _build_object_bundle(scene, world, normal, out_dir, config, stages)
        with stages("objects"):
            world_masks = {name: mask[normal.kept] for name, mask in masks.items()}
            segmentation = "given masks" if masks else "none"
            if not masks and config.segment_objects:
                world_masks = segment_objects(world, config.object_max_size, config.object_min_gaussians)
                segmentation = f"automatic ({len(world_masks)} objects)"
            for name, mask in world_masks.items():
                if not mask.any():
                    raise BundleError(f"object {name!r}: all its Gaussians were removed by normalisation ({normal.steps})")
            in_object = np.zeros(len(world), dtype=bool)
            for mask in world_masks.values():
                in_object |= mask
            background = world[torch.from_numpy(~in_object)]
            if len(background) == 0:
                raise BundleError(f"{source_name}: every Gaussian belongs to an object; the scenery is empty")
        with stages("scenery"):
            scenery = scenery_meshes(background, config, floor_z=0.0, progress=progress)
            if scenery.collision.is_empty():
                raise BundleError(
                    f"{source_name}: no surface could be reconstructed from the scenery "
                    f"({len(background)} Gaussians, {scenery.info['observed_pixel_fraction']:.1%} of pixels opaque)"
                )
        with stages("convex"):
            objects = [_build_object(name, world[torch.from_numpy(mask)], config) for name, mask in world_masks.items()]
        with stages("write"):
            means = world.means.detach().cpu().numpy()
            low, high = means.min(0), means.max(0)
            low[2] = min(float(low[2]), 0.0)
            slab = ground_slab(low, high, config) if config.ground_slab else None
            floor_xy = means[~in_object][floor_gaussians(background, band=0.02), :2]
            spawn_low, spawn_high = (np.percentile(floor_xy, [5, 95], axis=0) if len(floor_xy) >= 10 else (low[:2], high[:2]))
            manifest = Manifest(
                **_manifest_head(scene, normal),
                kind="scene",
                bounds=Bounds(low.astype(np.float64), high.astype(np.float64)),
                floor_height=0.0,
                spawn_region=SpawnRegion(np.asarray(spawn_low, dtype=np.float64), np.asarray(spawn_high, dtype=np.float64), 0.0),
                background=Background(),
                objects=[_object_entry(obj) for obj in objects],
                cameras="cameras.json" if world.metadata.cameras is not None else None,
                build={
                    "config": config.to_dict(),
                    "segmentation": segmentation,
                    "gaussians": {"input": len(scene), "world": len(world), "background": len(background)},
                    "scenery": scenery.info,
                    "ground_slab": None if slab is None else {"center": slab[0].tolist(), "size": slab[1].tolist()},
                    "objects": {obj.name: obj.report for obj in objects},
                    "stage_seconds": stages.seconds,
                },
                preview="preview.png",
            )
            _publish(out_dir, manifest, stages, lambda folder: _write_files(folder, background, world, objects, scenery, slab, manifest, config))
    finally:
        stages.close()
    return out_dir


def _object_entry(obj: BuiltObject) -> ObjectEntry:
    """The manifest entry of a movable object of a scene bundle (files named after the object)."""
    low = np.min([hull.vertices.min(0) for hull in obj.hulls], 0)
    high = np.max([hull.vertices.max(0) for hull in obj.hulls], 0)
    return ObjectEntry(
        name=obj.name, splat=f"splats/{obj.name}.ply", urdf=f"objects/{obj.name}.urdf", collision_mesh=f"meshes/{obj.name}_collision.obj",
        mass=obj.mass, initial_pose=Pose(np.asarray(obj.position, dtype=np.float64), np.array([0.0, 0.0, 0.0, 1.0])),
        hulls=len(obj.hulls), size=(high - low).astype(np.float64),
    )


def _manifest_head(scene: GaussianScene, normal) -> dict:
    """The ``Manifest`` fields every bundle kind shares: version, source, frame, the normalisation record."""
    from lyra_sim import __version__

    cameras = scene.metadata.cameras
    return {
        "tool_version": __version__,
        "source": SourceInfo(
            path=scene.metadata.source, sha256=_file_sha256(scene.metadata.source), format=scene.metadata.format,
            frame=scene.metadata.frame,
            extras={"cameras": None if cameras is None else {"source": cameras.source, "kind": cameras.kind, "count": len(cameras)}},
        ),
        "transform": np.asarray(normal.transform, dtype=np.float64),
        "normalisation": normal.steps,
        "extras": {"up_confidence": round(normal.confidence, 3), "warnings": list(normal.warnings)},
    }


def _publish(out_dir: Path, manifest: Manifest, stages: _Stages, write_files) -> None:
    """Write the files and the manifest into a temporary sibling, validate, rename onto ``out_dir``."""
    with atomic_path(out_dir) as folder:
        write_started = time.perf_counter()
        write_files(folder)
        manifest.build["stage_seconds"] = {**stages.seconds, "write": round(time.perf_counter() - write_started, 3)}
        write_manifest(manifest, folder)  # validated against the files
        from lyra_sim.bundle.loader import load_bundle

        load_bundle(folder)  # refuse to publish a bundle our own loader rejects


def _object_name(scene: GaussianScene) -> str:
    stem = Path(scene.metadata.source).name.split(".")[0] if scene.metadata.source else "object"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "object"
    return name if _OBJECT_NAME.match(name) and name != "background" else f"object_{name}"


def _build_object_bundle(scene: GaussianScene, world: GaussianScene, normal, out_dir: Path, config: BuildConfig, stages: _Stages) -> Path:
    """An object bundle (module docstring; written by ``converters.compose.write_object_bundle``,
    the format issue 17 composes) from the normalised object scan ``world``."""
    from lyra_sim.converters.compose import write_object_bundle
    from lyra_sim.converters.evidence import angle_deg, settle
    from lyra_sim.converters.normalise import rotation_between
    from lyra_sim.scene.transforms import transform_scene

    name = _object_name(scene)
    with stages("objects"):
        pass
    with stages("scenery"):
        pass
    with stages("convex"):
        built = _build_object(name, world, config)
        # The hulls are the body physics sees: stand it where they come to rest (the centre of
        # mass as low as it gets), not where the Gaussians' hull would, or it rocks at the start.
        vertices = np.concatenate([hull.vertices for hull in built.hulls])
        limit = config.object_settle_max_deg
        resting_up = settle(vertices, np.zeros(3), np.array([0.0, 0.0, 1.0]), max_turn_deg=limit)
        settled_by = angle_deg(resting_up, [0.0, 0.0, 1.0])
        normal.steps["up_and_floor"]["settled_on_hulls_deg"] = round(settled_by, 3)
        if settled_by >= 0.98 * limit:  # no rest within reach: keep the evidence's up, and say so
            normal.warnings.append(f"the object's convex parts do not rest within {limit:g} degrees of the up found: it may tip over "
                                   "in simulation (check the up direction, or raise object_resolution / max_hulls)")
            resting_up = np.array([0.0, 0.0, 1.0])
        turn = rotation_between(resting_up, np.array([0.0, 0.0, 1.0]))
        built.hulls = [Mesh(hull.vertices @ turn.T, hull.faces) for hull in built.hulls]
        built.scene = transform_scene(built.scene, turn, np.zeros(3), 1.0)
        body_turn = np.eye(4)
        body_turn[:3, :3] = turn
    # write_object_bundle stands the object at the origin: its centre of mass above (0, 0) and its
    # lowest hull point on z = 0. The source -> bundle transform gains that shift.
    lowest = min(float(hull.vertices[:, 2].min()) for hull in built.hulls)
    head = _manifest_head(scene, normal)
    # source -> normalised world -> body frame (centre of mass at 0) -> settled -> placed
    to_body = np.eye(4)
    to_body[:3, 3] = -built.position
    lift = np.eye(4)
    lift[2, 3] = -lowest
    head["transform"] = lift @ body_turn @ to_body @ normal.transform
    with stages("write"):
        write_object_bundle(out_dir, name, built.scene, built.hulls, built.mass, source=scene.metadata.source,
                            report={**built.report, "config": config.to_dict(), "stage_seconds": stages.seconds}, manifest_fields=head)
    return out_dir


def _write_cameras(folder: Path, world: GaussianScene) -> None:
    """The capture cameras, moved into the bundle world, as ``cameras.json`` (our sidecar format)."""
    if world.metadata.cameras is None:
        return
    from lyra_sim.io_utils import write_json

    write_json(folder / "cameras.json", world.metadata.cameras.to_sidecar("z-up"), indent=1)


def _write_object_files(folder: Path, obj: BuiltObject) -> None:
    from lyra_sim.scene.io import save_scene

    save_scene(obj.scene, folder / "splats" / f"{obj.name}.ply", cameras=False)
    write_obj(
        folder / "meshes" / f"{obj.name}_collision.obj",
        [(f"{obj.name}_hull{k}", hull) for k, hull in enumerate(obj.hulls)],
        header=f"lyra-sim object {obj.name}: {len(obj.hulls)} convex parts in the body frame (origin = centre of mass)",
    )
    (folder / "objects" / f"{obj.name}.urdf").write_text(object_urdf(obj.name, f"../meshes/{obj.name}_collision.obj", obj.mass, obj.inertia))


def _write_files(folder: Path, background, world, objects, scenery, slab, manifest: Manifest, config: BuildConfig) -> None:
    """Everything except manifest.json, into the temporary bundle ``folder``."""
    from lyra_sim.scene.io import save_scene

    for sub in ("splats", "meshes", "objects"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    save_scene(background, folder / "splats" / "background.ply", cameras=False)
    write_obj(folder / "meshes" / "background_collision.obj", [("background", scenery.collision)], header="lyra-sim scenery collision mesh (static, concave)")
    write_obj(folder / "meshes" / "background_visual.obj", [("background", scenery.visual)], header="lyra-sim scenery visual mesh (vertex colours)")
    (folder / "scene.urdf").write_text(static_scene_urdf("scene", "meshes/background_collision.obj", "meshes/background_visual.obj", slab))
    for obj in objects:
        _write_object_files(folder, obj)
    _write_cameras(folder, world)
    _write_preview(folder / "preview.png", world, manifest, config)


def _write_preview(path: Path, world: GaussianScene, manifest: Manifest, config: BuildConfig) -> None:
    """Render the whole scene (scenery and objects at their initial poses) from the most central
    capture camera when known, else from 40 degrees up."""
    from PIL import Image

    from lyra_sim.render.api import render

    if world.metadata.cameras is not None:  # the capture's own viewpoint frames what was photographed
        camera = world.metadata.cameras.viewpoint(config.preview_size, max(8, int(round(config.preview_size * 0.75))))
    else:
        camera = preview_camera(manifest.bounds.min, manifest.bounds.max, config.preview_size)
    with torch.no_grad():
        rgb = render(world, camera, modes=("rgb",), backend=config.render_backend, background=(1.0, 1.0, 1.0))["rgb"][0]
    Image.fromarray((rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)).save(path)

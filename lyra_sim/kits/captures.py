"""Realistic captures from the kits: trained splats (with floaters) and the cameras that took them.

Real users bring reconstructions, not surface samples: semi-transparent, overlapping Gaussians,
floaters near the cameras, no floor under a scanned object, and files in whatever frame the
capture tool used. This module makes such data from our ground-truth kits, small enough for
tests and benchmarks:

* :func:`object_kit`: one movable kit object (cube, blob or duck) resting on its stable face
  (dropped in PyBullet), with no floor at all, as a turntable or walk-around scan sees it;
* :func:`capture_cameras`: hand-held style cameras (a few degrees of random roll) around a
  kit: a hemisphere over a tabletop, a walk-through in a room, a walk-around an object;
* :func:`reconstruct_capture`: photos rendered from those cameras (no depth: real photos have
  none), reconstructed by our trainer from a structure-from-motion-like point cloud (sparse,
  noisy, with outliers), the cameras attached;
* :func:`disguise`: the capture written in a tool's convention (OpenCV -Y up, OpenGL +Y up,
  +Z up, or an arbitrary rotation), scene and cameras moved by one similarity, with the truth
  (up direction and metres per unit in the disguised frame) for scoring.

Training in a rotated, scaled frame is equivalent to training in the kit frame and moving the
result (the optimiser's learning rates follow the scene extent), so one reconstruction serves
every convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lyra_sim.kits.scene_kit import KitObject, SceneKit

CONVENTIONS = ("opencv", "opengl", "z-up", "arbitrary")
# Rotation kit world (+Z up) -> each convention's frame, and the frame name a reader reports.
# OpenCV/COLMAP worlds put up along -Y; real SuperSplat/INRIA files say nothing ("unknown").
_CONVENTION_ROTATIONS = {
    "opencv": (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), "unknown"),
    "opengl": (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]), "opengl"),
    "z-up": (np.eye(3), "z-up"),
}


def object_kit(kind: str = "duck", seed: int = 0, size: float | None = None) -> SceneKit:
    """A single movable kit object resting on its stable face on the (absent) ground z = 0.

    The object is dropped onto a plane in PyBullet with a random yaw and a small random tilt
    and left to settle (then brought to the exact equilibrium of its convex hull), so "upright"
    is a pose physics agrees with. There is no floor mesh:
    the photos show the object alone, as a scan does.
    """
    import pybullet

    from lyra_sim.kits.layouts import _movable_object

    rng = np.random.default_rng(seed)
    size = float(rng.uniform(0.15, 0.3)) if size is None else size
    obj = _movable_object("object_0", kind, rng, seed * 101 + 7, size)
    # A uniform solid of the object's shape: the centre of mass is its convex hull's centroid
    # (kit meshes are open surfaces, whose bounding-box centre is a poor stand-in).
    obj.mesh.apply_translation(-np.asarray(obj.mesh.convex_hull.center_mass))
    client = pybullet.connect(pybullet.DIRECT)
    try:
        import tempfile
        from pathlib import Path

        from lyra_sim.kits.scene_kit import write_textured_obj

        pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
        plane = pybullet.createCollisionShape(pybullet.GEOM_PLANE, physicsClientId=client)
        pybullet.createMultiBody(0, plane, physicsClientId=client)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "object.obj"
            write_textured_obj(obj.mesh, path, Path(folder) / "object.png")
            shape = pybullet.createCollisionShape(pybullet.GEOM_MESH, fileName=str(path), physicsClientId=client)
        tilt = rng.normal(0.0, 0.15, 2)
        start = pybullet.getQuaternionFromEuler([tilt[0], tilt[1], rng.uniform(0, 2 * np.pi)])
        body = pybullet.createMultiBody(obj.mass, shape, basePosition=[0, 0, size], baseOrientation=start, physicsClientId=client)
        pybullet.changeDynamics(body, -1, lateralFriction=0.9, rollingFriction=0.001, physicsClientId=client)
        for _ in range(1200):
            pybullet.stepSimulation(physicsClientId=client)
        _, orientation = pybullet.getBasePositionAndOrientation(body, physicsClientId=client)
    finally:
        pybullet.disconnect(client)
    obj.orientation_xyzw = np.asarray(orientation, dtype=np.float64)
    obj.position = np.zeros(3)
    # PyBullet may leave a round-bottomed object still rocking: finish at the equilibrium of its
    # convex hull (the centre of mass, the body origin, as low as it gets).
    from scipy.spatial.transform import Rotation

    from lyra_sim.converters.evidence import settle
    from lyra_sim.converters.normalise import rotation_between

    for _ in range(10):
        resting_up = settle(np.asarray(obj.world_mesh().vertices), np.zeros(3), np.array([0.0, 0.0, 1.0]), max_turn_deg=30.0)
        if resting_up[2] > np.cos(np.radians(0.01)):
            break
        turn = rotation_between(resting_up, np.array([0.0, 0.0, 1.0]))
        obj.orientation_xyzw = (Rotation.from_matrix(turn) * Rotation.from_quat(obj.orientation_xyzw)).as_quat()
    lowest = obj.world_mesh().bounds[0, 2]
    obj.position = np.array([0.0, 0.0, -lowest])
    height = float(obj.world_mesh().bounds[1, 2])
    return SceneKit(kind="object", seed=seed, objects=[obj], focus=np.array([0.0, 0.0, 0.5 * height]),
                    view_radius=2.2 * size, walk_bounds=(np.array([-size, -size]), np.array([size, size])))


def _rolled(eyes: np.ndarray, targets: np.ndarray, roll_deg: np.ndarray, **common):
    """Look-at cameras with a roll about each viewing axis (a hand-held camera is never level)."""
    import torch

    from lyra_sim.render.camera import Camera

    camera = Camera.look_at(eyes, targets, **common)
    viewmat = camera.viewmat.double()
    roll = np.radians(roll_deg)
    rotation = torch.zeros(len(eyes), 4, 4, dtype=torch.float64)
    rotation[:, 0, 0] = rotation[:, 1, 1] = torch.from_numpy(np.cos(roll))
    rotation[:, 0, 1] = torch.from_numpy(-np.sin(roll))
    rotation[:, 1, 0] = torch.from_numpy(np.sin(roll))
    rotation[:, 2, 2] = rotation[:, 3, 3] = 1.0
    return Camera(camera.K, rotation @ viewmat, camera.width, camera.height, camera.near, camera.far)


def capture_cameras(kit: SceneKit, count: int = 24, *, size: int = 32, seed: int = 0, roll_deg: float = 2.0):
    """Hand-held capture cameras around ``kit`` (a ``Camera`` batch, ``size`` x ``size`` pixels).

    Tabletop: a hemisphere (elevations 15-70 degrees) around the table; room: a walk-through
    at eye height; object: a walk-around at elevations 0-50 degrees (the underside is never
    seen). Each camera is rolled by a normal random angle of ``roll_deg`` standard deviation.
    """
    rng = np.random.default_rng(seed + 17)
    common = dict(fov_deg=55.0, width=size, height=size, near=0.01, far=100.0)
    focus = np.asarray(kit.focus, dtype=np.float64)
    if kit.kind == "room":
        base = kit.cameras("walkthrough", count, width=size, height=size, seed=seed)
        c2w = base.camera_to_world.double().numpy()
        eyes, targets = c2w[:, :3, 3], c2w[:, :3, 3] + c2w[:, :3, 2]
    else:
        if kit.kind == "object":
            elevation = np.radians(rng.uniform(0.0, 50.0, count))
        else:
            elevation = np.radians(15 + 55 * (np.arange(count) + 0.5) / count)
        azimuth = np.arange(count) * np.pi * (3.0 - np.sqrt(5.0)) + rng.uniform(0, 2 * np.pi)
        radius = kit.view_radius * rng.uniform(0.9, 1.1, count)
        eyes = focus + radius[:, None] * np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], 1)
        targets = np.tile(focus, (count, 1)) + rng.normal(0.0, 0.05 * kit.view_radius, (count, 3))
    return _rolled(eyes, targets, rng.normal(0.0, roll_deg, count), **common)


def structure_from_motion_points(photos, count: int, rng: np.random.Generator, noise: float = 0.01, outliers: float = 0.05):
    """What COLMAP triangulates from ``photos`` (a PhotoDataset with depth): ``count`` surface
    points [P, 3] with colours [P, 3], jittered by ``noise`` x their camera distance, and an
    ``outliers`` fraction spread through the cameras' viewing volume (mismatched features)."""
    from lyra_sim.reconstruct.trainer import backproject_depth

    points, colours = backproject_depth(photos, count, rng)
    positions = photos.cameras.position.double().numpy()
    distance = np.linalg.norm(points - positions.mean(0), axis=1, keepdims=True)
    points = points + rng.normal(0.0, noise, points.shape) * distance
    wrong = rng.random(len(points)) < outliers
    low, high = np.minimum(positions.min(0), points.min(0)), np.maximum(positions.max(0), points.max(0))
    points[wrong] = rng.uniform(low, high, (int(wrong.sum()), 3))
    return points.astype(np.float32), colours.astype(np.float32)


@dataclass
class Capture:
    """A reconstructed capture in the kit frame (+Z up, metres) with its cameras attached.

    Attributes:
        kit: the ground truth.
        scene: trained Gaussians; ``scene.metadata.cameras`` holds the capture cameras.
        photos: the posed photos it was trained on (``PhotoDataset``; no depth).
        psnr: held-out PSNR (dB) of the reconstruction.
    """

    kit: SceneKit
    scene: object
    photos: object
    psnr: float


def reconstruct_capture(
    kit: SceneKit,
    *,
    views: int = 24,
    size: int = 32,
    iterations: int = 500,
    gaussians: int = 4000,
    seed: int = 0,
    roll_deg: float = 2.0,
    progress: bool = False,
) -> Capture:
    """Photograph ``kit`` (rendered at 3x and box-filtered, no depth) and reconstruct it.

    Training starts from a structure-from-motion-like point cloud (``structure_from_motion_points``:
    sparse, noisy, with outliers), as a COLMAP capture does, so the result keeps real floaters.
    The returned scene is in the kit frame ("z-up", metric) with ``metadata.cameras`` set.
    """
    import dataclasses

    from lyra_sim.reconstruct.trainer import ReconstructionConfig, reconstruct
    from lyra_sim.scene.cameras import CaptureCameras

    cameras = capture_cameras(kit, views, size=size, seed=seed, roll_deg=roll_deg)
    photos = kit.render_photos(cameras.with_size(3 * size, 3 * size), progress=progress).resized(size, size)
    points, colours = structure_from_motion_points(photos, gaussians // 2, np.random.default_rng(seed))
    photos = dataclasses.replace(photos, depths=None, instances=None, points=points, point_colors=colours)
    config = ReconstructionConfig(
        iterations=iterations, init="points", init_count=gaussians, max_gaussians=gaussians, sh_degree=1,
        sh_degree_interval=max(1, iterations // 2), refine_start=max(1, iterations // 6), refine_every=max(1, iterations // 12),
        backend="cpu", render_threads=1, seed=seed,
    )
    result = reconstruct(photos, config, progress=progress)
    scene = result.scene
    scene.metadata.frame, scene.metadata.metric = "z-up", True
    scene.metadata.cameras = CaptureCameras.from_camera(cameras, names=tuple(photos.names), metres_per_unit=1.0, up=(0.0, 0.0, 1.0))
    scene.metadata.notes.append(f"reconstruction of the {kit.kind} kit (seed {kit.seed}) from {views} photos at {size} px")
    return Capture(kit=kit, scene=scene, photos=photos, psnr=float(result.test_metrics["psnr"]))


def disguise(scene, convention: str, seed: int = 0, *, cameras: bool = True, scale: float | None = None, metric_cameras: bool = False):
    """``scene`` (kit frame) as a capture tool writes it: returns (scene, truth).

    ``convention``: "opencv" (up -Y; the reader reports frame "unknown", as SuperSplat and
    INRIA files do), "opengl" (up +Y, frame "opengl"), "z-up" (frame "z-up") or "arbitrary"
    (a random rotation, frame "unknown"). A random yaw, offset and scale (0.2-5 units per
    metre unless ``scale``) are applied too; the result is never marked metric. ``cameras``
    keeps the capture cameras (moved with the scene); ``metric_cameras`` keeps their known
    metres per unit (our sidecar records it; other tools' files do not).

    ``truth``: {"up": the true up [3] in the disguised frame, "metres_per_unit": float}.
    """
    from dataclasses import replace

    from scipy.spatial.transform import Rotation

    from lyra_sim.scene.transforms import transform_scene

    rng = np.random.default_rng(seed)
    if convention == "arbitrary":
        rotation, frame = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix(), "unknown"
    elif convention in _CONVENTION_ROTATIONS:
        base, frame = _CONVENTION_ROTATIONS[convention]
        rotation = base @ Rotation.from_euler("z", rng.uniform(0, 2 * np.pi)).as_matrix()
    else:
        raise ValueError(f"convention {convention!r} is not valid; choose one of {', '.join(map(repr, CONVENTIONS))}")
    units_per_metre = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0)))) if scale is None else float(scale)
    source = scene.clone()
    if not cameras:
        source.metadata.cameras = None
    result = transform_scene(source, rotation, rng.uniform(-3, 3, 3) * units_per_metre, units_per_metre, frame=frame)
    result.metadata.metric = False
    result.metadata.extras.pop("transform", None)
    if result.metadata.cameras is not None:
        result.metadata.cameras = replace(result.metadata.cameras, up=None,
                                          metres_per_unit=result.metadata.cameras.metres_per_unit if metric_cameras else None)
    truth = {"up": (rotation @ np.array([0.0, 0.0, 1.0])).tolist(), "metres_per_unit": 1.0 / units_per_metre}
    return result, truth


__all__ = ["CONVENTIONS", "Capture", "KitObject", "capture_cameras", "disguise", "object_kit", "reconstruct_capture"]

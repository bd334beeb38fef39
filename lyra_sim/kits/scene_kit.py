"""``SceneKit``: a ground-truth scene made of textured meshes, with photos, splats and physics.

A kit is a list of ``KitObject`` (static scenery such as the floor and the table, and movable
objects), each a textured trimesh in its body frame plus a world pose. From it we get the
ground-truth mesh (evaluation), a surface-sampled ``GaussianScene`` with per-Gaussian labels
(exact-geometry splats), RGB-D photos rendered by PyBullet's TinyRenderer (posed-photo datasets
on CPU), and the same bodies loaded into a PyBullet client. Builders live in ``layouts.py``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lyra_sim.io_utils import atomic_path
from lyra_sim.rotations import quat_xyzw_to_matrix
from lyra_sim.typed import CameraTrajectory, PhotoLighting, check_choice


@dataclass
class KitObject:
    """One body of a kit.

    Attributes:
        name: unique name (also the PyBullet body's key in ``load_into_pybullet``).
        mesh: textured ``trimesh.Trimesh`` in the body frame (metres). For movable objects the
            origin is the centre of mass; static scenery is given in world coordinates.
        movable: True for dynamic bodies (mass > 0), False for static scenery.
        mass: kilograms (0 for static bodies).
        position: world position of the body frame [3].
        orientation_xyzw: world orientation of the body frame [4] (PyBullet order).
    """

    name: str
    mesh: object
    movable: bool = False
    mass: float = 0.0
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))
    orientation_xyzw: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 0.0, 1.0]))

    def pose_matrix(self) -> np.ndarray:  # [4, 4]
        """Body-to-world transform."""
        pose = np.eye(4)
        pose[:3, :3] = quat_xyzw_to_matrix(self.orientation_xyzw)
        pose[:3, 3] = self.position
        return pose

    def world_mesh(self):
        """The textured mesh moved to its world pose (a new Trimesh)."""
        mesh = self.mesh.copy()
        mesh.apply_transform(self.pose_matrix())
        return mesh


@dataclass
class SceneKit:
    """A seeded ground-truth scene (world: +Z up, metres; the floor at z = 0).

    Attributes:
        kind: "tabletop" or "room".
        seed: the layout seed.
        objects: static scenery first, then movable objects.
        focus: the point cameras look at by default [3].
        view_radius: a camera distance that frames the interesting part of the scene.
        walk_bounds: (min_xy, max_xy) of the free floor area for walk-through cameras.
    """

    kind: str
    seed: int
    objects: list[KitObject]
    focus: np.ndarray
    view_radius: float
    walk_bounds: tuple[np.ndarray, np.ndarray]
    _asset_dir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    # ----------------------------------------------------------------- ground truth
    @property
    def names(self) -> list[str]:
        return [obj.name for obj in self.objects]

    @property
    def movable_objects(self) -> list[KitObject]:
        return [obj for obj in self.objects if obj.movable]

    def object(self, name: str) -> KitObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"kit has no object {name!r}; objects: {', '.join(self.names)}")

    def mesh(self):
        """The ground-truth mesh of the whole scene in world coordinates (geometry and face colours).

        Faces are in ``objects`` order; ``face_labels()`` gives the object index of each face.
        """
        import trimesh

        parts = []
        for obj in self.objects:
            world = obj.world_mesh()
            colours = self._face_colours(world)
            parts.append(trimesh.Trimesh(world.vertices, world.faces, face_colors=colours, process=False))
        return trimesh.util.concatenate(parts)

    def face_labels(self) -> np.ndarray:  # [F] int32
        """Object index (into ``objects``) of every face of ``mesh()``."""
        return np.concatenate([np.full(len(obj.mesh.faces), i, dtype=np.int32) for i, obj in enumerate(self.objects)])

    @staticmethod
    def _face_colours(mesh) -> np.ndarray:  # [F, 4] uint8
        from lyra_sim.geometry.surface_sampling import surface_colours

        faces = len(mesh.faces)
        centre = np.full((faces, 3), 1.0 / 3.0)
        rgb = surface_colours(mesh, np.arange(faces), centre)
        return np.concatenate([np.round(rgb * 255), np.full((faces, 1), 255)], axis=1).astype(np.uint8)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """World axis-aligned bounds (min [3], max [3]) of all objects."""
        boxes = np.array([obj.world_mesh().bounds for obj in self.objects])
        return boxes[:, 0].min(0), boxes[:, 1].max(0)

    def to_gaussians(self, count: int = 50_000, seed: int = 0, sh_degree: int = 0):
        """Surface-sampled splats of the whole scene and the object index of each Gaussian.

        Gaussians are spread over objects in proportion to surface area (every object gets at
        least 64 so small objects stay visible). Returns ``(GaussianScene, labels [N] int32)``.
        """
        from lyra_sim.geometry.surface_sampling import sample_surface_gaussians
        from lyra_sim.scene.gaussian_scene import GaussianScene

        meshes = [obj.world_mesh() for obj in self.objects]
        areas = np.array([m.area for m in meshes])
        counts = np.maximum(np.round(count * areas / areas.sum()).astype(int), 64)
        scenes, labels = [], []
        for index, (mesh, n) in enumerate(zip(meshes, counts)):
            samples = sample_surface_gaussians(mesh, int(n), seed=seed * 1000 + index, sh_degree=sh_degree)
            scenes.append(samples.scene)
            labels.append(np.full(int(n), index, dtype=np.int32))
        scene = GaussianScene.concat(scenes)
        scene.metadata.notes = [f"surface-sampled ground truth of the {self.kind} kit (seed {self.seed})"]
        return scene, np.concatenate(labels)

    def object_masks(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Boolean masks [N] per movable object from per-Gaussian ``labels`` (as ``to_gaussians``)."""
        labels = np.asarray(labels)
        return {obj.name: labels == i for i, obj in enumerate(self.objects) if obj.movable}

    # ----------------------------------------------------------------- cameras
    def cameras(
        self,
        trajectory: CameraTrajectory = "orbit",
        count: int = 32,
        *,
        width: int = 128,
        height: int = 128,
        fov_deg: float = 60.0,
        radius: float | None = None,
        seed: int = 0,
        far: float = 100.0,
    ):
        """Cameras around the kit: "orbit" (one ring), "hemisphere" (Fibonacci spiral over
        elevations 15-70 degrees) or "walkthrough" (a loop at eye height inside the free area,
        looking across the scene). Returns a ``Camera`` batch of ``count`` views."""
        from lyra_sim.render.camera import Camera, orbit_cameras

        check_choice(trajectory, CameraTrajectory, "trajectory")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        radius = self.view_radius if radius is None else radius
        focus = np.asarray(self.focus, dtype=np.float64)
        rng = np.random.default_rng(seed)
        common = dict(fov_deg=fov_deg, width=width, height=height, near=0.01, far=far)
        if trajectory == "orbit":
            return orbit_cameras(focus, radius * np.cos(np.radians(35)), radius * np.sin(np.radians(35)), count,
                                 start_deg=float(rng.uniform(0, 360)), fov_deg=fov_deg, width=width,
                                 image_height=height, near=0.01, far=far)
        if trajectory == "hemisphere":
            golden = np.pi * (3.0 - np.sqrt(5.0))
            fraction = (np.arange(count) + 0.5) / count
            elevation = np.radians(15 + 55 * fraction)
            azimuth = np.arange(count) * golden + rng.uniform(0, 2 * np.pi)
            eyes = focus + radius * np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], 1)
            return Camera.look_at(eyes, np.tile(focus, (count, 1)), **common)
        low, high = self.walk_bounds
        centre, half = (low + high) / 2, (high - low) / 2
        angle = np.arange(count) * 2 * np.pi / count + rng.uniform(0, 2 * np.pi)
        eyes = np.stack([centre[0] + 0.8 * half[0] * np.cos(angle), centre[1] + 0.8 * half[1] * np.sin(angle), np.full(count, 1.5)], 1)
        # Look at the focus, swung sideways so the views also sweep past it.
        sideways = np.stack([-np.sin(angle), np.cos(angle), np.zeros(count)], 1) * 0.3 * half.min()
        targets = np.tile(focus, (count, 1)) + sideways * np.sin(3 * angle)[:, None]
        return Camera.look_at(eyes, targets, **common)

    # ----------------------------------------------------------------- pybullet
    def asset_dir(self) -> Path:
        """A private folder holding the kit's OBJ + PNG files (written on first use)."""
        if self._asset_dir is None:
            self._asset_dir = tempfile.TemporaryDirectory(prefix=f"lyra_kit_{self.kind}_{self.seed}_")
            root = Path(self._asset_dir.name)
            for obj in self.objects:
                write_textured_obj(obj.mesh, root / f"{obj.name}.obj", root / f"{obj.name}.png")
        return Path(self._asset_dir.name)

    def load_into_pybullet(self, client: int) -> dict[str, int]:
        """Create every object in the PyBullet ``client``; returns {object name: body id}.

        Static scenery gets a concave triangle-mesh collider; movable objects a convex hull of
        their mesh, their mass, and their body frame (centre of mass) at ``position``.
        """
        import pybullet

        root = self.asset_dir()
        bodies = {}
        for obj in self.objects:
            obj_path = str(root / f"{obj.name}.obj")
            visual = pybullet.createVisualShape(pybullet.GEOM_MESH, fileName=obj_path, rgbaColor=[1, 1, 1, 1], physicsClientId=client)
            flags = 0 if obj.movable else pybullet.GEOM_FORCE_CONCAVE_TRIMESH
            collision = pybullet.createCollisionShape(pybullet.GEOM_MESH, fileName=obj_path, flags=flags, physicsClientId=client)
            body = pybullet.createMultiBody(
                baseMass=obj.mass if obj.movable else 0.0,
                baseCollisionShapeIndex=collision,
                baseVisualShapeIndex=visual,
                basePosition=list(map(float, obj.position)),
                baseOrientation=list(map(float, obj.orientation_xyzw)),
                physicsClientId=client,
            )
            texture = pybullet.loadTexture(str(root / f"{obj.name}.png"), physicsClientId=client)
            pybullet.changeVisualShape(body, -1, textureUniqueId=texture, rgbaColor=[1, 1, 1, 1], physicsClientId=client)
            pybullet.changeDynamics(body, -1, lateralFriction=0.8, physicsClientId=client)
            bodies[obj.name] = body
        return bodies

    def render_photos(self, cameras, *, lighting: PhotoLighting = "flat", progress: bool = True):
        """RGB-D photos of the kit from ``cameras`` (a ``Camera`` batch) with PyBullet's TinyRenderer.

        ``lighting="flat"`` shows the texture colours unshaded (what the surface-sampled splats
        reproduce exactly); "shaded" adds PyBullet's diffuse and specular lighting and shadows.
        Returns a ``PhotoDataset`` with RGB [C,H,W,3] uint8, metric z-depth [C,H,W,1] (0 where
        nothing is hit) and the object index per pixel [C,H,W,1] (-1 for empty space).
        """
        import pybullet
        from lyra_sim.io_utils import progress_bar

        from lyra_sim.photos import PhotoDataset

        check_choice(lighting, PhotoLighting, "lighting")
        client = pybullet.connect(pybullet.DIRECT)
        try:
            bodies = self.load_into_pybullet(client)
            body_to_label = {body: index for index, body in enumerate(bodies.values())}
            count, height, width = len(cameras), cameras.height, cameras.width
            images = np.zeros((count, height, width, 3), dtype=np.uint8)
            depths = np.zeros((count, height, width, 1), dtype=np.float32)
            instances = np.full((count, height, width, 1), -1, dtype=np.int32)
            light = dict(lightAmbientCoeff=1.0, lightDiffuseCoeff=0.0, lightSpecularCoeff=0.0, shadow=0)
            if lighting == "shaded":
                light = dict(lightAmbientCoeff=0.55, lightDiffuseCoeff=0.45, lightSpecularCoeff=0.05, shadow=1,
                             lightDirection=[0.4, -0.3, 1.0])
            for i in progress_bar(range(count), desc=f"photos ({self.kind})", unit="view", enabled=progress):
                view, projection = cameras.to_tiny_renderer(i)
                _, _, rgba, depth_buffer, segmentation = pybullet.getCameraImage(
                    width, height, viewMatrix=view, projectionMatrix=projection,
                    renderer=pybullet.ER_TINY_RENDERER, physicsClientId=client, **light,
                )
                rgba = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)
                images[i] = rgba[..., :3]
                depths[i, ..., 0] = depth_from_buffer(np.asarray(depth_buffer).reshape(height, width), cameras.near, cameras.far)
                segmentation = np.asarray(segmentation).reshape(height, width)
                labels = np.full(segmentation.shape, -1, dtype=np.int32)
                for body, label in body_to_label.items():
                    labels[segmentation == body] = label
                instances[i, ..., 0] = labels
        finally:
            pybullet.disconnect(client)
        return PhotoDataset(
            images=images, cameras=cameras, depths=depths, instances=instances,
            names=[f"{self.kind}_{i:04d}" for i in range(count)],
            # TinyRenderer clears to white: the colour reconstruction must composite over.
            # The kit world is +Z up in metres: reconstructions from these photos inherit both facts.
            metadata={"source": f"lyra-sim {self.kind} kit seed {self.seed}", "lighting": lighting,
                      "labels": self.names, "background": [1.0, 1.0, 1.0], "frame": "z-up", "metric": True},
        )

    # ----------------------------------------------------------------- export
    def export(self, directory) -> Path:
        """Write the kit as files (atomically): ``ground_truth.obj`` (whole scene, world frame),
        ``objects/<name>.obj`` + ``.png`` (textured, body frame) and ``kit.json`` (poses, flags)."""
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            (tmp / "objects").mkdir(parents=True)
            self.mesh().export(tmp / "ground_truth.obj")
            entries = []
            for obj in self.objects:
                write_textured_obj(obj.mesh, tmp / "objects" / f"{obj.name}.obj", tmp / "objects" / f"{obj.name}.png")
                entries.append({
                    "name": obj.name, "movable": obj.movable, "mass": obj.mass,
                    "mesh": f"objects/{obj.name}.obj", "texture": f"objects/{obj.name}.png",
                    "position": [float(v) for v in obj.position],
                    "orientation_xyzw": [float(v) for v in obj.orientation_xyzw],
                })
            low, high = self.bounds()
            manifest = {"kind": self.kind, "seed": self.seed, "units": "m", "up_axis": "+Z",
                        "bounds": {"min": low.tolist(), "max": high.tolist()}, "objects": entries}
            (tmp / "kit.json").write_text(json.dumps(manifest, indent=2))
        return directory


def depth_from_buffer(depth_buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """Camera-space z (metres) from an OpenGL depth buffer in [0, 1]; 0 where nothing was drawn."""
    depth_buffer = depth_buffer.astype(np.float64)
    z = far * near / (far - (far - near) * depth_buffer)
    return np.where(depth_buffer >= 1.0 - 1e-7, 0.0, z).astype(np.float32)


def write_textured_obj(mesh, obj_path: Path, png_path: Path) -> None:
    """Write a textured trimesh as an OBJ (v, vt, f) plus its texture PNG, both atomically.

    The OBJ names no material: PyBullet gets the texture through ``loadTexture``, and the
    file stays a plain mesh for any other tool.
    """
    from PIL import Image

    from lyra_sim.geometry.surface_sampling import mesh_texture_image

    image = mesh_texture_image(mesh)
    uv = np.asarray(mesh.visual.uv, dtype=np.float64)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces) + 1
    lines = [f"# lyra-sim kit mesh: {len(vertices)} vertices, {len(faces)} faces\no {obj_path.stem}"]
    lines += [f"v {x:.7f} {y:.7f} {z:.7f}" for x, y, z in vertices]
    lines += [f"vt {u:.7f} {v:.7f}" for u, v in uv]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in faces]
    with atomic_path(obj_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(png_path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")

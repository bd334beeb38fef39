"""``LyraSimEnv``: the Gymnasium base environment on a SimBundle.

One PyBullet DIRECT client per env; the bundle's scenery and objects are loaded into it, a task
(``lyra_sim.envs.tasks``) adds its robot and markers through lifecycle hooks, and observations
are splat renders (``lyra_sim.render.render``) of the bundle's Gaussians with object Gaussians
following their bodies every step. Robots and other mesh-only bodies enter the picture either as
surface-sampled Gaussians moved with their links (``robot_appearance="splats"``) or as a
TinyRenderer image composited by depth (``"mesh"``); ``renderer="tinyrenderer"`` renders the
whole observation with TinyRenderer (the baseline the benchmark compares against).

A step is split in two halves, :meth:`LyraSimEnv._advance` (physics) and
:meth:`LyraSimEnv._finish_step` (observation from a render, rewards), so that
``lyra_sim.envs.vector`` can render the cameras of many envs in one batched call in between.

This module may import gymnasium, numpy, torch, pybullet and lyra_sim (scene, render, sim).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gymnasium
import numpy as np
import pybullet
import torch
from gymnasium import spaces

from lyra_sim.envs import constants
from lyra_sim.errors import BundleError
from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.sim.compositor import ComposedScene, RigidPart, composite_by_depth, tinyrenderer_images
from lyra_sim.sim.robot_splats import body_link_splats, link_frame_poses
from lyra_sim.typed import EnvRenderer, ObservationMode, RenderBackend, RobotAppearance, check_choice

# The bundle lookup and the per-process cache live in lyra_sim.bundle; tasks and tests import them from here too.
from lyra_sim.bundle.lookup import load_bundle_assets, resolve_bundle_path  # noqa: E402,F401


@dataclass(frozen=True)
class CameraMount:
    """Where a camera sits: fixed in the world, or mounted on a link of the robot.

    Attributes:
        position: camera centre, in world coordinates (fixed) or in the link's URDF frame (mounted).
        target: the point looked at, in the same frame as ``position``.
        up: the image's up direction, in the same frame.
        link: None for a fixed camera; otherwise a link name of the robot, or "base".
        fov_deg: vertical field of view.
        far: far clip plane in metres (None: from the bundle's size).
    """

    position: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    link: str | None = None
    fov_deg: float = 60.0
    far: float | None = None


@dataclass
class MeshBody:
    """A PyBullet body with no Gaussians in the bundle (the robot, a goal marker)."""

    name: str
    body_id: int
    label: int
    link_indices: list[int] = dataclasses.field(default_factory=list)  # links turned into splat parts


class LyraSimEnv(gymnasium.Env):
    """Base class of the lyra-sim tasks; not registered itself. See a task's docstring for its tables.

    Common arguments (every task accepts them):

    | Argument | Default | Meaning |
    |---|---|---|
    | `bundle` | task's packaged bundle | SimBundle directory, or a packaged bundle name |
    | `render_mode` | None | None or "rgb_array" (a third-person splat view) |
    | `width`, `height` | 64 | observation image size |
    | `observation_modes` | ("rgb", "depth") | image keys: "rgb", "depth", "instance" |
    | `camera` | task's onboard/fixed camera | a `CameraMount` |
    | `robot_appearance` | "splats" | "splats" (link Gaussians) or "mesh" (TinyRenderer composite) |
    | `renderer` | "splat" | "splat" or "tinyrenderer" (whole observation from TinyRenderer) |
    | `physics_hz` | task's (120 or 60) | physics rate; `action_repeat` physics steps per `step()` (control at 30 Hz) |
    | `render_backend` | "auto" | splat renderer backend ("auto", "cpu", "gsplat", "reference") |
    | `render_width`, `render_height` | 256 | size of the `render()` image |
    | `sh_degree` | None | SH degree used for rendering (None: all the bundle has) |
    | `background_color` | (0, 0, 0) | colour where no Gaussian covers a pixel |
    | `objects` | () | object bundles to add: `(folder, (x, y[, z])[, yaw])` or `ObjectPlacement` (see `lyra-sim compose`) |
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    default_bundle = constants.NAVIGATE_DEFAULT_BUNDLE
    default_physics_hz = constants.DEFAULT_PHYSICS_HZ
    default_action_repeat = constants.DEFAULT_ACTION_REPEAT

    def __init__(
        self,
        bundle: str | Path | None = None,
        *,
        render_mode: str | None = None,
        width: int = constants.DEFAULT_OBSERVATION_SIZE,
        height: int = constants.DEFAULT_OBSERVATION_SIZE,
        observation_modes: Sequence[ObservationMode] = ("rgb", "depth"),
        camera: CameraMount | None = None,
        robot_appearance: RobotAppearance = "splats",
        renderer: EnvRenderer = "splat",
        physics_hz: float | None = None,
        action_repeat: int | None = None,
        render_backend: RenderBackend = "auto",
        render_width: int = constants.DEFAULT_RENDER_SIZE,
        render_height: int = constants.DEFAULT_RENDER_SIZE,
        sh_degree: int | None = None,
        background_color: Sequence[float] = (0.0, 0.0, 0.0),
        objects: Sequence = (),
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r} is not valid; choose None or one of {self.metadata['render_modes']}")
        for mode in observation_modes:
            check_choice(mode, ObservationMode, "observation_modes")
        if not observation_modes:
            raise ValueError("observation_modes must name at least one of 'rgb', 'depth', 'instance'")
        check_choice(robot_appearance, RobotAppearance, "robot_appearance")
        check_choice(renderer, EnvRenderer, "renderer")
        check_choice(render_backend, RenderBackend, "render_backend")
        if width < 8 or height < 8:
            raise ValueError(f"observation size must be at least 8x8, got {width}x{height}")
        physics_hz = self.default_physics_hz if physics_hz is None else physics_hz
        action_repeat = self.default_action_repeat if action_repeat is None else action_repeat
        if physics_hz <= 0 or action_repeat < 1:
            raise ValueError(f"need physics_hz > 0 and action_repeat >= 1, got {physics_hz} and {action_repeat}")
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)
        self.render_width, self.render_height = int(render_width), int(render_height)
        self.observation_modes = tuple(observation_modes)
        self.robot_appearance, self.renderer, self.render_backend = robot_appearance, renderer, render_backend
        self.physics_hz, self.action_repeat = float(physics_hz), int(action_repeat)
        self.sh_degree = sh_degree
        self.background_color = torch.tensor(background_color, dtype=torch.float32)
        control_hz = self.physics_hz / self.action_repeat
        if round(control_hz) != self.metadata["render_fps"]:
            self.metadata = {**self.metadata, "render_fps": int(round(control_hz))}

        self.bundle_path = resolve_bundle_path(bundle, self.default_bundle)
        if objects:  # the bundle with the object bundles placed in it (lyra_sim.converters.compose)
            from lyra_sim.converters.compose import composed_bundle

            self.bundle_path = composed_bundle(self.bundle_path, objects).resolve()
        self.bundle, background, object_scenes = load_bundle_assets(self.bundle_path)
        self.manifest = self.bundle.manifest  # typed: lyra_sim.bundle.Manifest
        self.floor_height = self.manifest.floor_height
        self.bounds_min, self.bounds_max = self.bundle.bounds
        self.scene_diagonal = float(np.linalg.norm(self.bounds_max - self.bounds_min))

        self.client_id = -1
        self._connect()
        from lyra_sim.sim.world import load_into_pybullet

        body_ids = load_into_pybullet(self.bundle, self.client_id)
        self.background_id = body_ids["background"]
        self.object_names = [obj.name for obj in self.bundle.objects]
        self.object_ids = [body_ids[name] for name in self.object_names]
        self.object_initial_poses = [
            (tuple(obj.position.tolist()), tuple(obj.orientation_xyzw.tolist()))
            for obj in self.bundle.objects
        ]

        self.instance_labels: dict[str, int] = {"background": constants.BACKGROUND_LABEL}
        for index, name in enumerate(self.object_names):
            self.instance_labels[name] = index + 1
        self.mesh_bodies: list[MeshBody] = []
        self._load_task()  # the task adds its robot and markers with add_mesh_body()

        parts = [RigidPart(f"object:{name}", scene, self.instance_labels[name]) for name, scene in zip(self.object_names, object_scenes)]
        self._part_sources: list[tuple[int, int]] = [(body_id, -1) for body_id in self.object_ids]
        if self.robot_appearance == "splats":
            for mesh_body in self.mesh_bodies:
                for link in body_link_splats(self.client_id, mesh_body.body_id, spacing=constants.ROBOT_SPLAT_SPACING):
                    parts.append(RigidPart(f"{mesh_body.name}:{link.link_index}", link.scene, mesh_body.label))
                    self._part_sources.append((mesh_body.body_id, link.link_index))
                    mesh_body.link_indices.append(link.link_index)
        self.composed = ComposedScene(background, parts, static_label=constants.BACKGROUND_LABEL)
        self._mesh_body_ids = np.array([b.body_id for b in self.mesh_bodies], dtype=np.int32)
        self._label_of_body = {self.background_id: constants.BACKGROUND_LABEL}
        self._label_of_body.update({body_id: i + 1 for i, body_id in enumerate(self.object_ids)})
        self._label_of_body.update({b.body_id: b.label for b in self.mesh_bodies})
        self.camera_mount = camera if camera is not None else self._default_camera()
        self.camera_far = self.camera_mount.far or max(4.0, 2.0 * self.scene_diagonal)
        self._link_index_by_name = self._robot_link_names()

        self.observation_space = self._make_observation_space()
        self.action_space = self._make_action_space()
        self.elapsed_steps = 0
        self._mesh_body_poses = [
            pybullet.getBasePositionAndOrientation(body.body_id, physicsClientId=self.client_id) for body in self.mesh_bodies
        ]

    # ================================================================= task hooks
    def _load_task(self) -> None:
        """Load the robot and markers (once). Call :meth:`add_mesh_body` for each; set ``self.robot_id``."""
        raise NotImplementedError

    def _default_camera(self) -> CameraMount:
        """The observation camera used when the caller gives none."""
        raise NotImplementedError

    def _third_person_camera(self) -> Camera:
        """Camera of ``render()``: a view of the whole bundle from above a corner."""
        centre = 0.5 * (self.bounds_min + self.bounds_max)
        extent = self.bounds_max - self.bounds_min
        eye = centre + np.array([-0.55 * extent[0], -0.75 * extent[1], 0.9 * max(extent[2], 0.5 * extent[:2].max())])
        return Camera.look_at(eye, centre, fov_deg=60.0, width=self.render_width, height=self.render_height,
                              near=constants.CAMERA_NEAR, far=max(4.0, 3.0 * self.scene_diagonal))

    def _make_action_space(self) -> spaces.Box:
        raise NotImplementedError

    def _state_size(self) -> int:
        """Length of the ``state`` (proprioception) vector."""
        raise NotImplementedError

    def _state(self) -> np.ndarray:
        """The proprioception vector (float32)."""
        raise NotImplementedError

    def _reset_task(self, options: dict | None) -> None:
        """Randomise the episode with ``self.np_random`` (robot pose, goal, target)."""
        raise NotImplementedError

    def _apply_action(self, action: np.ndarray) -> None:
        """Turn the (validated) action into motor commands, once per ``step``."""
        raise NotImplementedError

    def _before_physics_step(self) -> None:
        """Called before each of the ``action_repeat`` physics steps (velocity controllers)."""

    def _reward_terms(self) -> dict[str, float]:
        """Named reward terms of the step just taken; the reward is their sum."""
        raise NotImplementedError

    def _is_success(self) -> bool:
        raise NotImplementedError

    def _is_terminated(self) -> bool:
        """Whether the episode ended (success, or a failure the task cannot recover from)."""
        return self._is_success()

    def _task_info(self) -> dict[str, Any]:
        """Extra entries for ``info`` (distances, collisions)."""
        return {}

    # ================================================================= helpers for tasks
    def add_mesh_body(self, name: str, body_id: int) -> MeshBody:
        """Register a body that the bundle has no Gaussians for; it gets the next instance label."""
        label = max(self.instance_labels.values()) + 1
        self.instance_labels[name] = label
        mesh_body = MeshBody(name=name, body_id=body_id, label=label)
        self.mesh_bodies.append(mesh_body)
        return mesh_body

    def _robot_link_names(self) -> dict[str, int]:
        robot = getattr(self, "robot_id", None)
        if robot is None:
            return {}
        names = {"base": -1}
        for joint in range(pybullet.getNumJoints(robot, physicsClientId=self.client_id)):
            names[pybullet.getJointInfo(robot, joint, physicsClientId=self.client_id)[12].decode()] = joint
        return names

    def _connect(self) -> None:
        self.client_id = pybullet.connect(pybullet.DIRECT)
        pybullet.setGravity(0, 0, constants.GRAVITY, physicsClientId=self.client_id)
        pybullet.setTimeStep(1.0 / self.physics_hz, physicsClientId=self.client_id)
        # Determinism: a fixed solver iteration count and no warm start carried across resets.
        pybullet.setPhysicsEngineParameter(numSolverIterations=50, deterministicOverlappingPairs=1, physicsClientId=self.client_id)

    # ================================================================= spaces
    def _make_observation_space(self) -> spaces.Dict:
        image = (self.height, self.width)
        entries: dict[str, spaces.Space] = {}
        if "rgb" in self.observation_modes:
            entries["rgb"] = spaces.Box(0, 255, image + (3,), dtype=np.uint8)
        if "depth" in self.observation_modes:
            entries["depth"] = spaces.Box(0.0, self.camera_far, image + (1,), dtype=np.float32)
        if "instance" in self.observation_modes:
            entries["instance"] = spaces.Box(-1, max(self.instance_labels.values()), image + (1,), dtype=np.int32)
        entries["state"] = spaces.Box(-np.inf, np.inf, (self._state_size(),), dtype=np.float32)
        return spaces.Dict(entries)

    # ================================================================= gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._reset_physics(seed, options)
        return self._finish_reset(self._render_observation())

    def step(self, action):
        self._advance(action)
        return self._finish_step(self._render_observation())

    def render(self):
        """The third-person splat view (uint8 [H, W, 3]) when ``render_mode == "rgb_array"``."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to make()")
            return None
        camera = self._third_person_camera()
        if self.renderer == "tinyrenderer":
            return tinyrenderer_images(self.client_id, camera, segmentation=False)["rgb"]
        modes = ("rgb", "alpha", "depth") if self.robot_appearance == "mesh" else ("rgb",)
        rendered = self._splat_render(camera, modes)
        rgb = self._composite_mesh_bodies(rendered, camera, 0)["rgb"] if self.robot_appearance == "mesh" else rendered["rgb"][0]
        return _to_uint8(rgb)

    def close(self) -> None:
        if self.client_id >= 0:
            if pybullet.isConnected(self.client_id):
                pybullet.disconnect(self.client_id)
            self.client_id = -1

    def __del__(self):  # an env dropped without close() must not leak its physics server
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn pybullet down
            pass

    # ================================================================= the two halves of a step
    def _reset_physics(self, seed: int | None, options: dict | None) -> None:
        super().reset(seed=seed)
        # Bullet keeps contact manifolds (and warm-starts its solver from them) while bodies
        # overlap. Parking every movable body apart and running collision detection drops them,
        # so an episode depends on its seed only, not on the episode before.
        movable = self.object_ids + [body.body_id for body in self.mesh_bodies]
        for index, body_id in enumerate(movable):
            pybullet.resetBasePositionAndOrientation(body_id, [0, 0, -100.0 - 10.0 * index], [0, 0, 0, 1], physicsClientId=self.client_id)
        pybullet.performCollisionDetection(physicsClientId=self.client_id)
        for body, (position, orientation) in zip(self.mesh_bodies, self._mesh_body_poses):
            pybullet.resetBasePositionAndOrientation(body.body_id, position, orientation, physicsClientId=self.client_id)
            pybullet.resetBaseVelocity(body.body_id, [0, 0, 0], [0, 0, 0], physicsClientId=self.client_id)
        for body_id, (position, orientation) in zip(self.object_ids, self.object_initial_poses):
            pybullet.resetBasePositionAndOrientation(body_id, position, orientation, physicsClientId=self.client_id)
            pybullet.resetBaseVelocity(body_id, [0, 0, 0], [0, 0, 0], physicsClientId=self.client_id)
        self._reset_task(options)
        self.elapsed_steps = 0
        self.sync_splats()

    def _finish_reset(self, rendered: dict[str, torch.Tensor] | None, index: int = 0):
        observation = self._observation(rendered, index)
        info = {"success": bool(self._is_success()), **self._task_info()}
        return observation, info

    def _advance(self, action) -> None:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {list(self.action_space.shape)}, got {list(action.shape)}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN or Inf: {action.tolist()}")
        self._apply_action(np.clip(action, self.action_space.low, self.action_space.high))
        for _ in range(self.action_repeat):
            self._before_physics_step()
            pybullet.stepSimulation(physicsClientId=self.client_id)
        self.elapsed_steps += 1
        self.sync_splats()

    def _finish_step(self, rendered: dict[str, torch.Tensor] | None, index: int = 0):
        observation = self._observation(rendered, index)
        terms = self._reward_terms()
        reward = float(sum(terms.values()))
        info = {f"reward_{name}": float(value) for name, value in terms.items()}
        info.update({"success": bool(self._is_success()), **self._task_info()})
        return observation, reward, bool(self._is_terminated()), False, info

    # ================================================================= rendering
    def sync_splats(self) -> None:
        """Move the Gaussians of every object and splatted link to its body's current pose."""
        if not self._part_sources:
            return
        positions, orientations = [], []
        by_body: dict[int, list[int]] = {}
        for body_id, link_index in self._part_sources:
            by_body.setdefault(body_id, []).append(link_index)
        pose_of = {}
        for body_id, links in by_body.items():
            p, o = link_frame_poses(self.client_id, body_id, links)
            pose_of.update({(body_id, link): (p[i], o[i]) for i, link in enumerate(links)})
        for source in self._part_sources:
            positions.append(pose_of[source][0])
            orientations.append(pose_of[source][1])
        self.composed.set_poses(np.stack(positions), np.stack(orientations))

    def observation_camera(self) -> Camera:
        """The observation camera at the current state (one camera, ``width`` x ``height``)."""
        mount = self.camera_mount
        position, target, up = (np.asarray(v, dtype=np.float64) for v in (mount.position, mount.target, mount.up))
        if mount.link is not None:
            link_index = self._link_index_by_name.get(mount.link)
            if link_index is None:
                raise ValueError(f"camera link {mount.link!r} is not a link of the robot; links: {sorted(self._link_index_by_name)}")
            link_position, link_orientation = link_frame_poses(self.client_id, self.robot_id, [link_index])
            rotation = np.asarray(pybullet.getMatrixFromQuaternion(link_orientation[0])).reshape(3, 3)
            position = rotation @ position + link_position[0]
            target = rotation @ target + link_position[0]
            up = rotation @ up
        return Camera.look_at(position, target, up, fov_deg=mount.fov_deg, width=self.width, height=self.height,
                              near=constants.CAMERA_NEAR, far=self.camera_far)

    def splat_modes(self) -> tuple[str, ...]:
        """Render modes the observation needs from the splat renderer."""
        modes = ["rgb"]
        if "depth" in self.observation_modes or self.robot_appearance == "mesh":
            modes.append("depth")
        if self.robot_appearance == "mesh":
            modes.append("alpha")
        if "instance" in self.observation_modes:
            modes.append("instance")
        return tuple(modes)

    def _splat_render(self, camera: Camera, modes: Sequence[str]) -> dict[str, torch.Tensor]:
        from lyra_sim.render.api import render

        labels = self.composed.labels if "instance" in modes else None
        return render(self.composed.scene, camera, modes=tuple(modes), backend=self.render_backend,
                      background=self.background_color, sh_degree=self.sh_degree, labels=labels)

    def _render_observation(self) -> dict[str, torch.Tensor] | None:
        if self.renderer == "tinyrenderer":
            return None
        return self._splat_render(self.observation_camera(), self.splat_modes())

    def _composite_mesh_bodies(self, rendered: dict[str, torch.Tensor], camera: Camera, index: int) -> dict[str, torch.Tensor]:
        """Per-pixel depth composite of the TinyRenderer image of the mesh bodies over splat render ``index``."""
        images = tinyrenderer_images(self.client_id, camera, segmentation=True)
        mask = torch.from_numpy(np.isin(images["segmentation"], self._mesh_body_ids))[..., None]
        rgb, depth, mesh_wins = composite_by_depth(
            rendered["rgb"][index], rendered["depth"][index], rendered["alpha"][index],
            torch.from_numpy(images["rgb"]).float() / 255.0, torch.from_numpy(images["depth"])[..., None], mask,
        )
        result = {"rgb": rgb, "depth": depth}
        if "instance" in rendered:
            labels = torch.from_numpy(self._segmentation_labels(images["segmentation"]))[..., None]
            result["instance"] = torch.where(mesh_wins, labels, rendered["instance"][index])
        return result

    def _segmentation_labels(self, segmentation: np.ndarray) -> np.ndarray:  # [H, W] -> [H, W] int32
        body_ids = np.array(list(self._label_of_body), dtype=np.int32)
        labels = np.array(list(self._label_of_body.values()), dtype=np.int32)
        lookup = np.full(max(int(body_ids.max()), int(segmentation.max()), 0) + 2, -1, dtype=np.int32)
        lookup[body_ids] = labels
        return lookup[np.where(segmentation < 0, -1, segmentation)]

    def _observation(self, rendered: dict[str, torch.Tensor] | None, index: int = 0) -> dict[str, np.ndarray]:
        """The observation dict from render ``index`` of ``rendered`` (None: TinyRenderer only)."""
        if rendered is None:
            images = tinyrenderer_images(self.client_id, self.observation_camera(), segmentation="instance" in self.observation_modes)
            rgb, depth = images["rgb"], images["depth"][..., None]
            instance = self._segmentation_labels(images["segmentation"])[..., None] if "segmentation" in images else None
        else:
            if self.robot_appearance == "mesh" and len(self.mesh_bodies):
                rendered = self._composite_mesh_bodies(rendered, self.observation_camera(), index)
                index_of = lambda key: rendered[key]  # noqa: E731 - already one camera
            else:
                index_of = lambda key: rendered[key][index]  # noqa: E731
            rgb = _to_uint8(index_of("rgb"))
            depth = index_of("depth").numpy() if "depth" in rendered else None
            instance = index_of("instance").numpy().astype(np.int32) if "instance" in rendered else None
        observation: dict[str, np.ndarray] = {}
        if "rgb" in self.observation_modes:
            observation["rgb"] = rgb
        if "depth" in self.observation_modes:
            observation["depth"] = np.clip(np.nan_to_num(depth, nan=0.0), 0.0, self.camera_far).astype(np.float32)
        if "instance" in self.observation_modes:
            observation["instance"] = instance
        observation["state"] = self._state().astype(np.float32)
        return observation


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:  # [H, W, 3] float in [0, 1] -> uint8
    return (rgb.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).numpy()


# The rotation helpers live in lyra_sim.rotations; tasks import yaw_of from here.
from lyra_sim.rotations import yaw_of  # noqa: E402,F401

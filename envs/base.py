"""``LyraSimEnv``: the Gymnasium base environment on a SimBundle.

One PyBullet DIRECT client per env; the bundle's scenery and objects are loaded into it, a task
(``lyra_sim.envs.tasks``) adds its robot and markers through lifecycle hooks, and observations
are splat renders (``lyra_sim.render.render``) of the bundle's Gaussians with object Gaussians
following their bodies every step. Robots and other mesh-only bodies enter the picture either as
surface-sampled Gaussians moved with their links (``robot_appearance="splats"``) or as a
TinyRenderer image composited by depth (``"mesh"``); ``renderer="tinyrenderer"`` renders the
whole observation with TinyRenderer (the baseline the benchmark compares against).

What the camera sees (composed scene, pose sync, camera mount, rendering, compositing, the
observation dict) is ``lyra_sim.envs.observation.ObservationPipeline``; this module keeps the
bundle lookup, PyBullet set-up, task hooks and the Gymnasium lifecycle. A step has two public
halves, :meth:`LyraSimEnv.step_physics` (action, physics, pose sync) and
:meth:`LyraSimEnv.step_observe` (observation from a render, rewards) — likewise
``reset_physics`` / ``reset_observe`` — so that ``lyra_sim.envs.vector`` renders the cameras of
many envs in one batched call in between.

This module may import gymnasium, numpy, torch, pybullet and lyra_sim (scene, render, sim).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any, Sequence

import gymnasium
import numpy as np
import pybullet
import torch
from gymnasium import spaces

# The bundle lookup and the process cache live in lyra_sim.bundle, the rotation helpers in
# lyra_sim.rotations; tasks and earlier callers import resolve_bundle_path and yaw_of from here.
from lyra_sim.bundle.lookup import load_bundle_assets, resolve_bundle_path  # noqa: F401
from lyra_sim.envs import constants
from lyra_sim.envs.observation import CameraMount, MeshBody, ObservationPipeline, RenderSettings
from lyra_sim.render.camera import Camera
from lyra_sim.rotations import yaw_of  # noqa: F401
from lyra_sim.sim.kinematic import KinematicTracks
from lyra_sim.sim.world import reset_body_frame_pose
from lyra_sim.typed import EnvRenderer, ObservationMode, RenderBackend, RobotAppearance, TrackEnd, check_choice


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
    | `sh_degree` | "auto" | SH degree used for rendering: 0-3, None (all the bundle has) or "auto" (0 for observations of at most 128 px a side, all for `render()`; measured >= 40 dB against the full SH on a trained SH-3 scene) |
    | `background_color` | (0, 0, 0) | colour where no Gaussian covers a pixel |
    | `objects` | () | object bundles to add: `(folder, (x, y[, z])[, yaw])` or `ObjectPlacement` (see `lyra-sim compose`) |
    | `num_threads` | None | CPU renderer threads of this process (`lyra_sim.set_num_threads`); None: all cores, or 1 inside a subprocess worker (`AsyncVectorEnv`) |
    | `animate` | True | dynamic bundles (built from a sequence): the moving clusters are kinematic bodies following their tracks at the env's time; False leaves them at their first-frame pose as ordinary objects |
    | `track_end` | "loop" | after a track's last stored step: "loop" (wrap around) or "stop" (hold the last pose) |

    Env time (``track_time``, seconds) starts at ``reset(options={"track_time": t})`` (default 0,
    or what the task picks) and advances by one physics step at a time; the kinematic bodies are
    put at their track pose (interpolated between stored steps) before every physics step, so the
    observation after a step shows the scene at the env's time.
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
        sh_degree: int | str | None = "auto",
        background_color: Sequence[float] = (0.0, 0.0, 0.0),
        objects: Sequence = (),
        num_threads: int | None = None,
        animate: bool = True,
        track_end: TrackEnd = "loop",
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
        check_choice(track_end, TrackEnd, "track_end")
        if not (sh_degree is None or sh_degree == "auto" or (isinstance(sh_degree, int) and 0 <= sh_degree <= 3)):
            raise ValueError(f"sh_degree must be 0-3, None or 'auto', got {sh_degree!r}")
        if width < 8 or height < 8:
            raise ValueError(f"observation size must be at least 8x8, got {width}x{height}")
        physics_hz = self.default_physics_hz if physics_hz is None else physics_hz
        action_repeat = self.default_action_repeat if action_repeat is None else action_repeat
        if physics_hz <= 0 or action_repeat < 1:
            raise ValueError(f"need physics_hz > 0 and action_repeat >= 1, got {physics_hz} and {action_repeat}")
        if num_threads is None and multiprocessing.parent_process() is not None:
            num_threads = 1  # a subprocess worker: N envs in N processes share the cores
        if num_threads is not None:
            import lyra_sim

            lyra_sim.set_num_threads(num_threads)
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
        # Dynamic bundles: the moving clusters' objects become kinematic bodies on their tracks.
        self.tracks: KinematicTracks | None = None
        if animate and self.manifest.dynamic is not None:
            self.tracks = KinematicTracks(self.client_id, self.bundle_path, self.manifest, body_ids, end=track_end)
        self.track_end = track_end
        self.track_time_offset = 0.0
        self.physics_steps = 0

        self.instance_labels: dict[str, int] = {"background": constants.BACKGROUND_LABEL}
        for index, name in enumerate(self.object_names):
            self.instance_labels[name] = index + 1
        self.mesh_bodies: list[MeshBody] = []
        self._load_task()  # the task adds its robot and markers with add_mesh_body()

        label_of_body = {self.background_id: constants.BACKGROUND_LABEL}
        label_of_body.update({body_id: i + 1 for i, body_id in enumerate(self.object_ids)})
        label_of_body.update({b.body_id: b.label for b in self.mesh_bodies})
        camera_mount = camera if camera is not None else self._default_camera()
        self.pipeline = ObservationPipeline(
            self.client_id, background,
            [(name, body_id, scene, self.instance_labels[name])
             for name, body_id, scene in zip(self.object_names, self.object_ids, object_scenes)],
            self.mesh_bodies, label_of_body, camera_mount,
            camera_mount.far or max(4.0, 2.0 * self.scene_diagonal),
            RenderSettings(self.width, self.height, self.observation_modes, robot_appearance, renderer, render_backend,
                           sh_degree, self.background_color),
            robot_id=getattr(self, "robot_id", None), link_index_by_name=self._robot_link_names(),
        )
        self.camera_mount, self.camera_far = camera_mount, self.pipeline.camera_far

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
        self.reset_physics(seed=seed, options=options)
        return self.reset_observe(self.pipeline.render_observation())

    def step(self, action):
        self.step_physics(action)
        return self.step_observe(self.pipeline.render_observation())

    def render(self):
        """The third-person splat view (uint8 [H, W, 3]) when ``render_mode == "rgb_array"``."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to make()")
            return None
        return self.pipeline.third_person(self._third_person_camera())

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

    # ================================================================= the two halves of reset and step
    # reset() = reset_physics() + reset_observe(render); step() = step_physics() + step_observe(render).
    # A vector env calls the halves itself and renders every env's camera in one call in between:
    # ``pipeline.camera()`` is where each env's camera is after the first half.
    def reset_physics(self, *, seed: int | None = None, options: dict | None = None) -> None:
        """First half of ``reset``: seed, put every body back, randomise the episode, sync the splats."""
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
            reset_body_frame_pose(self.client_id, body_id, position, orientation)  # full inertia: base frame != link frame
        self.physics_steps = 0
        self.track_time_offset = float((options or {}).get("track_time", 0.0))
        if not np.isfinite(self.track_time_offset):
            raise ValueError(f"options['track_time'] must be a finite number of seconds, got {self.track_time_offset}")
        if self.tracks is not None:
            self.tracks.apply(self.track_time)  # the task sees the movers where they are
        self._reset_task(options)
        if self.tracks is not None:
            self.tracks.apply(self.track_time)  # the task may have picked the start time
        self.elapsed_steps = 0
        self.pipeline.sync_poses()

    def reset_observe(self, rendered: dict[str, torch.Tensor] | None, index: int = 0):
        """Second half of ``reset``: (observation, info) from render ``index`` of ``rendered``
        (a ``render()`` result of ``pipeline.camera()`` in ``pipeline.splat_modes()``; None with
        ``renderer="tinyrenderer"``)."""
        info = {"success": bool(self._is_success()), **self._task_info()}
        return self._observation(rendered, index), info

    def step_physics(self, action) -> None:
        """First half of ``step``: validate and apply the action, run the physics, sync the splats."""
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {list(self.action_space.shape)}, got {list(action.shape)}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN or Inf: {action.tolist()}")
        self._apply_action(np.clip(action, self.action_space.low, self.action_space.high))
        for _ in range(self.action_repeat):
            self._before_physics_step()
            if self.tracks is not None:  # kinematic bodies at the time this physics step ends
                self.tracks.apply(self.track_time_offset + (self.physics_steps + 1) / self.physics_hz)
            pybullet.stepSimulation(physicsClientId=self.client_id)
            self.physics_steps += 1
        self.elapsed_steps += 1
        self.pipeline.sync_poses()

    def step_observe(self, rendered: dict[str, torch.Tensor] | None, index: int = 0):
        """Second half of ``step``: the Gymnasium 5-tuple from render ``index`` of ``rendered``
        (see ``reset_observe``); truncation is left to ``max_episode_steps`` (False here)."""
        observation = self._observation(rendered, index)
        terms = self._reward_terms()
        reward = float(sum(terms.values()))
        info = {f"reward_{name}": float(value) for name, value in terms.items()}
        info.update({"success": bool(self._is_success()), **self._task_info()})
        return observation, reward, bool(self._is_terminated()), False, info

    # ================================================================= time
    @property
    def track_time(self) -> float:
        """The env's time in seconds on the dynamic tracks: the episode's start time plus the
        physics time since reset (what the kinematic bodies and the observation show)."""
        return self.track_time_offset + self.physics_steps / self.physics_hz

    # ================================================================= observation
    @property
    def composed(self):
        """The composed splat scene (``pipeline.composed``)."""
        return self.pipeline.composed

    def observation_camera(self) -> Camera:
        """The observation camera at the current state (one camera, ``width`` x ``height``)."""
        return self.pipeline.camera()

    def _observation(self, rendered: dict[str, torch.Tensor] | None, index: int = 0) -> dict[str, np.ndarray]:
        observation = self.pipeline.images(rendered, index)
        observation["state"] = self._state().astype(np.float32)
        return observation

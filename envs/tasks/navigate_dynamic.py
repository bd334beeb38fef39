"""``LyraSim/NavigateDynamic-v0``: Navigate among moving obstacles of a dynamic SimBundle.

Lifecycle hooks only (STYLE.md 8): Navigate's robot, goal and rewards, on a bundle built from a
splat sequence (``lyra-sim build SEQUENCE_DIR``) whose moving clusters the base env turns into
kinematic bodies following their tracks (``lyra_sim.sim.kinematic``). This file adds what moving
obstacles change: they are left out of the free-space grid, starts and goals avoid their swept
path, a separate penalty for touching one, and their relative motion in the state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pybullet

from lyra_sim.envs import constants as C
from lyra_sim.envs.base import yaw_of
from lyra_sim.envs.tasks.navigate import NavigateEnv
from lyra_sim.errors import BundleError


class NavigateDynamicEnv(NavigateEnv):
    """Drive the Navigate robot to a goal disc while obstacles of a dynamic SimBundle move.

    The bundle's moving clusters (its `dynamic` part: objects with a time track) are kinematic
    bodies that follow their tracks at the env's time, looping or stopping at the end
    (`track_end`); the robot cannot push them, and touching one costs `reward_mover_collision`
    per step. Each episode starts at a random time on the tracks (`random_start_time`), so the
    obstacles are somewhere else every episode. Starts and goals are sampled away from the
    obstacles' swept paths; the geodesic distance of the progress reward ignores the obstacles
    (they do not stay put), so going round one costs progress only while it is in the way.

    ## Action space

    `Box(-1, 1, (2,), float32)`, as Navigate: forward speed x 0.6 m/s, turn rate x 2.0 rad/s.

    ## Observation space

    `Dict`:

    | Key | Space | Meaning |
    |---|---|---|
    | `rgb` | `Box(0, 255, (H, W, 3), uint8)` | onboard camera, splat render of the scene at the env's time |
    | `depth` | `Box(0, far, (H, W, 1), float32)` | camera-space depth in metres (0: nothing) |
    | `instance` | `Box(-1, L, (H, W, 1), int32)` | only with "instance" in `observation_modes` |
    | `state` | `Box(-inf, inf, (10,), float32)` | Navigate's 6 (goal x, y in the robot frame, cos and sin of the bearing, forward speed, turn rate), then the nearest moving obstacle's x, y (m) and velocity x, y (m/s) relative to the robot, in the robot frame |

    ## Rewards (each term is in `info` as `reward_<name>`)

    | Term | Value | Weight argument (default) |
    |---|---|---|
    | `progress` | weight x decrease of the geodesic distance to the goal this step (m) | `reward_progress` (5.0) |
    | `collision` | weight when the robot touches scenery walls or still objects | `reward_collision` (-0.1) |
    | `mover_collision` | weight when the robot touches a moving obstacle | `reward_mover_collision` (-1.0) |
    | `success` | weight on reaching the goal | `reward_success` (5.0) |

    ## Episode end

    Terminates on success (base centre within 0.25 m of the goal); truncated after
    `max_episode_steps` (300 at registration). `info` adds `mover_collision` (bool),
    `mover_distance` (m, centre to centre, nearest obstacle) and `track_time` (s).

    ## Arguments

    Those of Navigate (and `LyraSimEnv`: `track_end` "loop" or "stop"; `animate=False` freezes
    the obstacles at their first-frame pose, the static version of the same env), plus
    `reward_mover_collision` and `random_start_time=True` (False: every episode starts at time 0
    unless `reset(options={"track_time": t})`). The default bundle is the packaged
    "room_dynamic": the room with one box driving 1.6 m across the floor and back every 8 s.

    ## Version history

    * v0: first version.
    """

    default_bundle = C.NAVIGATE_DYNAMIC_DEFAULT_BUNDLE

    def __init__(self, bundle=None, *, reward_mover_collision: float = -1.0, random_start_time: bool = True, **kwargs) -> None:
        self.random_start_time = bool(random_start_time)
        self._mover_weight = float(reward_mover_collision)
        super().__init__(bundle, **kwargs)
        self.reward_weights["mover_collision"] = self._mover_weight

    # ----------------------------------------------------------------- hooks
    def _load_task(self) -> None:
        if self.manifest.dynamic is None or not self.manifest.dynamic.clusters:
            raise BundleError(
                f"{self.bundle_path}: NavigateDynamic needs a dynamic bundle (built from a splat sequence with "
                "`lyra-sim build SEQUENCE_DIR`); this one has no moving clusters: use LyraSim/Navigate-v0"
            )
        self.mover_names = [cluster.object for cluster in self.manifest.dynamic.clusters]
        self.mover_ids = [self.object_ids[self.object_names.index(name)] for name in self.mover_names]
        super()._load_task()
        self._mover_touched = False
        self._swept = self._swept_cells()

    def _transient_objects(self) -> tuple[str, ...]:
        return tuple(self.mover_names)

    def _spawn_cells(self) -> np.ndarray:
        cells = np.flatnonzero(self.free_space.free & ~self._swept)
        return cells if len(cells) >= 2 else np.flatnonzero(self.free_space.free)

    def _state_size(self) -> int:
        return 10

    def _reset_task(self, options: dict | None) -> None:
        if self.random_start_time and self.tracks is not None and "track_time" not in (options or {}):
            self.track_time_offset = float(self.np_random.uniform(0.0, max(self.tracks.duration, 1e-9)))
        super()._reset_task(options)
        self._mover_touched = False

    def _reward_terms(self) -> dict[str, float]:
        terms = super()._reward_terms()
        self._mover_touched = self._touches_mover()
        terms["mover_collision"] = self.reward_weights["mover_collision"] if self._mover_touched else 0.0
        return terms

    def _state(self) -> np.ndarray:
        base = super()._state()
        position, orientation = pybullet.getBasePositionAndOrientation(self.robot_id, physicsClientId=self.client_id)
        velocity = np.asarray(pybullet.getBaseVelocity(self.robot_id, physicsClientId=self.client_id)[0][:2])
        mover, mover_velocity = self._nearest_mover(np.asarray(position[:2]))
        yaw = yaw_of(orientation)
        to_robot = np.array([[math.cos(yaw), math.sin(yaw)], [-math.sin(yaw), math.cos(yaw)]])  # world -> robot frame
        relative = to_robot @ (mover - np.asarray(position[:2]))
        relative_velocity = to_robot @ (mover_velocity - velocity)
        return np.concatenate([base, relative, relative_velocity]).astype(np.float32)

    def _task_info(self) -> dict[str, Any]:
        mover, _ = self._nearest_mover(self._robot_xy())
        return {
            **super()._task_info(),
            "mover_collision": bool(self._mover_touched),
            "mover_distance": float(np.linalg.norm(mover - self._robot_xy())),
            "track_time": float(self.track_time),
        }

    # ----------------------------------------------------------------- task helpers
    def _in_collision(self) -> bool:
        """Navigate's collision (scenery walls, objects) without the moving obstacles: they have their own term."""
        for body in [self.background_id, *(b for b in self.object_ids if b not in self.mover_ids)]:
            for contact in pybullet.getContactPoints(self.robot_id, body, physicsClientId=self.client_id):
                if body != self.background_id or abs(contact[7][2]) < 0.7:
                    return True
        return False

    def _touches_mover(self) -> bool:
        return any(pybullet.getContactPoints(self.robot_id, body, physicsClientId=self.client_id) for body in self.mover_ids)

    def _mover_positions(self) -> np.ndarray:  # [M, 2] body frames now
        return np.array([pybullet.getBasePositionAndOrientation(body, physicsClientId=self.client_id)[0][:2] for body in self.mover_ids])

    def _nearest_mover(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # -> [2] position, [2] velocity (world)
        if self.tracks is not None:
            positions, _ = self.tracks.poses_at(self.track_time)
            velocities = self.tracks.velocities_at(self.track_time, 1.0 / self.physics_hz)
            order = [self.tracks.object_names.index(name) for name in self.mover_names]
            positions, velocities = positions[order, :2], velocities[order, :2]
        else:  # frozen (animate=False): where the objects are, standing still
            positions, velocities = self._mover_positions(), np.zeros((len(self.mover_ids), 2))
        nearest = int(np.argmin(np.linalg.norm(positions - xy, axis=1)))
        return positions[nearest], velocities[nearest]

    def _swept_cells(self) -> np.ndarray:  # [NX, NY] bool
        """Cells within reach of an obstacle anywhere on its track (a start there could be inside it)."""
        free = self.free_space
        centres = free.origin + free.resolution * np.stack(np.meshgrid(*(np.arange(n) for n in free.free.shape), indexing="ij"), -1)
        swept = np.zeros(free.free.shape, dtype=bool)
        if self.tracks is None:
            times = np.zeros(1)
        else:
            times = np.linspace(0.0, self.tracks.duration, max(2, int(math.ceil(self.tracks.duration * 20)) + 1))
        sizes = {obj.name: obj.size for obj in self.bundle.objects}
        for index, name in enumerate(self.mover_names):
            reach = 0.5 * float(np.linalg.norm(sizes[name][:2])) + C.NAVIGATE_ROBOT_RADIUS + C.NAVIGATE_CLEARANCE
            if self.tracks is not None:
                track_index = self.tracks.object_names.index(name)
                path = np.array([self.tracks.poses_at(t)[0][track_index, :2] for t in times])
            else:
                path = self._mover_positions()[index][None]
            for point in path:
                swept |= np.linalg.norm(centres - point, axis=-1) <= reach
        return swept

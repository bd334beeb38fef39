"""``LyraSim/Navigate-v0``: drive a differential-drive body to a goal on the floor of a SimBundle.

Lifecycle hooks only (STYLE.md 8); the free-space grid that start and goal are sampled from and
that gives the geodesic distance for the progress reward is ``lyra_sim.sim.free_space``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pybullet
from gymnasium import spaces

from lyra_sim.envs import constants as C
from lyra_sim.envs.base import CameraMount, LyraSimEnv, yaw_of
from lyra_sim.errors import BundleError
from lyra_sim.render.camera import Camera
from lyra_sim.sim.free_space import FreeSpace, free_space_grid  # noqa: F401  FreeSpace: re-exported


def check_navigable(free_space: FreeSpace, bundle_path: Path, min_goal_distance: float) -> None:
    """Refuse a bundle whose free floor cannot host the task (instead of instant "successes").

    The free region must hold at least ``NAVIGATE_MIN_FREE_CELLS`` cells and be wide enough
    (geodesic diameter) that a goal can lie beyond the success radius of every start.
    """
    cells = int(free_space.free.sum())
    area = cells * free_space.resolution**2
    if cells < C.NAVIGATE_MIN_FREE_CELLS:
        raise BundleError(
            f"{bundle_path}: Navigate needs a free floor region of at least {C.NAVIGATE_MIN_FREE_CELLS} cells "
            f"({C.NAVIGATE_GRID_RESOLUTION:.2f} m each) for a robot of radius {C.NAVIGATE_ROBOT_RADIUS:.2f} m; this bundle has {cells} "
            f"({area:.2f} m^2): too few free cells (was the floor found, is the scale metric, are floaters collision geometry?)"
        )
    free_cells = np.flatnonzero(free_space.free)
    farthest = free_space.geodesic_to(int(free_cells[0]))
    far_cell = int(free_cells[np.argmax(np.where(np.isfinite(farthest[free_cells]), farthest[free_cells], -1))])
    reach = free_space.geodesic_to(far_cell)
    diameter = float(np.max(np.where(np.isfinite(reach[free_cells]), reach[free_cells], 0.0)))
    needed = max(min_goal_distance, 2.0 * C.NAVIGATE_GOAL_RADIUS)
    if diameter < needed:
        raise BundleError(
            f"{bundle_path}: Navigate's free floor region is only {diameter:.2f} m across ({cells} cells); goals must lie at least "
            f"{needed:.2f} m from the start, so start would equal goal (every episode an instant success)"
        )


class NavigateEnv(LyraSimEnv):
    """Drive a small differential-drive robot to a goal disc on the floor of a SimBundle scene.

    The robot (a 10 cm radius cylinder with a dark nose marking its front) moves under PyBullet
    physics among the bundle's scenery and movable objects; its camera looks forward from the
    front edge of its top. Start and goal are sampled in the largest free region of the floor
    (probed against the bundle's collision meshes), the goal at a geodesic distance of 0.6-2.5 m.
    The goal is drawn as a green disc (Gaussians) on the floor, so it can be seen.

    ## Action space

    `Box(-1, 1, (2,), float32)`:

    | Index | Action | Scale |
    |---|---|---|
    | 0 | forward speed | x 0.6 m/s (negative drives backwards) |
    | 1 | turn rate (counter-clockwise) | x 2.0 rad/s |

    The pair is the differential-drive (unicycle) command; the base velocity is set every physics step.

    ## Observation space

    `Dict`:

    | Key | Space | Meaning |
    |---|---|---|
    | `rgb` | `Box(0, 255, (H, W, 3), uint8)` | onboard camera, splat render |
    | `depth` | `Box(0, far, (H, W, 1), float32)` | camera-space depth in metres (0: nothing) |
    | `instance` | `Box(-1, L, (H, W, 1), int32)` | only with "instance" in `observation_modes`; labels in `env.unwrapped.instance_labels` |
    | `state` | `Box(-inf, inf, (6,), float32)` | goal x, y in the robot frame (m), cos and sin of the bearing to the goal, forward speed (m/s), turn rate (rad/s) |

    ## Rewards (each term is in `info` as `reward_<name>`)

    | Term | Value | Weight argument (default) |
    |---|---|---|
    | `progress` | weight x decrease of the geodesic distance to the goal this step (m) | `reward_progress` (5.0) |
    | `collision` | weight when the robot touches scenery walls or objects | `reward_collision` (-0.1) |
    | `success` | weight on reaching the goal | `reward_success` (5.0) |

    ## Episode end

    Terminates on success (base centre within 0.25 m of the goal); truncated after
    `max_episode_steps` (200 at registration). `info["success"]` tells which.

    ## Arguments

    Those of `LyraSimEnv` (bundle, sizes, observation modes, camera, robot appearance, renderer,
    physics rate) plus `goal_distance=(0.6, 2.5)` (geodesic range in metres) and the reward
    weights above. The default bundle is the packaged "room".

    ## Version history

    * v0: first version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    default_bundle = C.NAVIGATE_DEFAULT_BUNDLE
    # The body is driven kinematically through a constraint: 60 Hz physics is plenty, and
    # physics is a quarter of a step's cost at 120 Hz.
    default_physics_hz = C.NAVIGATE_PHYSICS_HZ
    default_action_repeat = C.NAVIGATE_ACTION_REPEAT

    def __init__(self, bundle=None, *, goal_distance: tuple[float, float] = (C.NAVIGATE_MIN_GOAL_DISTANCE, C.NAVIGATE_MAX_GOAL_DISTANCE),
                 reward_progress: float = 5.0, reward_collision: float = -0.1, reward_success: float = 5.0, **kwargs) -> None:
        if not 0 < goal_distance[0] <= goal_distance[1]:
            raise ValueError(f"goal_distance must be (min, max) with 0 < min <= max, got {goal_distance}")
        self.goal_distance = (float(goal_distance[0]), float(goal_distance[1]))
        self.reward_weights = {"progress": float(reward_progress), "collision": float(reward_collision),
                               "success": float(reward_success)}
        super().__init__(bundle, **kwargs)

    # ----------------------------------------------------------------- hooks
    def _load_task(self) -> None:
        client = self.client_id
        radius, height = C.NAVIGATE_ROBOT_RADIUS, C.NAVIGATE_ROBOT_HEIGHT
        collision = pybullet.createCollisionShape(pybullet.GEOM_CYLINDER, radius=radius, height=height, physicsClientId=client)
        nose_half = [0.03, 0.05, 0.015]
        visual = pybullet.createVisualShapeArray(
            shapeTypes=[pybullet.GEOM_CYLINDER, pybullet.GEOM_BOX],
            radii=[radius, 0.0],
            lengths=[height, 0.0],
            halfExtents=[[0, 0, 0], nose_half],
            rgbaColors=[C.NAVIGATE_ROBOT_COLOUR, C.NAVIGATE_ROBOT_NOSE_COLOUR],
            visualFramePositions=[[0, 0, 0], [radius - nose_half[0], 0, height / 2 + nose_half[2]]],
            physicsClientId=client,
        )
        self.robot_id = pybullet.createMultiBody(C.NAVIGATE_ROBOT_MASS, collision, visual, basePosition=[0, 0, 5], physicsClientId=client)
        # The body rides 2 mm above the floor, held by the drive constraint (see _before_physics_step).
        self._ride_height = self.floor_height + height / 2 + 0.002
        self._drive = pybullet.createConstraint(
            self.robot_id, -1, -1, -1, pybullet.JOINT_FIXED, [0, 0, 0], [0, 0, 0], [0, 0, 5], physicsClientId=client
        )
        marker = pybullet.createVisualShape(
            pybullet.GEOM_CYLINDER, radius=C.NAVIGATE_GOAL_MARKER_RADIUS, length=0.004,
            rgbaColor=C.NAVIGATE_GOAL_MARKER_COLOUR, physicsClientId=client,
        )
        self.goal_marker_id = pybullet.createMultiBody(0, -1, marker, basePosition=[0, 0, -5], physicsClientId=client)
        self.add_mesh_body("robot", self.robot_id)
        self.add_mesh_body("goal", self.goal_marker_id)
        self.free_space = free_space_grid(
            self.bundle, self.bundle_path, self.floor_height,
            radius + C.NAVIGATE_CLEARANCE, height, C.NAVIGATE_GRID_RESOLUTION, ignore_objects=self._transient_objects(),
        )
        check_navigable(self.free_space, self.bundle_path, self.goal_distance[0])
        self.goal = np.zeros(2)
        self._command = np.zeros(2)
        self._distances = np.zeros(self.free_space.free.size)
        self._previous_distance = 0.0
        self._collided = False

    def _default_camera(self) -> CameraMount:
        return CameraMount(position=C.NAVIGATE_CAMERA_POSITION, target=C.NAVIGATE_CAMERA_TARGET, link="base", fov_deg=C.NAVIGATE_CAMERA_FOV)

    def _third_person_camera(self) -> Camera:
        """A chase camera: behind and above the robot, looking past it."""
        position, orientation = pybullet.getBasePositionAndOrientation(self.robot_id, physicsClientId=self.client_id)
        yaw = yaw_of(orientation)
        forward = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        base = np.array([position[0], position[1], self.floor_height])
        eye = base - 1.1 * forward + np.array([0.0, 0.0, 0.9])
        return Camera.look_at(eye, base + 0.6 * forward, fov_deg=70.0, width=self.render_width, height=self.render_height,
                              near=C.CAMERA_NEAR, far=max(4.0, 2.0 * self.scene_diagonal))

    def _make_action_space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

    def _state_size(self) -> int:
        return 6

    def _transient_objects(self) -> tuple[str, ...]:
        """Objects left out of the free-space grid (they do not stay where the bundle put them)."""
        return ()

    def _spawn_cells(self) -> np.ndarray:
        """Flat indices of the free cells where start and goal may be sampled."""
        return np.flatnonzero(self.free_space.free)

    def _reset_task(self, options: dict | None) -> None:
        free_cells = self._spawn_cells()
        start = int(free_cells[self.np_random.integers(len(free_cells))])
        from_start = self.free_space.geodesic_to(start)
        low, high = self.goal_distance
        candidates = free_cells[(from_start[free_cells] >= low) & (from_start[free_cells] <= high)]
        if len(candidates) == 0:  # a small region: take the farthest reachable cell
            candidates = free_cells[[int(np.argmax(np.where(np.isfinite(from_start[free_cells]), from_start[free_cells], -1)))]]
        goal_cell = int(candidates[self.np_random.integers(len(candidates))])
        start_xy, self.goal = self.free_space.cell_centre(start), self.free_space.cell_centre(goal_cell)
        yaw = float(self.np_random.uniform(-math.pi, math.pi))
        client = self.client_id
        start_orientation = pybullet.getQuaternionFromEuler([0, 0, yaw])
        pybullet.resetBasePositionAndOrientation(self.robot_id, [*start_xy, self._ride_height], start_orientation, physicsClientId=client)
        pybullet.resetBaseVelocity(self.robot_id, [0, 0, 0], [0, 0, 0], physicsClientId=client)
        pybullet.changeConstraint(self._drive, jointChildPivot=[*start_xy, self._ride_height], jointChildFrameOrientation=start_orientation,
                                  maxForce=C.NAVIGATE_DRIVE_FORCE, physicsClientId=client)
        pybullet.resetBasePositionAndOrientation(self.goal_marker_id, [*self.goal, self.floor_height + 0.003], [0, 0, 0, 1], physicsClientId=client)
        self._command = np.zeros(2)
        self._target_xy, self._target_yaw = np.array(start_xy, dtype=np.float64), yaw
        self._distances = self.free_space.geodesic_to(goal_cell)
        self._previous_distance = self._goal_distance()
        self._collided = False

    def _apply_action(self, action: np.ndarray) -> None:
        self._command = np.array([action[0] * C.NAVIGATE_MAX_SPEED, action[1] * C.NAVIGATE_MAX_TURN_RATE])

    def _before_physics_step(self) -> None:
        # The base is driven through a force-limited fixed constraint whose target pose moves
        # with the commanded unicycle motion: in free space the body follows it at the commanded
        # speed; walls and heavy objects stop the body, and the target is then kept within
        # NAVIGATE_TARGET_LEASH of it so it does not run away. The body stays upright at ride height.
        step = 1.0 / self.physics_hz
        speed, turn_rate = self._command
        self._target_yaw += turn_rate * step
        self._target_xy += speed * step * np.array([math.cos(self._target_yaw), math.sin(self._target_yaw)])
        position = np.asarray(pybullet.getBasePositionAndOrientation(self.robot_id, physicsClientId=self.client_id)[0][:2])
        lag = self._target_xy - position
        if np.linalg.norm(lag) > C.NAVIGATE_TARGET_LEASH:
            self._target_xy = position + lag * (C.NAVIGATE_TARGET_LEASH / np.linalg.norm(lag))
        pybullet.changeConstraint(
            self._drive, jointChildPivot=[*self._target_xy, self._ride_height],
            jointChildFrameOrientation=pybullet.getQuaternionFromEuler([0, 0, self._target_yaw]),
            maxForce=C.NAVIGATE_DRIVE_FORCE, physicsClientId=self.client_id,
        )

    def _reward_terms(self) -> dict[str, float]:
        distance = self._goal_distance()
        progress = self._previous_distance - distance
        self._previous_distance = distance
        self._collided = self._in_collision()
        return {
            "progress": self.reward_weights["progress"] * progress,
            "collision": self.reward_weights["collision"] if self._collided else 0.0,
            "success": self.reward_weights["success"] if self._is_success() else 0.0,
        }

    def _is_success(self) -> bool:
        return bool(np.linalg.norm(self._robot_xy() - self.goal) <= C.NAVIGATE_GOAL_RADIUS)

    def _state(self) -> np.ndarray:
        position, orientation = pybullet.getBasePositionAndOrientation(self.robot_id, physicsClientId=self.client_id)
        velocity, angular = pybullet.getBaseVelocity(self.robot_id, physicsClientId=self.client_id)
        yaw = yaw_of(orientation)
        offset = self.goal - np.asarray(position[:2])
        cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
        goal_x, goal_y = cos_yaw * offset[0] + sin_yaw * offset[1], -sin_yaw * offset[0] + cos_yaw * offset[1]
        bearing = math.atan2(goal_y, goal_x)
        forward_speed = cos_yaw * velocity[0] + sin_yaw * velocity[1]
        return np.array([goal_x, goal_y, math.cos(bearing), math.sin(bearing), forward_speed, angular[2]], dtype=np.float32)

    def _task_info(self) -> dict[str, Any]:
        return {
            "goal_distance": float(self._previous_distance),
            "euclidean_distance": float(np.linalg.norm(self._robot_xy() - self.goal)),
            "collision": bool(self._collided),
        }

    # ----------------------------------------------------------------- task helpers
    def _robot_xy(self) -> np.ndarray:
        return np.asarray(pybullet.getBasePositionAndOrientation(self.robot_id, physicsClientId=self.client_id)[0][:2])

    def _goal_distance(self) -> float:
        xy = self._robot_xy()
        geodesic = self.free_space.distance_at(self._distances, xy)
        return geodesic if math.isfinite(geodesic) else float(np.linalg.norm(xy - self.goal))

    def _in_collision(self) -> bool:
        """Touching an object, or scenery anywhere but underneath (the floor pushes straight up)."""
        for body in [self.background_id, *self.object_ids]:
            for contact in pybullet.getContactPoints(self.robot_id, body, physicsClientId=self.client_id):
                normal_on_robot = contact[7]
                if body != self.background_id or abs(normal_on_robot[2]) < 0.7:
                    return True
        return False

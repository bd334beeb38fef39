"""``LyraSim/Push-v0``: a KUKA iiwa pushes a segmented bundle object to a target disc on a table.

Lifecycle hooks only (STYLE.md 8). The table (height, extent) is found once per env by
``lyra_sim.sim.table.find_table_top`` (vertical rays at the bundle's scenery), so any bundle with
a raised flat surface and an object on it works, not just the packaged tabletop.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pybullet
import pybullet_data
from gymnasium import spaces

from lyra_sim.envs import constants as C
from lyra_sim.envs.base import CameraMount, LyraSimEnv
from lyra_sim.errors import BundleError
from lyra_sim.render.camera import Camera
from lyra_sim.sim.table import find_table_top
from lyra_sim.sim.world import reset_body_frame_pose

_FLANGE_BELOW_FRAME = 0.048  # m: the iiwa flange's lowest point below the link-7 frame, pointing down
_REACH = (0.3, 0.75)  # m: horizontal distances from the arm base the flange can push at
_POINTING_DOWN = (0.0, 1.0, 0.0, 0.0)  # xyzw: rotation by pi about y
# A wrist camera (link 7's z axis points out of the flange, i.e. down): behind and above the
# flange, looking past it at the table ahead. Pass ``camera=WRIST_CAMERA``.
WRIST_CAMERA = CameraMount(position=(0.15, 0.0, -0.3), target=(0.05, 0.0, 0.3), up=(1.0, 0.0, 0.0), link=C.PUSH_END_EFFECTOR_LINK, fov_deg=70.0)


class PushEnv(LyraSimEnv):
    """Push a segmented object of a SimBundle into a target disc on a table with a KUKA iiwa.

    The arm (``kuka_iiwa/model.urdf`` from pybullet_data) stands on the table at the middle of
    the edge nearest the object, its flange pointing down at a fixed height just above the table top. The object
    (`push_object`, default: the bundle's first object, starting at its initial pose with
    +-3 cm jitter) must be pushed so its centre lies in the blue target disc, sampled each
    episode on the table within the arm's reach, 10-30 cm from the object.

    ## Action space

    `Box(-1, 1, (2,), float32)`: flange motion along world x and y, times 2 cm per step. The
    target point is clipped to the reachable part of the table; joints follow by inverse kinematics
    under position control.

    ## Observation space

    `Dict`:

    | Key | Space | Meaning |
    |---|---|---|
    | `rgb` | `Box(0, 255, (H, W, 3), uint8)` | third-person camera facing the arm across the table (or a wrist camera) |
    | `depth` | `Box(0, far, (H, W, 1), float32)` | camera-space depth in metres |
    | `instance` | `Box(-1, L, (H, W, 1), int32)` | only with "instance" in `observation_modes` |
    | `state` | `Box(-inf, inf, (12,), float32)` | 7 joint angles (rad), flange position (m, world), target centre x, y (m, world) |

    The object's pose is not in `state`: the policy must see it.

    ## Rewards (each term is in `info` as `reward_<name>`)

    | Term | Value | Weight argument (default) |
    |---|---|---|
    | `reach` | weight x flange-to-object horizontal distance (m) | `reward_reach` (-0.5) |
    | `push` | weight x decrease of the object-to-target distance this step (m) | `reward_push` (10.0) |
    | `success` | weight when the object centre is within 6 cm of the target centre | `reward_success` (5.0) |

    ## Episode end

    Terminates on success or when the object falls off the table (`info["object_fell"]`);
    truncated after `max_episode_steps` (100 at registration).

    ## Arguments

    Those of `LyraSimEnv` plus `push_object` (an object name of the bundle) and the reward
    weights above. The default bundle
    is the packaged "tabletop". For a wrist camera pass `camera=lyra_sim.envs.tasks.push.WRIST_CAMERA`.

    ## Version history

    * v0: first version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
    default_bundle = C.PUSH_DEFAULT_BUNDLE

    def __init__(self, bundle=None, *, push_object: str | None = None, reward_reach: float = -0.5,
                 reward_push: float = 10.0, reward_success: float = 5.0, **kwargs) -> None:
        self.push_object = push_object
        self.reward_weights = {"reach": float(reward_reach), "push": float(reward_push), "success": float(reward_success)}
        super().__init__(bundle, **kwargs)

    # ----------------------------------------------------------------- hooks
    def _load_task(self) -> None:
        client = self.client_id
        if not self.object_names:
            raise BundleError(f"{self.bundle_path}: Push needs a bundle with at least one movable object")
        name = self.push_object or self.object_names[0]
        if name not in self.object_names:
            raise BundleError(f"{self.bundle_path}: no object {name!r} to push; objects: {', '.join(self.object_names)}")
        self.object_index = self.object_names.index(name)
        self.object_id = self.object_ids[self.object_index]
        self._map_table()

        # The arm stands at the middle of the table edge nearest the object, facing inwards.
        centre = 0.5 * (self.table_low + self.table_high)
        half = 0.5 * (self.table_high - self.table_low)
        edges = [(-1, 0), (1, 0), (0, -1), (0, 1)]  # outward normals
        object_xy = np.asarray(self.object_initial_poses[self.object_index][0][:2])
        outward = np.array(min(edges, key=lambda n: np.linalg.norm(centre + np.array(n) * half - object_xy)), dtype=np.float64)
        self.inward = -outward
        self.across = np.array([-self.inward[1], self.inward[0]])
        base_xy = centre + outward * (np.abs(outward) @ half - 0.12)
        self.arm_base = np.array([*base_xy, self.table_top])
        self.robot_id = pybullet.loadURDF(
            f"{pybullet_data.getDataPath()}/{C.PUSH_ROBOT_URDF}", self.arm_base.tolist(),
            pybullet.getQuaternionFromEuler([0, 0, math.atan2(self.inward[1], self.inward[0])]),
            useFixedBase=True, physicsClientId=client,
        )
        self.arm_joints = list(range(C.PUSH_ARM_JOINTS))
        joint_info = [pybullet.getJointInfo(self.robot_id, j, physicsClientId=client) for j in self.arm_joints]
        self._joint_low = np.array([info[8] for info in joint_info])
        self._joint_high = np.array([info[9] for info in joint_info])
        names = [pybullet.getJointInfo(self.robot_id, j, physicsClientId=client)[12].decode()
                 for j in range(pybullet.getNumJoints(self.robot_id, physicsClientId=client))]
        self.end_effector = names.index(C.PUSH_END_EFFECTOR_LINK)
        marker = pybullet.createVisualShape(pybullet.GEOM_CYLINDER, radius=C.PUSH_TARGET_RADIUS, length=0.003,
                                            rgbaColor=C.PUSH_TARGET_MARKER_COLOUR, physicsClientId=client)
        self.target_marker_id = pybullet.createMultiBody(0, -1, marker, basePosition=[0, 0, -5], physicsClientId=client)
        self.add_mesh_body("robot", self.robot_id)
        self.add_mesh_body("target", self.target_marker_id)

        self.flange_height = self.table_top + _FLANGE_BELOW_FRAME + C.PUSH_TOOL_HEIGHT
        # Reachable part of the table: 0.3-0.75 m in front of the base, +-0.45 m across.
        margin = 0.05
        corners = np.array([base_xy + self.inward * depth + self.across * side for depth in _REACH for side in (-0.45, 0.45)])
        self.workspace_low = np.maximum(self.table_low + margin, corners.min(0))
        self.workspace_high = np.minimum(self.table_high - margin, corners.max(0))
        self.target = np.zeros(2)
        self._flange_target = np.zeros(2)
        self._previous_object_distance = 0.0

    def _map_table(self) -> None:
        """Find the table top under the push object: its height and its x/y extent."""
        table = find_table_top(self.client_id, self.object_ids, self.object_initial_poses[self.object_index][0],
                               self.bounds_min, self.bounds_max, self.floor_height, where=str(self.bundle_path),
                               object_name=self.object_names[self.object_index])
        self.table_top, self.table_low, self.table_high = table.top, table.low, table.high

    def _default_camera(self) -> CameraMount:
        """Across the table from the arm, looking back at it and the object."""
        centre = 0.5 * (self.table_low + self.table_high)
        half_depth = float(np.abs(self.inward) @ (0.5 * (self.table_high - self.table_low)))
        eye = centre + self.inward * (half_depth + 0.45) - self.across * 0.35
        return CameraMount(position=(*eye, self.table_top + 0.55), target=(*centre, self.table_top), fov_deg=55.0)

    def _third_person_camera(self) -> Camera:
        centre = np.array([*(0.5 * (self.table_low + self.table_high)), self.table_top])
        eye = centre + np.array([0.9, -1.1, 0.9])
        return Camera.look_at(eye, centre, fov_deg=55.0, width=self.render_width, height=self.render_height,
                              near=C.CAMERA_NEAR, far=max(4.0, 3.0 * self.scene_diagonal))

    def _make_action_space(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

    def _state_size(self) -> int:
        return C.PUSH_ARM_JOINTS + 5

    def _reset_task(self, options: dict | None) -> None:
        client = self.client_id
        position, orientation = self.object_initial_poses[self.object_index]
        jitter = self.np_random.uniform(-0.03, 0.03, size=2)
        start = np.array([position[0] + jitter[0], position[1] + jitter[1], position[2]])
        reset_body_frame_pose(client, self.object_id, start.tolist(), orientation)
        self.target = self._sample_target(start[:2])
        pybullet.resetBasePositionAndOrientation(self.target_marker_id, [*self.target, self.table_top + 0.002], [0, 0, 0, 1], physicsClientId=client)
        # Start the flange near the arm base, clear of the object.
        start = self.arm_base[:2] + self.inward * _REACH[0] + self.across * self.np_random.uniform(-0.1, 0.1)
        self._flange_target = np.clip(start, self.workspace_low, self.workspace_high)
        rest = np.clip(np.array(C.PUSH_REST_POSE), self._joint_low, self._joint_high)
        for joint, angle in zip(self.arm_joints, rest):
            pybullet.resetJointState(self.robot_id, joint, angle, physicsClientId=client)
        for _ in range(3):  # IK converges from the rest pose in a few passes
            angles = self._inverse_kinematics()
            for joint, angle in zip(self.arm_joints, angles):
                pybullet.resetJointState(self.robot_id, joint, angle, physicsClientId=client)
        self._drive_joints(angles)
        self._previous_object_distance = self._object_target_distance()

    def _sample_target(self, object_xy: np.ndarray) -> np.ndarray:
        for _ in range(200):
            candidate = self.np_random.uniform(self.workspace_low, self.workspace_high)
            if 0.10 <= np.linalg.norm(candidate - object_xy) <= 0.30:
                return candidate
        return np.clip(object_xy + np.array([0.15, 0.0]), self.workspace_low, self.workspace_high)

    def _apply_action(self, action: np.ndarray) -> None:
        self._flange_target = np.clip(self._flange_target + C.PUSH_MAX_EE_STEP * action, self.workspace_low, self.workspace_high)
        self._drive_joints(self._inverse_kinematics())

    def _reward_terms(self) -> dict[str, float]:
        distance = self._object_target_distance()
        progress = self._previous_object_distance - distance
        self._previous_object_distance = distance
        reach = float(np.linalg.norm(self._flange_position()[:2] - self._object_position()[:2]))
        return {
            "reach": self.reward_weights["reach"] * reach,
            "push": self.reward_weights["push"] * progress,
            "success": self.reward_weights["success"] if self._is_success() else 0.0,
        }

    def _is_success(self) -> bool:
        return self._object_target_distance() <= C.PUSH_TARGET_RADIUS

    def _is_terminated(self) -> bool:
        return self._is_success() or self._object_fell()

    def _state(self) -> np.ndarray:
        angles = [s[0] for s in pybullet.getJointStates(self.robot_id, self.arm_joints, physicsClientId=self.client_id)]
        return np.concatenate([angles, self._flange_position(), self.target]).astype(np.float32)

    def _task_info(self) -> dict[str, Any]:
        return {"object_distance": float(self._previous_object_distance), "object_fell": bool(self._object_fell())}

    # ----------------------------------------------------------------- task helpers
    def _inverse_kinematics(self) -> np.ndarray:
        target = [self._flange_target[0], self._flange_target[1], self.flange_height]
        angles = pybullet.calculateInverseKinematics(
            self.robot_id, self.end_effector, target, _POINTING_DOWN,
            lowerLimits=self._joint_low.tolist(), upperLimits=self._joint_high.tolist(),
            jointRanges=(self._joint_high - self._joint_low).tolist(), restPoses=list(C.PUSH_REST_POSE),
            maxNumIterations=50, residualThreshold=1e-4, physicsClientId=self.client_id,
        )
        return np.clip(np.asarray(angles[: C.PUSH_ARM_JOINTS]), self._joint_low, self._joint_high)

    def _drive_joints(self, angles: np.ndarray) -> None:
        pybullet.setJointMotorControlArray(
            self.robot_id, self.arm_joints, pybullet.POSITION_CONTROL, targetPositions=angles.tolist(),
            forces=[300.0] * C.PUSH_ARM_JOINTS, physicsClientId=self.client_id,
        )

    def _flange_position(self) -> np.ndarray:
        return np.asarray(pybullet.getLinkState(self.robot_id, self.end_effector, computeForwardKinematics=1, physicsClientId=self.client_id)[4])

    def _object_position(self) -> np.ndarray:
        return np.asarray(pybullet.getBasePositionAndOrientation(self.object_id, physicsClientId=self.client_id)[0])

    def _object_target_distance(self) -> float:
        return float(np.linalg.norm(self._object_position()[:2] - self.target))

    def _object_fell(self) -> bool:
        return bool(self._object_position()[2] < self.table_top - 0.1)

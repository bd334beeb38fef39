"""Constants of the lyra-sim environments: packaged bundles, robot assets, link names, rates.

Kept apart from the task files so a task reads as lifecycle hooks only (STYLE.md 8).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# ----------------------------------------------------------------- packaged bundles
ASSETS_DIR = Path(str(files("lyra_sim"))) / "assets"
# The packaged bundles' home is lyra_sim.bundle.lookup (built by scripts/make_default_bundle.py).
from lyra_sim.bundle.lookup import PACKAGED_BUNDLES_DIR  # noqa: E402,F401
NAVIGATE_DEFAULT_BUNDLE = "room"
NAVIGATE_DYNAMIC_DEFAULT_BUNDLE = "room_dynamic"  # the room with a box driving across it (a dynamic bundle)
PUSH_DEFAULT_BUNDLE = "tabletop"

# ----------------------------------------------------------------- physics
GRAVITY = -9.81  # m/s², along world z
DEFAULT_PHYSICS_HZ = 120.0
DEFAULT_ACTION_REPEAT = 4  # control at 30 Hz

# ----------------------------------------------------------------- rendering
DEFAULT_OBSERVATION_SIZE = 64  # pixels, square
DEFAULT_RENDER_SIZE = 256  # the third-person ``render()`` view
# sh_degree="auto": observations up to this size (px, largest side) use SH degree 0. On the
# trained 150k SH-3 benchmark scene (8 hemisphere views) SH 0 against the full SH 3 measured
# >= 41.8 dB at 64 px and >= 41.6 dB at 128 px (benchmarks/results/render.json), above the 35 dB
# bound of issue 14, and it takes 40% off the projection stage.
AUTO_SH0_MAX_SIZE = 128
CAMERA_NEAR = 0.02  # m; also bounds TinyRenderer's depth buffer precision
ROBOT_SPLAT_SPACING = 0.008  # m between robot-link Gaussians
# Instance label of the static background; objects follow from 1, mesh-only bodies after them.
BACKGROUND_LABEL = 0

# ----------------------------------------------------------------- Navigate: differential-drive body
NAVIGATE_ROBOT_RADIUS = 0.10  # m
NAVIGATE_MIN_FREE_CELLS = 20  # a smaller free region cannot host start/goal pairs: the bundle is refused
NAVIGATE_ROBOT_HEIGHT = 0.12  # m
NAVIGATE_ROBOT_MASS = 2.0  # kg
NAVIGATE_ROBOT_COLOUR = (0.95, 0.45, 0.1, 1.0)
NAVIGATE_ROBOT_NOSE_COLOUR = (0.1, 0.1, 0.12, 1.0)
NAVIGATE_PHYSICS_HZ = 60.0
NAVIGATE_ACTION_REPEAT = 2  # control at 30 Hz, as the default
NAVIGATE_MAX_SPEED = 0.6  # m/s forward
NAVIGATE_MAX_TURN_RATE = 2.0  # rad/s
NAVIGATE_DRIVE_FORCE = 60.0  # N: the drive constraint's force limit (what it can push)
NAVIGATE_TARGET_LEASH = 0.06  # m: how far the drive target may lead the body (caps speed at ~0.2 x leash x physics rate)
NAVIGATE_CAMERA_POSITION = (0.11, 0.0, 0.16)  # in the base frame: front edge, above the top
NAVIGATE_CAMERA_TARGET = (1.0, 0.0, 0.05)  # looks forward and slightly down
NAVIGATE_CAMERA_FOV = 75.0  # degrees, vertical
NAVIGATE_GOAL_RADIUS = 0.25  # m: success when the base centre is this close to the goal
NAVIGATE_GOAL_MARKER_RADIUS = 0.12  # m: the green disc drawn on the floor
NAVIGATE_GOAL_MARKER_COLOUR = (0.1, 0.85, 0.2, 1.0)
NAVIGATE_GRID_RESOLUTION = 0.1  # m: free-space grid cell (probing cost grows with its inverse square)
NAVIGATE_CLEARANCE = 0.03  # m kept between the robot and obstacles when sampling start/goal
NAVIGATE_MIN_GOAL_DISTANCE = 0.6  # m (geodesic)
NAVIGATE_MAX_GOAL_DISTANCE = 2.5  # m (geodesic)

# ----------------------------------------------------------------- Push: KUKA iiwa from pybullet_data
PUSH_ROBOT_URDF = "kuka_iiwa/model.urdf"
PUSH_END_EFFECTOR_LINK = "lbr_iiwa_link_7"
PUSH_ARM_JOINTS = 7
PUSH_REST_POSE = (0.0, 0.45, 0.0, -1.6, 0.0, 1.05, 0.0)  # rad: elbow up, flange pointing down
PUSH_MAX_EE_STEP = 0.02  # m per control step along x and y
PUSH_TARGET_RADIUS = 0.06  # m: success when the object centre is inside the target disc
PUSH_TARGET_MARKER_COLOUR = (0.15, 0.35, 0.95, 1.0)
PUSH_ROBOT_STANDOFF = 0.25  # m between the table edge and the arm base
PUSH_TOOL_HEIGHT = 0.03  # m above the table top where the flange pushes

"""Every user-facing choice as a ``Literal`` type, validated in one place.

Modules import the Literal they need and call :func:`check_choice` at their public boundary,
so an invalid value always raises the same kind of error listing the valid ones.
"""

from __future__ import annotations

from typing import Literal, get_args

RenderBackend = Literal["auto", "cpu", "gsplat", "reference"]
RenderMode = Literal["rgb", "alpha", "depth", "median_depth", "instance"]
SceneFormat = Literal["ply", "lyra_ply", "compressed_ply", "splat", "spz", "gsplat_pt", "sog", "gltf", "usd"]  # for type hints; the formats are the keys of lyra_sim.scene.io.FORMATS
InvalidGaussianPolicy = Literal["error", "drop", "keep"]  # load_scene: NaN/Inf or zero quaternions
PlyEncoding = Literal["binary_little_endian", "binary_big_endian", "ascii"]
CoordinateFrame = Literal["opengl", "opencv", "opencv-first-camera", "z-up", "spz-rub", "unknown"]
ConvexMethod = Literal["coacd", "vhacd"]
EnvRenderer = Literal["splat", "tinyrenderer"]  # what draws an env's observation
RobotAppearance = Literal["splats", "mesh"]  # robot as link Gaussians, or a TinyRenderer composite
ObservationMode = Literal["rgb", "depth", "instance"]  # image keys of an env's observation
DensityControl = Literal["adc", "mcmc"]
KitKind = Literal["tabletop", "room"]
PhotoLighting = Literal["flat", "shaded"]
CameraTrajectory = Literal["orbit", "hemisphere", "walkthrough"]
DatasetFormat = Literal["auto", "nerfstudio", "colmap", "lyra"]
ReconstructionInit = Literal["auto", "points", "depth", "random"]
TrajectoryKind = Literal["orbit_left", "orbit_right", "forward", "backward", "up", "down"]
VaeKind = Literal["cosmos", "wan"]
DecoderPreset = Literal["tiny", "base"]
DistillTarget = Literal["rendered", "decoded"]
UpAxis = Literal["auto", "+X", "-X", "+Y", "-Y", "+Z", "-Z"]
FusionDepth = Literal["median_depth", "depth"]
FusionCameras = Literal["auto", "capture", "virtual"]  # scenery meshing: the capture cameras or virtual orbits
BundleKind = Literal["auto", "scene", "object"]  # build: decide from the evidence, or force one
ExportFormat = Literal["urdf", "mjcf", "usd"]  # lyra-sim export --format
TrackEnd = Literal["loop", "stop"]  # a dynamic bundle's moving cluster after its last stored step


def check_choice(value: str, choices, name: str) -> str:
    """Return ``value`` if it is one of ``choices`` (a Literal type or an iterable of strings).

    Raises ValueError naming the argument and listing the valid values.
    """
    valid = get_args(choices) or tuple(choices)
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, valid))}")
    return value

"""``lyra-sim render``: render a splat file to a PNG from a sensible default viewpoint (or a given one)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lyra_sim.cli import option
from lyra_sim.errors import LyraSimError
from lyra_sim.typed import RenderBackend

# Which world direction is "up" for each frame a scene may be in (SceneMetadata.frame).
UP_BY_FRAME = {
    "z-up": (0.0, 0.0, 1.0),
    "opengl": (0.0, 1.0, 0.0),
    "spz-rub": (0.0, 1.0, 0.0),
    "opencv": (0.0, -1.0, 0.0),
    "opencv-first-camera": (0.0, -1.0, 0.0),
    "unknown": (0.0, 0.0, 1.0),
}
DEPTH_PNG_SCALE = 1000.0  # 16-bit depth PNGs store millimetres for metric scenes (units x 1000)
# Largest image the command renders: 16384 px a side and 64 Mpx in all (the renderer keeps a
# few float32 planes per pixel: ~1.5 GB at the limit; 100000 x 100000 would need 112 GiB).
MAX_IMAGE_SIDE = 16384
MAX_IMAGE_PIXELS = 1 << 26


@dataclass
class Config:
    """Render a splat file to an image.

    By default a scene with capture cameras (found beside the file: our sidecar, INRIA
    cameras.json, transforms.json, COLMAP sparse/) is seen from its most central capture camera.
    Otherwise the camera looks at the centre of the scene's robust bounds (5th-95th percentile
    of the opaque Gaussians, so floaters and far field do not push it away) from outside them,
    45 degrees around and 30 degrees above, with the up axis of the scene's frame (+Z for z-up
    scenes). Scenes in Lyra's "opencv-first-camera" frame are seen from their first camera
    (identity pose) unless a viewpoint is given. --eye/--target
    place the camera explicitly; --orbit-angle/--elevation/--distance move it around the centre.
    """

    scene: str = option(help="splat file to render (.ply, compressed .ply, .splat, .spz, .pt)", positional=True)
    out: str = option(help="output image (.png or .jpg)", short="-o")
    width: int = option(help=f"image width in pixels (at most {MAX_IMAGE_SIDE}, and {MAX_IMAGE_PIXELS} pixels in all)", default=512)
    height: int = option(help=f"image height in pixels (at most {MAX_IMAGE_SIDE})", default=512)
    fov: float = option(help="vertical field of view in degrees, in (0, 180)", default=60.0)
    orbit_angle: float | None = option(help="azimuth of the camera around the up axis, degrees (default 45)", default=None)
    elevation: float | None = option(help="elevation above the horizontal plane, degrees (default 30)", default=None)
    distance: float | None = option(help="camera distance from the target (default: fits the robust bounds)", default=None)
    eye: list[float] | None = option(help="camera position X Y Z (overrides the orbit options)", default=None)
    target: list[float] | None = option(help="point to look at X Y Z (default: robust bounds centre)", default=None)
    up: list[float] | None = option(help="up direction X Y Z (default: from the scene's frame)", default=None)
    backend: RenderBackend = option(help="renderer backend", default="auto")
    sh_degree: int | None = option(help="SH degree to evaluate (default: all stored)", default=None, choices=[0, 1, 2, 3])
    background: list[float] | None = option(help="background colour R G B in [0, 1] (default black)", default=None)
    depth_out: str | None = option(help="also write depth: .png (16-bit, units x 1000) or .npy (float32)", default=None)
    lod: bool = option(help="merge sub-pixel Gaussians for this resolution before rendering", default=False)


def _triple(values, name: str) -> torch.Tensor | None:
    if values is None:
        return None
    if len(values) != 3:
        raise LyraSimError(f"--{name.replace('_', '-')} takes 3 numbers, got {len(values)}")
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def default_camera(scene, config: Config):
    """The camera the command renders from (see ``Config``'s docstring for the rules)."""
    from lyra_sim.render.camera import Camera, horizontal_basis, intrinsics_from_fov

    eye, target, up = _triple(config.eye, "eye"), _triple(config.target, "target"), _triple(config.up, "up")
    frame = scene.metadata.frame
    viewpoint_given = any(v is not None for v in (config.eye, config.target, config.orbit_angle, config.elevation, config.distance))
    if scene.metadata.cameras is not None and not viewpoint_given and up is None:
        return scene.metadata.cameras.viewpoint(config.width, config.height)
    if frame == "opencv-first-camera" and not viewpoint_given:
        # Lyra's world is its first camera: identity pose, looking down +Z.
        if len(scene) == 0:
            return Camera(intrinsics_from_fov(config.fov, config.width, config.height), torch.eye(4), config.width, config.height)
        depth = scene.means[:, 2]
        in_front = depth[depth > 0]
        far = float(in_front.max()) * 2.0 if len(in_front) else 1000.0
        return Camera(intrinsics_from_fov(config.fov, config.width, config.height), torch.eye(4), config.width, config.height,
                      near=0.01, far=max(far, 1.0))
    if up is None:
        up = torch.tensor(UP_BY_FRAME.get(frame, UP_BY_FRAME["unknown"]), dtype=torch.float64)
    if len(scene):
        opaque = scene[scene.opacities() >= 0.5]
        framed = opaque if len(opaque) >= 100 else scene
        low, high = framed.bounds(percentile=5.0 if len(framed) >= 100 else 0.0)
        low, high = low.double(), high.double()
    else:
        low, high = -torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    centre = (low + high) / 2
    radius = max(float((high - low).norm()) / 2, 1e-3)
    if target is None:
        target = centre
    if eye is None:
        azimuth = math.radians(45.0 if config.orbit_angle is None else config.orbit_angle)
        elevation = math.radians(30.0 if config.elevation is None else config.elevation)
        up_unit = up / up.norm()
        axis_a, axis_b = horizontal_basis(up_unit)  # for +Z up: +X and +Y
        half_fov = math.radians(min(config.fov, config.fov * config.width / config.height) / 2)
        distance = config.distance if config.distance is not None else 1.1 * radius / math.sin(half_fov)
        direction = math.cos(elevation) * (math.cos(azimuth) * axis_a + math.sin(azimuth) * axis_b) + math.sin(elevation) * up_unit
        eye = target + distance * direction
    _check_view(eye, target, up)
    reach = float((eye - target).norm()) + 2 * radius
    return Camera.look_at(eye, target, up, config.fov, config.width, config.height, near=1e-3 * reach, far=1e3 * reach)


def _write_image(path: Path, array: np.ndarray) -> None:
    """Write an image atomically; the format comes from the file suffix."""
    from PIL import Image

    from lyra_sim.io_utils import atomic_path

    formats = Image.registered_extensions()
    image_format = formats.get(path.suffix.lower())
    if image_format is None:
        raise LyraSimError(f"{path}: unknown image format {path.suffix!r}; use .png or .jpg")
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format=image_format)


def check_options(config: Config) -> None:
    """Every option checked before the scene is read (``UsageError`` naming the option)."""
    from lyra_sim.commands.checks import UsageError, check_output, finite, finite_vector

    if config.width < 1 or config.height < 1:
        raise UsageError(f"--width and --height must be >= 1, got {config.width}x{config.height}")
    if max(config.width, config.height) > MAX_IMAGE_SIDE or config.width * config.height > MAX_IMAGE_PIXELS:
        raise UsageError(f"--width {config.width} --height {config.height}: images are limited to {MAX_IMAGE_SIDE} pixels a side and {MAX_IMAGE_PIXELS} pixels in all")
    finite(config.fov, "--fov", low=0.0, high=180.0, open_interval=True)
    finite(config.orbit_angle, "--orbit-angle")
    finite(config.elevation, "--elevation", low=-90.0, high=90.0)
    finite(config.distance, "--distance", positive=True)
    for name in ("eye", "target", "up", "background"):
        finite_vector(getattr(config, name), f"--{name}")
    if config.up is not None and math.hypot(*config.up) < 1e-12:
        raise UsageError(f"--up {' '.join(f'{v:g}' for v in config.up)}: the up direction must not be zero")
    if config.eye is not None and config.target is not None and math.dist(config.eye, config.target) < 1e-12:
        raise UsageError("--eye and --target are the same point: the camera would not know where to look")
    if config.background is not None and not all(0.0 <= v <= 1.0 for v in config.background):
        raise UsageError(f"--background must be R G B in [0, 1], got {' '.join(f'{v:g}' for v in config.background)}")
    check_output(config.out, "--out", suffixes=(".png", ".jpg", ".jpeg"))
    if config.depth_out is not None:
        check_output(config.depth_out, "--depth-out", suffixes=(".png", ".npy"))


def _check_view(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> None:
    from lyra_sim.commands.checks import UsageError

    forward = target - eye
    if float(forward.norm()) < 1e-12 * max(1.0, float(target.norm())):
        raise UsageError("the camera is at its target (use --eye, --target or --distance to move it)")
    sine = float(torch.linalg.cross(forward / forward.norm(), up / up.norm()).norm())
    if sine < 1e-6:
        raise UsageError("the up direction is parallel to the viewing direction (change --up, --elevation or --eye)")


def run(config: Config) -> int:
    from lyra_sim.render.api import render, resolve_backend
    from lyra_sim.scene.io import load_scene

    check_options(config)
    out = Path(config.out)
    background = _triple(config.background, "background")

    scene = load_scene(config.scene, invalid="drop")
    cameras = default_camera(scene, config)
    rendered_scene = scene
    if config.lod:
        from lyra_sim.render.lod import decimate_for_resolution

        rendered_scene = decimate_for_resolution(scene, cameras)
    modes = ("rgb", "depth") if config.depth_out else ("rgb",)
    start = time.perf_counter()
    images = render(rendered_scene, cameras, modes=modes, backend=config.backend, sh_degree=config.sh_degree,
                    background=None if background is None else background.float())
    seconds = time.perf_counter() - start

    rgb = (images["rgb"][0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    _write_image(out, rgb)
    if config.depth_out:
        depth = images["depth"][0, ..., 0].cpu().numpy().astype(np.float32)
        depth_path = Path(config.depth_out)
        if depth_path.suffix.lower() == ".npy":
            from lyra_sim.io_utils import atomic_path

            with atomic_path(depth_path) as temporary:
                with open(temporary, "wb") as handle:
                    np.save(handle, depth)
        else:
            _write_image(depth_path, np.clip(np.round(depth * DEPTH_PNG_SCALE), 0, 65535).astype(np.uint16))
    position = ", ".join(f"{v:.3g}" for v in cameras.position[0].tolist())
    counts = f"{len(rendered_scene)} of {len(scene)}" if config.lod else f"{len(scene)}"
    print(
        f"wrote {out} ({config.width}x{config.height}, {counts} Gaussians, backend {resolve_backend(config.backend)}, "
        f"camera at ({position}), {seconds:.2f} s)"
    )
    return 0

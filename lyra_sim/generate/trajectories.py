"""Lyra-style multi-trajectory camera paths that start at one input view.

Lyra (after GEN3C) generates several videos from one image, each following its own camera path
from the input view: orbit left and right, dolly forward and back, orbit up and down. All paths
start exactly at the input camera, so frame 0 of every video is the input image.

Everything here is plain torch on 4x4 matrices in the OpenCV camera convention (x right, y down,
z forward; ``viewmat`` is world-to-camera). Paths are built in the input camera's frame and then
carried into the world with the input camera's pose, so the same code serves Lyra's own frame
("opencv-first-camera": the input viewmat is the identity) and a known scene's world frame.
This module may import torch and ``lyra_sim.typed`` only (the renderer's ``Camera`` is imported
lazily by :meth:`Trajectory.camera`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from lyra_sim.typed import TrajectoryKind, check_choice

DEFAULT_TRAJECTORIES: tuple[str, ...] = ("orbit_left", "orbit_right", "forward", "backward", "up", "down")


@dataclass
class Trajectory:
    """One camera path: ``len(viewmats)`` frames of a pinhole camera.

    Attributes:
        name: the trajectory kind ("orbit_left", ...).
        viewmats: world-to-camera matrices [T, 4, 4] (OpenCV convention).
        Ks: intrinsics [T, 3, 3] in pixels (pixel centres at +0.5).
        width, height: image size in pixels.
    """

    name: str
    viewmats: torch.Tensor  # [T, 4, 4]
    Ks: torch.Tensor  # [T, 3, 3]
    width: int
    height: int

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def camera(self):
        """The path as one batched ``lyra_sim.render.camera.Camera`` (T cameras)."""
        from lyra_sim.render.camera import Camera

        return Camera(self.Ks, self.viewmats, self.width, self.height)


def rotation_about_axis(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] by ``angle`` [...] (radians) about the unit ``axis`` [3] (Rodrigues)."""
    axis = axis / axis.norm()
    x, y, z = axis.tolist()
    cross = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], dtype=angle.dtype)
    outer = torch.outer(axis, axis).to(angle.dtype)
    c, s = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    return c * torch.eye(3, dtype=angle.dtype) + s * cross + (1 - c) * outer


def relative_poses(
    kind: str,
    num_frames: int,
    focus_depth: float = 1.0,
    orbit_degrees: float = 30.0,
    dolly_fraction: float = 0.5,
) -> torch.Tensor:  # [T, 4, 4]
    """Camera-to-input-camera poses [T, 4, 4] of one trajectory kind; pose 0 is the identity.

    Args:
        kind: one of ``lyra_sim.typed.TrajectoryKind``.
        num_frames: T >= 1.
        focus_depth: distance along the input view's optical axis of the point that orbits turn
            about (the scene's subject), in scene units.
        orbit_degrees: total orbit angle at the last frame (left/right about the camera's up axis,
            up/down about its x axis); orbiting cameras keep looking at the focus point.
        dolly_fraction: forward/backward travel at the last frame, as a fraction of ``focus_depth``
            (must stay < 1 so a forward dolly never passes the focus point).
    """
    check_choice(kind, TrajectoryKind, "trajectory kind")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0.0 <= dolly_fraction < 1.0:
        raise ValueError(f"dolly_fraction must be in [0, 1), got {dolly_fraction}")
    if focus_depth <= 0:
        raise ValueError(f"focus_depth must be > 0, got {focus_depth}")
    # Smooth ease-in/out progress 0 -> 1 so the video model sees no jerk at either end.
    linear = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64) if num_frames > 1 else torch.zeros(1, dtype=torch.float64)
    progress = 0.5 - 0.5 * torch.cos(math.pi * linear)
    poses = torch.eye(4, dtype=torch.float64).repeat(num_frames, 1, 1)
    if kind in ("forward", "backward"):
        sign = 1.0 if kind == "forward" else -1.0
        poses[:, 2, 3] = sign * dolly_fraction * focus_depth * progress
        return poses.float()
    # Orbits: rotate the camera centre about the focus point; the camera turns by the same
    # rotation, so it keeps the focus point on its optical axis.
    axis = torch.tensor([0.0, 1.0, 0.0] if kind in ("orbit_left", "orbit_right") else [1.0, 0.0, 0.0], dtype=torch.float64)
    # centre = focus - R focus: a positive angle about +y moves the centre to -x (left), a
    # positive angle about +x moves it to +y, which is down in OpenCV.
    sign = 1.0 if kind in ("orbit_left", "down") else -1.0
    angles = sign * math.radians(orbit_degrees) * progress
    rotations = rotation_about_axis(axis, angles)  # [T, 3, 3]
    focus = torch.tensor([0.0, 0.0, focus_depth], dtype=torch.float64)
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = focus - rotations @ focus
    return poses.float()


def lyra_trajectories(
    input_viewmat: torch.Tensor,  # [4, 4]
    K: torch.Tensor,  # [3, 3]
    width: int,
    height: int,
    num_frames: int,
    kinds: Sequence[str] = DEFAULT_TRAJECTORIES,
    focus_depth: float = 1.0,
    orbit_degrees: float = 30.0,
    dolly_fraction: float = 0.5,
) -> list[Trajectory]:
    """Lyra's multi-trajectory set: one :class:`Trajectory` per kind, each starting at the input view.

    ``input_viewmat`` is the world-to-camera matrix of the input view (the identity in Lyra's
    own "opencv-first-camera" frame); ``K`` is shared by every frame. See
    :func:`relative_poses` for the meaning of the path parameters.
    """
    input_viewmat = torch.as_tensor(input_viewmat, dtype=torch.float32)
    K = torch.as_tensor(K, dtype=torch.float32)
    if input_viewmat.shape != (4, 4):
        raise ValueError(f"input_viewmat must have shape [4, 4], got {list(input_viewmat.shape)}")
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape [3, 3], got {list(K.shape)}")
    if not kinds:
        raise ValueError("at least one trajectory kind is needed")
    input_c2w = torch.linalg.inv(input_viewmat.double())
    trajectories = []
    for kind in kinds:
        relative = relative_poses(kind, num_frames, focus_depth, orbit_degrees, dolly_fraction).double()
        viewmats = torch.linalg.inv(input_c2w @ relative).float()  # [T, 4, 4]
        trajectories.append(Trajectory(kind, viewmats, K.expand(num_frames, 3, 3).clone(), width, height))
    return trajectories


def stack_trajectories(trajectories: Sequence[Trajectory]) -> tuple[torch.Tensor, torch.Tensor]:
    """Viewmats [V, T, 4, 4] and Ks [V, T, 3, 3] of V trajectories that share T, width and height."""
    if not trajectories:
        raise ValueError("no trajectories to stack")
    first = trajectories[0]
    for trajectory in trajectories[1:]:
        if (len(trajectory), trajectory.width, trajectory.height) != (len(first), first.width, first.height):
            raise ValueError(
                f"trajectory {trajectory.name!r} has {len(trajectory)} frames of {trajectory.width}x{trajectory.height}, "
                f"but {first.name!r} has {len(first)} frames of {first.width}x{first.height}"
            )
    return torch.stack([t.viewmats for t in trajectories]), torch.stack([t.Ks for t in trajectories])

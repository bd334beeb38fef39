"""Dynamic test sequences from the scene kits: one object moved along a path, per-time Gaussians.

:func:`moving_object_sequence` samples a kit's surfaces into Gaussians once and moves one movable
object's Gaussians along a straight path (with a turn about +Z) over ``frames`` steps; the
Gaussians of every frame correspond by index, as a dynamic 3DGS stores them. ``noise`` makes a
reconstruction-like variant: every Gaussian of every frame jitters (means by ``noise`` metres
RMS per axis, opacity logits by ``noise`` x 10), so nothing is exactly static.
:func:`write_sequence` writes the frames as Lyra-format PLYs (``frame_0000.ply``, ...), the
folder ``lyra_sim.scene.io.load_sequence`` and ``lyra-sim build`` read.

May import numpy, torch and lyra_sim (kits, scene).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lyra_sim.scene.gaussian_scene import GaussianScene


@dataclass
class MovingSequence:
    """A synthetic dynamic sequence and its truth.

    Attributes:
        frames: T scenes of N Gaussians (world = the kit's frame: +Z up, metres).
        moving: [N] bool, the moved object's Gaussians.
        object_name: the kit object that moves.
        positions: [T, 3] the object's centre at each step.
        yaws: [T] its turn about +Z (radians) from frame 0.
        kit: the scene kit.
    """

    frames: list[GaussianScene]
    moving: np.ndarray
    object_name: str
    positions: np.ndarray
    yaws: np.ndarray
    kit: object


def moving_object_sequence(
    kind: str = "room",
    *,
    seed: int = 0,
    gaussians: int = 4000,
    frames: int = 12,
    distance: float = 1.0,
    turn_deg: float = 45.0,
    noise: float = 0.0,
    direction: tuple[float, float] | None = None,
    return_trip: bool = False,
    **kit_options,
) -> MovingSequence:
    """The ``kind`` kit with its first movable object moved ``distance`` metres along ``direction``
    (default: towards the kit's focus) while turning ``turn_deg``, over ``frames`` steps; with
    ``return_trip`` it goes there and back (the last frame equals the first, so a looped track
    has no jump)."""
    from lyra_sim.kits import make_scene
    from lyra_sim.scene.transforms import transform_scene

    if frames < 2:
        raise ValueError(f"a sequence needs at least 2 frames, got {frames}")
    kit = make_scene(kind, seed=seed, **kit_options)
    scene, labels = kit.to_gaussians(gaussians, seed=seed)
    movers = [index for index, obj in enumerate(kit.objects) if obj.movable]
    if not movers:
        raise ValueError(f"the {kind} kit has no movable object to move")
    index = movers[0]
    moving = labels == index
    obj = kit.objects[index]
    centre = scene.means[torch.from_numpy(moving)].detach().numpy().astype(np.float64).mean(0)
    if direction is None:
        offset = np.asarray(kit.focus[:2], np.float64) - centre[:2]
        direction = offset / max(np.linalg.norm(offset), 1e-9)
    direction = np.array([direction[0], direction[1], 0.0]) / np.linalg.norm(direction)
    fractions = np.linspace(0.0, 1.0, frames)
    if return_trip:
        fractions = 1.0 - np.abs(np.linspace(-1.0, 1.0, frames))
    positions = centre[None] + fractions[:, None] * distance * direction[None]
    yaws = np.radians(turn_deg) * fractions
    rng = np.random.default_rng(seed + 7919)
    selection = torch.from_numpy(moving)
    local = transform_scene(scene[selection], np.eye(3), -centre, 1.0)
    sequence = []
    for t in range(frames):
        cos, sin = np.cos(yaws[t]), np.sin(yaws[t])
        rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        frame = scene.clone()
        moved = transform_scene(local, rotation, positions[t], 1.0)
        frame.means.data[selection] = moved.means.detach()
        frame.quats.data[selection] = moved.quats.detach()
        if noise > 0:
            frame.means.data += torch.from_numpy(rng.normal(0.0, noise, frame.means.shape)).to(frame.means.dtype)
            frame.opacity_logits.data += torch.from_numpy(rng.normal(0.0, 10.0 * noise, frame.opacity_logits.shape)).to(frame.means.dtype)
        frame.metadata.frame = "z-up"
        frame.metadata.metric = True
        sequence.append(frame)
    return MovingSequence(sequence, moving, obj.name, positions, yaws, kit)


# Lyra's world is its first camera in OpenCV convention (x right, y down, z forward). The kit
# sequences are written as seen from a camera at (0, 0, LYRA_CAMERA_HEIGHT) looking along +X, level.
LYRA_CAMERA_HEIGHT = 1.5  # m: lyra-sim's camera-height prior, so a build recovers the metric scale
LYRA_FROM_KIT = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, LYRA_CAMERA_HEIGHT], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def write_sequence(frames, folder) -> Path:
    """Write kit-frame (+Z up) ``frames`` as ``folder/frame_0000.ply`` ... in Lyra's dynamic output
    layout: Lyra PLYs (f_dc only) in its first-camera OpenCV frame (``LYRA_FROM_KIT``: source =
    LYRA_FROM_KIT @ kit); returns ``folder``."""
    from lyra_sim.scene.io import save_scene
    from lyra_sim.scene.transforms import transform_scene

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        lyra = transform_scene(frame.with_sh_degree(0), LYRA_FROM_KIT[:3, :3], LYRA_FROM_KIT[:3, 3], frame="opencv-first-camera")
        save_scene(lyra, folder / f"frame_{t:04d}.ply", format="lyra_ply", cameras=False)
    return folder

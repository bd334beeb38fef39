"""Virtual cameras that cover a scene for depth fusion: orbits at several elevations around a box,
plus inside-out views from eye height for rooms.

Returns ``lyra_sim.render.camera.Camera`` batches in our world frame (+Z up).
"""

from __future__ import annotations

import math

import numpy as np

from lyra_sim.render.camera import Camera


def orbit_views(
    low: np.ndarray,  # [3]
    high: np.ndarray,  # [3]
    elevations_deg: tuple[float, ...] = (20.0, 45.0, 70.0),
    views_per_ring: int = 8,
    width: int = 128,
    height: int = 128,
    fov_deg: float = 60.0,
) -> Camera:
    """Cameras on rings around the box [low, high], each ring at one elevation, all looking at its centre.

    Each camera is placed as close as it can be with all 8 box corners inside the image (5%
    margin), so the box fills the frame; rings are offset by half a step so azimuths interleave.
    """
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if low.shape != (3,) or high.shape != (3,) or np.any(high < low):
        raise ValueError(f"need low [3] <= high [3], got {low.tolist()} and {high.tolist()}")
    if not elevations_deg or views_per_ring < 1:
        raise ValueError("orbit_views needs at least one elevation and one view per ring")
    center = 0.5 * (low + high)
    directions = []
    for ring, elevation in enumerate(elevations_deg):
        if not -90.0 < elevation < 90.0:
            raise ValueError(f"elevations must be in (-90, 90) degrees, got {elevation}")
        phase = 0.5 * ring * 2 * math.pi / views_per_ring
        e = math.radians(elevation)
        for k in range(views_per_ring):
            azimuth = phase + 2 * math.pi * k / views_per_ring
            directions.append([math.cos(e) * math.cos(azimuth), math.cos(e) * math.sin(azimuth), math.sin(e)])
    directions = np.array(directions)
    unit = Camera.look_at(center + directions, np.repeat(center[None], len(directions), axis=0), fov_deg=fov_deg, width=width, height=height)
    rotations = unit.viewmat[:, :3, :3].double().numpy()  # [C, 3, 3], independent of the distance
    tan_x = 0.95 * 0.5 * width / unit.K[0, 0, 0].item()
    tan_y = 0.95 * 0.5 * height / unit.K[0, 1, 1].item()
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])]) - center
    in_camera = np.einsum("cij,kj->cki", rotations, corners)  # [C, 8, 3] at distance 0
    # A corner at camera coordinates p + (0, 0, D) is in view when |p_x| <= tan_x (p_z + D).
    needed = np.maximum(np.abs(in_camera[..., 0]) / tan_x, np.abs(in_camera[..., 1]) / tan_y) - in_camera[..., 2]
    diagonal = max(float(np.linalg.norm(high - low)), 1e-3)
    distance = np.maximum(needed.max(axis=1), (-in_camera[..., 2]).max(axis=1) + 0.05 * diagonal)  # box in front
    eyes = center + distance[:, None] * directions
    far = 2.0 * float(distance.max()) + diagonal
    return Camera.look_at(eyes, np.repeat(center[None], len(eyes), axis=0), fov_deg=fov_deg, width=width, height=height, near=0.01 * float(distance.min()), far=far)


def inside_out_views(
    low: np.ndarray,  # [3]
    high: np.ndarray,  # [3]
    eye_height: float = 1.5,
    directions: int = 8,
    positions_per_axis: int = 2,
    pitch_deg: float = -20.0,
    width: int = 128,
    height: int = 128,
    fov_deg: float = 75.0,
) -> Camera:
    """Cameras inside a room-sized box looking outwards: a grid of eye positions at ``eye_height``
    above ``low[2]`` (capped below the ceiling), each looking in ``directions`` azimuths,
    pitched by ``pitch_deg`` (negative looks down)."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    z = low[2] + min(eye_height, 0.8 * (high[2] - low[2]))
    fractions = (np.arange(positions_per_axis) + 0.5) / positions_per_axis
    eyes, targets = [], []
    for fx in fractions:
        for fy in fractions:
            eye = np.array([low[0] + fx * (high[0] - low[0]), low[1] + fy * (high[1] - low[1]), z])
            for k in range(directions):
                azimuth = 2 * math.pi * k / directions
                pitch = math.radians(pitch_deg)
                forward = np.array([math.cos(pitch) * math.cos(azimuth), math.cos(pitch) * math.sin(azimuth), math.sin(pitch)])
                eyes.append(eye)
                targets.append(eye + forward)
    far = 4.0 * float(np.linalg.norm(high - low)) + 1.0
    return Camera.look_at(np.array(eyes), np.array(targets), fov_deg=fov_deg, width=width, height=height, near=0.05, far=far)

"""The table top under an object of a SimBundle: its height and horizontal extent, found by rays.

:func:`find_table_top` casts vertical rays on a grid over the bundle's bounds at the scenery of
a PyBullet client (objects moved out of the way) and takes the typical raised surface around
the object, so any bundle with a flat raised surface and an object on it works, not only the
packaged tabletop. Manipulation tasks place their arm and sample targets on it.

This module may import numpy, scipy (lazily) and pybullet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pybullet

from lyra_sim.errors import BundleError

RAY_GRID = 96  # rays per side
_RAY_BATCH = 4000  # PyBullet caps a ray batch


@dataclass(frozen=True)
class TableTop:
    """A horizontal surface: height ``top`` (m, world z) over the box [low, high] in x and y."""

    top: float
    low: np.ndarray  # [2]
    high: np.ndarray  # [2]


def find_table_top(
    client_id: int,
    object_ids: Sequence[int],
    object_position: Sequence[float],  # [3] the object's initial position
    bounds_min: np.ndarray,  # [3] the bundle's bounds
    bounds_max: np.ndarray,  # [3]
    floor_height: float,
    *,
    where: str = "bundle",
    object_name: str = "object",
) -> TableTop:
    """The table top under ``object_position``: the median height of the raised scenery within
    0.3 m of it, and the connected region at that height around it (the object's own hole in the
    scenery closed). Every body of ``object_ids`` is moved far below the floor first (rays must
    hit the scenery): reset them afterwards. ``where`` names the bundle in errors.
    """
    for body_id in object_ids:
        pybullet.resetBasePositionAndOrientation(body_id, [0, 0, -50], [0, 0, 0, 1], physicsClientId=client_id)
    xs = np.linspace(bounds_min[0], bounds_max[0], RAY_GRID)
    ys = np.linspace(bounds_min[1], bounds_max[1], RAY_GRID)
    grid_x, grid_y = np.meshgrid(xs, ys, indexing="ij")
    top, bottom = bounds_max[2] + 0.5, floor_height - 0.5
    starts = [[x, y, top] for x, y in zip(grid_x.ravel(), grid_y.ravel())]
    ends = [[x, y, bottom] for x, y, _ in starts]
    hits = []
    for chunk in range(0, len(starts), _RAY_BATCH):
        hits += pybullet.rayTestBatch(starts[chunk : chunk + _RAY_BATCH], ends[chunk : chunk + _RAY_BATCH],
                                      physicsClientId=client_id)
    heights = np.array([hit[3][2] if hit[0] >= 0 else -np.inf for hit in hits]).reshape(grid_x.shape)
    # The scenery may have a hole right under the object (its Gaussians hid the table top
    # there), so the table top is the typical raised surface in a ring around it.
    distance = np.hypot(grid_x - object_position[0], grid_y - object_position[1])
    around = (distance < 0.3) & (heights > floor_height + 0.1) & (heights < object_position[2])
    if not around.any():
        raise BundleError(f"{where}: no table around object {object_name!r} "
                          f"(no raised surface within 0.3 m below it; floor at {floor_height:.3f})")
    table_top = float(np.median(heights[around]))
    on_table = np.abs(heights - table_top) < 0.015
    from scipy import ndimage

    # The object's hole is part of the table: close it before taking the connected region.
    regions, _ = ndimage.label(ndimage.binary_closing(on_table, iterations=3) | on_table)
    nearest = np.unravel_index(np.argmin(np.where(on_table, distance, np.inf)), grid_x.shape)
    region = regions == regions[nearest]
    return TableTop(table_top, np.array([grid_x[region].min(), grid_y[region].min()]),
                    np.array([grid_x[region].max(), grid_y[region].max()]))

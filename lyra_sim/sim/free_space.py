"""Free floor space of a SimBundle: where a robot of a given size fits, and geodesic distances.

:func:`free_space_grid` probes the bundle's collision geometry (scenery and objects at their
initial poses) with a collision-only cylinder on a grid over the manifest's spawn region, keeps
the largest 8-connected free region and builds the graph whose shortest paths give geodesic
distances. Navigation tasks sample starts and goals from it and reward progress along it.
Results are cached per (bundle, robot size, resolution).

This module may import numpy, scipy (lazily), pybullet and ``lyra_sim.sim``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pybullet

from lyra_sim.errors import BundleError


@dataclass
class FreeSpace:
    """Cells of the floor where the robot fits, and the 8-connected graph between them.

    Attributes:
        origin: world (x, y) of cell (0, 0)'s centre.
        resolution: cell size in metres.
        free: bool [NX, NY], the largest connected free region only.
        graph: scipy sparse matrix over the flattened cells (edge weights in metres).
    """

    origin: np.ndarray  # [2]
    resolution: float
    free: np.ndarray  # [NX, NY] bool
    graph: Any

    def cell_centre(self, flat_index: int) -> np.ndarray:  # [2]
        i, j = np.unravel_index(flat_index, self.free.shape)
        return self.origin + self.resolution * np.array([i, j], dtype=np.float64)

    def geodesic_to(self, goal_flat_index: int) -> np.ndarray:  # [NX * NY], inf where unreachable
        from scipy.sparse.csgraph import dijkstra

        return dijkstra(self.graph, directed=False, indices=goal_flat_index)

    def distance_at(self, distances: np.ndarray, xy: np.ndarray) -> float:
        """Geodesic distance at a point: the best of the 3x3 cells around it plus the straight hop."""
        cell = np.round((xy - self.origin) / self.resolution).astype(int)
        best = math.inf
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                i, j = cell[0] + di, cell[1] + dj
                if 0 <= i < self.free.shape[0] and 0 <= j < self.free.shape[1] and self.free[i, j]:
                    flat = i * self.free.shape[1] + j
                    best = min(best, distances[flat] + float(np.linalg.norm(xy - self.cell_centre(flat))))
        return best


_FREE_SPACE_CACHE: dict[tuple, FreeSpace] = {}


def free_space_grid(bundle, bundle_path: Path, floor_height: float, radius: float, height: float, resolution: float,
                    ignore_objects: tuple[str, ...] = ()) -> FreeSpace:
    """Probe the bundle's collision geometry (scenery and objects at their initial poses, but
    ``ignore_objects``: a dynamic bundle's movers) on a grid.

    A collision-only cylinder of the robot's size (lifted 2 cm off the floor, so the floor itself
    does not count) is placed at every cell of the manifest's spawn region in a private PyBullet
    client; cells where it touches nothing are free. Only the largest 8-connected free region is
    kept, so every start can reach every goal.
    """
    key = (str(bundle_path), round(radius, 4), round(height, 4), round(resolution, 4), tuple(sorted(ignore_objects)))
    if key in _FREE_SPACE_CACHE:
        return _FREE_SPACE_CACHE[key]
    from scipy import ndimage, sparse

    from lyra_sim.sim.world import load_into_pybullet

    low, high, _ = bundle.spawn_region  # validated by the typed manifest (lyra_sim.bundle)
    counts = np.maximum(1, np.floor((high - low) / resolution).astype(int) + 1)
    client = pybullet.connect(pybullet.DIRECT)
    try:
        bodies = [body for name, body in load_into_pybullet(bundle, client).items() if name not in ignore_objects]
        probe_shape = pybullet.createCollisionShape(pybullet.GEOM_CYLINDER, radius=radius, height=height, physicsClientId=client)
        probe = pybullet.createMultiBody(0, probe_shape, physicsClientId=client)
        free = np.zeros(counts, dtype=bool)
        for i in range(counts[0]):
            for j in range(counts[1]):
                x, y = low + resolution * np.array([i, j])
                pybullet.resetBasePositionAndOrientation(probe, [x, y, floor_height + 0.02 + height / 2], [0, 0, 0, 1], physicsClientId=client)
                free[i, j] = not any(
                    pybullet.getClosestPoints(probe, body, 0.0, physicsClientId=client) for body in bodies
                )
    finally:
        pybullet.disconnect(client)
    components, count = ndimage.label(free, structure=np.ones((3, 3)))
    if count == 0:
        raise BundleError(f"{bundle_path}: no free floor cell in the spawn region fits a robot of radius {radius:.2f} m")
    sizes = ndimage.sum(free, components, index=np.arange(1, count + 1))
    free = components == (1 + int(np.argmax(sizes)))
    # 8-connected graph: edges to the right, up and both diagonals, weighted by length.
    flat = np.arange(free.size).reshape(free.shape)
    cells_i, cells_j = np.nonzero(free)
    rows, cols, weights = [], [], []
    for di, dj in ((1, 0), (0, 1), (1, 1), (1, -1)):
        next_i, next_j = cells_i + di, cells_j + dj
        inside = (next_i >= 0) & (next_i < free.shape[0]) & (next_j >= 0) & (next_j < free.shape[1])
        inside[inside] &= free[next_i[inside], next_j[inside]]
        rows.append(flat[cells_i[inside], cells_j[inside]])
        cols.append(flat[next_i[inside], next_j[inside]])
        weights.append(np.full(int(inside.sum()), resolution * math.hypot(di, dj)))
    graph = sparse.coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(free.size, free.size)
    ).tocsr()
    result = FreeSpace(origin=low, resolution=resolution, free=free, graph=graph)
    _FREE_SPACE_CACHE[key] = result
    return result

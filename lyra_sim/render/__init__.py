"""The splat renderer: ``Camera``, ``render()`` and its backends.

* ``camera``: batched OpenCV pinhole cameras, PyBullet conversion, trajectories.
* ``api``: ``render()``, the public entry; it validates inputs and dispatches to a backend.
* ``_reference``: the slow, readable torch implementation of the maths (tests compare against it).
* ``_cpu``: the numba CPU backend; ``_gsplat``: the gsplat CUDA backend (both lazily imported).
* ``lod``: level-of-detail decimation for small images.
"""

from __future__ import annotations

from lyra_sim.render.api import render, resolve_backend
from lyra_sim.render.camera import Camera, intrinsics_from_fov, orbit_cameras, path_cameras
from lyra_sim.render.lod import decimate_for_resolution, measure_decimation

__all__ = [
    "Camera",
    "render",
    "resolve_backend",
    "intrinsics_from_fov",
    "orbit_cameras",
    "path_cameras",
    "decimate_for_resolution",
    "measure_decimation",
]

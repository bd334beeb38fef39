"""The splat renderer: ``Camera``, ``render()`` and its backends.

* ``camera``: batched OpenCV pinhole cameras, PyBullet conversion, trajectories.
* ``api``: ``render()``, the public entry; it validates inputs and dispatches to a backend.
* ``_reference``: the slow, readable torch implementation of the maths (tests compare against it).
* ``_cpu``: the numba CPU backend; ``_gsplat``: the gsplat CUDA backend (both lazily imported).
* ``prepared``: ``prepare_scene``, the camera-independent arrays computed once per scene.
* ``lod``: level-of-detail decimation for small images.
"""

from __future__ import annotations

import sys
import types

from lyra_sim.render.api import render, resolve_backend
from lyra_sim.render.camera import Camera, intrinsics_from_fov, orbit_cameras, path_cameras
from lyra_sim.render.lod import decimate_for_resolution, measure_decimation, pixel_size_beyond
from lyra_sim.render.prepared import PreparedScene, prepare_scene

__all__ = [
    "Camera",
    "render",
    "resolve_backend",
    "intrinsics_from_fov",
    "orbit_cameras",
    "path_cameras",
    "decimate_for_resolution",
    "measure_decimation",
    "pixel_size_beyond",
    "PreparedScene",
    "prepare_scene",
]


class _CallableRenderModule(types.ModuleType):
    """``lyra_sim.render`` is both this package and the public ``render()`` function.

    Importing any ``lyra_sim.render.<submodule>`` makes Python bind the package to the
    ``lyra_sim.render`` attribute, shadowing the lazily exported function; calling the package
    forwards to ``render()`` so ``lyra_sim.render(scene, cameras)`` works either way.
    """

    def __call__(self, *args, **kwargs):
        return render(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableRenderModule

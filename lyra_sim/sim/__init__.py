"""Simulation: a SimBundle in PyBullet (``world``), the hybrid compositor (mesh robot + splats,
``compositor``) and robot links as Gaussians (``robot_splats``). Reading bundles lives in
``lyra_sim.bundle``; ``lyra_sim.sim.bundle`` is its old path (kept, with a DeprecationWarning,
until 0.2).
"""

from lyra_sim._moved import alias_moved_modules

__getattr__ = alias_moved_modules(__name__, {"bundle": "lyra_sim.bundle.loader"})

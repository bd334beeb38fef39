"""Lyra-style generation: the self-distillation decoder (``decoder``), its trainer (``distill``),
teachers (``teachers``), video VAEs (``vae``), Plücker rays (``plucker``) and camera
trajectories (``trajectories``). May import torch, diffusers (lazily) and ``lyra_sim.scene`` /
``lyra_sim.render`` (and ``lyra_sim.reconstruct.losses``); photo datasets live in ``lyra_sim.photos``, reconstruction in ``lyra_sim.reconstruct``.

Deprecated paths (kept for one release, 0.1 -> 0.2): ``lyra_sim.generate.datasets`` is now
``lyra_sim.photos``, ``lyra_sim.generate.reconstruct`` is ``lyra_sim.reconstruct.trainer``,
``lyra_sim.generate.densify`` and ``.losses`` are ``lyra_sim.reconstruct.densify`` / ``.losses``.
Importing an old path warns (DeprecationWarning) and gives the new module itself, so patching
either name patches the same object.
"""

from lyra_sim._moved import alias_moved_modules

__getattr__ = alias_moved_modules(__name__, {
    "datasets": "lyra_sim.photos",
    "reconstruct": "lyra_sim.reconstruct.trainer",
    "densify": "lyra_sim.reconstruct.densify",
    "losses": "lyra_sim.reconstruct.losses",
})

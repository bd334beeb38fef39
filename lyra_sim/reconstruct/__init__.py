"""Reconstruction: optimise a Gaussian scene from posed photos (``lyra_sim.photos``).

``trainer`` (the loop, initialisation, evaluation, checkpoints), ``densify`` (trainable parameters
and MCMC / ADC density control), ``losses`` (L1, SSIM, PSNR, depth). May import torch, numpy,
scipy, tqdm, ``lyra_sim.photos``, ``lyra_sim.scene`` and ``lyra_sim.render``; not ``lyra_sim.generate``.
"""

from lyra_sim.reconstruct.trainer import ReconstructionConfig, ReconstructionResult, evaluate, reconstruct

__all__ = ["ReconstructionConfig", "ReconstructionResult", "evaluate", "reconstruct"]

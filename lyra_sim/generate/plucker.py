"""Pixel rays and Plücker ray maps: how the decoder is told where each camera looks.

A pixel's ray is (origin o, direction d) in world space; its Plücker coordinates are
(d / |d|, o x d / |d|), six numbers that identify the line independently of where along it the
origin sits. Lyra conditions its 3DGS decoder on these maps; the decoder also places each
Gaussian on the ray of its pixel (:func:`pixel_rays`), so both share one ray convention:
OpenCV cameras, world-to-camera ``viewmat``, pixel centres at +0.5 (as the renderer).
Rays are sampled at the centres of ``stride`` x ``stride`` pixel blocks, one per latent pixel
when ``stride`` is the VAE's spatial compression. This module imports torch only.
"""

from __future__ import annotations

import torch


def _check_cameras(viewmats: torch.Tensor, Ks: torch.Tensor) -> None:
    if viewmats.shape[-2:] != (4, 4):
        raise ValueError(f"viewmats must have shape [..., 4, 4], got {list(viewmats.shape)}")
    if Ks.shape[-2:] != (3, 3) or Ks.shape[:-2] != viewmats.shape[:-2]:
        raise ValueError(f"Ks must have shape {list(viewmats.shape[:-2]) + [3, 3]}, got {list(Ks.shape)}")


def block_centres(width: int, height: int, stride: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (u [h, w], v [h, w]) of the centres of ``stride`` x ``stride`` blocks.

    ``width`` and ``height`` must be multiples of ``stride``; h = height // stride, w = width // stride.
    """
    if stride < 1 or width % stride or height % stride:
        raise ValueError(f"image size {width}x{height} must be a multiple of the ray stride {stride}")
    us = (torch.arange(width // stride, dtype=torch.float32, device=device) + 0.5) * stride
    vs = (torch.arange(height // stride, dtype=torch.float32, device=device) + 0.5) * stride
    v, u = torch.meshgrid(vs, us, indexing="ij")
    return u, v


def pixel_rays(
    viewmats: torch.Tensor,  # [..., 4, 4] world-to-camera
    Ks: torch.Tensor,  # [..., 3, 3]
    u: torch.Tensor,  # [..., h, w] pixel x coordinates (broadcast against the camera dims)
    v: torch.Tensor,  # [..., h, w] pixel y coordinates
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray origins [..., 3] and directions [..., h, w, 3] through pixels (u, v).

    Directions are *not* normalised: their camera-space z component is 1, so ``origin + z * d``
    is the point at camera depth z (the renderer's depth convention).
    """
    _check_cameras(viewmats, Ks)
    rotation = viewmats[..., :3, :3]  # [..., 3, 3] world -> camera
    translation = viewmats[..., :3, 3]  # [..., 3]
    origins = -(rotation.transpose(-1, -2) @ translation.unsqueeze(-1)).squeeze(-1)  # [..., 3]
    fx, fy = Ks[..., 0, 0, None, None], Ks[..., 1, 1, None, None]
    cx, cy = Ks[..., 0, 2, None, None], Ks[..., 1, 2, None, None]
    x = (u - cx) / fx
    y = (v - cy) / fy
    camera_dirs = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # [..., h, w, 3]
    # d_world = R^T d_cam, written as a row-vector product to broadcast over the pixel grid.
    directions = camera_dirs @ rotation[..., None, :, :]
    return origins, directions


def plucker_rays(
    viewmats: torch.Tensor,  # [..., 4, 4]
    Ks: torch.Tensor,  # [..., 3, 3]
    width: int,
    height: int,
    stride: int = 8,
) -> torch.Tensor:  # [..., 6, height // stride, width // stride]
    """Plücker ray maps (unit direction, moment o x d) sampled once per ``stride`` block.

    Channel layout: 0-2 the unit direction, 3-5 the moment. ``stride`` = the VAE's spatial
    compression gives one ray per latent pixel.
    """
    viewmats = torch.as_tensor(viewmats, dtype=torch.float32)
    Ks = torch.as_tensor(Ks, dtype=torch.float32, device=viewmats.device)
    u, v = block_centres(width, height, stride, device=viewmats.device)
    origins, directions = pixel_rays(viewmats, Ks, u, v)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    moments = torch.linalg.cross(origins[..., None, None, :].expand_as(directions), directions, dim=-1)
    return torch.cat([directions, moments], dim=-1).movedim(-1, -3).contiguous()

"""Surface-aware training terms: make the Gaussians a surface that meshes well (2DGS / PGSR style).

Four regularisers, each weighted by a ``ReconstructionConfig`` field (0 turns it off):

* **minimum scale** (``min_scale_weight``, 2DGS/PGSR "flatten"): the mean over Gaussians of the
  smallest of the three scales, divided by the scene extent. It flattens Gaussians into surfels
  whose short axis is a surface normal.
* **opacity binarisation** (``opacity_binary_weight``): the mean of o·(1-o). Its gradient pushes
  each opacity toward the nearer of 0 and 1, so surfaces become solid (the mesher's alpha > 0.5
  test holds where the photos show something) and semi-transparent fog goes.
* **depth distortion** (``distortion_weight``, Mip-NeRF 360 / 2DGS): per pixel
  ½ Σᵢⱼ wᵢ wⱼ (zᵢ - zⱼ)² = A·Σ wᵢ zᵢ² - (Σ wᵢ zᵢ)², with A = Σ wᵢ the pixel's alpha and z the
  camera depth of each Gaussian's centre divided by the scene extent; it concentrates a ray's
  weights at one depth.
* **depth-normal consistency** (``normal_weight``, 2DGS): per pixel with alpha > 0.5,
  1 - n_depth · n_splat, where n_depth is the normal of the rendered depth map (central
  differences of the back-projected points) and n_splat the alpha-blended short axes of the
  Gaussians (each turned to face the camera), normalised.

The last two need per-pixel sums of per-Gaussian values the renderer does not output. They are
rendered through the renderer's differentiable colour channel: a degree-0 scene whose colours
are the features (camera-frame normals encoded as 0.5 + 0.5 n, or z²), composited over black,
so Σ wᵢ fᵢ is the rendered "rgb" and its gradient is the renderer's own hand-written backward
(checked against the torch reference, and here against finite differences, in the tests). The
features are functions of the Gaussians in torch, so the gradient reaches the quaternions
(normals) and the centres (z²) through autograd as well.

This module imports torch and lyra_sim.render only.
"""

from __future__ import annotations

import torch

from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene

SH_C0 = 0.28209479177387814


def min_scale_loss(log_scales: torch.Tensor, extent: float) -> torch.Tensor:  # log_scales [N, 3] -> []
    """Mean smallest scale over Gaussians, in units of the scene extent."""
    if log_scales.shape[0] == 0:
        return log_scales.sum() * 0.0
    return torch.exp(log_scales.min(dim=1).values).mean() / extent


def opacity_binary_loss(opacity_logits: torch.Tensor) -> torch.Tensor:  # [N] -> []
    """Mean o·(1-o): 0 when every opacity is 0 or 1, 0.25 at most."""
    if opacity_logits.shape[0] == 0:
        return opacity_logits.sum() * 0.0
    opacity = torch.sigmoid(opacity_logits)
    return (opacity * (1.0 - opacity)).mean()


def _rotation_matrices(quats: torch.Tensor) -> torch.Tensor:  # [N, 4] (w, x, y, z) -> [N, 3, 3]
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(-1, 3, 3)


def gaussian_normals(quats: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:  # [N, 4], [N, 3] -> [N, 3]
    """World-frame unit normal of each Gaussian: the rotation's column of its smallest scale."""
    rotations = _rotation_matrices(quats)
    shortest = log_scales.detach().argmin(dim=1)
    return torch.gather(rotations, 2, shortest.view(-1, 1, 1).expand(-1, 3, 1)).squeeze(-1)


def _feature_scene(scene: GaussianScene, features: torch.Tensor) -> GaussianScene:  # features [N, 3] >= 0
    """The scene's geometry with degree-0 colours equal to ``features`` (the renderer clamps at 0 only)."""
    sh = ((features - 0.5) / SH_C0).unsqueeze(1)  # [N, 1, 3]
    return GaussianScene(scene.means, scene.quats, scene.log_scales, scene.opacity_logits, sh)


def _camera_frame(scene: GaussianScene, camera: Camera) -> tuple[torch.Tensor, torch.Tensor]:  # [3, 3], [N, 3]
    viewmat = camera.viewmat.reshape(4, 4).to(scene.means.dtype)
    rotation = viewmat[:3, :3]
    return rotation, scene.means @ rotation.T + viewmat[:3, 3]


def render_normals(scene: GaussianScene, camera: Camera, backend: str) -> torch.Tensor:  # -> [H, W, 3]
    """Σ wᵢ nᵢ per pixel: camera-frame Gaussian normals turned toward the camera, alpha-blended."""
    from lyra_sim.render.api import render

    rotation, centres = _camera_frame(scene, camera)
    normals = gaussian_normals(scene.quats, scene.log_scales) @ rotation.T  # camera frame
    facing = torch.where((normals * centres).sum(-1, keepdim=True) > 0, -1.0, 1.0)
    normals = normals * facing
    out = render(_feature_scene(scene, 0.5 + 0.5 * normals), camera, modes=("rgb", "alpha"), backend=backend,
                 background=[0.0, 0.0, 0.0], sh_degree=0)
    # rgb = Σ wᵢ (0.5 + 0.5 nᵢ) = 0.5 A + 0.5 Σ wᵢ nᵢ
    return 2.0 * out["rgb"][0] - out["alpha"][0]


def render_depth_squared(scene: GaussianScene, camera: Camera, backend: str, extent: float) -> torch.Tensor:  # [H, W, 1]
    """Σ wᵢ (zᵢ / extent)² per pixel (z: camera depth of each Gaussian's centre)."""
    from lyra_sim.render.api import render

    _, centres = _camera_frame(scene, camera)
    z2 = (centres[:, 2] / extent) ** 2
    features = torch.stack([z2, torch.zeros_like(z2), torch.zeros_like(z2)], -1)
    return render(_feature_scene(scene, features), camera, modes=("rgb",), backend=backend,
                  background=[0.0, 0.0, 0.0], sh_degree=0)["rgb"][0, ..., :1]


def distortion_loss(
    depth: torch.Tensor,  # [H, W, 1] alpha-normalised expected depth (render's "depth")
    alpha: torch.Tensor,  # [H, W, 1]
    depth_squared: torch.Tensor,  # [H, W, 1] Σ w (z/extent)²
    extent: float,
) -> torch.Tensor:  # []
    """Mean over pixels of A·Σ w z² - (Σ w z)² (= ½ Σᵢⱼ wᵢ wⱼ (zᵢ - zⱼ)², depths / extent)."""
    first = depth * alpha / extent  # Σ w z
    return (alpha * depth_squared - first * first).mean()


def depth_normals(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:  # [H, W, 1], [3, 3] -> [H-2, W-2, 3]
    """Camera-frame unit normals of a depth map (central differences), facing the camera."""
    height, width = depth.shape[:2]
    dtype = depth.dtype
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    K = K.to(dtype)
    rays = torch.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    points = depth * rays  # [H, W, 3]
    along_u = points[1:-1, 2:] - points[1:-1, :-2]
    along_v = points[2:, 1:-1] - points[:-2, 1:-1]
    # OpenCV axes (x right, y down, z forward): v x u points back toward the camera
    normals = torch.linalg.cross(along_v, along_u, dim=-1)
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def normal_consistency_loss(
    depth: torch.Tensor,  # [H, W, 1]
    alpha: torch.Tensor,  # [H, W, 1]
    blended_normals: torch.Tensor,  # [H, W, 3] Σ w n (render_normals)
    K: torch.Tensor,  # [3, 3]
) -> torch.Tensor:  # []
    """Mean of 1 - n_depth · n_splat over interior pixels where alpha > 0.5 (and its neighbours')."""
    from_depth = depth_normals(depth, K)
    splat = blended_normals[1:-1, 1:-1]
    splat = splat / splat.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    solid = (alpha.detach()[..., 0] > 0.5).float()
    mask = (solid[1:-1, 1:-1] * solid[1:-1, 2:] * solid[1:-1, :-2] * solid[2:, 1:-1] * solid[:-2, 1:-1]) > 0
    if not bool(mask.any()):
        return depth.sum() * 0.0
    return (1.0 - (from_depth * splat).sum(-1))[mask].mean()


def surface_loss(
    scene: GaussianScene,
    cameras: Camera,  # C cameras
    depth: torch.Tensor,  # [C, H, W, 1] the training render's depth
    alpha: torch.Tensor,  # [C, H, W, 1] the training render's alpha
    *,
    extent: float,
    backend: str,
    min_scale_weight: float,
    opacity_binary_weight: float,
    distortion_weight: float,
    normal_weight: float,
    step: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the four terms (see the module docstring) and each term's value.

    With both render-based terms on, even steps render normals and odd steps depth² (one extra
    render per step instead of two; each term is then applied every other step at its weight).
    """
    terms: dict[str, torch.Tensor] = {}
    if min_scale_weight:
        terms["min_scale"] = min_scale_weight * min_scale_loss(scene.log_scales, extent)
    if opacity_binary_weight:
        terms["opacity_binary"] = opacity_binary_weight * opacity_binary_loss(scene.opacity_logits)
    render_terms = [name for name, weight in (("normal", normal_weight), ("distortion", distortion_weight)) if weight]
    if render_terms:
        chosen = render_terms[step % len(render_terms)]
        values = []
        for c in range(len(cameras)):
            camera = cameras[c : c + 1]
            if chosen == "normal":
                normals = render_normals(scene, camera, backend)
                values.append(normal_consistency_loss(depth[c], alpha[c], normals, camera.K.reshape(3, 3)))
            else:
                squared = render_depth_squared(scene, camera, backend, extent)
                values.append(distortion_loss(depth[c], alpha[c], squared, extent))
        weight = normal_weight if chosen == "normal" else distortion_weight
        terms[chosen] = weight * torch.stack(values).mean()
    if not terms:
        return scene.means.sum() * 0.0, {}
    total = torch.stack(list(terms.values())).sum()
    return total, {name: float(value.detach()) for name, value in terms.items()}

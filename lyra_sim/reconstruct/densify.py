"""Trainable Gaussian parameters with their optimiser, and density control for reconstruction.

``GaussianParameters`` keeps the raw parameters (means, quats, log-scales, opacity logits, SH
DC and higher bands) as leaf tensors with one Adam group each, so rows can be copied, moved or
appended while the optimiser state stays aligned.

Density control, two strategies:

* **MCMC** (Kheradmand et al., "3D Gaussian Splatting as Markov Chain Monte Carlo", 2024): a
  fixed budget. Dead Gaussians (opacity <= 0.005) are relocated onto live ones sampled by
  opacity, with opacity and scale adjusted so the rendered image is unchanged in expectation;
  new Gaussians are added the same way (+5% per refinement up to the cap); positions get
  noise scaled by each Gaussian's covariance and by how transparent it is.
* **ADC** (Kerbl et al. 2023, adaptive density control): Gaussians with a large average
  screen-space position gradient are cloned (small) or split (large); transparent ones are
  pruned. The screen-space gradient is estimated from the world-space one as
  |dL/dmean| * z / f (the CPU backend does not expose 2D means).

This module imports torch and ``lyra_sim.scene`` only.
"""

from __future__ import annotations

import math

import torch

from lyra_sim.rotations import quat_to_matrix
from lyra_sim.scene.gaussian_scene import GaussianScene

PARAMETER_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh0", "shN")
DEAD_OPACITY = 0.005


class GaussianParameters:
    """Raw Gaussian parameters as trainable leaves plus their Adam optimiser.

    Args:
        scene: the initial Gaussians (its SH is split into the DC band ``sh0`` [N,1,3] and
            the rest ``shN`` [N,K-1,3], which train at different learning rates).
        learning_rates: one learning rate per name in ``PARAMETER_NAMES``.
    """

    def __init__(self, scene: GaussianScene, learning_rates: dict[str, float]) -> None:
        missing = set(PARAMETER_NAMES) - set(learning_rates)
        if missing:
            raise ValueError(f"learning_rates lacks {sorted(missing)}")
        values = {
            "means": scene.means, "quats": scene.quats, "log_scales": scene.log_scales,
            "opacity_logits": scene.opacity_logits, "sh0": scene.sh[:, :1], "shN": scene.sh[:, 1:],
        }
        self.tensors = {name: values[name].detach().clone().contiguous().requires_grad_(True) for name in PARAMETER_NAMES}
        self.metadata = scene.metadata.copy()
        # eps 1e-15 as 3DGS: gradients of far-away Gaussians are tiny, a larger eps freezes them.
        self.optimizer = torch.optim.Adam(
            [{"params": [self.tensors[name]], "lr": learning_rates[name], "name": name} for name in PARAMETER_NAMES],
            eps=1e-15,
        )

    def __len__(self) -> int:
        return self.tensors["means"].shape[0]

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def scene(self, detach: bool = False) -> GaussianScene:
        """The current Gaussians (differentiable unless ``detach``)."""
        t = {k: (v.detach() if detach else v) for k, v in self.tensors.items()}
        sh = torch.cat([t["sh0"], t["shN"]], dim=1)
        return GaussianScene(t["means"], t["quats"], t["log_scales"], t["opacity_logits"], sh, self.metadata.copy())

    def set_learning_rate(self, name: str, value: float) -> None:
        for group in self.optimizer.param_groups:
            if group["name"] == name:
                group["lr"] = value

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    # ----------------------------------------------------------------- row surgery
    def _swap(self, name: str, new_value: torch.Tensor, state_rows) -> None:
        """Replace parameter ``name`` by ``new_value`` and its Adam moments by ``state_rows(moment)``."""
        old = self.tensors[name]
        fresh = new_value.detach().contiguous().requires_grad_(True)
        for group in self.optimizer.param_groups:
            if group["params"][0] is old:
                group["params"][0] = fresh
        state = self.optimizer.state.pop(old, None)
        if state is not None:
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = state_rows(state[key])
            self.optimizer.state[fresh] = state
        self.tensors[name] = fresh

    def update_rows(self, indices: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        """Overwrite rows ``indices`` of the named parameters and zero their Adam moments."""
        for name in PARAMETER_NAMES:
            new_value = self.tensors[name].detach().clone()
            if name in values:
                new_value[indices] = values[name]

            def reset(moment, indices=indices):
                moment = moment.clone()
                moment[indices] = 0.0
                return moment

            self._swap(name, new_value, reset)

    def append_rows(self, values: dict[str, torch.Tensor]) -> None:
        """Add Gaussians (every parameter given) with zero Adam moments."""
        for name in PARAMETER_NAMES:
            extra = values[name].detach()
            new_value = torch.cat([self.tensors[name].detach(), extra])
            self._swap(name, new_value, lambda moment, extra=extra: torch.cat([moment, torch.zeros_like(extra)]))

    def keep_rows(self, mask: torch.Tensor) -> None:
        """Remove the Gaussians where ``mask`` [N] is False."""
        for name in PARAMETER_NAMES:
            self._swap(name, self.tensors[name].detach()[mask], lambda moment: moment[mask])


# ===================================================================== MCMC
def _binomial_table(size: int) -> torch.Tensor:  # [size, size], C(n, k)
    table = torch.zeros(size, size, dtype=torch.float64)
    for n in range(size):
        for k in range(n + 1):
            table[n, k] = math.comb(n, k)
    return table


_BINOMIALS = _binomial_table(64)


def relocation_opacity_and_scale(
    opacities: torch.Tensor,  # [M] in (0, 1)
    log_scales: torch.Tensor,  # [M, 3]
    copies: torch.Tensor,  # [M] int, total number of Gaussians sharing the slot after the move (>= 1)
) -> tuple[torch.Tensor, torch.Tensor]:  # ([M], [M, 3])
    """Opacity and log-scale that make ``copies`` coincident Gaussians render like one original.

    MCMC paper, eq. 9: o' = 1 - (1 - o)^(1/n), and scales multiply by
    o / sum_{i=1..n} sum_{k=0..i-1} C(i-1, k) (-1)^k o'^(k+1) / sqrt(k+1).
    """
    n = copies.clamp(1, _BINOMIALS.shape[0] - 1).to(torch.float64)
    o = opacities.to(torch.float64).clamp(1e-6, 1 - 1e-6)
    new_opacity = 1.0 - torch.pow(1.0 - o, 1.0 / n)
    max_n = int(n.max().item())
    i = torch.arange(1, max_n + 1, dtype=torch.float64)  # [I]
    k = torch.arange(max_n, dtype=torch.float64)  # [K]
    binom = _BINOMIALS[: max_n, : max_n]  # C(i-1, k) at [i-1, k]
    sign = torch.pow(-1.0, k)
    terms = binom * sign / torch.sqrt(k + 1.0)  # [I, K]; zero where k > i-1
    powers = new_opacity[:, None] ** (k[None, :] + 1.0)  # [M, K]
    inner = powers @ terms.T  # [M, I]: sum over k for each i
    used = (i[None, :] <= n[:, None]).to(torch.float64)
    denominator = (inner * used).sum(1)
    scale_factor = o / denominator.clamp_min(1e-12)
    new_log_scales = log_scales + torch.log(scale_factor.clamp_min(1e-12)).to(log_scales.dtype)[:, None]
    return new_opacity.to(opacities.dtype), new_log_scales


def _move_onto(params: GaussianParameters, sources: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Parameters for new copies of ``sources`` (with repeats) and the sources' own update."""
    unique, counts = torch.unique(sources, return_counts=True)
    opacities = torch.sigmoid(params["opacity_logits"].detach()[unique])
    new_opacity, new_log_scales = relocation_opacity_and_scale(opacities, params["log_scales"].detach()[unique], counts + 1)
    new_logits = torch.logit(new_opacity.clamp(1e-6, 1 - 1e-6))
    params.update_rows(unique, {"opacity_logits": new_logits, "log_scales": new_log_scales})
    return {name: params[name].detach()[sources].clone() for name in PARAMETER_NAMES}


def _sample_by_opacity(params: GaussianParameters, candidates: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    weights = torch.sigmoid(params["opacity_logits"].detach()[candidates]).clamp_min(0.0)
    if float(weights.sum()) <= 0:
        weights = torch.ones_like(weights)
    return candidates[torch.multinomial(weights, count, replacement=True, generator=generator)]


def mcmc_relocate(params: GaussianParameters, generator: torch.Generator) -> int:
    """Move dead Gaussians onto live ones (sampled by opacity); returns how many moved."""
    opacity = torch.sigmoid(params["opacity_logits"].detach())
    dead = torch.nonzero(opacity <= DEAD_OPACITY).flatten()
    alive = torch.nonzero(opacity > DEAD_OPACITY).flatten()
    if len(dead) == 0 or len(alive) == 0:
        return 0
    sources = _sample_by_opacity(params, alive, len(dead), generator)
    copies = _move_onto(params, sources, generator)
    params.update_rows(dead, copies)
    return len(dead)


def mcmc_add(params: GaussianParameters, cap: int, generator: torch.Generator, growth: float = 0.05) -> int:
    """Add up to ``growth`` x N new Gaussians (never above ``cap``) as copies of live ones."""
    target = min(cap, int(math.ceil(len(params) * (1.0 + growth))))
    count = target - len(params)
    if count <= 0:
        return 0
    sources = _sample_by_opacity(params, torch.arange(len(params)), count, generator)
    params.append_rows(_move_onto(params, sources, generator))
    return count


def covariances(quats: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:  # [N, 3, 3]
    """Σ = R diag(s²) Rᵀ from raw quaternions and log-scales."""
    rotation = quat_to_matrix(quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    scales = torch.exp(log_scales)
    m = rotation * scales[:, None, :]
    return m @ m.transpose(1, 2)


@torch.no_grad()
def mcmc_position_noise(params: GaussianParameters, scale: float, generator: torch.Generator) -> None:
    """Add noise ~ Σ ε to every mean, gated so that only near-transparent Gaussians move much.

    The gate is sigmoid(100 (1 - opacity - 0.995)): ~1 below opacity 0.005, ~0 above 0.05.
    ``scale`` is the current means learning rate times the noise strength.
    """
    means = params["means"]
    opacity = torch.sigmoid(params["opacity_logits"])
    gate = torch.sigmoid(100.0 * ((1.0 - opacity) - (1.0 - DEAD_OPACITY)))
    noise = torch.randn(means.shape, generator=generator) * (gate * scale)[:, None]
    noise = (covariances(params["quats"], params["log_scales"]) @ noise[:, :, None]).squeeze(-1)
    means.add_(noise)


def opacity_scale_regulariser(params: GaussianParameters, opacity_weight: float, scale_weight: float) -> torch.Tensor:
    """MCMC's L1 penalties on opacities and scales: they free Gaussians for relocation."""
    loss = params["means"].new_zeros(())
    if opacity_weight:
        loss = loss + opacity_weight * torch.sigmoid(params["opacity_logits"]).mean()
    if scale_weight:
        loss = loss + scale_weight * torch.exp(params["log_scales"]).mean()
    return loss


# ===================================================================== ADC
class GradientStatistics:
    """Running mean of the estimated screen-space position-gradient norm per Gaussian (ADC)."""

    def __init__(self, count: int) -> None:
        self.total = torch.zeros(count)
        self.views = torch.zeros(count)

    @torch.no_grad()
    def accumulate(self, means_grad: torch.Tensor, means: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int) -> None:
        """Add |dL/d mean2d| for the Gaussians visible in one view ([4,4] viewmat, [3,3] K).

        mean2d = f x / z, so dL/dmean2d ~ dL/dmean_cam_xy * z / f. In NDC units as 3DGS
        (x 0.5 * image size) so its 0.0002 threshold applies.
        """
        camera = means @ viewmat[:3, :3].T + viewmat[:3, 3]
        z = camera[:, 2]
        grad_camera = means_grad @ viewmat[:3, :3].T
        visible = (z > 1e-3) & (grad_camera.abs().sum(1) > 0)
        pixel_grad = torch.stack([grad_camera[:, 0] * z / K[0, 0], grad_camera[:, 1] * z / K[1, 1]], 1)
        ndc_grad = pixel_grad * torch.tensor([0.5 * width, 0.5 * height])
        self.total[visible] += ndc_grad[visible].norm(dim=1)
        self.views[visible] += 1

    def average(self) -> torch.Tensor:  # [N]
        return self.total / self.views.clamp_min(1)


@torch.no_grad()
def adc_densify_and_prune(
    params: GaussianParameters,
    statistics: GradientStatistics,
    *,
    gradient_threshold: float,
    scene_extent: float,
    cap: int,
    generator: torch.Generator,
    percent_dense: float = 0.01,
) -> tuple[int, int, int]:
    """Clone small / split large high-gradient Gaussians, prune transparent and huge ones.

    Returns (cloned, split, pruned). Never exceeds ``cap`` Gaussians (highest gradients first).
    """
    gradient = statistics.average()
    scales_max = torch.exp(params["log_scales"]).max(dim=1).values
    candidates = gradient >= gradient_threshold
    room = max(cap - len(params), 0)
    if int(candidates.sum()) > room:
        order = torch.argsort(gradient, descending=True)
        candidates = torch.zeros_like(candidates)
        candidates[order[:room]] = True
    small = candidates & (scales_max <= percent_dense * scene_extent)
    large = candidates & ~small
    clone_rows = {name: params[name].detach()[small].clone() for name in PARAMETER_NAMES}
    # Split: two samples from each large Gaussian, scales / 1.6 (3DGS), replacing the original.
    split_index = torch.nonzero(large).flatten()
    split_rows = {name: params[name].detach()[split_index].repeat(2, *([1] * (params[name].dim() - 1))) for name in PARAMETER_NAMES}
    if len(split_index):
        stds = torch.exp(split_rows["log_scales"])
        offsets = torch.randn(stds.shape, generator=generator) * stds
        rotation = quat_to_matrix(split_rows["quats"] / split_rows["quats"].norm(dim=-1, keepdim=True).clamp_min(1e-12))
        split_rows["means"] = split_rows["means"] + (rotation @ offsets[:, :, None]).squeeze(-1)
        split_rows["log_scales"] = split_rows["log_scales"] - math.log(1.6)
    if int(small.sum()):
        params.append_rows(clone_rows)
    if len(split_index):
        params.append_rows(split_rows)
    keep = torch.ones(len(params), dtype=torch.bool)
    keep[split_index] = False
    opacity = torch.sigmoid(params["opacity_logits"].detach())
    too_big = torch.exp(params["log_scales"].detach()).max(dim=1).values > 0.1 * scene_extent
    keep &= (opacity > DEAD_OPACITY) & ~too_big
    pruned = int((~keep).sum()) - len(split_index)
    params.keep_rows(keep)
    return int(small.sum()), len(split_index), pruned


@torch.no_grad()
def reset_opacity(params: GaussianParameters, ceiling: float = 0.01) -> None:
    """Clamp every opacity to ``ceiling`` (3DGS's periodic reset that lets floaters die)."""
    logits = params["opacity_logits"].detach().clamp_max(math.log(ceiling / (1 - ceiling)))
    params.update_rows(torch.arange(len(params)), {"opacity_logits": logits})

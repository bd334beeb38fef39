"""Self-distillation trainer: teach the 3DGS decoder to reproduce a teacher's frames.

Each step takes one :class:`~lyra_sim.generate.teachers.TeacherSample`, decodes its latents into
Gaussians, renders them (differentiably, with ``lyra_sim.render``) from a random subset of the
sample's cameras and minimises

    w_rgb * MSE + w_lpips * LPIPS (when its weights exist locally)
    + w_depth * scale-and-shift-invariant depth loss (when the teacher has depth)
    + w_opacity * mean opacity (sparsity)

with AdamW, a linear warm-up and gradient clipping, as Lyra does (MSE + 0.5 LPIPS, depth 0.05).
From ``prune_from_step`` on, Gaussians below ``prune_opacity`` are dropped before rendering
(Lyra's opacity pruning at later stages). Dynamic samples pick a target time per step and
render only the cameras of that time. Checkpoints are folders of safetensors files (decoder,
optimizer state) plus ``state.json``, written atomically; training resumes from them.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lyra_sim.errors import MissingWeightsError
from lyra_sim.generate.decoder import DecodedGaussians, GaussianDecoder, load_decoder, save_decoder
from lyra_sim.generate.teachers import Teacher, TeacherSample
from lyra_sim.io_utils import atomic_path, write_json
from lyra_sim.options import setting
from lyra_sim.reconstruct.losses import psnr_per_image
from lyra_sim.typed import RenderBackend


# ----------------------------------------------------------------------------- losses and metrics
def scale_shift_invariant_depth_loss(
    predicted: torch.Tensor,  # [C, H, W]
    target: torch.Tensor,  # [C, H, W]
    mask: torch.Tensor,  # [C, H, W] bool: pixels where both depths are valid
) -> torch.Tensor:  # scalar
    """Mean |s * predicted + b - target| / mean(target) per image, s and b fitted by least squares.

    The fit is solved in closed form per image (and differentiated through), so only the shape
    of the depth map is supervised, as with monocular-depth teachers whose scale is unknown.
    Images with fewer than 16 valid pixels are skipped; returns 0 when none is left.
    """
    losses = []
    for p, t, m in zip(predicted, target, mask):
        if int(m.sum()) < 16:
            continue
        p, t = p[m], t[m]
        p_mean, t_mean = p.mean(), t.mean()
        variance = ((p - p_mean) ** 2).mean()
        scale = ((p - p_mean) * (t - t_mean)).mean() / variance.clamp_min(1e-12)
        shift = t_mean - scale * p_mean
        losses.append((scale * p + shift - t).abs().mean() / t_mean.abs().clamp_min(1e-6))
    return torch.stack(losses).mean() if losses else predicted.new_zeros(())


class LPIPS(torch.nn.Module):
    """LPIPS (Zhang et al. 2018, VGG-16 variant) from a local safetensors file; never downloads.

    The file holds torchvision's VGG-16 ``features.<i>.weight/bias`` for the 13 conv layers and
    the LPIPS package's ``lin<k>.model.1.weight`` [1, c_k, 1, 1] for the 5 taps (merge the two
    state dicts and save them with ``safetensors.torch.save_file``). Inputs are [N, 3, H, W] in
    [0, 1]; the output is the per-image distance [N].
    """

    _CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    _CHANNELS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512))
    _TAP_AFTER = (2, 4, 7, 10, 13)  # number of conv layers (each followed by ReLU) before each tap
    _POOL_AFTER = (2, 4, 7, 10)

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        from safetensors.torch import load_file

        weights = Path(weights)
        if not weights.is_file():
            raise MissingWeightsError(f"no LPIPS weights at {weights}; expected one safetensors file with VGG-16 'features.<i>.*' and 'lin<k>.model.1.weight'")
        state = load_file(str(weights))
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(i, o, 3, padding=1) for i, o in self._CHANNELS)
        self.lins = torch.nn.ModuleList(torch.nn.Conv2d(c, 1, 1, bias=False) for c in (64, 128, 256, 512, 512))
        try:
            for conv, index in zip(self.convs, self._CONV_INDICES):
                conv.weight.data.copy_(state[f"features.{index}.weight"])
                conv.bias.data.copy_(state[f"features.{index}.bias"])
            for k, lin in enumerate(self.lins):
                lin.weight.data.copy_(state[f"lin{k}.model.1.weight"])
        except (KeyError, RuntimeError) as error:
            raise MissingWeightsError(f"{weights} is not an LPIPS VGG-16 weight file: {error}") from None
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = ((images * 2.0 - 1.0) - self.shift) / self.scale
        taps = []
        for count, conv in enumerate(self.convs, start=1):
            x = F.relu(conv(x))
            if count in self._TAP_AFTER:
                taps.append(x)
            if count in self._POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return taps

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # [N,3,H,W] x2 -> [N]
        distance = predicted.new_zeros(predicted.shape[0])
        for lin, a, b in zip(self.lins, self._features(predicted), self._features(target)):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            distance = distance + lin((a - b) ** 2).mean(dim=(1, 2, 3))
        return distance


# ----------------------------------------------------------------------------- trainer
@dataclass
class DistillConfig:
    """Training settings.

    Attributes:
        steps: optimisation steps in total.
        learning_rate, weight_decay, warmup_steps, grad_clip: AdamW with linear warm-up and
            gradient-norm clipping.
        views_per_step: cameras rendered per step (a random subset of the sample's frames).
        rgb_weight, lpips_weight, depth_weight, opacity_weight: loss weights.
        lpips_weights: local LPIPS weight file (see :class:`LPIPS`); None turns LPIPS off with a warning.
        prune_from_step: step from which low-opacity Gaussians are pruned before rendering
            (None: after two thirds of the steps); prune_opacity: the opacity threshold.
        backend: render backend for training renders.
        checkpoint_every: write a checkpoint every n steps (0: only at the end, when an output
            folder is given).
        seed: seeds the view sampling.
        time_budget_s: stop early after this many seconds (None: run all steps).
    """

    steps: int = setting(1000, help="training steps", cli=True, cli_default=500)
    learning_rate: float = setting(1e-3, help="AdamW learning rate", cli=True)
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    views_per_step: int = setting(8, help="frames rendered per step", cli=True)
    rgb_weight: float = 1.0
    lpips_weight: float = 0.5
    depth_weight: float = 0.05
    opacity_weight: float = 0.001
    lpips_weights: str | None = setting(None, help="local LPIPS weight file (LPIPS is off without it)", cli=True)
    prune_from_step: int | None = None
    prune_opacity: float = 0.005
    backend: RenderBackend = setting("auto", help="splat renderer for the teacher and the training renders", cli=True)
    checkpoint_every: int = setting(0, help="checkpoint every N steps (0: only at the end)", cli=True)
    seed: int = setting(0, help="random seed", cli=True)
    time_budget_s: float | None = setting(None, help="stop after this many seconds", cli="time_budget")


@dataclass
class DistillResult:
    """What :meth:`Distiller.train` returns: one dict of losses per step, and totals."""

    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    checkpoint: Path | None = None


def decode_sample(decoder: GaussianDecoder, sample: TeacherSample, target_time: float | None = None) -> DecodedGaussians:
    """Decode one teacher sample (batch of 1) into Gaussians in the sample frame.

    Dynamic (time-conditioned) decoders need ``target_time``; it defaults to the first frame's.
    """
    device = next(decoder.parameters()).device
    frame_times = target = None
    if decoder.config.time_conditioning:
        times = sample.times if sample.times is not None else torch.zeros(sample.num_views, sample.num_frames)
        frame_times = times[None].to(device)
        target = torch.tensor([float(times[0, 0]) if target_time is None else target_time], device=device)
    return decoder.decode(
        sample.latents[None].to(device), sample.viewmats[None], sample.Ks[None], sample.width, sample.height, frame_times, target
    )


def render_views(scene, sample: TeacherSample, views: torch.Tensor, backend: str, modes=("rgb",)) -> dict[str, torch.Tensor]:
    """Render ``scene`` from the flat frame indices ``views`` [C] (into V * T) of ``sample``."""
    from lyra_sim.render.api import render
    from lyra_sim.render.camera import Camera

    camera = Camera(sample.Ks.reshape(-1, 3, 3)[views], sample.viewmats.reshape(-1, 4, 4)[views], sample.width, sample.height)
    return render(scene, camera, modes=modes, backend=backend)


class Distiller:
    """Train ``decoder`` on ``teacher`` samples; see the module docstring for the objective.

    Args:
        decoder: the student (its config must match the teacher's VAE compression).
        teacher: where samples come from.
        config: training settings.
        output_dir: where checkpoints go (``checkpoints/step-NNNNNN``) and the final
            ``decoder.safetensors``; None keeps everything in memory.
    """

    def __init__(self, decoder: GaussianDecoder, teacher: Teacher, config: DistillConfig = DistillConfig(), output_dir: str | Path | None = None) -> None:
        vae = teacher.vae
        if (decoder.config.temporal_compression, decoder.config.spatial_compression, decoder.config.latent_channels) != (
            vae.temporal_compression, vae.spatial_compression, vae.latent_channels
        ):
            raise ValueError(
                f"decoder expects latents with compression {decoder.config.temporal_compression}x{decoder.config.spatial_compression} and "
                f"{decoder.config.latent_channels} channels, but the teacher's {vae.kind} VAE gives "
                f"{vae.temporal_compression}x{vae.spatial_compression} and {vae.latent_channels}"
            )
        if len(teacher) < 1:
            raise ValueError("the teacher has no samples")
        self.decoder, self.teacher, self.config = decoder, teacher, config
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.optimizer = torch.optim.AdamW(decoder.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: min(1.0, (step + 1) / max(1, config.warmup_steps)))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step_count = 0
        self.lpips = self._load_lpips()

    def _load_lpips(self) -> LPIPS | None:
        if self.config.lpips_weight <= 0:
            return None
        if self.config.lpips_weights is None or not Path(self.config.lpips_weights).is_file():
            warnings.warn(
                f"LPIPS is off: no local LPIPS weights ({self.config.lpips_weights or 'lpips_weights not set'}); "
                "training uses MSE + depth + opacity terms only",
                stacklevel=3,
            )
            return None
        return LPIPS(self.config.lpips_weights).to(next(self.decoder.parameters()).device)

    @property
    def prune_from_step(self) -> int:
        return self.config.prune_from_step if self.config.prune_from_step is not None else (2 * self.config.steps) // 3

    def _choose_views(self, sample: TeacherSample) -> tuple[torch.Tensor, float | None]:
        """Flat frame indices to render this step, and the target time (dynamic samples)."""
        views, frames = sample.num_views, sample.num_frames
        count = min(self.config.views_per_step, views * frames)
        if self.decoder.config.time_conditioning and sample.times is not None:
            frame = int(torch.randint(frames, (1,), generator=self.generator))
            chosen = torch.randperm(views, generator=self.generator)[: max(1, min(count, views))] * frames + frame
            return chosen, float(sample.times[0, frame])
        return torch.randperm(views * frames, generator=self.generator)[:count], None

    def loss(self, sample: TeacherSample, views: torch.Tensor, target_time: float | None = None, prune: bool = False) -> dict[str, torch.Tensor]:
        """All loss terms (and their weighted ``total``) for rendering ``views`` of ``sample``."""
        config = self.config
        decoded = decode_sample(self.decoder, sample, target_time)
        scene = decoded.scene(0, min_opacity=config.prune_opacity if prune else 0.0)
        out = render_views(scene, sample, views, config.backend, modes=("rgb", "depth", "alpha"))
        device = out["rgb"].device
        target = sample.frames.flatten(0, 1)[views].to(device)  # [C, 3, H, W]
        predicted = out["rgb"].permute(0, 3, 1, 2)
        terms = {"mse": F.mse_loss(predicted, target)}
        total = config.rgb_weight * terms["mse"]
        if self.lpips is not None:
            terms["lpips"] = self.lpips(predicted, target).mean()
            total = total + config.lpips_weight * terms["lpips"]
        if sample.depth is not None and config.depth_weight > 0:
            target_depth = sample.depth.flatten(0, 1)[views, 0].to(device)
            predicted_depth = out["depth"][..., 0]
            mask = (target_depth > 0) & (out["alpha"][..., 0].detach() > 0.5)
            terms["depth"] = scale_shift_invariant_depth_loss(predicted_depth, target_depth, mask)
            total = total + config.depth_weight * terms["depth"]
        terms["opacity"] = torch.sigmoid(decoded.opacity_logits).mean()
        total = total + config.opacity_weight * terms["opacity"]
        terms["total"] = total
        return terms

    def step(self, sample_index: int | None = None) -> dict[str, float]:
        """One optimisation step on one sample (random when None); returns the loss terms."""
        if sample_index is None:
            sample_index = int(torch.randint(len(self.teacher), (1,), generator=self.generator))
        sample = self.teacher.sample(sample_index)
        views, target_time = self._choose_views(sample)
        self.decoder.train()
        terms = self.loss(sample, views, target_time, prune=self.step_count >= self.prune_from_step)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.decoder.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step_count += 1
        record = {name: float(value.detach()) for name, value in terms.items()}
        record.update(step=self.step_count, sample=sample_index, grad_norm=float(grad_norm), lr=self.scheduler.get_last_lr()[0])
        return record

    def train(self, progress: bool = True) -> DistillResult:
        """Run the remaining steps (resumable) with a progress bar; checkpoint as configured."""
        config = self.config
        result = DistillResult()
        start = time.perf_counter()
        self.teacher.prepare(progress=progress)
        bar = tqdm(total=config.steps, initial=self.step_count, desc="distill", unit="step", disable=not progress)
        try:
            while self.step_count < config.steps:
                record = self.step()
                result.history.append(record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['total']:.4f}", mse=f"{record['mse']:.4f}")
                if self.output_dir is not None and config.checkpoint_every and self.step_count % config.checkpoint_every == 0:
                    result.checkpoint = self.save_checkpoint()
                if config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s:
                    break
        finally:
            bar.close()
        result.steps, result.seconds = self.step_count, time.perf_counter() - start
        if self.output_dir is not None:
            result.checkpoint = self.save_checkpoint()
            save_decoder(self.decoder, self.output_dir / "decoder.safetensors", {"lyra_sim.steps": str(self.step_count)})
            write_json(self.output_dir / "history.json", result.history, indent=None)
        return result

    @torch.no_grad()
    def evaluate(self, teacher: Teacher | None = None, indices=None, prune: bool = True) -> dict[str, float]:
        """Mean PSNR (dB) of decoded scenes against the teacher's frames over every camera of
        the given samples (all of ``teacher``'s by default; the training teacher when None)."""
        teacher = teacher or self.teacher
        indices = range(len(teacher)) if indices is None else indices
        self.decoder.eval()
        scores = []
        for index in indices:
            sample = teacher.sample(index)
            scores.extend(self.sample_psnr(sample, prune))
        return {"psnr": sum(scores) / len(scores), "views": len(scores)}

    @torch.no_grad()
    def sample_psnr(self, sample: TeacherSample, prune: bool = True) -> list[float]:
        """PSNR of every camera of ``sample`` (per time for dynamic samples)."""
        threshold = self.config.prune_opacity if prune else 0.0
        all_views = torch.arange(sample.num_views * sample.num_frames)
        groups = [(all_views, None)]
        if self.decoder.config.time_conditioning and sample.times is not None:
            groups = [(torch.arange(sample.num_views) * sample.num_frames + t, float(sample.times[0, t])) for t in range(sample.num_frames)]
        scores = []
        for views, target_time in groups:
            scene = decode_sample(self.decoder, sample, target_time).scene(0, min_opacity=threshold, detach=True)
            rgb = render_views(scene, sample, views, self.config.backend)["rgb"].cpu().clamp(0.0, 1.0)
            target = sample.frames.flatten(0, 1)[views].permute(0, 2, 3, 1)
            scores.extend(psnr_per_image(rgb, target).tolist())
        return scores

    # ------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, folder: str | Path | None = None) -> Path:
        """Write ``decoder.safetensors``, ``optimizer.safetensors`` and ``state.json`` atomically."""
        from safetensors.torch import save_file

        if folder is None:
            if self.output_dir is None:
                raise ValueError("save_checkpoint needs a folder when the Distiller has no output_dir")
            folder = self.output_dir / "checkpoints" / f"step-{self.step_count:06d}"
        folder = Path(folder)
        optimizer_state = self.optimizer.state_dict()
        tensors, layout = {}, {}
        for parameter_id, state in optimizer_state["state"].items():
            for name, value in state.items():
                key = f"{parameter_id}.{name}"
                tensors[key] = torch.as_tensor(value).detach().cpu().contiguous()
                layout[key] = [int(parameter_id), name]
        state_json = {
            "step": self.step_count,
            "config": asdict(self.config),
            "param_groups": optimizer_state["param_groups"],
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state().tolist(),
            "optimizer_layout": layout,
        }
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            save_decoder(self.decoder, tmp / "decoder.safetensors", {"lyra_sim.steps": str(self.step_count)})
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            (tmp / "state.json").write_text(json.dumps(state_json, default=str))
        return folder

    def load_checkpoint(self, folder: str | Path) -> None:
        """Restore decoder weights, optimizer, scheduler, sampling state and step from ``folder``."""
        from safetensors.torch import load_file

        folder = Path(folder)
        state_path = folder / "state.json"
        if not state_path.is_file():
            raise MissingWeightsError(f"{folder} is not a distillation checkpoint (no state.json)")
        state = json.loads(state_path.read_text())
        loaded = load_decoder(folder / "decoder.safetensors", device=next(self.decoder.parameters()).device)
        if loaded.config != self.decoder.config:
            raise ValueError(f"checkpoint {folder} has decoder config {loaded.config}, the trainer's decoder has {self.decoder.config}")
        self.decoder.load_state_dict(loaded.state_dict())
        tensors = load_file(str(folder / "optimizer.safetensors"))
        optimizer_state: dict = {"state": {}, "param_groups": state["param_groups"]}
        for key, (parameter_id, name) in state["optimizer_layout"].items():
            optimizer_state["state"].setdefault(parameter_id, {})[name] = tensors[key]
        self.optimizer.load_state_dict(optimizer_state)
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        self.step_count = int(state["step"])


# ----------------------------------------------------------------------------- trained weights
WEIGHTS_LAYOUT = (
    "a folder written by `lyra-sim distill`:\n"
    "  <weights>/decoder.safetensors   the 3DGS decoder (weights + config)\n"
    "  <weights>/vae/                  its video VAE (diffusers AutoencoderKLCosmos/AutoencoderKLWan folder)\n"
    "  <weights>/distill.json          optional: frame size, field of view and trajectories used in training\n"
    "  <weights>/video_model/          optional: a diffusers image-to-video pipeline (model_index.json, ...)"
)


@dataclass
class TrainedGenerator:
    """A distilled decoder, its VAE and the training settings read from a weights folder."""

    decoder: GaussianDecoder
    vae: object
    settings: dict
    folder: Path


def load_generator(folder: str | Path, device: str = "cpu") -> TrainedGenerator:
    """Read a weights folder (see ``WEIGHTS_LAYOUT``); raises ``MissingWeightsError`` naming what is missing."""
    from lyra_sim.generate.vae import load_vae

    folder = Path(folder)
    if not folder.is_dir():
        raise MissingWeightsError(f"weights folder {folder} does not exist; expected {WEIGHTS_LAYOUT}")
    if not (folder / "decoder.safetensors").is_file():
        raise MissingWeightsError(f"no decoder.safetensors in {folder}; expected {WEIGHTS_LAYOUT}")
    decoder = load_decoder(folder / "decoder.safetensors", device=device).eval()
    if not (folder / "vae").is_dir():
        raise MissingWeightsError(f"no vae/ folder in {folder}; expected {WEIGHTS_LAYOUT}")
    vae = load_vae(folder / "vae", device=device)
    settings_path = folder / "distill.json"
    settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
    return TrainedGenerator(decoder, vae, settings, folder)

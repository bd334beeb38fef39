"""Video VAEs whose latents the 3DGS decoder reads: diffusers' Cosmos and Wan autoencoders.

:class:`VideoVAE` wraps ``diffusers.AutoencoderKLCosmos`` (8x8x8 compression) or
``diffusers.AutoencoderKLWan`` (4x8x8), both causal in time (T frames -> 1 + (T-1)/tc latent
frames) with 16 latent channels. It takes and returns frames as [B, T, 3, H, W] in [0, 1] and
latents normalised exactly as the diffusers video pipelines normalise them
((z - latents_mean) / latents_std), so latents from a pipeline run with ``output_type="latent"``
and latents from :meth:`VideoVAE.encode` are interchangeable.

Weights load from a local folder only (:func:`load_vae`); :func:`tiny_vae` builds a small
random-weight model for tests and CPU smoke runs. diffusers is imported lazily.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lyra_sim.errors import MissingDependencyError, MissingWeightsError
from lyra_sim.typed import VaeKind, check_choice

_CLASS_NAMES = {"cosmos": "AutoencoderKLCosmos", "wan": "AutoencoderKLWan"}

VAE_FOLDER_LAYOUT = (
    "a diffusers autoencoder folder:\n"
    "  <folder>/config.json                           (\"_class_name\": \"AutoencoderKLCosmos\" or \"AutoencoderKLWan\")\n"
    "  <folder>/diffusion_pytorch_model.safetensors   (the weights)\n"
    "e.g. the 'vae' subfolder of a Cosmos or Wan diffusers checkpoint"
)


def _diffusers():
    try:
        import diffusers
    except ImportError as error:  # pragma: no cover - diffusers is a core dependency
        raise MissingDependencyError("video VAEs need diffusers: pip install 'diffusers>=0.32'") from error
    return diffusers


class VideoVAE:
    """A frozen video autoencoder with the normalisation the diffusers pipelines use.

    Args:
        model: an ``AutoencoderKLCosmos`` or ``AutoencoderKLWan`` instance.
        kind: "cosmos" or "wan"; inferred from the model's class when None.
    """

    def __init__(self, model, kind: str | None = None) -> None:
        if kind is None:
            kind = next((k for k, name in _CLASS_NAMES.items() if type(model).__name__ == name), None)
            if kind is None:
                raise ValueError(f"unsupported VAE class {type(model).__name__}; expected one of {sorted(_CLASS_NAMES.values())}")
        self.kind = check_choice(kind, VaeKind, "vae kind")
        self.model = model.eval().requires_grad_(False)
        config = model.config
        if self.kind == "cosmos":
            self.temporal_compression = int(config.temporal_compression_ratio)
            self.spatial_compression = int(config.spatial_compression_ratio)
            self.latent_channels = int(config.latent_channels)
        else:
            self.temporal_compression = int(config.scale_factor_temporal or 2 ** sum(config.temperal_downsample))
            self.spatial_compression = int(config.scale_factor_spatial or 2 ** len(config.temperal_downsample))
            self.latent_channels = int(config.z_dim)
        self._mean = None if config.latents_mean is None else torch.tensor(config.latents_mean, dtype=torch.float32)
        self._std = None if config.latents_std is None else torch.tensor(config.latents_std, dtype=torch.float32)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames for ``num_frames`` video frames (causal: 1 + (T - 1) / tc)."""
        return 1 + (num_frames - 1) // self.temporal_compression

    def check_video_size(self, num_frames: int, height: int, width: int) -> None:
        """Raise ValueError unless T = 1 + k * tc and H, W are multiples of the spatial compression."""
        tc, sc = self.temporal_compression, self.spatial_compression
        if num_frames < 1 or (num_frames - 1) % tc:
            raise ValueError(f"a {self.kind} VAE needs 1 + k*{tc} frames (1, {1 + tc}, {1 + 2 * tc}, ...), got {num_frames}")
        if height % sc or width % sc:
            raise ValueError(f"a {self.kind} VAE needs frame sizes that are multiples of {sc}, got {width}x{height}")

    def _stats(self, latent_frames: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self._mean is None or self._std is None:
            return None
        channels = self.latent_channels
        # Cosmos stores per-(channel, latent frame) statistics, Wan per channel: the same
        # view/slice as the diffusers pipelines.
        mean = self._mean.view(1, channels, -1, 1, 1)[:, :, :latent_frames].to(like)
        std = self._std.view(1, channels, -1, 1, 1)[:, :, :latent_frames].to(like)
        return mean, std

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:  # [B, T, 3, H, W] -> [B, C, T', H/s, W/s]
        """Normalised latents of videos ``frames`` [B, T, 3, H, W] with values in [0, 1]."""
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must have shape [B, T, 3, H, W], got {list(frames.shape)}")
        self.check_video_size(frames.shape[1], frames.shape[3], frames.shape[4])
        video = frames.to(self.device, torch.float32).movedim(2, 1) * 2.0 - 1.0  # diffusers: [B, 3, T, H, W] in [-1, 1]
        latents = self.model.encode(video).latent_dist.mode()
        stats = self._stats(latents.shape[2], latents)
        return latents if stats is None else (latents - stats[0]) / stats[1]

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:  # [B, C, T', h, w] -> [B, T, 3, H, W]
        """Frames in [0, 1] [B, T, 3, H, W] from normalised latents [B, C, T', h, w]."""
        if latents.dim() != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"latents must have shape [B, {self.latent_channels}, T', h, w], got {list(latents.shape)}")
        stats = self._stats(latents.shape[2], latents)
        raw = latents if stats is None else latents * stats[1] + stats[0]
        video = self.model.decode(raw.to(self.device)).sample
        return ((video.clamp(-1.0, 1.0) + 1.0) * 0.5).movedim(1, 2)

    def save(self, folder: str | Path) -> None:
        """Write the model as a diffusers folder that :func:`load_vae` reads."""
        self.model.save_pretrained(str(folder), safe_serialization=True)


def load_vae(folder: str | Path, kind: str | None = None, device: str | torch.device = "cpu") -> VideoVAE:
    """Load a Cosmos or Wan VAE from a local diffusers folder (see ``VAE_FOLDER_LAYOUT``).

    ``kind`` ("cosmos" / "wan") is read from ``config.json``'s ``_class_name`` when None.
    Raises ``MissingWeightsError`` when the folder, its config or its weights are missing.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise MissingWeightsError(f"no VAE config at {config_path}; expected {VAE_FOLDER_LAYOUT}")
    if not any(folder.glob("diffusion_pytorch_model*.safetensors")) and not any(folder.glob("diffusion_pytorch_model*.bin")):
        raise MissingWeightsError(f"no VAE weights in {folder}; expected {VAE_FOLDER_LAYOUT}")
    try:
        class_name = json.loads(config_path.read_text()).get("_class_name")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MissingWeightsError(f"{config_path} is not valid JSON ({error}); expected {VAE_FOLDER_LAYOUT}") from None
    if kind is None:
        kind = next((k for k, name in _CLASS_NAMES.items() if name == class_name), None)
        if kind is None:
            raise MissingWeightsError(f"{config_path} names class {class_name!r}; expected {VAE_FOLDER_LAYOUT}")
    check_choice(kind, VaeKind, "vae kind")
    model_class = getattr(_diffusers(), _CLASS_NAMES[kind])
    return VideoVAE(model_class.from_pretrained(str(folder)).to(device), kind)


def tiny_vae(kind: str = "cosmos", seed: int = 0) -> VideoVAE:
    """A small random-weight VAE with the real compression factors and 16 latent channels.

    For tests and CPU smoke runs: its latents are random convolutional features of the video
    (informative, but not a trained code), and its decoded frames are noise.
    """
    check_choice(kind, VaeKind, "vae kind")
    diffusers = _diffusers()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind == "cosmos":
            model = diffusers.AutoencoderKLCosmos(
                encoder_block_out_channels=(8, 8, 8, 8),
                decode_block_out_channels=(8, 8, 8, 8),
                attention_resolutions=(),
                resolution=64,
                num_layers=1,
                latents_mean=None,
                latents_std=None,
            )
        else:
            model = diffusers.AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
    return VideoVAE(model, kind)

"""Lyra-style 3DGS decoder: video latents + Plücker rays -> one Gaussian per latent pixel per frame.

Architecture (plain PyTorch, no CUDA-only kernels):

1. **Patch embedding**: the VAE latents [B, V, C, T', h, w] of V trajectory videos, concatenated
   with the Plücker ray maps of every video frame grouped the way the causal VAE groups frames
   (latent frame 0 <- frame 0, latent frame k <- frames tc(k-1)+1 .. tc k), go through one
   Conv3d with kernel = stride = (temporal_patch, patch_size, patch_size). The tokens of all V
   videos form one sequence, so every block fuses all trajectories.
2. **Sequence blocks**: bidirectional state-space blocks (a Mamba-2-style selective scan with a
   per-head, input-dependent decay, run forwards and backwards over the tokens; linear time via
   the chunked "state-space duality" form) interleaved with full self-attention blocks.
3. **Head**: a ConvTranspose3d with kernel = stride = (temporal_patch * tc, patch * up, patch * up)
   that undoes the patching and the VAE's temporal compression, so each video frame gets a grid
   of (h * up) x (w * up) Gaussians (up = ``gaussian_upsample``, 1 = one per latent pixel).
   The first tc - 1 output frames are cropped: the causal VAE's first latent frame is one frame.
4. **Gaussians**: 14 raw values per Gaussian -> depth along the pixel ray (bounded between
   ``near`` and ``far``, linear in disparity) and a sub-pixel offset (3 position values),
   opacity (1), scales relative to the pixel footprint at that depth (3), a camera-frame
   quaternion (4), RGB (3). :func:`gaussians_from_raw` turns them into world-space tensors.

Time conditioning (dynamic scenes): the time of every frame (averaged per token) and a target
time are embedded with sinusoids and added to the tokens; the decoder then emits the scene at
the target time. Weights are saved as safetensors with the config in the file's metadata.
This module imports torch, safetensors and ``lyra_sim`` scene helpers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lyra_sim.errors import MissingWeightsError
from lyra_sim.generate.plucker import block_centres, pixel_rays, plucker_rays
from lyra_sim.io_utils import atomic_path
from lyra_sim.rotations import matrix_to_quat, quat_multiply
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.sh import SH_C0
from lyra_sim.typed import DecoderPreset, VaeKind, check_choice

GAUSSIAN_CHANNELS = 14
_RAW_SLICES = {"depth": slice(0, 1), "offset": slice(1, 3), "opacity": slice(3, 4), "scale": slice(4, 7), "quat": slice(7, 11), "rgb": slice(11, 14)}
_CONFIG_METADATA_KEY = "lyra_sim.decoder_config"


@dataclass(frozen=True)
class DecoderConfig:
    """Sizes and parameterisation of :class:`GaussianDecoder`.

    Attributes:
        latent_channels: channels of the VAE latents (16 for Cosmos and Wan).
        temporal_compression: frames per latent frame of the causal VAE (Cosmos 8, Wan 4).
        spatial_compression: pixels per latent pixel along each axis (8 for both).
        patch_size: latent pixels per token along each spatial axis.
        temporal_patch: latent frames per token.
        width: token width (model dimension).
        depth: number of sequence blocks.
        attention_every: every n-th block is a self-attention block, the others state-space blocks.
        heads: heads of the attention and the state-space blocks.
        state_size: state size of the state-space scan per head.
        expand: inner width of the state-space blocks, as a multiple of ``width``.
        mlp_ratio: hidden width of the attention blocks' MLP, as a multiple of ``width``.
        chunk_size: tokens per chunk of the chunked scan (memory vs. speed; not the result).
        gaussian_upsample: Gaussians per latent pixel along each axis (1 = one per latent pixel).
        near, far: depth range of the Gaussians along their pixel rays (scene units).
        init_depth: depth of every Gaussian before training (scene units; the scene teacher
            normalises scenes so the input view's median depth is 1).
        scale_range: Gaussian scales as multiples of the pixel footprint at their depth.
        time_conditioning: add frame-time and target-time embeddings (dynamic scenes).
    """

    latent_channels: int = 16
    temporal_compression: int = 8
    spatial_compression: int = 8
    patch_size: int = 1
    temporal_patch: int = 1
    width: int = 64
    depth: int = 4
    attention_every: int = 4
    heads: int = 2
    state_size: int = 16
    expand: int = 2
    mlp_ratio: float = 4.0
    chunk_size: int = 64
    gaussian_upsample: int = 1
    near: float = 0.1
    far: float = 100.0
    init_depth: float = 1.0
    scale_range: tuple[float, float] = (0.1, 4.0)
    time_conditioning: bool = False

    def __post_init__(self) -> None:
        if self.width % self.heads or (self.width * self.expand) % self.heads:
            raise ValueError(f"width {self.width} (and width * expand) must be divisible by heads {self.heads}")
        if not 0 < self.near < self.init_depth < self.far:
            raise ValueError(f"need 0 < near < init_depth < far, got near={self.near}, init_depth={self.init_depth}, far={self.far}")
        if not 0 < self.scale_range[0] < self.scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with 0 < low < high, got {self.scale_range}")
        for name in ("patch_size", "temporal_patch", "depth", "attention_every", "gaussian_upsample", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DecoderConfig":
        values = json.loads(text)
        values["scale_range"] = tuple(values["scale_range"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def decoder_config(preset: str = "tiny", vae_kind: str = "cosmos", **overrides) -> DecoderConfig:
    """A named configuration for a VAE kind.

    ``tiny``: width 64, 4 blocks (3 state-space + 1 attention), for CPU tests and small runs.
    ``base``: Lyra-like widths: width 1024, 24 blocks with attention every 8th (a 7:1 mix as in
    Long-LRM/Lyra), 16 heads, 2x2 latent patches.
    """
    check_choice(preset, DecoderPreset, "decoder preset")
    check_choice(vae_kind, VaeKind, "vae kind")
    values: dict = {"temporal_compression": 8 if vae_kind == "cosmos" else 4}
    if preset == "tiny":
        values.update(width=64, depth=4, attention_every=4, heads=2, state_size=16, patch_size=1)
    else:
        values.update(width=1024, depth=24, attention_every=8, heads=16, state_size=64, patch_size=2, chunk_size=128)
    values.update(overrides)
    return DecoderConfig(**values)


# ----------------------------------------------------------------------------- selective scan
def _segment_sums(log_decay: torch.Tensor) -> torch.Tensor:  # [..., Q] -> [..., Q, Q]
    """out[..., i, j] = sum(log_decay[..., j+1 : i+1]) for j <= i, -inf above the diagonal."""
    q = log_decay.shape[-1]
    cumulative = torch.cumsum(log_decay, dim=-1)
    sums = cumulative[..., :, None] - cumulative[..., None, :]
    mask = torch.ones(q, q, dtype=torch.bool, device=log_decay.device).tril()
    return sums.masked_fill(~mask, float("-inf"))


def selective_scan(
    inputs: torch.Tensor,  # [B, L, H, P]
    log_decay: torch.Tensor,  # [B, L, H] (<= 0)
    in_weights: torch.Tensor,  # [B, L, S]
    out_weights: torch.Tensor,  # [B, L, S]
    chunk_size: int = 64,
) -> torch.Tensor:  # [B, L, H, P]
    """Causal linear recurrence, computed in chunks (Mamba-2's state-space-duality form).

    state_t = exp(log_decay_t) * state_{t-1} + in_weights_t ⊗ inputs_t   (state [H, S, P])
    out_t   = out_weights_t · state_t

    Within a chunk the recurrence is a masked (attention-like) matrix product; between chunks a
    short loop carries the state. Cost is O(L * chunk_size), memory O(L * chunk_size * H).
    :func:`selective_scan_reference` is the step-by-step definition the tests compare against.
    """
    batch, length, heads, head_dim = inputs.shape
    pad = (-length) % chunk_size
    if pad:
        inputs = F.pad(inputs, (0, 0, 0, 0, 0, pad))
        log_decay = F.pad(log_decay, (0, 0, 0, pad))
        in_weights = F.pad(in_weights, (0, 0, 0, pad))
        out_weights = F.pad(out_weights, (0, 0, 0, pad))
    chunks = inputs.shape[1] // chunk_size
    x = inputs.reshape(batch, chunks, chunk_size, heads, head_dim)
    a = log_decay.reshape(batch, chunks, chunk_size, heads).permute(0, 3, 1, 2)  # [B, H, c, Q]
    b = in_weights.reshape(batch, chunks, chunk_size, -1)  # [B, c, Q, S]
    c = out_weights.reshape(batch, chunks, chunk_size, -1)
    a_cumulative = torch.cumsum(a, dim=-1)  # [B, H, c, Q]

    # 1. Outputs from inputs of the same chunk.
    decay_matrix = torch.exp(_segment_sums(a))  # [B, H, c, Q, Q]
    scores = torch.einsum("bcis,bcjs->bcij", c, b)  # [B, c, Q, Q]
    diagonal = torch.einsum("bcij,bhcij,bcjhp->bcihp", scores, decay_matrix, x)

    # 2. State each chunk leaves behind, from its own inputs only.
    decay_to_end = torch.exp(a_cumulative[..., -1:] - a_cumulative)  # [B, H, c, Q]
    chunk_states = torch.einsum("bcjs,bhcj,bcjhp->bchsp", b, decay_to_end, x)  # [B, c, H, S, P]

    # 3. Carry states across chunks: the state entering chunk k.
    chunk_decay = torch.exp(a_cumulative[..., -1])  # [B, H, c]
    carried = [torch.zeros_like(chunk_states[:, 0])]
    for k in range(chunks - 1):
        carried.append(carried[-1] * chunk_decay[:, :, k, None, None] + chunk_states[:, k])
    entering = torch.stack(carried, dim=1)  # [B, c, H, S, P]

    # 4. Outputs from the carried state, decayed to each position.
    decay_from_start = torch.exp(a_cumulative)  # [B, H, c, Q]
    off_diagonal = torch.einsum("bcis,bchsp,bhci->bcihp", c, entering, decay_from_start)
    out = (diagonal + off_diagonal).reshape(batch, chunks * chunk_size, heads, head_dim)
    return out[:, :length]


def selective_scan_reference(inputs, log_decay, in_weights, out_weights) -> torch.Tensor:
    """Step-by-step form of :func:`selective_scan` (slow; the definition, for tests)."""
    batch, length, heads, head_dim = inputs.shape
    state = inputs.new_zeros(batch, heads, in_weights.shape[-1], head_dim)
    outputs = []
    for t in range(length):
        state = state * torch.exp(log_decay[:, t])[:, :, None, None] + torch.einsum("bs,bhp->bhsp", in_weights[:, t], inputs[:, t])
        outputs.append(torch.einsum("bs,bhsp->bhp", out_weights[:, t], state))
    return torch.stack(outputs, dim=1)


# ----------------------------------------------------------------------------- blocks
class StateSpaceBlock(nn.Module):
    """Bidirectional selective state-space block (Mamba-2-like), pre-norm, residual.

    in_proj -> (x, gate); x -> depthwise conv over neighbouring tokens -> SiLU; a forward and a
    backward scan (separate decay and B/C projections) are summed, a skip term is added, and
    the result is gated by SiLU(gate) before out_proj.
    """

    def __init__(self, width: int, heads: int, state_size: int, expand: int, chunk_size: int) -> None:
        super().__init__()
        inner = width * expand
        self.heads, self.state_size, self.chunk_size = heads, state_size, chunk_size
        self.norm = nn.LayerNorm(width)
        self.in_proj = nn.Linear(width, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, kernel_size=3, padding=1, groups=inner)
        # Per direction: step size per head, B and C (shared by the heads, as Mamba-2's single group).
        self.scan_proj = nn.Linear(inner, 2 * (heads + 2 * state_size))
        # Decay rates spread log-uniformly over [1, 16] per head, as Mamba initialises A.
        self.log_rate = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, heads)).repeat(2))
        self.step_bias = nn.Parameter(torch.log(torch.expm1(torch.logspace(-3, -1, heads))).repeat(2))
        self.skip = nn.Parameter(torch.ones(heads))
        self.out_norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, width)

    def _scan(self, x: torch.Tensor, params: torch.Tensor, direction: int) -> torch.Tensor:
        heads, state = self.heads, self.state_size
        step_raw, in_weights, out_weights = params.split([heads, state, state], dim=-1)
        sl = slice(direction * heads, (direction + 1) * heads)
        step = F.softplus(step_raw + self.step_bias[sl])  # [B, L, H]
        log_decay = -step * torch.exp(self.log_rate[sl])
        inputs = x.unflatten(-1, (heads, -1)) * step[..., None]
        return selective_scan(inputs, log_decay, in_weights, out_weights, self.chunk_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, D]
        x, gate = self.in_proj(self.norm(tokens)).chunk(2, dim=-1)
        x = F.silu(self.conv(x.transpose(1, 2)).transpose(1, 2))
        forward_params, backward_params = self.scan_proj(x).chunk(2, dim=-1)
        y = self._scan(x, forward_params, 0)
        y = y + self._scan(x.flip(1), backward_params.flip(1), 1).flip(1)
        y = y + x.unflatten(-1, (self.heads, -1)) * self.skip[:, None]
        y = self.out_norm(y.flatten(-2)) * F.silu(gate)
        return tokens + self.out_proj(y)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: full multi-head self-attention over all tokens, then an MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, L, D]
        q, k, v = self.qkv(self.norm1(tokens)).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        tokens = tokens + self.proj(attended)
        return tokens + self.mlp(self.norm2(tokens))


def sinusoidal_embedding(values: torch.Tensor, width: int) -> torch.Tensor:  # [...] -> [..., width]
    """Transformer-style sin/cos features of scalar ``values`` (times in [0, 1] scaled by 1000)."""
    half = width // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=values.device, dtype=torch.float32) / half)
    angles = values[..., None].float() * 1000.0 * frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


# ----------------------------------------------------------------------------- decoder
class GaussianDecoder(nn.Module):
    """Decode video latents of V trajectories (+ their cameras) into raw Gaussian parameters.

    See the module docstring for the architecture; :meth:`decode` also places the Gaussians.
    """

    def __init__(self, config: DecoderConfig = DecoderConfig()) -> None:
        super().__init__()
        self.config = config
        tc, patch, tpatch = config.temporal_compression, config.patch_size, config.temporal_patch
        plucker_channels = 6 * tc
        self.patch_embed = nn.Conv3d(
            config.latent_channels + plucker_channels, config.width, kernel_size=(tpatch, patch, patch), stride=(tpatch, patch, patch)
        )
        self.blocks = nn.ModuleList(
            AttentionBlock(config.width, config.heads, config.mlp_ratio)
            if (index + 1) % config.attention_every == 0
            else StateSpaceBlock(config.width, config.heads, config.state_size, config.expand, config.chunk_size)
            for index in range(config.depth)
        )
        if config.time_conditioning:
            self.frame_time_mlp = nn.Sequential(nn.Linear(config.width, config.width), nn.SiLU(), nn.Linear(config.width, config.width))
            self.target_time_mlp = nn.Sequential(nn.Linear(config.width, config.width), nn.SiLU(), nn.Linear(config.width, config.width))
        self.head_norm = nn.LayerNorm(config.width)
        up = patch * config.gaussian_upsample
        self.head = nn.ConvTranspose3d(config.width, GAUSSIAN_CHANNELS, kernel_size=(tpatch * tc, up, up), stride=(tpatch * tc, up, up))
        self._init_head()

    def _init_head(self) -> None:
        # Start from small, half-transparent, grey, mid-depth, unrotated Gaussians so the first
        # renders are neither empty nor saturated.
        nn.init.normal_(self.head.weight, std=0.02 / math.sqrt(self.config.width))
        bias = torch.zeros(GAUSSIAN_CHANNELS)
        config = self.config
        disparity_fraction = (1.0 / config.init_depth - 1.0 / config.far) / (1.0 / config.near - 1.0 / config.far)
        bias[_RAW_SLICES["depth"]] = math.log(disparity_fraction / (1.0 - disparity_fraction))
        bias[_RAW_SLICES["opacity"]] = -1.0
        bias[_RAW_SLICES["quat"].start] = 1.0
        self.head.bias.data.copy_(bias)

    def forward(
        self,
        latents: torch.Tensor,  # [B, V, C, T', h, w]
        plucker: torch.Tensor,  # [B, V, T, 6, h, w]
        frame_times: torch.Tensor | None = None,  # [B, V, T]
        target_time: torch.Tensor | None = None,  # [B]
    ) -> torch.Tensor:  # [B, V, T, h*up, w*up, 14]
        """Raw Gaussian parameters, one grid per video frame (T = 1 + tc (T' - 1))."""
        config = self.config
        tc = config.temporal_compression
        if latents.dim() != 6 or latents.shape[2] != config.latent_channels:
            raise ValueError(f"latents must have shape [B, V, {config.latent_channels}, T', h, w], got {list(latents.shape)}")
        batch, views, _, latent_frames, h, w = latents.shape
        frames = 1 + tc * (latent_frames - 1)
        if tuple(plucker.shape) != (batch, views, frames, 6, h, w):
            raise ValueError(f"plucker must have shape {[batch, views, frames, 6, h, w]} (T = 1 + {tc} (T' - 1)), got {list(plucker.shape)}")
        if latent_frames % config.temporal_patch or h % config.patch_size or w % config.patch_size:
            raise ValueError(
                f"latent grid {latent_frames}x{h}x{w} must be divisible by the patch {config.temporal_patch}x{config.patch_size}x{config.patch_size}"
            )
        if config.time_conditioning and (frame_times is None or target_time is None):
            raise ValueError("this decoder is time-conditioned: pass frame_times [B, V, T] and target_time [B]")

        # Causal grouping of the ray maps: frame 0 alone (repeated tc times), then tc frames per latent frame.
        grouped = torch.cat([plucker[:, :, :1].expand(-1, -1, tc, -1, -1, -1), plucker[:, :, 1:]], dim=2)
        grouped = grouped.reshape(batch, views, latent_frames, tc * 6, h, w).transpose(2, 3)  # [B, V, tc*6, T', h, w]
        inputs = torch.cat([latents, grouped.to(latents.dtype)], dim=2).flatten(0, 1)
        grid = self.patch_embed(inputs)  # [B*V, D, T'', h'', w'']
        grid_shape = grid.shape[2:]
        tokens = grid.flatten(2).transpose(1, 2).reshape(batch, -1, config.width)  # [B, V*T''*h''*w'', D]

        if config.time_conditioning:
            tokens = tokens + self._time_embedding(frame_times, target_time, grid_shape)

        for block in self.blocks:
            tokens = block(tokens)

        tokens = self.head_norm(tokens).reshape(batch * views, -1, config.width).transpose(1, 2)
        raw = self.head(tokens.reshape(batch * views, config.width, *grid_shape))  # [B*V, 14, T'*tc, h*up, w*up]
        raw = raw[:, :, tc - 1 :]
        return raw.reshape(batch, views, GAUSSIAN_CHANNELS, frames, *raw.shape[-2:]).permute(0, 1, 3, 4, 5, 2)

    def _time_embedding(self, frame_times, target_time, grid_shape) -> torch.Tensor:  # [B, L, D]
        config = self.config
        tc, tpatch = config.temporal_compression, config.temporal_patch
        batch, views, frames = frame_times.shape
        padded = torch.cat([frame_times[:, :, :1].expand(-1, -1, tc), frame_times[:, :, 1:]], dim=2)
        per_token_frame = padded.reshape(batch, views, -1, tc * tpatch).mean(-1)  # [B, V, T'']
        frame_features = self.frame_time_mlp(sinusoidal_embedding(per_token_frame, config.width))  # [B, V, T'', D]
        spatial = grid_shape[1] * grid_shape[2]
        frame_features = frame_features[:, :, :, None].expand(-1, -1, -1, spatial, -1).reshape(batch, -1, config.width)
        target_features = self.target_time_mlp(sinusoidal_embedding(target_time.reshape(batch), config.width))
        return frame_features + target_features[:, None]

    def decode(
        self,
        latents: torch.Tensor,  # [B, V, C, T', h, w]
        viewmats: torch.Tensor,  # [B, V, T, 4, 4]
        Ks: torch.Tensor,  # [B, V, T, 3, 3]
        width: int,
        height: int,
        frame_times: torch.Tensor | None = None,  # [B, V, T]
        target_time: torch.Tensor | None = None,  # [B]
    ) -> "DecodedGaussians":
        """Run the network on latents and cameras and place the Gaussians in the world."""
        stride = self.config.spatial_compression
        plucker = plucker_rays(viewmats, Ks, width, height, stride).to(latents.device)
        raw = self(latents, plucker, frame_times, target_time)
        return gaussians_from_raw(raw, viewmats.to(latents.device), Ks.to(latents.device), width, height, self.config)


# ----------------------------------------------------------------------------- Gaussians
@dataclass
class DecodedGaussians:
    """World-space Gaussian parameters (raw, as ``GaussianScene`` stores them), batched.

    means [B, N, 3], quats [B, N, 4], log_scales [B, N, 3], opacity_logits [B, N], sh [B, N, 1, 3]
    with N = V * T * h_g * w_g (trajectory, frame, row, column order).
    """

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor
    frame: str = "opencv-first-camera"
    metadata_extras: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.means.shape[1]

    def scene(self, index: int = 0, min_opacity: float = 0.0, detach: bool = False) -> GaussianScene:
        """Scene ``index`` of the batch as a ``GaussianScene`` (SH degree 0).

        Gaussians with opacity below ``min_opacity`` are pruned; gradients flow through the
        returned tensors unless ``detach``.
        """
        tensors = [self.means[index], self.quats[index], self.log_scales[index], self.opacity_logits[index], self.sh[index]]
        if detach:
            tensors = [t.detach() for t in tensors]
        if min_opacity > 0.0:
            keep = torch.sigmoid(tensors[3]) >= min_opacity
            tensors = [t[keep] for t in tensors]
        metadata = SceneMetadata(frame=self.frame, metric=False, notes=["decoded by lyra_sim.generate.GaussianDecoder"], extras=dict(self.metadata_extras))
        return GaussianScene(*tensors, metadata=metadata)


def gaussians_from_raw(
    raw: torch.Tensor,  # [B, V, T, hg, wg, 14]
    viewmats: torch.Tensor,  # [B, V, T, 4, 4]
    Ks: torch.Tensor,  # [B, V, T, 3, 3]
    width: int,
    height: int,
    config: DecoderConfig,
) -> DecodedGaussians:
    """Place the decoder's raw outputs on their pixel rays and activate them into world space.

    Gaussian (row i, column j) of frame t sits on the ray through its grid cell's centre moved by
    a sub-pixel offset in (-0.5, 0.5) cells, at camera depth z = 1 / lerp(1/far, 1/near, sigmoid(r))
    (uniform in disparity, so the far field is cheap to reach). Its scales are
    footprint * exp(lerp(log s_min, log s_max, sigmoid(r))) with footprint = z * cell / f, so one
    raw value means the same screen size at every depth. Quaternions are in the camera frame and
    rotated into the world; colours are RGB in (0, 1) stored as the SH DC term.
    """
    batch, views, frames, grid_h, grid_w, channels = raw.shape
    if channels != GAUSSIAN_CHANNELS:
        raise ValueError(f"raw must have {GAUSSIAN_CHANNELS} channels in its last dimension, got {list(raw.shape)}")
    if viewmats.shape != (batch, views, frames, 4, 4) or Ks.shape != (batch, views, frames, 3, 3):
        raise ValueError(f"viewmats/Ks must have shapes [{batch}, {views}, {frames}, 4/3, 4/3], got {list(viewmats.shape)} and {list(Ks.shape)}")
    if width % grid_w or height % grid_h or width // grid_w != height // grid_h:
        raise ValueError(f"a {grid_w}x{grid_h} Gaussian grid does not tile a {width}x{height} image with square cells")
    cell = width // grid_w
    part = {name: raw[..., s] for name, s in _RAW_SLICES.items()}

    u, v = block_centres(width, height, cell, device=raw.device)
    offset = 0.5 * torch.tanh(part["offset"]) * cell
    origins, directions = pixel_rays(viewmats, Ks, u + offset[..., 0], v + offset[..., 1])
    inverse_depth = torch.lerp(torch.full_like(part["depth"], 1.0 / config.far), torch.full_like(part["depth"], 1.0 / config.near), torch.sigmoid(part["depth"]))
    depth = 1.0 / inverse_depth  # [B, V, T, hg, wg, 1]
    means = origins[..., None, None, :] + depth * directions

    focal = Ks[..., 0, 0][..., None, None, None]
    footprint = depth * cell / focal
    low, high = math.log(config.scale_range[0]), math.log(config.scale_range[1])
    log_scales = torch.log(footprint) + low + (high - low) * torch.sigmoid(part["scale"])

    camera_to_world = matrix_to_quat(viewmats[..., :3, :3].transpose(-1, -2))  # [B, V, T, 4]
    local = part["quat"] / part["quat"].norm(dim=-1, keepdim=True).clamp_min(1e-8)
    quats = quat_multiply(camera_to_world[..., None, None, :].expand_as(local), local)

    colours = torch.sigmoid(part["rgb"])
    sh = ((colours - 0.5) / SH_C0)[..., None, :]
    flat = lambda t, *tail: t.reshape(batch, -1, *tail)  # noqa: E731
    return DecodedGaussians(flat(means, 3), flat(quats, 4), flat(log_scales, 3), flat(part["opacity"], ), flat(sh, 1, 3))


# ----------------------------------------------------------------------------- checkpoints
def save_decoder(decoder: GaussianDecoder, path: str | Path, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write the decoder's weights and config to one safetensors file (atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {_CONFIG_METADATA_KEY: decoder.config.to_json(), **(extra_metadata or {})}
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in decoder.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_decoder(path: str | Path, device: str | torch.device = "cpu") -> GaussianDecoder:
    """Read a decoder written by :func:`save_decoder`; errors name the file and the problem."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"no decoder weights at {path}; expected a .safetensors file written by `lyra-sim distill`")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise MissingWeightsError(f"{path} is not a readable safetensors file: {error}") from None
    if _CONFIG_METADATA_KEY not in metadata:
        raise MissingWeightsError(f"{path} has no '{_CONFIG_METADATA_KEY}' metadata; was it written by lyra_sim.generate.save_decoder?")
    decoder = GaussianDecoder(DecoderConfig.from_json(metadata[_CONFIG_METADATA_KEY])).to(device)
    missing, unexpected = decoder.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise MissingWeightsError(f"{path} does not match its decoder config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return decoder

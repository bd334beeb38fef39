"""The Lyra-style 3DGS decoder: selective scan, shapes per config, Gaussian placement, checkpoints."""

import math

import pytest
import torch

from lyra_sim.errors import MissingWeightsError
from lyra_sim.generate.decoder import (
    DecoderConfig,
    GaussianDecoder,
    decoder_config,
    gaussians_from_raw,
    load_decoder,
    save_decoder,
    selective_scan,
    selective_scan_reference,
)
from lyra_sim.generate.trajectories import lyra_trajectories, stack_trajectories
from lyra_sim.scene.gaussian_scene import quat_to_matrix

K = torch.tensor([[32.0, 0.0, 16.0], [0.0, 32.0, 16.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("length, chunk", [(1, 4), (37, 8), (64, 16), (50, 64)])
def test_chunked_scan_matches_the_recurrence(length, chunk):
    g = torch.Generator().manual_seed(length)
    x = torch.randn(2, length, 3, 4, generator=g)
    log_decay = -torch.rand(2, length, 3, generator=g) * 2
    b, c = torch.randn(2, length, 5, generator=g), torch.randn(2, length, 5, generator=g)
    torch.testing.assert_close(selective_scan(x, log_decay, b, c, chunk), selective_scan_reference(x, log_decay, b, c), atol=1e-4, rtol=1e-4)


def _cameras(views: int, frames: int, width: int = 32, height: int = 32):
    trajectories = lyra_trajectories(torch.eye(4), K, width, height, frames)[:views]
    viewmats, Ks = stack_trajectories(trajectories)
    return viewmats[None], Ks[None]


@pytest.mark.parametrize("vae_kind, latent_frames, frames", [("cosmos", 2, 9), ("wan", 3, 9)])
@pytest.mark.parametrize("dynamic", [False, True])
def test_tiny_decoder_shapes(vae_kind, latent_frames, frames, dynamic):
    decoder = GaussianDecoder(decoder_config("tiny", vae_kind, time_conditioning=dynamic))
    viewmats, Ks = _cameras(2, frames)
    latents = torch.randn(1, 2, 16, latent_frames, 4, 4)
    times = torch.linspace(0, 1, frames).expand(1, 2, frames) if dynamic else None
    target = torch.tensor([0.5]) if dynamic else None
    decoded = decoder.decode(latents, viewmats, Ks, 32, 32, times, target)
    n = 2 * frames * 4 * 4  # one Gaussian per latent pixel per frame
    assert decoded.means.shape == (1, n, 3) and decoded.quats.shape == (1, n, 4)
    assert decoded.log_scales.shape == (1, n, 3) and decoded.opacity_logits.shape == (1, n) and decoded.sh.shape == (1, n, 1, 3)
    scene = decoded.scene(0)
    assert len(scene) == n and scene.sh_degree == 0 and scene.metadata.frame == "opencv-first-camera"
    if dynamic:
        other = decoder.decode(latents, viewmats, Ks, 32, 32, times, torch.tensor([0.9]))
        assert not torch.allclose(other.means, decoded.means)  # the target time changes the output
        with pytest.raises(ValueError, match="time-conditioned"):
            decoder.decode(latents, viewmats, Ks, 32, 32)


def test_gaussian_upsample_and_patches():
    config = decoder_config("tiny", "wan", patch_size=2, gaussian_upsample=2)
    decoder = GaussianDecoder(config)
    viewmats, Ks = _cameras(1, 5)
    decoded = decoder.decode(torch.randn(1, 1, 16, 2, 4, 4), viewmats, Ks, 32, 32)
    assert decoded.means.shape == (1, 5 * 8 * 8, 3)
    with pytest.raises(ValueError, match="divisible by the patch"):
        decoder.decode(torch.randn(1, 1, 16, 2, 3, 4), *_cameras(1, 5, 32, 24), 32, 24)


def test_base_config_is_lyra_sized_and_runs():
    config = decoder_config("base", "cosmos")
    assert config.width == 1024 and config.depth == 24 and config.attention_every == 8 and config.patch_size == 2
    with torch.device("meta"):  # count parameters without paying for 180M initialisations
        decoder = GaussianDecoder(config)
    parameters = sum(p.numel() for p in decoder.parameters())
    assert 1e8 < parameters < 4e8
    blocks = [type(block).__name__ for block in decoder.blocks]
    assert blocks.count("AttentionBlock") == 3 and blocks.count("StateSpaceBlock") == 21
    # A forward pass at base width (two of its blocks, one of each kind) on a small input.
    shallow = GaussianDecoder(decoder_config("base", "cosmos", depth=2, attention_every=2))
    with torch.no_grad():
        raw = shallow(torch.randn(1, 1, 16, 2, 4, 4), torch.randn(1, 1, 9, 6, 4, 4))
    assert raw.shape == (1, 1, 9, 4, 4, 14)


def test_input_shape_errors_name_the_shapes():
    decoder = GaussianDecoder(decoder_config("tiny", "cosmos"))
    with pytest.raises(ValueError, match=r"latents must have shape"):
        decoder(torch.randn(1, 8, 2, 4, 4), torch.randn(1, 1, 9, 6, 4, 4))
    with pytest.raises(ValueError, match=r"plucker must have shape \[1, 1, 9, 6, 4, 4\]"):
        decoder(torch.randn(1, 1, 16, 2, 4, 4), torch.randn(1, 1, 8, 6, 4, 4))


def test_gaussians_sit_on_their_pixel_rays():
    config = DecoderConfig(near=0.5, far=20.0)
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(1, 1, 1, 4, 4, 14, generator=g)
    raw[..., 1:3] = 0.0  # no sub-pixel offset: rays through the cell centres
    angle = 0.3
    viewmat = torch.eye(4)
    viewmat[:3, :3] = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    viewmat[:3, 3] = torch.tensor([0.2, -0.1, 0.3])
    decoded = gaussians_from_raw(raw, viewmat[None, None, None], K[None, None, None], 32, 32, config)
    camera_points = decoded.means[0] @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = camera_points[:, 2]
    assert bool(((z > 0.5 - 1e-4) & (z < 20.0 + 1e-3)).all())
    expected_z = 1.0 / torch.lerp(torch.tensor(1 / 20.0), torch.tensor(1 / 0.5), torch.sigmoid(raw[0, 0, 0, ..., 0].flatten()))
    torch.testing.assert_close(z, expected_z, rtol=1e-4, atol=1e-4)
    u = 32.0 * camera_points[:, 0] / z + 16.0
    v = 32.0 * camera_points[:, 1] / z + 16.0
    centres = torch.arange(4) * 8.0 + 4.0
    torch.testing.assert_close(u, centres.repeat(4), atol=1e-3, rtol=0)
    torch.testing.assert_close(v, centres.repeat_interleave(4), atol=1e-3, rtol=0)
    # Scales: between the configured multiples of the pixel footprint z * cell / f.
    footprint = z * 8.0 / 32.0
    scales = decoded.log_scales[0].exp()
    assert bool((scales >= 0.1 * footprint[:, None] * 0.999).all() and (scales <= 4.0 * footprint[:, None] * 1.001).all())
    # Rotations: the camera-frame quaternion carried into the world by the camera's rotation.
    local = raw[0, 0, 0, ..., 7:11].reshape(-1, 4)
    local = local / local.norm(dim=-1, keepdim=True)
    world = quat_to_matrix(decoded.quats[0])
    torch.testing.assert_close(world, viewmat[:3, :3].T @ quat_to_matrix(local), atol=1e-5, rtol=0)


def test_save_load_round_trip(tmp_path):
    decoder = GaussianDecoder(decoder_config("tiny", "wan", time_conditioning=True))
    path = save_decoder(decoder, tmp_path / "decoder.safetensors")
    loaded = load_decoder(path)
    assert loaded.config == decoder.config
    viewmats, Ks = _cameras(1, 5)
    latents, times = torch.randn(1, 1, 16, 2, 4, 4), torch.linspace(0, 1, 5).expand(1, 1, 5)
    with torch.no_grad():
        a = decoder.decode(latents, viewmats, Ks, 32, 32, times, torch.tensor([0.3]))
        b = loaded.decode(latents, viewmats, Ks, 32, 32, times, torch.tensor([0.3]))
    torch.testing.assert_close(a.means, b.means, atol=0, rtol=0)
    torch.testing.assert_close(a.sh, b.sh, atol=0, rtol=0)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(MissingWeightsError, match="no decoder weights at .*missing.safetensors"):
        load_decoder(tmp_path / "missing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(MissingWeightsError, match="broken.safetensors"):
        load_decoder(broken)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(MissingWeightsError, match="metadata"):
        load_decoder(plain)

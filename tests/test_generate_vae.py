"""Video VAE wrapper: Cosmos and Wan from small random configs, normalisation, local loading."""

import json

import pytest
import torch

from lyra_sim.errors import MissingWeightsError
from lyra_sim.generate.vae import load_vae, tiny_vae

pytestmark = pytest.mark.usefixtures("single_threaded")


@pytest.mark.parametrize("kind, temporal, latent_frames", [("cosmos", 8, 2), ("wan", 4, 3)])
def test_encode_decode_shapes(kind, temporal, latent_frames):
    vae = tiny_vae(kind)
    assert (vae.kind, vae.temporal_compression, vae.spatial_compression, vae.latent_channels) == (kind, temporal, 8, 16)
    frames = torch.rand(2, 9, 3, 32, 24)
    latents = vae.encode(frames)
    assert latents.shape == (2, 16, latent_frames, 4, 3)
    assert vae.latent_frames(9) == latent_frames
    decoded = vae.decode(latents)
    assert decoded.shape == (2, 9, 3, 32, 24)
    assert float(decoded.min()) >= 0.0 and float(decoded.max()) <= 1.0
    # Different videos give different latents (the code carries the content).
    assert not torch.allclose(latents[0], latents[1])


def test_wan_latents_are_normalised_like_the_pipelines():
    vae = tiny_vae("wan")
    frames = torch.rand(1, 5, 3, 16, 16)
    raw = vae.model.encode(frames.movedim(2, 1) * 2 - 1).latent_dist.mode()
    mean = torch.tensor(vae.model.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(vae.model.config.latents_std).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(vae.encode(frames), (raw - mean) / std, atol=1e-5, rtol=1e-5)


def test_video_size_errors():
    vae = tiny_vae("cosmos")
    with pytest.raises(ValueError, match=r"1 \+ k\*8 frames"):
        vae.encode(torch.rand(1, 8, 3, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        vae.encode(torch.rand(1, 9, 3, 20, 16))
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        vae.encode(torch.rand(9, 3, 16, 16))


def test_save_and_load_from_a_local_folder(tmp_path):
    vae = tiny_vae("wan", seed=3)
    vae.save(tmp_path / "vae")
    loaded = load_vae(tmp_path / "vae")
    assert loaded.kind == "wan"
    frames = torch.rand(1, 5, 3, 16, 16)
    torch.testing.assert_close(loaded.encode(frames), vae.encode(frames), atol=1e-6, rtol=1e-6)


def test_missing_weights_name_the_layout(tmp_path):
    with pytest.raises(MissingWeightsError, match="config.json.*AutoencoderKLCosmos"):
        load_vae(tmp_path / "nowhere")
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan"}))
    with pytest.raises(MissingWeightsError, match="no VAE weights"):
        load_vae(folder)
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(MissingWeightsError, match="UNet2DModel"):
        load_vae(folder)

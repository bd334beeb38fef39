"""`lyra-sim distill` and `lyra-sim generate` end to end with tiny random weights; the diffusers teacher."""

import numpy as np
import pytest
import torch
from PIL import Image

from lyra_sim.cli import main
from lyra_sim.errors import MissingWeightsError
from lyra_sim.generate.teachers import DiffusersTeacher, load_video_pipeline
from lyra_sim.generate.vae import tiny_vae
from lyra_sim.scene.gaussian_scene import GaussianScene

pytestmark = pytest.mark.usefixtures("single_threaded")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A weights folder from a 2-step `lyra-sim distill` run on a small splat file."""
    from lyra_sim.scene.io import save_scene

    root = tmp_path_factory.mktemp("distill")
    g = torch.Generator().manual_seed(0)
    means = torch.randn(1500, 3, generator=g) * torch.tensor([1.0, 1.0, 0.3])
    scene = GaussianScene.from_activated(means, torch.rand(1500, 3, generator=g), torch.full((1500,), 0.8), torch.full((1500, 3), 0.08))
    scene.metadata.frame = "z-up"
    save_scene(scene, root / "scene.ply")
    out = root / "weights"
    status = main([
        "distill", str(root / "scene.ply"), "-o", str(out), "--vae", "random-wan", "--steps", "2", "--frames", "5",
        "--width", "32", "--height", "32", "--input-views", "1", "--held-out-views", "1", "--views-per-step", "2",
        "--backend", "reference", "--no-progress",
    ])
    assert status == 0
    return out


def test_distill_writes_the_weights_layout(weights):
    import json

    assert (weights / "decoder.safetensors").is_file() and (weights / "vae" / "config.json").is_file()
    settings = json.loads((weights / "distill.json").read_text())
    assert settings["frames"] == 5 and settings["vae_kind"] == "wan" and settings["steps"] == 2
    assert np.isfinite(settings["metrics"]["train"]["psnr"]) and settings["metrics"]["held_out"]["views"] == 6 * 5
    assert len(list((weights / "checkpoints").iterdir())) == 1


def test_generate_writes_a_ply_that_load_scene_reads(weights, tmp_path):
    from lyra_sim.scene.io import load_scene

    image = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)).save(image)
    out = tmp_path / "scene.ply"
    status = main(["generate", str(image), "-o", str(out), "--weights", str(weights), "--still-image", "--min-opacity", "0"])
    assert status == 0
    scene = load_scene(out)
    assert len(scene) == 6 * 5 * 4 * 4  # 6 trajectories x 5 frames x 4x4 latent pixels
    assert scene.sh_degree == 0 and bool(torch.isfinite(scene.means).all())
    assert bool((scene.means[:, 2] > 0).all())  # in front of the input camera (Lyra's frame: +Z forward)


def test_generate_without_a_video_model_says_where_to_put_it(weights, tmp_path, capsys):
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(image)
    assert main(["generate", str(image), "-o", str(tmp_path / "x.ply"), "--weights", str(weights)]) == 1
    assert "video_model" in capsys.readouterr().err
    assert main(["generate", str(image), "-o", str(tmp_path / "x.ply"), "--weights", str(tmp_path / "none")]) == 1
    assert "decoder.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "x.ply").exists()


def test_load_video_pipeline_needs_a_local_folder(tmp_path):
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        load_video_pipeline(tmp_path)


class _RecordingPipeline:
    """Stands in for a diffusers image-to-video pipeline: returns latents of the requested size."""

    def __init__(self, vae):
        self.vae = vae
        self.calls = []

    def __call__(self, image, num_frames, height, width, output_type, prompt="", cameras=None):
        self.calls.append({"size": image.size, "num_frames": num_frames, "output_type": output_type, "prompt": prompt, "cameras": cameras})
        latent_frames = 1 + (num_frames - 1) // 4
        return type("Output", (), {"frames": torch.randn(1, 16, latent_frames, height // 8, width // 8)})()


def test_diffusers_teacher_passes_trajectories_to_the_pipeline():
    vae = tiny_vae("wan")
    pipeline = _RecordingPipeline(vae)
    K = torch.tensor([[32.0, 0.0, 16.0], [0.0, 32.0, 16.0], [0.0, 0.0, 1.0]])
    image = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    teacher = DiffusersTeacher(pipeline, [image], K, 32, 32, num_frames=5, prompt="a room",
                               camera_conditioning=lambda trajectory: {"cameras": trajectory.viewmats})
    sample = teacher.sample(0)
    assert sample.latents.shape == (6, 16, 2, 4, 4) and sample.frames.shape == (6, 5, 3, 32, 32) and sample.depth is None
    assert len(pipeline.calls) == 6
    assert all(c["size"] == (32, 32) and c["output_type"] == "latent" and c["prompt"] == "a room" for c in pipeline.calls)
    torch.testing.assert_close(pipeline.calls[0]["cameras"], sample.viewmats[0])
    with pytest.warns(UserWarning, match="not told the trajectories"):
        DiffusersTeacher(pipeline, [image], K, 32, 32, num_frames=5)
    bad = DiffusersTeacher(pipeline, [image], K, 32, 32, num_frames=5, camera_conditioning=lambda t: {}, pipeline_kwargs={"num_frames": 9})
    with pytest.raises(ValueError, match="returned latents"):
        bad.sample(0)

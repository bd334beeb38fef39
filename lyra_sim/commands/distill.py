"""``lyra-sim distill``: train the Lyra-style 3DGS decoder on a scene teacher."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lyra_sim.cli import option
from lyra_sim.errors import LyraSimError
from lyra_sim.generate.distill import DistillConfig
from lyra_sim.options import settings_of
from lyra_sim.typed import DecoderPreset, DistillTarget, KitKind
from lyra_sim.io_utils import write_json

RANDOM_VAE_PREFIX = "random-"


@dataclass
class Config:
    """Self-distil the Lyra-style 3DGS decoder from a scene teacher.

    The teacher renders a known scene (a splat file, or a generated scene kit with --kit) along
    Lyra's six camera trajectories from --input-views viewpoints around it, encodes the videos
    with the video VAE, and the decoder learns to turn those latents back into Gaussians whose
    renders match the frames. The output folder holds what `lyra-sim generate --weights` reads:

      OUT/decoder.safetensors   decoder weights + config
      OUT/vae/                  the VAE (diffusers folder)
      OUT/distill.json          settings (frame size, trajectories) and held-out PSNR
      OUT/history.json          losses per step
      OUT/checkpoints/step-N/   resumable checkpoints (--resume OUT/checkpoints/step-N)

    --vae takes a local diffusers AutoencoderKLCosmos/AutoencoderKLWan folder, or
    random-cosmos / random-wan for a small random-weight VAE (CPU smoke runs, no weights needed).
    """

    out: str = option(help="output folder", short="-o")
    scene: str | None = option(help="splat file to distil on (or use --kit)", positional=True, default=None)
    kit: KitKind | None = option(help="distil on a generated scene kit instead of a file", default=None)
    kit_seed: int = option(help="seed of the scene kit", default=0)
    kit_gaussians: int = option(help="Gaussians sampled from the kit's surfaces", default=20000)
    vae: str = option(help="VAE folder, or random-cosmos / random-wan", default="random-cosmos")
    preset: DecoderPreset = option(help="decoder size", default="tiny")
    gaussian_upsample: int = option(help="Gaussians per latent pixel along each axis", default=1)
    input_views: int = option(help="input viewpoints around the scene (one teacher sample each)", default=4)
    held_out_views: int = option(help="extra input viewpoints kept for evaluation", default=1)
    frames: int = option(help="frames per trajectory video (1 + k * the VAE's temporal compression)", default=9)
    width: int = option(help="frame width (multiple of 8)", default=64)
    height: int = option(help="frame height (multiple of 8)", default=64)
    fov: float = option(help="vertical field of view of the frames, degrees", default=60.0)
    orbit_degrees: float = option(help="orbit angle of the trajectories, degrees", default=30.0)
    target: DistillTarget = option(help="reproduce the rendered frames or the VAE's decoding of them", default="rendered")
    resume: str | None = option(help="checkpoint folder to resume from", default=None)
    training: DistillConfig = settings_of(DistillConfig)
    progress: bool = option(help="show progress bars", default=True)


def build_vae(spec: str, seed: int = 0):
    """A VideoVAE from a folder, or a small random-weight one for ``random-cosmos`` / ``random-wan``."""
    from lyra_sim.generate.vae import load_vae, tiny_vae

    if spec.startswith(RANDOM_VAE_PREFIX):
        return tiny_vae(spec[len(RANDOM_VAE_PREFIX) :], seed=seed)
    return load_vae(spec)


def _scene_from_config(config: Config):
    if (config.scene is None) == (config.kit is None):
        raise LyraSimError("give either a splat file or --kit (not both)")
    if config.kit is not None:
        from lyra_sim.kits import make_scene

        kit = make_scene(config.kit, seed=config.kit_seed)
        scene, _ = kit.to_gaussians(config.kit_gaussians, seed=config.kit_seed)
        scene.metadata.frame = "z-up"
        return scene, f"{config.kit} kit (seed {config.kit_seed})"
    from lyra_sim.scene.io import load_scene

    return load_scene(config.scene), config.scene


def run(config: Config) -> int:
    import torch

    from lyra_sim.commands.checks import check_output

    check_output(config.out, "--out", kind="folder")

    from lyra_sim.generate.decoder import GaussianDecoder, decoder_config
    from lyra_sim.generate.distill import Distiller
    from lyra_sim.generate.teachers import SceneTeacher, input_views_around
    from lyra_sim.io_utils import atomic_path
    from lyra_sim.render.camera import intrinsics_from_fov

    training = config.training
    torch.manual_seed(training.seed)
    scene, source = _scene_from_config(config)
    vae = build_vae(config.vae, training.seed)
    try:
        vae.check_video_size(config.frames, config.height, config.width)
    except ValueError as error:
        raise LyraSimError(str(error)) from None
    K = intrinsics_from_fov(config.fov, config.width, config.height)
    viewmats = input_views_around(scene, config.input_views + config.held_out_views, config.fov, config.width, config.height, seed=training.seed)
    common = dict(K=K, width=config.width, height=config.height, num_frames=config.frames, orbit_degrees=config.orbit_degrees,
                  target=config.target, backend=training.backend)
    teacher = SceneTeacher(scene, vae, viewmats[: config.input_views], **common)
    held_out = SceneTeacher(scene, vae, viewmats[config.input_views :], **common) if config.held_out_views else None

    out = Path(config.out)
    decoder = GaussianDecoder(decoder_config(config.preset, vae.kind, gaussian_upsample=config.gaussian_upsample))
    distiller = Distiller(decoder, teacher, training, output_dir=out)
    if config.resume:
        distiller.load_checkpoint(config.resume)
    started = time.perf_counter()
    result = distiller.train(progress=config.progress)
    metrics = {"train": distiller.evaluate()}
    if held_out is not None:
        metrics["held_out"] = distiller.evaluate(held_out)
    vae_folder = out / "vae"
    if not vae_folder.is_dir():
        with atomic_path(vae_folder) as tmp:
            vae.save(tmp)
    settings = {
        "source": source,
        "vae_kind": vae.kind,
        "frames": config.frames,
        "width": config.width,
        "height": config.height,
        "fov_deg": config.fov,
        "orbit_degrees": config.orbit_degrees,
        "trajectories": list(teacher.kinds),
        "steps": result.steps,
        "seconds": time.perf_counter() - started,
        "metrics": metrics,
        "command": asdict(config),
    }
    write_json(out / "distill.json", settings)
    summary = f"train PSNR {metrics['train']['psnr']:.2f} dB"
    if "held_out" in metrics:
        summary += f", held-out PSNR {metrics['held_out']['psnr']:.2f} dB"
    print(f"distilled {result.steps} steps in {result.seconds:.1f} s: {summary}; weights in {out}")
    return 0

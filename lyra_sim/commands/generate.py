"""``lyra-sim generate``: one image -> a 3DGS scene with a distilled Lyra-style decoder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lyra_sim.cli import option
from lyra_sim.errors import LyraSimError, MissingWeightsError


@dataclass
class Config:
    """Generate a Gaussian scene from one image with distilled decoder weights.

    The video model (WEIGHTS/video_model, a diffusers image-to-video pipeline, or --video-model)
    turns the image into videos along Lyra's camera trajectories; the decoder turns their
    latents into Gaussians. The PLY is SH degree 0 in Lyra's frame ("opencv-first-camera":
    the input camera at the origin looking down +Z, up is -Y, not metric), ready for
    `lyra-sim build`. WEIGHTS is what `lyra-sim distill` writes:

      WEIGHTS/decoder.safetensors, WEIGHTS/vae/, WEIGHTS/distill.json, [WEIGHTS/video_model/]

    --still-image is a preview mode without a video model: every trajectory video is the
    input image held still, so the decoder infers geometry from one view and nothing beyond it.
    """

    image: str = option(help="input image (PNG, JPEG, ...)", positional=True)
    output: str = option(help="output scene (.ply)", short="-o")
    weights: str = option(help="weights folder written by `lyra-sim distill`")
    video_model: str | None = option(help="diffusers image-to-video pipeline folder (default: WEIGHTS/video_model)", default=None)
    still_image: bool = option(help="preview mode without a video model: decode a still video of the image", default=False)
    frames: int | None = option(help="frames per trajectory video (default: as in training)", default=None)
    width: int | None = option(help="frame width (default: as in training)", default=None)
    height: int | None = option(help="frame height (default: as in training)", default=None)
    fov: float | None = option(help="vertical field of view of the input image, degrees (default: as in training)", default=None)
    min_opacity: float = option(help="drop Gaussians below this opacity", default=0.005)
    prompt: str = option(help="text prompt for pipelines that take one", default="")
    device: str = option(help="torch device", default="cpu")


def run(config: Config) -> int:
    import numpy as np
    import torch

    from lyra_sim.commands.checks import check_output

    check_output(config.output, "--output")

    from lyra_sim.generate.distill import decode_sample, load_generator
    from lyra_sim.generate.teachers import DiffusersTeacher, StillImageTeacher, load_video_pipeline
    from lyra_sim.generate.trajectories import DEFAULT_TRAJECTORIES
    from lyra_sim.render.camera import intrinsics_from_fov
    from lyra_sim.scene.io import save_scene

    if not Path(config.image).is_file():
        raise LyraSimError(f"input image {config.image} does not exist")
    generator = load_generator(config.weights, device=config.device)
    settings = generator.settings
    frames = config.frames or settings.get("frames") or 1 + 2 * generator.vae.temporal_compression
    width = config.width or settings.get("width") or 64
    height = config.height or settings.get("height") or 64
    fov = config.fov or settings.get("fov_deg") or 60.0
    kinds = settings.get("trajectories") or DEFAULT_TRAJECTORIES
    orbit = settings.get("orbit_degrees", 30.0)
    K = intrinsics_from_fov(fov, width, height)
    common = dict(images=[config.image], K=K, width=width, height=height, num_frames=frames, kinds=kinds, orbit_degrees=orbit)
    try:
        if config.still_image:
            teacher = StillImageTeacher(generator.vae, **common)
        else:
            folder = Path(config.video_model) if config.video_model else generator.folder / "video_model"
            if not folder.is_dir():
                raise MissingWeightsError(
                    f"no video model at {folder}: put a diffusers image-to-video pipeline folder there (model_index.json + "
                    "components), pass --video-model DIR, or use --still-image for a preview without one"
                )
            teacher = DiffusersTeacher(load_video_pipeline(folder, config.device), prompt=config.prompt, device=config.device, **common)
        sample = teacher.sample(0)
    except ValueError as error:
        raise LyraSimError(f"{config.image}: {error}") from None
    with torch.no_grad():
        scene = decode_sample(generator.decoder, sample).scene(0, min_opacity=config.min_opacity, detach=True)
    scene.metadata.notes.append(f"generated from {config.image} with {generator.folder}")
    scene.metadata.source = str(config.image)
    # The trajectory cameras the decoder saw: they travel with the scene (<stem>.cameras.json), so
    # `lyra-sim build` takes gravity from them instead of guessing it from the geometry.
    from lyra_sim.scene.cameras import CaptureCameras

    viewmats = sample.viewmats.reshape(-1, 4, 4).double().cpu().numpy()
    scene.metadata.cameras = CaptureCameras.from_viewmats(viewmats, np.tile(K.double().numpy(), (len(viewmats), 1, 1)),
                                                          np.tile([width, height], (len(viewmats), 1)), source=str(config.image), kind="generated")
    path = save_scene(scene.to("cpu"), config.output)
    print(f"wrote {len(scene)} Gaussians (frame {scene.metadata.frame}) to {path}")
    return 0

"""Teachers for self-distillation: where the decoder's latents and target frames come from.

Every teacher yields :class:`TeacherSample` objects: for one input view, the video latents of V
trajectories, the RGB frames the decoder must reproduce, depth when known, and the cameras, all
expressed in Lyra's frame (the input camera is the identity, OpenCV axes).

* :class:`SceneTeacher` renders a known scene along the trajectories (a ``GaussianScene`` with
  the splat renderer, or a mesh ``SceneKit`` with PyBullet's TinyRenderer; a list of
  GaussianScenes for a dynamic scene) and encodes the frames with the VAE. It normalises each
  sample so the input view's median depth is 1, as Lyra's decoder sees non-metric scenes.
* :class:`DiffusersTeacher` wraps an image-conditioned video pipeline loaded from local weights
  (``diffusers.DiffusionPipeline``): latents come from the pipeline, frames from its VAE.

Heavy packages (diffusers, pybullet) are imported lazily.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lyra_sim.errors import MissingWeightsError
from lyra_sim.generate.trajectories import DEFAULT_TRAJECTORIES, Trajectory, lyra_trajectories, stack_trajectories
from lyra_sim.generate.vae import VideoVAE
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.typed import DistillTarget, check_choice

VIDEO_PIPELINE_LAYOUT = (
    "a diffusers image-to-video pipeline folder (as saved by `pipeline.save_pretrained`):\n"
    "  <folder>/model_index.json     (names the pipeline class and its components)\n"
    "  <folder>/vae/                 (AutoencoderKLCosmos or AutoencoderKLWan: config.json + *.safetensors)\n"
    "  <folder>/transformer/ ...     (and every other component model_index.json lists)"
)


@dataclass
class TeacherSample:
    """What one input view gives the student (V trajectories of T frames, H x W pixels).

    Attributes:
        latents: normalised VAE latents [V, C, T', h, w].
        frames: target RGB frames [V, T, 3, H, W] in [0, 1].
        depth: camera z-depth [V, T, 1, H, W] in sample units (0 = unknown), or None.
        viewmats: world-to-camera [V, T, 4, 4] in the sample frame (input camera = identity).
        Ks: intrinsics [V, T, 3, 3] in pixels.
        width, height: frame size.
        times: frame times [V, T] in [0, 1] for dynamic scenes, else None.
        trajectory_names: the V trajectory kinds.
        world_from_sample: similarity [4, 4] taking sample-frame points to the source's world
            (identity for teachers without a world, such as a video model).
    """

    latents: torch.Tensor
    frames: torch.Tensor
    depth: torch.Tensor | None
    viewmats: torch.Tensor
    Ks: torch.Tensor
    width: int
    height: int
    times: torch.Tensor | None = None
    trajectory_names: list[str] = field(default_factory=list)
    world_from_sample: torch.Tensor = field(default_factory=lambda: torch.eye(4))

    def __post_init__(self) -> None:
        views, frames = self.frames.shape[:2]
        expected = {
            "frames": (views, frames, 3, self.height, self.width),
            "viewmats": (views, frames, 4, 4),
            "Ks": (views, frames, 3, 3),
        }
        if self.depth is not None:
            expected["depth"] = (views, frames, 1, self.height, self.width)
        if self.times is not None:
            expected["times"] = (views, frames)
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"TeacherSample.{name} must have shape {list(shape)}, got {list(actual)}")
        if self.latents.dim() != 5 or self.latents.shape[0] != views:
            raise ValueError(f"TeacherSample.latents must have shape [{views}, C, T', h, w], got {list(self.latents.shape)}")

    @property
    def num_views(self) -> int:
        return self.frames.shape[0]

    @property
    def num_frames(self) -> int:
        return self.frames.shape[1]


class Teacher:
    """Interface: a sequence of :class:`TeacherSample` built from one VAE.

    Subclasses implement ``__len__`` and ``_make_sample(index)``; samples are cached in memory
    once made (teacher work - rendering or diffusion - is the expensive part of distillation).
    """

    vae: VideoVAE

    def __init__(self, cache: bool = True) -> None:
        self._cache: dict[int, TeacherSample] | None = {} if cache else None

    def __len__(self) -> int:
        raise NotImplementedError

    def _make_sample(self, index: int) -> TeacherSample:
        raise NotImplementedError

    def sample(self, index: int) -> TeacherSample:
        """The sample of input view ``index`` (0 <= index < len(self))."""
        if not 0 <= index < len(self):
            raise IndexError(f"teacher has {len(self)} samples, asked for {index}")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        made = self._make_sample(index)
        if self._cache is not None:
            self._cache[index] = made
        return made

    def _set_trajectories(self, K, width: int, height: int, num_frames: int, kinds: Sequence[str], orbit_degrees: float, dolly_fraction: float) -> None:
        """Store the frame size and trajectory parameters (validated against the VAE)."""
        self.vae.check_video_size(num_frames, height, width)
        self.K = torch.as_tensor(K, dtype=torch.float32)
        if self.K.shape != (3, 3):
            raise ValueError(f"K must have shape [3, 3], got {list(self.K.shape)}")
        self.width, self.height, self.num_frames = width, height, num_frames
        self.kinds, self.orbit_degrees, self.dolly_fraction = tuple(kinds), orbit_degrees, dolly_fraction

    def _trajectories(self, input_viewmat: torch.Tensor | None = None, focus_depth: float = 1.0) -> list[Trajectory]:
        """The trajectory set from ``input_viewmat`` (identity: Lyra's own frame)."""
        input_viewmat = torch.eye(4) if input_viewmat is None else input_viewmat
        return lyra_trajectories(input_viewmat, self.K, self.width, self.height, self.num_frames, self.kinds, focus_depth,
                                 self.orbit_degrees, self.dolly_fraction)

    def prepare(self, progress: bool = True) -> None:
        """Make (and cache) every sample now, with a progress bar."""
        for index in tqdm(range(len(self)), desc="teacher samples", unit="sample", disable=not progress):
            self.sample(index)


def _check_input_viewmats(input_viewmats) -> torch.Tensor:  # [S, 4, 4]
    viewmats = torch.as_tensor(input_viewmats, dtype=torch.float32)
    if viewmats.dim() == 2:
        viewmats = viewmats[None]
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"input_viewmats must have shape [S, 4, 4] or [4, 4], got {list(viewmats.shape)}")
    return viewmats


class SceneTeacher(Teacher):
    """Render a known scene along Lyra trajectories from each input view and encode it.

    Args:
        scene: a ``GaussianScene``; a sequence of GaussianScenes (a dynamic scene, frame t of
            every video shows scene ``round(t / (T - 1) * (len - 1))`` at time t / (T - 1));
            or a ``lyra_sim.kits.SceneKit`` (rendered as textured meshes by PyBullet, flat lit).
        vae: the video VAE whose latents the decoder reads.
        input_viewmats: world-to-camera matrices of the input views [S, 4, 4] (one sample each).
        K: intrinsics [3, 3] of every frame; width, height: frame size (multiples of 8).
        num_frames: frames per trajectory (1 + k * the VAE's temporal compression).
        kinds: trajectory kinds (six by default).
        orbit_degrees, dolly_fraction: trajectory extents (see ``relative_poses``).
        target: "rendered" (the student reproduces the rendered frames) or "decoded" (the VAE's
            reconstruction of them, as Lyra's self-distillation; needs a trained VAE).
        normalise_scale: express each sample in units of the input view's median depth.
        backend: splat render backend ("auto", "cpu", "reference", "gsplat").
        background: RGB [3] behind the splats (black when None).
        near, far: camera clip range in world units.
    """

    def __init__(
        self,
        scene,
        vae: VideoVAE,
        input_viewmats,  # [S, 4, 4] or [4, 4]
        K,  # [3, 3]
        width: int,
        height: int,
        num_frames: int,
        kinds: Sequence[str] = DEFAULT_TRAJECTORIES,
        orbit_degrees: float = 30.0,
        dolly_fraction: float = 0.5,
        target: str = "rendered",
        normalise_scale: bool = True,
        backend: str = "auto",
        background=None,
        near: float = 0.01,
        far: float = 1000.0,
        cache: bool = True,
    ) -> None:
        super().__init__(cache)
        self.target = check_choice(target, DistillTarget, "target")
        self.vae = vae
        self._set_trajectories(K, width, height, num_frames, kinds, orbit_degrees, dolly_fraction)
        self.input_viewmats = _check_input_viewmats(input_viewmats)
        self.normalise_scale, self.backend, self.background = normalise_scale, backend, background
        self.near, self.far = near, far
        self.kit = None
        self.scenes: list[GaussianScene]
        if isinstance(scene, GaussianScene):
            self.scenes = [scene]
        elif isinstance(scene, (list, tuple)) and scene and all(isinstance(s, GaussianScene) for s in scene):
            self.scenes = list(scene)
        elif hasattr(scene, "render_photos") and hasattr(scene, "objects"):
            self.kit, self.scenes = scene, []
        else:
            raise TypeError(f"scene must be a GaussianScene, a list of them or a SceneKit, got {type(scene).__name__}")

    @property
    def dynamic(self) -> bool:
        return len(self.scenes) > 1

    def __len__(self) -> int:
        return self.input_viewmats.shape[0]

    def _camera(self, viewmats: torch.Tensor):  # [C, 4, 4] -> Camera
        from lyra_sim.render.camera import Camera

        return Camera(self.K.expand(len(viewmats), 3, 3), viewmats, self.width, self.height, near=self.near, far=self.far)

    def _render(self, viewmats: torch.Tensor, scene_index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB [C, H, W, 3] and z-depth [C, H, W, 1] (0 where empty) in world units."""
        camera = self._camera(viewmats)
        if self.kit is not None:
            photos = self.kit.render_photos(camera, lighting="flat", progress=False)
            return torch.from_numpy(photos.images).float() / 255.0, torch.from_numpy(photos.depths)
        from lyra_sim.render.api import render

        with torch.no_grad():
            out = render(self.scenes[scene_index], camera, modes=("rgb", "depth", "alpha"), backend=self.backend, background=self.background)
        depth = torch.where(out["alpha"] > 0.5, out["depth"], torch.zeros_like(out["depth"]))
        return out["rgb"].clamp(0.0, 1.0), depth

    def _make_sample(self, index: int) -> TeacherSample:
        input_viewmat = self.input_viewmats[index]
        _, input_depth = self._render(input_viewmat[None])
        valid = input_depth[input_depth > 0]
        if valid.numel() == 0:
            raise ValueError(f"input view {index} of the scene teacher sees nothing (empty depth); point it at the scene")
        focus_depth = float(valid.median())
        trajectories = self._trajectories(input_viewmat, focus_depth)
        world_viewmats, Ks = stack_trajectories(trajectories)  # [V, T, 4, 4], [V, T, 3, 3]
        views, frames = world_viewmats.shape[:2]
        times = None
        if self.dynamic:
            times = torch.linspace(0.0, 1.0, frames).expand(views, frames).contiguous() if frames > 1 else torch.zeros(views, 1)
            scene_of_frame = [round(t * (len(self.scenes) - 1)) for t in times[0].tolist()]
            rgb = torch.zeros(views, frames, self.height, self.width, 3)
            depth = torch.zeros(views, frames, self.height, self.width, 1)
            for t, scene_index in enumerate(scene_of_frame):
                rgb[:, t], depth[:, t] = self._render(world_viewmats[:, t], scene_index)
        else:
            rgb, depth = self._render(world_viewmats.reshape(-1, 4, 4))
            rgb = rgb.reshape(views, frames, self.height, self.width, 3)
            depth = depth.reshape(views, frames, self.height, self.width, 1)
        rendered = rgb.permute(0, 1, 4, 2, 3).contiguous()  # [V, T, 3, H, W]
        depth = depth.permute(0, 1, 4, 2, 3).contiguous()
        latents = self.vae.encode(rendered).cpu()
        targets = self.vae.decode(latents).cpu() if self.target == "decoded" else rendered

        # Lyra's frame: the input camera is the identity; optionally one unit = the median depth.
        scale = focus_depth if self.normalise_scale else 1.0
        input_camera_to_world = torch.linalg.inv(input_viewmat.double())
        viewmats = (world_viewmats.double() @ input_camera_to_world).float()
        viewmats[..., :3, 3] /= scale
        world_from_sample = input_camera_to_world.clone()
        world_from_sample[:3, :3] *= scale
        return TeacherSample(
            latents=latents,
            frames=targets,
            depth=depth / scale,
            viewmats=viewmats,
            Ks=Ks,
            width=self.width,
            height=self.height,
            times=times,
            trajectory_names=[t.name for t in trajectories],
            world_from_sample=world_from_sample.float(),
        )


def load_video_pipeline(folder: str | Path, device: str | torch.device = "cpu", torch_dtype=None):
    """Load an image-to-video ``diffusers.DiffusionPipeline`` from a local folder only.

    Raises ``MissingWeightsError`` naming the expected layout when the folder or its
    ``model_index.json`` is missing; never downloads.
    """
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise MissingWeightsError(f"no video pipeline at {folder} (model_index.json missing); expected {VIDEO_PIPELINE_LAYOUT}")
    import diffusers

    try:
        pipeline = diffusers.DiffusionPipeline.from_pretrained(str(folder), local_files_only=True, torch_dtype=torch_dtype)
    except (OSError, ValueError) as error:
        raise MissingWeightsError(f"could not load the video pipeline in {folder}: {error}; expected {VIDEO_PIPELINE_LAYOUT}") from None
    return pipeline.to(device)


class DiffusersTeacher(Teacher):
    """Generate the trajectory videos with an image-conditioned diffusers video pipeline.

    Args:
        pipeline: a loaded pipeline (anything callable like diffusers' image-to-video
            pipelines, with a ``vae`` attribute) or a local folder (see :func:`load_video_pipeline`).
        images: input images, one sample each (PIL images or uint8 arrays [H, W, 3]).
        K: intrinsics [3, 3] of every frame; width, height: frame size.
        num_frames: frames per video (1 + k * the VAE's temporal compression).
        kinds, orbit_degrees, dolly_fraction: the trajectories (focus depth 1, Lyra's units).
        camera_conditioning: ``f(trajectory) -> dict`` of extra pipeline arguments that make the
            pipeline follow a trajectory (for camera-controlled pipelines such as GEN3C-style
            ones). Without it the pipeline is called without cameras and a warning says that
            its videos will not follow the trajectories.
        prompt: text prompt passed to the pipeline when it takes one.
        pipeline_kwargs: further pipeline arguments (guidance scale, steps, generator...).
    """

    def __init__(
        self,
        pipeline,
        images: Sequence,
        K,
        width: int,
        height: int,
        num_frames: int,
        kinds: Sequence[str] = DEFAULT_TRAJECTORIES,
        orbit_degrees: float = 30.0,
        dolly_fraction: float = 0.5,
        camera_conditioning: Callable[[Trajectory], dict] | None = None,
        prompt: str = "",
        pipeline_kwargs: dict | None = None,
        device: str | torch.device = "cpu",
        cache: bool = True,
    ) -> None:
        super().__init__(cache)
        if isinstance(pipeline, (str, Path)):
            pipeline = load_video_pipeline(pipeline, device)
        if not callable(pipeline) or getattr(pipeline, "vae", None) is None:
            raise TypeError(f"pipeline must be callable and have a .vae (a diffusers video pipeline), got {type(pipeline).__name__}")
        self.pipeline = pipeline
        self.vae = pipeline.vae if isinstance(pipeline.vae, VideoVAE) else VideoVAE(pipeline.vae)
        self._set_trajectories(K, width, height, num_frames, kinds, orbit_degrees, dolly_fraction)
        if not images:
            raise ValueError("DiffusersTeacher needs at least one input image")
        self.images = list(images)
        self.camera_conditioning, self.prompt = camera_conditioning, prompt
        self.pipeline_kwargs = dict(pipeline_kwargs or {})
        if camera_conditioning is None:
            warnings.warn(
                "DiffusersTeacher: no camera_conditioning given, so the pipeline is not told the trajectories; "
                "its videos will not follow the cameras the decoder is trained with (use a camera-controlled pipeline)",
                stacklevel=2,
            )

    def __len__(self) -> int:
        return len(self.images)

    def _image(self, index: int):
        from PIL import Image

        array = resize_image(self.images[index], self.width, self.height).permute(1, 2, 0).numpy()
        return Image.fromarray(np.round(array * 255).astype(np.uint8))

    def _make_sample(self, index: int) -> TeacherSample:
        image = self._image(index)
        trajectories = self._trajectories()
        accepts = inspect.signature(self.pipeline.__call__).parameters
        latents = []
        for trajectory in trajectories:
            arguments = dict(image=image, num_frames=self.num_frames, height=self.height, width=self.width, output_type="latent")
            if "prompt" in accepts:
                arguments["prompt"] = self.prompt
            arguments.update(self.pipeline_kwargs)
            if self.camera_conditioning is not None:
                arguments.update(self.camera_conditioning(trajectory))
            output = self.pipeline(**arguments)
            video_latents = output.frames if hasattr(output, "frames") else output[0]
            video_latents = torch.as_tensor(video_latents).float().cpu()
            expected = (1, self.vae.latent_channels, self.vae.latent_frames(self.num_frames))
            if tuple(video_latents.shape[:3]) != expected:
                raise ValueError(f"the pipeline returned latents {list(video_latents.shape)}; expected [1, C, T', h, w] starting with {list(expected)}")
            latents.append(video_latents[0])
        latents = torch.stack(latents)  # [V, C, T', h, w]
        frames = self.vae.decode(latents).cpu()
        viewmats, Ks = stack_trajectories(trajectories)
        return TeacherSample(latents, frames, None, viewmats, Ks, self.width, self.height, None, [t.name for t in trajectories])


class StillImageTeacher(Teacher):
    """Latents of a still video: the input image held for every frame of every trajectory.

    A preview mode for ``lyra-sim generate`` when no video model is at hand: the decoder sees the
    input view's content paired with each trajectory's cameras, so the scene it returns has the
    geometry the decoder infers from one view and no content generated beyond it. Its frames
    are the still image, so it is no training teacher for novel views.
    """

    def __init__(self, vae: VideoVAE, images: Sequence, K, width: int, height: int, num_frames: int, kinds: Sequence[str] = DEFAULT_TRAJECTORIES,
                 orbit_degrees: float = 30.0, dolly_fraction: float = 0.5) -> None:
        super().__init__(cache=True)
        self.vae = vae
        self._set_trajectories(K, width, height, num_frames, kinds, orbit_degrees, dolly_fraction)
        if not images:
            raise ValueError("StillImageTeacher needs at least one image")
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def _make_sample(self, index: int) -> TeacherSample:
        image = resize_image(self.images[index], self.width, self.height)  # [3, H, W]
        trajectories = self._trajectories()
        viewmats, Ks = stack_trajectories(trajectories)
        frames = image.expand(len(trajectories), self.num_frames, 3, self.height, self.width).contiguous()
        latents = self.vae.encode(frames).cpu()
        return TeacherSample(latents, frames, None, viewmats, Ks, self.width, self.height, None, [t.name for t in trajectories])


def resize_image(image, width: int, height: int) -> torch.Tensor:  # -> [3, H, W] in [0, 1]
    """A PIL image, a uint8 array [H, W, 3] or an image file path as a float tensor [3, height, width]."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        path = Path(image)
        try:
            image = Image.open(path)
            image.load()
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read image {path}: {error}") from None
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    array = np.asarray(image.convert("RGB").resize((width, height), Image.BICUBIC), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def input_views_around(scene: GaussianScene, count: int, fov_deg: float, width: int, height: int, elevation_deg: float = 20.0,
                       distance: float = 1.5, seed: int = 0) -> torch.Tensor:  # [count, 4, 4]
    """World-to-camera matrices of ``count`` input views on a ring around ``scene``, looking at its centre.

    The up axis follows the scene's frame: +Z for "z-up", -Y for OpenCV-style frames (Lyra's
    "opencv-first-camera", "opencv") and +Y otherwise. The ring's radius is ``distance`` times
    the robust (2nd-98th percentile) extent of the means.
    """
    from lyra_sim.render.camera import Camera, horizontal_basis

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    low, high = scene.bounds(percentile=2.0)
    centre, extent = (low + high) / 2, float((high - low).max())
    frame = scene.metadata.frame
    up = torch.tensor([0.0, 0.0, 1.0]) if frame == "z-up" else torch.tensor([0.0, -1.0, 0.0]) if frame.startswith("opencv") else torch.tensor([0.0, 1.0, 0.0])
    side, other = horizontal_basis(up)
    start = float(torch.rand(1, generator=torch.Generator().manual_seed(seed))) * 2 * math.pi
    angles = start + torch.arange(count) * 2 * math.pi / count
    elevation = math.radians(elevation_deg)
    directions = math.cos(elevation) * (torch.cos(angles)[:, None] * side + torch.sin(angles)[:, None] * other) + math.sin(elevation) * up
    eyes = centre + distance * extent * directions
    return Camera.look_at(eyes, centre.expand_as(eyes), up=up, fov_deg=fov_deg, width=width, height=height).viewmat

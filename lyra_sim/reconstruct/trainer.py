"""Reconstruction: optimise a Gaussian scene from posed photos through the differentiable renderer.

``reconstruct(dataset, config)`` initialises Gaussians (COLMAP points, depth back-projection or
random), then runs Adam with per-parameter learning rates on L1 + D-SSIM (+ a depth L1 when the
dataset has depth), with MCMC relocation (default) or adaptive density control, an SH degree
schedule, a progress bar with loss and PSNR, optional checkpoints and held-out evaluation
(PSNR, SSIM). It runs on the CPU backend by default on machines without CUDA, gsplat with it.

This module imports torch, numpy, scipy (k-nearest neighbours), tqdm and lyra_sim.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lyra_sim.io_utils import atomic_path
from lyra_sim.options import setting
from lyra_sim.photos.dataset import PhotoDataset
from lyra_sim.reconstruct import densify
from lyra_sim.reconstruct.losses import masked_depth_l1, photometric_loss, psnr_per_image, ssim
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.typed import DensityControl, ReconstructionInit, RenderBackend, check_choice


@dataclass
class ReconstructionConfig:
    """Settings of one reconstruction run (defaults follow 3DGS / 3DGS-MCMC, scaled for CPU).

    Attributes:
        iterations: optimisation steps (one batch of views each).
        batch_size: views rendered per step.
        density_control: "mcmc" (fixed budget, relocation; default) or "adc" (clone/split/prune).
        init: "auto" (points if the dataset has >= 100, else depth, else random), "points",
            "depth" (back-projected depth pixels) or "random" (uniform in the viewed box).
        init_count: Gaussians to start from (at most).
        max_gaussians: the budget (MCMC cap; ADC stops growing there).
        sh_degree: final SH degree (0-3).
        sh_degree_interval: steps between SH degree increases (0, 1, ... up to ``sh_degree``).
        ssim_weight: weight of D-SSIM in the photometric loss (3DGS: 0.2).
        depth_weight: weight of the depth L1 (metres / scene extent) when the data has depth.
        lr_means, lr_means_final: position learning rate (x scene extent), decayed exponentially.
        lr_sh0, lr_shN, lr_opacity, lr_scales, lr_quats: the other learning rates.
        refine_start, refine_stop, refine_every: steps at which density control runs
            (``refine_stop`` None = 80% of ``iterations``).
        opacity_reg, scale_reg: MCMC L1 penalties on opacity and scale.
        noise_strength: MCMC position-noise multiplier (x current means learning rate).
        gradient_threshold: ADC densification threshold on the NDC-space gradient.
        opacity_reset_every: ADC opacity reset interval (0 = never).
        background: RGB composited behind the Gaussians; None = the dataset's (or black).
        test_every: hold out every n-th view when the dataset has no test split.
        eval_every: evaluate held-out views every n steps (0 = only at the end).
        checkpoint_every: write a checkpoint every n steps (0 = never) to ``checkpoint_dir``.
        resume: checkpoint file to continue from.
        time_budget_s: stop once this much wall time has passed since training began (steps and
            intermediate evaluations; the final evaluation comes after).
        backend: renderer backend ("auto": gsplat with CUDA, else cpu).
        torch_threads: torch intra-op threads during the run (None = leave as is); the
            renderer's numba threads are set by ``render_threads``.
        render_threads: numba threads for the CPU renderer during the run (None = leave as
            is). On an oversubscribed machine 1 thread was 400x faster than 2 (OpenMP
            threads spin-wait for descheduled peers: 400 ms vs 1 ms per 32x32 frame, measured).
        seed: seeds initialisation, view order and density control.
        surface: add the surface-aware terms of ``lyra_sim.reconstruct.surface`` (flat, solid
            Gaussians whose rendered depth and normals agree: meshes that fit the true surface).
            Off in the library (plain 3DGS); on by default on the ``reconstruct`` command line,
            which reconstructs for simulation.
        min_scale_weight: weight of the minimum-scale term (mean smallest scale / extent).
        opacity_binary_weight: weight of the opacity term o(1-o) (toward 0 or 1).
        distortion_weight: weight of the depth distortion A·Σwz² - (Σwz)² (depths / extent).
        normal_weight: weight of the depth-normal consistency 1 - n_depth·n_splat.
        surface_start: step from which the surface terms apply (the photometric fit first
            places the Gaussians; 2DGS starts its normal term late for the same reason).
    """

    iterations: int = setting(3000, help="optimisation steps", cli=True)
    batch_size: int = 1
    density_control: DensityControl = setting("mcmc", help="MCMC relocation (fixed budget) or adaptive density control", cli=True)
    init: ReconstructionInit = setting("auto", help="initial Gaussians: dataset points, depth back-projection or random", cli=True)
    init_count: int = 30_000
    max_gaussians: int = setting(150_000, help="Gaussian budget", cli=True)
    sh_degree: int = setting(3, help="final spherical-harmonics degree (0-3)", cli=True)
    sh_degree_interval: int = 1000
    ssim_weight: float = 0.2
    depth_weight: float = 0.1
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    lr_opacity: float = 0.05
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    refine_start: int = 500
    refine_stop: int | None = None
    refine_every: int = 100
    opacity_reg: float = 0.01
    scale_reg: float = 0.01
    noise_strength: float = 5e5
    gradient_threshold: float = 2e-4
    opacity_reset_every: int = 3000
    background: tuple[float, float, float] | None = None
    test_every: int = 8
    eval_every: int = setting(0, help="evaluate the held-out views every n steps (0: only at the end)", cli=True, cli_default=500)
    checkpoint_every: int = setting(0, help="steps between checkpoints (with --checkpoint-dir)", cli=True, cli_default=1000)
    checkpoint_dir: str | None = setting(None, help="folder for checkpoints (every --checkpoint-every steps)", cli=True)
    resume: str | None = setting(None, help="checkpoint to continue from", cli=True)
    time_budget_s: float | None = None
    backend: RenderBackend = setting("auto", help="renderer backend", cli=True)
    torch_threads: int | None = 1
    render_threads: int | None = setting(None, help="numba threads for the CPU renderer (default: numba's)", cli=True)
    seed: int = setting(0, help="random seed", cli=True)
    surface: bool = setting(False, help="surface-aware training (flat, solid Gaussians, depth-normal consistency): better collision meshes", cli=True, cli_default=True)
    min_scale_weight: float = setting(1.0, help="weight of the minimum-scale (surfel) term", cli=True)
    opacity_binary_weight: float = setting(0.01, help="weight of the opacity-toward-0/1 term", cli=True)
    distortion_weight: float = setting(10.0, help="weight of the depth distortion term", cli=True)
    normal_weight: float = setting(0.05, help="weight of the depth-normal consistency term", cli=True)
    surface_start: int = setting(100, help="step from which the surface terms apply", cli=True)

    def validate(self) -> "ReconstructionConfig":
        check_choice(self.density_control, DensityControl, "density_control")
        check_choice(self.init, ReconstructionInit, "init")
        check_choice(self.backend, RenderBackend, "backend")
        for name in ("iterations", "batch_size", "init_count", "max_gaussians", "refine_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("min_scale_weight", "opacity_binary_weight", "distortion_weight", "normal_weight", "surface_start"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.sh_degree <= 3:
            raise ValueError(f"sh_degree must be 0-3, got {self.sh_degree}")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ValueError("checkpoint_every needs checkpoint_dir")
        return self


@dataclass
class ReconstructionResult:
    """What a run produced.

    Attributes:
        scene: the optimised Gaussians (metadata.frame and metric from the dataset, "unknown" by
            default; metadata.cameras: every view's camera, so they are written beside the scene).
        history: one dict per evaluation: step, train_time_s, loss, train_psnr, test_psnr,
            test_ssim, gaussians.
        test_metrics: final held-out metrics {"psnr", "ssim", "psnr_per_view", "views"}.
        initial_test_metrics: the same before optimisation.
        initialisation: how the Gaussians started ("points", "depth", "random" or "checkpoint").
        stopped_by: "iterations" or "time budget".
    """

    scene: GaussianScene
    history: list[dict] = field(default_factory=list)
    test_metrics: dict = field(default_factory=dict)
    initial_test_metrics: dict = field(default_factory=dict)
    initialisation: str = ""
    stopped_by: str = "iterations"


# ===================================================================== initialisation
def scene_extent(cameras) -> tuple[np.ndarray, float]:
    """(centre [3], radius): 1.1 x the largest camera distance from the cameras' mean (3DGS)."""
    centres = cameras.position.double().numpy()
    centre = centres.mean(0)
    radius = 1.1 * float(np.linalg.norm(centres - centre, axis=1).max())
    return centre, max(radius, 1e-3)


def viewed_point(cameras) -> np.ndarray:  # [3]
    """The point closest (least squares) to all optical axes: what an orbit capture looks at."""
    c2w = cameras.camera_to_world.double().numpy()
    origins, axes = c2w[:, :3, 3], c2w[:, :3, 2]
    projectors = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # I - a aᵀ per camera
    lhs = projectors.sum(0)
    rhs = np.einsum("cij,cj->i", projectors, origins)
    if np.linalg.cond(lhs) > 1e8:  # parallel axes: fall back to the cameras' mean
        return origins.mean(0)
    return np.linalg.solve(lhs, rhs)


def backproject_depth(dataset: PhotoDataset, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """World points [P, 3] and colours [P, 3] from ``count`` random pixels with known depth."""
    if dataset.depths is None:
        raise ValueError("depth initialisation needs a dataset with depth")
    views, rows, cols = np.nonzero(dataset.depths[..., 0] > 0)
    if len(views) == 0:
        raise ValueError("the dataset's depth maps are empty (no pixel with depth > 0)")
    pick = rng.choice(len(views), size=min(count, len(views)), replace=False)
    views, rows, cols = views[pick], rows[pick], cols[pick]
    K = dataset.cameras.K.double().numpy()[views]
    c2w = dataset.cameras.camera_to_world.double().numpy()[views]
    z = dataset.depths[views, rows, cols, 0].astype(np.float64)
    x = (cols + 0.5 - K[:, 0, 2]) / K[:, 0, 0] * z
    y = (rows + 0.5 - K[:, 1, 2]) / K[:, 1, 1] * z
    camera_points = np.stack([x, y, z], 1)
    world = np.einsum("pij,pj->pi", c2w[:, :3, :3], camera_points) + c2w[:, :3, 3]
    return world, dataset.images[views, rows, cols].astype(np.float64) / 255.0


def initial_points(dataset: PhotoDataset, method: str, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """Initial Gaussian centres [P, 3], colours [P, 3] and the method actually used."""
    if method == "auto":
        method = "points" if dataset.points is not None and len(dataset.points) >= 100 else ("depth" if dataset.depths is not None else "random")
    if method == "points":
        if dataset.points is None or len(dataset.points) == 0:
            raise ValueError("init='points' needs a dataset with a point cloud (e.g. COLMAP points3D)")
        pick = rng.permutation(len(dataset.points))[:count]
        colours = dataset.point_colors[pick] if dataset.point_colors is not None else np.full((len(pick), 3), 0.5)
        return dataset.points[pick].astype(np.float64), colours.astype(np.float64), method
    if method == "depth":
        points, colours = backproject_depth(dataset, count, rng)
        return points, colours, method
    centre = viewed_point(dataset.cameras)
    distance = float(np.median(np.linalg.norm(dataset.cameras.position.double().numpy() - centre, axis=1)))
    half = 0.5 * distance
    points = centre + rng.uniform(-half, half, size=(count, 3))
    return points, np.full((count, 3), 0.5) + 0.1 * rng.standard_normal((count, 3)), "random"


def initial_scene(points: np.ndarray, colours: np.ndarray, opacity: float, sh_degree: int) -> GaussianScene:
    """Isotropic Gaussians at ``points`` sized by the mean distance to their 3 nearest neighbours."""
    from scipy.spatial import cKDTree

    neighbours = min(4, len(points))
    distances, _ = cKDTree(points).query(points, k=neighbours)
    spacing = np.sqrt(np.mean(np.square(distances[:, 1:]), axis=1)) if neighbours > 1 else np.full(len(points), 0.01)
    spacing = np.clip(spacing, 1e-7, None)
    return GaussianScene.from_activated(
        means=torch.from_numpy(points).float(),
        colors=torch.from_numpy(np.clip(colours, 0.0, 1.0)).float(),
        opacities=torch.full((len(points),), opacity),
        scales=torch.from_numpy(np.tile(spacing[:, None], (1, 3))).float(),
        sh_degree=sh_degree,
    )


# ===================================================================== evaluation
@torch.no_grad()
def evaluate(
    scene: GaussianScene,
    dataset: PhotoDataset,
    *,
    background=None,  # [3]
    backend: str = "auto",
    sh_degree: int | None = None,
    chunk: int = 4,
) -> dict:
    """Held-out quality: mean PSNR over views (dB), SSIM ("valid" windows) and per-view PSNR."""
    from lyra_sim.render.api import render

    background = _background(dataset, background)
    psnrs, ssims = [], []
    for start in range(0, len(dataset), chunk):
        indices = np.arange(start, min(start + chunk, len(dataset)))
        rendered = render(scene, dataset.cameras[torch.from_numpy(indices)], modes=("rgb",), backend=backend,
                          background=background, sh_degree=sh_degree)["rgb"].clamp(0, 1)
        target = dataset.images_float(indices)
        psnrs.append(psnr_per_image(rendered, target))
        if min(dataset.height, dataset.width) >= 11:
            ssims += [float(ssim(rendered[i : i + 1], target[i : i + 1])) for i in range(len(indices))]
    per_view = torch.cat(psnrs)
    return {
        "psnr": float(per_view.mean()),
        "ssim": float(np.mean(ssims)) if ssims else float("nan"),
        "psnr_per_view": [round(float(v), 3) for v in per_view],
        "views": len(dataset),
    }


def _background(dataset: PhotoDataset, background) -> list[float]:
    """The given colour, else the dataset's (white for kit photos and RGBA images), else black."""
    if background is None:
        background = dataset.metadata.get("background")
    return [0.0, 0.0, 0.0] if background is None else [float(v) for v in background]


# ===================================================================== training
class _Trainer:
    def __init__(self, train: PhotoDataset, config: ReconstructionConfig) -> None:
        self.config = config
        self.train = train
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.centre, self.extent = scene_extent(train.cameras)
        self.targets = train.images_float()
        self.depths = torch.from_numpy(train.depths) if train.depths is not None and config.depth_weight > 0 else None
        self.step = 0
        self.order: list[int] = []
        self.refine_stop = config.refine_stop if config.refine_stop is not None else int(0.8 * config.iterations)
        self.statistics: densify.GradientStatistics | None = None

    def learning_rates(self) -> dict[str, float]:
        c = self.config
        return {"means": c.lr_means * self.extent, "quats": c.lr_quats, "log_scales": c.lr_scales,
                "opacity_logits": c.lr_opacity, "sh0": c.lr_sh0, "shN": c.lr_shN}

    def means_learning_rate(self) -> float:
        c = self.config
        progress = min(self.step / max(c.iterations, 1), 1.0)
        return self.extent * c.lr_means * (c.lr_means_final / c.lr_means) ** progress

    def next_views(self) -> np.ndarray:
        needed = self.config.batch_size
        while len(self.order) < needed:
            self.order += self.rng.permutation(len(self.train)).tolist()
        views, self.order = self.order[:needed], self.order[needed:]
        return np.array(views)

    def sh_degree(self) -> int:
        return min(self.config.sh_degree, self.step // max(self.config.sh_degree_interval, 1))


def _save_checkpoint(path: Path, params: densify.GaussianParameters, trainer: _Trainer) -> None:
    payload = {
        "step": trainer.step,
        "tensors": {k: v.detach() for k, v in params.tensors.items()},
        "optimizer": params.optimizer.state_dict(),
        "config": dataclasses.asdict(trainer.config),
        "generator": trainer.generator.get_state(),
        "rng": trainer.rng.bit_generator.state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: str, trainer: _Trainer) -> densify.GaussianParameters:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        tensors = payload["tensors"]
        scene = GaussianScene(tensors["means"], tensors["quats"], tensors["log_scales"], tensors["opacity_logits"],
                              torch.cat([tensors["sh0"], tensors["shN"]], dim=1))
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        from lyra_sim.errors import LyraSimError

        raise LyraSimError(f"cannot resume from checkpoint {path}: {error}") from None
    params = densify.GaussianParameters(scene, trainer.learning_rates())
    params.optimizer.load_state_dict(payload["optimizer"])
    trainer.step = int(payload["step"])
    trainer.generator.set_state(payload["generator"])
    trainer.rng.bit_generator.state = payload["rng"]
    return params


def reconstruct(
    dataset: PhotoDataset,
    config: ReconstructionConfig | None = None,
    *,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
) -> ReconstructionResult:
    """Optimise Gaussians to reproduce the training views of ``dataset``.

    The dataset's held-out views (its "test" split, or every ``config.test_every``-th view)
    are never trained on; they give the PSNR/SSIM in the result. ``callback`` receives every
    history entry as it is recorded (for live curves).
    """
    config = (config or ReconstructionConfig()).validate()
    threads = torch.get_num_threads()
    if config.torch_threads:
        # Per-step tensors are small (one view): extra intra-op threads only spin, and on a
        # shared 2-core machine they made SSIM and Adam 10x slower (measured).
        torch.set_num_threads(config.torch_threads)
    render_threads = _set_render_threads(config.render_threads)
    try:
        return _reconstruct(dataset, config, progress, callback)
    finally:
        torch.set_num_threads(threads)
        _set_render_threads(render_threads)


def _set_render_threads(count: int | None) -> int | None:
    """Set numba's thread count for the CPU renderer; returns the previous one (None: untouched)."""
    if not count:
        return None
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))
    return previous


def _reconstruct(dataset: PhotoDataset, config: ReconstructionConfig, progress: bool, callback) -> ReconstructionResult:
    from lyra_sim.io_utils import progress_bar

    from lyra_sim.render.api import render

    train, test = dataset.train_test(config.test_every)
    trainer = _Trainer(train, config)
    background = _background(dataset, config.background)
    torch.manual_seed(config.seed)

    if config.resume:
        params = _load_checkpoint(config.resume, trainer)
        init_method = "checkpoint"
    else:
        points, colours, init_method = initial_points(train, config.init, min(config.init_count, config.max_gaussians), trainer.rng)
        opacity = 0.5 if config.density_control == "mcmc" else 0.1
        params = densify.GaussianParameters(initial_scene(points, colours, opacity, config.sh_degree), trainer.learning_rates())
    params.metadata = SceneMetadata(
        source=str(dataset.metadata.get("source")) if dataset.metadata.get("source") else None,
        frame=str(dataset.metadata.get("frame", "unknown")),
        metric=bool(dataset.metadata.get("metric", False)),
        notes=[f"reconstructed by lyra-sim from {len(train)} views ({config.density_control}, init {init_method})"],
        cameras=_capture_cameras(dataset),
    )
    if config.density_control == "adc":
        trainer.statistics = densify.GradientStatistics(len(params))

    result = ReconstructionResult(scene=params.scene(detach=True), initialisation=init_method)
    result.initial_test_metrics = evaluate(result.scene, test, background=background, backend=config.backend, sh_degree=0)

    from lyra_sim.reconstruct.surface import surface_loss

    surface_renders = config.surface and (config.distortion_weight or config.normal_weight)
    modes = ("rgb", "depth") if trainer.depths is not None else ("rgb",)
    if surface_renders:
        modes = ("rgb", "depth", "alpha")
    train_time = 0.0
    loop_started = time.perf_counter()
    loss_ema, psnr_ema = None, None
    bar = progress_bar(total=config.iterations, initial=trainer.step, desc="reconstruct", unit="step", enabled=progress)
    while trainer.step < config.iterations:
        started = time.perf_counter()
        views = trainer.next_views()
        cameras = train.cameras[torch.from_numpy(views)]
        params.set_learning_rate("means", trainer.means_learning_rate())
        scene_now = params.scene()
        out = render(scene_now, cameras, modes=modes, backend=config.backend, background=background, sh_degree=trainer.sh_degree())
        target = trainer.targets[views]
        loss = photometric_loss(out["rgb"], target, config.ssim_weight)
        if trainer.depths is not None:
            loss = loss + config.depth_weight * masked_depth_l1(out["depth"], trainer.depths[views]) / trainer.extent
        if config.density_control == "mcmc":
            loss = loss + densify.opacity_scale_regulariser(params, config.opacity_reg, config.scale_reg)
        if config.surface and trainer.step >= config.surface_start:
            surface, _ = surface_loss(
                scene_now, cameras, out.get("depth"), out.get("alpha"), extent=trainer.extent, backend=config.backend,
                min_scale_weight=config.min_scale_weight, opacity_binary_weight=config.opacity_binary_weight,
                distortion_weight=config.distortion_weight, normal_weight=config.normal_weight, step=trainer.step)
            loss = loss + surface
        loss.backward()
        if trainer.statistics is not None and trainer.step < trainer.refine_stop and params["means"].grad is not None:
            for i in range(len(views)):
                trainer.statistics.accumulate(params["means"].grad, params["means"].detach(), cameras.viewmat[i], cameras.K[i], cameras.width, cameras.height)
        params.step()
        trainer.step += 1
        _density_control(params, trainer)
        train_time += time.perf_counter() - started

        with torch.no_grad():
            batch_psnr = float(psnr_per_image(out["rgb"].detach().clamp(0, 1), target).mean())
        loss_value = float(loss.detach())
        loss_ema = loss_value if loss_ema is None else 0.9 * loss_ema + 0.1 * loss_value
        psnr_ema = batch_psnr if psnr_ema is None else 0.9 * psnr_ema + 0.1 * batch_psnr
        bar.update(1)
        if trainer.step % 10 == 0 or trainer.step == config.iterations:
            bar.set_postfix(loss=f"{loss_ema:.4f}", psnr=f"{psnr_ema:.2f}", gaussians=len(params), sh=trainer.sh_degree())
        out_of_time = config.time_budget_s is not None and time.perf_counter() - loop_started >= config.time_budget_s
        last = trainer.step == config.iterations or out_of_time
        if out_of_time and trainer.step < config.iterations:
            result.stopped_by = "time budget"
        if (config.eval_every and trainer.step % config.eval_every == 0) or last:
            metrics = evaluate(params.scene(detach=True), test, background=background, backend=config.backend)
            entry = {"step": trainer.step, "train_time_s": round(train_time, 3), "loss": round(loss_ema, 5),
                     "train_psnr": round(psnr_ema, 3), "test_psnr": round(metrics["psnr"], 3),
                     "test_ssim": round(metrics["ssim"], 4), "gaussians": len(params)}
            result.history.append(entry)
            result.test_metrics = metrics
            if callback is not None:
                callback(entry)
        if config.checkpoint_every and trainer.step % config.checkpoint_every == 0:
            _save_checkpoint(Path(config.checkpoint_dir) / f"step_{trainer.step:06d}.pt", params, trainer)
        if last:
            break
    bar.close()
    result.scene = params.scene(detach=True)
    return result


def _capture_cameras(dataset: PhotoDataset):
    """Every view's camera (training and held out) as capture cameras in the scene's frame."""
    from lyra_sim.scene.cameras import CaptureCameras

    metric = bool(dataset.metadata.get("metric", False))
    up = (0.0, 0.0, 1.0) if dataset.metadata.get("frame") == "z-up" else None
    return CaptureCameras.from_camera(dataset.cameras, names=tuple(dataset.names), source=str(dataset.metadata.get("source", "dataset")),
                                      kind="dataset", metres_per_unit=1.0 if metric else None, up=up)


def _density_control(params: densify.GaussianParameters, trainer: _Trainer) -> None:
    config, step = trainer.config, trainer.step
    refining = config.refine_start <= step < trainer.refine_stop and step % config.refine_every == 0
    if config.density_control == "mcmc":
        if refining:
            densify.mcmc_relocate(params, trainer.generator)
            densify.mcmc_add(params, config.max_gaussians, trainer.generator)
        densify.mcmc_position_noise(params, trainer.means_learning_rate() * config.noise_strength, trainer.generator)
        return
    if refining:
        densify.adc_densify_and_prune(params, trainer.statistics, gradient_threshold=config.gradient_threshold,
                                      scene_extent=trainer.extent, cap=config.max_gaussians, generator=trainer.generator)
        trainer.statistics = densify.GradientStatistics(len(params))
    if config.opacity_reset_every and step % config.opacity_reset_every == 0 and step < trainer.refine_stop:
        densify.reset_opacity(params)

"""``render()``: the one public entry to the splat renderer.

It validates inputs (shapes, choices), unpacks a ``GaussianScene`` and a ``Camera`` into the
backend signature shared by ``_reference``, ``_cpu`` and ``_gsplat``, picks the backend and
returns a dict of [C, H, W, ch] images. Backends are imported lazily: only the one asked for is
loaded, and a missing one raises a clear error.
"""

from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np
import torch

from lyra_sim.errors import LyraSimError, MissingDependencyError
from lyra_sim.render.camera import Camera
from lyra_sim.render.prepared import PreparedScene
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.typed import RenderBackend, RenderMode, check_choice

_BACKEND_MODULES = {"cpu": "lyra_sim.render._cpu", "gsplat": "lyra_sim.render._gsplat", "reference": "lyra_sim.render._reference"}


def resolve_backend(backend: str) -> str:
    """The concrete backend for ``backend``: "auto" is gsplat with CUDA, else the CPU backend."""
    check_choice(backend, RenderBackend, "backend")
    if backend == "auto":
        return "gsplat" if torch.cuda.is_available() else "cpu"
    return backend


def _load_backend(name: str):
    module_name = _BACKEND_MODULES[name]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise LyraSimError(
                f"render backend {name!r} is not available in this build ({module_name} is missing); "
                "use backend='reference' (slow) instead"
            ) from None
        if name == "gsplat":
            raise MissingDependencyError(
                f"render backend 'gsplat' needs the gsplat package ({error}); install it with `pip install gsplat` "
                "on a machine with CUDA"
            ) from None
        raise


def _normalise_modes(modes: str | Sequence[str]) -> tuple[str, ...]:
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if not modes:
        raise ValueError("modes must name at least one output, e.g. ('rgb',)")
    for mode in modes:
        check_choice(mode, RenderMode, "modes")
    return tuple(dict.fromkeys(modes))  # drop repeats, keep order


def _background_tensor(background, camera_count: int, device, dtype=torch.float32) -> torch.Tensor:  # [C, 3]
    if background is None:
        return torch.zeros(camera_count, 3, dtype=dtype, device=device)
    background = torch.as_tensor(
        np.asarray(background) if not isinstance(background, torch.Tensor) else background, dtype=dtype
    ).to(device)
    if background.shape == (3,):
        return background.expand(camera_count, 3).contiguous()
    if background.shape == (camera_count, 3):
        return background.contiguous()
    raise ValueError(f"background must have shape [3] or [C, 3] = [{camera_count}, 3], got {list(background.shape)}")


def _labels_tensor(labels, gaussian_count: int, device) -> torch.Tensor | None:  # [N] int32
    if labels is None:
        return None
    if isinstance(labels, torch.Tensor):
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
        tensor = labels.to(device=device, dtype=torch.int64)
    else:
        array = np.asarray(labels)
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"labels must be an integer array, got dtype {array.dtype}")
        tensor = torch.from_numpy(array.astype(np.int64)).to(device)
    if tensor.shape != (gaussian_count,):
        raise ValueError(f"labels must have shape [N] = [{gaussian_count}], got {list(tensor.shape)}")
    if gaussian_count and (int(tensor.min()) < 0 or int(tensor.max()) > np.iinfo(np.int32).max):
        raise ValueError(f"labels must be in [0, 2^31), got range [{int(tensor.min())}, {int(tensor.max())}]")
    return tensor.to(torch.int32)


def _ranges_array(ranges, camera_count: int, gaussian_count: int) -> np.ndarray | None:  # [C, 2] int64
    if ranges is None:
        return None
    array = np.asarray(ranges.cpu().numpy() if isinstance(ranges, torch.Tensor) else ranges)
    if array.shape != (camera_count, 2) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"camera_ranges must be integers of shape [C, 2] = [{camera_count}, 2], "
                         f"got {array.dtype} {list(array.shape)}")
    if camera_count and (array.min() < 0 or array.max() > gaussian_count or (array[:, 0] > array[:, 1]).any()):
        raise ValueError(f"camera_ranges must satisfy 0 <= start <= end <= N = {gaussian_count}, got {array.tolist()}")
    return np.ascontiguousarray(array, dtype=np.int64)


def render(
    scene: GaussianScene | PreparedScene,
    cameras: Camera,
    modes: str | Sequence[str] = ("rgb",),
    backend: str = "auto",
    background=None,  # [3] or [C, 3], linear RGB
    sh_degree: int | None = None,
    radius_clip: float = 0.0,
    labels=None,  # [N] integer labels >= 0
    camera_ranges=None,  # [C, 2] integer Gaussian index range per camera
) -> dict[str, torch.Tensor]:
    """Render a Gaussian scene from C cameras.

    Args:
        scene: the Gaussians (raw parameters, world frame of the cameras), or a
            ``PreparedScene`` (``prepare_scene``) whose camera-independent arrays the CPU backend
            reuses instead of recomputing them (other backends render its raw scene).
        cameras: C cameras sharing one image size (OpenCV convention, see ``Camera``).
        modes: outputs to compute, any of "rgb", "alpha", "depth", "median_depth", "instance".
        backend: "auto" (gsplat when CUDA is available, else "cpu"), "cpu" (numba),
            "gsplat" (CUDA) or "reference" (slow torch, for tests).
        background: colour composited behind the Gaussians with the final transmittance;
            None is black.
        sh_degree: SH degree to evaluate (capped at the scene's); None uses the scene's.
        radius_clip: skip Gaussians whose projected radius is <= this many pixels.
        labels: per-Gaussian integer labels [N] (>= 0), needed for "instance".
        camera_ranges: camera c sees only Gaussians [camera_ranges[c, 0], camera_ranges[c, 1]):
            many scenes (one per env) rendered in one batched call. None: every camera sees all.
            Native in the CPU backend; the others render camera by camera.

    Returns:
        Only the requested keys, each [C, H, W, ch] on the scene's device:
        ``rgb`` [C,H,W,3] float32; ``alpha`` [C,H,W,1] = 1 - final transmittance;
        ``depth`` [C,H,W,1] expected camera z normalised by alpha (0 where nothing is hit);
        ``median_depth`` [C,H,W,1] z of the Gaussian at which the transmittance first
        falls to <= 0.5 (0 if it never does); ``instance`` [C,H,W,1] int32 label with the
        largest summed blending weight (ties: smallest label), -1 where alpha < 0.5 or
        without labels.

    Differentiable with respect to the scene tensors for rgb, alpha and depth.
    """
    prepared = scene if isinstance(scene, PreparedScene) else None
    if prepared is not None:
        scene = prepared.scene
    if not isinstance(scene, GaussianScene):
        raise TypeError(f"scene must be a GaussianScene or a PreparedScene, got {type(scene).__name__}")
    if not isinstance(cameras, Camera):
        raise TypeError(f"cameras must be a Camera, got {type(cameras).__name__}")
    if len(cameras) < 1:
        raise ValueError("render needs at least one camera")
    modes = _normalise_modes(modes)
    backend = resolve_backend(backend)
    stored_degree = scene.sh_degree
    if sh_degree is None:
        sh_degree = stored_degree
    elif not isinstance(sh_degree, (int, np.integer)) or not 0 <= sh_degree <= 3:
        raise ValueError(f"sh_degree must be an integer 0-3 or None, got {sh_degree!r}")
    sh_degree = min(int(sh_degree), stored_degree)
    radius_clip = float(radius_clip)
    if not radius_clip >= 0.0:
        raise ValueError(f"radius_clip must be >= 0, got {radius_clip}")

    output_device = scene.device
    # The CPU backend runs on host memory, gsplat on the GPU; results come back to the scene's device.
    compute_device = {"cpu": torch.device("cpu"), "gsplat": torch.device("cuda")}.get(backend, output_device)
    if backend == "gsplat" and not torch.cuda.is_available():
        raise LyraSimError("render backend 'gsplat' needs CUDA, and torch.cuda.is_available() is False; use backend='cpu'")
    module = _load_backend(backend)

    camera_count = len(cameras)
    label_tensor = _labels_tensor(labels, len(scene), compute_device)
    background_tensor = _background_tensor(background, camera_count, compute_device)
    ranges = _ranges_array(camera_ranges, camera_count, len(scene))
    if prepared is not None and len(prepared) != len(scene):
        raise ValueError(f"the prepared arrays hold {len(prepared)} Gaussians but its scene {len(scene)}: prepare again")
    if ranges is not None and backend != "cpu":
        return _render_camera_by_camera(scene, cameras, ranges, modes, backend, background_tensor, sh_degree,
                                        radius_clip, label_tensor, output_device)
    extra = {} if backend != "cpu" else {"prepared": prepared, "ranges": ranges}
    # Only the tensors the backend needs: truncating SH here saves copying unused bands.
    sh = scene.sh[:, : (sh_degree + 1) ** 2]
    outputs = module.rasterize(
        scene.means.to(compute_device),
        scene.quats.to(compute_device),
        scene.log_scales.to(compute_device),
        scene.opacity_logits.to(compute_device),
        sh.to(compute_device),
        cameras.viewmat.to(compute_device),
        cameras.K.to(compute_device),
        cameras.width,
        cameras.height,
        near=cameras.near,
        far=cameras.far,
        sh_degree=sh_degree,
        background=background_tensor,
        labels=label_tensor,
        modes=modes,
        radius_clip=radius_clip,
        **extra,
    )
    expected_channels = {"rgb": 3, "alpha": 1, "depth": 1, "median_depth": 1, "instance": 1}
    result = {}
    for mode in modes:
        image = outputs[mode]
        expected = (camera_count, cameras.height, cameras.width, expected_channels[mode])
        assert tuple(image.shape) == expected, f"backend {backend!r} returned {mode} {list(image.shape)}, expected {list(expected)}"
        result[mode] = image.to(output_device)
    return result


def _render_camera_by_camera(scene, cameras, ranges, modes, backend, background, sh_degree, radius_clip, labels,
                             output_device) -> dict[str, torch.Tensor]:
    """``camera_ranges`` for backends without it: each camera renders its own slice of the scene."""
    frames = []
    for c in range(len(cameras)):
        rows = slice(int(ranges[c, 0]), int(ranges[c, 1]))
        frames.append(render(scene[rows], cameras[c], modes, backend, background[c], sh_degree, radius_clip,
                             None if labels is None else labels[rows].cpu()))
    return {mode: torch.cat([f[mode] for f in frames]).to(output_device) for mode in modes}

"""What tests share: small scene and camera builders, render-parity checks, a ray caster and
the one-thread fixture.

Test modules import the builders (``from conftest import random_scene``: pytest puts ``tests/``
on the path, and ``conftest`` is the name it registers this module under) and use the fixtures
by name; no test module imports another.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.sh import num_sh_bases

ALL_MODES = ("rgb", "alpha", "depth", "median_depth", "instance")


def random_scene(
    n: int,
    seed: int = 0,
    sh_degree: int = 1,
    extent: float = 1.0,
    scale_range: tuple[float, float] = (0.02, 0.15),
    opacity_range: tuple[float, float] = (0.1, 0.95),
) -> GaussianScene:
    """``n`` random anisotropic Gaussians in a cube of half-size ``extent`` around the origin."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * extent
    quats = torch.randn(n, 4, generator=g)
    low, high = scale_range
    log_scales = torch.log(low + (high - low) * torch.rand(n, 3, generator=g))
    opacity = opacity_range[0] + (opacity_range[1] - opacity_range[0]) * torch.rand(n, generator=g)
    sh = torch.randn(n, num_sh_bases(sh_degree), 3, generator=g) * 0.3
    sh[:, 0] = (torch.rand(n, 3, generator=g) - 0.5) / 0.28209479177387814 * 0.9
    return GaussianScene(means, quats, log_scales, torch.logit(opacity), sh)


def scene_tensors(scene: GaussianScene, dtype=torch.float64, requires_grad: bool = False) -> list[torch.Tensor]:
    """(means, quats, log_scales, opacity_logits, sh) as fresh leaf tensors of ``dtype``."""
    tensors = [scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh]
    return [t.detach().to(dtype).clone().requires_grad_(requires_grad) for t in tensors]


def random_cameras(count: int, seed: int = 0, width: int = 32, height: int = 24, distance: float = 3.5, fov_deg: float = 55.0) -> Camera:
    """``count`` cameras on a sphere of radius ``distance`` looking roughly at the origin."""
    g = torch.Generator().manual_seed(1000 + seed)
    azimuth = torch.rand(count, generator=g) * 2 * math.pi
    elevation = (torch.rand(count, generator=g) - 0.5) * 1.2
    eyes = distance * torch.stack(
        [torch.cos(elevation) * torch.cos(azimuth), torch.cos(elevation) * torch.sin(azimuth), torch.sin(elevation)], -1
    )
    targets = (torch.rand(count, 3, generator=g) - 0.5) * 0.3
    return Camera.look_at(eyes, targets, (0.0, 0.0, 1.0), fov_deg, width, height, near=0.05, far=100.0)


def random_labels(n: int, count: int = 4, seed: int = 0) -> torch.Tensor:
    """Random integer labels in [0, count) (one per Gaussian)."""
    return torch.randint(0, count, (n,), generator=torch.Generator().manual_seed(2000 + seed), dtype=torch.int32)


def interior_mask(instance: torch.Tensor) -> torch.Tensor:  # [C, H, W, 1] -> [C, H, W, 1] bool
    """Pixels whose 4-neighbours carry the same instance id as they do (away from label edges)."""
    padded = torch.nn.functional.pad(instance[..., 0].float(), (1, 1, 1, 1), mode="replicate")
    centre = padded[:, 1:-1, 1:-1]
    same = (
        (padded[:, :-2, 1:-1] == centre) & (padded[:, 2:, 1:-1] == centre)
        & (padded[:, 1:-1, :-2] == centre) & (padded[:, 1:-1, 2:] == centre)
    )
    return same[..., None]


def assert_parity(ours: dict, ref: dict, modes=ALL_MODES) -> None:
    """The agreed backend tolerances: max abs rgb/alpha error < 1e-2, depth relative error
    < 1e-2, identical instance ids away from label edges (``ref`` must hold alpha for that)."""
    if "rgb" in modes:
        error = (ours["rgb"] - ref["rgb"]).abs().max()
        assert error < 1e-2, f"max abs rgb error {float(error):.4g}"
    if "alpha" in modes:
        assert (ours["alpha"] - ref["alpha"]).abs().max() < 1e-2
    for name in ("depth", "median_depth"):
        if name in modes:
            hit = (ref[name] > 0) & (ours[name] > 0)
            # Both backends report a median (or a depth) at the same pixels, except where the
            # transmittance sits within float rounding of the threshold.
            mismatch = ((ref[name] > 0) != (ours[name] > 0)).float().mean()
            assert float(mismatch) < 2e-3, f"{name}: hit masks differ on {float(mismatch):.2%} of pixels"
            relative = ((ours[name] - ref[name]).abs() / ref[name].clamp_min(1e-6))[hit]
            if name == "depth":
                assert relative.max() < 1e-2, f"depth relative error {float(relative.max()):.4g}"
            else:  # a median jumps between Gaussians where T crosses 0.5 within rounding
                assert float((relative > 1e-2).float().mean()) < 2e-3
    if "instance" in modes:
        assert ours["instance"].dtype == torch.int32
        stable = interior_mask(ref["instance"]) & interior_mask(ours["instance"]) & ((ref["alpha"] - 0.5).abs() > 1e-3)
        assert torch.equal(ours["instance"][stable], ref["instance"][stable])
        assert float(stable.float().mean()) > 0.3


def cast_rays(mesh, cameras, index):
    """Ray-cast the mesh through our pixel centres: (t_hit [H*W], face id [H*W], barycentric [H*W, 3])."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    K, viewmat = cameras.K[index].double().numpy(), cameras.viewmat[index].double().numpy()
    v, u = np.mgrid[0 : cameras.height, 0 : cameras.width].reshape(2, -1)
    directions = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones(len(u))], 1)
    rotation_inv = viewmat[:3, :3].T
    origin = -rotation_inv @ viewmat[:3, 3]
    rays = np.concatenate([np.tile(origin, (len(u), 1)), directions @ rotation_inv.T], 1).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))
    uv = hit["primitive_uvs"].numpy()
    return hit["t_hit"].numpy(), hit["primitive_ids"].numpy().astype(np.int64), np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], 1)


@pytest.fixture(scope="module")
def single_threaded():
    """One torch and one numba thread: on a shared 2-core machine oversubscription costs 10x.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("single_threaded")``."""
    import numba

    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    numba.set_num_threads(numba_threads)


def capture_like_scene(n: int, seed: int = 0, frame: str = "unknown") -> GaussianScene:
    """SH-3 Gaussians with the statistics of real captures (DESIGN.md): low median opacity,
    centimetre scales, a 5% far-field tail, SH energy falling by band and correlated with the
    base colour. ``frame`` also sets ``metric`` (True for "z-up")."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 2.0
    far = torch.rand(n, generator=g) < 0.05
    means[far] *= 60.0
    dc = torch.randn(n, 1, 3, generator=g) * 0.8
    bands = [dc] + [0.5**band * (0.3 * dc + 0.15 * torch.randn(n, width, 3, generator=g)) for band, width in ((1, 3), (2, 5), (3, 7))]
    scene = GaussianScene(means, torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g) * 0.7 - 4.5, torch.randn(n, generator=g) * 1.5 - 1.2, torch.cat(bands, 1))
    scene.metadata.frame, scene.metadata.metric = frame, frame == "z-up"
    return scene


@pytest.fixture
def capture_like():
    """The :func:`capture_like_scene` builder."""
    return capture_like_scene


def load_mutated_file(seed: bytes, data, suffix: str) -> None:
    """Hypothesis body for reader fuzzing: flip 1-8 bytes of ``seed`` (``data`` is ``st.data()``),
    maybe truncate it, and check that ``load_scene`` returns a scene or raises
    ``SceneFormatError`` naming the file, never anything else."""
    import tempfile
    from pathlib import Path

    from hypothesis import strategies as st

    from lyra_sim import SceneFormatError
    from lyra_sim.scene.io import load_scene

    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(bytes(blob))
        try:
            load_scene(path, invalid="keep")
        except SceneFormatError as error:
            assert str(path) in str(error)

"""Putting simulated bodies into the picture.

Two ways, measured against each other in ``benchmarks/env_throughput.py``:

* :class:`ComposedScene` keeps one Gaussian buffer made of a static part (the bundle's background
  splat) followed by rigid parts (object splats, robot links turned into Gaussians by
  ``lyra_sim.sim.robot_splats``) whose world poses are written every step, so a single splat
  render draws everything.
* :func:`tinyrenderer_images` renders mesh bodies with PyBullet's TinyRenderer at the same camera and
  :func:`composite_by_depth` merges that with a splat render pixel by pixel, nearest surface wins.

This module may import torch, numpy, ``lyra_sim.scene`` and ``lyra_sim.render``; pybullet is
imported lazily (only the TinyRenderer path needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lyra_sim.render.prepared import PreparedScene
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.sh import sh_degree_from_bases
from lyra_sim.scene.transforms import sh_rotation_matrices

# Opacity logit of a hidden part: sigmoid(-30) ~ 1e-13, far below the renderers' 1/255 skip.
_HIDDEN_OPACITY_LOGIT = -30.0


@dataclass
class RigidPart:
    """Gaussians attached to one rigid frame (an object body or a robot link).

    Attributes:
        name: for error messages and debugging ("object:mug", "robot:link3").
        local: the Gaussians in the part's own frame (a body frame or a link frame).
        label: instance label every Gaussian of the part carries in ``instance`` renders.
    """

    name: str
    local: GaussianScene
    label: int


class ComposedScene:
    """A static splat plus rigid parts, stored in one preallocated buffer updated in place.

    The buffer is ``[static Gaussians | part 0 | part 1 | ...]``, so everything that moves lies in
    ``dynamic_slice`` and a batched renderer can copy just that range. :meth:`set_poses` writes
    world means and quaternions of every part (and rotates the SH of parts whose degree is above
    0). The arithmetic runs in numpy on arrays that the torch tensors share memory with: per-part
    3x3 and 4x4 matrix products stay single-threaded, which on a busy 2-core machine is ~50x faster
    than torch's thread pool for these small gathers. :attr:`prepared` is the CPU renderer's view
    of the same buffer (``lyra_sim.render.prepared``), prepared once; a pose update rotates only
    the moving parts' cached covariances.

    Args:
        static: Gaussians that never move (world frame), or None.
        parts: rigid parts; their order is the order of poses given to :meth:`set_poses`.
        static_label: instance label of the static Gaussians.
    """

    def __init__(self, static: GaussianScene | None, parts: Sequence[RigidPart], static_label: int = 0) -> None:
        pieces = ([static] if static is not None and len(static) else []) + [part.local for part in parts]
        if not pieces:
            raise ValueError("ComposedScene needs a non-empty static scene or at least one part")
        self.parts = list(parts)
        self.num_static = len(static) if static is not None else 0
        # numpy arrays own the memory; the torch tensors are views of them. (Concatenating in
        # numpy also avoids torch's thread pool, slow for this on a busy 2-core machine.)
        sh_bases = max(piece.sh.shape[1] for piece in pieces)
        columns = [[piece.means, piece.quats, piece.log_scales, piece.opacity_logits, piece.sh] for piece in pieces]
        self._arrays = []
        for k in range(5):
            parts_k = [c[k].detach().cpu().numpy() for c in columns]
            if k == 4:  # zero-pad SH to the highest degree present
                parts_k = [np.pad(a, ((0, 0), (0, sh_bases - a.shape[1]), (0, 0))) for a in parts_k]
            self._arrays.append(np.concatenate(parts_k).astype(np.float32, copy=False))
        self._tensors = tuple(torch.from_numpy(a) for a in self._arrays)
        self._metadata = pieces[0].metadata.copy()
        labels = [np.full(self.num_static, static_label, dtype=np.int32)]
        self.part_slices: list[slice] = []
        start = self.num_static
        for part in self.parts:
            self.part_slices.append(slice(start, start + len(part.local)))
            labels.append(np.full(len(part.local), part.label, dtype=np.int32))
            start += len(part.local)
        self.labels = torch.from_numpy(np.concatenate(labels))  # [N] int32
        self.dynamic_slice = slice(self.num_static, len(self._arrays[0]))
        means, quats, _, opacity, sh = self._arrays
        self._local = [(means[s].copy(), quats[s].copy(), opacity[s].copy(), sh[s].copy()) for s in self.part_slices]
        # Only parts with view-dependent colour need their SH rotated; degree-0 parts skip it.
        self._sh_degrees = [sh_degree_from_bases(part.local.sh.shape[1]) for part in self.parts]
        self.visible = [True] * len(self.parts)
        self._prepared: PreparedScene | None = None
        self._rotations = np.repeat(np.eye(3)[None], len(self.parts), axis=0)  # [P, 3, 3] current part rotations
        self._translations = np.zeros((len(self.parts), 3))  # [P, 3] current part positions
        self._prepared_local: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def prepared(self) -> PreparedScene:
        """The buffer prepared for the CPU renderer (built on first use, then kept in step with
        :meth:`set_poses` and :meth:`set_visible`)."""
        if self._prepared is None:
            prepared = PreparedScene(self.scene)
            # body-frame arrays of each part, rotated to the current pose at every set_poses
            self._prepared_local = []
            for part in self.parts:
                local = PreparedScene(part.local).arrays
                self._prepared_local.append((local["positions"], local["covariances"]))
            self._prepared = prepared
            self._sync_prepared()
        return self._prepared

    def _sync_prepared(self) -> None:
        """Move the prepared rows of every part to the buffer's current poses."""
        prepared = self._prepared
        if prepared is None:
            return
        for index, part_slice in enumerate(self.part_slices):
            local_positions, local_covariances = self._prepared_local[index]
            prepared.move_rigid(part_slice, self._rotations[index], self._translations[index], local_positions,
                                local_covariances)

    def __len__(self) -> int:
        return self._arrays[0].shape[0]

    @property
    def scene(self) -> GaussianScene:
        """The current world-frame scene (shares memory with the buffer: do not modify)."""
        return GaussianScene(*self._tensors, metadata=self._metadata)

    def arrays(self) -> list[np.ndarray]:
        """(means, quats, log_scales, opacity_logits, sh) buffers as numpy arrays, for batched copies."""
        return self._arrays

    def set_poses(
        self,
        positions: np.ndarray,  # [P, 3] world positions of the part frames
        orientations_xyzw: np.ndarray,  # [P, 4] PyBullet (x, y, z, w) quaternions
    ) -> None:
        """Move every part to its world pose (part frame -> world)."""
        positions = np.asarray(positions, dtype=np.float32)
        orientations = np.asarray(orientations_xyzw, dtype=np.float64)
        count = len(self.parts)
        if positions.shape != (count, 3) or orientations.shape != (count, 4):
            raise ValueError(
                f"set_poses needs positions [{count}, 3] and orientations [{count}, 4], "
                f"got {list(positions.shape)} and {list(orientations.shape)}"
            )
        if count == 0:
            return
        import pybullet

        quats_wxyz = orientations[:, [3, 0, 1, 2]]
        quats_wxyz /= np.linalg.norm(quats_wxyz, axis=1, keepdims=True)
        # PyBullet's own quaternion -> matrix: ~1 us a part, where torch costs ~1 ms a call
        rotations = np.array([pybullet.getMatrixFromQuaternion(q) for q in quats_wxyz[:, [1, 2, 3, 0]]]).reshape(count, 3, 3)
        means, quats, _, _, sh = self._arrays
        for index, part_slice in enumerate(self.part_slices):
            local_means, local_quats, _, local_sh = self._local[index]
            np.matmul(local_means, rotations[index].T.astype(np.float32), out=means[part_slice])
            means[part_slice] += positions[index]
            np.matmul(local_quats, _left_multiplication(quats_wxyz[index]).T.astype(np.float32), out=quats[part_slice])
            if self._sh_degrees[index] > 0:
                for band, block in enumerate(sh_rotation_matrices(rotations[index], self._sh_degrees[index]), start=1):
                    columns = slice(band * band, (band + 1) ** 2)
                    sh[part_slice, columns] = np.einsum("ij,njc->nic", block.astype(np.float32), local_sh[:, columns])
        self._rotations, self._translations = rotations, positions
        self._sync_prepared()

    def set_visible(self, part_index: int, visible: bool) -> None:
        """Show or hide one part (hidden Gaussians get a vanishing opacity)."""
        opacity = self._arrays[3]
        opacity[self.part_slices[part_index]] = self._local[part_index][2] if visible else _HIDDEN_OPACITY_LOGIT
        self.visible[part_index] = visible
        if self._prepared is not None:
            self._prepared.refresh(self.part_slices[part_index])


def _left_multiplication(quat_wxyz: np.ndarray) -> np.ndarray:  # [4] -> [4, 4]
    """The matrix L(q) with q * p = L(q) p for quaternions (w, x, y, z)."""
    w, x, y, z = quat_wxyz
    return np.array([[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]])


def composite_by_depth(
    splat_rgb: torch.Tensor,  # [..., H, W, 3] float in [0, 1]
    splat_depth: torch.Tensor,  # [..., H, W, 1] metres, 0 where nothing was drawn
    splat_alpha: torch.Tensor,  # [..., H, W, 1]
    mesh_rgb: torch.Tensor,  # [..., H, W, 3] float in [0, 1]
    mesh_depth: torch.Tensor,  # [..., H, W, 1] metres
    mesh_mask: torch.Tensor,  # [..., H, W, 1] bool: the mesh render covers the pixel
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per pixel, keep the nearer of a mesh render and a splat render.

    A mesh pixel wins where it is covered and either the splats are (mostly) transparent there
    (alpha < 0.5: their expected depth is unreliable) or the mesh surface is nearer. Returns
    (rgb [..., H, W, 3], depth [..., H, W, 1], mesh_wins [..., H, W, 1] bool).
    """
    if splat_rgb.shape != mesh_rgb.shape or splat_depth.shape != mesh_depth.shape or mesh_mask.shape != splat_depth.shape:
        raise ValueError(
            "composite_by_depth needs matching shapes, got splat rgb "
            f"{list(splat_rgb.shape)}, mesh rgb {list(mesh_rgb.shape)}, splat depth {list(splat_depth.shape)}, "
            f"mesh depth {list(mesh_depth.shape)}, mesh mask {list(mesh_mask.shape)}"
        )
    splat_missing = (splat_alpha < 0.5) | (splat_depth <= 0)
    mesh_wins = mesh_mask & (splat_missing | (mesh_depth < splat_depth))
    rgb = torch.where(mesh_wins, mesh_rgb, splat_rgb)
    depth = torch.where(mesh_wins, mesh_depth, splat_depth)
    return rgb, depth, mesh_wins


def tinyrenderer_images(client_id: int, camera, *, segmentation: bool = True, shadows: bool = False) -> dict[str, np.ndarray]:
    """Render what PyBullet client ``client_id`` shows at a one-camera ``Camera`` with TinyRenderer.

    Returns ``rgb`` uint8 [H, W, 3], ``depth`` float32 [H, W] (camera-space z in metres, 0 where no
    body is hit) and, when ``segmentation``, ``segmentation`` int32 [H, W] (body unique id, -1
    for no body). The camera's near/far planes bound the depth buffer, so keep them tight
    (near ~0.02 m, far a few scene sizes) for a precise depth.
    """
    import pybullet

    if len(camera) != 1:
        raise ValueError(f"tinyrenderer_images renders one camera at a time, got {len(camera)}")
    view_matrix, projection_matrix = camera.to_tiny_renderer()
    flags = 0 if segmentation else pybullet.ER_NO_SEGMENTATION_MASK
    width, height, rgba, depth_buffer, segmentation_mask = pybullet.getCameraImage(
        camera.width,
        camera.height,
        viewMatrix=view_matrix,
        projectionMatrix=projection_matrix,
        renderer=pybullet.ER_TINY_RENDERER,
        shadow=int(shadows),
        flags=flags,
        physicsClientId=client_id,
    )
    rgba = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)
    depth_buffer = np.asarray(depth_buffer, dtype=np.float32).reshape(height, width)
    near, far = float(camera.near), float(camera.far)
    # The depth buffer is OpenGL's non-linear window depth in [0, 1]; invert the projection.
    depth = (far * near / (far - (far - near) * depth_buffer)).astype(np.float32)
    hit = depth_buffer < 1.0
    depth[~hit] = 0.0
    images = {"rgb": np.ascontiguousarray(rgba[..., :3]), "depth": depth}
    if segmentation:
        images["segmentation"] = np.asarray(segmentation_mask, dtype=np.int32).reshape(height, width)
    return images

"""``Camera``: batched pinhole cameras in the OpenCV convention, and camera trajectories.

A ``Camera`` holds C cameras that share one image size and clip range: intrinsics ``K`` [C,3,3]
and world-to-camera ``viewmat`` [C,4,4] (x right, y down, z forward; pixel centres at +0.5, as
gsplat). Helpers build cameras from look-at parameters, convert to and from PyBullet's OpenGL
view/projection matrices, and sample orbit and path trajectories. This module imports torch and
numpy only.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

# OpenCV camera axes (x right, y down, z forward) -> OpenGL camera axes (x right, y up, z back).
_OPENCV_TO_OPENGL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def _as_float_tensor(value, name: str, dtype=torch.float32) -> torch.Tensor:
    try:
        return torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric, got {type(value).__name__}: {error}") from None


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> torch.Tensor:  # [3, 3]
    """Pinhole intrinsics for a *vertical* field of view (as PyBullet's), square pixels, centred.

    fy = (height / 2) / tan(fov / 2), fx = fy, principal point at the image centre.
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    if width < 1 or height < 1:
        raise ValueError(f"image size must be at least 1x1, got {width}x{height}")
    focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2.0)
    return torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]], dtype=torch.float32)


def look_at_viewmat(
    eye: torch.Tensor,  # [C, 3]
    target: torch.Tensor,  # [C, 3]
    up: torch.Tensor,  # [C, 3] or [3]
) -> torch.Tensor:  # [C, 4, 4]
    """World-to-camera OpenCV matrices for cameras at ``eye`` looking at ``target``.

    When the viewing direction is parallel to ``up`` the up vector is replaced by the world axis
    least aligned with the viewing direction, so the matrix is always a valid rotation.
    """
    eye, target = eye.to(torch.float64), target.to(torch.float64)
    up = up.to(torch.float64).expand_as(eye)
    forward = target - eye
    distance = forward.norm(dim=-1, keepdim=True)
    if bool((distance < 1e-12).any()):
        raise ValueError("look_at: eye and target coincide for at least one camera")
    forward = forward / distance
    right = torch.linalg.cross(forward, up, dim=-1)
    degenerate = right.norm(dim=-1) < 1e-9 * up.norm(dim=-1).clamp_min(1e-30)
    if bool(degenerate.any()):
        axes = torch.eye(3, dtype=torch.float64)
        fallback = axes[forward[degenerate].abs().argmin(dim=-1)]
        right[degenerate] = torch.linalg.cross(forward[degenerate], fallback, dim=-1)
    right = right / right.norm(dim=-1, keepdim=True)
    down = torch.linalg.cross(forward, right, dim=-1)  # y axis of an OpenCV camera points down
    rotation = torch.stack([right, down, forward], dim=-2)  # rows: camera axes in world
    viewmat = torch.eye(4, dtype=torch.float64).repeat(eye.shape[0], 1, 1)
    viewmat[:, :3, :3] = rotation
    viewmat[:, :3, 3] = -(rotation @ eye.unsqueeze(-1)).squeeze(-1)
    return viewmat.to(torch.float32)


class Camera:
    """C pinhole cameras sharing one image size and clip range.

    Args:
        K: intrinsics [C, 3, 3] or [3, 3] in pixels (fx, fy, cx, cy; no skew).
        viewmat: world-to-camera transforms [C, 4, 4] or [4, 4], OpenCV axes
            (x right, y down, z forward).
        width, height: image size in pixels.
        near, far: clip distances along the camera z axis (world units).

    Stored as float32 tensors ``K`` [C,3,3] and ``viewmat`` [C,4,4]. ``len(cam)`` is C,
    ``cam[i]`` a one-camera ``Camera``.
    """

    def __init__(self, K, viewmat, width: int, height: int, near: float = 0.01, far: float = 1000.0) -> None:
        K = _as_float_tensor(K, "K")
        viewmat = _as_float_tensor(viewmat, "viewmat").to(K.device)
        given_k, given_viewmat = list(K.shape), list(viewmat.shape)
        if K.dim() == 2:
            K = K.unsqueeze(0)
        if viewmat.dim() == 2:
            viewmat = viewmat.unsqueeze(0)
        if K.dim() != 3 or K.shape[1:] != (3, 3):
            raise ValueError(f"K must have shape [C, 3, 3] or [3, 3], got {given_k}")
        if viewmat.dim() != 3 or viewmat.shape[1:] != (4, 4):
            raise ValueError(f"viewmat must have shape [C, 4, 4] or [4, 4], got {given_viewmat}")
        if K.shape[0] == 1 and viewmat.shape[0] > 1:
            K = K.expand(viewmat.shape[0], 3, 3)
        if viewmat.shape[0] == 1 and K.shape[0] > 1:
            viewmat = viewmat.expand(K.shape[0], 4, 4)
        if K.shape[0] != viewmat.shape[0]:
            raise ValueError(f"K and viewmat disagree on the camera count: K {list(K.shape)}, viewmat {list(viewmat.shape)}")
        if int(width) != width or int(height) != height or width < 1 or height < 1:
            raise ValueError(f"width and height must be positive integers, got {width}x{height}")
        if not (0.0 < near < far):
            raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
        if not bool(torch.isfinite(K).all() and torch.isfinite(viewmat).all()):
            raise ValueError("K and viewmat must be finite")
        if bool((K[:, 0, 0] <= 0).any() or (K[:, 1, 1] <= 0).any()):
            raise ValueError("K must have positive focal lengths fx = K[0,0] and fy = K[1,1]")
        self.K = K.contiguous()  # [C, 3, 3]
        self.viewmat = viewmat.contiguous()  # [C, 4, 4]
        self.width, self.height = int(width), int(height)
        self.near, self.far = float(near), float(far)

    # ----------------------------------------------------------------- construction
    @classmethod
    def look_at(
        cls,
        eye,  # [3] or [C, 3]
        target,  # [3] or [C, 3]
        up=(0.0, 0.0, 1.0),  # [3] or [C, 3]
        fov_deg: float = 60.0,
        width: int = 128,
        height: int = 128,
        near: float = 0.01,
        far: float = 1000.0,
    ) -> "Camera":
        """Cameras at ``eye`` looking at ``target`` with ``up`` pointing up in the image.

        ``fov_deg`` is the vertical field of view (square pixels, centred principal point).
        """
        eye = _as_float_tensor(eye, "eye", torch.float64)
        target = _as_float_tensor(target, "target", torch.float64)
        up = _as_float_tensor(up, "up", torch.float64)
        for name, value in (("eye", eye), ("target", target), ("up", up)):
            if value.dim() not in (1, 2) or value.shape[-1] != 3:
                raise ValueError(f"{name} must have shape [3] or [C, 3], got {list(value.shape)}")
        count = max(eye.reshape(-1, 3).shape[0], target.reshape(-1, 3).shape[0], up.reshape(-1, 3).shape[0])
        try:
            eye, target, up = (v.reshape(-1, 3).expand(count, 3) for v in (eye, target, up))
        except RuntimeError:
            raise ValueError(
                f"eye {list(eye.shape)}, target {list(target.shape)} and up {list(up.shape)} have different camera counts"
            ) from None
        viewmat = look_at_viewmat(eye, target, up)
        K = intrinsics_from_fov(fov_deg, width, height).expand(count, 3, 3)
        return cls(K, viewmat, width, height, near, far)

    @classmethod
    def stack(cls, cameras: Sequence["Camera"]) -> "Camera":
        """Concatenate cameras with the same image size and clip range into one batch."""
        cameras = list(cameras)
        if not cameras:
            raise ValueError("Camera.stack needs at least one camera")
        first = cameras[0]
        for cam in cameras[1:]:
            if (cam.width, cam.height, cam.near, cam.far) != (first.width, first.height, first.near, first.far):
                raise ValueError(
                    "Camera.stack needs one image size and clip range, got "
                    f"{first.width}x{first.height} near={first.near} far={first.far} and "
                    f"{cam.width}x{cam.height} near={cam.near} far={cam.far}"
                )
        device = first.K.device
        return cls(
            torch.cat([c.K.to(device) for c in cameras]),
            torch.cat([c.viewmat.to(device) for c in cameras]),
            first.width,
            first.height,
            first.near,
            first.far,
        )

    @classmethod
    def from_pybullet(cls, view_matrix: Sequence[float], projection_matrix: Sequence[float], width: int, height: int) -> "Camera":
        """One camera from PyBullet's view and projection matrices (16 floats each, column-major).

        The view matrix is OpenGL (camera looks down -z, y up); the projection is an OpenGL
        frustum whose near/far become the camera's clip range. Pixel rows count from the top,
        as in ``pybullet.getCameraImage``.
        """
        view = np.asarray(view_matrix, dtype=np.float64).reshape(-1)
        projection = np.asarray(projection_matrix, dtype=np.float64).reshape(-1)
        if view.shape != (16,) or projection.shape != (16,):
            raise ValueError(f"PyBullet matrices must have 16 values, got {view.shape[0]} and {projection.shape[0]}")
        view_gl = torch.from_numpy(view.reshape(4, 4).T.copy())  # column-major -> row-major
        proj = projection.reshape(4, 4).T
        if abs(proj[3, 2] + 1.0) > 1e-6 or abs(proj[3, 3]) > 1e-6:
            raise ValueError("projection_matrix is not a perspective OpenGL projection (expected row 3 = [0, 0, -1, 0])")
        viewmat = _OPENCV_TO_OPENGL @ view_gl  # the flip is its own inverse
        # OpenGL NDC x = P00 x/z - P02 (z = camera-forward depth) spans [-1, 1] over the image width.
        fx, fy = proj[0, 0] * width / 2.0, proj[1, 1] * height / 2.0
        cx, cy = (1.0 - proj[0, 2]) * width / 2.0, (1.0 + proj[1, 2]) * height / 2.0
        a, b = proj[2, 2], proj[2, 3]
        near, far = b / (a - 1.0), b / (a + 1.0)
        K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        return cls(K, viewmat.to(torch.float32), width, height, near, far)

    # ----------------------------------------------------------------- conversion
    def to_pybullet(self, index: int = 0) -> tuple[list[float], list[float]]:
        """(view_matrix, projection_matrix) of camera ``index`` as PyBullet lists (column-major)."""
        viewmat = self.viewmat[index].double().cpu()
        view_gl = _OPENCV_TO_OPENGL @ viewmat
        fx, fy, cx, cy = (float(v) for v in self.K[index].double()[[0, 1, 0, 1], [0, 1, 2, 2]])
        w, h, n, f = self.width, self.height, self.near, self.far
        proj = np.zeros((4, 4))
        proj[0, 0], proj[0, 2] = 2.0 * fx / w, 1.0 - 2.0 * cx / w
        proj[1, 1], proj[1, 2] = 2.0 * fy / h, 2.0 * cy / h - 1.0
        proj[2, 2], proj[2, 3] = (f + n) / (n - f), 2.0 * f * n / (n - f)
        proj[3, 2] = -1.0
        return view_gl.numpy().T.reshape(-1).tolist(), proj.T.reshape(-1).tolist()

    def to_tiny_renderer(self, index: int = 0) -> tuple[list[float], list[float]]:
        """(view_matrix, projection_matrix) of camera ``index`` for PyBullet's TinyRenderer.

        TinyRenderer samples pixel (u, v) at image point (u, v + 1) rather than at the pixel
        centre (u + 0.5, v + 0.5) (measured against ray casting: depth error 0 after this shift,
        1-2 cm on grazing floors before), so the principal point moves by (-0.5, +0.5) px and its
        pixels land on ours. Use ``to_pybullet`` for matrices that mean exactly this camera.
        """
        camera = self[index]
        K = camera.K.clone()
        K[:, 0, 2] -= 0.5
        K[:, 1, 2] += 0.5
        return Camera(K, camera.viewmat, self.width, self.height, self.near, self.far).to_pybullet(0)

    def to(self, device) -> "Camera":
        return Camera(self.K.to(device), self.viewmat.to(device), self.width, self.height, self.near, self.far)

    # ----------------------------------------------------------------- protocol
    def __len__(self) -> int:
        return self.K.shape[0]

    def __getitem__(self, index) -> "Camera":
        """Select cameras by int (a one-camera Camera), slice, or index tensor."""
        if isinstance(index, (np.integer, torch.Tensor)) and np.ndim(index) == 0:
            index = int(index)
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise IndexError(f"camera index {index} out of range for {len(self)} cameras")
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        K, viewmat = self.K[index], self.viewmat[index]
        if K.dim() != 3 or K.shape[0] == 0:
            raise IndexError(f"camera selection {index!r} selects no cameras")
        return Camera(K, viewmat, self.width, self.height, self.near, self.far)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"Camera(n={len(self)}, {self.width}x{self.height}, near={self.near}, far={self.far})"

    # ----------------------------------------------------------------- derived values
    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def position(self) -> torch.Tensor:  # [C, 3]
        """Camera centres in world coordinates: -Rᵀ t."""
        rotation, translation = self.viewmat[:, :3, :3], self.viewmat[:, :3, 3]
        return -(rotation.transpose(1, 2) @ translation.unsqueeze(-1)).squeeze(-1)

    @property
    def camera_to_world(self) -> torch.Tensor:  # [C, 4, 4]
        return torch.linalg.inv(self.viewmat.double()).to(self.viewmat.dtype)

    @property
    def fov_deg(self) -> torch.Tensor:  # [C]
        """Vertical field of view in degrees."""
        return torch.rad2deg(2.0 * torch.atan(0.5 * self.height / self.K[:, 1, 1]))

    def with_size(self, width: int, height: int) -> "Camera":
        """The same cameras at another resolution (intrinsics scaled, field of view kept)."""
        scale = torch.tensor([width / self.width, height / self.height, 1.0], device=self.K.device)
        return Camera(self.K * scale[:, None], self.viewmat, width, height, self.near, self.far)


# --------------------------------------------------------------------- trajectories
def horizontal_basis(up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # [3] -> [3], [3]
    """Two unit vectors spanning the plane perpendicular to ``up``, right-handed with it.

    The first is world +X made perpendicular to ``up`` (+Y when ``up`` is close to X), so for
    ``up`` = +Z the basis is exactly (+X, +Y): azimuth 0 lies on the +X side.
    """
    up = up / up.norm().clamp_min(1e-12)
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=up.dtype)
    if abs(float(up @ helper)) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], dtype=up.dtype)
    first = helper - (helper @ up) * up
    first = first / first.norm()
    return first, torch.linalg.cross(up, first)


def orbit_cameras(
    center,  # [3]
    radius: float,
    height: float,
    n: int,
    *,
    up=(0.0, 0.0, 1.0),  # [3]
    start_deg: float = 0.0,
    end_deg: float | None = None,
    fov_deg: float = 60.0,
    width: int = 128,
    image_height: int = 128,
    near: float = 0.01,
    far: float = 1000.0,
) -> Camera:
    """``n`` cameras on a circle of ``radius`` around ``center``, ``height`` above it along ``up``,
    all looking at ``center``.

    Angles run counter-clockwise about ``up`` from ``start_deg`` to ``end_deg`` (exclusive of a
    full turn: by default n evenly spaced views over 360 degrees). For ``up`` = +Z the angle 0
    is on the +X side of the centre.
    """
    if n < 1:
        raise ValueError(f"orbit needs n >= 1 cameras, got {n}")
    if radius <= 0 and height == 0:
        raise ValueError("orbit cameras need radius > 0 or height != 0")
    center = _as_float_tensor(center, "center", torch.float64).reshape(-1)
    up = _as_float_tensor(up, "up", torch.float64).reshape(-1)
    if center.shape != (3,) or up.shape != (3,):
        raise ValueError(f"center and up must have shape [3], got {list(center.shape)} and {list(up.shape)}")
    up = up / up.norm().clamp_min(1e-12)
    if end_deg is None:
        angles = torch.deg2rad(start_deg + torch.arange(n, dtype=torch.float64) * (360.0 / n))
    else:
        angles = torch.deg2rad(torch.linspace(start_deg, end_deg, n, dtype=torch.float64))
    axis_a, axis_b = horizontal_basis(up)
    eyes = center + radius * (torch.cos(angles)[:, None] * axis_a + torch.sin(angles)[:, None] * axis_b) + height * up
    return Camera.look_at(eyes, center.expand(n, 3), up, fov_deg, width, image_height, near, far)


def path_cameras(
    points,  # [C, 3]
    targets=None,  # [C, 3], [3] or None
    *,
    up=(0.0, 0.0, 1.0),  # [3]
    fov_deg: float = 60.0,
    width: int = 128,
    height: int = 128,
    near: float = 0.01,
    far: float = 1000.0,
) -> Camera:
    """Cameras at ``points`` along a path, looking at ``targets`` (one per point, or one shared).

    With ``targets=None`` each camera looks along the path (towards the next point; the last
    one keeps the previous direction).
    """
    points = _as_float_tensor(points, "points", torch.float64)
    if points.dim() != 2 or points.shape[1] != 3 or points.shape[0] < 1:
        raise ValueError(f"points must have shape [C, 3] with C >= 1, got {list(points.shape)}")
    if targets is None:
        if points.shape[0] < 2:
            raise ValueError("path_cameras without targets needs at least 2 points to know where to look")
        directions = torch.diff(points, dim=0)
        directions = torch.cat([directions, directions[-1:]])
        if bool((directions.norm(dim=-1) < 1e-12).any()):
            raise ValueError("path_cameras without targets needs consecutive points to differ")
        targets = points + directions
    targets = _as_float_tensor(targets, "targets", torch.float64)
    if targets.shape not in ((3,), points.shape):
        raise ValueError(f"targets must have shape [3] or {list(points.shape)}, got {list(targets.shape)}")
    return Camera.look_at(points, targets.expand_as(points), up, fov_deg, width, height, near, far)

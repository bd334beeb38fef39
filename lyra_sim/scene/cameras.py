"""Capture cameras beside a scene: one type, discovery, and the sidecar that carries them.

The cameras that photographed a scene know what its Gaussians cannot: gravity (their mean
image-up; their right axes are nearly horizontal), a metric prior (their height above the
floor), the photographed region and a good default viewpoint. ``CaptureCameras`` holds them
in the scene file's own frame; ``SceneMetadata.cameras`` carries them with the scene and
``transform_scene`` moves them with it.

Discovery (:func:`find_cameras`, used by ``load_scene``) looks beside a scene file for, in order:

1. our sidecar ``<stem>.cameras.json`` (written by ``save_scene`` when a scene has cameras;
   format below);
2. an INRIA 3DGS output folder: ``cameras.json`` next to ``point_cloud/iteration_*/point_cloud.ply``
   (or in the file's own folder);
3. a nerfstudio / instant-ngp ``transforms.json`` (poses camera-to-world, OpenGL axes), mapped
   by ``dataparser_transforms.json`` (nerfstudio's transform and scale) when one is found;
4. a COLMAP model ``sparse/0`` (or ``sparse``), text or binary.

Folders searched for 3 and 4: the file's own, its parent and grandparent. ``load_cameras(PATH)`` reads any
of these explicitly (a file, or a folder holding one).

Sidecar ``<stem>.cameras.json`` (version 1)::

    {"format": "lyra-sim cameras", "version": 1,
     "frame": "z-up",               # the scene frame the cameras are in (SceneMetadata.frame)
     "metres_per_unit": 1.0,        # null when the units are unknown
     "up": [0, 0, 1],               # the known up direction in this frame, or null
     "cameras": [{"id": 0, "img_name": "view_0000", "width": 64, "height": 64,
                  "position": [x, y, z],           # camera centre
                  "rotation": [[...], [...], [...]],  # camera-to-world rotation, OpenCV axes
                  "fx": ..., "fy": ..., "cx": ..., "cy": ...}]}

The entries are INRIA ``cameras.json`` entries plus the principal point, so INRIA tools read
the list. This module imports numpy and the standard library only (torch lazily for
``to_camera``; the COLMAP reader lazily).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

SIDECAR_FORMAT = "lyra-sim cameras"
SIDECAR_VERSION = 1
_OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])


class CameraFileError(ValueError):
    """A camera file beside a scene is malformed; the message names the file."""


@dataclass(frozen=True)
class CaptureCameras:
    """C capture cameras in a scene's frame (OpenCV axes: x right, y down, z forward).

    Attributes:
        rotations: camera-to-world rotations [C, 3, 3] (columns: the camera axes in the world).
        positions: camera centres [C, 3] (scene units).
        intrinsics: pixel intrinsics [C, 3, 3].
        sizes: image (width, height) per camera [C, 2].
        names: one name per camera.
        source: the file they were read from (or "in memory").
        kind: "sidecar", "inria", "nerfstudio", "colmap" or "memory".
        metres_per_unit: metres per scene unit when known (1.0: metric), else None.
        up: the known up direction [3] in this frame (e.g. the kit world's +Z), else None.
    """

    rotations: np.ndarray
    positions: np.ndarray
    intrinsics: np.ndarray
    sizes: np.ndarray
    names: tuple[str, ...] = ()
    source: str = "in memory"
    kind: str = "memory"
    metres_per_unit: float | None = None
    up: tuple[float, float, float] | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        rotations = np.asarray(self.rotations, dtype=np.float64).reshape(-1, 3, 3)
        count = len(rotations)
        positions = np.asarray(self.positions, dtype=np.float64)
        intrinsics = np.asarray(self.intrinsics, dtype=np.float64)
        sizes = np.asarray(self.sizes, dtype=np.int64)
        if positions.shape != (count, 3) or intrinsics.shape != (count, 3, 3) or sizes.shape != (count, 2):
            raise ValueError(
                f"capture cameras need rotations [C,3,3], positions [C,3], intrinsics [C,3,3], sizes [C,2]; got "
                f"{list(rotations.shape)}, {list(positions.shape)}, {list(intrinsics.shape)}, {list(sizes.shape)}"
            )
        if count == 0:
            raise ValueError("capture cameras need at least one camera")
        if not (np.isfinite(rotations).all() and np.isfinite(positions).all() and np.isfinite(intrinsics).all()):
            raise ValueError(f"capture cameras from {self.source} contain NaN or Inf")
        names = tuple(self.names) or tuple(f"camera_{i:04d}" for i in range(count))
        if len(names) != count:
            raise ValueError(f"{len(names)} names for {count} capture cameras")
        object.__setattr__(self, "rotations", rotations)
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "intrinsics", intrinsics)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "names", names)
        if self.up is not None:
            up = np.asarray(self.up, dtype=np.float64)
            object.__setattr__(self, "up", tuple(float(v) for v in up / np.linalg.norm(up)))

    def __len__(self) -> int:
        return len(self.rotations)

    # ----------------------------------------------------------------- derived directions
    @property
    def forward(self) -> np.ndarray:  # [C, 3]
        """Viewing directions (camera +z) in the world."""
        return self.rotations[:, :, 2]

    @property
    def right(self) -> np.ndarray:  # [C, 3]
        """Image-right directions (camera +x) in the world."""
        return self.rotations[:, :, 0]

    @property
    def image_up(self) -> np.ndarray:  # [C, 3]
        """Image-up directions (camera -y) in the world."""
        return -self.rotations[:, :, 1]

    @property
    def viewmats(self) -> np.ndarray:  # [C, 4, 4]
        """World-to-camera matrices (OpenCV axes)."""
        viewmats = np.tile(np.eye(4), (len(self), 1, 1))
        transposed = np.transpose(self.rotations, (0, 2, 1))
        viewmats[:, :3, :3] = transposed
        viewmats[:, :3, 3] = -np.einsum("cij,cj->ci", transposed, self.positions)
        return viewmats

    @classmethod
    def from_viewmats(cls, viewmats, intrinsics, sizes, **fields) -> "CaptureCameras":
        """From world-to-camera matrices [C, 4, 4] (OpenCV), intrinsics [C, 3, 3] and sizes [C, 2]."""
        viewmats = np.asarray(viewmats, dtype=np.float64).reshape(-1, 4, 4)
        rotations = np.transpose(viewmats[:, :3, :3], (0, 2, 1))
        positions = -np.einsum("cij,cj->ci", rotations, viewmats[:, :3, 3])
        return cls(rotations, positions, intrinsics, sizes, **fields)

    @classmethod
    def from_camera(cls, camera, **fields) -> "CaptureCameras":
        """From a ``lyra_sim.render.Camera`` batch."""
        count = len(camera)
        return cls.from_viewmats(camera.viewmat.double().cpu().numpy(), camera.K.double().cpu().numpy(),
                                 np.tile([camera.width, camera.height], (count, 1)), **fields)

    def to_camera(self, index=None, *, width: int | None = None, near: float = 0.01, far: float | None = None):
        """A ``lyra_sim.render.Camera`` of camera ``index`` (or all, when they share one size).

        ``width`` rescales the image (intrinsics follow, aspect kept). ``far`` defaults to
        100x the cameras' spread (so a whole capture fits).
        """
        from lyra_sim.render.camera import Camera

        indices = np.arange(len(self)) if index is None else np.atleast_1d(np.asarray(index, dtype=np.int64))
        sizes = self.sizes[indices]
        if not (sizes == sizes[0]).all():
            raise ValueError(f"cameras {indices.tolist()} differ in image size; pick one index")
        source_width, source_height = int(sizes[0, 0]), int(sizes[0, 1])
        factor = 1.0 if width is None else width / source_width
        K = self.intrinsics[indices].copy()
        K[:, :2] *= factor
        spread = float(np.ptp(self.positions, axis=0).max()) if len(self) > 1 else 1.0
        far = far if far is not None else max(100.0 * spread, 100.0 * near)
        return Camera(K, self.viewmats[indices], max(1, round(source_width * factor)), max(1, round(source_height * factor)), near=near, far=far)

    def viewpoint(self, width: int, height: int):
        """A render ``Camera`` at the most central capture camera, ``width`` x ``height`` pixels
        (focal length scaled with the width; a different aspect crops or pads the height)."""
        from lyra_sim.render.camera import Camera

        index = self.central_index()
        factor = width / int(self.sizes[index, 0])
        K = self.intrinsics[index].copy()
        K[:2] *= factor
        K[1, 2] += 0.5 * (height - factor * int(self.sizes[index, 1]))
        spread = max(float(np.ptp(self.positions, axis=0).max()) if len(self) > 1 else 1.0, 1e-6)
        return Camera(K, self.viewmats[index], width, height, near=1e-3 * spread, far=1e3 * spread)

    def central_index(self) -> int:
        """The camera closest to the cameras' mean position (a representative viewpoint)."""
        return int(np.argmin(np.linalg.norm(self.positions - self.positions.mean(0), axis=1)))

    # ----------------------------------------------------------------- transforms
    def transformed(self, matrix) -> "CaptureCameras":
        """The cameras after the similarity x -> matrix @ [x, 1] (4x4, positive scale)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        linear = matrix[:3, :3]
        scale = float(np.cbrt(np.linalg.det(linear)))
        if not scale > 0:
            raise ValueError(f"cameras can only follow a similarity with positive scale (det {np.linalg.det(linear):.3g})")
        rotation = linear / scale
        metres = None if self.metres_per_unit is None else self.metres_per_unit / scale
        up = None if self.up is None else tuple(rotation @ np.asarray(self.up))
        return replace(self, rotations=rotation[None] @ self.rotations, positions=self.positions @ linear.T + matrix[:3, 3],
                       metres_per_unit=metres, up=up)

    def subset(self, indices) -> "CaptureCameras":
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return replace(self, rotations=self.rotations[indices], positions=self.positions[indices],
                       intrinsics=self.intrinsics[indices], sizes=self.sizes[indices], names=tuple(self.names[i] for i in indices))

    # ----------------------------------------------------------------- files
    def to_sidecar(self, frame: str = "unknown") -> dict:
        """The JSON-serialisable sidecar (module docstring)."""
        entries = []
        for i in range(len(self)):
            K = self.intrinsics[i]
            entries.append({
                "id": i, "img_name": self.names[i], "width": int(self.sizes[i, 0]), "height": int(self.sizes[i, 1]),
                "position": self.positions[i].tolist(), "rotation": self.rotations[i].tolist(),
                "fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
            })
        return {"format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "frame": frame, "metres_per_unit": self.metres_per_unit,
                "up": None if self.up is None else list(self.up), "cameras": entries}


def sidecar_path(scene_path) -> Path:
    """``scene.ply`` -> ``scene.cameras.json`` (``a.compressed.ply`` -> ``a.compressed.cameras.json``)."""
    scene_path = Path(scene_path)
    return scene_path.with_name(scene_path.stem + ".cameras.json")


def write_sidecar(cameras: CaptureCameras, scene_path, frame: str = "unknown") -> Path:
    """Write the cameras beside ``scene_path`` atomically; returns the sidecar's path."""
    from lyra_sim.io_utils import write_json

    return write_json(sidecar_path(scene_path), cameras.to_sidecar(frame), indent=1)


def write_inria_cameras(cameras: CaptureCameras, path) -> Path:
    """INRIA 3DGS ``cameras.json`` (a list of entries; no frame or units) at ``path``."""
    from lyra_sim.io_utils import write_json

    return write_json(path, cameras.to_sidecar()["cameras"], indent=1)


def write_transforms(cameras: CaptureCameras, path) -> Path:
    """A nerfstudio ``transforms.json`` (camera-to-world, OpenGL camera axes) at ``path``."""
    from lyra_sim.io_utils import write_json

    frames = []
    for i in range(len(cameras)):
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = cameras.rotations[i] @ _OPENGL_TO_OPENCV, cameras.positions[i]
        K = cameras.intrinsics[i]
        frames.append({"file_path": f"images/{cameras.names[i]}.png", "transform_matrix": c2w.tolist(), "w": int(cameras.sizes[i, 0]),
                       "h": int(cameras.sizes[i, 1]), "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]})
    return write_json(path, {"camera_model": "OPENCV", "frames": frames}, indent=1)


def write_colmap_text(cameras: CaptureCameras, folder) -> Path:
    """A COLMAP text model (PINHOLE ``cameras.txt``, ``images.txt``, empty ``points3D.txt``) in ``folder``."""
    from lyra_sim.photos.formats.colmap import matrix_to_qvec
    from lyra_sim.io_utils import atomic_path

    folder = Path(folder)
    viewmats = cameras.viewmats
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        lines = [f"{i + 1} PINHOLE {cameras.sizes[i, 0]} {cameras.sizes[i, 1]} {K[0, 0]:.10g} {K[1, 1]:.10g} {K[0, 2]:.10g} {K[1, 2]:.10g}"
                 for i, K in enumerate(cameras.intrinsics)]
        (tmp / "cameras.txt").write_text("\n".join(lines) + "\n")
        lines = []
        for i in range(len(cameras)):
            qvec = matrix_to_qvec(viewmats[i, :3, :3])
            lines += [f"{i + 1} " + " ".join(f"{v:.12g}" for v in (*qvec, *viewmats[i, :3, 3])) + f" {i + 1} {cameras.names[i]}.png", ""]
        (tmp / "images.txt").write_text("\n".join(lines) + "\n")
        (tmp / "points3D.txt").write_text("")
    return folder


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CameraFileError(f"{path}: cannot read camera file: {error}") from None


def _inria_entries(entries, path: Path, kind: str, **fields) -> CaptureCameras:
    """INRIA ``cameras.json`` entries (position, camera-to-world rotation, fx, fy, width, height)."""
    if not isinstance(entries, list) or not entries:
        raise CameraFileError(f"{path}: expected a non-empty list of cameras")
    rotations, positions, intrinsics, sizes, names = [], [], [], [], []
    for index, entry in enumerate(entries):
        try:
            width, height = int(entry["width"]), int(entry["height"])
            rotation = np.asarray(entry["rotation"], dtype=np.float64).reshape(3, 3)
            position = np.asarray(entry["position"], dtype=np.float64).reshape(3)
            fx, fy = float(entry["fx"]), float(entry["fy"])
            cx, cy = float(entry.get("cx", width / 2)), float(entry.get("cy", height / 2))
        except (KeyError, TypeError, ValueError) as error:
            raise CameraFileError(f"{path}: camera {index} needs width, height, position [3], rotation [3x3], fx, fy: {error!r}") from None
        if abs(np.linalg.det(rotation) - 1.0) > 1e-3 or np.abs(rotation @ rotation.T - np.eye(3)).max() > 1e-3:
            raise CameraFileError(f"{path}: camera {index} rotation is not a rotation matrix")
        rotations.append(rotation)
        positions.append(position)
        intrinsics.append([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        sizes.append([width, height])
        names.append(str(entry.get("img_name", f"camera_{index:04d}")))
    try:
        return CaptureCameras(np.array(rotations), np.array(positions), np.array(intrinsics), np.array(sizes),
                              names=tuple(names), source=str(path), kind=kind, **fields)
    except ValueError as error:
        raise CameraFileError(f"{path}: {error}") from None


def read_sidecar(path) -> tuple[CaptureCameras, str]:
    """Our sidecar (or a plain INRIA ``cameras.json``): the cameras and the frame they are in."""
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, list):
        return _inria_entries(data, path, "inria"), "unknown"
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise CameraFileError(f"{path}: not a camera sidecar (format {data.get('format') if isinstance(data, dict) else type(data).__name__!r})")
    if data.get("version") != SIDECAR_VERSION:
        raise CameraFileError(f"{path}: camera sidecar version {data.get('version')!r} is not supported (expected {SIDECAR_VERSION})")
    metres = data.get("metres_per_unit")
    if metres is not None and not (isinstance(metres, (int, float)) and metres > 0):
        raise CameraFileError(f"{path}: metres_per_unit must be a positive number or null, got {metres!r}")
    up = data.get("up")
    cameras = _inria_entries(data.get("cameras"), path, "sidecar", metres_per_unit=None if metres is None else float(metres),
                             up=None if up is None else tuple(float(v) for v in up))
    return cameras, str(data.get("frame", "unknown"))


def read_transforms(path, dataparser: Path | None = None) -> CaptureCameras:
    """A nerfstudio / instant-ngp ``transforms.json`` (camera-to-world, OpenGL camera axes).

    With ``dataparser`` (nerfstudio's ``dataparser_transforms.json``: a 3x4 ``transform`` and a
    ``scale``), poses are mapped into the trained model's frame: x -> scale * (T [x, 1]).
    """
    path = Path(path)
    meta = _read_json(path)
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise CameraFileError(f"{path}: 'frames' must be a non-empty list")
    rotations, positions, intrinsics, sizes, names = [], [], [], [], []
    for index, frame in enumerate(frames):
        merged = {**{k: v for k, v in meta.items() if k != "frames"}, **frame}
        try:
            c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
            c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]]) if c2w.shape == (3, 4) else c2w.reshape(4, 4)
            width, height = int(merged["w"]), int(merged["h"])
            if "fl_x" in merged:
                fx = float(merged["fl_x"])
                fy = float(merged.get("fl_y", fx))
            else:
                fx = fy = 0.5 * width / np.tan(0.5 * float(merged["camera_angle_x"]))
            cx, cy = float(merged.get("cx", width / 2)), float(merged.get("cy", height / 2))
        except (KeyError, TypeError, ValueError) as error:
            raise CameraFileError(f"{path}: frame {index} needs transform_matrix, w, h and fl_x or camera_angle_x: {error!r}") from None
        rotation = c2w[:3, :3]
        scale = np.cbrt(np.linalg.det(rotation))
        if not np.isfinite(c2w).all() or not scale > 0:
            raise CameraFileError(f"{path}: frame {index} transform_matrix is not a finite camera-to-world pose")
        rotations.append(rotation / scale @ _OPENGL_TO_OPENCV)
        positions.append(c2w[:3, 3])
        intrinsics.append([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        sizes.append([width, height])
        names.append(Path(str(frame.get("file_path", f"frame_{index:04d}"))).name)
    cameras = CaptureCameras(np.array(rotations), np.array(positions), np.array(intrinsics), np.array(sizes),
                             names=tuple(names), source=str(path), kind="nerfstudio")
    if dataparser is not None:
        data = _read_json(dataparser)
        try:
            transform = np.vstack([np.asarray(data["transform"], dtype=np.float64).reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])
            scale = float(data["scale"])
        except (KeyError, TypeError, ValueError) as error:
            raise CameraFileError(f"{dataparser}: needs 'transform' (3x4) and 'scale': {error!r}") from None
        matrix = np.diag([scale, scale, scale, 1.0]) @ transform
        cameras = replace(cameras.transformed(matrix), notes=(f"mapped by {dataparser}",))
    return cameras


def read_colmap_cameras(folder) -> CaptureCameras:
    """The registered images of a COLMAP model folder (``cameras``/``images`` .txt or .bin)."""
    from lyra_sim.photos.dataset import DatasetError
    from lyra_sim.photos.formats.colmap import colmap_intrinsics, qvec_to_matrix, read_colmap_model

    folder = Path(folder)
    try:
        model = read_colmap_model(folder)
    except DatasetError as error:
        raise CameraFileError(str(error)) from None
    if not model.images:
        raise CameraFileError(f"{folder}: the COLMAP model has no registered images")
    viewmats, intrinsics, sizes, names = [], [], [], []
    for image in sorted(model.images, key=lambda im: im.image_id):
        camera = model.cameras.get(image.camera_id)
        if camera is None:
            raise CameraFileError(f"{folder}: image {image.name!r} refers to missing camera {image.camera_id}")
        try:
            K, _ = colmap_intrinsics(camera, folder)
        except DatasetError as error:
            raise CameraFileError(str(error)) from None
        viewmat = np.eye(4)
        viewmat[:3, :3], viewmat[:3, 3] = qvec_to_matrix(image.qvec), image.tvec
        viewmats.append(viewmat)
        intrinsics.append(K)
        sizes.append([camera.width, camera.height])
        names.append(image.name)
    return CaptureCameras.from_viewmats(np.array(viewmats), np.array(intrinsics), np.array(sizes), names=tuple(names),
                                        source=str(folder), kind="colmap")


def _colmap_folder(folder: Path) -> Path | None:
    for candidate in (folder / "sparse" / "0", folder / "sparse"):
        if (candidate / "cameras.bin").is_file() or (candidate / "cameras.txt").is_file():
            return candidate
    return None


def _search_folders(scene_path: Path) -> list[Path]:
    folder = scene_path.parent
    return [folder, folder.parent, folder.parent.parent][: 3 if folder.parent.parent != folder.parent else 2]


def find_cameras(scene_path) -> tuple[CaptureCameras, str] | None:
    """Capture cameras beside the scene file ``scene_path`` and the frame they are in, or None.

    See the module docstring for the places looked at and their order. A camera file that is
    found but malformed raises ``CameraFileError`` naming it (a broken capture should not pass
    silently as "no cameras").
    """
    scene_path = Path(scene_path)
    sidecar = sidecar_path(scene_path)
    if sidecar.is_file():
        return read_sidecar(sidecar)
    folders = _search_folders(scene_path)
    # INRIA's cameras.json: beside the file, or at the output root of point_cloud/iteration_N/
    # (not any parent: a bundle's splats/<object>.ply is in another frame than its root's cameras).
    inria = [scene_path.parent]
    if scene_path.parent.name.startswith("iteration_") and scene_path.parent.parent.name == "point_cloud":
        inria.append(scene_path.parent.parent.parent)
    for folder in inria:
        if (folder / "cameras.json").is_file():
            return read_sidecar(folder / "cameras.json")
    for folder in folders:
        if (folder / "transforms.json").is_file():
            dataparser = next((f / "dataparser_transforms.json" for f in [scene_path.parent, *folders] if (f / "dataparser_transforms.json").is_file()), None)
            return read_transforms(folder / "transforms.json", dataparser), "unknown"
    for folder in folders:
        colmap = _colmap_folder(folder)
        if colmap is not None:
            return read_colmap_cameras(colmap), "opencv"
    return None


def load_cameras(path) -> tuple[CaptureCameras, str]:
    """Read capture cameras from ``path``: a sidecar or INRIA ``cameras.json``, a ``transforms.json``,
    a COLMAP model folder, or a folder holding one of them. Raises ``CameraFileError``."""
    path = Path(path)
    if path.is_file():
        if path.name.endswith("transforms.json") and path.name != "dataparser_transforms.json":
            dataparser = path.parent / "dataparser_transforms.json"
            return read_transforms(path, dataparser if dataparser.is_file() else None), "unknown"
        if path.suffix == ".json":
            return read_sidecar(path)
        raise CameraFileError(f"{path}: not a camera file (expected a cameras.json, transforms.json or a COLMAP folder)")
    if path.is_dir():
        for name in ("cameras.json",):
            if (path / name).is_file():
                return read_sidecar(path / name)
        if (path / "transforms.json").is_file():
            return load_cameras(path / "transforms.json")
        if (path / "cameras.txt").is_file() or (path / "cameras.bin").is_file():
            return read_colmap_cameras(path), "opencv"
        colmap = _colmap_folder(path)
        if colmap is not None:
            return read_colmap_cameras(colmap), "opencv"
        raise CameraFileError(f"{path}: holds no cameras.json, transforms.json or COLMAP model (sparse/0)")
    raise CameraFileError(f"{path}: no such camera file or folder")

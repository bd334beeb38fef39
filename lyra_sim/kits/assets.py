"""Meshes for the scene kits, built from PyBullet's bundled assets (``pybullet_data``).

Geometry comes from the asset files (the table and cube OBJs, the random-URDF blobs, the duck);
appearance comes from seeded procedural textures mapped with a box projection, so every kit
mesh is a ``trimesh.Trimesh`` with TextureVisuals (per-corner UVs + an image) that PyBullet's
TinyRenderer and the surface sampler read identically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lyra_sim.errors import MissingDependencyError


def pybullet_data_path() -> Path:
    """Folder of PyBullet's bundled assets."""
    try:
        import pybullet_data
    except ImportError as error:  # pragma: no cover - pybullet is a core dependency
        raise MissingDependencyError("scene kits need pybullet (pip install pybullet)") from error
    return Path(pybullet_data.getDataPath())


def load_asset_geometry(relative_path: str):
    """Load an asset mesh from pybullet_data as plain geometry (one Trimesh, visuals dropped)."""
    import trimesh

    path = pybullet_data_path() / relative_path
    if not path.is_file():
        raise FileNotFoundError(f"pybullet_data asset {relative_path!r} not found at {path}")
    loaded = trimesh.load(path, force="mesh", process=False)
    return trimesh.Trimesh(vertices=np.asarray(loaded.vertices), faces=np.asarray(loaded.faces), process=True)


def box_projection_uv(mesh) -> "trimesh.Trimesh":  # noqa: F821
    """A copy of ``mesh`` with one vertex per face corner and box-projected UVs in [0, 1].

    Each face is projected onto the coordinate plane most perpendicular to its normal, and the
    plane's extent is normalised by the mesh's largest side so texture density is uniform.
    Unmerged corners keep faces from sharing UVs across projection seams.
    """
    import trimesh

    corners = np.asarray(mesh.vertices)[np.asarray(mesh.faces)].reshape(-1, 3)  # [3F, 3]
    normals = np.repeat(np.asarray(mesh.face_normals), 3, axis=0)
    lower = np.asarray(mesh.bounds[0])
    extent = max(float(np.max(mesh.extents)), 1e-9)
    local = (corners - lower) / extent  # in [0, 1]
    dominant = np.argmax(np.abs(normals), axis=1)
    # Planes: normal x -> (y, z), normal y -> (x, z), normal z -> (x, y).
    axis_u = np.where(dominant == 0, 1, 0)
    axis_v = np.where(dominant == 2, 1, 2)
    rows = np.arange(len(local))
    uv = np.stack([local[rows, axis_u], local[rows, axis_v]], axis=1)
    faces = np.arange(len(corners)).reshape(-1, 3)
    return trimesh.Trimesh(vertices=corners, faces=faces, process=False), uv


def textured_mesh(mesh, texture: np.ndarray, uv: np.ndarray | None = None):  # texture [H, W, 3] uint8
    """Attach ``texture`` to ``mesh``; UVs are box-projected when ``uv`` [V, 2] is not given."""
    import trimesh
    from PIL import Image

    if uv is None:
        mesh, uv = box_projection_uv(mesh)
    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(texture))
    return trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices),
        faces=np.asarray(mesh.faces),
        visual=trimesh.visual.TextureVisuals(uv=np.asarray(uv, dtype=np.float64), material=material),
        process=False,
    )


def scaled_box(size: tuple[float, float, float], centre: tuple[float, float, float] = (0.0, 0.0, 0.0)):
    """pybullet_data's unit cube (``cube.obj``) scaled to ``size`` and moved to ``centre`` (metres)."""
    box = load_asset_geometry("cube.obj")
    box.apply_scale(np.asarray(size, dtype=np.float64))
    box.apply_translation(np.asarray(centre, dtype=np.float64))
    return box


def table_parts(top_size=(1.5, 1.0, 0.05), height: float = 0.625, leg_size: float = 0.1) -> list:
    """The table of ``table/table.urdf``: its top and four legs as boxes built from ``table.obj``.

    ``height`` is the z of the table's top surface; legs sit at the corners (URDF layout).
    """
    top = load_asset_geometry("table/table.obj")
    top.apply_scale(np.asarray(top_size))
    top.apply_translation([0.0, 0.0, height - top_size[2] / 2])
    parts = [top]
    leg_height = height - top_size[2]
    for sx in (-1, 1):
        for sy in (-1, 1):
            leg = load_asset_geometry("table/table.obj")
            leg.apply_scale([leg_size, leg_size, leg_height])
            leg.apply_translation([sx * (top_size[0] / 2 - leg_size), sy * (top_size[1] / 2 - leg_size), leg_height / 2])
            parts.append(leg)
    return parts


def floor_plane(size_x: float, size_y: float, centre=(0.0, 0.0), z: float = 0.0):
    """A rectangle of two triangles facing +Z (the finite ground-truth version of ``plane.urdf``)."""
    import trimesh

    hx, hy = size_x / 2, size_y / 2
    cx, cy = centre
    vertices = np.array([[cx - hx, cy - hy, z], [cx + hx, cy - hy, z], [cx + hx, cy + hy, z], [cx - hx, cy + hy, z]])
    return trimesh.Trimesh(vertices=vertices, faces=np.array([[0, 1, 2], [0, 2, 3]]), process=False)


def wall_quad(start_xy, end_xy, height: float, inward_normal_xy) -> "trimesh.Trimesh":  # noqa: F821
    """A vertical rectangle from ``start_xy`` to ``end_xy`` (floor to ``height``) facing inward."""
    import trimesh

    (x0, y0), (x1, y1) = start_xy, end_xy
    vertices = np.array([[x0, y0, 0.0], [x1, y1, 0.0], [x1, y1, height], [x0, y0, height]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    normal = np.cross(vertices[1] - vertices[0], vertices[3] - vertices[0])
    if np.dot(normal[:2], inward_normal_xy) < 0:
        faces = faces[:, ::-1]
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


RANDOM_OBJECT_COUNT = 1000  # pybullet_data/random_urdfs/000 ... 999


def random_blob(index: int, size: float):
    """Blob ``random_urdfs/<index>/<index>.obj`` scaled so its largest side is ``size`` metres."""
    name = f"{index:03d}"
    blob = load_asset_geometry(f"random_urdfs/{name}/{name}.obj")
    blob.apply_scale(size / float(np.max(blob.extents)))
    return blob


def duck(size: float):
    """The textured duck (``duck.obj`` + ``duckCM.png``), Y-up in the file, turned Z-up, largest side ``size``."""
    import trimesh
    from PIL import Image

    path = pybullet_data_path() / "duck.obj"
    loaded = trimesh.load(path, force="mesh", process=False)
    uv = np.asarray(loaded.visual.uv, dtype=np.float64)
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    vertices = vertices[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # Y-up -> Z-up (a proper rotation)
    vertices *= size / float(np.max(vertices.max(0) - vertices.min(0)))
    texture = np.asarray(Image.open(pybullet_data_path() / "duckCM.png").convert("RGB"))
    mesh = trimesh.Trimesh(vertices=vertices, faces=np.asarray(loaded.faces), process=False)
    return textured_mesh(mesh, texture, uv)

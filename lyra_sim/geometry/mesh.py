"""Triangle meshes as plain arrays: the ``Mesh`` container, OBJ reading/writing, and the clean-up
steps between surface extraction and export (large components kept, small holes filled,
decimation to a face budget, nothing below the floor).

Functions are pure: a mesh in, a new mesh out. Open3D is imported lazily inside the functions
that need it; trimesh is used for mass properties only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lyra_sim.errors import BundleError
from lyra_sim.io_utils import atomic_path


@dataclass
class Mesh:
    """A triangle mesh.

    Attributes:
        vertices: positions [V, 3] float64.
        faces: vertex indices [F, 3] int64, counter-clockwise seen from outside.
        colors: optional per-vertex linear RGB in [0, 1], [V, 3].
    """

    vertices: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3]
    colors: np.ndarray | None = None  # [V, 3]

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)
        if self.colors is not None:
            self.colors = np.asarray(self.colors, dtype=np.float64)
            if self.colors.shape != self.vertices.shape:
                raise ValueError(f"colors must have shape {list(self.vertices.shape)}, got {list(self.colors.shape)}")
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise ValueError(f"faces index vertices outside [0, {len(self.vertices)})")

    def __len__(self) -> int:
        return len(self.faces)

    def is_empty(self) -> bool:
        return len(self.faces) == 0

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min [3], max [3]) of the vertices."""
        if len(self.vertices) == 0:
            raise ValueError("an empty mesh has no bounds")
        return self.vertices.min(0), self.vertices.max(0)

    def translated(self, offset: np.ndarray) -> "Mesh":
        return Mesh(self.vertices + np.asarray(offset, dtype=np.float64), self.faces.copy(), None if self.colors is None else self.colors.copy())

    def to_open3d(self):
        import open3d as o3d

        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(self.vertices), o3d.utility.Vector3iVector(self.faces.astype(np.int32)))
        if self.colors is not None:
            mesh.vertex_colors = o3d.utility.Vector3dVector(np.clip(self.colors, 0, 1))
        return mesh

    @classmethod
    def from_open3d(cls, mesh) -> "Mesh":
        colors = np.asarray(mesh.vertex_colors) if mesh.has_vertex_colors() else None
        return cls(np.asarray(mesh.vertices), np.asarray(mesh.triangles), colors)

    def to_trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    @classmethod
    def concatenate(cls, meshes: list["Mesh"]) -> "Mesh":
        """One mesh holding all faces of ``meshes`` (colours kept only if every part has them)."""
        meshes = [m for m in meshes if len(m.vertices)]
        if not meshes:
            return cls(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        colors = None
        if all(m.colors is not None for m in meshes):
            colors = np.concatenate([m.colors for m in meshes])
        return cls(
            np.concatenate([m.vertices for m in meshes]),
            np.concatenate([m.faces + offset for m, offset in zip(meshes, offsets)]),
            colors,
        )


# ----------------------------------------------------------------------------- OBJ files
def write_obj(path: str | os.PathLike, parts: list[tuple[str, Mesh]], header: str | None = None) -> Path:
    """Write named parts to one Wavefront OBJ, one ``o`` group per part, atomically.

    PyBullet turns each ``o`` group of a non-concave mesh into one convex hull of a compound.
    Vertex colours, when present, are written as ``v x y z r g b`` (read by tinyobjloader,
    Open3D, MeshLab and Blender).
    """
    path = Path(path)
    lines: list[str] = [f"# {line}" for line in (header or "").splitlines()]
    first_vertex = 1  # OBJ indices are 1-based and global across groups
    for name, mesh in parts:
        if mesh.is_empty():
            raise ValueError(f"part {name!r} of {path.name} has no faces")
        lines.append(f"o {name}")
        if mesh.colors is not None:
            rows = np.hstack([mesh.vertices, np.clip(mesh.colors, 0, 1)])
            lines.extend(f"v {x:.6f} {y:.6f} {z:.6f} {r:.4f} {g:.4f} {b:.4f}" for x, y, z, r, g, b in rows)
        else:
            lines.extend(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices)
        faces = mesh.faces + first_vertex
        lines.extend(f"f {a} {b} {c}" for a, b, c in faces)
        first_vertex += len(mesh.vertices)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def read_obj(path: str | os.PathLike) -> list[tuple[str, Mesh]]:
    """Read the ``o``/``g`` groups of an OBJ written by :func:`write_obj` (or any triangle/polygon OBJ).

    Polygons are fan-triangulated; texture/normal indices are ignored. Raises ``BundleError``
    naming the file for malformed content.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: mesh file not found")
    vertices: list[list[float]] = []
    colors: list[list[float]] = []
    groups: list[tuple[str, list[list[int]]]] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if fields[0] == "v":
                vertices.append([float(v) for v in fields[1:4]])
                colors.append([float(v) for v in fields[4:7]] if len(fields) >= 7 else [])
            elif fields[0] in ("o", "g"):
                groups.append((fields[1] if len(fields) > 1 else f"part{len(groups)}", []))
            elif fields[0] == "f":
                if not groups:
                    groups.append(("part0", []))
                corners = [int(token.split("/")[0]) for token in fields[1:]]
                corners = [c - 1 if c > 0 else len(vertices) + c for c in corners]
                groups[-1][1].extend([corners[0], corners[k], corners[k + 1]] for k in range(1, len(corners) - 1))
        except (ValueError, IndexError) as error:
            raise BundleError(f"{path}: line {number} is not valid OBJ ({raw.strip()!r}): {error}") from None
    all_vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    has_colors = bool(colors) and all(len(c) == 3 for c in colors)
    parts = []
    for name, faces in groups:
        if not faces:
            continue
        faces_array = np.asarray(faces, dtype=np.int64)
        if faces_array.min() < 0 or faces_array.max() >= len(all_vertices):
            raise BundleError(f"{path}: group {name!r} references a vertex that does not exist")
        used, local = np.unique(faces_array, return_inverse=True)
        part_colors = np.asarray(colors, dtype=np.float64)[used] if has_colors else None
        parts.append((name, Mesh(all_vertices[used], local.reshape(-1, 3), part_colors)))
    return parts


# ----------------------------------------------------------------------------- clean-up
def keep_large_components(mesh: Mesh, min_fraction: float = 0.02, min_faces: int = 50) -> Mesh:
    """Drop connected components smaller than ``min_fraction`` of the largest one (and < ``min_faces``).

    TSDF extraction leaves small blobs around floaters and at the fringe of the observed
    volume; they are noise for collision and inflate the face count.
    """
    if mesh.is_empty():
        return mesh
    o3d_mesh = mesh.to_open3d()
    cluster_of_face, faces_per_cluster, _ = o3d_mesh.cluster_connected_triangles()
    cluster_of_face = np.asarray(cluster_of_face)
    faces_per_cluster = np.asarray(faces_per_cluster)
    smallest_kept = max(min_fraction * faces_per_cluster.max(), min(min_faces, faces_per_cluster.max()))
    keep_cluster = faces_per_cluster >= smallest_kept
    return _select_faces(mesh, keep_cluster[cluster_of_face])


def crop_to_box(mesh: Mesh, low: np.ndarray, high: np.ndarray) -> Mesh:
    """Drop faces with a vertex outside [low, high] or not finite.

    A guard after surface extraction and decimation: Open3D occasionally emits a stray vertex
    far from the data, and one such vertex would wreck bounds, metrics and physics.
    """
    if mesh.is_empty():
        return mesh
    inside = np.all(np.isfinite(mesh.vertices) & (mesh.vertices >= low) & (mesh.vertices <= high), axis=1)
    if inside.all():
        return mesh
    return _select_faces(mesh, inside[mesh.faces].all(axis=1))


def _select_faces(mesh: Mesh, keep: np.ndarray) -> Mesh:
    """The sub-mesh of the faces where ``keep`` [F] is True, with unused vertices removed."""
    faces = mesh.faces[keep]
    used, local = np.unique(faces, return_inverse=True)
    colors = None if mesh.colors is None else mesh.colors[used]
    return Mesh(mesh.vertices[used], local.reshape(-1, 3), colors)


def fill_small_holes(mesh: Mesh, max_hole_size: float) -> Mesh:
    """Close boundary loops whose size is below ``max_hole_size`` (scene units; Open3D/VTK)."""
    if mesh.is_empty() or max_hole_size <= 0:
        return mesh
    import open3d as o3d

    filled = o3d.t.geometry.TriangleMesh.from_legacy(mesh.to_open3d()).fill_holes(hole_size=float(max_hole_size))
    result = Mesh(filled.vertex.positions.numpy(), filled.triangle.indices.numpy())
    if mesh.colors is not None:
        # VTK's filter keeps the original vertices first and in order; new ones are hole centres
        # or boundary copies: colour them from the nearest original vertex.
        from scipy.spatial import cKDTree

        nearest = cKDTree(mesh.vertices).query(result.vertices)[1]
        result.colors = mesh.colors[nearest]
    return result


def decimate(mesh: Mesh, face_budget: int) -> Mesh:
    """Quadric-error decimation to at most ``face_budget`` faces (no-op when already below)."""
    if face_budget <= 0:
        raise ValueError(f"face_budget must be > 0, got {face_budget}")
    if len(mesh) <= face_budget:
        return mesh
    simplified = mesh.to_open3d().simplify_quadric_decimation(target_number_of_triangles=int(face_budget))
    simplified.remove_degenerate_triangles()
    simplified.remove_unreferenced_vertices()
    return Mesh.from_open3d(simplified)


def clip_below(mesh: Mesh, floor_z: float, tolerance: float) -> Mesh:
    """Nothing below the floor: drop faces entirely under ``floor_z - tolerance``, clamp the rest to ``floor_z``.

    Clamping (rather than cutting) keeps the mesh closed where it meets the floor; the only
    vertices moved by more than ``tolerance`` belong to faces straddling the floor, whose part
    below it is never real surface (TSDF fringe under an unobserved floor).
    """
    if mesh.is_empty():
        return mesh
    below = mesh.vertices[:, 2] < floor_z - tolerance
    mesh = _select_faces(mesh, ~below[mesh.faces].all(axis=1))
    vertices = mesh.vertices.copy()
    vertices[:, 2] = np.maximum(vertices[:, 2], floor_z)
    return Mesh(vertices, mesh.faces, mesh.colors)


def smooth_taubin(mesh: Mesh, iterations: int = 10) -> Mesh:
    """Taubin (lambda/mu) smoothing: removes voxel staircase without shrinking the mesh."""
    if mesh.is_empty() or iterations <= 0:
        return mesh
    smoothed = Mesh.from_open3d(mesh.to_open3d().filter_smooth_taubin(number_of_iterations=int(iterations)))
    smoothed.colors = None if mesh.colors is None else mesh.colors.copy()
    return smoothed


def remove_degenerate(mesh: Mesh) -> Mesh:
    """Drop zero-area and duplicated faces and unreferenced vertices."""
    if mesh.is_empty():
        return mesh
    o3d_mesh = mesh.to_open3d()
    o3d_mesh.remove_degenerate_triangles()
    o3d_mesh.remove_duplicated_triangles()
    o3d_mesh.remove_unreferenced_vertices()
    return Mesh.from_open3d(o3d_mesh)


# ----------------------------------------------------------------------------- mass properties
@dataclass
class MassProperties:
    """Rigid-body properties of a solid of uniform density.

    Attributes:
        volume: m^3 (sum over parts).
        mass: kg.
        center_of_mass: [3] in the frame of the input meshes.
        inertia: [3, 3] about the centre of mass, axes of the input frame (kg m^2).
    """

    volume: float
    mass: float
    center_of_mass: np.ndarray
    inertia: np.ndarray


def mass_properties(parts: list[Mesh], mass: float) -> MassProperties:
    """Mass properties of the union of closed convex ``parts`` (overlaps counted twice) for total ``mass``.

    Each part's inertia about its own centroid is shifted to the common centre of mass with
    the parallel-axis theorem.
    """
    if not parts:
        raise ValueError("mass_properties needs at least one part")
    if mass <= 0:
        raise ValueError(f"mass must be > 0, got {mass}")
    solids = [part.to_trimesh() for part in parts]
    volumes = np.array([abs(solid.volume) for solid in solids])
    total_volume = float(volumes.sum())
    if total_volume <= 0:
        raise ValueError("the parts enclose no volume")
    density = mass / total_volume
    centroids = np.array([solid.center_mass for solid in solids])
    center = (volumes[:, None] * centroids).sum(0) / total_volume
    inertia = np.zeros((3, 3))
    for solid, volume, centroid in zip(solids, volumes, centroids):
        # trimesh reports the inertia for unit density about the part's own centroid.
        part_mass = density * volume
        own = np.asarray(solid.moment_inertia) * density * np.sign(solid.volume or 1.0)
        offset = centroid - center
        inertia += own + part_mass * (np.dot(offset, offset) * np.eye(3) - np.outer(offset, offset))
    return MassProperties(total_volume, float(mass), center, inertia)


# ----------------------------------------------------------------------------- refinement
def vertex_normals(mesh: Mesh) -> np.ndarray:  # [V, 3]
    """Area-weighted unit vertex normals (zero for isolated vertices)."""
    corners = mesh.vertices[mesh.faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length = 2 x area
    normals = np.zeros_like(mesh.vertices)
    for k in range(3):
        np.add.at(normals, mesh.faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 0, normals / np.maximum(length, 1e-300), 0.0)


def project_to_points(
    mesh: Mesh,
    points: np.ndarray,  # [P, 3] samples on the true surface (Gaussian centres)
    radius: float,
    max_shift: float,
    weights: np.ndarray | None = None,  # [P]
    neighbours: int = 24,
    tree=None,
) -> tuple[Mesh, np.ndarray]:
    """Move each vertex along its normal onto the local plane of nearby surface points (one MLS step).

    Each vertex goes to the plane through the weighted centroid of the points within ``radius``
    (Gaussian kernel, sigma = radius / 2, times ``weights``), keeping its own normal; the move is
    clipped to ``max_shift``. Fused splat depth sits in front of the surface by about the
    Gaussians' footprint times the tangent of the viewing angle; the Gaussian centres do not.
    ``tree`` may pass a prebuilt ``scipy.spatial.cKDTree`` of ``points`` (repeated calls).
    Returns (new mesh, signed shift per vertex [V]).
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    if mesh.is_empty() or len(points) == 0:
        return mesh, np.zeros(len(mesh.vertices))
    weights = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)
    normals = vertex_normals(mesh)
    count = min(neighbours, len(points))
    tree = cKDTree(points) if tree is None else tree
    distance, index = tree.query(mesh.vertices, k=count, distance_upper_bound=radius, workers=-1)
    distance, index = distance.reshape(len(mesh.vertices), count), index.reshape(len(mesh.vertices), count)
    found = np.isfinite(distance)
    safe_index = np.where(found, index, 0)
    kernel = np.where(found, np.exp(-0.5 * (distance / (0.5 * radius)) ** 2) * weights[safe_index], 0.0)
    total = kernel.sum(1)
    centroid = np.einsum("vk,vkc->vc", kernel, points[safe_index]) / np.maximum(total, 1e-300)[:, None]
    shift = np.einsum("vc,vc->v", normals, centroid - mesh.vertices)
    shift = np.where(total > 1e-6, np.clip(shift, -max_shift, max_shift), 0.0)
    refined = Mesh(mesh.vertices + shift[:, None] * normals, mesh.faces.copy(), None if mesh.colors is None else mesh.colors.copy())
    return refined, shift

"""Evidence for the up direction, the floor and the kind of capture, each with a confidence.

Sources, all in the source frame:

* the capture cameras (``camera_up``): hand-held and tripod cameras keep their image-right axis
  nearly horizontal, so up is the direction most perpendicular to every camera's right axis
  (signed by their mean image-up); when all cameras face one way that direction is undefined and
  the mean image-up, made perpendicular to the common right axis, is used instead;
* the file's frame and the habits of the tools that write such files (``frame_up``): OpenCV and
  COLMAP worlds (INRIA 3DGS, SuperSplat) put up along -Y, OpenGL and spz along +Y;
* geometry: a floor plane when one is well supported (``floor_support``), otherwise the resting
  faces of the convex hull (``resting_faces``: faces on which the object stands stably, the
  centre of mass projecting inside them, scored by the solid angle they subtend from it).

Pure numpy/scipy functions on arrays; no scene objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# Up direction of each source frame convention (SceneMetadata.frame), in that frame.
FRAME_UP = {
    "z-up": (0.0, 0.0, 1.0),
    "opencv-first-camera": (0.0, -1.0, 0.0),
    "opencv": (0.0, -1.0, 0.0),
    "opengl": (0.0, 1.0, 0.0),
    "spz-rub": (0.0, 1.0, 0.0),
}
# What most capture tools write when the file does not say: the OpenCV/COLMAP world (-Y up).
CAPTURE_HABIT_UP = (0.0, -1.0, 0.0)
# Confidence each kind of evidence carries on its own (combined as independent votes).
SOURCE_CONFIDENCE = {
    "user": 0.9,
    "cameras": 0.8,
    "floor": 0.7,
    "frame": 0.6,
    "resting_face": 0.4,
    "habit": 0.25,
}


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two vectors [3]."""
    cosine = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


@dataclass
class Candidate:
    """One up direction proposed by one source.

    Attributes:
        source: "user", "cameras", "frame", "habit", "floor" or "resting_face".
        up: unit up direction [3] in the source frame.
        confidence: how much this source is trusted on its own, in [0, 1].
        detail: what the source measured (JSON-serialisable).
    """

    source: str
    up: np.ndarray
    confidence: float
    detail: dict = field(default_factory=dict)

    def record(self, chosen: np.ndarray | None = None) -> dict:
        entry = {"source": self.source, "up_in_source": [round(float(v), 6) for v in self.up], "confidence": round(self.confidence, 3), **self.detail}
        if chosen is not None:
            entry["angle_to_chosen_deg"] = round(angle_deg(self.up, chosen), 3)
        return entry


def combined_confidence(candidates: list[Candidate], chosen: np.ndarray, agree_deg: float = 10.0) -> float:
    """1 - prod(1 - c) over the candidates within ``agree_deg`` of ``chosen`` (independent votes)."""
    doubt = 1.0
    for candidate in candidates:
        if angle_deg(candidate.up, chosen) <= agree_deg:
            doubt *= 1.0 - candidate.confidence
    return 1.0 - doubt


# ===================================================================== cameras
def camera_up(rotations: np.ndarray) -> Candidate | None:  # [C, 3, 3] camera-to-world (OpenCV)
    """Up from capture cameras: the direction most perpendicular to their right axes.

    The smallest eigenvector of sum(r r^T) over the right axes r is up when the cameras face
    several directions (eigenvalue gap large); otherwise (a forward-facing capture) the mean
    image-up made perpendicular to the mean right axis. The sign follows the mean image-up.
    Confidence grows with the number of cameras and how level they are.
    """
    rotations = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    if len(rotations) == 0:
        return None
    right, image_up = rotations[:, :, 0], -rotations[:, :, 1]
    mean_up = image_up.mean(0)
    if np.linalg.norm(mean_up) < 1e-6:
        return None
    values, vectors = np.linalg.eigh(right.T @ right / len(right))
    gap = float((values[1] - values[0]) / max(values[1], 1e-12))
    if len(rotations) >= 3 and gap > 0.5:
        up, method = vectors[:, 0], "perpendicular to the cameras' right axes"
    else:
        common_right = unit(right.mean(0))
        up, method = mean_up - (mean_up @ common_right) * common_right, "mean image-up (cameras face one way)"
    up = unit(up)
    if up @ mean_up < 0:
        up = -up
    tilt = np.degrees(np.arcsin(np.clip(np.abs(right @ up), 0.0, 1.0)))  # each camera's roll from level
    level = float(np.clip(1.0 - np.median(tilt) / 30.0, 0.0, 1.0))
    count_factor = min(1.0, len(rotations) / 8.0)
    confidence = SOURCE_CONFIDENCE["cameras"] * (0.5 + 0.5 * level * count_factor) + (0.15 if gap > 0.5 else 0.0)
    detail = {"method": method, "cameras": int(len(rotations)), "eigenvalue_gap": round(gap, 3),
              "median_roll_deg": round(float(np.median(tilt)), 3), "mean_image_up_angle_deg": round(angle_deg(up, mean_up), 3)}
    return Candidate("cameras", up, float(min(confidence, 0.95)), detail)


def cameras_surround(positions: np.ndarray, centre: np.ndarray, up: np.ndarray) -> float:
    """The largest azimuth gap (degrees) between cameras seen from ``centre`` about ``up``.

    An object scan has cameras all around (gaps well under 180 degrees); a forward-facing
    capture of a wall or a room corner leaves a gap of more than 180.
    """
    from lyra_sim.render.camera import horizontal_basis
    import torch

    first, second = (v.numpy() for v in horizontal_basis(torch.from_numpy(unit(up))))
    offsets = np.asarray(positions, dtype=np.float64) - centre
    azimuth = np.sort(np.degrees(np.arctan2(offsets @ second, offsets @ first)))
    if len(azimuth) < 2:
        return 360.0
    gaps = np.diff(np.concatenate([azimuth, azimuth[:1] + 360.0]))
    return float(gaps.max())


def cameras_inside(positions: np.ndarray, points: np.ndarray, up: np.ndarray) -> float:
    """Fraction of the cameras standing inside the footprint (2D convex hull about ``up``) of
    ``points``: a walk-through of a room, not a walk-around of an object."""
    from scipy.spatial import Delaunay, QhullError
    import torch

    from lyra_sim.render.camera import horizontal_basis

    first, second = (v.numpy() for v in horizontal_basis(torch.from_numpy(unit(up))))
    flat = np.stack([points @ first, points @ second], 1)
    try:
        hull = Delaunay(flat[np.random.default_rng(0).choice(len(flat), min(len(flat), 5000), replace=False)])
    except (QhullError, ValueError):
        return 0.0
    cameras = np.stack([positions @ first, positions @ second], 1)
    return float(np.mean(hull.find_simplex(cameras) >= 0))


# ===================================================================== frame
def frame_up(frame: str) -> Candidate:
    """The frame's own up when the reader knows the frame, else the capture tools' habit (-Y)."""
    if frame in FRAME_UP:
        return Candidate("frame", unit(FRAME_UP[frame]), SOURCE_CONFIDENCE["frame"], {"frame": frame})
    return Candidate("habit", unit(CAPTURE_HABIT_UP), SOURCE_CONFIDENCE["habit"],
                     {"frame": frame, "note": "frame unknown: OpenCV/COLMAP worlds (INRIA, SuperSplat) put up along -Y"})


# ===================================================================== floor
def floor_support(points: np.ndarray, normal: np.ndarray, offset: float, threshold: float) -> dict:  # points [N, 3]
    """How well the plane n . x = offset serves as a floor under ``points``.

    A floor carries a fair share of the points, has (almost) nothing below it and reaches
    beyond what stands on it: its footprint is clearly larger than the footprint of the rest
    (a tabletop's floor around the table), or as large and much wider than the rest is tall (a
    room's floor inside its walls). An object's flat bottom is smaller than the object's own
    footprint, a cube's as wide as it is tall. Returns the measures and ``supported``.
    """
    from scipy.spatial import ConvexHull, QhullError

    distance = points @ normal - offset
    inliers = np.abs(distance) <= threshold
    below = float(np.mean(distance < -3 * threshold))
    share = float(np.mean(inliers))
    heights = distance[distance > 3 * threshold]
    content_height = float(np.percentile(heights, 99)) if len(heights) >= 10 else 0.0
    from lyra_sim.render.camera import horizontal_basis
    import torch

    first, second = (v.numpy() for v in horizontal_basis(torch.from_numpy(unit(normal))))

    def footprint(mask: np.ndarray) -> float:  # area of the 2D convex hull of the points under ``mask``
        if mask.sum() < 10:
            return 0.0
        flat = np.stack([points[mask] @ first, points[mask] @ second], 1)
        try:
            return float(ConvexHull(flat).volume)  # a 2D hull's "volume" is its area
        except QhullError:
            return 0.0

    floor_area = footprint(inliers)
    content_area = footprint(distance > 3 * threshold)
    ratio = floor_area / max(content_area, 1e-12)
    width = math.sqrt(floor_area)
    # Beyond its content (a tabletop's floor), or a large share of everything and much wider
    # than the content is tall (a room's floor inside walls that were reconstructed farther out).
    reaches_beyond = ratio >= 1.3 or (ratio >= 0.4 and share >= 0.35 and width >= 1.5 * content_height)
    supported = share >= 0.05 and below <= 0.05 and reaches_beyond
    return {"supported": bool(supported), "share": round(share, 4), "below": round(below, 4), "width": width,
            "content_height": content_height, "footprint_ratio": round(ratio, 3), "reaches_beyond": bool(reaches_beyond)}


def compactness(points: np.ndarray) -> float:
    """Smallest over largest principal extent (5-95 percentile) of ``points``: 0 for a wall, ~1 for a blob."""
    centred = points - points.mean(0)
    _, _, axes = np.linalg.svd(centred[:: max(1, len(points) // 20000)], full_matrices=False)
    projected = centred @ axes.T
    spans = np.percentile(projected, 95, axis=0) - np.percentile(projected, 5, axis=0)
    return float(spans.min() / max(spans.max(), 1e-12))


# ===================================================================== resting faces
@dataclass
class RestingFace:
    """A face of the convex hull the object could stand on.

    Attributes:
        up: the up direction [3] if the object rests on this face (minus its outward normal).
        offset: n . x of the face plane (n outward), source units.
        area: face area (source units squared).
        solid_angle: fraction of the full sphere the face subtends from the centre of mass (how
            likely a tumbling object comes to rest on it).
        margin: distance from the centre of mass's projection to the face boundary over the
            centre of mass's height above the face (> 0: stable).
    """

    up: np.ndarray
    offset: float
    area: float
    solid_angle: float
    margin: float

    @property
    def stable(self) -> bool:
        return self.margin > 0.0

    def record(self) -> dict:
        return {"up_in_source": [round(float(v), 6) for v in self.up], "area": self.area, "solid_angle": round(self.solid_angle, 4),
                "margin": round(self.margin, 4)}


def _triangle_solid_angles(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:  # [T, 3] each (from the apex)
    """Solid angles of triangles seen from the origin (Van Oosterom and Strackee)."""
    la, lb, lc = (np.linalg.norm(v, axis=1) for v in (a, b, c))
    numerator = np.abs(np.einsum("ij,ij->i", a, np.cross(b, c)))
    denominator = la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", a, c) * lb + np.einsum("ij,ij->i", b, c) * la
    return 2.0 * np.arctan2(numerator, denominator)


def _point_in_polygon_margin(point: np.ndarray, polygon: np.ndarray) -> float:  # point [2], polygon [V, 2] convex, ccw
    """Signed distance from ``point`` to the boundary of a convex polygon (> 0 inside)."""
    edges = np.roll(polygon, -1, axis=0) - polygon
    normals = np.stack([edges[:, 1], -edges[:, 0]], 1)  # outward for a ccw polygon
    normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
    return float(-np.max(np.einsum("ij,ij->i", point[None] - polygon, normals)))


def resting_faces(points: np.ndarray, merge_deg: float = 4.0, max_points: int = 20000, seed: int = 0) -> tuple[list[RestingFace], np.ndarray, np.ndarray]:
    """Faces of the convex hull of ``points`` [N, 3] (coplanar facets merged), with stability measures.

    The centre of mass is the hull's volume centroid (a uniform solid). Returns (faces sorted by
    solid angle, largest first; the centre of mass [3]; the hull's vertices [V, 3]). Raises
    ValueError when the points span no volume.
    """
    from scipy.spatial import ConvexHull, QhullError

    points = np.asarray(points, dtype=np.float64)
    if len(points) > max_points:
        points = points[np.random.default_rng(seed).choice(len(points), max_points, replace=False)]
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError) as error:
        raise ValueError(f"the points span no volume: {error}") from None
    vertices = hull.points
    inner = vertices[hull.vertices].mean(0)
    triangles = vertices[hull.simplices]  # [T, 3, 3]
    tetra_volume = np.abs(np.einsum("ij,ij->i", triangles[:, 0] - inner, np.cross(triangles[:, 1] - inner, triangles[:, 2] - inner))) / 6.0
    centre = (tetra_volume[:, None] * (triangles.sum(1) + inner) / 4.0).sum(0) / max(tetra_volume.sum(), 1e-30)
    normals = hull.equations[:, :3]
    areas = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]), axis=1)
    angles = _triangle_solid_angles(triangles[:, 0] - centre, triangles[:, 1] - centre, triangles[:, 2] - centre)
    order = np.argsort(-areas)
    unassigned = np.ones(len(areas), dtype=bool)
    cos_merge = math.cos(math.radians(merge_deg))
    faces = []
    from lyra_sim.render.camera import horizontal_basis
    import torch

    for seed_facet in order:
        if not unassigned[seed_facet]:
            continue
        group = unassigned & (normals @ normals[seed_facet] >= cos_merge)
        unassigned &= ~group
        normal = unit((areas[group, None] * normals[group]).sum(0))
        face_vertices = triangles[group].reshape(-1, 3)
        offset = float(np.max(face_vertices @ normal))
        first, second = (v.numpy() for v in horizontal_basis(torch.from_numpy(normal)))
        flat = np.stack([face_vertices @ first, face_vertices @ second], 1)
        try:
            polygon_hull = ConvexHull(flat)
            polygon = flat[polygon_hull.vertices]  # counter-clockwise
        except QhullError:
            continue
        height = offset - float(centre @ normal)
        projected = np.array([centre @ first, centre @ second])
        margin = _point_in_polygon_margin(projected, polygon) / max(height, 1e-12)
        faces.append(RestingFace(-normal, offset, float(areas[group].sum()), float(angles[group].sum() / (4 * math.pi)), float(margin)))
    faces.sort(key=lambda face: -face.solid_angle)
    return faces, centre, vertices[hull.vertices]


def choose_resting_face(faces: list[RestingFace], prior: np.ndarray | None, min_solid_angle: float = 0.02) -> RestingFace | None:
    """The stable face nearest ``prior`` (the most likely one, by solid angle, without a prior)."""
    stable = [face for face in faces if face.stable and face.solid_angle >= min_solid_angle] or [face for face in faces if face.stable]
    if not stable:
        return None
    if prior is None:
        return max(stable, key=lambda face: face.solid_angle)
    return min(stable, key=lambda face: angle_deg(face.up, prior))


def settle(points: np.ndarray, centre: np.ndarray, up: np.ndarray, max_turn_deg: float = 25.0) -> np.ndarray:  # [N, 3], [3], [3] -> [3]
    """The up direction in which the object comes to rest when released near ``up``.

    Resting on the ground, the centre of mass sits as low as it can: at a local minimum over
    directions u of its height above the lowest point, h(u) = max_p (centre - p) . u. On a flat
    face that minimum is the face's normal; on a curved bottom (a duck, a bottle) it is where
    the vertical through the centre of mass meets the surface at right angles, which no single
    hull facet gives. Searched within ``max_turn_deg`` of ``up`` (Nelder-Mead on two tangent angles).
    """
    import torch
    from scipy.optimize import minimize

    from lyra_sim.render.camera import horizontal_basis

    up = unit(up)
    first, second = (v.numpy() for v in horizontal_basis(torch.from_numpy(up)))
    offsets = centre - np.asarray(points, dtype=np.float64)
    limit = math.radians(max_turn_deg)

    def direction(angles: np.ndarray) -> np.ndarray:
        tangent = angles[0] * first + angles[1] * second
        length = np.linalg.norm(tangent)
        if length < 1e-12:
            return up
        return math.cos(length) * up + math.sin(length) * tangent / length

    def height(angles: np.ndarray) -> float:
        penalty = max(0.0, float(np.linalg.norm(angles)) - limit)
        return float(np.max(offsets @ direction(angles))) + 10.0 * penalty

    scale = float(np.max(np.linalg.norm(offsets, axis=1)))
    result = minimize(height, np.zeros(2), method="Nelder-Mead",
                      options={"xatol": 1e-5, "fatol": 1e-7 * scale, "initial_simplex": np.array([[0, 0], [0.05, 0], [0, 0.05]])})
    return direction(result.x)

"""Seeded layouts of the scene kits: a tabletop and a room, assembled from pybullet_data assets.

``make_scene(kind, seed)`` is the entry point. The same seed always gives the same meshes,
textures and poses.
"""

from __future__ import annotations

import numpy as np

from lyra_sim.kits import assets
from lyra_sim.kits.scene_kit import KitObject, SceneKit
from lyra_sim.kits.textures import make_texture
from lyra_sim.rotations import yaw_quaternion_xyzw
from lyra_sim.typed import KitKind, check_choice

TABLE_TOP_SIZE = (1.5, 1.0, 0.05)  # table/table.urdf
TABLE_HEIGHT = 0.625  # z of the table's top surface (urdf: top centre at 0.6, 5 cm thick)
OBJECT_KINDS = ("cube", "blob", "duck")


def _movable_object(name: str, kind: str, rng: np.random.Generator, texture_seed: int, size: float):
    """A movable object mesh in its body frame (origin at the centre of mass) and its mass."""
    if kind == "cube":
        geometry = assets.scaled_box((size, size * rng.uniform(0.8, 1.2), size * rng.uniform(0.8, 1.2)))
        mesh = assets.textured_mesh(geometry, make_texture(texture_seed, rng.choice(["checker", "stripes", "tiles"]), 128))
    elif kind == "blob":
        geometry = assets.random_blob(int(rng.integers(assets.RANDOM_OBJECT_COUNT)), size)
        mesh = assets.textured_mesh(geometry, make_texture(texture_seed, rng.choice(["speckle", "marble", "stripes"]), 128))
    elif kind == "duck":
        mesh = assets.duck(size)
    else:
        raise ValueError(f"object kind {kind!r} is not valid; choose one of {', '.join(map(repr, OBJECT_KINDS))}")
    # Centre of mass of a uniform solid when the mesh is closed, else its bounding-box centre.
    centre = mesh.center_mass if mesh.is_volume else mesh.bounds.mean(0)
    mesh.apply_translation(-np.asarray(centre))
    volume = mesh.volume if mesh.is_volume else float(np.prod(mesh.extents))
    mass = float(np.clip(500.0 * abs(volume), 0.05, 2.0))  # ~ light wood / plastic density
    return KitObject(name=name, mesh=mesh, movable=True, mass=mass)


def _place_on_surface(objects: list[KitObject], rng, low_xy, high_xy, surface_z: float, min_gap: float = 0.03) -> None:
    """Give each object a random yaw and a non-overlapping position resting on ``surface_z``."""
    placed: list[tuple[np.ndarray, float]] = []
    for obj in objects:
        yaw = rng.uniform(0, 2 * np.pi)
        obj.orientation_xyzw = yaw_quaternion_xyzw(yaw)
        obj.position = np.zeros(3)
        rotated = obj.world_mesh()
        footprint = 0.5 * float(np.linalg.norm(rotated.extents[:2]))
        for _attempt in range(200):
            xy = rng.uniform(np.asarray(low_xy) + footprint, np.asarray(high_xy) - footprint)
            if all(np.linalg.norm(xy - other) > footprint + radius + min_gap for other, radius in placed):
                break
        else:
            raise ValueError(f"could not place {obj.name!r} without overlap: too many objects for the surface")
        placed.append((xy, footprint))
        obj.position = np.array([xy[0], xy[1], surface_z - rotated.bounds[0, 2] + 1e-4])


def tabletop(seed: int = 0, n_objects: int = 2, object_kinds: tuple[str, ...] = ("cube", "blob"), floor_size: float = 4.0) -> SceneKit:
    """A floor, the pybullet_data table, and ``n_objects`` movable objects on the table top.

    Object kinds cycle through ``object_kinds`` ("cube", "blob", "duck"); sizes 6-10 cm.
    """
    if n_objects < 0:
        raise ValueError(f"n_objects must be >= 0, got {n_objects}")
    rng = np.random.default_rng(seed)
    floor = assets.textured_mesh(assets.floor_plane(floor_size, floor_size), make_texture(seed * 101 + 1, rng.choice(["tiles", "wood", "speckle"]), 512))
    table_mesh = assets.textured_mesh(
        _merge(assets.table_parts(TABLE_TOP_SIZE, TABLE_HEIGHT)),
        make_texture(seed * 101 + 2, "wood", 512),
    )
    objects = [KitObject("floor", floor), KitObject("table", table_mesh)]
    movables = []
    for i in range(n_objects):
        kind = object_kinds[i % len(object_kinds)]
        movables.append(_movable_object(f"object_{i}", kind, rng, seed * 101 + 10 + i, float(rng.uniform(0.06, 0.1))))
    half = np.array(TABLE_TOP_SIZE[:2]) / 2
    # Keep objects in the central part of the table so a pushing task has room on every side.
    _place_on_surface(movables, rng, -0.6 * half, 0.6 * half, TABLE_HEIGHT)
    objects += movables
    return SceneKit(
        kind="tabletop", seed=seed, objects=objects,
        focus=np.array([0.0, 0.0, TABLE_HEIGHT]), view_radius=1.2,
        walk_bounds=(np.array([-floor_size / 2, -floor_size / 2]) * 0.9, np.array([floor_size / 2, floor_size / 2]) * 0.9),
    )


def room(seed: int = 0, n_objects: int = 3, size: tuple[float, float] = (6.0, 5.0), wall_height: float = 2.5) -> SceneKit:
    """A walled room: floor, four walls, the table, two crates against the walls and
    ``n_objects`` movable boxes (20-35 cm) on the free floor, for navigation and pushing."""
    rng = np.random.default_rng(seed)
    sx, sy = size
    hx, hy = sx / 2, sy / 2
    floor = assets.textured_mesh(assets.floor_plane(sx, sy), make_texture(seed * 101 + 1, rng.choice(["tiles", "wood"]), 512))
    walls = [
        assets.wall_quad((-hx, -hy), (hx, -hy), wall_height, (0, 1)),
        assets.wall_quad((hx, -hy), (hx, hy), wall_height, (-1, 0)),
        assets.wall_quad((hx, hy), (-hx, hy), wall_height, (0, -1)),
        assets.wall_quad((-hx, hy), (-hx, -hy), wall_height, (1, 0)),
    ]
    objects = [KitObject("floor", floor)]
    for i, wall in enumerate(walls):
        texture = make_texture(seed * 101 + 20 + i, rng.choice(["stripes", "marble", "speckle"]), 256)
        objects.append(KitObject(f"wall_{i}", assets.textured_mesh(wall, texture)))
    # The table stands in one half of the room, the crates against the opposite walls.
    table_x = float(rng.uniform(-0.35, -0.15) * sx)
    table = _merge(assets.table_parts(TABLE_TOP_SIZE, TABLE_HEIGHT))
    table.apply_translation([table_x, 0.0, 0.0])
    objects.append(KitObject("table", assets.textured_mesh(table, make_texture(seed * 101 + 2, "wood", 512))))
    for i, corner_sign in enumerate((1, -1)):
        crate_size = rng.uniform(0.4, 0.7, size=3)
        crate = assets.scaled_box(tuple(crate_size), (hx - crate_size[0] / 2 - 0.05, corner_sign * (hy - crate_size[1] / 2 - 0.05), crate_size[2] / 2))
        objects.append(KitObject(f"crate_{i}", assets.textured_mesh(crate, make_texture(seed * 101 + 30 + i, "tiles", 256))))
    movables = [_movable_object(f"object_{i}", "cube", rng, seed * 101 + 40 + i, float(rng.uniform(0.2, 0.35))) for i in range(n_objects)]
    # Free floor: right of the table, left of the crates.
    _place_on_surface(movables, rng, np.array([table_x + 1.0, -hy + 0.4]), np.array([hx - 1.0, hy - 0.4]), 0.0, min_gap=0.2)
    objects += movables
    return SceneKit(
        kind="room", seed=seed, objects=objects,
        focus=np.array([0.0, 0.0, 0.5]), view_radius=0.45 * min(sx, sy),
        walk_bounds=(np.array([-hx + 0.5, -hy + 0.5]), np.array([hx - 0.5, hy - 0.5])),
    )


def _merge(meshes: list):
    import trimesh

    return trimesh.util.concatenate(meshes)


def make_scene(kind: KitKind = "tabletop", seed: int = 0, **options) -> SceneKit:
    """A seeded ground-truth scene kit: "tabletop" (see :func:`tabletop`) or "room" (:func:`room`).

    ``options`` go to the builder (e.g. ``n_objects=1``).
    """
    check_choice(kind, KitKind, "kind")
    builder = {"tabletop": tabletop, "room": room}[kind]
    return builder(seed=seed, **options)

"""URDF text for a SimBundle: the static scenery and one dynamic body per movable object.

Paths are written relative to the URDF file (PyBullet resolves them from the URDF's folder), so
a bundle loads with plain PyBullet and no lyra_sim import. Static scenery uses
``concave="yes"`` (PyBullet's per-triangle collision, only valid for mass-0 bodies); objects use
an OBJ with one ``o`` group per convex part, which PyBullet turns into a compound of hulls.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

import numpy as np


def _vector(values) -> str:
    return " ".join(f"{float(v):.9g}" for v in values)


def static_scene_urdf(
    name: str,
    collision_mesh: str,
    visual_mesh: str | None,
    slab: tuple[np.ndarray, np.ndarray] | None = None,  # (centre [3], size [3])
) -> str:
    """A single mass-0 link with the concave collision mesh and, optionally, a ground slab box."""
    parts = [
        '<?xml version="1.0"?>',
        f"<robot name={quoteattr(name)}>",
        f"  <link name={quoteattr(name)}>",
        '    <inertial><origin xyz="0 0 0" rpy="0 0 0"/><mass value="0"/>'
        '<inertia ixx="0" ixy="0" ixz="0" iyy="0" iyz="0" izz="0"/></inertial>',
    ]
    if visual_mesh is not None:
        parts.append(f'    <visual><origin xyz="0 0 0" rpy="0 0 0"/><geometry><mesh filename={quoteattr(visual_mesh)} scale="1 1 1"/></geometry></visual>')
    parts.append(
        f'    <collision concave="yes"><origin xyz="0 0 0" rpy="0 0 0"/><geometry><mesh filename={quoteattr(collision_mesh)} scale="1 1 1"/></geometry></collision>'
    )
    if slab is not None:
        centre, size = slab
        parts.append(
            f'    <collision><origin xyz="{_vector(centre)}" rpy="0 0 0"/><geometry><box size="{_vector(size)}"/></geometry></collision>'
        )
    parts += ["  </link>", "</robot>", ""]
    return "\n".join(parts)


def object_urdf(
    name: str,
    collision_mesh: str,
    mass: float,
    inertia: np.ndarray,  # [3, 3] about the centre of mass, body axes
    visual_mesh: str | None = None,
) -> str:
    """A dynamic body whose link frame is its centre of mass (inertial origin identity).

    The full tensor is written (products of inertia included: 10% of the moments on our carved
    objects). PyBullet diagonalises it and then reports and resets the base pose in the
    principal-axes frame, not the link frame the object's splat is in: read poses with
    ``lyra_sim.sim.robot_splats.link_frame_poses`` and set them with
    ``lyra_sim.sim.world.reset_body_frame_pose``.
    """
    inertia = np.asarray(inertia, dtype=np.float64)
    if inertia.shape != (3, 3):
        raise ValueError(f"inertia must have shape [3, 3], got {list(inertia.shape)}")
    if not mass > 0:
        raise ValueError(f"object {name!r} needs a positive mass, got {mass}")
    visual_mesh = visual_mesh or collision_mesh
    return "\n".join(
        [
            '<?xml version="1.0"?>',
            f"<robot name={quoteattr(name)}>",
            f"  <link name={quoteattr(name)}>",
            "    <inertial>",
            '      <origin xyz="0 0 0" rpy="0 0 0"/>',
            f'      <mass value="{float(mass):.9g}"/>',
            f'      <inertia ixx="{inertia[0, 0]:.9g}" ixy="{inertia[0, 1]:.9g}" ixz="{inertia[0, 2]:.9g}" '
            f'iyy="{inertia[1, 1]:.9g}" iyz="{inertia[1, 2]:.9g}" izz="{inertia[2, 2]:.9g}"/>',
            "    </inertial>",
            f'    <visual><origin xyz="0 0 0" rpy="0 0 0"/><geometry><mesh filename={quoteattr(visual_mesh)} scale="1 1 1"/></geometry></visual>',
            f'    <collision><origin xyz="0 0 0" rpy="0 0 0"/><geometry><mesh filename={quoteattr(collision_mesh)} scale="1 1 1"/></geometry></collision>',
            "  </link>",
            "</robot>",
            "",
        ]
    )

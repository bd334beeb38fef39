"""A SimBundle in a PyBullet client: ``load_into_pybullet`` loads the static scenery and every
movable object at its initial pose and returns their body ids.

Only PyBullet, ``lyra_sim.bundle`` and ``lyra_sim.sim.trust`` are needed; the bundle's URDFs
are plain files that PyBullet would load the same way without lyra_sim.
"""

from __future__ import annotations

from lyra_sim.bundle import SimBundle, load_bundle
from lyra_sim.sim.trust import load_urdf


def load_into_pybullet(bundle: SimBundle | str, client_id: int) -> dict[str, int]:
    """Load ``bundle`` (a ``SimBundle`` or a folder) into the PyBullet client ``client_id``.

    Returns {"background": id, <object name>: id, ...}. The scenery is a fixed base; objects are
    dynamic bodies whose link frame is their centre of mass. Their URDFs carry full inertia
    tensors, which PyBullet diagonalises: its base pose (``getBasePositionAndOrientation``) is
    then turned to the principal axes. The body-frame pose the splat renderer needs is
    ``lyra_sim.sim.robot_splats.link_frame_poses``; set one with :func:`reset_body_frame_pose`.
    Every file a URDF names is checked to lie inside the bundle first (``lyra_sim.sim.trust``);
    a URDF PyBullet cannot load is a ``BundleError`` naming it.
    """
    import pybullet

    if not isinstance(bundle, SimBundle):
        bundle = load_bundle(bundle)
    body_ids: dict[str, int] = {"background": load_urdf(bundle.root, bundle.scene_urdf, client_id, useFixedBase=True)}
    for obj in bundle.objects:
        body_ids[obj.name] = load_urdf(
            bundle.root,
            obj.urdf,
            client_id,
            basePosition=obj.position.tolist(),
            baseOrientation=obj.orientation_xyzw.tolist(),
            # Keep the inertia tensor we computed from the hulls instead of PyBullet's box estimate.
            flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
        )
    return body_ids


def reset_body_frame_pose(client_id: int, body_id: int, position, orientation_xyzw) -> None:
    """Put a body's URDF base (link) frame at ``position``/``orientation_xyzw`` and stop it.

    ``resetBasePositionAndOrientation`` places the base's inertial frame (centre of mass,
    principal axes); this composes the pose with the base's local inertial frame first.
    """
    import pybullet

    inertial_position, inertial_orientation = pybullet.getDynamicsInfo(body_id, -1, physicsClientId=client_id)[3:5]
    com_position, com_orientation = pybullet.multiplyTransforms(list(position), list(orientation_xyzw), inertial_position, inertial_orientation)
    pybullet.resetBasePositionAndOrientation(body_id, com_position, com_orientation, physicsClientId=client_id)
    pybullet.resetBaseVelocity(body_id, [0, 0, 0], [0, 0, 0], physicsClientId=client_id)

"""A SimBundle in a PyBullet client: ``load_into_pybullet`` loads the static scenery and every
movable object at its initial pose and returns their body ids.

Only PyBullet, ``lyra_sim.sim.bundle`` and ``lyra_sim.sim.trust`` are needed; the bundle's URDFs
are plain files that PyBullet would load the same way without lyra_sim.
"""

from __future__ import annotations

from lyra_sim.sim.bundle import SimBundle, load_bundle
from lyra_sim.sim.trust import load_urdf


def load_into_pybullet(bundle: SimBundle | str, client_id: int) -> dict[str, int]:
    """Load ``bundle`` (a ``SimBundle`` or a folder) into the PyBullet client ``client_id``.

    Returns {"background": id, <object name>: id, ...}. The scenery is a fixed base; objects are
    dynamic bodies whose base frame is their centre of mass, so
    ``getBasePositionAndOrientation`` is the body-frame pose the splat renderer needs. Every
    file a URDF names is checked to lie inside the bundle first (``lyra_sim.sim.trust``); a URDF
    PyBullet cannot load is a ``BundleError`` naming it.
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

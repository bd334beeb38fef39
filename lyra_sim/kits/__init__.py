"""Ground-truth scene kits: seeded tabletop and room scenes built from pybullet_data assets.

``make_scene("tabletop", seed=0)`` returns a :class:`SceneKit` with the ground-truth mesh
(``.mesh()``), the objects (``.objects``: name, textured mesh, movable flag, mass, pose),
surface-sampled splats with per-Gaussian labels (``.to_gaussians(n)``), RGB-D photos from
PyBullet's TinyRenderer (``.render_photos(cameras)``), camera trajectories (``.cameras()``) and
the same bodies in a PyBullet client (``.load_into_pybullet(client)``).
"""

from lyra_sim.kits.layouts import make_scene, room, tabletop
from lyra_sim.kits.scene_kit import KitObject, SceneKit

__all__ = ["make_scene", "tabletop", "room", "SceneKit", "KitObject"]

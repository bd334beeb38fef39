"""A hand-written minimal SimBundle: a static ground cube as scenery and one 10 cm cube object,
with empty splats (N = 0 is valid), written from the manifest contract without a build.

It is the smallest bundle ``load_bundle`` and ``load_into_pybullet`` accept; tests and the fuzz
campaign (``benchmarks/fuzz_campaign.py``) start from it and damage it. Imports numpy and the
URDF writers, the scene writer lazily.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# A 10 cm cube centred at the origin, 8 vertices and 6 quads.
CUBE_OBJ = "\n".join(
    [f"v {x} {y} {z}" for x in (-0.05, 0.05) for y in (-0.05, 0.05) for z in (-0.05, 0.05)]
    + ["f 1 3 4 2", "f 5 6 8 7", "f 1 2 6 5", "f 3 7 8 4", "f 1 5 7 3", "f 2 4 8 6", ""]
)


def write_minimal_bundle(root: str | Path) -> Path:
    """Write the minimal bundle into the folder ``root`` (created); returns it."""
    from lyra_sim.converters.urdf import object_urdf, static_scene_urdf
    from lyra_sim.scene.gaussian_scene import GaussianScene
    from lyra_sim.scene.io import save_scene

    root = Path(root)
    for sub in ("splats", "meshes", "objects"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in ("background_collision", "background_visual", "cube_collision"):
        (root / "meshes" / f"{name}.obj").write_text(CUBE_OBJ)
    save_scene(GaussianScene.empty(), root / "splats" / "background.ply")
    save_scene(GaussianScene.empty(), root / "splats" / "cube.ply")
    (root / "scene.urdf").write_text(static_scene_urdf("scene", "meshes/background_collision.obj", "meshes/background_visual.obj"))
    (root / "objects" / "cube.urdf").write_text(object_urdf("cube", "../meshes/cube_collision.obj", 0.5, np.eye(3) * 1e-3))
    manifest = {
        "schema_version": 1, "kind": "scene", "units": "m", "up_axis": "+Z", "transform": np.eye(4).tolist(),
        "bounds": {"min": [-1.0, -1.0, 0.0], "max": [1.0, 1.0, 1.0]}, "floor_height": 0.0,
        "spawn_region": {"min": [-0.5, -0.5], "max": [0.5, 0.5], "z": 0.0},
        "background": {"splat": "splats/background.ply", "urdf": "scene.urdf", "collision_mesh": "meshes/background_collision.obj",
                       "visual_mesh": "meshes/background_visual.obj"},
        "objects": [{"name": "cube", "splat": "splats/cube.ply", "urdf": "objects/cube.urdf", "collision_mesh": "meshes/cube_collision.obj",
                     "mass": 0.5, "initial_pose": {"position": [0.0, 0.0, 0.05], "orientation_xyzw": [0.0, 0.0, 0.0, 1.0]},
                     "hulls": 1, "size": [0.1, 0.1, 0.1]}],
    }  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root

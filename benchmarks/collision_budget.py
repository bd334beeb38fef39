"""PyBullet step time against the face count of a static concave scenery mesh (the collision face budget).

The scenery is a 2 m x 2 m terrain (a regular grid, a few millimetres of bumps, like a fused
floor and table top) of F triangles loaded as PyBullet's static concave trimesh, as a bundle's
``scene.urdf`` loads it; ``--objects`` boxes and spheres rest on it in contact. After settling,
the mean wall time of one ``stepSimulation`` is measured for each face count. The default
``BuildConfig.collision_face_budget`` is chosen so that this stays under 1 ms.
Writes benchmarks/results/collision_budget.json.

    /work/wt/heavy python benchmarks/collision_budget.py
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from lyra_sim.io_utils import write_json


def terrain(faces: int, size: float = 2.0, bumps: float = 0.004, seed: int = 0):
    """A grid of about ``faces`` triangles over [-size/2, size/2]^2, heights with ``bumps`` m of noise."""
    from lyra_sim.geometry.mesh import Mesh

    cells = max(1, int(round(np.sqrt(faces / 2))))
    axis = np.linspace(-size / 2, size / 2, cells + 1)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    z = np.random.default_rng(seed).uniform(0.0, bumps, x.shape)
    vertices = np.stack([x.ravel(), y.ravel(), z.ravel()], 1)
    index = np.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    a, b, c, d = index[:-1, :-1].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel(), index[:-1, 1:].ravel()
    return Mesh(vertices, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]))


def step_ms(obj_path: Path, objects: int, steps: int, seed: int) -> float:
    import pybullet

    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
        shape = pybullet.createCollisionShape(pybullet.GEOM_MESH, fileName=str(obj_path), flags=pybullet.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=client)
        pybullet.createMultiBody(0, shape, physicsClientId=client)
        rng = np.random.default_rng(seed)
        for k in range(objects):
            if k % 2:
                body_shape = pybullet.createCollisionShape(pybullet.GEOM_SPHERE, radius=0.05, physicsClientId=client)
            else:
                body_shape = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[0.06, 0.04, 0.03], physicsClientId=client)
            position = [*rng.uniform(-0.6, 0.6, 2), 0.08]
            pybullet.createMultiBody(0.3, body_shape, basePosition=position, physicsClientId=client)
        for _ in range(240):  # settle into resting contact
            pybullet.stepSimulation(physicsClientId=client)
        started = time.perf_counter()
        for _ in range(steps):
            pybullet.stepSimulation(physicsClientId=client)
        return 1000.0 * (time.perf_counter() - started) / steps
    finally:
        pybullet.disconnect(client)


def main() -> None:
    from lyra_sim.geometry.mesh import write_obj

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/collision_budget.json")
    parser.add_argument("--faces", type=int, nargs="+", default=[2_000, 10_000, 30_000, 60_000, 100_000, 200_000, 400_000])
    parser.add_argument("--objects", type=int, default=6)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_before = list(os.getloadavg())
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for faces in args.faces:
            mesh = terrain(faces, seed=args.seed)
            path = write_obj(Path(folder) / f"terrain_{faces}.obj", [("terrain", mesh)])
            row = {"faces": len(mesh), "objects": args.objects, "step_ms": round(step_ms(path, args.objects, args.steps, args.seed), 4)}
            print(row, flush=True)
            rows.append(row)
    under = [row["faces"] for row in rows if row["step_ms"] < 1.0]
    result = {
        "benchmark": "collision_budget", "settings": vars(args), "rows": rows,
        "largest_face_count_under_1ms": max(under) if under else None,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg": list(os.getloadavg())},
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

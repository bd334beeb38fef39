"""Let a bundle's objects fall and settle in PyBullet or MuJoCo: ``rest_poses(bundle, engine)``.

The same bundle in two engines should put every object in the same place; this is how the
cross-engine tests and ``benchmarks/export.py`` measure it. PyBullet loads the bundle's URDFs;
MuJoCo loads the MJCF that ``lyra_sim.converters.export`` writes. Both run at their usual
rates (PyBullet 240 Hz, MuJoCo 500 Hz) with gravity -9.81 along Z.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from lyra_sim.errors import MissingDependencyError
from lyra_sim.bundle import SimBundle, load_bundle

PYBULLET_HZ = 240.0


def _pybullet(bundle: SimBundle, seconds: float, lift: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import pybullet

    from lyra_sim.sim.robot_splats import link_frame_poses
    from lyra_sim.sim.world import load_into_pybullet, reset_body_frame_pose

    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
        pybullet.setTimeStep(1.0 / PYBULLET_HZ, physicsClientId=client)
        ids = load_into_pybullet(bundle, client)
        for obj in bundle.objects:
            reset_body_frame_pose(client, ids[obj.name], (obj.position + [0.0, 0.0, lift]).tolist(), obj.orientation_xyzw.tolist())
        for _ in range(int(round(seconds * PYBULLET_HZ))):
            pybullet.stepSimulation(physicsClientId=client)
        poses = {}
        for obj in bundle.objects:  # the link (body) frame, not PyBullet's principal-axes base frame
            positions, orientations = link_frame_poses(client, ids[obj.name], [-1])
            poses[obj.name] = (positions[0], orientations[0])
        return poses
    finally:
        pybullet.disconnect(client)


def _mujoco(bundle: SimBundle, seconds: float, lift: float, mjcf: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        import mujoco
    except ImportError as error:
        raise MissingDependencyError(f"MuJoCo simulation needs the mujoco package ({error}); `pip install 'lyra-sim[mujoco]'`") from None
    with tempfile.TemporaryDirectory(prefix="lyra_mjcf_") as folder:
        if mjcf is None:
            from lyra_sim.converters.export import export

            mjcf = export(bundle, "mjcf", Path(folder) / "model.xml")
        model = mujoco.MjModel.from_xml_path(str(mjcf))
    data = mujoco.MjData(model)
    for obj in bundle.objects:
        data.qpos[model.joint(obj.name).qposadr[0] + 2] += lift
    for _ in range(int(round(seconds / model.opt.timestep))):
        mujoco.mj_step(model, data)
    poses = {}
    for obj in bundle.objects:
        w, x, y, z = data.body(obj.name).xquat
        poses[obj.name] = (data.body(obj.name).xpos.copy(), np.array([x, y, z, w]))
    return poses


def rest_poses(bundle, engine: Literal["pybullet", "mujoco"], seconds: float = 2.0, lift: float = 0.0, mjcf=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{object name: (position [3], orientation xyzw [4])} of the body frames after ``seconds``.

    Args:
        bundle: a SimBundle or bundle folder.
        engine: "pybullet" or "mujoco".
        seconds: simulated time.
        lift: every object starts this far (m) above its initial pose.
        mjcf: an MJCF already exported from ``bundle`` (MuJoCo only; default: export one).
    """
    if not isinstance(bundle, SimBundle):
        bundle = load_bundle(bundle)
    if engine == "pybullet":
        return _pybullet(bundle, seconds, lift)
    if engine == "mujoco":
        return _mujoco(bundle, seconds, lift, None if mjcf is None else Path(mjcf))
    raise ValueError(f"engine must be 'pybullet' or 'mujoco', got {engine!r}")

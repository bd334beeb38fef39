"""``lyra_sim.export``: MJCF that MuJoCo loads and simulates, OpenUSD stages with physics and
splats, URDF folders; full inertia tensors; PyBullet and MuJoCo agree on where objects rest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lyra_sim.converters.compose import ObjectPlacement, compose, write_object_bundle
from lyra_sim.converters.export import export, principal_axes
from lyra_sim.envs.constants import PACKAGED_BUNDLES_DIR
from lyra_sim.geometry.mesh import Mesh, read_obj
from lyra_sim.rotations import quat_wxyz_to_matrix
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.io import load_scene
from lyra_sim.bundle import load_bundle

mujoco = pytest.importorskip("mujoco", reason="needs mujoco (pip install 'lyra-sim[mujoco]')")

TABLETOP = PACKAGED_BUNDLES_DIR / "tabletop"


def _box(size, centre=(0.0, 0.0, 0.0)) -> Mesh:
    from lyra_sim.converters.compose import _box_mesh

    return _box_mesh(centre, np.eye(3), size)


def _box_inertia(mass: float, size) -> np.ndarray:
    a, b, c = size
    return mass / 12.0 * np.diag([b * b + c * c, a * a + c * c, a * a + b * b])


def _l_shape_bundle(folder: Path, name: str = "ell") -> tuple[Path, np.ndarray, float]:
    """An object bundle of two boxes in an L (off-diagonal inertia), with its analytic tensor."""
    density = 400.0
    parts = [((0.12, 0.04, 0.04), np.array([0.04, 0.0, 0.0])), ((0.04, 0.04, 0.10), np.array([-0.04, 0.0, 0.07]))]
    masses = [density * np.prod(size) for size, _ in parts]
    total = float(sum(masses))
    centre = sum(m * c for m, (_, c) in zip(masses, parts)) / total
    inertia = np.zeros((3, 3))
    for m, (size, c) in zip(masses, parts):
        d = c - centre
        inertia += _box_inertia(m, size) + m * (d @ d * np.eye(3) - np.outer(d, d))
    hulls = [_box(size, c) for size, c in parts]
    splat = GaussianScene.from_activated(
        np.concatenate([h.vertices for h in hulls]), np.full((16, 3), 0.6), np.full(16, 0.9), np.full((16, 3), 0.01)
    )
    return write_object_bundle(folder / name, name, splat, hulls, total), inertia, total


def test_full_inertia_reaches_mujoco(tmp_path):
    bundle, inertia, mass = _l_shape_bundle(tmp_path)
    assert abs(inertia[0, 2]) > 0.1 * inertia[0, 0]  # the test needs a real product of inertia
    manifest = json.loads((bundle / "manifest.json").read_text())
    np.testing.assert_allclose(manifest["build"]["object"]["inertia_full"], inertia, rtol=1e-6, atol=1e-12)
    xml = export(bundle, "mjcf", tmp_path / "ell.xml")
    model = mujoco.MjModel.from_xml_path(str(xml))
    body = model.body("ell")
    assert body.mass[0] == pytest.approx(mass, rel=1e-6)
    rotation = quat_wxyz_to_matrix(body.iquat)
    np.testing.assert_allclose(rotation @ np.diag(body.inertia) @ rotation.T, inertia, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(body.ipos, 0.0, atol=1e-6)  # the body frame is the centre of mass (OBJ rounding)
    # Resting upright on the ground slab of its own bundle (top at z = 0): the base is at z = 0.
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    start = data.body("ell").xpos.copy()
    for _ in range(500):
        mujoco.mj_step(model, data)
    assert np.isfinite(data.qpos).all()
    np.testing.assert_allclose(data.body("ell").xpos, start, atol=3e-3)  # it stays where its bundle says it rests


def _mjcf_text(model, name: str) -> str:
    index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_TEXT, name)
    assert index >= 0, f"no <text name={name!r}> in the model"
    start = model.text_adr[index]
    return bytes(model.text_data[start : start + model.text_size[index] - 1]).decode()


def test_mjcf_of_a_packaged_bundle_loads_and_simulates(tmp_path):
    bundle = load_bundle(TABLETOP)
    xml = export(bundle, "mjcf", tmp_path / "tabletop.xml")
    model = mujoco.MjModel.from_xml_path(str(xml))
    assert [model.body(i).name for i in range(1, model.nbody)] == [o.name for o in bundle.objects]
    assert model.njnt == len(bundle.objects) and all(model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE for j in range(model.njnt))
    for obj in bundle.objects:
        assert model.body(obj.name).mass[0] == pytest.approx(obj.mass, rel=1e-6)
        hulls = [g for g in range(model.ngeom) if model.geom_bodyid[g] == model.body(obj.name).id]
        assert len(hulls) == obj.hulls
        # The splat copied beside the XML and named in <custom>, with every Gaussian.
        splat = xml.parent / _mjcf_text(model, f"splat:{obj.name}")
        assert len(load_scene(splat)) == len(load_scene(obj.splat))
    data = mujoco.MjData(model)
    for _ in range(250):
        mujoco.mj_step(model, data)
    assert np.isfinite(data.qpos).all()
    for obj in bundle.objects:  # on the table, not through it
        assert data.body(obj.name).xpos[2] > 0.55


def _composed_on_table(tmp_path, lift: float = 0.02) -> tuple[Path, dict]:
    """The packaged tabletop with a cube and an L-shaped object dropped onto the table top."""
    from lyra_sim.converters.compose import kit_object_bundle
    from lyra_sim.kits.layouts import make_scene

    kit = make_scene("tabletop", seed=0)
    cube_bundle = kit_object_bundle(kit, "object_0", tmp_path / "cube")  # seed 0's first object is a 7 cm box
    ell_bundle, _, _ = _l_shape_bundle(tmp_path)
    out = compose(TABLETOP, [ObjectPlacement(cube_bundle, (-0.3, 0.2), name="cube"), ObjectPlacement(ell_bundle, (-0.35, -0.2), yaw=0.7)], tmp_path / "composed", preview=False)
    manifest = json.loads((out / "manifest.json").read_text())
    surfaces = {entry["name"]: entry["surface_z"] for entry in manifest["build"]["composition"]}
    return out, surfaces


def test_composed_objects_rest_on_the_table_in_both_engines(tmp_path):
    from lyra_sim.sim.settle import rest_poses

    out, surfaces = _composed_on_table(tmp_path)
    bundle = load_bundle(out)
    assert [o.name for o in bundle.objects][-2:] == ["cube", "ell"]
    # The table top of the packaged bundle (a reconstruction of the kit's table at 0.625 m).
    assert all(0.60 < z < 0.64 for z in surfaces.values())
    lift = 0.02
    pybullet_poses = rest_poses(bundle, "pybullet", seconds=2.0, lift=lift)
    mujoco_poses = rest_poses(bundle, "mujoco", seconds=2.0, lift=lift)
    for name in ("cube", "ell"):
        obj = bundle.object(name)
        resting = obj.position  # the composed pose: base on the surface found under the footprint
        for engine, poses in (("pybullet", pybullet_poses), ("mujoco", mujoco_poses)):
            position = poses[name][0]
            assert abs(position[2] - resting[2]) < 0.01, f"{name} in {engine}: z {position[2]:.4f}, expected {resting[2]:.4f}"
            assert np.linalg.norm(position[:2] - resting[:2]) < 0.02, f"{name} in {engine} slid to {position[:2]}"
        assert np.linalg.norm(pybullet_poses[name][0] - mujoco_poses[name][0]) < 0.01


def test_packaged_objects_rest_where_pybullet_puts_them(tmp_path):
    """The cross-engine check on the packaged bundle's own (reconstructed) objects, dropped 2 cm."""
    from lyra_sim.sim.settle import rest_poses

    bundle = load_bundle(TABLETOP)
    xml = export(bundle, "mjcf", tmp_path / "model.xml")
    pybullet_poses = rest_poses(bundle, "pybullet", seconds=2.0, lift=0.02)
    mujoco_poses = rest_poses(bundle, "mujoco", seconds=2.0, lift=0.02, mjcf=xml)
    for obj in bundle.objects:
        difference = np.linalg.norm(pybullet_poses[obj.name][0] - mujoco_poses[obj.name][0])
        assert difference < 0.01, f"{obj.name}: PyBullet {pybullet_poses[obj.name][0]}, MuJoCo {mujoco_poses[obj.name][0]}"


def test_usd_stage_has_physics_and_splats(tmp_path):
    pytest.importorskip("pxr", reason="needs usd-core (pip install 'lyra-sim[usd]')")
    from pxr import Usd, UsdGeom, UsdPhysics, UsdVol

    out, _ = _composed_on_table(tmp_path)
    bundle = load_bundle(out)
    path = export(bundle, "usd", tmp_path / "scene.usdc")
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert [p for p in stage.Traverse() if p.IsA(UsdPhysics.Scene)]
    scenery = stage.GetPrimAtPath("/World/scene/collision_mesh0")
    assert scenery.HasAPI(UsdPhysics.CollisionAPI) and not scenery.HasAPI(UsdPhysics.RigidBodyAPI)
    assert UsdPhysics.MeshCollisionAPI(scenery).GetApproximationAttr().Get() == "none"
    assert stage.GetPrimAtPath("/World/scene/box0").HasAPI(UsdPhysics.CollisionAPI)  # the ground slab

    def count(prim_path):
        return len(UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath(prim_path)).GetPositionsAttr().Get())

    assert count("/World/scene/splats") == len(load_scene(bundle.background_splat))
    for obj in bundle.objects:
        prim = stage.GetPrimAtPath(f"/World/{obj.name}")
        assert prim.HasAPI(UsdPhysics.RigidBodyAPI)
        mass = UsdPhysics.MassAPI(prim)
        assert mass.GetMassAttr().Get() == pytest.approx(obj.mass, rel=1e-6)
        hulls = [child for child in prim.GetChildren() if child.HasAPI(UsdPhysics.CollisionAPI)]
        assert len(hulls) == obj.hulls
        assert all(UsdPhysics.MeshCollisionAPI(h).GetApproximationAttr().Get() == "convexHull" for h in hulls)
        splat = UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath(f"/World/{obj.name}/splats"))
        source = load_scene(obj.splat)
        assert len(splat.GetPositionsAttr().Get()) == len(source)
        assert splat.GetRadianceSphericalHarmonicsDegreeAttr().Get() == source.sh_degree
        translation = np.asarray(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default()).ExtractTranslation())
        np.testing.assert_allclose(translation, obj.position, atol=1e-6)
    # The L-shaped object's full tensor survives as principal moments and axes.
    ell = UsdPhysics.MassAPI(stage.GetPrimAtPath("/World/ell"))
    axes = ell.GetPrincipalAxesAttr().Get()
    rotation = quat_wxyz_to_matrix([axes.GetReal(), *axes.GetImaginary()])
    full = json.loads((out / "manifest.json").read_text())
    from lyra_sim.geometry.mesh import mass_properties

    expected = mass_properties([m for _, m in read_obj(bundle.object("ell").collision_mesh)], bundle.object("ell").mass).inertia
    np.testing.assert_allclose(rotation @ np.diag(ell.GetDiagonalInertiaAttr().Get()) @ rotation.T, expected, rtol=1e-4, atol=1e-9)
    assert full["kind"] == "scene"


def test_urdf_export_loads_in_pybullet(tmp_path):
    import pybullet

    out = export(TABLETOP, "urdf", tmp_path / "urdf")
    world = json.loads((out / "world.json").read_text())
    client = pybullet.connect(pybullet.DIRECT)
    try:
        assert pybullet.loadURDF(str(out / world["scenery"]["urdf"]), useFixedBase=True, physicsClientId=client) >= 0
        for entry in world["objects"]:
            body = pybullet.loadURDF(str(out / entry["urdf"]), entry["position"], entry["orientation_xyzw"], flags=pybullet.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)
            assert body >= 0 and pybullet.getDynamicsInfo(body, -1, physicsClientId=client)[0] == pytest.approx(entry["mass"])
            assert np.asarray(entry["inertia_full"]).shape == (3, 3)
    finally:
        pybullet.disconnect(client)


@pytest.mark.parametrize("bundle", ["tabletop", "room"])
@pytest.mark.parametrize("format, name", [("urdf", "out_urdf"), ("mjcf", "model.xml"), ("usd", "stage.usda")])
def test_packaged_bundles_export_from_the_cli(tmp_path, bundle, format, name):
    result = subprocess.run([sys.executable, "-m", "lyra_sim.cli", "export", bundle, "--format", format, "-o", str(tmp_path / name)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / name).exists() and f"wrote {tmp_path / name}" in result.stdout
    if format == "mjcf":
        mujoco.MjModel.from_xml_path(str(tmp_path / name))


def test_export_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="format"):
        export(TABLETOP, "sdf", tmp_path / "x.sdf")
    with pytest.raises(ValueError, match=r"\.xml"):
        export(TABLETOP, "mjcf", tmp_path / "model.mjcf")
    with pytest.raises(ValueError, match="usda"):
        export(TABLETOP, "usd", tmp_path / "stage.txt")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_principal_axes_rebuild_the_tensor():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    tensor = a @ a.T + np.eye(3)
    moments, axes = principal_axes(tensor)
    assert np.linalg.det(axes) == pytest.approx(1.0)
    np.testing.assert_allclose(axes @ np.diag(moments) @ axes.T, tensor, atol=1e-12)

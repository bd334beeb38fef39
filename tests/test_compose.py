"""Object bundles and ``compose``: placement on surfaces, names, errors, the CLI and ``objects=`` on envs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lyra_sim.converters.compose import ObjectPlacement, compose, kit_object_bundle, surface_height
from lyra_sim.envs.constants import PACKAGED_BUNDLES_DIR
from lyra_sim.errors import BundleError
from lyra_sim.bundle import load_bundle

TABLETOP = PACKAGED_BUNDLES_DIR / "tabletop"


@pytest.fixture(scope="module")
def cube_bundle(tmp_path_factory):
    from lyra_sim.kits.layouts import make_scene

    kit = make_scene("tabletop", seed=0)
    return kit_object_bundle(kit, "object_0", tmp_path_factory.mktemp("objects") / "cube")


def test_object_bundle_follows_the_shared_format(cube_bundle):
    bundle = load_bundle(cube_bundle)
    manifest = bundle.manifest
    assert manifest.kind == "object" and manifest.schema_version == 1 and len(bundle.objects) == 1
    obj = bundle.objects[0]
    assert len(bundle.background_scene()) == 0  # an empty background splat is valid
    # Resting upright on the ground at the origin: the lowest hull point is on z = 0.
    from lyra_sim.geometry.mesh import read_obj

    lowest = min(mesh.vertices[:, 2].min() for _, mesh in read_obj(obj.collision_mesh)) + obj.position[2]
    assert abs(lowest) < 1e-6 and np.allclose(obj.position[:2], 0.0)
    # The splat is in the body frame: centred on the centre of mass, not on the kit's table.
    means = obj.scene().means.numpy()
    assert np.abs(means.mean(0)).max() < 0.01 and np.abs(means).max() < 0.1


def test_surface_height_of_analytic_triangles():
    triangles = np.array([[[0, 0, 1.0], [1, 0, 1.0], [0, 1, 1.0]], [[0, 0, 0.5], [2, 0, 0.5], [0, 2, 0.5]]])
    heights = surface_height(triangles, np.array([[0.2, 0.2], [1.2, 0.2], [3.0, 3.0]]))
    np.testing.assert_allclose(heights[:2], [1.0, 0.5])
    assert heights[2] == -np.inf


def test_compose_rests_objects_on_the_table_and_renames(tmp_path, cube_bundle):
    out = compose(TABLETOP, [ObjectPlacement(cube_bundle, (-0.3, 0.2)), ObjectPlacement(cube_bundle, (-0.3, -0.2, 0.7), yaw=0.5)], tmp_path / "out", preview=False)
    bundle = load_bundle(out)
    scene = load_bundle(TABLETOP)
    names = [o.name for o in bundle.objects]
    assert names[: len(scene.objects)] == [o.name for o in scene.objects]
    assert names[-2:] == ["object_0_2", "object_0_3"]  # the scene already has an object_0
    composition = bundle.manifest.build["composition"]
    assert 0.60 < composition[0]["surface_z"] < 0.64 and composition[1]["surface_z"] is None
    cube = load_bundle(cube_bundle).objects[0]
    np.testing.assert_allclose(bundle.object("object_0_2").position, [-0.3, 0.2, composition[0]["surface_z"] + cube.position[2]], atol=1e-9)
    np.testing.assert_allclose(bundle.object("object_0_3").position, [-0.3, -0.2, 0.7 + cube.position[2]], atol=1e-9)
    np.testing.assert_allclose(bundle.object("object_0_3").orientation_xyzw, [0, 0, np.sin(0.25), np.cos(0.25)], atol=1e-9)
    assert len(bundle.object("object_0_2").scene()) == len(cube.scene())
    assert bundle.manifest.bounds.min[0] <= -0.3 - 0.03
    assert (out / "objects" / "object_0_2.urdf").read_text().count("object_0_2_collision.obj") == 2


def test_compose_errors(tmp_path, cube_bundle):
    with pytest.raises(BundleError, match="object bundle"):
        compose(TABLETOP, [ObjectPlacement(TABLETOP, (0.0, 0.0))], tmp_path / "a", preview=False)
    with pytest.raises(BundleError, match="into a scene bundle"):
        compose(cube_bundle, [ObjectPlacement(cube_bundle, (0.0, 0.0))], tmp_path / "b", preview=False)
    with pytest.raises(BundleError, match="no collision surface"):
        compose(TABLETOP, [ObjectPlacement(cube_bundle, (40.0, 40.0))], tmp_path / "c", preview=False)
    first = load_bundle(TABLETOP).objects[0]
    with pytest.raises(BundleError, match="overlaps"):
        compose(TABLETOP, [ObjectPlacement(cube_bundle, tuple(first.position[:2]))], tmp_path / "d", preview=False)
    with pytest.raises(BundleError, match=r"\(x, y\) or \(x, y, z\)"):
        compose(TABLETOP, [ObjectPlacement(cube_bundle, (1.0,))], tmp_path / "e", preview=False)
    assert not any(p.name in "abcde" for p in tmp_path.iterdir())


def test_compose_cli(tmp_path, cube_bundle):
    out = tmp_path / "composed"
    command = [sys.executable, "-m", "lyra_sim.cli", "compose", "tabletop", str(cube_bundle), str(cube_bundle), "-o", str(out), "--at", "-0.3", "0.2", "-0.3", "-0.2", "--no-preview"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "placed object_0_2" in result.stdout and len(json.loads((out / "manifest.json").read_text())["objects"]) == 4
    bad = subprocess.run(command[:-6] + ["--at", "1", "2", "3"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "3 numbers (X Y Z) or 2 (X Y) per object bundle" in bad.stderr


def test_env_objects_argument(cube_bundle):
    import gymnasium

    import lyra_sim.envs  # noqa: F401 - registers the envs

    env = gymnasium.make("LyraSim/Push-v0", bundle="tabletop", objects=[(cube_bundle, (-0.3, 0.2))], width=16, height=16).unwrapped
    try:
        assert env.object_names[-1] == "object_0_2"
        observation, _ = env.reset(seed=0)
        position = np.asarray(__import__("pybullet").getBasePositionAndOrientation(env.object_ids[-1], physicsClientId=env.client_id)[0])
        assert abs(position[0] + 0.3) < 0.02 and 0.6 < position[2] < 0.7
        env.step(env.action_space.sample())
        assert observation["rgb"].shape == (16, 16, 3)
    finally:
        env.close()

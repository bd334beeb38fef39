"""Hostile bundles (issue 16): nothing outside the bundle folder is read, every malformed URDF or
path is a ``BundleError`` naming the file and the problem.

The bundle is ``lyra_sim.kits.minimal_bundle`` (written by hand from the manifest contract: a
ground cube as scenery, one cube object, empty splats; no build needed), damaged per test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lyra_sim.errors import BundleError
from lyra_sim.kits.minimal_bundle import CUBE_OBJ, write_minimal_bundle
from lyra_sim.bundle import load_bundle


@pytest.fixture
def bundle(tmp_path) -> Path:
    return write_minimal_bundle(tmp_path / "bundle")


@pytest.fixture
def client():
    pybullet = pytest.importorskip("pybullet")
    client_id = pybullet.connect(pybullet.DIRECT)
    yield client_id
    pybullet.disconnect(client_id)


def load(path: Path, client_id: int):
    from lyra_sim.sim.world import load_into_pybullet

    return load_into_pybullet(str(path), client_id)


def test_the_minimal_bundle_loads(bundle, client):
    import pybullet

    ids = load(bundle, client)
    assert set(ids) == {"background", "cube"}
    position, _ = pybullet.getBasePositionAndOrientation(ids["cube"], physicsClientId=client)
    assert abs(position[2] - 0.05) < 1e-9


def edit_urdf(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    "urdf, old, new, message",
    [
        ("scene.urdf", "meshes/background_collision.obj", "{outside}", "absolute"),
        ("scene.urdf", "meshes/background_collision.obj", "../outside.obj", "points outside the bundle"),
        ("objects/cube.urdf", "../meshes/cube_collision.obj", "../../outside.obj", "points outside the bundle"),
        ("objects/cube.urdf", "../meshes/cube_collision.obj", "../meshes/../../bundle/../outside.obj", "points outside the bundle"),
        ("scene.urdf", "meshes/background_visual.obj", "file:///etc/passwd", "is a URL"),
        ("scene.urdf", "meshes/background_visual.obj", "package://robot/mesh.obj", "is a URL"),
        ("scene.urdf", "meshes/background_visual.obj", "meshes/nothing.obj", "is missing"),
        ("scene.urdf", "<robot", "<!DOCTYPE r [<!ENTITY a 'b'>]><robot", "DOCTYPE or entities"),
        ("scene.urdf", "</robot>", "", "not valid XML"),
        ("objects/cube.urdf", "<robot", "<robot2", "not valid XML|root element"),
    ],
)
def test_urdf_paths_must_stay_inside_the_bundle(bundle, client, urdf, old, new, message):
    outside = bundle.parent / "outside.obj"
    outside.write_text(CUBE_OBJ)  # exists: PyBullet would happily load it
    edit_urdf(bundle / urdf, old, new.format(outside=outside))
    with pytest.raises(BundleError, match=message) as info:
        load(bundle, client)
    assert urdf.split("/")[-1] in str(info.value)


def test_a_relative_mesh_path_is_not_tried_against_the_working_directory(bundle, client, tmp_path, monkeypatch):
    # PyBullet tries a relative mesh path against the working directory first: a decoy there
    # with the same relative name must not be what gets loaded.
    decoy_root = tmp_path / "cwd"
    (decoy_root / "meshes").mkdir(parents=True)
    (decoy_root / "meshes" / "only_in_cwd.obj").write_text(CUBE_OBJ)
    monkeypatch.chdir(decoy_root)
    edit_urdf(bundle / "scene.urdf", "meshes/background_visual.obj", "meshes/only_in_cwd.obj")
    with pytest.raises(BundleError, match="scene.urdf: <mesh> filename 'meshes/only_in_cwd.obj' is missing"):
        load(bundle, client)


def test_symlinks_leaving_the_bundle_are_refused(bundle, client, tmp_path):
    outside = tmp_path / "secret.obj"
    outside.write_text(CUBE_OBJ)
    os.symlink(outside, bundle / "meshes" / "extra.obj")  # named by the URDF only
    edit_urdf(bundle / "scene.urdf", "meshes/background_visual.obj", "meshes/extra.obj")
    with pytest.raises(BundleError, match="scene.urdf: <mesh> filename 'meshes/extra.obj' points outside the bundle .*resolves to .*secret.obj"):
        load(bundle, client)
    (bundle / "meshes" / "background_visual.obj").unlink()  # and one the manifest names
    os.symlink(outside, bundle / "meshes" / "background_visual.obj")
    with pytest.raises(BundleError, match="manifest.json: background.visual_mesh 'meshes/background_visual.obj' points outside the bundle"):
        load(bundle, client)
    # A symlinked folder leaving the bundle, named by the manifest.
    shutil.rmtree(bundle / "splats")
    os.symlink(tmp_path, bundle / "splats")
    with pytest.raises(BundleError, match="background.splat 'splats/background.ply' points outside"):
        load_bundle(bundle)


def test_obj_material_libraries_and_textures_must_stay_inside(bundle, client, tmp_path):
    mesh = bundle / "meshes" / "background_visual.obj"
    mesh.write_text("mtllib ../../evil.mtl\n" + CUBE_OBJ)
    with pytest.raises(BundleError, match="background_visual.obj: mtllib '../../evil.mtl' points outside"):
        load(bundle, client)
    mesh.write_text("mtllib visual.mtl\n" + CUBE_OBJ)
    (bundle / "meshes" / "visual.mtl").write_text(f"newmtl a\nmap_Kd {tmp_path / 'texture.png'}\n")
    with pytest.raises(BundleError, match="visual.mtl: texture .* absolute"):
        load(bundle, client)
    (bundle / "meshes" / "visual.mtl").write_text("newmtl a\nmap_Kd missing_inside.png\n")  # harmless: PyBullet warns
    assert set(load(bundle, client)) == {"background", "cube"}


def test_an_unloadable_urdf_names_the_file(bundle, client):
    (bundle / "meshes" / "cube_collision.obj").write_text("this is not an obj\n")
    edit_urdf(bundle / "objects" / "cube.urdf", '<mass value="0.5"/>', '<mass value="0.5"/><bad/>')
    (bundle / "objects" / "cube.urdf").write_text((bundle / "objects" / "cube.urdf").read_text().replace("<link", "<joint name='j' type='fixed'><parent link='nowhere'/><child link='cube'/></joint><link", 1))
    with pytest.raises(BundleError, match=r"cube.urdf: PyBullet could not load the URDF"):
        load(bundle, client)


def test_a_bundle_left_aside_by_a_killed_replace_is_recovered_on_load(bundle):
    aside = bundle.with_name(f".{bundle.name}.old")
    os.replace(bundle, aside)  # what a kill between the two renames of the fallback leaves
    assert load_bundle(bundle).root == bundle
    assert bundle.is_dir() and not aside.exists()


def _damage(bundle: Path, change) -> None:
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _pose(m):
    return m["objects"][0]["initial_pose"]


MANIFEST_CASES = [
    (lambda m: m.update(floor_height=float("nan")), "floor_height must be finite, got nan"),
    (lambda m: m.update(floor_height="0"), "floor_height must be a number, got '0'"),
    (lambda m: m["bounds"].pop("min"), "bounds.min must be a list of 3 numbers, got None"),
    (lambda m: m["bounds"].update(min=[2.0, 0.0, 0.0]), "bounds is inverted"),
    (lambda m: m["bounds"].update(min=[0.0] * 1_000_000), "bounds.min must be a list of 3 numbers, got 1000000 values"),
    (lambda m: m["spawn_region"].update(min=[1.0, 1.0]), "spawn_region is inverted"),
    (lambda m: m["spawn_region"].update(z=float("inf")), "spawn_region.z must be finite"),
    (lambda m: _pose(m).update(position=[0.0, float("nan"), 0.0]), "initial_pose.position[1] must be finite"),
    (lambda m: _pose(m).update(orientation_xyzw=[0.0, 0.0, 0.0, 0.0]), "must be a unit quaternion, its norm is 0"),
    (lambda m: _pose(m).update(orientation_xyzw=[float("nan")] * 4), "orientation_xyzw[0] must be finite"),
    (lambda m: _pose(m).update(orientation_xyzw=[0.0, 0.0, 0.0, 2.0]), "its norm is 2"),
    (lambda m: m["objects"][0].update(mass=float("inf")), "objects[0].mass (kg) must be finite"),
    (lambda m: m["objects"][0].update(mass=-1), "objects[0].mass (kg) must be > 0"),
    (lambda m: m["objects"][0].update(hulls="3"), "objects[0].hulls must be a count"),
    (lambda m: m.update(transform=[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]), "positive scale"),
    (lambda m: m.update(transform=[[1.0]]), "transform must be a 4 x 4 list"),
    (lambda m: m.update(objects={"cube": 1}), "objects must be a list"),
    (lambda m: m.update(objects=[1]), "objects[0] must be an object"),
    (lambda m: m.update(schema_version=True), "schema_version True is not supported"),
    (lambda m: m.update(kind="robot"), "kind 'robot' is not one of"),
    (lambda m: m["objects"].append(dict(m["objects"][0])), "object name 'cube' appears twice"),
    (lambda m: m.update(background="scene.urdf"), "background must be an object"),
]


@pytest.mark.parametrize("change, message", MANIFEST_CASES, ids=[c[1][:40] for c in MANIFEST_CASES])
def test_malformed_manifests_are_one_bundle_error_each(bundle, change, message):
    _damage(bundle, change)
    with pytest.raises(BundleError, match=__import__("re").escape(message)) as info:
        load_bundle(bundle)
    assert str(info.value).startswith(str(bundle / "manifest.json")) and len(str(info.value)) < 2000


def test_every_problem_is_reported_at_once(bundle):
    _damage(bundle, lambda m: (m.update(floor_height=None), m["bounds"].update(max=[-5.0, -5.0, -5.0]), m["objects"][0].update(mass=0)))
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    text = str(info.value)
    assert "floor_height must be a number" in text and "bounds is inverted" in text and "mass (kg) must be > 0" in text


def test_deep_and_huge_manifests(bundle):
    (bundle / "manifest.json").write_text('{"bounds": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(BundleError, match="nested too deeply"):
        load_bundle(bundle)
    (bundle / "manifest.json").write_text("[]")
    with pytest.raises(BundleError, match="top level must be a JSON object, got list"):
        load_bundle(bundle)

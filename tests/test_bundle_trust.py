"""Hostile bundles (issue 16): nothing outside the bundle folder is read, every malformed URDF or
path is a ``BundleError`` naming the file and the problem.

The bundle here is written by hand from the manifest contract (DESIGN.md): a ground box as
scenery, one cube object, empty splats; no build needed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lyra_sim.converters.urdf import object_urdf, static_scene_urdf
from lyra_sim.errors import BundleError
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.io import save_scene
from lyra_sim.sim.bundle import load_bundle

CUBE_OBJ = "\n".join(
    [f"v {x} {y} {z}" for x in (-0.05, 0.05) for y in (-0.05, 0.05) for z in (-0.05, 0.05)]
    + ["f 1 3 4 2", "f 5 6 8 7", "f 1 2 6 5", "f 3 7 8 4", "f 1 5 7 3", "f 2 4 8 6", ""]
)


def write_minimal_bundle(root: Path) -> Path:
    for sub in ("splats", "meshes", "objects"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in ("background_collision", "background_visual", "cube_collision"):
        (root / "meshes" / f"{name}.obj").write_text(CUBE_OBJ)
    save_scene(GaussianScene.empty(), root / "splats" / "background.ply")
    save_scene(GaussianScene.empty(), root / "splats" / "cube.ply")
    (root / "scene.urdf").write_text(static_scene_urdf("scene", "meshes/background_collision.obj", "meshes/background_visual.obj"))
    import numpy as np

    (root / "objects" / "cube.urdf").write_text(object_urdf("cube", "../meshes/cube_collision.obj", 0.5, np.eye(3) * 1e-3))
    manifest = {
        "schema_version": 1, "kind": "scene", "units": "m", "up_axis": "+Z", "transform": np.eye(4).tolist(),
        "bounds": {"min": [-1.0, -1.0, 0.0], "max": [1.0, 1.0, 1.0]}, "floor_height": 0.0,
        "spawn_region": {"min": [-0.5, -0.5], "max": [0.5, 0.5], "z": 0.0},
        "background": {"splat": "splats/background.ply", "urdf": "scene.urdf", "collision_mesh": "meshes/background_collision.obj", "visual_mesh": "meshes/background_visual.obj"},
        "objects": [{"name": "cube", "splat": "splats/cube.ply", "urdf": "objects/cube.urdf", "collision_mesh": "meshes/cube_collision.obj", "mass": 0.5,
                     "initial_pose": {"position": [0.0, 0.0, 0.05], "orientation_xyzw": [0.0, 0.0, 0.0, 1.0]}, "hulls": 1, "size": [0.1, 0.1, 0.1]}],
    }  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


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

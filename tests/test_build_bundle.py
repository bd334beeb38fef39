"""End to end: an analytic scene (floor, two boxes, a ball), disguised by a random similarity,
becomes a SimBundle; checked against the truth: up, scale, collision F-score at 1 cm, a PyBullet
drop test, the manifest contract, plain-PyBullet loading, the loader's validation and the CLI.

One small bundle is built once per module (64 px depth maps, 1 cm voxels, 8k Gaussians).
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lyra_sim.converters.bundle import build_bundle
from lyra_sim.converters.config import BuildConfig
from lyra_sim.errors import BundleError
from lyra_sim.geometry.analytic import tabletop_scene
from lyra_sim.geometry.mesh import read_obj
from lyra_sim.geometry.metrics import compare_point_sets, sample_surface
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.transforms import transform_scene
from lyra_sim.bundle import load_bundle, summarize_bundle

BOXES = ((-0.2, -0.15, 0.0, 0.2, 0.2, 0.15), (0.2, 0.15, 0.0, 0.15, 0.2, 0.3))
BALL = (0.2, -0.2, 0.08)


def small_config(**changes) -> BuildConfig:
    """The reduced build used by tests: coarse but still within 1 cm on this scene."""
    settings = dict(
        render_backend="cpu",
        image_size=64,
        voxel_size=0.01,
        views_per_ring=6,
        orbit_elevations_deg=(20.0, 45.0, 70.0),
        object_resolution=32,
        preview_size=64,
        slab_margin=0.5,
    )
    settings.update(changes)
    return BuildConfig(**settings)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    analytic = tabletop_scene(8000, floor_size=1.0, boxes=BOXES, sphere=BALL, seed=0)
    rotation = Rotation.random(random_state=11).as_matrix()
    scale, translation = 2.5, np.array([1.0, -2.0, 0.5])
    source = transform_scene(analytic.scene, rotation, translation, scale)
    source.metadata.frame, source.metadata.metric = "unknown", False
    config = small_config(known_height=0.3)
    path = build_bundle(source, tmp_path_factory.mktemp("bundles") / "tabletop", config, object_masks={"ball": analytic.mask("sphere")}, progress=False)
    manifest = json.loads((path / "manifest.json").read_text())
    # truth world -> bundle world: the manifest transform after the disguise.
    to_bundle = np.asarray(manifest["transform"]) @ np.block([[scale * rotation, translation[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])
    return {"path": path, "manifest": manifest, "analytic": analytic, "to_bundle": to_bundle, "source": source}


def _to_bundle(built, points):
    matrix = built["to_bundle"]
    return np.asarray(points) @ matrix[:3, :3].T + matrix[:3, 3]


def test_layout_and_manifest_follow_the_contract(built):
    path, manifest = built["path"], built["manifest"]
    for relative in ("manifest.json", "scene.urdf", "splats/background.ply", "splats/ball.ply", "meshes/background_collision.obj",
                     "meshes/background_visual.obj", "meshes/ball_collision.obj", "objects/ball.urdf", "preview.png"):
        assert (path / relative).is_file(), relative
    assert manifest["schema_version"] == 1 and manifest["units"] == "m" and manifest["up_axis"] == "+Z"
    assert manifest["floor_height"] == 0.0
    assert set(manifest["source"]) == {"path", "sha256", "format", "frame", "cameras"} and manifest["source"]["frame"] == "unknown"
    assert manifest["kind"] == "scene" and manifest["source"]["cameras"] is None
    assert np.asarray(manifest["transform"]).shape == (4, 4)
    assert manifest["background"] == {
        "splat": "splats/background.ply", "urdf": "scene.urdf",
        "collision_mesh": "meshes/background_collision.obj", "visual_mesh": "meshes/background_visual.obj",
    }
    (ball,) = manifest["objects"]
    assert set(ball) == {"name", "splat", "urdf", "collision_mesh", "mass", "initial_pose", "hulls", "size"}
    assert ball["name"] == "ball" and ball["hulls"] >= 1 and ball["mass"] > 0
    assert set(manifest["spawn_region"]) == {"min", "max", "z"}
    assert "stage_seconds" in manifest["build"] and manifest["preview"] == "preview.png"
    # No stray temporary folders next to the bundle.
    assert sorted(p.name for p in path.parent.iterdir()) == ["tabletop"]


def test_up_and_scale_are_recovered(built):
    linear = built["to_bundle"][:3, :3]
    up = linear @ np.array([0.0, 0.0, 1.0])
    assert np.degrees(np.arccos(up[2] / np.linalg.norm(up))) < 1.0
    assert np.linalg.norm(up) == pytest.approx(1.0, rel=0.01)
    assert abs(built["to_bundle"][2, 3]) < 0.005  # the floor (z = 0 in the truth) lands on z = 0


def test_collision_mesh_fscore_at_1cm(built):
    (_, mesh), = read_obj(built["path"] / "meshes" / "background_collision.obj")
    truth = _to_bundle(built, built["analytic"].visible_truth(100_000, exclude=("sphere",)))
    predicted, _ = sample_surface(mesh.vertices, mesh.faces, 100_000)
    accuracy = compare_point_sets(predicted, truth, threshold=0.01)
    assert accuracy.fscore >= 0.95, accuracy
    assert mesh.vertices[:, 2].min() >= 0.0  # nothing below the floor


def test_plain_pybullet_loads_the_scene_without_lyra_sim(built):
    script = (
        "import sys, pybullet as p\n"
        "c = p.connect(p.DIRECT)\n"
        "scene = p.loadURDF('scene.urdf', useFixedBase=True)\n"
        "ball = p.loadURDF('objects/ball.urdf', basePosition=[0, 0, 1])\n"
        "shapes = p.getCollisionShapeData(scene, -1)\n"
        "assert scene >= 0 and ball >= 0 and len(shapes) == 2, shapes\n"
        "assert 'lyra_sim' not in sys.modules\n"
        "print('ok', p.getNumBodies())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=built["path"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["ok", "2"]


def test_drop_test_spheres_rest_on_the_floor_and_the_box_tops(built):
    import pybullet as p

    from lyra_sim.sim.world import load_into_pybullet

    analytic = built["analytic"]
    client = p.connect(p.DIRECT)
    try:
        p.setGravity(0, 0, -9.81, physicsClientId=client)
        ids = load_into_pybullet(load_bundle(built["path"]), client)
        radius = 0.02
        sphere_shape = p.createCollisionShape(p.GEOM_SPHERE, radius=radius, physicsClientId=client)
        targets = []  # (body, expected rest height of the centre)
        floor_points = [(-0.35, 0.3), (0.0, -0.4), (-0.4, -0.4), (0.35, 0.4)]
        for x, y in floor_points:
            targets.append((np.array([x, y, 0.0]), 0.0))
        for part in analytic.parts:
            if part.kind == "box":
                targets.append((part.center.copy(), part.top))
        drops = []
        for point, surface in targets:
            start = _to_bundle(built, point[None])[0]
            start[2] = surface + 0.15
            body = p.createMultiBody(0.05, sphere_shape, basePosition=start.tolist(), physicsClientId=client)
            drops.append((body, surface))
        ball_start = np.array(p.getBasePositionAndOrientation(ids["ball"], physicsClientId=client)[0])
        for _ in range(480):
            p.stepSimulation(physicsClientId=client)
        for body, surface in drops:
            z = p.getBasePositionAndOrientation(body, physicsClientId=client)[0][2]
            assert abs((z - radius) - surface) < 0.01, (surface, z)
        ball_end = np.array(p.getBasePositionAndOrientation(ids["ball"], physicsClientId=client)[0])
        # It stays where it stood: it does not sink or fall through; its faceted hull may roll
        # onto a face (a few millimetres sideways).
        assert abs(ball_end[2] - ball_start[2]) < 0.005
        assert np.linalg.norm(ball_end[:2] - ball_start[:2]) < 0.02
        true_centre = _to_bundle(built, np.array([[BALL[0], BALL[1], BALL[2]]]))[0]
        assert np.linalg.norm(ball_start - true_centre) < 0.01
    finally:
        p.disconnect(client)


def test_object_splat_is_in_its_body_frame(built):
    bundle = load_bundle(built["path"])
    ball = bundle.object("ball")
    body = ball.scene()
    assert np.allclose(body.means.numpy().mean(0), 0.0, atol=0.01)  # origin = centre of mass = ball centre
    world = body.means.numpy() + ball.position
    true_centre = _to_bundle(built, np.array([[BALL[0], BALL[1], BALL[2]]]))[0]
    assert np.allclose(np.linalg.norm(world - true_centre, axis=1), BALL[2], atol=0.005)
    assert ball.mass == pytest.approx(500.0 * 4 / 3 * np.pi * BALL[2] ** 3, rel=0.25)
    background = bundle.background_scene()
    assert len(background) + len(body) == built["manifest"]["build"]["gaussians"]["world"]


def test_info_command_summarises_the_bundle(built, capsys):
    from lyra_sim.cli import main

    assert main(["info", str(built["path"]), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "simbundle" and summary["objects"][0]["name"] == "ball"
    assert summary == json.loads(json.dumps(summarize_bundle(built["path"])))
    assert main(["info", str(built["path"])]) == 0
    text = capsys.readouterr().out
    assert "SimBundle" in text and "ball" in text


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m: m.pop("objects"), "missing keys"),
        (lambda m: m.update(schema_version=99), "schema_version 99"),
        (lambda m: m["background"].update(splat="../outside.ply"), "outside the bundle"),
        (lambda m: m["background"].update(collision_mesh="/etc/passwd"), "absolute"),
        (lambda m: m["objects"][0].update(mass=0), "mass"),
    ],
)
def test_loader_rejects_damaged_bundles(built, tmp_path, damage, message):
    copy = tmp_path / "copy"
    shutil.copytree(built["path"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    damage(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)


def test_loader_names_missing_files(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built["path"], copy)
    (copy / "meshes" / "ball_collision.obj").unlink()
    with pytest.raises(BundleError, match="ball_collision.obj"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path)


def test_empty_scene_and_bad_masks_leave_no_folder(tmp_path):
    with pytest.raises(BundleError, match="no Gaussians"):
        build_bundle(GaussianScene.empty(), tmp_path / "empty", small_config(), progress=False)
    scene = tabletop_scene(500, boxes=(), sphere=None).scene
    with pytest.raises(BundleError, match="shape"):
        build_bundle(scene, tmp_path / "masks", small_config(), object_masks={"thing": np.ones(3, dtype=bool)}, progress=False)
    with pytest.raises(BundleError, match="not allowed"):
        build_bundle(scene, tmp_path / "masks", small_config(), object_masks={"../evil": np.ones(len(scene), dtype=bool)}, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_build_command_reports_a_corrupted_file_and_writes_nothing(tmp_path, capsys):
    from lyra_sim.cli import main

    corrupted = tmp_path / "broken.ply"
    corrupted.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\nend_header\n\x00\x01")
    out = tmp_path / "bundle"
    assert main(["build", str(corrupted), "-o", str(out), "--no-progress"]) == 1
    assert "broken.ply" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken.ply"]


def test_build_config_rejects_bad_values():
    with pytest.raises(ValueError, match="convex_method"):
        BuildConfig(convex_method="magic")
    with pytest.raises(ValueError, match="crop"):
        BuildConfig(crop=(0, 0, 0, -1, 1, 1))
    with pytest.raises(ValueError, match="known_height_object needs known_height"):
        BuildConfig(known_height_object="x")
    with pytest.raises(ValueError, match="scale"):
        BuildConfig(scale=-1.0)

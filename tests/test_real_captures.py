"""Real-looking captures become upright, metric, clean bundles.

Fixtures are reconstructions by our trainer (random initialisation, so real floaters; no depth)
of a kit tabletop and of a single kit object without a floor, photographed by hand-held cameras
(random roll), then written in the conventions capture tools use (OpenCV -Y up with frame
"unknown", OpenGL +Y up, +Z up, an arbitrary rotation) with and without their cameras.
"""

import json

import numpy as np
import pytest
import torch

from lyra_sim.converters.bundle import build_bundle
from lyra_sim.converters.config import BuildConfig
from lyra_sim.converters.evidence import angle_deg
from lyra_sim.converters.normalise import normalise_scene
from lyra_sim.errors import BundleError
from lyra_sim.kits import make_scene
from lyra_sim.kits.captures import disguise, object_kit, reconstruct_capture
from lyra_sim.scene.io import load_scene, save_scene

SMALL = dict(views=20, size=32, iterations=400, gaussians=4000)


@pytest.fixture(scope="module")
def tabletop():
    return reconstruct_capture(make_scene("tabletop", seed=2, n_objects=2), seed=2, **SMALL)


@pytest.fixture(scope="module")
def duck():
    return reconstruct_capture(object_kit("duck", seed=4), seed=4, **SMALL)


def _up_error(result, truth) -> float:
    return angle_deg(np.asarray(result.steps["up_and_floor"]["up_in_source"]), np.asarray(truth["up"]))


CASES = [("opencv", True), ("opengl", True), ("z-up", True), ("arbitrary", True), ("opencv", False), ("opengl", False), ("z-up", False)]


@pytest.mark.parametrize("capture_name", ["tabletop", "duck"])
def test_up_within_5_degrees_in_every_convention(capture_name, request):
    """Within 5 degrees with cameras in every case; without cameras within 5 degrees for a scene
    (its floor) and within 10 for an object scan, whose underside no photo saw (the benchmark's
    targets: p95 <= 5 degrees with cameras, <= 10 without)."""
    capture = request.getfixturevalue(capture_name)
    errors = {True: [], False: []}
    for seed, (convention, cameras) in enumerate(CASES):
        scene, truth = disguise(capture.scene, convention, seed, cameras=cameras)
        result = normalise_scene(scene, BuildConfig(render_backend="cpu"))
        errors[cameras].append(_up_error(result, truth))
        assert result.kind == ("scene" if capture_name == "tabletop" else "object"), (convention, cameras, result.steps["up_and_floor"]["kind_reason"])
        sources = {c["source"] for c in result.steps["up_and_floor"]["candidates"]}
        assert ("cameras" in sources) == cameras
    assert max(errors[True]) <= 5.0, errors
    assert max(errors[False]) <= (5.0 if capture_name == "tabletop" else 10.0), errors


def test_scale_from_metric_cameras_and_loud_warnings_otherwise(tabletop, tmp_path):
    scene, truth = disguise(tabletop.scene, "arbitrary", 11, metric_cameras=True)
    path = save_scene(scene, tmp_path / "capture.ply")  # the sidecar carries the units
    result = normalise_scene(load_scene(path), BuildConfig(render_backend="cpu"))
    assert result.steps["scale"]["kind"] == "metric"
    assert result.scale == pytest.approx(truth["metres_per_unit"], rel=0.05)
    assert not any("units" in warning for warning in result.warnings)
    # Foreign cameras (no units): the camera-height prior, flagged as approximate.
    foreign, _ = disguise(tabletop.scene, "opencv", 12)
    result = normalise_scene(foreign, BuildConfig(render_backend="cpu"))
    assert result.steps["scale"]["kind"] == "prior" and any("approximate" in w for w in result.warnings)
    # No cameras, nothing metric: never silent metres.
    bare, _ = disguise(tabletop.scene, "z-up", 13, cameras=False)
    result = normalise_scene(bare, BuildConfig(render_backend="cpu"))
    assert result.steps["scale"]["kind"] == "unknown"
    assert any("units unknown" in w and "--known-height" in w for w in result.warnings)


def test_known_height_measures_a_robust_top_not_a_floater(tabletop):
    scene, truth = disguise(tabletop.scene, "z-up", 3, cameras=False)
    config = BuildConfig(known_height=0.7, render_backend="cpu")
    reference = normalise_scene(scene, config).scale
    # One opaque floater far above the table.
    from lyra_sim.scene.gaussian_scene import GaussianScene

    top = scene.means[:, 2].max() + 2.0 / truth["metres_per_unit"]
    floater = GaussianScene.from_activated(torch.tensor([[0.0, 0.0, float(top)]]), torch.ones(1, 3), torch.full((1,), 0.99),
                                           torch.full((1, 3), 0.01), sh_degree=scene.sh_degree)
    floater.metadata = scene.metadata.copy()
    with_floater = GaussianScene.concat([scene, floater])
    assert normalise_scene(with_floater, config).scale == pytest.approx(reference, rel=1e-3)


def test_up_axis_is_trusted_unless_refine_up(tabletop):
    from scipy.spatial.transform import Rotation

    from lyra_sim.scene.transforms import transform_scene

    tilted = transform_scene(tabletop.scene, Rotation.from_euler("x", 8, degrees=True).as_matrix(), np.zeros(3))
    tilted.metadata.cameras = None
    trusted = normalise_scene(tilted, BuildConfig(up_axis="+Z", render_backend="cpu"))
    assert trusted.steps["up_and_floor"]["chosen_source"] == "user"
    assert angle_deg(np.asarray(trusted.steps["up_and_floor"]["up_in_source"]), [0, 0, 1]) < 1e-6
    refined = normalise_scene(tilted, BuildConfig(up_axis="+Z", refine_up=True, render_backend="cpu"))
    true_up = Rotation.from_euler("x", 8, degrees=True).as_matrix() @ [0, 0, 1]
    assert angle_deg(np.asarray(refined.steps["up_and_floor"]["up_in_source"]), true_up) < 2.0


def test_camera_floaters_are_removed(tabletop):
    """Floaters in front of the cameras (where the photos see through) and far field go; the table stays."""
    from lyra_sim.scene.gaussian_scene import GaussianScene

    cameras = tabletop.scene.metadata.cameras
    rng = np.random.default_rng(0)
    # Semi-opaque blobs 20-40% of the way from a camera to what it looks at, and far-away sky.
    picks = rng.integers(len(cameras), size=150)
    near = cameras.positions[picks] + rng.uniform(0.2, 0.4, (150, 1)) * (tabletop.kit.focus - cameras.positions[picks])
    sky = rng.normal(0, 1, (50, 3))
    sky = 40.0 * sky / np.linalg.norm(sky, axis=1, keepdims=True)
    points = np.concatenate([near, sky])
    # Semi-transparent, as floaters are (real reconstructions: median opacity 0.03-0.24).
    junk = GaussianScene.from_activated(torch.from_numpy(points).float(), torch.rand(200, 3), torch.full((200,), 0.3),
                                        torch.full((200, 3), 0.02), sh_degree=tabletop.scene.sh_degree)
    junk.metadata = tabletop.scene.metadata.copy()
    scene = GaussianScene.concat([tabletop.scene, junk])
    result = normalise_scene(scene, BuildConfig(render_backend="cpu"))
    junk_kept = int(np.sum(result.kept >= len(tabletop.scene)))
    reasons = result.steps["camera_floaters"]["reasons"]
    # Carving needs a surface behind the floater: those seen only against empty background stay
    # unless too few views see them (a known limit, see the notes of issue 13).
    assert junk_kept <= 100, reasons
    assert reasons["in_free_space"] >= 10 and reasons["beyond_capture"] + reasons["outside_frustums"] >= 40
    # The table top survives: opaque Gaussians near its height remain.
    heights = result.scene.means[:, 2].numpy()
    assert np.sum(np.abs(heights - 0.625) < 0.03) > 50


def test_object_scan_becomes_an_upright_object_bundle(duck, tmp_path):
    import pybullet

    from lyra_sim.bundle import load_bundle

    scene, truth = disguise(duck.scene, "opencv", 5, cameras=False)
    path = save_scene(scene, tmp_path / "duck_scan.ply")
    config = BuildConfig(render_backend="cpu", convex_method="vhacd", object_resolution=48, max_hulls=8, preview_size=64)
    bundle_path = build_bundle(load_scene(path), tmp_path / "bundle", config, progress=False)
    bundle = load_bundle(bundle_path)
    manifest = bundle.manifest
    assert manifest["kind"] == "object" and len(bundle.objects) == 1 and len(bundle.background_scene()) == 0
    record = manifest["normalisation"]["up_and_floor"]
    assert record["kind"] == "object" and record["chosen_source"] == "resting_face" and record["settled_on_hulls_deg"] < 10.0
    assert {c["source"] for c in record["candidates"]} >= {"habit", "resting_face"}
    assert any("units unknown" in w for w in manifest["warnings"])
    # Upright: the true up maps onto +Z.
    linear = np.asarray(manifest["transform"])[:3, :3]
    assert angle_deg(linear @ np.asarray(truth["up"]), [0, 0, 1]) < 10.0  # no cameras: the resting face alone
    # It rests on the ground: PyBullet keeps it standing (orientation changes little in 1 s).
    obj = bundle.objects[0]
    assert obj.mass > 0 and obj.position[2] > 0
    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
        pybullet.loadURDF(str(bundle.scene_urdf), useFixedBase=True, physicsClientId=client)
        body = pybullet.loadURDF(str(obj.urdf), obj.position.tolist(), obj.orientation_xyzw.tolist(), physicsClientId=client)
        for _ in range(240):
            pybullet.stepSimulation(physicsClientId=client)
        _, orientation = pybullet.getBasePositionAndOrientation(body, physicsClientId=client)
        tilt = np.degrees(2 * np.arccos(min(1.0, abs(orientation[3]))))
        position, _ = pybullet.getBasePositionAndOrientation(body, physicsClientId=client)
    finally:
        pybullet.disconnect(client)
    assert tilt < 10.0 and abs(position[2] - obj.position[2]) < 0.05 * max(obj.size)
    # A bundle whose free floor cannot host Navigate is refused, not simulated: the same bundle
    # with its spawn region shrunk to 30 cm (the object's footprint).
    import shutil

    import gymnasium

    import lyra_sim.envs  # noqa: F401

    cramped = tmp_path / "cramped"
    shutil.copytree(bundle_path, cramped)
    document = manifest.to_dict()
    document["spawn_region"] = {"min": [-0.15, -0.15], "max": [0.15, 0.15], "z": 0.0}
    (cramped / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(BundleError, match=r"cramped: (no free floor cell|Navigate needs a free floor region of at least 20 cells.*too few free cells)"):
        gymnasium.make("LyraSim/Navigate-v0", bundle=str(cramped), width=16, height=16, render_backend="cpu").reset(seed=0)


def test_build_cli_finds_cameras_and_reports_the_evidence(tabletop, tmp_path, capsys):
    from lyra_sim.cli import main

    scene, truth = disguise(tabletop.scene, "arbitrary", 21, metric_cameras=True)
    path = save_scene(scene, tmp_path / "capture.ply")
    code = main(["build", str(path), "-o", str(tmp_path / "bundle"), "--image-size", "48", "--backend", "cpu", "--no-progress", "--no-ground-slab"])
    assert code == 0
    out = capsys.readouterr().out
    assert "scene bundle" in out and "up            from floor" in out and "cameras:" in out
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["kind"] == "scene" and manifest["normalisation"]["scale"]["kind"] == "metric"
    assert angle_deg(np.asarray(manifest["transform"])[:3, :3] @ np.asarray(truth["up"]), [0, 0, 1]) < 5.0
    cameras = json.loads((tmp_path / "bundle" / "cameras.json").read_text())
    assert cameras["frame"] == "z-up" and len(cameras["cameras"]) == len(tabletop.scene.metadata.cameras)
    assert main(["build", str(path), "-o", str(tmp_path / "x"), "--as-object", "--as-scene"]) == 1
    assert "exclude each other" in capsys.readouterr().err


def test_navigate_refuses_a_free_region_too_small_or_too_narrow(tmp_path):
    from scipy import sparse

    from lyra_sim.envs.tasks.navigate import check_navigable
    from lyra_sim.sim.free_space import FreeSpace

    def region(shape):
        free = np.ones(shape, dtype=bool)
        flat = np.arange(free.size).reshape(shape)
        rows, cols = [], []
        for di, dj in ((1, 0), (0, 1)):
            a = flat[: shape[0] - di, : shape[1] - dj].ravel()
            b = flat[di:, dj:].ravel()
            rows.append(a)
            cols.append(b)
        graph = sparse.coo_matrix((np.full(sum(len(r) for r in rows), 0.1), (np.concatenate(rows), np.concatenate(cols))), shape=(free.size, free.size)).tocsr()
        return FreeSpace(origin=np.zeros(2), resolution=0.1, free=free, graph=graph)

    with pytest.raises(BundleError, match="has 4 .*too few free cells"):
        check_navigable(region((2, 2)), tmp_path / "tiny", 0.6)
    with pytest.raises(BundleError, match="start would equal goal"):
        check_navigable(region((5, 5)), tmp_path / "narrow", 1.0)  # 25 cells, 0.8 m across; goals >= 1 m away
    check_navigable(region((10, 10)), tmp_path / "fine", 0.6)

"""``lyra-sim view``: the arrays it draws, episode files, the viser viewer in process, and the real
thing in headless Chromium (skipped, with the reason, where no browser is installed)."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_scene

from lyra_sim.errors import BundleError
from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.sim.episode import EpisodeError, EpisodeRecorder, load_episode
from lyra_sim.viewer import layers

REPO = Path(__file__).resolve().parents[1]
ROOM = REPO / "lyra_sim" / "assets" / "bundles" / "room"
ARTIFACTS = Path(os.environ.get("LYRA_SIM_TEST_ARTIFACTS", REPO / "test_artifacts"))


# ----------------------------------------------------------------------------- layers
def test_box_segments_are_the_twelve_edges():
    segments = layers.box_segments([0, 0, 0], [1, 2, 3])
    assert segments.shape == (12, 2, 3)
    lengths = np.sort(np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1))
    np.testing.assert_allclose(lengths, [1] * 4 + [2] * 4 + [3] * 4, atol=1e-6)
    assert {tuple(p) for p in segments.reshape(-1, 3)} == {(x, y, z) for x in (0, 1) for y in (0, 2) for z in (0, 3)}


def test_rectangle_segments_close_the_outline():
    segments = layers.rectangle_segments([-1, -2], [1, 2], 0.5)
    assert segments.shape == (4, 2, 3)
    np.testing.assert_allclose(segments[:, :, 2], 0.5)
    np.testing.assert_allclose(segments[1:, 0], segments[:-1, 1])  # each edge starts where the last ended
    np.testing.assert_allclose(segments[0, 0], segments[-1, 1])


def test_splat_arrays_covariance_matches_rotation_and_scales():
    scene = random_scene(50, seed=0)
    log_scales = scene.log_scales
    arrays = layers.splat_arrays(scene)
    rotation = scene.rotation_matrices()[7].double().numpy()
    expected = rotation @ np.diag(np.exp(2 * log_scales[7].double().numpy())) @ rotation.T
    np.testing.assert_allclose(arrays.covariances[7], expected, rtol=1e-4, atol=1e-9)
    eigenvalues = np.sort(np.linalg.eigvalsh(arrays.covariances[7].astype(np.float64)))
    np.testing.assert_allclose(eigenvalues, np.sort(np.exp(2 * log_scales[7].double().numpy())), rtol=1e-3)
    assert arrays.opacities.shape == (50, 1) and arrays.rgbs.shape == (50, 3)
    np.testing.assert_allclose(arrays.opacities[:, 0], scene.opacities().numpy(), rtol=1e-6)
    subset = layers.splat_arrays(scene, max_count=20)
    assert len(subset) == 20 and subset.total == 50
    assert {tuple(c) for c in subset.centers} <= {tuple(c) for c in arrays.centers}
    with pytest.raises(ValueError, match="max_count"):
        layers.splat_arrays(scene, max_count=0)


def test_pose_round_trip_matches_look_at_camera():
    camera = Camera.look_at([2.0, -1.0, 1.5], [0.0, 0.5, 0.3], fov_deg=50, width=64, height=48)
    wxyz, position = layers.viewmat_to_pose(camera.viewmat[0].numpy())
    np.testing.assert_allclose(position, [2.0, -1.0, 1.5], atol=1e-5)
    np.testing.assert_allclose(layers.pose_to_viewmat(wxyz, position), camera.viewmat[0].numpy(), atol=1e-5)
    # The camera's +z axis (OpenCV forward) points at the target.
    forward = np.linalg.inv(layers.pose_to_viewmat(wxyz, position))[:3, 2]
    target_direction = np.array([-2.0, 1.5, -1.2]) / np.linalg.norm([-2.0, 1.5, -1.2])
    np.testing.assert_allclose(forward, target_direction, atol=1e-5)


def test_depth_to_image_orders_near_and_far_and_blacks_out_misses():
    depth = np.array([[0.0, 1.0], [2.0, 3.0]])
    image = layers.depth_to_image(depth)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    assert (image[0, 0] == 0).all()
    assert image[0, 1, 0] > image[1, 0, 0] > image[1, 1, 0]  # red fades with distance
    assert image[0, 1, 2] < image[1, 1, 2]  # blue grows
    assert (layers.depth_to_image(np.zeros((3, 3))) == 0).all()


def _floor_scene_with_floaters(path: Path, frame: str = "unknown") -> Path:
    """A 2 x 2 floor at height 1 with a box standing on it and 40 far floaters, as a PLY, with the
    up direction of ``frame`` (-Y for "unknown", as in OpenCV captures: the detection must find it
    without a prior)."""
    from lyra_sim.converters.normalise import FRAME_UP, rotation_between
    from lyra_sim.scene.io import save_scene

    generator = np.random.default_rng(0)
    floor = np.column_stack([generator.uniform(-1, 1, 3000), generator.uniform(-1, 1, 3000), np.full(3000, 1.0)])
    box = np.column_stack([generator.uniform(-0.2, 0.2, 800), generator.uniform(-0.2, 0.2, 800), generator.uniform(1.0, 1.4, 800)])
    floaters = generator.normal(0, 1, (40, 3))
    floaters = 30.0 * floaters / np.linalg.norm(floaters, axis=1, keepdims=True)
    up = np.asarray(FRAME_UP.get(frame, (0.0, -1.0, 0.0)))
    rotation = rotation_between(np.array([0.0, 0.0, 1.0]), up)  # z-up world -> the file's frame
    means = (np.concatenate([floor, box, floaters]) @ rotation.T).astype(np.float32)
    count = len(means)
    scene = GaussianScene(
        torch.from_numpy(means), torch.tensor([[1.0, 0, 0, 0]]).repeat(count, 1), torch.full((count, 3), math.log(0.01)),
        torch.full((count,), 3.0), torch.rand(count, 1, 3), metadata=SceneMetadata(frame=frame),
    )
    save_scene(scene, path)
    return path


@pytest.mark.parametrize("frame", ["unknown", "opencv", "opengl", "z-up", "opencv-first-camera"])
def test_analyse_scene_file_finds_up_floor_and_floaters(tmp_path, frame):
    from lyra_sim.converters.normalise import FRAME_UP

    path = _floor_scene_with_floaters(tmp_path / "floor.ply", frame)
    analysis = layers.analyse_scene_file(path)
    assert len(analysis.scene) == 3840
    up = np.asarray(FRAME_UP.get(frame, (0.0, -1.0, 0.0)))
    np.testing.assert_allclose(analysis.up, up, atol=1e-3)
    assert analysis.floor_offset == pytest.approx(1.0, abs=0.05)  # the floor is 1 unit along up from the origin
    assert analysis.dropped[-40:].all(), "the far floaters are what the build drops"
    assert analysis.dropped[:3800].mean() < 0.05
    np.testing.assert_allclose(analysis.floor_centre @ analysis.up, analysis.floor_offset, atol=1e-9)
    assert (analysis.robust_bounds[1] - analysis.robust_bounds[0]).max() < 2.5 < (analysis.bounds[1] - analysis.bounds[0]).max()


# ----------------------------------------------------------------------------- episodes
@pytest.fixture(scope="module")
def episode_file(tmp_path_factory) -> Path:
    import gymnasium

    import lyra_sim.envs  # noqa: F401

    env = gymnasium.make("LyraSim/Navigate-v0", width=16, height=16, observation_modes=("depth",))
    try:
        recorder = EpisodeRecorder(env, "LyraSim/Navigate-v0")
        env.reset(seed=3)
        recorder.record()
        for _ in range(8):
            _, reward, terminated, truncated, _ = env.step(np.array([1.0, 0.5], np.float32))
            recorder.record(reward)
        env.reset(seed=4)
        recorder.record()
        for _ in range(3):
            _, reward, *_ = env.step(np.array([1.0, 0.0], np.float32))
            recorder.record(reward)
    finally:
        env.close()
    return recorder.save(tmp_path_factory.mktemp("episode") / "navigate.npz")


def test_episode_round_trip(episode_file):
    episode = load_episode(episode_file)
    assert len(episode) == 13 and episode.env_id == "LyraSim/Navigate-v0"
    assert episode.bundle == ROOM.resolve() and episode.fps == 30.0
    bodies = [(part.body, part.kind) for part in episode.parts]
    assert bodies[:3] == [("object_0", "object"), ("object_1", "object"), ("object_2", "object")]
    assert ("robot", "mesh") in bodies and ("goal", "mesh") in bodies
    robot = episode.parts[episode.part_indices("robot")[0]]
    assert len(robot.faces) > 0 and robot.faces.max() < len(robot.vertices) and robot.face_colors.shape == (len(robot.faces), 4)
    np.testing.assert_array_equal(episode.episode_index, [0] * 9 + [1] * 4)
    assert np.isnan(episode.rewards[0]) and np.isnan(episode.rewards[9]) and np.isfinite(episode.rewards[1:9]).all()
    np.testing.assert_allclose(episode.times[:9], np.arange(9) / 30.0)
    path = episode.positions[:9, episode.part_indices("robot")[0]]
    assert np.linalg.norm(path[-1, :2] - path[0, :2]) > 0.01, "driving forward moves the robot"
    np.testing.assert_allclose(np.linalg.norm(episode.orientations_xyzw, axis=-1), 1.0, atol=1e-5)


def test_episode_errors_name_the_file(tmp_path, episode_file):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, message in (("missing.npz", "missing.npz: no such episode"), ("junk.npz", "junk.npz: not an episode file")):
        with pytest.raises(EpisodeError, match=message):
            load_episode(tmp_path / name)
    data = dict(np.load(episode_file))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**data, "positions": data["positions"][:, :2]})
    with pytest.raises(EpisodeError, match=r"bad.npz: positions has shape \[13, 2, 3\]"):
        load_episode(bad)
    import json

    metadata = json.loads(str(data["metadata"]))
    np.savez(bad, **{**data, "metadata": np.array(json.dumps({**metadata, "version": 99}))})
    with pytest.raises(EpisodeError, match="version 99"):
        load_episode(bad)
    recorder_error = EpisodeRecorder.__new__(EpisodeRecorder)
    recorder_error._times = []
    with pytest.raises(ValueError, match=".npz"):
        recorder_error.save(tmp_path / "episode.json")


# ----------------------------------------------------------------------------- the viewer in process
@pytest.fixture
def server():
    viser = pytest.importorskip("viser", reason="the viewer tests need viser (pip install 'lyra-sim[viewer]')")
    instance = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    yield instance
    instance.stop()


def test_bundle_viewer_layers_toggles_and_our_render(server, episode_file):
    from lyra_sim.bundle import load_bundle
    from lyra_sim.viewer.app import RenderSettings, Viewer

    bundle = load_bundle(ROOM)
    viewer = Viewer(server, render=RenderSettings(width=48, height=32))
    try:
        viewer.show_bundle(bundle)
        viewer.show_episode(load_episode(episode_file))
        viewer.add_render_camera()
        for name in ["/bundle/splats", "/bundle/collision", "/bundle/visual", "/bundle/floor", "/bundle/spawn_region",
                     "/objects/object_0/splats", "/objects/object_1/hulls/5", "/objects/object_2/label",
                     "/render_camera/frustum", "/episode/trajectory"]:
            assert server.scene.get_handle_by_name(name) is not None, name
        assert len([n for n in viewer.nodes if n.startswith("/objects/object_1/hulls/")]) == bundle.object("object_1").hulls
        # Toggles flip the nodes they name; the opacity slider reaches the mesh.
        viewer.toggles["Collision mesh"].value = False
        _wait(lambda: not viewer.nodes["/bundle/collision"].visible)
        viewer.toggles["Collision opacity"].value = 0.2
        _wait(lambda: viewer.nodes["/bundle/collision"].opacity == pytest.approx(0.2))
        viewer.toggles["Object hulls"].value = False
        _wait(lambda: not any(viewer.nodes[n].visible for n in viewer.nodes if "/hulls/" in n))
        # The step slider moves the robot along the recorded path.
        episode = load_episode(episode_file)
        robot_part = episode.part_indices("robot")[0]
        robot_node = viewer.nodes[f"/episode/robot/{robot_part}"]
        viewer.toggles["Step"].value = 8
        _wait(lambda: np.allclose(robot_node.position, episode.positions[8, robot_part], atol=1e-5))
        # Our renderer draws the robot as Gaussians on its links, where the episode puts it.
        drawn = viewer._composed_bundle_scene()
        robot_slice = viewer._composed.part_slices[[p.name for p in viewer._parts].index(f"robot:{episode.parts[robot_part].link}")]
        robot_centre = drawn.means[robot_slice].mean(0).numpy()
        assert np.linalg.norm(robot_centre[:2] - episode.positions[8, robot_part, :2]) < 0.05
        # Our renderer sees the room from the draggable camera: colour and depth in range.
        result = viewer.render_now()
        assert result is not None
        rgb, depth_image = result
        assert rgb.shape == (32, 48, 3) and depth_image.shape == (32, 48, 3)
        assert rgb.mean() > 20, "the camera starts inside the room looking at it"
        assert (depth_image.sum(axis=2) > 0).mean() > 0.5
    finally:
        viewer.stop()


def test_bundle_capture_cameras_are_drawn_where_they_are(server, tmp_path):
    import json
    import shutil

    from lyra_sim.bundle import load_bundle
    from lyra_sim.viewer.app import Viewer

    bundle_dir = shutil.copytree(ROOM, tmp_path / "room")
    camera = Camera.look_at([1.0, -2.0, 1.2], [0.0, 0.0, 0.5], fov_deg=40.0, width=80, height=60)
    camera_to_world = np.linalg.inv(camera.viewmat[0].double().numpy())
    entry = {"id": 0, "img_name": "view_0", "width": 80, "height": 60, "position": camera_to_world[:3, 3].tolist(),
             "rotation": camera_to_world[:3, :3].tolist(), "fx": float(camera.K[0, 0, 0]), "fy": float(camera.K[0, 1, 1])}
    (bundle_dir / "cameras.json").write_text(json.dumps({"format": "lyra-sim cameras", "version": 1, "cameras": [entry]}))
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    warning = "up direction from a weak floor (2 % support)"
    (bundle_dir / "manifest.json").write_text(json.dumps({**manifest, "cameras": "cameras.json", "warnings": [warning]}))
    viewer = Viewer(server)
    try:
        viewer.show_bundle(load_bundle(bundle_dir))
        assert any(warning in block.content for block in viewer.info), "the build's warnings are shown"
        frustum = server.scene.get_handle_by_name("/cameras/0")
        assert frustum is not None and "Capture cameras" in viewer.toggles
        np.testing.assert_allclose(frustum.position, [1.0, -2.0, 1.2], atol=1e-5)
        np.testing.assert_allclose(layers.pose_to_viewmat(frustum.wxyz, frustum.position), camera.viewmat[0].numpy(), atol=1e-5)
        assert viewer.nodes["/cameras/0"].fov == pytest.approx(math.radians(40.0), rel=1e-4)
    finally:
        viewer.stop()
    (bundle_dir / "cameras.json").write_text("[{\"position\": [0, 0]}]")
    with pytest.raises(BundleError, match="cameras.json: not a camera list"):
        Viewer(server).show_bundle(load_bundle(bundle_dir))


def test_object_bundle_viewer_with_empty_background(server, tmp_path):
    from lyra_sim.converters.compose import kit_object_bundle
    from lyra_sim.kits.layouts import make_scene
    from lyra_sim.bundle import load_bundle
    from lyra_sim.viewer.app import RenderSettings, Viewer

    bundle = load_bundle(kit_object_bundle(make_scene("tabletop", seed=0), "object_0", tmp_path / "cube", gaussians=1500))
    assert len(bundle.background_scene()) == 0
    viewer = Viewer(server, render=RenderSettings(width=32, height=24))
    try:
        viewer.show_bundle(bundle)
        viewer.add_render_camera()
        assert server.scene.get_handle_by_name("/objects/object_0/hulls/0") is not None
        assert any("kind object" in block.content for block in viewer.info)
        rgb, _ = viewer.render_now()
        assert rgb.shape == (24, 32, 3)
        assert (rgb.sum(-1) > 0).mean() > 0.2, "our camera frames the object, not the whole ground slab"
    finally:
        viewer.stop()


def test_scene_file_viewer_shows_detection(server, tmp_path):
    from lyra_sim.viewer.app import RenderSettings, Viewer

    viewer = Viewer(server, render=RenderSettings(width=32, height=24))
    try:
        analysis = viewer.show_scene_file(_floor_scene_with_floaters(tmp_path / "floor.ply"))
        viewer.add_render_camera()
        for name in ["/scene/splats", "/scene/dropped", "/scene/floor", "/scene/up", "/scene/bounds", "/scene/robust_bounds"]:
            assert server.scene.get_handle_by_name(name) is not None, name
        assert len(viewer.nodes["/scene/dropped"].points) == int(analysis.dropped.sum()) >= 40
        assert viewer.render_now() is not None
    finally:
        viewer.stop()


def test_episode_on_another_bundle_says_what_is_missing(server, episode_file):
    from lyra_sim.bundle import load_bundle
    from lyra_sim.viewer.app import Viewer

    viewer = Viewer(server)
    try:
        viewer.show_bundle(load_bundle(ROOM.parent / "tabletop"))
        viewer.show_episode(load_episode(episode_file))  # recorded in the room, which has one object more
        note = viewer.info[-1].content
        assert "**not in this bundle**: object_2 (recorded on" in note  # the tabletop has object_0 and object_1
    finally:
        viewer.stop()


def test_serve_rejects_bad_paths(tmp_path):
    from lyra_sim.viewer.app import serve

    with pytest.raises(BundleError, match="no such file"):
        serve(tmp_path / "nothing.ply", block=False)
    with pytest.raises(BundleError, match="without manifest.json"):
        serve(tmp_path, block=False)
    with pytest.raises(BundleError, match="needs a scene file"):
        serve(None, block=False)


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- the browser
def _chromium_or_skip() -> str:
    from lyra_sim.viewer.browser import find_chromium

    found = find_chromium()
    if found is None:
        pytest.skip("no Chromium on PATH: scripts/setup.sh installs Debian's `chromium` when run as root with apt-get")
    return found


def _start_viewer(*arguments: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lyra_sim.cli", "view", *arguments, "--port", "0", "--render-width", "64", "--render-height", "48"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd=REPO,
    )
    lines = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"lyra-sim view: .* at (http://\S+)", line)
        if match:
            return process, match.group(1)
    _stop(process)
    raise AssertionError("the viewer printed no URL:\n" + "".join(lines))


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if process.stdout:
        process.stdout.close()


@pytest.mark.browser
def test_browser_shows_bundle_nodes_and_toggles_them(episode_file):
    # Generous timeouts: on a loaded 2-core machine software WebGL and the first render are slow;
    # a passing run takes 15-40 s.
    from lyra_sim.viewer.browser import HeadlessBrowser

    pytest.importorskip("viser", reason="the viewer needs viser (pip install 'lyra-sim[viewer]')")
    executable = _chromium_or_skip()
    process, url = _start_viewer(str(ROOM), "--episode", str(episode_file))
    try:
        assert url.startswith("http://localhost:")
        with HeadlessBrowser(url.replace("localhost", "127.0.0.1"), width=1400, height=900, executable=executable) as browser:
            nodes = browser.wait_for(lambda: (n := browser.scene_nodes()) and "/render_camera/frustum" in n and n,
                                     timeout=180, what="the viewer's scene tree")
            expected = {
                "/bundle/splats": "GaussianSplatsMessage", "/bundle/collision": "MeshMessage",
                "/bundle/spawn_region": "LineSegmentsMessage", "/bundle/floor": "GridMessage",
                "/objects/object_0/splats": "GaussianSplatsMessage", "/objects/object_0/hulls/0": "MeshMessage",
                "/objects/object_2/label": "LabelMessage", "/render_camera/frustum": "CameraFrustumMessage",
                "/episode/trajectory": "LineSegmentsMessage",
            }
            for name, kind in expected.items():
                assert nodes.get(name, {}).get("type") == kind, (name, nodes.get(name))
            assert nodes["/bundle/collision"]["visible"] and not nodes["/bundle/visual"]["visible"]
            text = browser.wait_for(lambda: (t := browser.text()) and "object_2" in t and "Collision mesh" in t and t,
                                    timeout=120, what="the GUI panel")
            assert "29,584 background" in text and "13 frames" in text
            # A click in the page hides the collision mesh in the page's scene tree.
            browser.click_checkbox("Collision mesh")
            browser.wait_for(lambda: not browser.scene_nodes()["/bundle/collision"]["visible"], timeout=120,
                             what="the collision mesh to hide")
            browser.click_checkbox("Collision mesh")
            browser.wait_for(lambda: browser.scene_nodes()["/bundle/collision"]["visible"], timeout=120, what="it to show again")
            # Our renderer's first image reached the panel; the button moves our camera to the
            # browser's view and renders again from there.
            def camera_line() -> str | None:
                return next((line for line in browser.text().splitlines() if " ms (" in line and "camera at" in line), None)

            first = browser.wait_for(camera_line, timeout=180, what="our render's status line")
            browser.wait_for(browser.canvas_ready, timeout=180, what="the 3D canvas to fade in")
            time.sleep(1.0)  # let the splats finish sorting before the picture
            browser.hide_notifications()
            shot = browser.screenshot(ARTIFACTS / "viewer_bundle.png")
            browser.click_button("Move camera to my view")
            moved = browser.wait_for(lambda: (line := camera_line()) and line.split("camera at")[1] != first.split("camera at")[1] and line,
                                     timeout=180, what="a render from the browser's viewpoint")
            assert "Gaussians" in moved
        assert shot.stat().st_size > 10_000
        assert process.poll() is None, "the viewer is still serving"
    finally:
        _stop(process)
    assert process.returncode is not None

"""``lyra-sim build SEQUENCE_DIR -o bundle`` end to end: a kit object moved along a path, written
as per-time PLYs in Lyra's dynamic layout, becomes a dynamic bundle (manifest part, track file,
convex hulls of the mover); bad sequences are refused with errors naming the folder or file."""

from __future__ import annotations

import json

import numpy as np
import pybullet
import pytest
from scipy.spatial.transform import Rotation

from lyra_sim.bundle import load_bundle
from lyra_sim.bundle.dynamic import TRACK_COLUMNS, read_tracks
from lyra_sim.cli import main
from lyra_sim.kits.sequences import LYRA_FROM_KIT, moving_object_sequence, write_sequence
from lyra_sim.scene.capture import is_sequence_folder

FAST_BUILD = ["--image-size", "48", "--voxel-size", "0.04", "--backend", "cpu", "--convex-method", "vhacd", "--no-progress"]
FPS = 4.0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("dynamic_build")
    sequence = moving_object_sequence("room", size=(3.0, 3.0), n_objects=1, gaussians=4000, frames=5, distance=0.8, turn_deg=40.0)
    folder = write_sequence(sequence.frames, root / "sequence")
    out = root / "bundle"
    status = main(["build", str(folder), "-o", str(out), "--fps", str(FPS), *FAST_BUILD])
    return sequence, folder, out, status


def test_sequence_folder_builds_a_dynamic_bundle(built, capsys):
    sequence, folder, out, status = built
    assert status == 0
    assert is_sequence_folder(folder) and not is_sequence_folder(out)  # a bundle is not a sequence
    manifest = json.loads((out / "manifest.json").read_text())
    dynamic = manifest["dynamic"]
    assert dynamic["version"] == 1 and dynamic["fps"] == FPS and dynamic["frames"] == 5
    assert dynamic["duration_s"] == pytest.approx(4 / FPS)
    (cluster,) = dynamic["clusters"]
    assert cluster == {"name": "mover_0", "object": "mover_0", "kind": "rigid", "track": "dynamic/mover_0/track.csv",
                       "frames": None, "max_residual_m": pytest.approx(0.0, abs=1e-5)}
    assert manifest["build"]["separation"]["files"] == [f"frame_{t:04d}.ply" for t in range(5)]
    assert manifest["build"]["separation"]["moving"] == int(sequence.moving.sum())

    # The track: header, times at 1/fps, and the truth motion mapped into the bundle world.
    lines = (out / cluster["track"]).read_text().splitlines()
    assert lines[0] == ",".join(TRACK_COLUMNS) and len(lines) == 6
    rows = np.loadtxt(out / cluster["track"], delimiter=",", skiprows=1)
    np.testing.assert_allclose(rows[:, 0], np.arange(5) / FPS)
    transform = np.asarray(manifest["transform"]) @ LYRA_FROM_KIT  # kit -> source -> bundle world
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    rotation = transform[:3, :3] / scale
    (mover,) = manifest["objects"]
    body_origin = np.asarray(mover["initial_pose"]["position"])
    np.testing.assert_allclose(rows[0, 1:4], body_origin, atol=1e-6)
    centre_world = transform[:3, :3] @ sequence.positions[0] + transform[:3, 3]
    for t in range(5):
        turn = Rotation.from_euler("z", sequence.yaws[t]).as_matrix()
        world_turn = rotation @ turn @ rotation.T
        expected = world_turn @ (body_origin - centre_world) + transform[:3, :3] @ sequence.positions[t] + transform[:3, 3]
        np.testing.assert_allclose(rows[t, 1:4], expected, atol=1e-4)
        np.testing.assert_allclose(Rotation.from_quat(rows[t, 4:8]).as_matrix(), world_turn, atol=1e-5)
    assert scale == pytest.approx(1.0, abs=0.03)  # Lyra's camera at the height prior: metric

    # The mover's convex hulls: a compound PyBullet loads, the size of the kit's box.
    box = sequence.kit.objects[[o.name for o in sequence.kit.objects].index(sequence.object_name)].mesh
    assert mover["hulls"] >= 1
    hull_text = (out / mover["collision_mesh"]).read_text()
    assert hull_text.count("\no ") + hull_text.startswith("o ") == mover["hulls"]
    # (carved from the ~60 Gaussians of the box: a little larger than the box, never smaller)
    assert np.all(np.sort(mover["size"]) >= 0.9 * np.sort(scale * box.extents))
    assert np.all(np.sort(mover["size"]) <= np.sort(scale * box.extents) + 0.1)
    client = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(out / mover["urdf"]), physicsClientId=client)
        low, high = pybullet.getAABB(body, physicsClientId=client)
        assert np.all(np.asarray(high) - np.asarray(low) > 0.5 * scale * box.extents.min())
    finally:
        pybullet.disconnect(client)

    # Readers: the typed manifest, the tracks, `lyra-sim info`.
    bundle = load_bundle(out)
    (track,) = read_tracks(out, bundle.manifest)
    np.testing.assert_allclose(track.positions, rows[:, 1:4])
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "dynamic       5 frames at 4 fps (1.000 s): mover_0 (rigid)" in capsys.readouterr().out


def test_bad_sequences_are_refused_naming_the_folder_or_file(tmp_path, capsys):
    sequence = moving_object_sequence("room", size=(3.0, 3.0), n_objects=1, gaussians=2000, frames=3)
    mismatched = write_sequence([sequence.frames[0], sequence.frames[1][:1500], sequence.frames[2]], tmp_path / "mismatched")
    assert main(["build", str(mismatched), "-o", str(tmp_path / "a"), *FAST_BUILD]) != 0
    message = capsys.readouterr().err
    assert str(mismatched) in message and "frame_0001.ply: 1500" in message and "different numbers of Gaussians" in message
    still = write_sequence([sequence.frames[0], sequence.frames[0]], tmp_path / "still")
    assert main(["build", str(still), "-o", str(tmp_path / "b"), *FAST_BUILD]) != 0
    message = capsys.readouterr().err
    assert str(still) in message and "no moving cluster" in message
    broken = write_sequence(sequence.frames[:2], tmp_path / "broken")
    (broken / "frame_0001.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n")
    assert main(["build", str(broken), "-o", str(tmp_path / "c"), *FAST_BUILD]) != 0
    assert "frame_0001.ply" in capsys.readouterr().err
    assert main(["build", str(still), "-o", str(tmp_path / "d"), "--fps", "0", *FAST_BUILD]) != 0
    assert "--fps must be a number > 0" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abcd")


# ------------------------------------------------------------------ the bundle in NavigateDynamic
def _env(out, **kwargs):
    from lyra_sim.envs.tasks.navigate_dynamic import NavigateDynamicEnv

    return NavigateDynamicEnv(out, **{"width": 32, "height": 32, "render_backend": "cpu", "random_start_time": False, **kwargs})


@pytest.mark.parametrize("end", ["loop", "stop"])
def test_kinematic_mover_follows_the_track(built, end):
    from lyra_sim.sim.robot_splats import link_frame_poses

    _, _, out, _ = built
    rows = np.loadtxt(out / "dynamic/mover_0/track.csv", delimiter=",", skiprows=1)
    env = _env(out, track_end=end)
    try:
        body = env.tracks.body_ids[0]
        assert pybullet.getDynamicsInfo(body, -1, physicsClientId=env.client_id)[0] == 0.0  # kinematic
        env.reset(seed=0, options={"track_time": 0.5})  # a stored step: row 2
        position, orientation = link_frame_poses(env.client_id, body, [-1])
        np.testing.assert_allclose(position[0], rows[2, 1:4], atol=1e-6)
        assert abs(np.dot(orientation[0], rows[2, 4:8])) == pytest.approx(1.0, abs=1e-7)  # float32 in Bullet: < 1 mrad
        (track,) = read_tracks(out, load_bundle(out).manifest)
        for step in range(1, 40):  # 40 steps of 2/60 s: past the 1 s track's end
            env.step(np.zeros(2, np.float32))
            assert env.track_time == pytest.approx(0.5 + step * 2 / 60)
            position, orientation = link_frame_poses(env.client_id, body, [-1])
            want_position, want_orientation = track.pose_at(env.track_time, end)
            np.testing.assert_allclose(position[0], want_position, atol=1e-6)
            assert abs(np.dot(orientation[0], want_orientation)) == pytest.approx(1.0, abs=1e-7)  # float32 in Bullet: < 1 mrad
        # 0.5 + 78/60 = 1.8 s: the loop is at 0.8 s (between rows 3 and 4), the stop holds row 4
        if end == "stop":
            np.testing.assert_allclose(position[0], rows[4, 1:4], atol=1e-6)
        else:
            np.testing.assert_allclose(position[0], 0.8 * rows[3, 1:4] + 0.2 * rows[4, 1:4], atol=1e-6)
    finally:
        env.close()


def test_observation_at_a_stored_step_equals_a_render_of_the_stored_frame(built):
    import torch

    from lyra_sim.envs.observation import CameraMount
    from lyra_sim.render.api import render
    from lyra_sim.scene.gaussian_scene import GaussianScene
    from lyra_sim.scene.io import load_scene
    from lyra_sim.scene.transforms import transform_scene

    sequence, folder, out, _ = built
    manifest = json.loads((out / "manifest.json").read_text())
    transform = np.asarray(manifest["transform"])
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    rows = np.loadtxt(out / "dynamic/mover_0/track.csv", delimiter=",", skiprows=1)
    centre = rows[:, 1:4].mean(0)
    mount = CameraMount(position=tuple(centre + [0.0, -1.4, 1.2]), target=tuple(centre), fov_deg=70.0)
    env = _env(out, camera=mount, width=48, height=48)

    def stored_frame_render(step: int) -> np.ndarray:
        """Env's composed scene without the mover's rows, plus the stored frame's mover Gaussians in the world."""
        frame = load_scene(folder / f"frame_{step:04d}.ply", cameras=False)
        mover = transform_scene(frame[torch.from_numpy(sequence.moving)], transform[:3, :3] / scale, transform[:3, 3], scale)
        composed = env.composed
        keep = np.ones(len(composed), bool)
        keep[composed.part_slices[[p.name for p in composed.parts].index("object:mover_0")]] = False
        rest = composed.scene[torch.from_numpy(keep)]
        scene = GaussianScene(*(torch.cat([a, b.to(a.dtype)]) for a, b in zip(
            (rest.means, rest.quats, rest.log_scales, rest.opacity_logits, rest.sh[:, :1]),
            (mover.means, mover.quats, mover.log_scales, mover.opacity_logits, mover.sh[:, :1]))))
        image = render(scene, env.observation_camera(), modes=("rgb",), backend="cpu", sh_degree=0)["rgb"][0]
        return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy().astype(int)

    try:
        assert len(load_bundle(out).object("mover_0").scene()) == int(sequence.moving.sum())  # no mover Gaussian was cleaned away
        for step, options in ((1, {"track_time": 0.25}), (3, {"track_time": 0.75 - 6 / 60})):
            observation, _ = env.reset(seed=1, options=options)
            if step == 3:
                for _ in range(3):  # 3 steps of 2 physics steps at 60 Hz
                    observation, *_ = env.step(np.zeros(2, np.float32))
            assert env.track_time == pytest.approx(step / FPS)
            got = observation["rgb"].astype(int)
            same, other = np.abs(got - stored_frame_render(step)), np.abs(got - stored_frame_render(4 - step))
            assert same.mean() < 0.5 and np.mean(same > 2) < 0.01, (step, same.mean(), np.mean(same > 2))
            # two steps away the mover is visibly elsewhere (its ~60 Gaussians are dots at 48 px)
            assert other.sum() > 100 * (same.sum() + 1) and (other.max(-1) > 10).sum() >= 3, (step, other.mean())
    finally:
        env.close()


def test_touching_the_moving_obstacle_costs_the_mover_penalty(built):
    _, _, out, _ = built
    rows = np.loadtxt(out / "dynamic/mover_0/track.csv", delimiter=",", skiprows=1)
    env = _env(out, reward_mover_collision=-2.5)
    try:
        env.reset(seed=0, options={"track_time": 0.0})
        assert env.unwrapped.reward_weights["mover_collision"] == -2.5
        # Park the robot on the mover's path at 0.5 s; the box drives into it.
        xy = rows[2, 1:3]
        robot = env.robot_id
        pybullet.resetBasePositionAndOrientation(robot, [*xy, env._ride_height], [0, 0, 0, 1], physicsClientId=env.client_id)
        env._target_xy, env._target_yaw = np.array(xy, dtype=np.float64), 0.0
        touched = []
        for _ in range(20):
            _, reward, _, _, info = env.step(np.zeros(2, np.float32))
            touched.append(info["mover_collision"])
            assert info["reward_mover_collision"] == (-2.5 if info["mover_collision"] else 0.0)
            assert reward == pytest.approx(sum(v for k, v in info.items() if k.startswith("reward_")))
        assert touched[0] is False or info["mover_distance"] < 0.5
        assert any(touched)
        assert info["collision"] is False or not touched[-1]  # the box is not scored as a wall
    finally:
        env.close()

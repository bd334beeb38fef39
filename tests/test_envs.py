"""Contract tests of every registered lyra-sim environment (STYLE.md 9) and task behaviour.

Envs run on the packaged default bundles at 32-64 px with the CPU splat renderer.
"""

from __future__ import annotations

import gc

import gymnasium
import numpy as np
import pybullet
import pytest
from gymnasium.utils.env_checker import check_env
from scipy import ndimage

import lyra_sim
import lyra_sim.envs
from lyra_sim.envs.base import CameraMount
from lyra_sim.envs.tasks.navigate import NavigateEnv
from lyra_sim.envs.tasks.push import PushEnv
from lyra_sim.errors import BundleError
from lyra_sim.sim.compositor import tinyrenderer_images

ENV_IDS = [entry["id"] for entry in lyra_sim.envs.REGISTRY]
SMALL = {"width": 32, "height": 32}


def _rollout(env, seed: int, steps: int):
    """Observations, rewards and infos of a seeded rollout with seeded random actions."""
    observation, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    trajectory = [(observation, 0.0, info)]
    for _ in range(steps):
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trajectory.append((observation, reward, info))
        if terminated or truncated:
            break
    return trajectory


def test_registration_table_and_module_prefixed_make():
    for entry in lyra_sim.envs.REGISTRY:
        spec = gymnasium.spec(entry["id"])
        # one generic vector factory, bound to the task's entry point by the table
        assert spec.vector_entry_point.args == (entry["entry_point"],)
        assert spec.max_episode_steps == entry["max_episode_steps"]
    lyra_sim.envs.register_all()  # registering twice is harmless
    env = gymnasium.make("lyra_sim.envs:LyraSim/Navigate-v0", **SMALL)
    try:
        assert isinstance(env.unwrapped, NavigateEnv)
        assert env.spec.max_episode_steps == 200
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array", render_width=48, render_height=48, **SMALL)
    try:
        check_env(env.unwrapped, skip_render_check=False)
        env.reset(seed=0)
        frame = env.render()
        assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8 and frame.std() > 5
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_rollouts_are_deterministic_and_finite(env_id):
    first, second = gymnasium.make(env_id, **SMALL), gymnasium.make(env_id, **SMALL)
    try:
        a, b = _rollout(first, seed=3, steps=6), _rollout(second, seed=3, steps=6)
    finally:
        first.close()
        second.close()
    assert len(a) == len(b)
    for (obs_a, reward_a, info_a), (obs_b, reward_b, info_b) in zip(a, b):
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=key)
            if obs_a[key].dtype.kind == "f":
                assert np.isfinite(obs_a[key]).all(), key
        assert reward_a == reward_b and np.isfinite(reward_a)
        assert info_a == info_b
        assert {"success"} <= set(info_a)
    reward_terms = [k for k in a[-1][2] if k.startswith("reward_")]
    assert reward_terms, "reward terms must be reported in info"
    assert np.isclose(sum(a[-1][2][k] for k in reward_terms), a[-1][1])
    # Different seeds give different episodes.
    other = gymnasium.make(env_id, **SMALL)
    try:
        assert not np.array_equal(other.reset(seed=4)[0]["state"], a[0][0]["state"])
    finally:
        other.close()


@pytest.mark.parametrize("batch_render", [True, False], ids=["one-render-call", "render-per-env"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_equals_single_envs(env_id, batch_render):
    num_envs, steps, limit = 2, 5, 3
    vector = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", max_episode_steps=limit,
                                batch_render=batch_render, **SMALL)
    singles = [gymnasium.make(env_id, max_episode_steps=limit, **SMALL) for _ in range(num_envs)]
    try:
        assert vector.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
        vector_obs, _ = vector.reset(seed=11)
        single_obs = [env.reset(seed=11 + i)[0] for i, env in enumerate(singles)]
        done = [False] * num_envs
        autoresets = 0
        rng = np.random.default_rng(0)
        for step in range(steps + 1):
            for i in range(num_envs):
                for key in single_obs[i]:
                    got, want = vector_obs[key][i], single_obs[i][key]
                    if key == "rgb":  # copy i is rendered 100s of metres away: float rounding only
                        difference = np.abs(got.astype(int) - want.astype(int))
                        assert difference.max() <= 3 and difference.mean() < 0.05, (step, i)
                    elif key == "depth":
                        assert np.mean(np.abs(got - want) < 1e-3) > 0.995, (step, i)
                    else:
                        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=f"{key} step {step} env {i}")
            if step == steps:
                break
            actions = rng.uniform(-1, 1, size=vector.action_space.shape).astype(np.float32)
            vector_obs, rewards, terminations, truncations, _ = vector.step(actions)
            for i, env in enumerate(singles):
                if done[i]:  # NEXT_STEP autoreset: this step only resets
                    autoresets += 1
                    single_obs[i], _ = env.reset()
                    reward, terminated, truncated = 0.0, False, False
                else:
                    single_obs[i], reward, terminated, truncated, _ = env.step(actions[i])
                assert rewards[i] == pytest.approx(reward, abs=1e-9)
                assert (terminations[i], truncations[i]) == (terminated, truncated)
                done[i] = terminated or truncated
        assert autoresets >= num_envs  # the limit was reached, so autoreset was exercised
    finally:
        vector.close()
        for env in singles:
            env.close()


def test_object_splats_follow_their_bodies():
    """Push an object with the arm: pixels change where the object was and is (and where the arm
    moved), nowhere else beyond a tolerance; and the object's splat lands on its PyBullet body."""
    env = PushEnv(width=64, height=64, observation_modes=("rgb", "instance"))
    try:
        observation, _ = env.reset(seed=0)
        start = env._object_position()
        for _ in range(60):
            offset = env._object_position()[:2] - env._flange_position()[:2]
            observation_after, *_ = env.step(np.clip(offset / 0.02, -1, 1))
            if np.linalg.norm(env._object_position()[:2] - start[:2]) > 0.04:
                break
        moved = np.linalg.norm(env._object_position()[:2] - start[:2])
        assert moved > 0.03, f"the arm did not push the object ({moved:.3f} m)"
        labels = env.instance_labels
        before, after = observation["instance"][..., 0], observation_after["instance"][..., 0]
        object_before, object_after = before == labels[env.object_names[env.object_index]], after == labels[env.object_names[env.object_index]]
        explained = object_before | object_after | (before == labels["robot"]) | (after == labels["robot"])
        explained = ndimage.binary_dilation(explained, iterations=1)
        changed = np.abs(observation_after["rgb"].astype(int) - observation["rgb"].astype(int)).max(-1) > 40
        assert changed[~explained].mean() < 0.01
        assert changed[object_before ^ object_after].mean() > 0.3
        # The object's instance pixels agree with TinyRenderer's silhouette of its body.
        mesh = tinyrenderer_images(env.client_id, env.observation_camera())["segmentation"] == env.object_id
        visible = mesh & ~(after == labels["robot"])
        iou = (object_after & visible).sum() / max(1, (object_after | visible).sum())
        assert iou > 0.4, iou
    finally:
        env.close()


def test_robot_appearances_and_tinyrenderer_observations_agree():
    """Robot as link splats vs TinyRenderer composite vs TinyRenderer-only: same robot pixels."""
    masks = {}
    for name, options in {"splats": {}, "mesh": {"robot_appearance": "mesh"}, "tinyrenderer": {"renderer": "tinyrenderer"}}.items():
        env = PushEnv(width=64, height=64, observation_modes=("rgb", "depth", "instance"), **options)
        try:
            observation, _ = env.reset(seed=1)
            assert env.observation_space.contains(observation), name
            masks[name] = observation["instance"][..., 0] == env.instance_labels["robot"]
        finally:
            env.close()
    for name in ("mesh", "tinyrenderer"):
        iou = (masks[name] & masks["splats"]).sum() / (masks[name] | masks["splats"]).sum()
        assert iou > 0.5, (name, iou)
    assert masks["splats"].sum() > 50


def test_closing_releases_clients_and_fifty_envs_leak_none():
    probe = pybullet.connect(pybullet.DIRECT)
    pybullet.disconnect(probe)
    clients = []
    for index in range(50):
        env = NavigateEnv(width=8, height=8)
        clients.append(env.client_id)
        assert pybullet.isConnected(env.client_id)
        env.close()
        assert not pybullet.isConnected(clients[-1])
        env.close()  # closing twice is harmless
    dropped = NavigateEnv(width=8, height=8)
    dropped_client = dropped.client_id
    del dropped
    gc.collect()
    assert not pybullet.isConnected(dropped_client)
    # PyBullet hands out the lowest free client id: no leak means we get the first one again.
    again = pybullet.connect(pybullet.DIRECT)
    try:
        assert again == probe
    finally:
        pybullet.disconnect(again)


def test_navigate_success_progress_and_collision_free_start():
    env = NavigateEnv(**SMALL)
    try:
        _, info = env.reset(seed=5)
        low, high = env.goal_distance
        assert low - 0.15 <= info["goal_distance"] <= high + 0.15
        assert not info["success"]
        _, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.float32))
        assert not info["collision"] and not terminated and abs(info["reward_progress"]) < 1e-3
        # Turn towards the goal, then drive: progress is positive.
        for _ in range(60):
            state = env._state()
            bearing = np.arctan2(state[3], state[2])
            action = np.array([1.0 if abs(bearing) < 0.3 else 0.0, np.clip(2 * bearing, -1, 1)], dtype=np.float32)
            _, reward, terminated, _, info = env.step(action)
            if terminated:
                break
        assert info["goal_distance"] < low
        # Put the robot on the goal: success, terminated, success reward.
        client = env.client_id
        pybullet.resetBasePositionAndOrientation(env.robot_id, [*env.goal, env._ride_height], [0, 0, 0, 1], physicsClientId=client)
        env._target_xy = np.array(env.goal, dtype=np.float64)
        _, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.float32))
        assert info["success"] and terminated and info["reward_success"] == 5.0
    finally:
        env.close()


def test_wrist_camera_moves_with_the_flange():
    from lyra_sim.envs.tasks.push import WRIST_CAMERA

    env = PushEnv(width=32, height=32, observation_modes=("instance",), camera=WRIST_CAMERA)
    try:
        observation, _ = env.reset(seed=0)
        assert (observation["instance"] == env.instance_labels["robot"]).mean() > 0.05  # it sees the arm's end
        camera_before, flange_before = env.observation_camera().position[0].numpy(), env._flange_position()
        for _ in range(4):
            env.step(np.array([1.0, 0.0], dtype=np.float32))
        camera_after, flange_after = env.observation_camera().position[0].numpy(), env._flange_position()
        assert np.linalg.norm(flange_after - flange_before) > 0.04
        np.testing.assert_allclose(camera_after - camera_before, flange_after - flange_before, atol=0.02)
    finally:
        env.close()


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(BundleError, match="nowhere"):
        NavigateEnv(bundle=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="observation_modes='normals'"):
        NavigateEnv(observation_modes=("rgb", "normals"))
    with pytest.raises(ValueError, match="render_mode='human'"):
        NavigateEnv(render_mode="human")
    with pytest.raises(ValueError, match="robot_appearance"):
        NavigateEnv(robot_appearance="ghost")
    env = NavigateEnv(width=8, height=8, camera=CameraMount(position=(0, 0, 0.2), target=(1, 0, 0.2), link="no_such_link"))
    try:
        with pytest.raises(ValueError, match="no_such_link"):
            env.reset(seed=0)
        with pytest.raises(ValueError, match=r"action must have shape \[2\]"):
            env.step(np.zeros(3))
    finally:
        env.close()
    with pytest.raises(BundleError, match="no object 'teapot'"):
        PushEnv(push_object="teapot")


def test_reward_weights_are_constructor_arguments():
    default, scaled = NavigateEnv(**SMALL), NavigateEnv(reward_progress=10.0, reward_success=0.0, **SMALL)
    try:
        default.reset(seed=5)
        scaled.reset(seed=5)
        action = np.array([1.0, 0.0], np.float32)
        _, _, _, _, info_default = default.step(action)
        _, reward, _, _, info_scaled = scaled.step(action)
        assert info_default["reward_progress"] != 0.0
        assert info_scaled["reward_progress"] == pytest.approx(2.0 * info_default["reward_progress"])
        assert reward == pytest.approx(sum(v for k, v in info_scaled.items() if k.startswith("reward_")))
        assert scaled.reward_weights == {"progress": 10.0, "collision": -0.1, "success": 0.0}
    finally:
        default.close()
        scaled.close()
    assert PushEnv.__init__.__kwdefaults__["reward_push"] == 10.0


def test_generic_vector_factory_and_public_two_phase_step():
    from lyra_sim.envs.vector import LyraSimVectorEnv, make_vector_env

    with pytest.raises(TypeError, match="LyraSimEnv subclass"):
        make_vector_env("gymnasium.envs.classic_control:CartPoleEnv", 1)
    vector = make_vector_env("lyra_sim.envs.tasks.navigate:NavigateEnv", 1, **SMALL)
    single = NavigateEnv(**SMALL)
    try:
        assert isinstance(vector, LyraSimVectorEnv)
        vector.reset(seed=2)
        single.reset_physics(seed=2)
        first, _ = single.reset_observe(single.pipeline.render_observation())
        action = np.array([0.5, 0.2], np.float32)
        batched, _, _, _, _ = vector.step(action[None])
        single.step_physics(action)
        observation, *_ = single.step_observe(single.pipeline.render_observation())
        np.testing.assert_allclose(batched["state"][0], observation["state"], rtol=1e-6)
        assert np.abs(batched["rgb"][0].astype(int) - observation["rgb"].astype(int)).max() <= 3
    finally:
        vector.close()
        single.close()


def test_env_num_threads_argument_sets_the_renderer_threads():
    previous = lyra_sim.get_num_threads()
    env = NavigateEnv(num_threads=1, **SMALL)
    try:
        assert lyra_sim.get_num_threads() == 1
    finally:
        env.close()
        lyra_sim.set_num_threads(previous)


def test_sh_degree_auto_drops_view_dependence_for_small_observations_only(monkeypatch):
    import dataclasses

    import lyra_sim.render.api as api

    env = NavigateEnv(render_mode="rgb_array", render_width=32, render_height=32, **SMALL)  # sh_degree="auto"
    settings = env.pipeline.settings
    assert settings.sh_degree == "auto" and settings.observation_sh_degree == 0 and settings.view_sh_degree is None
    large = dataclasses.replace(settings, width=lyra_sim.envs.constants.AUTO_SH0_MAX_SIZE + 1)
    assert large.observation_sh_degree is None  # large observations keep all the bundle's bands
    seen = []
    original = api.render
    monkeypatch.setattr(api, "render", lambda *args, **kwargs: seen.append(kwargs["sh_degree"]) or original(*args, **kwargs))
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert seen and set(seen) == {0}
    seen.clear()
    env.render()
    assert seen == [None]
    env.close()
    explicit = NavigateEnv(sh_degree=None, **SMALL)
    assert explicit.pipeline.settings.observation_sh_degree is None and explicit.pipeline.settings.view_sh_degree is None
    explicit.close()
    for bad in (4, "full", 1.5):
        with pytest.raises(ValueError, match="sh_degree"):
            NavigateEnv(sh_degree=bad, **SMALL)

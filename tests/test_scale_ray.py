"""Scale-out on a local Ray started here (``ray.init(num_cpus=2)``): ``lyra-sim build-many`` over
tiny scenes (one corrupt), resuming, and ``RayVectorEnv`` against the local vector env step for
step. Bundles are tiny (3000 Gaussians, 48 px depth, 2 cm voxels) and rollouts short."""

from __future__ import annotations

import json
import os
import sys

import gymnasium
import numpy as np
import pytest

import lyra_sim.envs  # noqa: F401 - registers the ids
from lyra_sim.cli import main
from lyra_sim.geometry.analytic import tabletop_scene
from lyra_sim.geometry.mesh import write_obj
from lyra_sim.scene.io import save_scene

ray = pytest.importorskip("ray", reason="the [ray] extra is part of [dev]; install it with pip install -e '.[dev]'")

TINY_BUILD = ["--image-size", "48", "--voxel-size", "0.02", "--backend", "cpu", "--convex-method", "vhacd", "--no-progress"]
SMALL_ENV = {"width": 16, "height": 16, "render_backend": "cpu"}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _tiny_scene(folder, name: str, seed: int, truth: bool = False):
    analytic = tabletop_scene(3000, floor_size=1.0, boxes=((0.1, 0.05, 0.0, 0.3, 0.2, 0.25),), sphere=None, seed=seed)
    path = save_scene(analytic.scene, folder / f"{name}.ply")
    if truth:
        write_obj(folder / f"{name}.truth.obj", [(part.name, part.surface) for part in analytic.parts])
    return path


def test_build_many_isolates_a_corrupt_file_scores_against_truth_and_resumes(tmp_path, capsys):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    good_a = _tiny_scene(scenes, "kitchen", seed=0, truth=True)
    good_b = _tiny_scene(scenes, "garage", seed=1)
    corrupt = scenes / "broken.ply"
    corrupt.write_bytes(good_b.read_bytes()[:300])  # a header and a truncated body
    out = tmp_path / "bundles"
    args = ["build-many", str(good_a), str(corrupt), str(good_b), "-o", str(out), *TINY_BUILD]

    assert main(args) == 1  # one scene failed
    table = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["build-many.json", "garage", "kitchen"]  # no temporary left
    report = json.loads((out / "build-many.json").read_text())
    rows = {row["name"]: row for row in report["scenes"]}
    assert report["totals"] == {"built": 2, "skipped": 0, "failed": 1}
    assert rows["broken"]["status"] == "failed" and str(corrupt) in rows["broken"]["error"]
    assert "lyra_build_many_" not in rows["broken"]["error"]  # the user's path, not the worker's copy
    assert rows["kitchen"]["status"] == rows["garage"]["status"] == "built"
    assert rows["kitchen"]["fscore"] > 0.8 and rows["kitchen"]["accuracy"]["threshold"] == 0.01
    assert rows["garage"]["fscore"] is None  # no truth beside it
    assert "broken" in table and "failed" in table and f"{rows['kitchen']['fscore']:.3f}" in table
    for name, source in (("kitchen", good_a), ("garage", good_b)):
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert manifest["source"]["path"] == str(source)
        from lyra_sim.bundle import load_bundle

        assert len(load_bundle(out / name).background_scene()) > 1000

    # Rerun: the finished bundles are skipped (untouched), the corrupt file fails again.
    stamp = (out / "kitchen" / "manifest.json").stat().st_mtime_ns
    assert main(args) == 1
    report = json.loads((out / "build-many.json").read_text())
    assert report["totals"] == {"built": 0, "skipped": 2, "failed": 1}
    assert (out / "kitchen" / "manifest.json").stat().st_mtime_ns == stamp
    kept = {row["name"]: row for row in report["scenes"]}["kitchen"]
    assert kept["status"] == "skipped" and kept["fscore"] == rows["kitchen"]["fscore"]  # the score it was built with

    # A changed source is rebuilt; the unchanged one is still skipped.
    _tiny_scene(scenes, "garage", seed=5)
    assert main(["build-many", str(good_a), str(good_b), "-o", str(out), *TINY_BUILD]) == 0
    rows = {row["name"]: row["status"] for row in json.loads((out / "build-many.json").read_text())["scenes"]}
    assert rows == {"kitchen": "skipped", "garage": "built"}


# Rendered images may differ in their last bits between processes: numba's fastmath kernels
# compiled fresh and the same kernels loaded from its on-disk cache rounded 58-117 depth pixels of
# a 2 x 16 x 16 rollout differently (at most 3e-7 m, 4e-7 relative), and on a fresh machine the
# test process and the Ray actors do not all compile. Physics, state, rewards and flags must
# match exactly; images to float rounding (depth) and one colour level (rgb).
_RENDERED = {"depth": {"rtol": 1e-5, "atol": 1e-6}, "rgb": {"rtol": 0, "atol": 1}}


def _assert_same_observation(local, remote, step: int) -> None:
    for key in local:
        if key in _RENDERED:
            close = np.allclose(local[key].astype(np.float64), remote[key].astype(np.float64), **_RENDERED[key])
            assert close and local[key].dtype == remote[key].dtype, f"step {step}: observation {key!r} differs"
        else:
            assert np.array_equal(local[key], remote[key]), f"step {step}: observation {key!r} differs"


def _assert_same_step(local_result, remote_result, step: int) -> None:
    (lo, lr, lt, ltr, li), (ro, rr, rt, rtr, ri) = local_result, remote_result
    _assert_same_observation(lo, ro, step)
    assert np.array_equal(lr, rr), f"step {step}: rewards {lr} vs {rr}"
    assert np.array_equal(lt, rt) and np.array_equal(ltr, rtr), f"step {step}: done flags differ"
    assert set(li) == set(ri)
    for key in li:
        assert np.array_equal(np.asarray(li[key]), np.asarray(ri[key])), f"step {step}: info {key!r} differs"


def test_ray_vector_env_equals_the_local_vector_env_step_for_step():
    from lyra_sim.envs.vector import LyraSimVectorEnv
    from lyra_sim.scale.ray_vector import RayVectorEnv, make_ray_vector_env

    local = gymnasium.make_vec("LyraSim/Navigate-v0", num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=4, **SMALL_ENV)
    assert isinstance(local, LyraSimVectorEnv)
    remote = make_ray_vector_env("LyraSim/Navigate-v0", 2, max_episode_steps=4, **SMALL_ENV)
    try:
        assert isinstance(remote, RayVectorEnv) and remote.num_envs == 2
        assert remote.single_observation_space == local.single_observation_space
        assert remote.action_space == local.action_space
        assert len(set(remote.actor_pids)) == 2 and os.getpid() not in remote.actor_pids  # a process per actor
        local_obs, local_info = local.reset(seed=7)
        remote_obs, remote_info = remote.reset(seed=7)
        _assert_same_step((local_obs, 0, False, False, local_info), (remote_obs, 0, False, False, remote_info), -1)
        actions = np.random.default_rng(3).uniform(-1, 1, (10,) + local.action_space.shape).astype(np.float32)
        ended = 0
        for step, action in enumerate(actions):
            local_result, remote_result = local.step(action), remote.step(action)
            _assert_same_step(local_result, remote_result, step)
            ended += int(local_result[3].any())
        assert ended == 2  # truncated at steps 4 and 9, and autoreset in between (NEXT_STEP)
        with pytest.raises(ValueError, match="shape"):
            remote.step(np.zeros((3,) + local.single_action_space.shape, np.float32))
    finally:
        remote.close()
        local.close()


def test_ray_actors_hold_different_bundles_like_a_sync_vector_env():
    from gymnasium.vector import SyncVectorEnv

    from lyra_sim.scale.ray_vector import make_ray_vector_env

    bundles = ["room", "tabletop"]
    kwargs = {**SMALL_ENV, "max_episode_steps": 5}
    remote = make_ray_vector_env("LyraSim/Navigate-v0", bundles=bundles, **kwargs)
    # Depth bounds differ with each bundle's size: the same shapes, so "different" batches them alike.
    sync = SyncVectorEnv([lambda b=b: gymnasium.make("LyraSim/Navigate-v0", bundle=b, **kwargs) for b in bundles], observation_mode="different")
    try:
        paths = remote.get_attr("bundle_path")
        assert [p.name for p in paths] == bundles
        results = [sync.reset(seed=11), remote.reset(seed=11)]
        assert not np.array_equal(results[1][0]["rgb"][0], results[1][0]["rgb"][1])  # two different scenes
        _assert_same_observation(results[0][0], results[1][0], -1)
        for step, action in enumerate(np.random.default_rng(1).uniform(-1, 1, (6, 2, 2)).astype(np.float32)):
            _assert_same_step(sync.step(action), remote.step(action), step)
    finally:
        remote.close()
        sync.close()


def test_stable_baselines3_trains_on_ray_actors_through_the_adapter():
    sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is part of [dev]")
    from lyra_sim.scale.ray_vector import make_ray_vector_env
    from lyra_sim.scale.sb3 import GymnasiumVecEnvForSB3

    with pytest.raises(ValueError, match="SAME_STEP"):
        GymnasiumVecEnvForSB3(gymnasium.make_vec("LyraSim/Navigate-v0", num_envs=1, **SMALL_ENV))
    vector = make_ray_vector_env("LyraSim/Navigate-v0", 2, autoreset_mode="same_step", max_episode_steps=3,
                                 observation_modes=("rgb",), **{**SMALL_ENV, "width": 36, "height": 36})  # NatureCNN: >= 36 px
    env = GymnasiumVecEnvForSB3(vector)
    try:
        env.seed(4)
        first = env.reset()
        assert first["rgb"].shape == (2, 36, 36, 3) and first["state"].shape[0] == 2
        for step in range(3):
            observations, rewards, dones, infos = env.step(np.zeros((2, 2), np.float32))
        assert dones.all() and rewards.dtype == np.float32
        for info in infos:
            assert info["TimeLimit.truncated"] is True
            assert info["terminal_observation"]["rgb"].shape == (36, 36, 3)
        # The observation returned with done is already the next episode's first one.
        assert not np.array_equal(observations["state"], np.stack([i["terminal_observation"]["state"] for i in infos]))
        model = sb3.PPO("MultiInputPolicy", env, n_steps=4, batch_size=8, n_epochs=1, seed=0,
                        policy_kwargs={"net_arch": [16], "features_extractor_kwargs": {"cnn_output_dim": 8}}, verbose=0)
        model.learn(total_timesteps=8)
        assert model.num_timesteps == 8
    finally:
        env.close()


def test_unbatch_info_reads_one_env_from_gymnasium_batched_infos():
    from lyra_sim.scale.sb3 import unbatch_info

    infos = {"a": np.array([1, 2]), "_a": np.array([True, False]), "nested": {"x": np.array([3.0, 4.0]), "_x": np.array([False, True])},
             "_nested": np.array([True, True])}
    assert unbatch_info(infos, 0) == {"a": 1, "nested": {}}
    assert unbatch_info(infos, 1) == {"nested": {"x": 4.0}}


def test_without_ray_the_commands_name_the_extra(tmp_path, capsys, monkeypatch):
    from lyra_sim.errors import MissingDependencyError
    from lyra_sim.scale.ray_vector import make_ray_vector_env

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    scene = _tiny_scene(tmp_path, "one", seed=0)
    assert main(["build-many", str(scene), "-o", str(tmp_path / "out"), "--no-progress"]) == 1
    assert "lyra-sim[ray]" in capsys.readouterr().err
    with pytest.raises(MissingDependencyError, match=r"lyra-sim\[ray\]"):
        make_ray_vector_env("LyraSim/Navigate-v0", 1)

"""``RayVectorEnv``: a Gymnasium ``VectorEnv`` whose sub-environments live in Ray actors.

Each actor is one Ray worker process holding one environment (made by its own factory, so each
may load its own bundle: one policy trains over many scenes), running one thread (torch and
numba limited to the actor's CPUs). ``step`` sends every actor its action at once and gathers
the results, so the envs step in parallel across the cores or machines of the Ray cluster.

The semantics are Gymnasium's ``SyncVectorEnv``'s: seeds ``seed + i`` from ``reset(seed=int)``,
``AutoresetMode.NEXT_STEP`` by default (the step after an episode ends resets that env and
returns its first observation with reward 0; ``SAME_STEP`` puts ``final_obs``/``final_info`` in
the infos), infos merged with ``VectorEnv._add_info``. Because every sub-env runs the same code
as in one process, the same seeds and actions give the same trajectories as
``gymnasium.make_vec(id, vectorization_mode="vector_entry_point")`` (``LyraSimVectorEnv`` with
env-by-env rendering, the CPU default) and as ``SyncVectorEnv``.

This module may import gymnasium, numpy, lyra_sim.scale and, lazily, ray and lyra_sim.envs.
"""

from __future__ import annotations

import os
from copy import deepcopy
from typing import Any, Callable, Sequence

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.spaces.utils import is_space_dtype_shape_equiv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from lyra_sim.scale import connect, limit_threads


def parse_autoreset_mode(value: AutoresetMode | str) -> AutoresetMode:
    """An ``AutoresetMode`` from itself, its value ("SameStep") or its name in any case ("same_step")."""
    if isinstance(value, AutoresetMode):
        return value
    for mode in AutoresetMode:
        if str(value).replace("_", "").lower() in (mode.value.lower(), mode.name.replace("_", "").lower()):
            return mode
    raise ValueError(f"autoreset_mode {value!r} is not one of {[m.name.lower() for m in AutoresetMode]}")


class EnvWorker:
    """The actor body: one environment, stepped with Gymnasium's autoreset rule of its vector env."""

    def __init__(self, env_fn: Callable[[], gymnasium.Env], threads: int, autoreset_mode: str) -> None:
        limit_threads(threads)
        import lyra_sim.envs  # noqa: F401 - registers the ids in this worker process

        self.env = env_fn()
        self.autoreset_mode = parse_autoreset_mode(autoreset_mode)
        self.needs_reset = False

    def describe(self) -> dict[str, Any]:
        env = self.env
        return {"pid": os.getpid(), "observation_space": env.observation_space, "action_space": env.action_space,
                "metadata": env.metadata, "render_mode": env.render_mode, "spec": env.spec}

    def reset(self, seed: int | None, options: dict | None):
        self.needs_reset = False
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        """(observation, reward, terminated, truncated, info, final) where ``final`` is the
        (observation, info) an episode ended with under SAME_STEP, else None."""
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self.needs_reset:
            observation, info = self.env.reset()
            self.needs_reset = False
            return observation, 0.0, False, False, info, None
        observation, reward, terminated, truncated, info = self.env.step(action)
        final = None
        if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminated or truncated):
            final = (observation, info)
            observation, info = self.env.reset()
        else:
            self.needs_reset = bool(terminated or truncated)
        return observation, float(reward), bool(terminated), bool(truncated), info, final

    def render(self):
        return self.env.render()

    def call(self, name: str, args: tuple, kwargs: dict):
        attribute = self.env.get_wrapper_attr(name)  # through the wrappers, as SyncVectorEnv.call
        return attribute(*args, **kwargs) if callable(attribute) else attribute

    def set_attr(self, name: str, value) -> None:
        self.env.set_wrapper_attr(name, value)

    def close(self) -> None:
        self.env.close()


class RayVectorEnv(VectorEnv):
    """``len(env_fns)`` environments, each in its own Ray actor, with the Gymnasium vector API.

    Args:
        env_fns: one zero-argument factory per sub-env (pickled to its actor, like
            ``AsyncVectorEnv``'s); see :func:`make_ray_vector_env` for registered ids.
        cpus_per_actor: Ray CPUs reserved by each actor and its torch/numba thread count.
        autoreset_mode: ``AutoresetMode.NEXT_STEP`` (default, as the local vector env) or
            ``SAME_STEP`` (what Stable-Baselines3 expects; see ``lyra_sim.scale.sb3``), or
            their names as strings ("next_step", "same_step").
        address: Ray address when this process is not connected yet (None: local Ray or
            ``$RAY_ADDRESS``; "auto"; "ray://HEAD:10001"). A Ray started here is shut down by
            ``close()``.
        actor_options: extra ``ray.remote`` options for the actors (``resources``,
            ``scheduling_strategy``, ``runtime_env``...).

    Observations, rewards, terminations and truncations are batched along the first axis.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gymnasium.Env]],
        *,
        cpus_per_actor: float = 1,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        address: str | None = None,
        actor_options: dict | None = None,
    ) -> None:
        self.actors: list = []
        if len(env_fns) < 1:
            raise ValueError("RayVectorEnv needs at least one env factory")
        if cpus_per_actor <= 0:
            raise ValueError(f"cpus_per_actor must be > 0, got {cpus_per_actor}")
        autoreset_mode = parse_autoreset_mode(autoreset_mode)
        if autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError("RayVectorEnv supports AutoresetMode.NEXT_STEP and SAME_STEP")
        self._ray, self._owns_ray = connect(address, "RayVectorEnv")
        ray = self._ray
        actor_class = ray.remote(EnvWorker).options(num_cpus=cpus_per_actor, max_concurrency=1, **(actor_options or {}))
        threads = max(1, round(cpus_per_actor))
        self.actors = [actor_class.remote(env_fn, threads, autoreset_mode.value) for env_fn in env_fns]
        try:
            described = ray.get([actor.describe.remote() for actor in self.actors])
        except Exception:
            self._kill_actors()
            raise
        first = described[0]
        for k, other in enumerate(described[1:], start=1):
            # As SyncVectorEnv: bounds may differ (a depth range from each bundle's size), shapes and dtypes may not.
            if not (is_space_dtype_shape_equiv(other["observation_space"], first["observation_space"])
                    and is_space_dtype_shape_equiv(other["action_space"], first["action_space"])):
                self._kill_actors()
                raise ValueError(f"sub-env {k} has spaces {other['observation_space']} / {other['action_space']}, "
                                 f"sub-env 0 has {first['observation_space']} / {first['action_space']}: "
                                 "a vector env needs the same shapes and dtypes")
        self.num_envs = len(self.actors)
        self.actor_pids = [d["pid"] for d in described]
        self.autoreset_mode = autoreset_mode
        self.render_mode = first["render_mode"]
        self.spec = first["spec"]
        self.metadata = {**first["metadata"], "autoreset_mode": autoreset_mode}
        self.single_observation_space = first["observation_space"]
        self.single_action_space = first["action_space"]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._observations = create_empty_array(self.single_observation_space, n=self.num_envs, fn=np.zeros)

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        # As SyncVectorEnv: one seed per env, or seed + i from one int.
        single = seed is None or isinstance(seed, (int, np.integer))
        seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)] if single else list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset(seed=...) needs {self.num_envs} seeds, got {len(seeds)}")
        replies = self._ray.get([actor.reset.remote(s, options) for actor, s in zip(self.actors, seeds)])
        infos: dict = {}
        for i, (_, info) in enumerate(replies):
            infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, [r[0] for r in replies], self._observations)
        return deepcopy(self._observations), infos

    def step(self, actions):
        actions = np.asarray(actions) if not isinstance(self.single_action_space, gymnasium.spaces.Dict) else actions
        if isinstance(actions, np.ndarray) and actions.shape[:1] != (self.num_envs,):
            raise ValueError(f"actions must have shape {list(self.action_space.shape)}, got {list(actions.shape)}")
        replies = self._ray.get([actor.step.remote(action) for actor, action in zip(self.actors, iterate(self.action_space, actions))])
        rewards = np.array([r[1] for r in replies], dtype=np.float64)
        terminations = np.array([r[2] for r in replies], dtype=bool)
        truncations = np.array([r[3] for r in replies], dtype=bool)
        infos: dict = {}
        for i, (_, _, _, _, info, final) in enumerate(replies):
            if final is not None:
                infos = self._add_info(infos, {"final_obs": final[0], "final_info": final[1]}, i)
            infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, [r[0] for r in replies], self._observations)
        return deepcopy(self._observations), rewards, terminations, truncations, infos

    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return tuple(self._ray.get([actor.render.remote() for actor in self.actors]))

    def call(self, name: str, *args, **kwargs) -> tuple[Any, ...]:
        """``getattr(env, name)(*args, **kwargs)`` (or the attribute itself) in every sub-env."""
        return tuple(self._ray.get([actor.call.remote(name, args, kwargs) for actor in self.actors]))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return self.call(name)

    def set_attr(self, name: str, values) -> None:
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs {self.num_envs} values, got {len(values)}")
        self._ray.get([actor.set_attr.remote(name, value) for actor, value in zip(self.actors, values)])

    def close_extras(self, **kwargs) -> None:
        if not self.actors:
            return
        try:
            self._ray.get([actor.close.remote() for actor in self.actors])
        finally:
            self._kill_actors()
            if self._owns_ray:
                self._ray.shutdown()

    def _kill_actors(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []


def make_ray_vector_env(
    env_id: str,
    num_envs: int | None = None,
    *,
    bundles: Sequence[str] | None = None,
    cpus_per_actor: float = 1,
    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    address: str | None = None,
    **env_kwargs,
) -> RayVectorEnv:
    """A ``RayVectorEnv`` of ``gymnasium.make(env_id, **env_kwargs)`` envs (registered
    ``max_episode_steps`` included).

    ``bundles``: one bundle per actor (its length is ``num_envs`` when that is None); with
    ``num_envs`` larger, the bundles are used in turn. Without ``bundles``, every env gets the
    task's default bundle (or ``env_kwargs["bundle"]``).
    """
    if bundles is not None:
        bundles = [str(b) for b in bundles]
        if not bundles:
            raise ValueError("bundles is empty")
        num_envs = len(bundles) if num_envs is None else num_envs
    if num_envs is None or num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    factories = []
    for i in range(num_envs):
        kwargs = dict(env_kwargs)
        if bundles is not None:
            kwargs["bundle"] = bundles[i % len(bundles)]
        factories.append(_EnvFactory(env_id, kwargs))
    return RayVectorEnv(factories, cpus_per_actor=cpus_per_actor, autoreset_mode=autoreset_mode, address=address)


class _EnvFactory:
    """A picklable ``lambda: gymnasium.make(env_id, **kwargs)``."""

    def __init__(self, env_id: str, kwargs: dict) -> None:
        self.env_id, self.kwargs = env_id, kwargs

    def __call__(self) -> gymnasium.Env:
        return gymnasium.make(self.env_id, **self.kwargs)


__all__ = ["EnvWorker", "RayVectorEnv", "make_ray_vector_env"]

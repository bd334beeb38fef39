"""``LyraSimVectorEnv``: N lyra-sim envs in lockstep, all their cameras rendered in one batched call.

The renderer draws C cameras in one call, and ``render(..., camera_ranges=)`` lets camera i see
only Gaussians [start_i, end_i): the vector env keeps one buffer holding every env's composed
scene back to back, prepared once for the CPU renderer (``lyra_sim.render.prepared``), and each
step copies only the moving Gaussians of each env into it. So one batched call does the same
projection work as N separate renders, with one fork/join per stage instead of N.

Every sub-env is stepped through its public two halves (``step_physics``, then ``step_observe``
with its slice of the batched render; ``reset_physics`` / ``reset_observe`` likewise).
:func:`make_vector_env` is the one ``vector_entry_point`` of every registered task.

Autoreset follows Gymnasium 1.x's default, ``AutoresetMode.NEXT_STEP``: the step after an
episode ends resets that sub-env and returns its first observation with reward 0.

This module may import gymnasium, numpy, torch and ``lyra_sim`` (envs, render, scene).
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lyra_sim.envs.base import LyraSimEnv
from lyra_sim.render.camera import Camera
from lyra_sim.render.prepared import PreparedScene
from lyra_sim.scene.gaussian_scene import GaussianScene


class LyraSimVectorEnv(VectorEnv):
    """``num_envs`` copies of ``env_class`` stepped together with one batched splat render per step.

    Args:
        env_class: a ``LyraSimEnv`` subclass (``NavigateEnv``, ``PushEnv``).
        num_envs: number of sub-environments (>= 1).
        max_episode_steps: truncate episodes after this many steps (the registered value when
            made with ``gymnasium.make_vec``); None for no limit.
        render_mode: passed to every sub-env; ``render()`` returns a tuple of their frames.
        batch_render: True (default) renders every env's camera in one call, each camera seeing
            only its own env's Gaussians; False renders env by env (same images).
        **env_kwargs: passed to every sub-env.

    Observations, rewards, terminations and truncations are batched along the first axis; infos
    follow ``VectorEnv``'s convention (arrays plus ``_key`` masks).
    """

    def __init__(
        self,
        env_class: type[LyraSimEnv],
        num_envs: int,
        *,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        batch_render: bool | None = None,
        **env_kwargs,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.envs = [env_class(render_mode=render_mode, **env_kwargs) for _ in range(num_envs)]
        first = self.envs[0]
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.metadata = {**first.metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self.batch_render = True if batch_render is None else bool(batch_render)
        self._batched = self.batch_render and first.renderer == "splat"
        if self._batched:
            self._build_batch_buffer()

    # ----------------------------------------------------------------- batched scene
    def _build_batch_buffer(self) -> None:
        """One buffer of every env's composed scene back to back, raw and prepared."""
        composed = [env.pipeline.composed for env in self.envs]
        self._sizes = [len(c) for c in composed]
        starts = np.concatenate([[0], np.cumsum(self._sizes)]).astype(np.int64)
        self._ranges = np.stack([starts[:-1], starts[1:]], axis=1)  # [E, 2]
        raw = [np.concatenate([c.arrays()[k] for c in composed]) for k in range(5)]
        self._raw = raw
        scene = GaussianScene(*(torch.from_numpy(a) for a in raw), metadata=composed[0].scene.metadata)
        self._prepared = PreparedScene.concat([c.prepared for c in composed], scene)
        self._labels = torch.cat([c.labels for c in composed])

    def _sync_batch_buffer(self) -> None:
        """Copy every env's moving Gaussians (raw and prepared) into the batch buffer."""
        for i, env in enumerate(self.envs):
            composed = env.pipeline.composed
            dynamic = composed.dynamic_slice
            start = int(self._ranges[i, 0])
            target = slice(start + dynamic.start, start + dynamic.stop)
            for buffer, source in zip(self._raw, composed.arrays()):
                buffer[target] = source[dynamic]
            for name, source in composed.prepared.arrays.items():
                self._prepared.arrays[name][..., target] = source[..., dynamic]

    def _render_all(self) -> list[tuple[dict[str, torch.Tensor] | None, int]]:
        """(render, index) per env: one batched render of every camera, or each env's own."""
        if not self._batched:
            return [(env.pipeline.render_observation(), 0) for env in self.envs]
        from lyra_sim.render.api import render

        self._sync_batch_buffer()
        first = self.envs[0]
        settings = first.pipeline.settings
        modes = first.pipeline.splat_modes()
        cameras = Camera.stack([env.pipeline.camera() for env in self.envs])
        rendered = render(self._prepared, cameras, modes=modes, backend=settings.backend,
                          background=settings.background_color, sh_degree=settings.observation_sh_degree,
                          labels=self._labels if "instance" in modes else None, camera_ranges=self._ranges)
        return [(rendered, i) for i in range(self.num_envs)]

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=...) needs {self.num_envs} seeds, got {len(seeds)}")
        for env, env_seed in zip(self.envs, seeds):
            env.reset_physics(seed=env_seed, options=options)
        rendered = self._render_all()
        observations, infos = [], {}
        for i, env in enumerate(self.envs):
            observation, info = env.reset_observe(*rendered[i])
            observations.append(observation)
            infos = self._add_info(infos, info, i)
        self._autoreset[:] = False
        return self._stack(observations), infos

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"actions must have shape {list(self.action_space.shape)}, got {list(actions.shape)}")
        resetting = self._autoreset.copy()
        for i, env in enumerate(self.envs):
            if resetting[i]:
                env.reset_physics()
            else:
                env.step_physics(actions[i])
        rendered = self._render_all()
        observations, infos = [], {}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        for i, env in enumerate(self.envs):
            if resetting[i]:
                observation, info = env.reset_observe(*rendered[i])
            else:
                observation, rewards[i], terminations[i], _, info = env.step_observe(*rendered[i])
                truncations[i] = self.max_episode_steps is not None and env.elapsed_steps >= self.max_episode_steps
            observations.append(observation)
            infos = self._add_info(infos, info, i)
        self._autoreset = terminations | truncations
        return self._stack(observations), rewards, terminations, truncations, infos

    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs) -> None:
        for env in self.envs:
            env.close()

    def _stack(self, observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {key: np.stack([o[key] for o in observations]) for key in self.single_observation_space.spaces}


def make_vector_env(entry_point: str | type[LyraSimEnv], num_envs: int = 1, **kwargs) -> LyraSimVectorEnv:
    """The ``vector_entry_point`` of every registered task (``lyra_sim.envs.register_all`` binds
    ``entry_point``, "module:Class" or the class itself); ``gymnasium.make_vec`` passes
    ``num_envs``, ``max_episode_steps`` and the env kwargs."""
    if isinstance(entry_point, str):
        module_name, _, class_name = entry_point.partition(":")
        env_class = getattr(importlib.import_module(module_name), class_name)
    else:
        env_class = entry_point
    if not (isinstance(env_class, type) and issubclass(env_class, LyraSimEnv)):
        raise TypeError(f"make_vector_env needs a LyraSimEnv subclass, got {entry_point!r}")
    return LyraSimVectorEnv(env_class, num_envs, **kwargs)

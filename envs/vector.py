"""``LyraSimVectorEnv``: N lyra-sim envs in lockstep, all their cameras rendered in one batched call
(``batch_render=True``; the default on CUDA) or env by env (the faster choice on CPU).

The renderer draws one Gaussian scene from C cameras, but every env has its own object and
robot poses. So the vector env keeps one large buffer holding a copy of every env's composed
scene, copy i translated by ``i * spacing`` along world x, and moves camera i by the same
offset. ``spacing`` is three far-planes plus twice the scene's size, so another copy is either
beyond the far plane (culled) or more than 70 degrees off-axis (off-screen): each camera sees
only its own env. The static part is copied once; each step copies only the moving Gaussians.

Autoreset follows Gymnasium 1.x's default, ``AutoresetMode.NEXT_STEP``: the step after an
episode ends resets that sub-env and returns its first observation with reward 0.

This module may import gymnasium, numpy, torch and ``lyra_sim`` (envs, render, scene).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lyra_sim.envs.base import LyraSimEnv
from lyra_sim.render.camera import Camera
from lyra_sim.scene.gaussian_scene import GaussianScene


class LyraSimVectorEnv(VectorEnv):
    """``num_envs`` copies of ``env_class`` stepped together with one batched splat render per step.

    Args:
        env_class: a ``LyraSimEnv`` subclass (``NavigateEnv``, ``PushEnv``).
        num_envs: number of sub-environments (>= 1).
        max_episode_steps: truncate episodes after this many steps (the registered value when
            made with ``gymnasium.make_vec``); None for no limit.
        render_mode: passed to every sub-env; ``render()`` returns a tuple of their frames.
        batch_render: True renders all cameras in one call; False renders env by env; None
            (default) picks one call on the gsplat (CUDA) backend and env by env on the CPU
            backend, where ``benchmarks/env_throughput.py`` measures the batched call slower: the
            CPU renderer tests every Gaussian of every copy against every camera, so one call
            does num_envs times the per-env projection work.
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
        if batch_render is None:
            from lyra_sim.render.api import resolve_backend

            batch_render = resolve_backend(first.render_backend) == "gsplat"
        self.batch_render = bool(batch_render)
        self._batched = self.batch_render and first.renderer == "splat"
        if self._batched:
            self._build_batch_buffer()

    # ----------------------------------------------------------------- batched scene
    def _build_batch_buffer(self) -> None:
        first = self.envs[0]
        far = first.camera_far
        self.spacing = 3.0 * far + 2.0 * first.scene_diagonal
        self.offsets = np.zeros((self.num_envs, 3), dtype=np.float32)
        self.offsets[:, 0] = self.spacing * np.arange(self.num_envs)
        arrays = [env.composed.arrays() for env in self.envs]
        self._sizes = [len(env.composed) for env in self.envs]
        self._starts = np.concatenate([[0], np.cumsum(self._sizes)[:-1]]).astype(int)
        self._buffers = [np.concatenate([a[k] for a in arrays]) for k in range(5)]
        for i, start in enumerate(self._starts):
            self._buffers[0][start : start + self._sizes[i]] += self.offsets[i]
        self._tensors = [torch.from_numpy(b) for b in self._buffers]
        self._labels = torch.cat([env.composed.labels for env in self.envs])
        self._metadata = first.composed.scene.metadata

    def _sync_batch_buffer(self) -> None:
        """Copy every env's moving Gaussians (offset) into the batch buffer."""
        for i, env in enumerate(self.envs):
            dynamic = env.composed.dynamic_slice
            target = slice(self._starts[i] + dynamic.start, self._starts[i] + dynamic.stop)
            source = env.composed.arrays()
            for k, buffer in enumerate(self._buffers):
                buffer[target] = source[k][dynamic]
            self._buffers[0][target] += self.offsets[i]

    def _render_all(self) -> list[tuple[dict[str, torch.Tensor] | None, int]]:
        """(render, index) per env: one batched render of every camera, or each env's own."""
        if not self._batched:
            return [(env._render_observation(), 0) for env in self.envs]
        from lyra_sim.render.api import render

        self._sync_batch_buffer()
        cameras = []
        for i, env in enumerate(self.envs):
            camera = env.observation_camera()
            viewmat = camera.viewmat.clone()
            # world -> shifted world is x + offset, so the camera maps x' to R (x' - offset) + t.
            viewmat[:, :3, 3] -= (viewmat[:, :3, :3] @ torch.from_numpy(self.offsets[i]))
            cameras.append(Camera(camera.K, viewmat, camera.width, camera.height, camera.near, camera.far))
        first = self.envs[0]
        modes = first.splat_modes()
        scene = GaussianScene(*self._tensors, metadata=self._metadata)
        rendered = render(scene, Camera.stack(cameras), modes=modes, backend=first.render_backend,
                          background=first.background_color, sh_degree=first.sh_degree,
                          labels=self._labels if "instance" in modes else None)
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
            env._reset_physics(env_seed, options)
        rendered = self._render_all()
        observations, infos = [], {}
        for i, env in enumerate(self.envs):
            observation, info = env._finish_reset(*rendered[i])
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
                env._reset_physics(None, None)
            else:
                env._advance(actions[i])
        rendered = self._render_all()
        observations, infos = [], {}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        for i, env in enumerate(self.envs):
            if resetting[i]:
                observation, info = env._finish_reset(*rendered[i])
            else:
                observation, rewards[i], terminations[i], _, info = env._finish_step(*rendered[i])
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


def navigate_vector_env(num_envs: int = 1, **kwargs) -> LyraSimVectorEnv:
    """``vector_entry_point`` of ``LyraSim/Navigate-v0``."""
    from lyra_sim.envs.tasks.navigate import NavigateEnv

    return LyraSimVectorEnv(NavigateEnv, num_envs, **kwargs)


def push_vector_env(num_envs: int = 1, **kwargs) -> LyraSimVectorEnv:
    """``vector_entry_point`` of ``LyraSim/Push-v0``."""
    from lyra_sim.envs.tasks.push import PushEnv

    return LyraSimVectorEnv(PushEnv, num_envs, **kwargs)

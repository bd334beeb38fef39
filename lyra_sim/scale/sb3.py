"""``GymnasiumVecEnvForSB3``: any Gymnasium ``VectorEnv`` in ``AutoresetMode.SAME_STEP`` (such as
``RayVectorEnv(..., autoreset_mode="same_step")``) as a Stable-Baselines3 ``VecEnv``.

SB3 wants what ``SAME_STEP`` gives: an env that ends an episode is reset in the same step, and
the observation it ended on travels in its info as ``terminal_observation``; SB3 also wants
infos as one dict per env and ``TimeLimit.truncated`` for bootstrapping. This adapter converts
Gymnasium's batched infos (arrays plus ``_key`` masks, ``final_obs``/``final_info``) to that.

This module may import numpy, gymnasium and, lazily, stable_baselines3 (the ``rl`` extra).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from lyra_sim.errors import MissingDependencyError


def _sb3_vec_env_base():
    try:
        from stable_baselines3.common.vec_env import VecEnv
    except ImportError as error:
        raise MissingDependencyError("the SB3 adapter needs stable-baselines3, the [rl] extra: pip install 'lyra-sim[rl]'") from error
    return VecEnv


def unbatch_info(infos: dict, index: int) -> dict[str, Any]:
    """Env ``index``'s own info from Gymnasium's batched ``infos`` (keys whose mask is set)."""
    single = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[index]:
            continue
        single[key] = unbatch_info(value, index) if isinstance(value, dict) else value[index]
    return single


def GymnasiumVecEnvForSB3(vector_env: VectorEnv):  # noqa: N802 - a class factory (SB3 is imported lazily)
    """Wrap ``vector_env`` (``autoreset_mode`` SAME_STEP) as a Stable-Baselines3 ``VecEnv``."""
    base = _sb3_vec_env_base()
    mode = vector_env.metadata.get("autoreset_mode")
    if mode != AutoresetMode.SAME_STEP:
        raise ValueError(f"SB3 needs a vector env with autoreset_mode=AutoresetMode.SAME_STEP, this one has {mode!r}: "
                         "make it with autoreset_mode='same_step'")

    class _Adapter(base):
        def __init__(self) -> None:
            self.vector_env = vector_env
            self._actions = None
            super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)

        def reset(self):
            seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
            options = self._options[0] if any(self._options) else None
            observations, infos = self.vector_env.reset(seed=seeds, options=options)
            self.reset_infos = [unbatch_info(infos, i) for i in range(self.num_envs)]
            self._reset_seeds()
            self._reset_options()
            return observations

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self):
            observations, rewards, terminations, truncations, infos = self.vector_env.step(self._actions)
            dones = terminations | truncations
            per_env = []
            for i in range(self.num_envs):
                info = unbatch_info(infos, i)
                final_obs = info.pop("final_obs", None)
                final_info = info.pop("final_info", None)
                if dones[i]:
                    info = {**(final_info or {}), "terminal_observation": final_obs,
                            "TimeLimit.truncated": bool(truncations[i] and not terminations[i])}
                    self.reset_infos[i] = unbatch_info(infos, i)
                    self.reset_infos[i].pop("final_obs", None)
                    self.reset_infos[i].pop("final_info", None)
                per_env.append(info)
            return observations, rewards.astype(np.float32), dones, per_env

        def close(self) -> None:
            self.vector_env.close()

        def get_attr(self, attr_name: str, indices=None) -> list:
            values = self.vector_env.get_attr(attr_name)
            return [values[i] for i in self._get_indices(indices)]

        def set_attr(self, attr_name: str, value, indices=None) -> None:
            if indices is not None:
                raise NotImplementedError("set_attr on a subset of the envs")
            self.vector_env.set_attr(attr_name, value)

        def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
            values = self.vector_env.call(method_name, *method_args, **method_kwargs)
            return [values[i] for i in self._get_indices(indices)]

        def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
            return [False for _ in self._get_indices(indices)]

        def get_images(self) -> Sequence[np.ndarray | None]:
            frames = self.vector_env.render()
            return list(frames) if frames is not None else [None] * self.num_envs

    _Adapter.__name__ = _Adapter.__qualname__ = "GymnasiumVecEnvForSB3"
    return _Adapter()


__all__ = ["GymnasiumVecEnvForSB3", "unbatch_info"]

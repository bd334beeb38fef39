"""lyra-sim Gymnasium environments; importing this module registers them.

    import gymnasium, lyra_sim.envs
    env = gymnasium.make("LyraSim/Navigate-v0", render_mode="rgb_array")
    envs = gymnasium.make_vec("LyraSim/Navigate-v0", num_envs=8)  # one batched render per step

``gymnasium.make("lyra_sim.envs:LyraSim/Navigate-v0")`` imports and registers in one go.
``REGISTRY`` below is the one registration table (STYLE.md 7). Adding a task touches its file
(``lyra_sim/envs/tasks/<task>.py``) and one entry here: every task gets the generic batched
vector env ``lyra_sim.envs.vector.make_vector_env`` as its ``vector_entry_point``.
"""

from __future__ import annotations

import functools

import gymnasium

# id, single-env entry point, episode length.
REGISTRY = (
    {
        "id": "LyraSim/Navigate-v0",
        "entry_point": "lyra_sim.envs.tasks.navigate:NavigateEnv",
        "max_episode_steps": 200,
    },
    {
        "id": "LyraSim/NavigateDynamic-v0",
        "entry_point": "lyra_sim.envs.tasks.navigate_dynamic:NavigateDynamicEnv",
        "max_episode_steps": 300,
    },
    {
        "id": "LyraSim/Push-v0",
        "entry_point": "lyra_sim.envs.tasks.push:PushEnv",
        "max_episode_steps": 100,
    },
)


def register_all() -> None:
    """Register every id of ``REGISTRY`` that is not registered yet (safe to call twice)."""
    for entry in REGISTRY:
        if entry["id"] not in gymnasium.registry:
            gymnasium.register(**entry, vector_entry_point=functools.partial(_make_vector_env, entry["entry_point"]))


def _make_vector_env(entry_point: str, num_envs: int = 1, **kwargs):
    """``lyra_sim.envs.vector.make_vector_env``, imported on first use (registering stays light)."""
    from lyra_sim.envs.vector import make_vector_env

    return make_vector_env(entry_point, num_envs, **kwargs)


register_all()

__all__ = ["REGISTRY", "register_all"]

"""lyra-sim Gymnasium environments; importing this module registers them.

    import gymnasium, lyra_sim.envs
    env = gymnasium.make("LyraSim/Navigate-v0", render_mode="rgb_array")
    envs = gymnasium.make_vec("LyraSim/Navigate-v0", num_envs=8)  # batch_render=True: one render call

``gymnasium.make("lyra_sim.envs:LyraSim/Navigate-v0")`` imports and registers in one go.
``REGISTRY`` below is the one registration table (STYLE.md 7).
"""

from __future__ import annotations

import gymnasium

# id, single-env entry point, vector entry point (batched rendering), episode length.
REGISTRY = (
    {
        "id": "LyraSim/Navigate-v0",
        "entry_point": "lyra_sim.envs.tasks.navigate:NavigateEnv",
        "vector_entry_point": "lyra_sim.envs.vector:navigate_vector_env",
        "max_episode_steps": 200,
    },
    {
        "id": "LyraSim/Push-v0",
        "entry_point": "lyra_sim.envs.tasks.push:PushEnv",
        "vector_entry_point": "lyra_sim.envs.vector:push_vector_env",
        "max_episode_steps": 100,
    },
)


def register_all() -> None:
    """Register every id of ``REGISTRY`` that is not registered yet (safe to call twice)."""
    for entry in REGISTRY:
        if entry["id"] not in gymnasium.registry:
            gymnasium.register(**entry)


register_all()

__all__ = ["REGISTRY", "register_all"]

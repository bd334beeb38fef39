"""Stable-Baselines3 PPO whose rollouts run in Ray actors, one env (and one bundle) per actor, so
one policy trains over many scenes and the env workers may sit on other machines.

    python examples/train_ppo_ray.py                                  # local Ray, packaged room + tabletop
    python examples/train_ppo_ray.py --bundles bundles/* --address auto --timesteps 200000

Needs the ``ray`` and ``rl`` extras (``pip install -e '.[ray,rl]'``). The pieces:
``make_ray_vector_env(..., autoreset_mode="same_step")`` gives a Gymnasium ``VectorEnv`` of Ray
actors, and ``GymnasiumVecEnvForSB3`` presents it as the ``VecEnv`` SB3 expects.
"""

from __future__ import annotations

import argparse
import time

from lyra_sim.errors import MissingDependencyError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", nargs="+", default=["room", "tabletop"], help="one bundle per actor (used in turn)")
    parser.add_argument("--envs", type=int, default=None, help="actors (default: one per bundle)")
    parser.add_argument("--address", default=None, help="Ray cluster: auto or ray://HEAD:10001 (default: local Ray)")
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--size", type=int, default=36, help="observation size (NatureCNN needs >= 36)")
    parser.add_argument("--model", default=None, help="save the trained policy here (.zip)")
    args = parser.parse_args(argv)
    try:
        from stable_baselines3 import PPO
    except ImportError as error:
        raise MissingDependencyError("train_ppo_ray.py needs stable-baselines3: pip install 'lyra-sim[rl]'") from error
    from lyra_sim.scale.ray_vector import make_ray_vector_env
    from lyra_sim.scale.sb3 import GymnasiumVecEnvForSB3

    vector_env = make_ray_vector_env(
        "LyraSim/Navigate-v0", args.envs, bundles=args.bundles, address=args.address, autoreset_mode="same_step",
        width=args.size, height=args.size, observation_modes=("rgb",), max_episode_steps=150,
    )
    env = GymnasiumVecEnvForSB3(vector_env)
    try:
        model = PPO("MultiInputPolicy", env, n_steps=128, batch_size=128, n_epochs=4, learning_rate=5e-4, gamma=0.97, seed=0, verbose=1)
        started = time.perf_counter()
        model.learn(total_timesteps=args.timesteps)
        seconds = time.perf_counter() - started
        print(f"{model.num_timesteps} steps on {env.num_envs} Ray actors in {seconds:.0f} s ({model.num_timesteps / seconds:.0f} steps/s incl. PPO updates)")
        if args.model:
            model.save(args.model)
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

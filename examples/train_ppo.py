"""Train Stable-Baselines3 PPO on pixels (splat-rendered RGB + the goal vector) for LyraSim/Navigate-v0
and report the learning curve: success rate against environment steps, beside a random policy.

    python examples/train_ppo.py                          # 45k steps (~15 min on 2 cores), 36 px observations
    python examples/train_ppo.py --timesteps 100000 --envs 8 --model navigate_ppo.zip

Needs the ``rl`` extra (``pip install lyra-sim[rl]``). Writes the curve as JSON
(``benchmarks/results/env_ppo_navigate.json`` by default) and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium
import numpy as np

import lyra_sim.envs  # noqa: F401 - registers the ids
from lyra_sim.errors import MissingDependencyError
from lyra_sim.io_utils import write_json

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "env_ppo_navigate.json"


def make_env(size: int, episode_steps: int, goal_distance: tuple[float, float]):
    env = gymnasium.make("LyraSim/Navigate-v0", width=size, height=size, observation_modes=("rgb",),
                         max_episode_steps=episode_steps, goal_distance=goal_distance)
    return env


def evaluate(policy, env, episodes: int, seed: int) -> tuple[float, float]:
    """(success rate, mean return) of ``policy(observation) -> action`` over seeded episodes."""
    successes, returns = 0, []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        total, done, info = 0.0, False, {}
        while not done:
            observation, reward, terminated, truncated, info = env.step(policy(observation))
            total += reward
            done = terminated or truncated
        successes += int(info.get("success", False))
        returns.append(total)
    return successes / episodes, float(np.mean(returns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=45_000)
    parser.add_argument("--envs", type=int, default=4, help="parallel envs (SB3 DummyVecEnv)")
    parser.add_argument("--size", type=int, default=36, help="observation size (NatureCNN needs >= 36)")
    parser.add_argument("--episode-steps", type=int, default=150, help="long enough to turn around and drive 1.2 m")
    parser.add_argument("--goal-distance", type=float, nargs=2, default=(0.4, 1.2))
    parser.add_argument("--eval-every", type=int, default=7_500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=None, help="save the trained policy here (.zip)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env
    except ImportError as error:
        raise MissingDependencyError("train_ppo.py needs stable-baselines3: pip install 'lyra-sim[rl]'") from error

    goal_distance = tuple(args.goal_distance)
    eval_env = make_env(args.size, args.episode_steps, goal_distance)
    eval_seed = 10_000  # evaluation episodes never seen in training
    eval_env.action_space.seed(args.seed)
    random_success, random_return = evaluate(lambda _: eval_env.action_space.sample(), eval_env, args.eval_episodes, eval_seed)
    print(f"random policy: success {random_success:.0%}, return {random_return:.2f}", flush=True)

    curve: list[dict] = []
    started = time.perf_counter()

    class LearningCurve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = 0

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                success, mean_return = evaluate(lambda o: self.model.predict(o, deterministic=True)[0], eval_env, args.eval_episodes, eval_seed)
                curve.append({"timesteps": int(self.num_timesteps), "success_rate": success, "mean_return": mean_return,
                              "wall_seconds": time.perf_counter() - started})
                print(f"{self.num_timesteps:8d} steps: success {success:.0%}, return {mean_return:.2f} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
                self.next_eval += args.eval_every
            return True

    train_env = make_vec_env(lambda: make_env(args.size, args.episode_steps, goal_distance), n_envs=args.envs, seed=args.seed)
    model = PPO("MultiInputPolicy", train_env, n_steps=256, batch_size=256, n_epochs=6, learning_rate=5e-4,
                gamma=0.97, ent_coef=0.005, seed=args.seed, verbose=0)
    callback = LearningCurve()
    model.learn(total_timesteps=args.timesteps, callback=callback, progress_bar=True)
    final_success, final_return = evaluate(lambda o: model.predict(o, deterministic=True)[0], eval_env, args.eval_episodes, eval_seed)
    curve.append({"timesteps": int(model.num_timesteps), "success_rate": final_success, "mean_return": final_return,
                  "wall_seconds": time.perf_counter() - started})
    train_env.close()
    eval_env.close()
    if args.model is not None:
        model.save(args.model)

    print(f"\n{'steps':>8s} {'PPO success':>12s} {'random success':>15s}")
    for point in curve:
        print(f"{point['timesteps']:8d} {point['success_rate']:12.0%} {random_success:15.0%}")
    payload = {
        "env": "LyraSim/Navigate-v0",
        "observation": f"{args.size}x{args.size} splat RGB + goal vector",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "random_policy": {"success_rate": random_success, "mean_return": random_return},
        "curve": curve,
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

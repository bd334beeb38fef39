"""Write a video (MP4 or GIF, by the file extension) of one rollout of a lyra-sim env.

    python examples/rollout_video.py --out navigate.mp4
    python examples/rollout_video.py --env LyraSim/Push-v0 --policy heuristic --out push.gif
    python examples/rollout_video.py --out navigate.mp4 --episode navigate.npz && lyra-sim view --episode navigate.npz

Each frame shows the observation (RGB and depth, upscaled) beside the third-person splat view
of ``render()``. ``--policy heuristic`` drives towards the goal (Navigate) or pushes the object
towards the target (Push) using the env's internal state; ``random`` samples actions.
``--episode FILE.npz`` also records every body's pose per step for ``lyra-sim view --episode``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import gymnasium
import numpy as np
from tqdm.auto import tqdm

import lyra_sim.envs  # noqa: F401 - registers the ids
from lyra_sim.io_utils import atomic_path


def heuristic_action(env) -> np.ndarray:
    """A scripted policy from the env's privileged state: good enough to make a video worth watching."""
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "goal"):  # Navigate: turn to the goal, drive when facing it
        state = unwrapped._state()
        bearing = float(np.arctan2(state[3], state[2]))
        return np.array([1.0 if abs(bearing) < 0.4 else 0.1, np.clip(2.0 * bearing, -1, 1)], dtype=np.float32)
    # Push: go behind the object (opposite the target), then push through it.
    object_xy = unwrapped._object_position()[:2]
    flange_xy = unwrapped._flange_position()[:2]
    direction = unwrapped.target - object_xy
    direction /= max(np.linalg.norm(direction), 1e-6)
    behind = object_xy - 0.09 * direction
    waypoint = behind if np.linalg.norm(flange_xy - behind) > 0.03 and np.dot(flange_xy - object_xy, direction) > -0.05 else object_xy + 0.05 * direction
    return np.clip((waypoint - flange_xy) / 0.02, -1, 1).astype(np.float32)


def depth_to_rgb(depth: np.ndarray, far: float) -> np.ndarray:  # [H, W, 1] metres -> [H, W, 3] uint8
    """Near is bright; scaled to the frame's own depth range (up to ``far``) so it keeps contrast."""
    valid = depth[..., 0][depth[..., 0] > 0]
    farthest = min(far, float(np.percentile(valid, 99))) if valid.size else far
    scaled = np.where(depth[..., 0] > 0, 1.0 - np.clip(depth[..., 0] / max(farthest, 1e-6), 0, 0.9), 0.0)
    return np.repeat((scaled * 255).astype(np.uint8)[..., None], 3, axis=2)


def compose_frame(observation: dict, view: np.ndarray, far: float) -> np.ndarray:
    size = view.shape[0]
    tiles = []
    if "rgb" in observation:
        tiles.append(observation["rgb"])
    if "depth" in observation:
        tiles.append(depth_to_rgb(observation["depth"], far))
    scale = max(1, size // (2 * tiles[0].shape[0]))
    upscaled = [np.kron(t, np.ones((scale, scale, 1), dtype=np.uint8)) for t in tiles]
    column = np.concatenate(upscaled, axis=0)
    column = np.pad(column, ((0, max(0, size - column.shape[0])), (0, 0), (0, 0)))[:size]
    return np.concatenate([column, view], axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="LyraSim/Navigate-v0", help="registered env id")
    parser.add_argument("--out", type=Path, default=Path("rollout.mp4"), help=".mp4 or .gif")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", choices=["heuristic", "random"], default="heuristic")
    parser.add_argument("--size", type=int, default=64, help="observation size")
    parser.add_argument("--view-size", type=int, default=256, help="third-person view size")
    parser.add_argument("--bundle", default=None, help="SimBundle directory (default: the env's packaged bundle)")
    parser.add_argument("--episode", type=Path, default=None, help="also write the bodies' poses per step (.npz) for `lyra-sim view --episode`")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in (".mp4", ".gif"):
        parser.error(f"--out must end in .mp4 or .gif, got {args.out}")
    if args.episode is not None and args.episode.suffix != ".npz":
        parser.error(f"--episode must end in .npz, got {args.episode}")

    options = {"bundle": args.bundle} if args.bundle else {}
    env = gymnasium.make(args.env, render_mode="rgb_array", width=args.size, height=args.size,
                         render_width=args.view_size, render_height=args.view_size, **options)
    far = env.unwrapped.camera_far
    frames, successes, episode_return = [], 0, 0.0
    observation, _ = env.reset(seed=args.seed)
    env.action_space.seed(args.seed)
    recorder = None
    if args.episode is not None:
        from lyra_sim.sim.episode import EpisodeRecorder

        recorder = EpisodeRecorder(env, env_id=args.env)
        recorder.record()
    try:
        for _ in tqdm(range(args.steps), desc="rollout", unit="step"):
            frames.append(compose_frame(observation, env.render(), far))
            action = heuristic_action(env) if args.policy == "heuristic" else env.action_space.sample()
            observation, reward, terminated, truncated, info = env.step(action)
            episode_return += reward
            if recorder is not None:
                recorder.record(reward)
            if terminated or truncated:
                successes += int(info["success"])
                observation, _ = env.reset()
                if recorder is not None:
                    recorder.record()
        frames.append(compose_frame(observation, env.render(), far))
    finally:
        env.close()
    if recorder is not None:
        recorder.save(args.episode)
        print(f"wrote {args.episode} ({len(recorder)} frames); view it with: lyra-sim view --episode {args.episode}")

    import imageio.v2 as imageio

    fps = env.metadata["render_fps"]
    with tempfile.TemporaryDirectory() as scratch, atomic_path(args.out) as tmp:
        written = Path(scratch) / f"video{args.out.suffix.lower()}"
        if written.suffix == ".gif":
            imageio.mimsave(written, frames, duration=1000.0 / fps, loop=0)
        else:
            imageio.mimsave(written, frames, fps=fps, macro_block_size=1)
        shutil.move(written, tmp)
    print(f"wrote {args.out} ({len(frames)} frames at {fps} fps); return {episode_return:.2f}, {successes} successful episode(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``lyra-sim view``: serve a scene file, a bundle or an episode to the browser (viser)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lyra_sim.cli import option
from lyra_sim.typed import RenderBackend


@dataclass
class Config:
    """Look at a splat file, a SimBundle or an env rollout in the browser.

    A splat file shows its Gaussians in the file's own frame with the up direction and floor the
    build would detect, its bounds and the Gaussians the build would drop as floaters. A bundle
    shows its splats, collision mesh (toggle, opacity, wireframe), visual mesh, object hulls with
    their names, spawn region, floor and capture cameras. --episode FILE (written by
    `examples/rollout_video.py --episode`) adds the robot's and objects' poses with a step
    slider. Drag the red camera to render our CPU view (rgb and depth) into the side panel.
    Prints the URL and serves until Ctrl+C; needs the [viewer] extra (viser).
    """

    path: Optional[str] = option(help="splat file or SimBundle folder (optional with --episode: its bundle)", default=None, positional=True)
    episode: Optional[str] = option(help="episode .npz from examples/rollout_video.py --episode", default=None)
    host: str = option(help="address to listen on (0.0.0.0: every interface)", default="127.0.0.1")
    port: int = option(help="port (0: any free port; a busy port moves to the next free one)", default=8080)
    max_splats: int = option(help="most Gaussians sent to the browser per layer (a random subset beyond)", default=2_000_000)
    render_width: int = option(help="width of our renderer's camera view", default=256)
    render_height: int = option(help="height of our renderer's camera view", default=192)
    render_backend: RenderBackend = option(help="backend of our renderer's camera view", default="cpu")


def run(config: Config) -> int:
    from lyra_sim.errors import LyraSimError
    from lyra_sim.viewer.app import RenderSettings, serve

    if config.render_width < 8 or config.render_height < 8:
        raise LyraSimError(f"render size must be at least 8x8, got {config.render_width}x{config.render_height}")
    serve(
        config.path,
        episode=config.episode,
        host=config.host,
        port=config.port,
        max_splats=config.max_splats,
        render=RenderSettings(width=config.render_width, height=config.render_height, backend=config.render_backend),
    )
    return 0

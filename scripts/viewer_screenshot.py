"""Screenshot of ``lyra-sim view`` in headless Chromium (the README's picture).

    python scripts/viewer_screenshot.py lyra_sim/assets/bundles/room out.png
    python scripts/viewer_screenshot.py lyra_sim/assets/bundles/room docs/viewer_room.jpg --episode nav.npz --step 40 --height 1500 --out-width 1200

Starts the viewer in this process on a free port, opens it in headless Chromium, waits until the
page holds the whole scene tree and our renderer's first image, and saves the page (PNG, or JPEG
for a .jpg name).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="scene file or bundle folder")
    parser.add_argument("out", type=Path, help="image to write (.png, or .jpg)")
    parser.add_argument("--episode", default=None, help="episode .npz to show")
    parser.add_argument("--step", type=int, default=None, help="episode step to show")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--out-width", type=int, default=None, help="scale the picture to this width")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to let the splats sort before the picture")
    args = parser.parse_args(argv)

    from PIL import Image

    from lyra_sim.io_utils import atomic_path
    from lyra_sim.viewer.app import RenderSettings, serve
    from lyra_sim.viewer.browser import HeadlessBrowser

    server, viewer = serve(args.path, episode=args.episode, port=0, render=RenderSettings(width=192, height=144), block=False)
    try:
        if args.step is not None and "Step" in viewer.toggles:
            viewer.toggles["Step"].value = args.step
        with HeadlessBrowser(f"http://127.0.0.1:{server.get_port()}/", width=args.width, height=args.height) as browser:
            expected = set(viewer.nodes)
            browser.wait_for(lambda: expected <= set(browser.scene_nodes()), timeout=120, what="every scene node in the page")
            browser.wait_for(lambda: " ms (" in browser.text(), timeout=300, what="our renderer's first image")
            browser.wait_for(browser.canvas_ready, timeout=120, what="the 3D canvas to fade in")
            time.sleep(args.settle)
            browser.hide_notifications()
            with tempfile.TemporaryDirectory() as scratch, atomic_path(args.out) as tmp:
                picture = Image.open(browser.screenshot(Path(scratch) / "shot.png")).convert("RGB")
                if args.out_width:
                    picture = picture.resize((args.out_width, round(picture.height * args.out_width / picture.width)), Image.LANCZOS)
                jpeg = args.out.suffix.lower() in (".jpg", ".jpeg")
                picture.save(tmp, format="JPEG" if jpeg else "PNG", **({"quality": 85} if jpeg else {}), optimize=True)
    finally:
        viewer.stop()
        server.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

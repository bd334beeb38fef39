"""Write the small example splat shipped in ``examples/data/`` (used by the README example).

    python scripts/make_example_data.py

A surface-sampled tabletop kit (seed 0), 30k Gaussians, saved as ``.spz`` (a few hundred KB).
"""

from __future__ import annotations

from pathlib import Path

from lyra_sim.kits import make_scene
from lyra_sim.scene.io import save_scene


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "examples" / "data" / "tabletop.spz"
    scene, _ = make_scene("tabletop", seed=0).to_gaussians(30_000, seed=0)
    save_scene(scene, out)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB, {len(scene)} Gaussians)")


if __name__ == "__main__":
    main()

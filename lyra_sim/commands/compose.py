"""``lyra-sim compose``: place object bundles into a scene bundle, giving a new scene bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lyra_sim.cli import option
from lyra_sim.errors import BundleError


@dataclass
class Config:
    """Place one or more object bundles into a scene bundle.

    Each OBJECT_BUNDLE's ground origin (where the object rests in its own bundle) goes to one
    --at point, in order: 3 numbers per object (X Y Z: Z is the height of the surface it stands
    on) or 2 (X Y: it rests on the top of the scene's collision geometry under its footprint,
    e.g. a table). --yaw turns objects about +Z (degrees, one per object). The result is a new
    scene bundle that loads, simulates and exports like any other.
    """

    scene: str = option(help="scene bundle folder or packaged bundle name", positional=True)
    objects: list[str] = option(help="object bundle folders", positional=True)
    out: str = option(help="output bundle folder", short="-o")
    at: list[float] = option(help="placement: X Y Z (or X Y) per object bundle, in order")
    yaw: list[float] | None = option(help="rotation about +Z in degrees, one per object bundle", default=None)
    preview: bool = option(help="re-render preview.png with the new objects", default=True)


def placements_from_numbers(objects: list[str], at: list[float], yaw: list[float] | None = None):
    """ObjectPlacements from the flat ``--at`` list (3 numbers per object, or 2 to rest on the surface)."""
    import math

    from lyra_sim.converters.compose import ObjectPlacement

    count = len(objects)
    if len(at) == 3 * count:
        points = [tuple(at[3 * i : 3 * i + 3]) for i in range(count)]
    elif len(at) == 2 * count:
        points = [tuple(at[2 * i : 2 * i + 2]) for i in range(count)]
    else:
        raise BundleError(f"--at needs 3 numbers (X Y Z) or 2 (X Y) per object bundle: {count} bundles, {len(at)} numbers given")
    yaw = yaw or [0.0] * count
    if len(yaw) != count:
        raise BundleError(f"--yaw needs one angle per object bundle: {count} bundles, {len(yaw)} angles given")
    return [ObjectPlacement(bundle, point, math.radians(angle)) for bundle, point, angle in zip(objects, points, yaw)]


def run(config: Config) -> int:
    from lyra_sim.converters.compose import compose
    from lyra_sim.bundle import resolve_bundle_path

    scene = resolve_bundle_path(config.scene, config.scene)
    placements = placements_from_numbers(config.objects, config.at, config.yaw)
    out = compose(scene, placements, Path(config.out), preview=config.preview)
    from lyra_sim.bundle import load_bundle

    bundle = load_bundle(out)
    for obj in bundle.objects[len(bundle.objects) - len(placements):]:
        print(f"placed {obj.name} at {' '.join(f'{v:.3f}' for v in obj.position)} (centre of mass)")
    print(f"wrote {out}: {len(bundle.objects)} objects")
    return 0

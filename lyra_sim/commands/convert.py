"""``lyra-sim convert``: read any supported splat file and write it in another format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lyra_sim.cli import option
from lyra_sim.typed import PlyEncoding


@dataclass
class Config:
    """Convert a splat file between formats (the output format follows OUT's extension or --format).

    Readable: INRIA/Lyra .ply, compressed .ply, .splat, .spz (v1-4), gsplat .pt, SOG (.sog,
    meta.json or its folder; v1-2), glTF/GLB (KHR_gaussian_splatting), USD (.usd/.usda/.usdc),
    and capture folders (INRIA output, gsplat results, a folder with one scene file).
    Writable: .ply (INRIA; Lyra layout with --format lyra_ply), .compressed.ply, .splat,
    .spz (v4, or 3/2), .sog or meta.json (SOG v2), .glb/.gltf, .usd/.usdc/.usda.
    """

    input: str = option(help="source splat file or capture folder", positional=True)
    output: str = option(help="destination file; its extension picks the format unless --format is given", positional=True)
    format: Literal["ply", "lyra_ply", "compressed_ply", "splat", "spz", "sog", "gltf", "usd"] | None = option(
        help="output format (overrides the extension)", default=None
    )
    sh_degree: int | None = option(help="reduce the SH to this degree before writing", default=None, choices=[0, 1, 2, 3])
    keep_spz_frame: bool = option(
        help="do not convert between spz's RUB frame and the PLY frame (y and z negated) when reading or writing .spz",
        default=False,
    )
    spz_version: int = option(help="spz container version to write: 4 (ZSTD, current) or 3/2 (gzip, legacy readers)", default=4, choices=[2, 3, 4])
    ply_encoding: PlyEncoding = option(help="PLY encoding to write", default="binary_little_endian")
    drop_invalid: bool = option(help="drop Gaussians with NaN/Inf values or zero quaternions instead of failing", default=False)
    sog_palette_size: int | None = option(help="SOG: entries of the k-means palette of the higher SH bands (1-65536; default ~N/64, at most 4096; time grows with it)", default=None)
    usd_half: bool = option(help="USD: write the half-precision attributes (positionsh, ...) instead of float", default=False)


def run(config: Config) -> int:
    from lyra_sim.commands.checks import UsageError, check_output
    from lyra_sim.scene.io import FORMATS, format_for_extension, load_scene, save_scene

    check_output(config.output, "OUTPUT")
    target = config.format or format_for_extension(config.output)
    writable = sorted(name for name, spec in FORMATS.items() if spec.write is not None)
    if target not in writable:
        raise UsageError(f"cannot tell the format of {config.output} from its extension; pass --format (one of {', '.join(writable)})")
    scene = load_scene(config.input, keep_spz_frame=config.keep_spz_frame, invalid="drop" if config.drop_invalid else "error")
    if config.sh_degree is not None:
        scene = scene.with_sh_degree(min(config.sh_degree, scene.sh_degree))
    options = {}
    if target == "spz":
        options = {"version": config.spz_version, "keep_frame": config.keep_spz_frame}
    elif target in ("ply", "lyra_ply"):
        options = {"encoding": config.ply_encoding}
    elif target == "sog" and config.sog_palette_size is not None:
        options = {"palette_size": config.sog_palette_size}
    elif target == "usd" and config.usd_half:
        options = {"precision": "half"}
    try:
        save_scene(scene, config.output, format=config.format, **options)
    except ValueError as error:  # format limits (e.g. the Lyra layout with SH)
        raise UsageError(str(error)) from None
    for note in scene.metadata.notes:
        print(f"note: {note}")
    written_degree = min(scene.sh_degree, FORMATS[target].max_sh_degree)
    print(f"wrote {len(scene)} Gaussians (SH degree {written_degree}) to {config.output} as {target}")
    return 0

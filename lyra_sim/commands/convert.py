"""``lyra-sim convert``: read any supported splat file and write it in another format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lyra_sim.cli import option
from lyra_sim.typed import PlyEncoding


@dataclass
class Config:
    """Convert a splat file between formats (the output format follows OUT's extension or --format).

    Readable: INRIA/Lyra .ply, compressed .ply, .splat, .spz (v1-4), gsplat .pt.
    Writable: .ply (INRIA; Lyra layout with --format lyra_ply), .compressed.ply, .splat,
    .spz (v4, or 3/2).
    """

    input: str = option(help="source splat file", positional=True)
    output: str = option(help="destination file; its extension picks the format unless --format is given", positional=True)
    format: Literal["ply", "lyra_ply", "compressed_ply", "splat", "spz"] | None = option(help="output format (overrides the extension)", default=None)
    sh_degree: int | None = option(help="reduce the SH to this degree before writing", default=None, choices=[0, 1, 2, 3])
    keep_spz_frame: bool = option(
        help="do not convert between spz's RUB frame and the PLY frame (y and z negated) when reading or writing .spz",
        default=False,
    )
    spz_version: int = option(help="spz container version to write: 4 (ZSTD, current) or 3/2 (gzip, legacy readers)", default=4, choices=[2, 3, 4])
    ply_encoding: PlyEncoding = option(help="PLY encoding to write", default="binary_little_endian")
    drop_invalid: bool = option(help="drop Gaussians with NaN/Inf values or zero quaternions instead of failing", default=False)


def run(config: Config) -> int:
    from lyra_sim.scene.io import FORMATS, format_for_extension, load_scene, save_scene

    scene = load_scene(config.input, keep_spz_frame=config.keep_spz_frame, invalid="drop" if config.drop_invalid else "error")
    if config.sh_degree is not None:
        scene = scene.with_sh_degree(min(config.sh_degree, scene.sh_degree))
    target = config.format or format_for_extension(config.output)
    options = {}
    if target == "spz":
        options = {"version": config.spz_version, "keep_frame": config.keep_spz_frame}
    elif target in ("ply", "lyra_ply"):
        options = {"encoding": config.ply_encoding}
    try:
        save_scene(scene, config.output, format=config.format, **options)
    except ValueError as error:  # unknown extension, format limits (e.g. an empty scene as spz)
        raise SystemExit(f"lyra-sim convert: {error}") from None
    for note in scene.metadata.notes:
        print(f"note: {note}")
    written_degree = min(scene.sh_degree, FORMATS[target].max_sh_degree)
    print(f"wrote {len(scene)} Gaussians (SH degree {written_degree}) to {config.output} as {target}")
    return 0

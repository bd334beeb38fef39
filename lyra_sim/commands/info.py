"""``lyra-sim info``: summarise a splat file (or a folder of per-time splat files)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lyra_sim.cli import option


@dataclass
class Config:
    """Print what a splat file holds: format, count, SH degree, bounds, opacity and scale statistics, frame.

    PATH may be any supported file (.ply, compressed .ply, .splat, .spz, gsplat .pt, SOG,
    glTF/GLB, USD), a capture folder (INRIA output, gsplat results, a SOG folder, a folder
    with one scene file), a SimBundle, or a folder of per-time splat files (Lyra dynamic output).
    """

    path: str = option(help="splat file or folder to describe", positional=True)
    json: bool = option(help="print one JSON object instead of text", default=False)
    keep_spz_frame: bool = option(help="report .spz positions in the stored RUB frame", default=False)


def _statistics(values: torch.Tensor) -> dict[str, float]:
    values = values.double().flatten()
    if len(values) > 1_000_000:  # torch.quantile's input limit; a fixed subsample keeps it exact enough
        values = values[torch.randperm(len(values), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    p01, p50, p99 = torch.quantile(values, torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64)).tolist()
    return {"min": values.min().item(), "p01": p01, "median": p50, "p99": p99, "max": values.max().item(), "mean": values.mean().item()}


def describe_scene_file(path: Path, *, keep_spz_frame: bool = False) -> dict[str, Any]:
    """The summary of one splat file as a JSON-serialisable dict."""
    from lyra_sim.scene.io import load_scene
    from lyra_sim.scene.transforms import count_reasons, invalid_gaussian_reasons

    scene = load_scene(path, keep_spz_frame=keep_spz_frame, invalid="keep")
    invalid = count_reasons(invalid_gaussian_reasons(scene))
    summary: dict[str, Any] = {
        "path": str(path),
        "format": scene.metadata.format,
        "count": len(scene),
        "sh_degree": scene.sh_degree,
        "frame": scene.metadata.frame,
        "metric": scene.metadata.metric,
        "file_bytes": _size_on_disk(path),
        "format_version": scene.metadata.extras.get("format_version"),
        "skipped_extensions": list(scene.metadata.extras.get("skipped_extensions", [])),
        "invalid": invalid,
        "notes": list(scene.metadata.notes),
    }
    valid = scene
    if invalid:
        from lyra_sim.scene.transforms import sanitize

        valid = sanitize(scene)[0]
    if len(valid) == 0:
        return summary | {"bounds_min": None, "bounds_max": None, "bounds_p01": None, "bounds_p99": None}
    low, high = valid.bounds()
    p01, p99 = valid.bounds(percentile=1.0)
    summary.update(
        bounds_min=low.tolist(),
        bounds_max=high.tolist(),
        bounds_p01=p01.tolist(),
        bounds_p99=p99.tolist(),
        opacity=_statistics(valid.opacities()),
        scale=_statistics(valid.scales().max(dim=-1).values),
    )
    return summary


def _size_on_disk(path: Path) -> int:
    if path.is_dir():
        return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
    return path.stat().st_size


def describe_folder(path: Path, *, keep_spz_frame: bool = False) -> dict[str, Any]:
    """Summary of a folder of per-time splat files: one entry per frame plus totals."""
    from lyra_sim.scene.io import sequence_files

    frames = [describe_scene_file(file, keep_spz_frame=keep_spz_frame) for file in sequence_files(path)]
    return {
        "path": str(path),
        "format": "sequence",
        "frames": len(frames),
        "count": sum(f["count"] for f in frames),
        "sh_degree": max(f["sh_degree"] for f in frames),
        "bounds_min": _fold([f["bounds_min"] for f in frames], min),
        "bounds_max": _fold([f["bounds_max"] for f in frames], max),
        "frame_summaries": frames,
    }


def _is_sequence_folder(path: Path) -> bool:
    """A folder of several scene files (a time sequence), not a capture folder for one scene."""
    from lyra_sim.errors import SceneFormatError
    from lyra_sim.scene.capture import resolve_capture_folder
    from lyra_sim.scene.formats.sog import is_sog

    if is_sog(path, b""):
        return False
    try:
        resolve_capture_folder(path)
    except SceneFormatError:
        return True
    return False


def _fold(vectors: list, pick) -> list[float] | None:
    vectors = [v for v in vectors if v is not None]
    return [pick(axis) for axis in zip(*vectors)] if vectors else None


def _vector(values) -> str:
    return "-" if values is None else "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def format_text(summary: dict[str, Any]) -> str:
    """Human-readable rendering of a summary from :func:`describe_scene_file`/:func:`describe_folder`."""
    lines = [
        f"path        {summary['path']}",
        f"format      {summary['format']}",
        f"count       {summary['count']}",
        f"sh degree   {summary['sh_degree']}",
    ]
    if "frames" in summary:
        lines.append(f"frames      {summary['frames']}")
        lines += [f"  {Path(f['path']).name}: {f['count']} Gaussians, SH {f['sh_degree']}" for f in summary["frame_summaries"]]
    else:
        lines.append(f"frame       {summary['frame']}{' (metric)' if summary['metric'] else ''}")
        if summary.get("format_version") is not None:
            lines.append(f"version     {summary['format_version']}")
        if summary.get("skipped_extensions"):
            lines.append(f"skipped     {', '.join(summary['skipped_extensions'])}")
    lines += [f"bounds min  {_vector(summary['bounds_min'])}", f"bounds max  {_vector(summary['bounds_max'])}"]
    if summary.get("bounds_p01") is not None:
        lines += [f"p1          {_vector(summary['bounds_p01'])}", f"p99         {_vector(summary['bounds_p99'])}"]
    for key, label in (("opacity", "opacity"), ("scale", "max scale")):
        if key in summary:
            s = summary[key]
            lines.append(f"{label:<11} min {s['min']:.4g}  p1 {s['p01']:.4g}  median {s['median']:.4g}  p99 {s['p99']:.4g}  max {s['max']:.4g}")
    if summary.get("invalid"):
        lines.append("invalid     " + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in summary["invalid"].items()))
    lines += [f"note        {note}" for note in summary.get("notes", [])]
    return "\n".join(lines)


def run(config: Config) -> int:
    path = Path(config.path)
    # Folders and files are separate branches so other folder kinds (bundles) slot in here.
    if path.is_dir() and (path / "manifest.json").is_file():
        from lyra_sim.bundle import format_bundle_summary, summarize_bundle

        summary = summarize_bundle(path)
        print(json.dumps(summary) if config.json else format_bundle_summary(summary))
        return 0
    if path.is_dir() and not _is_sequence_folder(path):
        summary = describe_scene_file(path, keep_spz_frame=config.keep_spz_frame)
    elif path.is_dir():
        summary = describe_folder(path, keep_spz_frame=config.keep_spz_frame)
    else:
        summary = describe_scene_file(path, keep_spz_frame=config.keep_spz_frame)
    print(json.dumps(summary) if config.json else format_text(summary))
    return 0

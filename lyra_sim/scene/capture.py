"""Capture output folders: which scene file a folder stands for.

``load_scene(DIR)`` accepts what capture tools write, not only single files:

- an INRIA 3DGS output folder (``point_cloud/iteration_N/point_cloud.ply``, ``cameras.json``),
  or its ``point_cloud`` folder: the highest iteration N;
- a gsplat ``simple_trainer`` result folder: the highest-step ``ply/point_cloud_<step>.ply``,
  else the highest-step checkpoint ``ckpts/ckpt_<step>_rank0.pt`` (all ranks are merged);
- a SOG folder (``meta.json`` with its images): read as SOG by the caller;
- any folder holding exactly one scene file (a nerfstudio ``splat.ply`` export, a download).

A folder of several scene files is a time sequence (``load_sequence``), not a scene.
This module may import ``lyra_sim.scene`` and ``lyra_sim.errors`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lyra_sim.scene.formats._common import format_error

_ITERATION = re.compile(r"^iteration_(\d+)$")
_GSPLAT_PLY = re.compile(r"^point_cloud_(\d+)\.ply$")
_GSPLAT_CKPT = re.compile(r"^ckpt_(\d+)_rank0\.pt$")
# Files that are scenes when they sit alone in a folder (the content still decides the format).
SCENE_SUFFIXES = (".ply", ".splat", ".spz", ".pt", ".pth", ".sog", ".glb", ".gltf", ".usd", ".usda", ".usdc", ".usdz")
# Files capture tools write beside a scene that are not scenes.
_NOT_SCENES = {"input.ply", "points3d.ply", "sparse_pc.ply"}


@dataclass
class CaptureFolder:
    """What a capture folder resolved to."""

    scene_file: Path
    kind: str  # "inria", "gsplat", "single-file"
    cameras_file: Path | None = None
    notes: list[str] = field(default_factory=list)


def _highest(entries, pattern: re.Pattern) -> tuple[int, Path] | None:
    numbered = [(int(match.group(1)), entry) for entry in entries if (match := pattern.match(entry.name))]
    return max(numbered, key=lambda pair: pair[0]) if numbered else None


def _scene_files(folder: Path) -> list[Path]:
    return sorted(
        entry
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.lower().endswith(SCENE_SUFFIXES) and entry.name.lower() not in _NOT_SCENES
    )


def is_sequence_folder(folder) -> bool:
    """Whether ``folder`` is a time sequence (several scene files and no capture-tool layout:
    no INRIA ``point_cloud/``, gsplat ``ply/`` or ``ckpts/``, SOG ``meta.json``), which
    ``load_sequence`` reads and ``lyra-sim build`` turns into a dynamic bundle."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / "meta.json").is_file():
        return False
    if any((folder / name).is_dir() for name in ("point_cloud", "ply", "ckpts")):
        return False
    if _highest([entry for entry in folder.iterdir() if entry.is_dir()], _ITERATION) is not None:
        return False
    return len(_scene_files(folder)) >= 2


def resolve_capture_folder(folder) -> CaptureFolder:
    """The scene file a capture folder stands for; ``SceneFormatError`` naming the folder otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise format_error(folder, "is not a folder")
    point_cloud = folder / "point_cloud" if (folder / "point_cloud").is_dir() else folder
    iterations = [entry for entry in point_cloud.iterdir() if entry.is_dir()]
    latest = _highest(iterations, _ITERATION)
    if latest is not None:
        step, iteration = latest
        scene_file = iteration / "point_cloud.ply"
        if not scene_file.is_file():
            raise format_error(folder, f"{iteration.name} has no point_cloud.ply")
        root = point_cloud.parent if point_cloud != folder else folder
        cameras = root / "cameras.json"
        found = CaptureFolder(scene_file, "inria", cameras if cameras.is_file() else None)
        found.notes.append(f"INRIA output folder: iteration {step} of {len(iterations)}")
        return found
    for subfolder, pattern in (("ply", _GSPLAT_PLY), ("ckpts", _GSPLAT_CKPT)):
        if (folder / subfolder).is_dir():
            latest = _highest([p for p in (folder / subfolder).iterdir() if p.is_file()], pattern)
            if latest is not None:
                found = CaptureFolder(latest[1], "gsplat")
                found.notes.append(f"gsplat result folder: step {latest[0]} from {subfolder}/")
                return found
    candidates = _scene_files(folder)
    if len(candidates) == 1:
        return CaptureFolder(candidates[0], "single-file")
    if not candidates:
        raise format_error(
            folder,
            "is a directory with no scene file (looked for an INRIA point_cloud/iteration_N/, gsplat ply/ or ckpts/, a SOG meta.json "
            f"or one file ending in {', '.join(SCENE_SUFFIXES)})",
        )
    names = ", ".join(entry.name for entry in candidates[:6]) + (" ..." if len(candidates) > 6 else "")
    raise format_error(folder, f"is a directory of {len(candidates)} scene files ({names}): pass one of them, or use load_sequence for a time sequence")

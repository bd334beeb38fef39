"""gsplat ``simple_trainer`` checkpoints (``.pt``): reader (FORMATS.md 6).

Loaded with ``torch.load(weights_only=True)`` (no arbitrary code runs). The ``splats`` dict holds
means, log-scales, w,x,y,z quats, 1-D opacity logits, sh0 [N,1,3] and shN [N,K,3]
(coefficient-major, like ``GaussianScene.sh``). Distributed training writes one file per rank
(``ckpt_<step>_rank<r>.pt``): reading any of them concatenates all ranks found beside it.
Appearance-model checkpoints (``features``/``colors``, no SH) are read as their base colour.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from lyra_sim.scene.formats._common import format_error, read_file_head
from lyra_sim.scene.formats.spec import SceneFormatSpec
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.sh import SH_C0, sh_degree_from_bases

ZIP_MAGIC = b"PK\x03\x04"
_RANK_NAME = re.compile(r"^(?P<stem>.*_rank)(?P<rank>\d+)\.pt$")


def is_torch_file(head: bytes) -> bool:
    """torch.save's zip container, or the legacy pickle (protocol 2+ opcode)."""
    return head[:4] == ZIP_MAGIC or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def rank_files(path: Path) -> list[Path]:
    """All rank files of the checkpoint ``path`` belongs to (just ``path`` when it is not ranked)."""
    match = _RANK_NAME.match(path.name)
    if match is None:
        return [path]
    siblings = [p for p in path.parent.glob(f"{match['stem']}*.pt") if _RANK_NAME.match(p.name) and _RANK_NAME.match(p.name)["stem"] == match["stem"]]
    return sorted(siblings, key=lambda p: int(_RANK_NAME.match(p.name)["rank"]))


def _load_splats(path: Path) -> dict[str, torch.Tensor]:
    if not is_torch_file(read_file_head(path, 8)):
        raise format_error(path, "not a torch checkpoint (neither a zip container nor a pickle)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files (pickle, zip, runtime)
        raise format_error(path, f"cannot load the checkpoint with torch.load(weights_only=True): {type(error).__name__}: {error}") from None
    if not isinstance(checkpoint, dict):
        raise format_error(path, f"checkpoint holds a {type(checkpoint).__name__}, not a dict")
    splats = checkpoint.get("splats", checkpoint)
    if not isinstance(splats, dict) or not all(isinstance(v, torch.Tensor) for v in splats.values()):
        raise format_error(path, "checkpoint has no 'splats' dict of tensors")
    return splats


def _scene_from_splats(path: Path, splats: dict[str, torch.Tensor]) -> tuple[GaussianScene, list[str]]:
    notes = []
    required = ["means", "scales", "quats", "opacities"]
    missing = [key for key in required if key not in splats]
    if "sh0" not in splats and "colors" not in splats:
        missing.append("sh0 (or colors)")
    if missing:
        raise format_error(path, f"gsplat splats lack required tensors {missing} (has {sorted(splats)})")
    means = splats["means"].float()
    n = means.shape[0] if means.dim() == 2 else -1
    shapes = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4)}
    for key, shape in shapes.items():
        if tuple(splats[key].shape) != shape or n < 0:
            raise format_error(path, f"splats[{key!r}] has shape {list(splats[key].shape)}, expected [N, {shape[1]}]")
    opacities = splats["opacities"].float().reshape(-1) if splats["opacities"].numel() == n else None
    if opacities is None:
        raise format_error(path, f"splats['opacities'] has shape {list(splats['opacities'].shape)}, expected [{n}]")
    if "sh0" in splats:
        sh0 = splats["sh0"].float()
        if tuple(sh0.shape) != (n, 1, 3):
            raise format_error(path, f"splats['sh0'] has shape {list(sh0.shape)}, expected [{n}, 1, 3]")
        parts = [sh0]
        if "shN" in splats and splats["shN"].numel() > 0:
            sh_rest = splats["shN"].float()
            if sh_rest.dim() != 3 or sh_rest.shape[0] != n or sh_rest.shape[2] != 3:
                raise format_error(path, f"splats['shN'] has shape {list(sh_rest.shape)}, expected [{n}, K, 3]")
            parts.append(sh_rest)
        sh = torch.cat(parts, dim=1)
        try:
            degree = sh_degree_from_bases(sh.shape[1])
        except ValueError:
            if sh.shape[1] != 25:
                raise format_error(path, f"unknown SH layout: {sh.shape[1]} SH coefficients per channel") from None
            degree = 4
        if degree == 4:
            sh = sh[:, :16]
            notes.append("degree-4 SH truncated to degree 3 (GaussianScene stores up to degree 3)")
    else:
        colors = splats["colors"].float()
        if tuple(colors.shape) != (n, 3):
            raise format_error(path, f"splats['colors'] has shape {list(colors.shape)}, expected [{n}, 3]")
        sh = ((torch.sigmoid(colors) - 0.5) / SH_C0)[:, None, :]
        notes.append("appearance-model checkpoint: base colour sigmoid(colors) kept, the view-dependent MLP is not")
    scene = GaussianScene(means, splats["quats"].float(), splats["scales"].float(), opacities, sh.contiguous())
    return scene, notes


def read_gsplat_pt(path) -> GaussianScene:
    """Read a gsplat checkpoint; sibling rank files are concatenated in rank order."""
    path = Path(path)
    files = rank_files(path)
    parts, notes = [], []
    for file in files:
        scene, file_notes = _scene_from_splats(file, _load_splats(file))
        parts.append(scene)
        notes += [n for n in file_notes if n not in notes]
    scene = GaussianScene.concat(parts) if len(parts) > 1 else parts[0]
    scene.metadata = SceneMetadata(source=str(path), format="gsplat_pt", frame="unknown", notes=notes)
    if len(files) > 1:
        scene.metadata.notes.append(f"concatenated {len(files)} rank files: {', '.join(f.name for f in files)}")
    return scene


FORMAT = SceneFormatSpec("gsplat_pt", lambda path, head: is_torch_file(head), read_gsplat_pt, None, extensions=(".pt", ".pth"))

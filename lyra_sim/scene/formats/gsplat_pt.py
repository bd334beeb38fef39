"""gsplat ``simple_trainer`` checkpoints (``.pt``): reader (FORMATS.md 6).

Loaded with ``torch.load(weights_only=True)`` (no arbitrary code runs). The ``splats`` dict holds
means, log-scales, w,x,y,z quats, 1-D opacity logits, sh0 [N,1,3] and shN [N,K,3]
(coefficient-major, like ``GaussianScene.sh``). Distributed training writes one file per rank
(``ckpt_<step>_rank<r>.pt``): reading any of them concatenates all ranks found beside it.
Appearance-model checkpoints (``features``/``colors``, no SH) are read as their base colour.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import torch

from lyra_sim.errors import SceneFormatError
from lyra_sim.scene.formats._common import (
    brief_list,
    check_decompressed_size,
    decompress_within_budget,
    file_size,
    format_error,
    read_file_head,
    size_text,
)
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


def _check_zip_entries(path: Path) -> None:
    """Bound what ``torch.load`` allocates for a zip checkpoint before it runs.

    torch allocates each record at its declared size and then extracts it. torch.save stores
    records uncompressed, so a stored record cannot be larger than the file; a deflated one
    (other writers) is decompressed here first, under the decompression budget, to prove it
    expands to no more than it declares.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            on_disk = file_size(path)
            stored = [e for e in entries if e.compress_type == zipfile.ZIP_STORED]
            for entry in stored:
                if entry.file_size > on_disk:
                    raise format_error(path, f"zip entry {entry.filename[:80]!r} declares {size_text(entry.file_size)}, more than the {on_disk}-byte file holds")
            compressed = [e for e in entries if e.compress_type != zipfile.ZIP_STORED]
            check_decompressed_size(path, sum(e.file_size for e in compressed), f"{len(compressed)} compressed zip entries")
            for entry in compressed:
                what = f"zip entry {entry.filename[:80]!r}"
                with archive.open(entry) as stream:
                    size = decompress_within_budget(path, stream.read, expected=entry.file_size, what=what, errors=(zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError), keep=False)
                if size != entry.file_size:
                    raise format_error(path, f"{what} decompresses to {size} bytes, its header declares {entry.file_size}")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, NotImplementedError, EOFError, RuntimeError) as error:
        if isinstance(error, SceneFormatError):
            raise
        raise format_error(path, f"corrupt zip container ({type(error).__name__}: {error})") from None


def _load_splats(path: Path) -> dict[str, torch.Tensor]:
    head = read_file_head(path, 8)
    if not is_torch_file(head):
        raise format_error(path, "not a torch checkpoint (neither a zip container nor a pickle)")
    if head[:4] == ZIP_MAGIC:
        _check_zip_entries(path)
    try:
        # Sparse tensors whose indices point outside their shape would crash the process when
        # densified: have torch validate them while loading.
        with torch.sparse.check_sparse_tensor_invariants(True):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise format_error(path, "out of memory loading the checkpoint (a record declares more data than fits)") from None
    except Exception as error:  # torch raises many types for corrupt files (pickle, zip, runtime)
        raise format_error(path, f"cannot load the checkpoint with torch.load(weights_only=True): {type(error).__name__}: {str(error)[:300]}") from None
    if not isinstance(checkpoint, dict):
        raise format_error(path, f"checkpoint holds a {type(checkpoint).__name__}, not a dict")
    splats = checkpoint.get("splats", checkpoint)
    if not isinstance(splats, dict) or not all(isinstance(v, torch.Tensor) for v in splats.values()):
        raise format_error(path, "checkpoint has no 'splats' dict of tensors")
    return {str(key): _dense_float32(path, str(key), tensor) for key, tensor in splats.items()}


def _dense_float32(path: Path, key: str, tensor: torch.Tensor) -> torch.Tensor:
    """A strided float32 CPU copy of any tensor layout torch.load returns, or a clear refusal.

    Sparse (COO, CSR, CSC, BSR, BSC) tensors are densified and quantized ones dequantized; the
    dense size is checked against the decompression budget first (a sparse tensor of a few
    bytes can declare any shape).
    """
    name = f"splats[{key[:80]!r}]"
    if tensor.is_meta:
        raise format_error(path, f"{name} is a meta tensor (it holds no data)")
    if tensor.is_complex():
        raise format_error(path, f"{name} is complex ({tensor.dtype}); splat parameters are real")
    if tensor.layout != torch.strided or tensor.is_quantized:
        check_decompressed_size(path, 4 * tensor.numel(), f"{name} ({tensor.layout}, shape {list(tensor.shape)})")
    try:
        if tensor.is_quantized:
            tensor = tensor.dequantize()
        if tensor.layout != torch.strided:
            with torch.sparse.check_sparse_tensor_invariants(True):
                tensor = tensor.to_dense()
        return tensor.to(device="cpu", dtype=torch.float32)
    except (RuntimeError, TypeError, NotImplementedError, ValueError) as error:
        raise format_error(path, f"{name} ({tensor.layout}, {tensor.dtype}) cannot be converted to dense float32: {str(error)[:200]}") from None


def _scene_from_splats(path: Path, splats: dict[str, torch.Tensor]) -> tuple[GaussianScene, list[str]]:
    notes = []
    required = ["means", "scales", "quats", "opacities"]
    missing = [key for key in required if key not in splats]
    if "sh0" not in splats and "colors" not in splats:
        missing.append("sh0 (or colors)")
    if missing:
        raise format_error(path, f"gsplat splats lack required tensors {missing} (has {brief_list(sorted(splats))})")
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
        if "shN" in splats and (splats["shN"].numel() > 0 or (splats["shN"].dim() == 3 and splats["shN"].shape[1] > 0)):
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

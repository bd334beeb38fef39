"""Up-front checks of command-line values: a bad option or an unwritable output is reported before
any work starts, as a ``UsageError`` (a ``LyraSimError``: one line, no traceback).

Imports only the standard library and ``lyra_sim.errors``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Literal, Sequence

from lyra_sim.errors import LyraSimError

# Pseudo-filesystems that accept some writes but never hold a user's output.
_PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


class UsageError(LyraSimError, ValueError):
    """A command-line value is invalid; the message names the option and the problem."""


def finite(value: float | None, option: str, *, positive: bool = False, low: float | None = None, high: float | None = None, open_interval: bool = False) -> None:
    """``value`` must be a finite number (and > 0, or within [low, high] / (low, high))."""
    if value is None:
        return
    if not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value}")
    if positive and not value > 0:
        raise UsageError(f"{option} must be > 0, got {value}")
    if low is not None and high is not None:
        inside = low < value < high if open_interval else low <= value <= high
        if not inside:
            brackets = ("(", ")") if open_interval else ("[", "]")
            raise UsageError(f"{option} must be in {brackets[0]}{low:g}, {high:g}{brackets[1]}, got {value:g}")


def finite_vector(values: Sequence[float] | None, option: str, length: int = 3) -> None:
    if values is None:
        return
    if len(values) != length:
        raise UsageError(f"{option} takes {length} numbers, got {len(values)}")
    for value in values:
        if not math.isfinite(value):
            raise UsageError(f"{option} must be finite numbers, got {' '.join(f'{v:g}' for v in values)}")


def _nearest_existing(path: Path) -> Path:
    current = path
    while not os.path.lexists(current):
        if current.parent == current:
            break
        current = current.parent
    return current


def check_output(path: str | os.PathLike, option: str, kind: Literal["file", "folder"] = "file", suffixes: Iterable[str] | None = None) -> Path:
    """Check that ``path`` can be written, before the work that produces it starts.

    A file output must not be an existing folder (and vice versa); the nearest existing parent
    must be a folder in which a file can actually be created (a probe file is made and removed:
    permission bits, read-only mounts and root's bypass of them are all covered). Paths under
    /proc, /sys and /dev are refused.
    """
    path = Path(path)
    if not str(path).strip():
        raise UsageError(f"{option}: an empty path")
    absolute = Path(os.path.abspath(path))
    for pseudo in _PSEUDO_FILESYSTEMS:
        if absolute == Path(pseudo) or Path(pseudo) in absolute.parents:
            raise UsageError(f"{option} {path}: cannot write under {pseudo} (a system pseudo-filesystem)")
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if not str(path).lower().endswith(allowed):
            raise UsageError(f"{option} {path}: the name must end with {' or '.join(allowed)}")
    if path.is_dir() and kind == "file":
        raise UsageError(f"{option} {path}: is a folder; give a file name")
    if os.path.lexists(path) and not path.is_dir() and kind == "folder":
        raise UsageError(f"{option} {path}: is a file; give a folder name (a bundle is a folder)")
    parent = _nearest_existing(absolute.parent)
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: {parent} is not a folder")
    probe = parent / f".lyra-sim-write-probe-{os.getpid()}"
    try:
        descriptor = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot write in {parent} ({error.strerror or error})") from None
    os.close(descriptor)
    os.unlink(probe)
    return path

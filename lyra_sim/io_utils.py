"""Atomic file and folder writes: a crash never leaves a half-written output that looks complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it is renamed onto ``path``, on error removed.

    Works for files and folders: write whatever you like at the yielded path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink() and tmp.is_dir():
            backup = path.with_name(f".{path.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(path, backup)
            os.replace(tmp, path)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data, indent: int | None = 2, **dumps_options) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (parent folders are created); returns the path."""
    import json

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, **dumps_options) + "\n")
    return path


def progress_bar(iterable=None, *, enabled: bool = True, **options):
    """A tqdm bar that does not flood logs: when stderr is not a terminal (CI, ``> log 2>&1``)
    it redraws at most every 30 s instead of several times a second."""
    import sys

    from tqdm.auto import tqdm

    if enabled and not sys.stderr.isatty():
        options.setdefault("mininterval", 30.0)
        options.setdefault("maxinterval", 60.0)
    return tqdm(iterable, disable=not enabled, **options)

"""Atomic file and folder writes: a crash never leaves a half-written output that looks complete.

Everything that writes an output (scenes, meshes, bundles, images, JSON) goes through
:func:`atomic_path`: write at a temporary sibling, fsync it, then move it into place in one step.

* A file, or a folder onto a path that does not exist yet, is moved with one ``rename``.
* A folder replacing a folder is swapped in with ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+,
  most local filesystems): the path holds the old folder, then the new one, never nothing.
  Where the exchange is not available, the old folder is renamed to ``.<name>.old`` first; a
  crash between the two renames leaves it there, and the next write to the path (or
  :func:`recover_interrupted_replace`, which ``load_bundle`` calls) puts it back.
* Temporaries are named ``.<name>.<pid>.<random>.tmp``; those of processes that no longer run
  (killed runs) are removed by the next write to the same path.

This module imports only the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _backup_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def recover_interrupted_replace(path: str | os.PathLike) -> bool:
    """Repair what a killed write to ``path`` left behind; True when an old output was put back.

    The previous output, renamed aside by a replace that was killed before the new one moved
    in, is restored when nothing is at ``path``; the backup of a replace that completed is
    removed, and so are the temporaries of processes that no longer run.
    """
    path = Path(path)
    restored = False
    backup = _backup_name(path)
    if os.path.lexists(backup):
        if not os.path.lexists(path):
            os.replace(backup, path)
            restored = True
        else:
            _remove(backup)
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid = name[len(prefix) :].split(".", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                _remove(entry)
    return restored


def fsync_tree(path: str | os.PathLike) -> None:
    """fsync a file, or every file and folder under a folder (the folder itself last)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        for root, folders, files in os.walk(path, topdown=False):
            for name in files:
                full = os.path.join(root, name)
                if not os.path.islink(full):
                    _fsync(full, os.O_RDONLY)
            _fsync(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    elif path.is_file():
        _fsync(path, os.O_RDONLY)


def _fsync(path, flags: int) -> None:
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return  # unreadable (e.g. a folder without read permission): nothing we can flush
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems (and pipes) refuse fsync; the rename is still atomic
    finally:
        os.close(descriptor)


_libc = None


def exchange_paths(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Swap two existing paths atomically (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name, use_errno=True) if name else False
        except OSError:
            _libc = False
    if not _libc or not hasattr(_libc, "renameat2"):
        return False
    result = _libc.renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (22, 38, 95, 18):  # EINVAL, ENOSYS, EOPNOTSUPP: no exchange here; EXDEV: other filesystem
        return False
    raise OSError(error, os.strerror(error), str(second))


def _replace_folder(temporary: Path, path: Path) -> None:
    if exchange_paths(temporary, path):
        _remove(temporary)  # now the old folder
        return
    backup = _backup_name(path)
    _remove(backup)
    os.replace(path, backup)
    os.replace(temporary, path)  # a crash before this line is repaired by recover_interrupted_replace
    _remove(backup)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it is fsynced and moved onto ``path``, on error removed.

    Works for files and folders: write whatever you like at the yielded path. What an earlier
    killed write to ``path`` left behind is repaired first (see :func:`recover_interrupted_replace`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_replace(path)
    temporary = _temporary_name(path)
    try:
        yield temporary
        fsync_tree(temporary)
        if path.is_dir() and not path.is_symlink() and temporary.is_dir():
            _replace_folder(temporary, path)
        else:
            os.replace(temporary, path)
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except BaseException:
        _remove(temporary)
        raise


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (bundles record their source by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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

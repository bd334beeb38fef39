"""Atomic replace of files and folders (lyra_sim.io_utils): fault injection at every step.

A child process replaces a bundle-like folder and is killed (``os._exit``, no cleanup runs) at
the k-th filesystem step of ``atomic_path``; afterwards the path must hold a complete folder,
old or new, never a mix, never nothing (with the exchange), or nothing that the next write or
``recover_interrupted_replace`` does not put back (without it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lyra_sim.io_utils import atomic_path, recover_interrupted_replace

FILES = ["manifest.json", "scene.urdf", "splats/background.ply", "meshes/background_collision.obj", "objects/box.urdf"]

CHILD = textwrap.dedent(
    """
    import importlib.util, os, sys
    from pathlib import Path

    # io_utils needs only the standard library: load it alone, without torch, to start fast.
    spec = importlib.util.spec_from_file_location("io_utils", os.environ["LYRA_IO_UTILS"])
    io_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(io_utils)

    target, version, kill_at, mode = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    steps = [0]

    def counted(function):
        def wrapper(*args, **kwargs):
            steps[0] += 1
            if steps[0] == kill_at:
                os._exit(9)  # like SIGKILL: no finally block, no cleanup
            return function(*args, **kwargs)
        return wrapper

    real_os_replace = os.replace
    io_utils.os.replace = counted(real_os_replace)
    io_utils._remove = counted(io_utils._remove)
    io_utils._fsync = counted(io_utils._fsync)
    if mode == "fallback":
        io_utils.exchange_paths = lambda first, second: False
    io_utils.exchange_paths = counted(io_utils.exchange_paths)
    files = sys.argv[5:]
    with io_utils.atomic_path(target) as folder:
        for name in files:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(version)
    print("steps", steps[0])
    """
)


def write_bundle(path: Path, version: str) -> None:
    with atomic_path(path) as folder:
        for name in FILES:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(version)


def bundle_version(path: Path) -> str | None:
    """The version every file of the bundle holds; None when the folder is missing; fails on a mix."""
    if not path.exists():
        return None
    versions = {(path / name).read_text() for name in FILES}
    assert len(versions) == 1, f"a mixed bundle: {versions}"
    found = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert found == sorted(FILES)
    return versions.pop()


def replace_in_child(path: Path, version: str, kill_at: int, mode: str) -> subprocess.CompletedProcess:
    import lyra_sim.io_utils

    env = dict(os.environ, LYRA_IO_UTILS=lyra_sim.io_utils.__file__)
    return subprocess.run([sys.executable, "-c", CHILD, str(path), version, str(kill_at), mode, *FILES], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_a_killed_bundle_replace_always_leaves_a_complete_bundle(tmp_path, mode):
    path = tmp_path / "bundle"
    write_bundle(path, "v0")
    done = replace_in_child(path, "v1", 0, mode)  # no kill: count the steps
    assert done.returncode == 0, done.stderr
    total = int(done.stdout.split()[-1])
    assert bundle_version(path) == "v1" and total >= 4
    previous = "v1"
    for kill_at in range(1, total + 1):
        version = f"v{kill_at + 1}"
        result = replace_in_child(path, version, kill_at, mode)
        assert result.returncode == 9, (kill_at, result.stderr)
        found = bundle_version(path)
        if mode == "exchange":
            assert found in (previous, version), (kill_at, found)  # never a gap
        else:
            assert found in (previous, version, None), (kill_at, found)
            recover_interrupted_replace(path)  # what the next write or load_bundle does first
            assert bundle_version(path) in (previous, version), kill_at
        previous = bundle_version(path)
        # Whatever was left, the next complete write succeeds and leaves no temporary behind.
    write_bundle(path, "final")
    assert bundle_version(path) == "final"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_stale_temporaries_of_dead_processes_are_cleaned_on_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale_file = tmp_path / f".scene.ply.{dead}.abcd1234.tmp"
    stale_file.write_text("half")
    stale_folder = tmp_path / f".scene.ply.{dead}.ef567890.tmp"
    stale_folder.mkdir()
    live = tmp_path / f".scene.ply.{os.getpid()}.00000000.tmp"  # a write in progress: kept
    live.write_text("busy")
    other = tmp_path / f".other.ply.{dead}.abcd1234.tmp"  # another output's: not ours to clean
    other.write_text("x")
    with atomic_path(tmp_path / "scene.ply") as temporary:
        temporary.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scene.ply", live.name, other.name])


def test_failed_write_keeps_the_old_output(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps({"old": True}))
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("partial")
            raise RuntimeError("crash")
    assert json.loads(path.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]

"""The ``lyra-sim`` command never shows a traceback for bad input (issue 16): every case exits
non-zero with one message naming the problem, and is refused before any work starts.

Cases run in-process through ``lyra_sim.cli.main`` (argparse's own refusals exit with status 2);
one runs the installed command in a subprocess to check the real process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lyra_sim.cli import main
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.io import save_scene


@pytest.fixture
def scene_file(tmp_path) -> Path:
    g = torch.Generator().manual_seed(0)
    scene = GaussianScene.from_activated(torch.randn(50, 3, generator=g), torch.rand(50, 3, generator=g), torch.full((50,), 0.8), torch.full((50, 3), 0.05))
    return save_scene(scene, tmp_path / "scene.ply")


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refusals
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def assert_refused(argv, capsys, message: str, code: int | None = None):
    status, output = run_cli(argv, capsys)
    assert status not in (0, None), (argv, output)
    if code is not None:
        assert status == code, (argv, status, output)
    assert "Traceback" not in output, output
    assert message.lower() in output.lower(), (message, output)
    if status != 2:  # argparse (status 2) prints its usage lines first; ours is one line
        assert len(output.strip().splitlines()) == 1, output


RENDER_CASES = [
    (["--fov", "0"], "--fov must be in (0, 180)"),
    (["--fov", "-10"], "--fov must be in (0, 180)"),
    (["--fov", "180"], "--fov must be in (0, 180)"),
    (["--fov", "nan"], "--fov must be a finite number"),
    (["--fov", "inf"], "--fov must be a finite number"),
    (["--eye", "1", "2", "3", "--target", "1", "2", "3"], "--eye and --target are the same point"),
    (["--up", "0", "0", "0"], "up direction must not be zero"),
    (["--up", "0", "0", "nan"], "--up must be finite"),
    (["--eye", "1", "2"], "--eye takes 3 numbers"),
    (["--sh-degree", "9"], "invalid choice: 9"),
    (["--width", "100000", "--height", "100000"], "images are limited to 16384 pixels a side"),
    (["--width", "16000", "--height", "16000"], "67108864 pixels in all"),
    (["--width", "0"], "--width and --height must be >= 1"),
    (["--elevation", "90"], "up direction is parallel to the viewing direction"),
    (["--elevation", "200"], "--elevation must be in [-90, 90]"),
    (["--distance", "0"], "--distance must be > 0"),
    (["--distance", "-1"], "--distance must be > 0"),
    (["--background", "2", "0", "0"], "--background must be R G B in [0, 1]"),
    (["--width", "abc"], "invalid int value"),
]


@pytest.mark.parametrize("extra, message", RENDER_CASES, ids=[" ".join(c[0]) for c in RENDER_CASES])
def test_render_bad_options(scene_file, tmp_path, capsys, extra, message):
    assert_refused(["render", str(scene_file), "-o", str(tmp_path / "out.png"), *extra], capsys, message)
    assert not (tmp_path / "out.png").exists()


def test_render_bad_outputs(scene_file, tmp_path, capsys):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "a_file").write_text("x")
    cases = [
        (tmp_path / "folder.png", "is a folder"),
        (tmp_path / "a_file" / "out.png", "is not a folder"),
        (Path("/proc/out.png"), "cannot write under /proc"),
        (Path("/sys/kernel/out.png"), "cannot write under /sys"),
        (tmp_path / "out.gif", "must end with .png or .jpg or .jpeg"),
    ]
    for out, message in cases:
        assert_refused(["render", str(scene_file), "-o", str(out)], capsys, message, code=1)
    assert_refused(["render", str(scene_file), "-o", str(tmp_path / "ok.png"), "--depth-out", str(tmp_path / "d.tiff")], capsys, "--depth-out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_render_into_a_read_only_folder(scene_file, tmp_path, capsys):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert_refused(["render", str(scene_file), "-o", str(folder / "out.png")], capsys, "cannot write in")
    finally:
        folder.chmod(0o755)


def test_build_checks_options_and_output_before_any_work(scene_file, tmp_path, capsys, monkeypatch):
    import lyra_sim.scene.io as scene_io

    calls = []
    monkeypatch.setattr(scene_io, "load_scene", lambda *a, **k: calls.append(a) or pytest.fail("the scene was read"))
    (tmp_path / "a_file").write_text("x")
    cases = [
        (["--image-size", "100000"], "image_size must be at most 4096"),
        (["--image-size", "0"], "image_size must be >= 1"),
        (["--voxel-size", "nan"], "voxel_size must be a finite number > 0"),
        (["--voxel-size", "inf"], "voxel_size must be a finite number > 0"),
        (["--scale", "-2"], "scale must be a finite number > 0"),
        (["--crop", "0", "0", "0", "1", "1"], "crop must be"),
        (["--crop", "1", "0", "0", "0", "1", "1"], "crop must be"),
    ]
    for extra, message in cases:
        assert_refused(["build", str(scene_file), "-o", str(tmp_path / "bundle"), *extra, "--no-progress"], capsys, message, code=1)
    for out, message in [(tmp_path / "a_file", "is a file"), (Path("/proc/bundle"), "/proc"), (tmp_path / "a_file" / "b", "is not a folder")]:
        assert_refused(["build", str(scene_file), "-o", str(out), "--no-progress"], capsys, message, code=1)
    assert calls == [] and not (tmp_path / "bundle").exists()


def test_build_refuses_an_empty_scene_clearly(tmp_path, capsys):
    empty = save_scene(GaussianScene.empty(), tmp_path / "empty.ply")
    assert_refused(["build", str(empty), "-o", str(tmp_path / "bundle"), "--no-progress"], capsys, "empty.ply: the scene has no Gaussians; nothing to build", code=1)
    assert not (tmp_path / "bundle").exists()


def test_info_and_convert_bad_inputs(tmp_path, capsys, scene_file):
    (tmp_path / "garbage.ply").write_bytes(b"ply\nformat nonsense\n")
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    for path, message in [
        (tmp_path / "missing.ply", "no such file"),
        (tmp_path / "garbage.ply", "garbage.ply"),
        (tmp_path / "empty.bin", "unrecognised splat format"),
        (tmp_path / "folder", "holds no splat files|is a directory"),
    ]:
        for argv in (["info", str(path)], ["convert", str(path), str(tmp_path / "out.spz")]):
            status, output = run_cli(argv, capsys)
            assert status == 1 and "Traceback" not in output and len(output.strip().splitlines()) == 1, output
            assert any(m in output for m in message.split("|")), output
    assert not (tmp_path / "out.spz").exists()
    assert_refused(["convert", str(scene_file), str(tmp_path / "out.xyz")], capsys, "cannot tell the format")
    assert_refused(["convert", str(scene_file), "/proc/out.ply"], capsys, "cannot write under /proc", code=1)
    assert_refused(["convert", str(scene_file), str(tmp_path / "folder")], capsys, "is a folder", code=1)


def test_empty_scenes_work_in_info_and_convert(tmp_path, capsys):
    empty = save_scene(GaussianScene.empty(), tmp_path / "empty.ply")
    assert run_cli(["info", str(empty)], capsys)[0] == 0
    for name in ("e.spz", "e.splat", "e.compressed.ply", "e.ply"):
        status, output = run_cli(["convert", str(empty), str(tmp_path / name)], capsys)
        assert status == 0 and "wrote 0 Gaussians" in output, output
        assert run_cli(["info", str(tmp_path / name)], capsys)[0] == 0


def test_unexpected_errors_print_one_line_and_save_the_traceback(scene_file, capsys, monkeypatch):
    from lyra_sim.commands import info

    def broken(config):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(info, "run", broken)
    status, output = run_cli(["info", str(scene_file)], capsys)
    assert status == 70 and "Traceback" not in output
    lines = output.strip().splitlines()
    assert lines[0] == "lyra-sim info: internal error: RuntimeError: a bug over two lines"
    saved = Path(lines[1].split("the traceback is in ")[1].split(" (rerun")[0])
    assert "Traceback" in saved.read_text() and "a bug" in saved.read_text()
    saved.unlink()
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info", str(scene_file), "--debug"])
    with pytest.raises(RuntimeError, match="a bug"):
        main(["--debug", "info", str(scene_file)])


def test_os_errors_are_one_line(scene_file, capsys, monkeypatch):
    from lyra_sim.commands import info

    def denied(config):
        raise PermissionError(13, "Permission denied", "/somewhere/file")

    monkeypatch.setattr(info, "run", denied)
    status, output = run_cli(["info", str(scene_file)], capsys)
    assert status == 1 and output.strip() == "lyra-sim info: error: /somewhere/file: Permission denied"


def test_the_installed_command_shows_no_traceback(tmp_path, scene_file):
    command = [sys.executable, "-m", "lyra_sim.cli", "render", str(scene_file), "-o", str(tmp_path / "o.png"), "--fov", "nan"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "lyra-sim render: error: --fov must be a finite number, got nan"

"""load_scene / save_scene / load_sequence: detection by content, atomic writes, cross-format agreement."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

import lyra_sim
from lyra_sim import GaussianScene, SceneFormatError
from lyra_sim.scene.io import detect_format, load_scene, load_sequence, save_scene
from lyra_sim.scene.sh import SH_C0


def scene_for_agreement(n: int = 400) -> GaussianScene:
    """Values inside every format's range (positions < 2048, colours in [0, 1], log-scales in [-10, 6])."""
    g = torch.Generator().manual_seed(42)
    colors = torch.rand(n, 3, generator=g) * 0.9 + 0.05
    scene = GaussianScene.from_activated(
        torch.randn(n, 3, generator=g) * 2,
        colors,
        torch.rand(n, generator=g) * 0.9 + 0.05,
        torch.exp(torch.rand(n, 3, generator=g) * 4 - 6),
        quats=torch.randn(n, 4, generator=g),
        sh_degree=1,
    )
    scene.sh[:, 1:] = torch.rand(n, 3, 3, generator=g) * 0.6 - 0.3
    return scene


def test_public_api_round_trip(tmp_path):
    scene = scene_for_agreement(10)
    path = lyra_sim.save_scene(scene, tmp_path / "s.ply")
    torch.testing.assert_close(lyra_sim.load_scene(path).sh, scene.sh)


def test_the_same_scene_as_ply_spz_and_splat_agrees(tmp_path):
    scene = scene_for_agreement()
    loaded = {}
    for name in ("s.ply", "s.spz", "s.splat"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded[name] = load_scene(save_scene(scene, tmp_path / name))
        assert bool(caught) == name.endswith(".splat")  # only .splat drops the degree-1 SH
    for name, back in loaded.items():
        low, high = back.bounds()
        true_low, true_high = scene.bounds()
        torch.testing.assert_close(low, true_low, atol=1.0 / 4096, rtol=0)
        torch.testing.assert_close(high, true_high, atol=1.0 / 4096, rtol=0)
        # Colour: spz DC step 1/(0.15*255) in f_dc = ~0.0074 in colour; .splat 1/255.
        assert (back.colors() - scene.colors()).abs().max() <= 0.004, name
        assert (back.opacities() - scene.opacities()).abs().max() <= 0.5 / 255 + 1e-6, name


def test_detection_ignores_misleading_extensions(tmp_path):
    scene = scene_for_agreement(8)
    spz_path = save_scene(scene, tmp_path / "real.spz")
    disguised = tmp_path / "looks_like.ply"
    os.replace(spz_path, disguised)
    assert detect_format(disguised) == "spz"
    assert len(load_scene(disguised)) == 8
    ply_path = save_scene(scene, tmp_path / "data.bin", format="ply")
    assert detect_format(ply_path) == "ply"
    with pytest.warns(UserWarning):
        splat_path = save_scene(scene, tmp_path / "noext", format="splat")
    assert detect_format(splat_path) == "splat"


def test_unknown_content_and_missing_files(tmp_path):
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"hello world, not a splat")
    with pytest.raises(SceneFormatError, match="unrecognised"):
        load_scene(junk)
    with pytest.raises(SceneFormatError, match="no such file"):
        load_scene(tmp_path / "missing.ply")
    with pytest.raises(SceneFormatError, match="directory"):
        load_scene(tmp_path)


def test_save_rejects_unknown_extensions_and_options(tmp_path):
    scene = scene_for_agreement(4)
    with pytest.raises(ValueError, match="extension"):
        save_scene(scene, tmp_path / "scene.xyz")
    with pytest.raises(TypeError, match="unknown options \\['version'\\]"):
        save_scene(scene, tmp_path / "scene.ply", version=3)
    with pytest.raises(ValueError, match="format"):
        save_scene(scene, tmp_path / "scene.ply", format="obj")


def test_writes_are_atomic(tmp_path, monkeypatch):
    from lyra_sim.scene import io

    scene = scene_for_agreement(4)
    target = save_scene(scene, tmp_path / "keep.ply")
    before = target.read_bytes()

    def failing_writer(scene, path, **options):
        Path(path).write_bytes(b"ply\nhalf a file")
        raise ValueError("disk full halfway")

    import dataclasses

    monkeypatch.setitem(io.FORMATS, "ply", dataclasses.replace(io.FORMATS["ply"], write=failing_writer))
    with pytest.raises(ValueError, match="disk full halfway"):
        save_scene(scene, tmp_path / "keep.ply")
    assert target.read_bytes() == before  # the failed write left the old file alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.ply"]  # and no temporary behind


def test_load_sequence_orders_frames_naturally(tmp_path):
    folder = tmp_path / "dynamic"
    for index in (10, 2, 1):
        scene = GaussianScene.from_activated(torch.full((index, 3), float(index)), torch.full((index, 3), 0.5), torch.full((index,), 0.5), torch.full((index, 3), 0.1))
        save_scene(scene, folder / f"frame_{index}.ply")
    (folder / "notes.txt").write_text("not a frame")
    frames = load_sequence(folder, progress=False)
    assert [len(f) for f in frames] == [1, 2, 10]
    assert [f.metadata.time for f in frames] == [0.0, 1.0, 2.0]
    listed = load_sequence([folder / "frame_10.ply", folder / "frame_1.ply"], progress=False)
    assert [len(f) for f in listed] == [10, 1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneFormatError, match="no splat files"):
        load_sequence(tmp_path / "empty", progress=False)


def test_frame_override_and_dc_colour(tmp_path):
    scene = scene_for_agreement(5)
    back = load_scene(save_scene(scene, tmp_path / "f.ply"), frame="z-up")
    assert back.metadata.frame == "z-up"
    torch.testing.assert_close(back.colors(), (scene.sh[:, 0] * SH_C0 + 0.5).clamp(0, 1))
    with pytest.raises(ValueError, match="frame"):
        load_scene(tmp_path / "f.ply", frame="sideways")

"""The splat-format table: every format declares itself once, and a new entry is all that
load_scene, save_scene, detect_format and format_for_extension need."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lyra_sim.errors import SceneFormatError
from lyra_sim.scene import io
from lyra_sim.scene.formats.spec import SceneFormatSpec
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.typed import SceneFormat


def test_table_entries_are_complete_and_named_once():
    assert list(io.FORMATS) == [spec.name for spec in io.FORMATS.values()]
    assert set(io.FORMATS) == {"compressed_ply", "lyra_ply", "ply", "spz", "gsplat_pt", "splat", "sog", "gltf", "usd"}
    assert set(io.FORMATS) <= set(SceneFormat.__args__)
    for spec in io.FORMATS.values():
        assert callable(spec.sniff) and (spec.read is not None or spec.write is not None)
        assert 0 <= spec.max_sh_degree <= 3
    assert io.format_for_extension("a/b.compressed.ply") == "compressed_ply"
    assert io.format_for_extension("b.PLY") == "ply" and io.format_for_extension("b.pth") == "gsplat_pt"
    assert io.format_for_extension("b.obj") is None
    assert io.format_for_extension("scene/meta.json") == "sog" and io.format_for_extension("a.glb") == "gltf"
    assert io.format_for_extension("a.usda") == "usd"


MAGIC = b"TOYSPLAT"


def _read_toy(path, *, keep_frame=False):
    data = np.frombuffer(path.read_bytes()[len(MAGIC):], dtype=np.float32).reshape(-1, 3)
    n = len(data)
    return GaussianScene(torch.from_numpy(data.copy()), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), torch.full((n, 3), -3.0),
                         torch.zeros(n), torch.zeros(n, 1, 3), SceneMetadata(source=str(path), format="toy", notes=[f"keep_frame={keep_frame}"]))


def _write_toy(scene, path):
    path.write_bytes(MAGIC + scene.means.numpy().astype(np.float32).tobytes())


def test_one_registry_entry_adds_a_format(tmp_path, monkeypatch):
    toy = SceneFormatSpec("toy", lambda path, head: head.startswith(MAGIC), _read_toy, _write_toy, extensions=(".toy",),
                          max_sh_degree=0, read_options=("keep_frame",))
    monkeypatch.setitem(io.FORMATS, "toy", toy)
    scene = GaussianScene(torch.rand(5, 3), torch.randn(5, 4), torch.zeros(5, 3), torch.zeros(5), torch.zeros(5, 4, 3))
    with pytest.warns(UserWarning, match="toy stores SH degree 0"):
        written = io.save_scene(scene, tmp_path / "scene.toy")
    assert io.format_for_extension(written) == "toy" and io.detect_format(written) == "toy"
    loaded = io.load_scene(written, keep_spz_frame=True)
    np.testing.assert_array_equal(loaded.means.numpy(), scene.means.numpy())
    assert loaded.metadata.notes == ["keep_frame=True"]  # the read option reached its reader
    with pytest.raises(TypeError, match="unknown options"):
        io.save_scene(scene, tmp_path / "other.toy", sort=True)
    assert io.sequence_files(tmp_path) == [written]


def test_unsniffed_file_with_an_extension_gets_that_formats_error(tmp_path):
    bad = tmp_path / "bad.splat"
    bad.write_bytes(b"\x00" * 33)
    with pytest.raises(SceneFormatError, match="not a valid .splat file"):
        io.detect_format(bad)
    unknown = tmp_path / "bad.bin"
    unknown.write_bytes(b"\x01" * 33)
    with pytest.raises(SceneFormatError, match="unrecognised splat format.*supported: compressed_ply, lyra_ply, ply"):
        io.detect_format(unknown)

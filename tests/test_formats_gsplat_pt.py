"""gsplat simple_trainer checkpoints: layout, rank concatenation, appearance models, bad files."""

from __future__ import annotations

import pickle

import pytest
import torch

from lyra_sim import SceneFormatError
from lyra_sim.scene.io import detect_format, load_scene
from lyra_sim.scene.sh import SH_C0


def splats(n: int, degree: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2 - 1
    return {
        "means": torch.randn(n, 3, generator=g),
        "scales": torch.randn(n, 3, generator=g) - 3,
        "quats": torch.rand(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.randn(n, k, 3, generator=g),
    }


def test_reads_a_checkpoint_exactly(tmp_path):
    data = splats(40)
    path = tmp_path / "ckpt_6999.pt"
    torch.save({"step": 6999, "splats": data, "scene_id": "abc"}, path)
    assert detect_format(path) == "gsplat_pt"
    scene = load_scene(path)
    assert len(scene) == 40 and scene.sh_degree == 3 and scene.metadata.format == "gsplat_pt"
    torch.testing.assert_close(scene.means, data["means"])
    torch.testing.assert_close(scene.log_scales, data["scales"])
    torch.testing.assert_close(scene.quats, data["quats"])
    torch.testing.assert_close(scene.opacity_logits, data["opacities"])
    torch.testing.assert_close(scene.sh, torch.cat([data["sh0"], data["shN"]], 1))  # both coefficient-major


def test_rank_files_are_concatenated_in_rank_order(tmp_path):
    parts = [splats(5 + r, degree=1, seed=r) for r in range(3)]
    for rank in (2, 0, 1):
        torch.save({"step": 1, "splats": parts[rank]}, tmp_path / f"ckpt_29999_rank{rank}.pt")
    torch.save({"step": 1, "splats": splats(3, degree=1)}, tmp_path / "ckpt_6999_rank0.pt")  # another step: not included
    scene = load_scene(tmp_path / "ckpt_29999_rank1.pt")
    assert len(scene) == 5 + 6 + 7
    torch.testing.assert_close(scene.means, torch.cat([p["means"] for p in parts]))
    assert any("3 rank files" in note for note in scene.metadata.notes)


def test_appearance_checkpoint_keeps_base_colour(tmp_path):
    data = splats(6, degree=0)
    del data["sh0"], data["shN"]
    data["colors"], data["features"] = torch.randn(6, 3), torch.randn(6, 32)
    torch.save({"splats": data}, tmp_path / "app.pt")
    scene = load_scene(tmp_path / "app.pt")
    torch.testing.assert_close(scene.sh[:, 0] * SH_C0 + 0.5, torch.sigmoid(data["colors"]))
    assert any("appearance" in note for note in scene.metadata.notes)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"splats": {k: v for k, v in splats(4).items() if k != "quats"}}, "lack required tensors \\['quats'\\]"),
        ({"splats": {**splats(4), "quats": torch.zeros(4, 3)}}, "quats"),
        ({"splats": {**splats(4), "shN": torch.zeros(4, 5, 3)}}, "unknown SH layout"),
        ([1, 2, 3], "not a dict"),
    ],
)
def test_malformed_checkpoints(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    torch.save(content, path)
    with pytest.raises(SceneFormatError, match=message):
        load_scene(path)


class NotAllowed:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_with_code_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"splats": splats(2), "payload": NotAllowed()}, path)
    with pytest.raises(SceneFormatError, match="weights_only"):
        load_scene(path)
    assert "must never run" not in capsys.readouterr().out
    path.write_bytes(pickle.dumps({"x": 1}, protocol=2)[:10])
    with pytest.raises(SceneFormatError):
        load_scene(path)

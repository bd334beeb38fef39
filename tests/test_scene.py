"""GaussianScene core: construction, activations, indexing, concatenation, bounds, quaternion helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lyra_sim import GaussianScene, SceneMetadata
from lyra_sim.scene import matrix_to_quat, quat_multiply, quat_to_matrix
from lyra_sim.scene.sh import SH_C0


def scene_of(n: int, degree: int = 1) -> GaussianScene:
    g = torch.Generator().manual_seed(n)
    return GaussianScene(torch.arange(n * 3.0).reshape(n, 3), torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g), torch.randn(n, generator=g), torch.randn(n, (degree + 1) ** 2, 3, generator=g))


def test_from_activated_inverts_the_activations():
    colors = torch.tensor([[0.2, 0.5, 0.9], [1.0, 0.0, 0.3]])
    scene = GaussianScene.from_activated(torch.zeros(2, 3), colors, torch.tensor([0.1, 0.8]), torch.tensor([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]]), sh_degree=2)
    torch.testing.assert_close(scene.colors(), colors)
    torch.testing.assert_close(scene.opacities(), torch.tensor([0.1, 0.8]))
    torch.testing.assert_close(scene.scales(), torch.tensor([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]]))
    torch.testing.assert_close(scene.rotations(), torch.tensor([[1.0, 0, 0, 0]] * 2))
    assert scene.sh_degree == 2 and scene.sh.shape == (2, 9, 3) and torch.all(scene.sh[:, 1:] == 0)
    torch.testing.assert_close(scene.sh[:, 0], (colors - 0.5) / SH_C0)


def test_shapes_are_checked_with_the_actual_shape_in_the_message():
    with pytest.raises(ValueError, match=r"quats must have shape \[4, 4\], got \[4, 3\]"):
        GaussianScene(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4), torch.zeros(4, 1, 3))
    with pytest.raises(ValueError, match="not \\(degree\\+1\\)\\^2"):
        GaussianScene(torch.zeros(4, 3), torch.zeros(4, 4), torch.zeros(4, 3), torch.zeros(4), torch.zeros(4, 5, 3))


def test_indexing_by_int_slice_array_and_mask():
    scene = scene_of(6)
    assert len(scene[2]) == 1 and torch.equal(scene[2].means, scene.means[2:3])
    assert torch.equal(scene[-1].means, scene.means[-1:])
    assert len(scene[1:4]) == 3
    assert torch.equal(scene[np.array([5, 0])].means, scene.means[[5, 0]])
    mask = torch.tensor([True, False, True, False, False, True])
    picked = scene[mask]
    assert torch.equal(picked.sh, scene.sh[mask]) and len(picked) == 3
    with pytest.raises(IndexError, match=r"\[6\]"):
        scene[torch.tensor([True, False])]


def test_concat_pads_sh_and_keeps_the_first_metadata():
    first, second = scene_of(3, degree=0), scene_of(2, degree=2)
    first.metadata = SceneMetadata(source="a.ply", format="ply", frame="z-up")
    joined = GaussianScene.concat([first, second])
    assert len(joined) == 5 and joined.sh_degree == 2 and joined.metadata.frame == "z-up"
    assert torch.all(joined.sh[:3, 1:] == 0) and torch.equal(joined.sh[3:], second.sh)
    with pytest.raises(ValueError):
        GaussianScene.concat([])


def test_with_sh_degree_truncates_and_pads():
    scene = scene_of(4, degree=3)
    assert torch.equal(scene.with_sh_degree(1).sh, scene.sh[:, :4])
    padded = scene_of(4, degree=0).with_sh_degree(2)
    assert padded.sh.shape == (4, 9, 3) and torch.all(padded.sh[:, 1:] == 0)


def test_bounds_and_robust_percentiles():
    means = torch.zeros(101, 3)
    means[:, 0] = torch.arange(101.0)
    means[0, 1] = -1000.0  # one far outlier
    scene = GaussianScene(means, torch.ones(101, 4), torch.zeros(101, 3), torch.zeros(101), torch.zeros(101, 1, 3))
    low, high = scene.bounds()
    assert low.tolist() == [0.0, -1000.0, 0.0] and high.tolist() == [100.0, 0.0, 0.0]
    robust_low, robust_high = scene.bounds(percentile=1.0)
    assert robust_low[0].item() == pytest.approx(1.0) and robust_high[0].item() == pytest.approx(99.0)
    assert robust_low[1].item() == pytest.approx(0.0)  # the outlier is outside the 1-99 range
    with pytest.raises(ValueError, match="empty"):
        GaussianScene.empty().bounds()


def test_clone_and_to_do_not_share_metadata_or_storage():
    scene = scene_of(3)
    scene.metadata.notes.append("original")
    copy = scene.clone()
    copy.means[0, 0] = 1e6
    copy.metadata.notes.append("copy")
    assert scene.means[0, 0] != 1e6 and scene.metadata.notes == ["original"]
    assert scene.to("cpu").device.type == "cpu"
    assert "n=3" in repr(scene)


def test_quaternion_helpers_match_scipy():
    rotations = Rotation.random(20, random_state=3)
    wxyz = torch.tensor(rotations.as_quat()[:, [3, 0, 1, 2]], dtype=torch.float64)
    torch.testing.assert_close(quat_to_matrix(wxyz), torch.tensor(rotations.as_matrix()))
    back = matrix_to_quat(torch.tensor(rotations.as_matrix()))
    assert torch.all(back[:, 0] >= 0)
    torch.testing.assert_close(back.abs(), wxyz.abs(), atol=1e-10, rtol=0)  # q and -q are the same rotation
    product = quat_multiply(wxyz[:10], wxyz[10:])
    expected = (rotations[:10] * rotations[10:]).as_matrix()
    torch.testing.assert_close(quat_to_matrix(product), torch.tensor(expected), atol=1e-10, rtol=0)

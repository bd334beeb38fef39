"""Geometry metrics against analytic truth: planes, cubes and known offsets."""

import numpy as np
import pytest

from lyra_sim.geometry.metrics import chamfer_l1, compare_meshes, compare_point_sets, fscore, sample_surface, volume_iou
from lyra_sim.geometry.mesh import Mesh


def _square(z: float = 0.0, size: float = 1.0) -> Mesh:
    h = size / 2
    return Mesh(np.array([[-h, -h, z], [h, -h, z], [h, h, z], [-h, h, z]]), np.array([[0, 1, 2], [0, 2, 3]]))


def _cube(offset=(0.0, 0.0, 0.0), size: float = 1.0) -> Mesh:
    import trimesh

    box = trimesh.creation.box(extents=(size, size, size))
    box.apply_translation(offset)
    return Mesh(np.asarray(box.vertices), np.asarray(box.faces))


def test_sample_surface_is_uniform_by_area_and_on_the_surface():
    # Two squares, the second 4x the area: it must receive ~80% of the samples.
    small, large = _square(0.0, 1.0), _square(1.0, 2.0)
    both = Mesh.concatenate([small, large])
    points, normals = sample_surface(both.vertices, both.faces, 20_000, seed=1)
    assert points.shape == (20_000, 3) and normals.shape == (20_000, 3)
    on_large = np.isclose(points[:, 2], 1.0)
    assert np.all(on_large | np.isclose(points[:, 2], 0.0))
    assert abs(on_large.mean() - 0.8) < 0.02
    assert np.allclose(np.abs(normals[:, 2]), 1.0)
    assert np.all(np.abs(points[~on_large, :2]) <= 0.5 + 1e-9)


def test_identical_sets_score_perfectly_and_offsets_are_measured():
    points, _ = sample_surface(_square().vertices, _square().faces, 5_000, seed=0)
    same = compare_point_sets(points, points, 0.01)
    assert same.chamfer_l1 == 0.0 and same.fscore == 1.0
    shifted = points + np.array([0.0, 0.0, 0.02])
    result = compare_point_sets(shifted, points, 0.01)
    assert result.precision == 0.0 and result.recall == 0.0 and result.fscore == 0.0
    assert chamfer_l1(shifted, points) == pytest.approx(0.02, abs=1e-9)
    precision, recall, f = fscore(shifted, points, 0.03)
    assert (precision, recall, f) == (1.0, 1.0, 1.0)


def test_partial_coverage_lowers_recall_not_precision():
    truth, _ = sample_surface(_square().vertices, _square().faces, 20_000, seed=0)
    half = truth[truth[:, 0] < 0]
    result = compare_point_sets(half, truth, 0.01)
    assert result.precision == 1.0
    assert result.recall == pytest.approx(0.5, abs=0.03)
    assert result.fscore == pytest.approx(2 * 0.5 / 1.5, abs=0.03)


def test_compare_meshes_normal_consistency():
    # 40k samples per square metre: neighbours are ~5 mm apart, well inside the 2 cm threshold.
    flat = compare_meshes(_square().vertices, _square().faces, _square(0.001).vertices, _square(0.001).faces, 0.02, samples=40_000)
    assert flat.fscore == 1.0
    assert flat.normal_consistency == pytest.approx(1.0)
    cube = _cube()
    tilted = compare_meshes(cube.vertices, cube.faces, _square().vertices, _square().faces, 0.01, samples=5_000)
    assert tilted.normal_consistency < 0.9


def test_volume_iou_of_offset_cubes():
    a, b = _cube(), _cube((0.5, 0.0, 0.0))
    assert volume_iou(a.vertices, a.faces, a.vertices, a.faces, samples=50_000) == pytest.approx(1.0)
    # Overlap 0.5, union 1.5.
    assert volume_iou(a.vertices, a.faces, b.vertices, b.faces, samples=200_000) == pytest.approx(1 / 3, abs=0.01)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        compare_point_sets(np.zeros((3, 2)), np.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError, match="empty"):
        chamfer_l1(np.zeros((0, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="threshold"):
        compare_point_sets(np.zeros((3, 3)), np.zeros((3, 3)), 0.0)

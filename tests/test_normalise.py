"""Normalisation against analytic truth: random similarity transforms of a floor + boxes + sphere
scene must come back +Z up (within 1 degree), floor at z = 0, metric with a known height."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lyra_sim.converters.config import BuildConfig
from lyra_sim.converters.normalise import normalise_scene, rotation_between
from lyra_sim.converters.segment import segment_objects
from lyra_sim.errors import BundleError
from lyra_sim.geometry.analytic import tabletop_scene
from lyra_sim.scene.gaussian_scene import GaussianScene
from lyra_sim.scene.transforms import transform_scene


@pytest.fixture(scope="module")
def analytic():
    return tabletop_scene(6000, floor_size=1.2, seed=3)


def _disguise(scene: GaussianScene, seed: int, frame: str = "unknown"):
    """A random similarity of the scene, with its frame metadata hidden."""
    rotation = Rotation.random(random_state=seed).as_matrix()
    scale = float(np.random.default_rng(seed).uniform(0.3, 4.0))
    translation = np.random.default_rng(seed + 1).uniform(-5, 5, 3)
    source = transform_scene(scene, rotation, translation, scale)
    source.metadata.frame, source.metadata.metric = frame, False
    return source, rotation, scale


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_similarity_is_undone(analytic, seed):
    source, rotation, scale = _disguise(analytic.scene, seed)
    top = max(part.top for part in analytic.parts)
    result = normalise_scene(source, BuildConfig(known_height=top, seed=seed))
    composed = result.transform[:3, :3] @ (scale * rotation)  # truth -> bundle linear part
    up = composed @ np.array([0.0, 0.0, 1.0])
    angle = np.degrees(np.arccos(up[2] / np.linalg.norm(up)))
    assert angle < 1.0
    assert np.linalg.norm(up) == pytest.approx(1.0, rel=0.01)  # metric within 1%
    # Floor at z = 0 and the tallest box top at its true height, in the result scene.
    means = result.scene.means.numpy()
    floor = analytic.mask("floor")[result.kept]
    assert np.abs(means[floor, 2]).max() < 0.005
    assert means[:, 2].max() == pytest.approx(top, abs=0.005)
    # The stored transform maps the source means onto the result means.
    mapped = source.means.numpy()[result.kept] @ result.transform[:3, :3].T + result.transform[:3, 3]
    assert np.allclose(mapped, means, atol=1e-4)
    assert result.scene.metadata.frame == "z-up"
    assert result.steps["scale"]["source"].startswith("known height")


def test_known_height_of_an_object(analytic):
    source, rotation, scale = _disguise(analytic.scene, 7)
    sphere = analytic.mask("sphere")
    diameter = analytic.parts[[p.name for p in analytic.parts].index("sphere")].size[2]
    config = BuildConfig(known_height=diameter, known_height_object="sphere")
    result = normalise_scene(source, config, object_masks={"sphere": sphere})
    assert result.scale * scale == pytest.approx(1.0, rel=0.01)
    with pytest.raises(BundleError, match="not one of the objects"):
        normalise_scene(source, config, object_masks={})


def test_lyra_frame_prior_and_camera_height_scale(analytic):
    # Lyra: OpenCV first camera, -Y up, camera 1.5 m above the floor at the source origin.
    to_opencv = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # z-up world -> y-down camera axes
    camera_height, units_per_metre = 1.5, 0.25
    translation = -units_per_metre * to_opencv @ np.array([0.0, -1.0, camera_height])
    source = transform_scene(analytic.scene, to_opencv, translation, units_per_metre)
    source.metadata.frame, source.metadata.metric = "opencv-first-camera", False
    result = normalise_scene(source, BuildConfig())
    assert result.steps["up_and_floor"]["angle_from_prior_deg"] < 1.0
    assert result.scale == pytest.approx(1 / units_per_metre, rel=0.01)
    assert "camera height prior" in result.steps["scale"]["source"]


def test_far_field_floaters_and_invalid_gaussians_are_removed(analytic):
    scene = analytic.scene
    rng = np.random.default_rng(0)
    sky = GaussianScene.from_activated(
        torch.from_numpy(rng.normal(size=(300, 3)) * 5 + np.array([0, 0, 300.0])).float(),
        torch.full((300, 3), 0.5), torch.full((300,), 0.9), torch.full((300, 3), 0.5),
    )
    floaters = GaussianScene.from_activated(
        torch.tensor([[0.0, 0.0, 0.9], [0.3, -0.2, 0.8]]), torch.full((2, 3), 0.5), torch.full((2,), 0.9), torch.full((2, 3), 0.005),
    )
    faint = GaussianScene.from_activated(torch.zeros(50, 3) + 0.1, torch.full((50, 3), 0.5), torch.full((50,), 0.01), torch.full((50, 3), 0.01))
    broken = GaussianScene.from_activated(torch.zeros(5, 3), torch.full((5, 3), 0.5), torch.full((5,), 0.9), torch.full((5, 3), 0.01))
    broken.means[0, 0] = float("nan")
    broken.quats[1] = 0.0
    combined = GaussianScene.concat([scene, sky, floaters, faint, broken[:2]])
    combined.metadata.frame = "z-up"
    result = normalise_scene(combined, BuildConfig(scale=1.0))
    kept = set(result.kept.tolist())
    n = len(scene)
    assert not kept & set(range(n, n + 300)), "sky (far field) must be removed"
    assert not kept & {n + 300, n + 301}, "isolated floaters must be removed"
    assert not kept & set(range(n + 302, n + 352)), "nearly transparent Gaussians must be removed"
    assert not kept & {n + 352, n + 353}, "NaN / zero-quaternion Gaussians must be removed"
    assert len(kept & set(range(n))) > 0.99 * n
    assert result.steps["invalid"]["removed"] == 2 and result.steps["low_opacity"]["removed"] == 50
    assert result.steps["far_field"]["removed"] == 300


def test_user_crop_box(analytic):
    result = normalise_scene(analytic.scene, BuildConfig(crop=(-0.1, -1.0, -1.0, 1.0, 1.0, 1.0)))
    assert result.scene.means[:, 0].min() >= -0.1
    assert result.steps["user_crop"]["removed"] > 0


def test_empty_and_degenerate_scenes_raise_bundle_errors():
    with pytest.raises(BundleError, match="no Gaussians"):
        normalise_scene(GaussianScene.empty())
    transparent = GaussianScene.from_activated(torch.rand(100, 3), torch.full((100, 3), 0.5), torch.full((100,), 0.001), torch.full((100, 3), 0.01))
    with pytest.raises(BundleError, match="low_opacity"):
        normalise_scene(transparent)


def test_rotation_between_handles_opposite_vectors():
    for source in ([0, 0, 1.0], [0, 0, -1.0], [0, -1.0, 0], [1.0, 2.0, -3.0]):
        rotation = rotation_between(np.array(source), np.array([0, 0, 1.0]))
        assert np.allclose(rotation @ (np.array(source) / np.linalg.norm(source)), [0, 0, 1.0])
        assert np.isclose(np.linalg.det(rotation), 1.0)


def test_segmentation_finds_the_objects_on_the_floor(analytic):
    masks = segment_objects(analytic.scene, max_size=0.6, min_gaussians=50)
    assert len(masks) == 3
    truth = {name: analytic.mask(name) for name in ("box0", "box1", "sphere")}
    for mask in masks.values():
        best = max(truth, key=lambda name: np.sum(mask & truth[name]))
        overlap = np.sum(mask & truth[best])
        assert overlap / mask.sum() > 0.99  # nothing of the floor or another object
        assert overlap / truth[best].sum() > 0.85  # most of the object (the contact cap stays floor)
    assert not any(np.any(mask & analytic.mask("floor")) for mask in masks.values())


@pytest.mark.parametrize("refine_up", [False, True])
def test_floor_is_the_lowest_supported_level_not_a_busier_table_top(refine_up):
    """A reconstruction that sees a table top densely and the floor around it sparsely."""
    rng = np.random.default_rng(5)
    floor = np.c_[rng.uniform(-1.0, 1.0, (1500, 2)), np.zeros(1500)]
    table = np.c_[rng.uniform(-0.5, 0.5, (2500, 2)), np.full(2500, 0.7)]
    means = torch.tensor(np.r_[floor, table], dtype=torch.float32)
    n = len(means)
    scene = GaussianScene.from_activated(means, torch.full((n, 3), 0.5), torch.full((n,), 0.9), torch.full((n, 3), 0.01))
    scene.metadata.frame, scene.metadata.metric = "z-up", True
    result = normalise_scene(scene, BuildConfig(up_axis="+Z", refine_up=refine_up, scale=1.0, align_yaw=False))
    heights = result.scene.means.numpy()[:, 2]
    assert np.abs(np.median(heights[result.kept < 1500])) < 0.01  # the floor at z = 0
    assert np.median(heights[result.kept >= 1500]) == pytest.approx(0.7, abs=0.01)  # the table top above it

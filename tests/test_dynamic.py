"""Dynamic sequences: static/dynamic separation (kit sequences with known truth), Kabsch, the
manifest's versioned ``dynamic`` part and track interpolation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lyra_sim.bundle.dynamic import Track, slerp
from lyra_sim.bundle.manifest import DynamicCluster, Manifest
from lyra_sim.converters.dynamic import kabsch, mask_iou, separate_sequence, world_track
from lyra_sim.errors import BundleError
from lyra_sim.kits.sequences import moving_object_sequence


@pytest.mark.parametrize("noise", [0.0, 0.003], ids=["exact", "reconstruction-like"])
def test_separation_recovers_the_moving_object(noise):
    sequence = moving_object_sequence("room", size=(3.0, 3.0), n_objects=1, gaussians=4000, frames=8, noise=noise, distance=0.8)
    split = separate_sequence(sequence.frames)
    assert len(split.clusters) == 1
    cluster = split.clusters[0]
    assert mask_iou(cluster.mask, sequence.moving) >= 0.9
    assert cluster.rigid
    # The fitted track is the truth: translation of the centre and the turn about +Z.
    centre = sequence.frames[0].means.detach().numpy()[sequence.moving].mean(0)
    for t in range(len(sequence.frames)):
        moved_centre = cluster.rotations[t] @ centre + cluster.translations[t]
        np.testing.assert_allclose(moved_centre, sequence.positions[t], atol=0.02 if noise else 1e-4)
        yaw = Rotation.from_matrix(cluster.rotations[t]).as_euler("xyz")[2]
        assert abs(yaw - sequence.yaws[t]) < (0.05 if noise else 1e-4)
    assert split.evidence["static"] == int(split.static_mask.sum())


def test_separation_refuses_frames_without_correspondence():
    sequence = moving_object_sequence("room", size=(3.0, 3.0), n_objects=1, gaussians=2000, frames=2)
    with pytest.raises(BundleError, match="different numbers of Gaussians"):
        separate_sequence([sequence.frames[0], sequence.frames[1][:100]])


def test_kabsch_recovers_a_random_rigid_motion():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3))
    rotation = Rotation.random(random_state=3).as_matrix()
    fitted_rotation, fitted_translation = kabsch(points, points @ rotation.T + [1.0, -2.0, 0.5])
    np.testing.assert_allclose(fitted_rotation, rotation, atol=1e-10)
    np.testing.assert_allclose(fitted_translation, [1.0, -2.0, 0.5], atol=1e-10)


def test_world_track_maps_source_motion_through_the_bundle_similarity():
    from lyra_sim.converters.dynamic import MovingCluster

    rng = np.random.default_rng(1)
    local = rng.normal(size=(20, 3))
    rotations = Rotation.random(3, random_state=4).as_matrix()
    translations = rng.normal(size=(3, 3))
    cluster = MovingCluster("mover_0", np.ones(20, bool), rotations, translations, np.zeros(3), True)
    transform = np.eye(4)
    transform[:3, :3] = 2.0 * Rotation.random(random_state=5).as_matrix()
    transform[:3, 3] = [0.3, -0.1, 0.7]
    to_world = lambda x: x @ transform[:3, :3].T + transform[:3, 3]  # noqa: E731
    initial = to_world(local).mean(0)  # body frame at the world centre at frame 0
    positions, orientations = world_track(cluster, transform, initial)
    for t in range(3):
        expected = to_world(local @ rotations[t].T + translations[t])
        body = to_world(local) - initial
        actual = body @ Rotation.from_quat(orientations[t]).as_matrix().T + positions[t]
        np.testing.assert_allclose(actual, expected, atol=1e-9)


def test_track_interpolates_and_loops_or_stops():
    cluster = DynamicCluster("mover_0", "mover_0", "rigid", "dynamic/mover_0/track.csv")
    quarter = Rotation.from_euler("z", 90, degrees=True).as_quat()
    track = Track(cluster, np.array([0.0, 1.0]), np.array([[0.0, 0, 0], [2.0, 0, 0]]), np.array([[0, 0, 0, 1.0], quarter]))
    position, orientation = track.pose_at(0.5)
    np.testing.assert_allclose(position, [1.0, 0, 0])
    np.testing.assert_allclose(Rotation.from_quat(orientation).as_euler("xyz", degrees=True)[2], 45.0, atol=1e-9)
    np.testing.assert_allclose(track.pose_at(1.25, "loop")[0], [0.5, 0, 0])
    np.testing.assert_allclose(track.pose_at(1.25, "stop")[0], [2.0, 0, 0])
    np.testing.assert_allclose(slerp(quarter, quarter, 0.3), quarter)
    with pytest.raises(ValueError, match="loop"):
        track.pose_at(0.0, "bounce")


def _manifest_document(dynamic: dict) -> dict:
    return {
        "schema_version": 1, "units": "m", "up_axis": "+Z", "transform": np.eye(4).tolist(),
        "bounds": {"min": [0, 0, 0], "max": [1, 1, 1]}, "floor_height": 0.0,
        "spawn_region": {"min": [0, 0], "max": [1, 1], "z": 0.0}, "background": {"splat": "splats/background.ply", "urdf": "scene.urdf",
                                                             "collision_mesh": "meshes/background_collision.obj", "visual_mesh": "meshes/background_visual.obj"},
        "objects": [{"name": "mover_0", "splat": "splats/mover_0.ply", "urdf": "objects/mover_0.urdf",
                     "collision_mesh": "meshes/mover_0_collision.obj", "mass": 1.0,
                     "initial_pose": {"position": [0, 0, 0], "orientation_xyzw": [0, 0, 0, 1]}}],
        "dynamic": dynamic,
    }


def test_manifest_dynamic_part_round_trips_and_is_validated():
    dynamic = {"version": 1, "fps": 24.0, "frames": 8, "duration_s": 7 / 24,
               "clusters": [{"name": "mover_0", "object": "mover_0", "kind": "rigid", "track": "dynamic/mover_0/track.csv",
                             "frames": None, "max_residual_m": 0.001}]}
    manifest = Manifest.from_dict(_manifest_document(dynamic))
    assert manifest.dynamic.clusters[0].object == "mover_0" and manifest.dynamic.fps == 24.0
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    with pytest.raises(BundleError, match="dynamic.version 2 is not supported"):
        Manifest.from_dict(_manifest_document({**dynamic, "version": 2}))
    wrong_object = {**dynamic, "clusters": [{**dynamic["clusters"][0], "object": "ghost"}]}
    with pytest.raises(BundleError, match="'ghost' is not one of the bundle's objects"):
        Manifest.from_dict(_manifest_document(wrong_object))

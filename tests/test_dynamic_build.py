"""``lyra-sim build SEQUENCE_DIR -o bundle`` end to end: a kit object moved along a path, written
as per-time PLYs in Lyra's dynamic layout, becomes a dynamic bundle (manifest part, track file,
convex hulls of the mover); bad sequences are refused with errors naming the folder or file."""

from __future__ import annotations

import json

import numpy as np
import pybullet
import pytest
from scipy.spatial.transform import Rotation

from lyra_sim.bundle import load_bundle
from lyra_sim.bundle.dynamic import TRACK_COLUMNS, read_tracks
from lyra_sim.cli import main
from lyra_sim.kits.sequences import LYRA_FROM_KIT, moving_object_sequence, write_sequence
from lyra_sim.scene.capture import is_sequence_folder

FAST_BUILD = ["--image-size", "48", "--voxel-size", "0.04", "--backend", "cpu", "--convex-method", "vhacd", "--no-progress"]
FPS = 4.0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("dynamic_build")
    sequence = moving_object_sequence("room", size=(3.0, 3.0), n_objects=1, gaussians=4000, frames=5, distance=0.8, turn_deg=40.0)
    folder = write_sequence(sequence.frames, root / "sequence")
    out = root / "bundle"
    status = main(["build", str(folder), "-o", str(out), "--fps", str(FPS), *FAST_BUILD])
    return sequence, folder, out, status


def test_sequence_folder_builds_a_dynamic_bundle(built, capsys):
    sequence, folder, out, status = built
    assert status == 0
    assert is_sequence_folder(folder) and not is_sequence_folder(out)  # a bundle is not a sequence
    manifest = json.loads((out / "manifest.json").read_text())
    dynamic = manifest["dynamic"]
    assert dynamic["version"] == 1 and dynamic["fps"] == FPS and dynamic["frames"] == 5
    assert dynamic["duration_s"] == pytest.approx(4 / FPS)
    (cluster,) = dynamic["clusters"]
    assert cluster == {"name": "mover_0", "object": "mover_0", "kind": "rigid", "track": "dynamic/mover_0/track.csv",
                       "frames": None, "max_residual_m": pytest.approx(0.0, abs=1e-5)}
    assert manifest["build"]["separation"]["files"] == [f"frame_{t:04d}.ply" for t in range(5)]
    assert manifest["build"]["separation"]["moving"] == int(sequence.moving.sum())

    # The track: header, times at 1/fps, and the truth motion mapped into the bundle world.
    lines = (out / cluster["track"]).read_text().splitlines()
    assert lines[0] == ",".join(TRACK_COLUMNS) and len(lines) == 6
    rows = np.loadtxt(out / cluster["track"], delimiter=",", skiprows=1)
    np.testing.assert_allclose(rows[:, 0], np.arange(5) / FPS)
    transform = np.asarray(manifest["transform"]) @ LYRA_FROM_KIT  # kit -> source -> bundle world
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    rotation = transform[:3, :3] / scale
    (mover,) = manifest["objects"]
    body_origin = np.asarray(mover["initial_pose"]["position"])
    np.testing.assert_allclose(rows[0, 1:4], body_origin, atol=1e-6)
    centre_world = transform[:3, :3] @ sequence.positions[0] + transform[:3, 3]
    for t in range(5):
        turn = Rotation.from_euler("z", sequence.yaws[t]).as_matrix()
        world_turn = rotation @ turn @ rotation.T
        expected = world_turn @ (body_origin - centre_world) + transform[:3, :3] @ sequence.positions[t] + transform[:3, 3]
        np.testing.assert_allclose(rows[t, 1:4], expected, atol=1e-4)
        np.testing.assert_allclose(Rotation.from_quat(rows[t, 4:8]).as_matrix(), world_turn, atol=1e-5)
    assert scale == pytest.approx(1.0, abs=0.03)  # Lyra's camera at the height prior: metric

    # The mover's convex hulls: a compound PyBullet loads, the size of the kit's box.
    box = sequence.kit.objects[[o.name for o in sequence.kit.objects].index(sequence.object_name)].mesh
    assert mover["hulls"] >= 1
    hull_text = (out / mover["collision_mesh"]).read_text()
    assert hull_text.count("\no ") + hull_text.startswith("o ") == mover["hulls"]
    # (carved from the ~60 Gaussians of the box: a little larger than the box, never smaller)
    assert np.all(np.sort(mover["size"]) >= 0.9 * np.sort(scale * box.extents))
    assert np.all(np.sort(mover["size"]) <= np.sort(scale * box.extents) + 0.1)
    client = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(out / mover["urdf"]), physicsClientId=client)
        low, high = pybullet.getAABB(body, physicsClientId=client)
        assert np.all(np.asarray(high) - np.asarray(low) > 0.5 * scale * box.extents.min())
    finally:
        pybullet.disconnect(client)

    # Readers: the typed manifest, the tracks, `lyra-sim info`.
    bundle = load_bundle(out)
    (track,) = read_tracks(out, bundle.manifest)
    np.testing.assert_allclose(track.positions, rows[:, 1:4])
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "dynamic       5 frames at 4 fps (1.000 s): mover_0 (rigid)" in capsys.readouterr().out


def test_bad_sequences_are_refused_naming_the_folder_or_file(tmp_path, capsys):
    sequence = moving_object_sequence("room", size=(3.0, 3.0), n_objects=1, gaussians=2000, frames=3)
    mismatched = write_sequence([sequence.frames[0], sequence.frames[1][:1500], sequence.frames[2]], tmp_path / "mismatched")
    assert main(["build", str(mismatched), "-o", str(tmp_path / "a"), *FAST_BUILD]) != 0
    message = capsys.readouterr().err
    assert str(mismatched) in message and "frame_0001.ply: 1500" in message and "different numbers of Gaussians" in message
    still = write_sequence([sequence.frames[0], sequence.frames[0]], tmp_path / "still")
    assert main(["build", str(still), "-o", str(tmp_path / "b"), *FAST_BUILD]) != 0
    message = capsys.readouterr().err
    assert str(still) in message and "no moving cluster" in message
    broken = write_sequence(sequence.frames[:2], tmp_path / "broken")
    (broken / "frame_0001.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n")
    assert main(["build", str(broken), "-o", str(tmp_path / "c"), *FAST_BUILD]) != 0
    assert "frame_0001.ply" in capsys.readouterr().err
    assert main(["build", str(still), "-o", str(tmp_path / "d"), "--fps", "0", *FAST_BUILD]) != 0
    assert "--fps must be a number > 0" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abcd")

"""Scene kits: seeded layouts, ground truth, photos that agree with the mesh, PyBullet loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cast_rays

from lyra_sim.kits import make_scene
from lyra_sim.kits.layouts import TABLE_HEIGHT
from lyra_sim.kits.textures import PATTERNS, make_texture


@pytest.fixture(scope="module")
def tabletop():
    return make_scene("tabletop", seed=3, n_objects=3, object_kinds=("cube", "blob", "duck"))


def test_same_seed_same_scene_other_seed_differs():
    a, b, c = make_scene("tabletop", seed=5), make_scene("tabletop", seed=5), make_scene("tabletop", seed=6)
    assert a.names == b.names == ["floor", "table", "object_0", "object_1"]
    for x, y in zip(a.objects, b.objects):
        np.testing.assert_array_equal(x.mesh.vertices, y.mesh.vertices)
        np.testing.assert_array_equal(x.position, y.position)
    assert not np.allclose(a.object("object_0").position, c.object("object_0").position)


def test_tabletop_objects_rest_on_the_table_without_overlap(tabletop):
    movables = tabletop.movable_objects
    assert [o.name for o in movables] == ["object_0", "object_1", "object_2"]
    boxes = []
    for obj in movables:
        world = obj.world_mesh()
        assert world.bounds[0, 2] == pytest.approx(TABLE_HEIGHT, abs=1e-3)
        assert np.all(np.abs(world.bounds[:, :2]) < [0.75, 0.5])
        assert obj.mass > 0
        # The body origin is the centre of mass of the closed mesh.
        if obj.mesh.is_volume:
            np.testing.assert_allclose(obj.mesh.center_mass, 0.0, atol=1e-6)
        boxes.append(world.bounds)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            overlap = np.minimum(boxes[i][1, :2], boxes[j][1, :2]) - np.maximum(boxes[i][0, :2], boxes[j][0, :2])
            assert (overlap <= 0).any(), "objects overlap"


def test_ground_truth_mesh_and_face_labels(tabletop):
    mesh = tabletop.mesh()
    labels = tabletop.face_labels()
    assert len(labels) == len(mesh.faces)
    assert mesh.bounds[0, 2] == pytest.approx(0.0)
    assert mesh.bounds[1, 0] == pytest.approx(2.0)  # the 4 m floor
    # Faces of the table lie between the floor and the table top.
    table_faces = mesh.triangles[labels == tabletop.names.index("table")]
    assert table_faces[..., 2].max() == pytest.approx(TABLE_HEIGHT, abs=1e-6)


def test_to_gaussians_labels_and_masks(tabletop):
    scene, labels = tabletop.to_gaussians(5000)
    assert len(scene) == len(labels) >= 5000
    counts = np.bincount(labels, minlength=len(tabletop.objects))
    assert (counts >= 64).all()
    masks = tabletop.object_masks(labels)
    assert sorted(masks) == ["object_0", "object_1", "object_2"]
    for index, name in enumerate(tabletop.names):
        if name in masks:
            lo, hi = tabletop.objects[index].world_mesh().bounds
            points = scene.means[masks[name]].numpy()
            assert np.all(points >= lo - 1e-5) and np.all(points <= hi + 1e-5)


@pytest.mark.parametrize("trajectory", ["orbit", "hemisphere", "walkthrough"])
def test_trajectories_look_at_the_scene(tabletop, trajectory):
    cameras = tabletop.cameras(trajectory, 6, width=32, height=32)
    assert len(cameras) == 6
    focus = np.append(tabletop.focus, 1.0)
    camera_space = np.einsum("cij,j->ci", cameras.viewmat.double().numpy(), focus)
    assert np.all(camera_space[:, 2] > 0.1), "focus point behind a camera"


@pytest.mark.parametrize("kind", ["tabletop", "room"])
def test_photos_match_ray_cast_ground_truth(kind):
    kit = make_scene(kind, seed=2, n_objects=2)
    # 96 px: at lower resolutions the 512 px textures alias and colours depend on the texel filter.
    cameras = kit.cameras("hemisphere", 2, width=96, height=96, radius=0.8 * kit.view_radius)
    photos = kit.render_photos(cameras, progress=False)
    assert photos.images.shape == (2, 96, 96, 3) and photos.depths.shape == (2, 96, 96, 1)
    from lyra_sim.geometry.surface_sampling import surface_colours

    mesh = kit.mesh()
    face_owner = kit.face_labels()
    face_offset = np.searchsorted(face_owner, np.arange(len(kit.objects)))
    for index in range(2):
        t_hit, face, barycentric = cast_rays(mesh, cameras, index)
        hit = np.isfinite(t_hit)
        depth = photos.depths[index, ..., 0].reshape(-1)
        instance = photos.instances[index, ..., 0].reshape(-1)
        assert hit.mean() > 0.5
        # Depth: rays have unit camera-space z, so t_hit is the z-depth; 0 where nothing is hit.
        assert np.median(np.abs(depth[hit] - t_hit[hit])) < 1e-3
        assert np.all(depth[~hit] == 0)
        assert np.mean(instance[hit] == face_owner[face[hit]]) > 0.97
        # Colour from each object's own textured mesh (``kit.mesh()`` only carries face colours).
        colour = np.zeros((int(hit.sum()), 3))
        owner = face_owner[face[hit]]
        for label, obj in enumerate(kit.objects):
            mine = owner == label
            local_face = face[hit][mine] - face_offset[label]
            colour[mine] = surface_colours(obj.world_mesh(), local_face, barycentric[hit][mine]) * 255
        error = np.abs(colour - photos.images[index].reshape(-1, 3)[hit]).mean(1)
        assert np.median(error) < 3.0, f"median colour error {np.median(error):.1f}/255"


def test_shaded_photos_differ_from_flat():
    kit = make_scene("tabletop", seed=0, n_objects=1)
    cameras = kit.cameras("orbit", 1, width=32, height=32)
    flat = kit.render_photos(cameras, progress=False).images.astype(float)
    shaded = kit.render_photos(cameras, lighting="shaded", progress=False).images.astype(float)
    assert np.abs(flat - shaded).mean() > 2.0
    with pytest.raises(ValueError, match="lighting"):
        kit.render_photos(cameras, lighting="sunny")


def test_pybullet_bodies_rest_and_can_be_pushed():
    import pybullet

    kit = make_scene("tabletop", seed=1, n_objects=1)
    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
        bodies = kit.load_into_pybullet(client)
        assert set(bodies) == {"floor", "table", "object_0"}
        start = np.array(pybullet.getBasePositionAndOrientation(bodies["object_0"], physicsClientId=client)[0])
        np.testing.assert_allclose(start, kit.object("object_0").position, atol=1e-6)
        assert pybullet.getDynamicsInfo(bodies["object_0"], -1, physicsClientId=client)[0] == pytest.approx(kit.object("object_0").mass)
        for _ in range(120):
            pybullet.stepSimulation(physicsClientId=client)
        rest = np.array(pybullet.getBasePositionAndOrientation(bodies["object_0"], physicsClientId=client)[0])
        assert np.linalg.norm(rest - start) < 0.01, "object fell through or slid off the table"
        pybullet.resetBaseVelocity(bodies["object_0"], [1.0, 0, 0], physicsClientId=client)
        for _ in range(60):
            pybullet.stepSimulation(physicsClientId=client)
        pushed = np.array(pybullet.getBasePositionAndOrientation(bodies["object_0"], physicsClientId=client)[0])
        assert pushed[0] - rest[0] > 0.03  # sliding distance v^2 / (2 mu g) = 6 cm at mu = 0.8
    finally:
        pybullet.disconnect(client)


def test_room_layout():
    kit = make_scene("room", seed=4, n_objects=2)
    assert {"floor", "wall_0", "wall_3", "table", "crate_0", "object_1"} <= set(kit.names)
    low, high = kit.bounds()
    np.testing.assert_allclose(low, [-3.0, -2.5, 0.0], atol=1e-9)
    assert high[2] == pytest.approx(2.5)
    for obj in kit.movable_objects:
        assert obj.world_mesh().bounds[0, 2] == pytest.approx(0.0, abs=1e-3)


def test_export_writes_ground_truth_and_manifest(tmp_path, tabletop):
    import trimesh

    out = tabletop.export(tmp_path / "kit")
    manifest = json.loads((out / "kit.json").read_text())
    assert [o["name"] for o in manifest["objects"]] == tabletop.names
    assert manifest["units"] == "m" and manifest["up_axis"] == "+Z"
    ground_truth = trimesh.load(out / "ground_truth.obj", force="mesh")
    assert ground_truth.area == pytest.approx(tabletop.mesh().area, rel=1e-5)
    for entry in manifest["objects"]:
        assert (out / entry["mesh"]).is_file() and (out / entry["texture"]).is_file()
    assert not list(tmp_path.glob(".kit*")), "temporary folder left behind"


def test_textures_are_seeded_and_validated():
    for pattern in PATTERNS:
        texture = make_texture(7, pattern, 64)
        assert texture.shape == (64, 64, 3) and texture.dtype == np.uint8
        assert texture.std() > 5, f"{pattern} has no detail"
        np.testing.assert_array_equal(texture, make_texture(7, pattern, 64))
    assert not np.array_equal(make_texture(7, "wood", 64), make_texture(8, "wood", 64))
    with pytest.raises(ValueError, match="pattern"):
        make_texture(0, "plaid")


def test_invalid_kind_is_rejected():
    with pytest.raises(ValueError, match="tabletop"):
        make_scene("kitchen")

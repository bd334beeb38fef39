"""Surface-sampled Gaussians: on the mesh, covering it, flat along the face, coloured from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from lyra_sim.geometry.surface_sampling import sample_surface_gaussians, sample_texture_bilinear, stratified_face_samples


def distance_to_mesh(mesh, points: np.ndarray) -> np.ndarray:
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    return scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()


@pytest.fixture(scope="module")
def sphere():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    mesh.apply_translation([0.2, -0.1, 0.5])
    return mesh


@pytest.mark.parametrize("seed", [0, 1])
def test_every_gaussian_lies_on_the_mesh_and_every_face_is_covered(sphere, seed):
    count = 3000
    samples = sample_surface_gaussians(sphere, count, seed=seed)
    means = samples.scene.means.numpy()
    assert means.shape == (count, 3)
    assert distance_to_mesh(sphere, means).max() < 1e-4
    # Stratified sampling: every face with at least total_area / count has a Gaussian.
    threshold = sphere.area / count
    big_faces = np.flatnonzero(sphere.area_faces >= threshold)
    assert len(big_faces) == len(sphere.faces)  # icosphere faces are all about the same size
    assert np.isin(big_faces, samples.face_index).all()
    # Counts per face follow area (stratification gives floor/ceil of the expected count).
    expected = sphere.area_faces / sphere.area * count
    counts = np.bincount(samples.face_index, minlength=len(sphere.faces))
    assert np.all(np.abs(counts - expected) <= 1.0 + 1e-9)


def test_faces_above_threshold_covered_on_an_irregular_mesh():
    rng = np.random.default_rng(3)
    mesh = trimesh.Trimesh(rng.normal(size=(60, 3)), rng.integers(0, 60, (200, 3)), process=False)
    mesh.update_faces(mesh.nondegenerate_faces())
    count = 500
    samples = sample_surface_gaussians(mesh, count, seed=2)
    big_faces = np.flatnonzero(mesh.area_faces >= mesh.area / count)
    assert len(big_faces) > 50
    assert np.isin(big_faces, samples.face_index).all()
    assert distance_to_mesh(mesh, samples.scene.means.numpy()).max() < 1e-4


def test_gaussians_are_flat_discs_in_the_face_plane(sphere):
    samples = sample_surface_gaussians(sphere, 500, thickness_ratio=0.05)
    scene = samples.scene
    scales = scene.scales().numpy()
    np.testing.assert_allclose(scales[:, 0], scales[:, 1])
    np.testing.assert_allclose(scales[:, 2], 0.05 * scales[:, 0], rtol=1e-5)
    # The thin axis (third column of the rotation) is the face normal.
    normal_axis = scene.rotation_matrices()[:, :, 2].numpy()
    face_normals = sphere.face_normals[samples.face_index]
    np.testing.assert_allclose(np.abs(np.sum(normal_axis * face_normals, axis=1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(samples.normals, face_normals, atol=1e-9)
    # In-plane size follows the sample spacing.
    assert scales[0, 0] == pytest.approx(0.7 * np.sqrt(sphere.area / 500), rel=1e-5)


def test_texture_colour_with_obj_uv_convention():
    # Texture: top half of the image red, bottom half blue. In OBJ/OpenGL UVs v = 1 is the top row.
    texture = np.zeros((8, 8, 3), dtype=np.uint8)
    texture[:4] = [255, 0, 0]
    texture[4:] = [0, 0, 255]
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    uv = vertices[:, :2]  # v grows with y
    material = trimesh.visual.material.SimpleMaterial(image=Image.fromarray(texture))
    plane = trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], visual=trimesh.visual.TextureVisuals(uv=uv, material=material), process=False)
    samples = sample_surface_gaussians(plane, 2000, seed=1)
    colours = samples.scene.colors().numpy()
    y = samples.scene.means[:, 1].numpy()
    top, bottom = y > 0.6, y < 0.4  # away from the bilinear blend at the middle
    np.testing.assert_allclose(colours[top], np.tile([1.0, 0, 0], (top.sum(), 1)), atol=1e-5)
    np.testing.assert_allclose(colours[bottom], np.tile([0, 0, 1.0], (bottom.sum(), 1)), atol=1e-5)


def test_bilinear_texture_lookup_and_wrap():
    image = np.array([[[0.0], [10.0]], [[20.0], [30.0]]])  # 2x2, rows top to bottom
    # Texel centres: (u, v) = (0.25, 0.75) is the top-left texel.
    np.testing.assert_allclose(sample_texture_bilinear(image, np.array([[0.25, 0.75]])), [[0.0]])
    np.testing.assert_allclose(sample_texture_bilinear(image, np.array([[0.5, 0.5]])), [[15.0]])
    np.testing.assert_allclose(sample_texture_bilinear(image, np.array([[1.75, -0.75]])), [[30.0]])  # repeats
    np.testing.assert_allclose(sample_texture_bilinear(image, np.array([[0.0, 1.0]])), [[0.0]])  # border clamps


def test_vertex_colours_are_interpolated_and_labels_follow_faces():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=float)
    colours = np.array([[0, 0, 0, 255], [255, 255, 255, 255], [255, 255, 255, 255], [0, 0, 0, 255]], dtype=np.uint8)
    plane = trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], vertex_colors=colours, process=False)
    samples = sample_surface_gaussians(plane, 1000, face_labels=np.array([4, 9]), seed=5)
    x = samples.scene.means[:, 0].numpy()
    grey = samples.scene.colors()[:, 0].numpy()
    np.testing.assert_allclose(grey, x, atol=1e-5)  # brightness ramps with x
    assert samples.labels.dtype == np.int32
    np.testing.assert_array_equal(samples.labels, np.where(samples.face_index == 0, 4, 9))


def test_face_colours_and_plain_meshes():
    box = trimesh.creation.box(extents=[1, 2, 3])
    box.visual.face_colors = np.tile([0, 255, 0, 255], (12, 1))
    green = sample_surface_gaussians(box, 200).scene.colors().numpy()
    np.testing.assert_allclose(green, np.tile([0, 1, 0], (200, 1)), atol=1e-6)
    plain = trimesh.Trimesh(box.vertices, box.faces, process=False)
    scene = sample_surface_gaussians(plain, 100, opacity=0.5, sh_degree=2).scene
    assert scene.sh_degree == 2 and torch.allclose(scene.opacities(), torch.tensor(0.5))


def test_stratification_is_exact_for_equal_faces():
    rng = np.random.default_rng(0)
    faces = stratified_face_samples(np.ones(10), 30, rng)
    np.testing.assert_array_equal(np.bincount(faces, minlength=10), np.full(10, 3))


def test_rejects_bad_input(sphere):
    with pytest.raises(ValueError, match="count"):
        sample_surface_gaussians(sphere, 0)
    with pytest.raises(ValueError, match="face_labels"):
        sample_surface_gaussians(sphere, 10, face_labels=np.zeros(3))
    flat = trimesh.Trimesh(np.zeros((3, 3)), [[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match="surface area"):
        sample_surface_gaussians(flat, 10)


def test_rendered_silhouette_matches_the_mesh():
    """Splats of a box seen by a camera cover the pixels the mesh covers (alpha vs ray casting)."""
    from lyra_sim.render.api import render
    from lyra_sim.render.camera import Camera

    box = trimesh.creation.box(extents=[0.6, 0.4, 0.3])
    scene = sample_surface_gaussians(box, 4000).scene
    cameras = Camera.look_at([[1.2, -0.9, 0.8]], [[0.0, 0.0, 0.0]], width=32, height=32, fov_deg=50.0)
    alpha = render(scene, cameras, modes=("alpha",), backend="cpu")["alpha"][0, ..., 0].numpy()
    from conftest import cast_rays

    t_hit, _, _ = cast_rays(box, cameras, 0)
    inside = np.isfinite(t_hit).reshape(32, 32)
    assert alpha[inside].mean() > 0.95
    assert alpha[~inside].mean() < 0.1

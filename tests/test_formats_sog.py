"""PlayCanvas SOG: hand-packed v1 and v2 fixtures, every quaternion tag, shN bands 1-3, a
partial last texture row, the zip and folder forms, round-trip bounds, corrupted inputs.

The fixtures are packed Gaussian by Gaussian with plain Python from the format description
(FORMATS.md 10, PlayCanvas's SOG specification); Pillow only encodes the lossless WebP images.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import load_mutated_file
from lyra_sim import GaussianScene, SceneFormatError
from lyra_sim.scene.formats import sog
from lyra_sim.scene.formats.compressed_ply import morton_order
from lyra_sim.scene.io import detect_format, load_scene, save_scene

WIDTH, HEIGHT = 4, 2  # 8 texels for 6 Gaussians: the second row is only half used
# One Gaussian per quaternion tag (the dropped, largest component at index 0..3 of w, x, y, z),
# one with an invalid tag, and one more tag-255 quaternion.
QUATS = [(0.8, 0.2, -0.4, 0.4), (0.2, -0.8, 0.4, -0.4), (-0.4, 0.2, 0.8, 0.4), (0.4, -0.4, 0.2, 0.8), None, (0.1, 0.2, 0.3, 0.927)]
POSITIONS = [(0.0, 1.5, -2.0), (3.25, -0.5, 7.0), (-12.0, 0.25, 0.0), (0.001, -30.0, 4.0), (1.0, 1.0, 1.0), (-0.7, 2.2, -9.0)]
SCALE_BYTES = [(0, 10, 20), (255, 128, 1), (30, 31, 32), (100, 200, 250), (5, 5, 5), (77, 88, 99)]
COLOUR_BYTES = [(0, 255, 128, 0), (10, 20, 30, 255), (200, 100, 50, 128), (1, 2, 3, 4), (128, 128, 128, 200), (90, 91, 92, 93)]
COUNT = len(POSITIONS)
RNG = np.random.default_rng(7)


def png_free_webp(rgba: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), "RGBA").save(buffer, "WEBP", lossless=True, exact=True)
    return buffer.getvalue()


def texture(rows: list[tuple[int, ...]], width: int = WIDTH, height: int = HEIGHT) -> bytes:
    pixels = np.zeros((height * width, 4), dtype=np.uint8)
    pixels[:, 3] = 255
    for index, row in enumerate(rows):
        pixels[index, : len(row)] = row
    return png_free_webp(pixels.reshape(height, width, 4))


def log_transform(value: float) -> float:
    return math.copysign(math.log(abs(value) + 1.0), value)


def pack_means() -> tuple[dict, bytes, bytes, list[tuple[float, float, float]]]:
    logged = [[log_transform(v) for v in p] for p in POSITIONS]
    mins = [min(p[axis] for p in logged) for axis in range(3)]
    maxs = [max(p[axis] for p in logged) for axis in range(3)]
    low, high, decoded = [], [], []
    for p in logged:
        q = [round((p[axis] - mins[axis]) / (maxs[axis] - mins[axis]) * 65535) for axis in range(3)]
        low.append(tuple(v & 0xFF for v in q))
        high.append(tuple(v >> 8 for v in q))
        n = [mins[axis] + (maxs[axis] - mins[axis]) * q[axis] / 65535 for axis in range(3)]
        decoded.append(tuple(math.copysign(math.exp(abs(v)) - 1.0, v) for v in n))
    return {"mins": mins, "maxs": maxs, "files": ["m_lo.webp", "m_hi.webp"]}, texture(low), texture(high), decoded


def pack_quat(quat) -> tuple[int, int, int, int]:
    if quat is None:
        return (17, 200, 3, 9)  # tag 9: not 252-255
    q = np.asarray(quat, dtype=np.float64)
    q = q / np.linalg.norm(q)
    largest = int(np.argmax(np.abs(q)))
    if q[largest] < 0:
        q = -q
    stored = [round((q[i] * math.sqrt(2) * 0.5 + 0.5) * 255) for i in range(4) if i != largest]
    return (*stored, 252 + largest)


def shn_fixture(bands: int, version: int):
    """A 3-entry palette (one spare row entry unused), labels 0, 1, 2, 1, 0 and one out of range."""
    k = (0, 3, 8, 15)[bands]
    entries = RNG.integers(0, 256, size=(3, k, 3))
    centroids = np.zeros((1, 64 * k, 4), dtype=np.uint8)
    centroids[..., 3] = 255
    for entry in range(3):
        for j in range(k):
            centroids[0, entry * k + j, :3] = entries[entry, j]
    labels = [0, 1, 2, 1, 0, 300]
    label_texture = texture([(label & 0xFF, label >> 8, 0) for label in labels])
    if version == 2:
        codebook = np.linspace(-1.5, 1.5, 256)
        meta = {"count": 3, "bands": bands, "codebook": codebook.tolist(), "files": ["c.webp", "l.webp"]}
        value = lambda b: codebook[b]  # noqa: E731
    else:
        meta = {"mins": -0.75, "maxs": 1.25, "files": ["c.webp", "l.webp"]}
        value = lambda b: -0.75 + 2.0 * b / 255  # noqa: E731
    expected = np.zeros((COUNT, k, 3))
    for i, label in enumerate(labels):
        if label < 3:
            for j in range(k):
                for c in range(3):
                    expected[i, j, c] = value(entries[label, j, c])
    return meta, png_free_webp(centroids), label_texture, expected


def write_fixture(folder: Path, version: int, bands: int) -> tuple[Path, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    means_meta, low, high, decoded_means = pack_means()
    files = {"m_lo.webp": low, "m_hi.webp": high, "q.webp": texture([pack_quat(q) for q in QUATS])}
    expected: dict = {"means": np.array(decoded_means)}
    if version == 2:
        scale_codebook = np.linspace(-9.0, 1.0, 256)
        colour_codebook = np.linspace(-3.0, 3.0, 256)
        meta = {
            "version": 2,
            "count": COUNT,
            "means": means_meta,
            "scales": {"codebook": scale_codebook.tolist(), "files": ["s.webp"]},
            "quats": {"files": ["q.webp"]},
            "sh0": {"codebook": colour_codebook.tolist(), "files": ["c0.webp"]},
        }
        expected["log_scales"] = np.array([[scale_codebook[b] for b in row] for row in SCALE_BYTES])
        expected["dc"] = np.array([[colour_codebook[b] for b in row[:3]] for row in COLOUR_BYTES])
        alpha = np.clip(np.array([row[3] for row in COLOUR_BYTES]) / 255.0, 1e-6, 1 - 1e-6)
        expected["logits"] = np.log(alpha / (1 - alpha))
    else:
        scale_mins, scale_maxs = [-9.0, -8.0, -7.0], [0.0, 0.5, 1.0]
        colour_mins, colour_maxs = [-2.0, -1.0, -3.0, -6.0], [2.0, 1.5, 3.0, 8.0]
        meta = {
            "means": {"shape": [COUNT, 3], **means_meta},
            "scales": {"mins": scale_mins, "maxs": scale_maxs, "files": ["s.webp"]},
            "quats": {"encoding": "quaternion_packed", "files": ["q.webp"]},
            "sh0": {"mins": colour_mins, "maxs": colour_maxs, "files": ["c0.webp"]},
        }
        lerp = lambda lo, hi, b: lo + (hi - lo) * b / 255  # noqa: E731
        expected["log_scales"] = np.array([[lerp(scale_mins[c], scale_maxs[c], row[c]) for c in range(3)] for row in SCALE_BYTES])
        expected["dc"] = np.array([[lerp(colour_mins[c], colour_maxs[c], row[c]) for c in range(3)] for row in COLOUR_BYTES])
        expected["logits"] = np.array([lerp(colour_mins[3], colour_maxs[3], row[3]) for row in COLOUR_BYTES])
    files["s.webp"] = texture(SCALE_BYTES)
    files["c0.webp"] = texture(COLOUR_BYTES)
    if bands:
        meta["shN"], files["c.webp"], files["l.webp"], expected["rest"] = shn_fixture(bands, version)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder, expected


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as handle:
        for file in sorted(folder.iterdir()):
            handle.write(file, file.name)
    return archive


def check_fixture(scene: GaussianScene, expected: dict, bands: int) -> None:
    assert len(scene) == COUNT and scene.sh_degree == bands
    np.testing.assert_allclose(scene.means.numpy(), expected["means"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scene.means.numpy(), np.array(POSITIONS), rtol=2e-4, atol=2e-4)
    for index, quat in enumerate(QUATS):
        decoded = scene.quats[index].double().numpy()
        if quat is None:
            np.testing.assert_allclose(decoded, [1, 0, 0, 0])
        else:
            q = np.asarray(quat) / np.linalg.norm(quat)
            assert abs(decoded @ q) > 0.9999 and abs(np.linalg.norm(decoded) - 1) < 1e-6
            largest = int(np.argmax(np.abs(q)))
            assert decoded[largest] > 0  # the reconstructed (dropped) component is positive
    np.testing.assert_allclose(scene.log_scales.numpy(), expected["log_scales"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scene.sh[:, 0].numpy(), expected["dc"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scene.opacity_logits.numpy(), expected["logits"], rtol=1e-5, atol=1e-5)
    if bands:
        np.testing.assert_allclose(scene.sh[:, 1:].numpy(), expected["rest"], rtol=1e-6, atol=1e-6)
    assert any("quaternion tag" in note for note in scene.metadata.notes)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("bands", [0, 1, 2, 3])
def test_hand_packed_fixture_decodes_as_specified_in_every_form(tmp_path, version, bands):
    folder, expected = write_fixture(tmp_path / "sog", version, bands)
    archive = zip_folder(folder, tmp_path / "scene.sog")
    forms = [folder, folder / "meta.json", archive]
    scenes = [load_scene(form, invalid="keep") for form in forms]
    for form, scene in zip(forms, scenes):
        assert detect_format(form) == "sog"
        assert scene.metadata.format == "sog" and scene.metadata.extras["format_version"] == version
        check_fixture(scene, expected, bands)
    for other in scenes[1:]:  # the zip and folder forms agree exactly
        for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
            assert torch.equal(getattr(scenes[0], name), getattr(other, name))


def test_round_trip_errors_are_within_the_stated_bounds_and_both_forms_agree(tmp_path, capture_like):
    scene = capture_like(6000)
    bundled = save_scene(scene, tmp_path / "scene.sog")
    (tmp_path / "folder").mkdir()
    unbundled = save_scene(scene, tmp_path / "folder" / "meta.json")
    a, b = load_scene(bundled), load_scene(unbundled)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    reference = scene[torch.from_numpy(morton_order(scene.means.numpy().astype(np.float64)))]
    # positions: 16 bits in the log domain -> relative error of (|x| + 1) below span / 65535
    span = (torch.sign(reference.means) * torch.log1p(reference.means.abs())).max(0).values - (torch.sign(reference.means) * torch.log1p(reference.means.abs())).min(0).values
    relative = (a.means - reference.means).abs() / (reference.means.abs() + 1)
    assert (relative <= span / 65535 * 1.01 + 1e-6).all()
    angle = torch.rad2deg(2 * torch.acos((a.rotations() * reference.rotations()).sum(-1).abs().clamp(max=1)))
    assert angle.max() < 1.0 and angle.mean() < 0.5
    assert (a.log_scales - reference.log_scales).abs().mean() < 0.01
    assert (a.sh[:, 0] - reference.sh[:, 0]).abs().mean() < 0.01
    assert (a.opacities() - reference.opacities()).abs().max() <= 0.5 / 255 + 1e-6
    rest_error = (a.sh[:, 1:] - reference.sh[:, 1:]).pow(2).mean().sqrt()
    rest_signal = reference.sh[:, 1:].pow(2).mean().sqrt()
    assert rest_error < 0.6 * rest_signal  # a 64-entry palette for 6000 Gaussians; larger palettes do better
    assert a.metadata.frame == scene.metadata.frame and a.metadata.extras["container"] == "zip"


def test_palette_size_trades_shn_error_and_empty_scenes_round_trip(tmp_path, capture_like):
    scene = capture_like(4000, seed=3)
    errors = []
    for palette in (16, 1024):
        back = load_scene(save_scene(scene, tmp_path / f"p{palette}.sog", palette_size=palette))
        reference = scene[torch.from_numpy(morton_order(scene.means.numpy().astype(np.float64)))]
        errors.append((back.sh[:, 1:] - reference.sh[:, 1:]).pow(2).mean().sqrt().item())
    assert errors[1] < errors[0]
    empty = load_scene(save_scene(GaussianScene.empty(), tmp_path / "empty.sog"), invalid="keep")
    assert len(empty) == 0


def test_writer_produces_the_reference_layout(tmp_path, capture_like):
    path = save_scene(capture_like(1000), tmp_path / "a.sog")
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("meta.json"))
        assert meta["version"] == 2 and meta["count"] == 1000
        for group in ("means", "scales", "quats", "sh0", "shN"):
            for name in meta[group]["files"]:
                data = archive.read(name)
                assert not sog.webp_is_lossy(data) and data[12:16] in (b"VP8L", b"VP8X")
        assert len(meta["scales"]["codebook"]) == 256 and meta["shN"]["bands"] == 3
        width, height = Image.open(io.BytesIO(archive.read("means_l.webp"))).size
        assert (width, height) == sog.texture_size(1000) and width % 4 == 0 and height % 4 == 0
        assert Image.open(io.BytesIO(archive.read(meta["shN"]["files"][0]))).size[0] == 64 * 15


# ---------------------------------------------------------------------------------------- corrupted input
def mutate_meta(folder: Path, change) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    change(meta)
    (folder / "meta.json").write_text(json.dumps(meta))


CORRUPTIONS = {
    "unsupported version": (lambda f: mutate_meta(f, lambda m: m.update(version=3)), "unsupported SOG version"),
    "missing image": (lambda f: (f / "s.webp").unlink(), "missing"),
    "path outside": (lambda f: mutate_meta(f, lambda m: m["scales"].update(files=["../s.webp"])), "plain file name"),
    "count beyond the images": (lambda f: mutate_meta(f, lambda m: m.update(count=9)), "fewer than"),
    "short codebook": (lambda f: mutate_meta(f, lambda m: m["scales"].update(codebook=[0.0] * 8)), "codebook"),
    "nan in ranges": (lambda f: mutate_meta(f, lambda m: m["means"].update(mins=[0, "x", 0])), "finite numbers"),
    "truncated image": (lambda f: (f / "q.webp").write_bytes((f / "q.webp").read_bytes()[:30]), "cannot decode image"),
    "not an image": (lambda f: (f / "c0.webp").write_bytes(b"hello"), "cannot decode image"),
    "wrong centroid width": (lambda f: (f / "c.webp").write_bytes(texture([(1, 2, 3)], 10, 1)), "wide"),
    "bad bands": (lambda f: mutate_meta(f, lambda m: m["shN"].update(bands=4)), "bands"),
    "huge count": (lambda f: mutate_meta(f, lambda m: m.update(count=10**12)), "more than"),
    "meta not json": (lambda f: (f / "meta.json").write_text("{nope"), "not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_folders_raise_scene_format_error(tmp_path, name):
    corrupt, message = CORRUPTIONS[name]
    folder, _ = write_fixture(tmp_path / "sog", 2, 1)
    corrupt(folder)
    with pytest.raises(SceneFormatError, match=message) as raised:
        load_scene(folder / "meta.json")
    assert str(folder) in str(raised.value)


def test_decompression_bomb_image_is_refused_before_decoding(tmp_path):
    folder, _ = write_fixture(tmp_path / "sog", 2, 0)
    bomb = np.zeros((6000, 6000, 4), dtype=np.uint8)  # 144 MB decoded, a few kB encoded
    (folder / "s.webp").write_bytes(png_free_webp(bomb))
    with pytest.raises(SceneFormatError, match="declares 6000x6000"):
        load_scene(folder)


def test_zip_entries_are_bounded_and_traversal_names_refused(tmp_path):
    folder, _ = write_fixture(tmp_path / "sog", 2, 0)
    archive = zip_folder(folder, tmp_path / "a.sog")
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr("../evil.webp", b"x")
    mutate_meta(folder, lambda m: m["quats"].update(files=["../evil.webp"]))
    with zipfile.ZipFile(tmp_path / "b.sog", "w") as handle:
        for file in folder.iterdir():
            handle.write(file, file.name)
        handle.writestr("../evil.webp", b"x")
    with pytest.raises(SceneFormatError, match="plain file name"):
        load_scene(tmp_path / "b.sog")
    with zipfile.ZipFile(tmp_path / "c.sog", "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("meta.json", b"{" + b" " * (sog.MAX_META_BYTES + 10) + b"}")
    with pytest.raises(SceneFormatError, match="allowed"):
        load_scene(tmp_path / "c.sog")


def test_lossy_webp_is_read_with_a_note(tmp_path):
    folder, _ = write_fixture(tmp_path / "sog", 2, 0)
    image = Image.open(folder / "s.webp").convert("RGBA")
    image.save(folder / "s.webp", "WEBP", lossless=False, quality=100)
    scene = load_scene(folder, invalid="keep")
    assert any("lossy" in note for note in scene.metadata.notes)


FUZZ_SETTINGS = settings(max_examples=int(os.environ.get("LYRA_FUZZ_EXAMPLES", "40")), deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _seed_archive() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        folder, _ = write_fixture(Path(folder) / "sog", 2, 2)
        return zip_folder(folder, folder.parent / "a.sog").read_bytes()


SEED_ARCHIVE = _seed_archive()


@FUZZ_SETTINGS
@given(st.data())
def test_fuzzed_sog_archives_raise_only_scene_format_error(data):
    load_mutated_file(SEED_ARCHIVE, data, ".sog")


def test_codebook_keeps_levels_for_rare_tail_values():
    """Trained scenes hold a few tiny Gaussians far below the median log-scale: they must not be
    snapped to the bulk (a 20x larger Gaussian is a visible artefact)."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-4.4, 0.8, 200_000), rng.uniform(-16, -9, 200)])
    codebook, labels = sog.quantize_1d(values)
    error = np.abs(codebook[labels].astype(np.float64) - values)
    assert error.max() < 0.2 and np.sqrt((error**2).mean()) < 0.02
    assert labels.dtype == np.uint8 and codebook.shape == (256,) and np.all(np.diff(codebook) >= 0)

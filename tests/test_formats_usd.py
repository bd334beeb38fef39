"""OpenUSD ParticleField3DGaussianSplat: hand-written .usda stages (float and half attributes,
upAxis, metersPerUnit, parent transforms), round trips in .usd/.usda/.usdc, the shared prim
helpers, corrupted stages."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

pytest.importorskip("pxr", reason="USD splats need the [usd] extra (usd-core)")

from lyra_sim import SceneFormatError  # noqa: E402
from lyra_sim.scene.formats import usd  # noqa: E402
from lyra_sim.scene.io import detect_format, load_scene, save_scene  # noqa: E402

HAND_WRITTEN = """#usda 1.0
(
    upAxis = "{up}"
    metersPerUnit = {mpu}
)

def Xform "World"
{{
    double3 xformOp:translate = (1, 2, 3)
    uniform token[] xformOpOrder = ["xformOp:translate"]

    def ParticleField3DGaussianSplat "Splats"
    {{
        point3{p}[] positions{h} = [(0, 0, 0), (10, -20, 30)]
        quat{p}[] orientations{h} = [(1, 0, 0, 0), (0.5, 0.5, -0.5, 0.5)]
        {v}3[] scales{h} = [(0.5, 0.25, 1), (2, 2, 4)]
        {v}[] opacities{h} = [0.25, 0.75]
        uniform int radiance:sphericalHarmonicsDegree = 1
        {v}3[] radiance:sphericalHarmonicsCoefficients{h} = [(0.1, 0.2, 0.3), (0.01, 0.02, 0.03), (0.04, 0.05, 0.06), (0.07, 0.08, 0.09), (1, 0, -1), (0, 0, 0), (0.5, 0.5, 0.5), (-0.5, -0.5, -0.5)]
    }}
}}
"""


@pytest.mark.parametrize("half", [False, True])
def test_hand_written_stage(tmp_path, half):
    text = HAND_WRITTEN.format(up="Z", mpu=0.01, p="h" if half else "f", h="h" if half else "", v="half" if half else "float")
    path = tmp_path / "hand.usda"
    path.write_text(text)
    assert detect_format(path) == "usd"
    scene = load_scene(path)
    tolerance = 2e-3 if half else 1e-6
    assert len(scene) == 2 and scene.sh_degree == 1 and scene.metadata.frame == "z-up"
    # parent translate (1, 2, 3), then metersPerUnit 0.01 to metres
    np.testing.assert_allclose(scene.means.numpy(), np.array([(1, 2, 3), (11, -18, 33)]) * 0.01, rtol=tolerance, atol=1e-6)
    np.testing.assert_allclose(scene.scales().numpy(), np.array([(0.5, 0.25, 1), (2, 2, 4)]) * 0.01, rtol=tolerance)
    np.testing.assert_allclose(scene.opacities().numpy(), [0.25, 0.75], rtol=tolerance)
    # USD quaternions are written (real, i, j, k) in usda, as our (w, x, y, z)
    np.testing.assert_allclose(scene.rotations().numpy(), [(1, 0, 0, 0), (0.5, 0.5, -0.5, 0.5)], atol=tolerance)
    np.testing.assert_allclose(scene.sh[0].numpy(), [(0.1, 0.2, 0.3), (0.01, 0.02, 0.03), (0.04, 0.05, 0.06), (0.07, 0.08, 0.09)], atol=tolerance)
    np.testing.assert_allclose(scene.sh[1, 0].numpy(), (1, 0, -1), atol=tolerance)
    assert scene.metadata.extras["meters_per_unit"] == pytest.approx(0.01) and scene.metadata.extras["up_axis"] == "Z"


def test_y_up_stage_reads_as_opengl_and_short_arrays_follow_the_schema(tmp_path):
    text = HAND_WRITTEN.format(up="Y", mpu=1, p="f", h="", v="float").replace("[0.25, 0.75]", "[0.25]")
    (tmp_path / "y.usda").write_text(text)
    scene = load_scene(tmp_path / "y.usda")
    assert scene.metadata.frame == "opengl"
    np.testing.assert_allclose(scene.opacities().numpy(), [1 - 1e-6, 1 - 1e-6], rtol=1e-6)  # too short: ignored
    assert any("opacities has 1 entries" in note for note in scene.metadata.notes)


@pytest.mark.parametrize("name", ["a.usd", "a.usda", "a.usdc"])
@pytest.mark.parametrize("frame", ["z-up", "unknown", "opengl"])
def test_round_trip(tmp_path, name, frame, capture_like):
    scene = capture_like(300, frame=frame)
    path = save_scene(scene, tmp_path / name)
    assert path.read_bytes()[:8] == (b"#usda 1." if name.endswith(".usda") else b"PXR-USDC")
    back = load_scene(path)
    assert back.metadata.frame == frame and back.metadata.metric == scene.metadata.metric
    assert torch.allclose(back.means, scene.means, atol=1e-5) and torch.allclose(back.log_scales, scene.log_scales, atol=1e-5)
    assert torch.allclose(back.opacity_logits, scene.opacity_logits, atol=1e-4) and torch.allclose(back.sh, scene.sh, atol=1e-5)
    assert ((back.rotations() * scene.rotations()).sum(-1).abs() > 1 - 1e-6).all()


def test_half_precision_round_trip_is_within_half_bounds(tmp_path, capture_like):
    scene = capture_like(300, frame="z-up")
    back = load_scene(save_scene(scene, tmp_path / "h.usdc", precision="half"))
    relative = ((back.means - scene.means).abs() / scene.means.abs().clamp_min(1)).max()
    assert relative < 1e-3  # 11-bit mantissa
    assert (back.log_scales - scene.log_scales).abs().max() < 1e-3
    assert (back.opacities() - scene.opacities()).abs().max() < 1e-3
    assert (back.sh - scene.sh).abs().max() < 2e-3


def test_define_splat_prim_into_an_existing_stage(tmp_path, capture_like):
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.Xform.Define(stage, "/Bundle")
    scene = capture_like(40, frame="z-up")
    prim = usd.define_splat_prim(stage, "/Bundle/Background", scene).GetPrim()
    assert prim.GetTypeName() == "ParticleField3DGaussianSplat"
    back = usd.read_splat_prim(prim)
    assert torch.allclose(back.means, scene.means) and back.sh_degree == 3
    stage.GetRootLayer().Export(str(tmp_path / "b.usda"))
    assert len(load_scene(tmp_path / "b.usda")) == 40


@pytest.mark.parametrize(
    "text, message",
    [
        ("#usda 1.0\ndef Xform 'x' {{{", "cannot open"),
        ("#usda 1.0\ndef Xform \"x\" {}\n", "no ParticleField3DGaussianSplat"),
        ('#usda 1.0\ndef ParticleField3DGaussianSplat "s" {\n float[] opacities = [1]\n}\n', "no positions"),
        ('#usda 1.0\ndef ParticleField3DGaussianSplat "s" {\n point3f[] positions = [(0,0,0)]\n uniform int radiance:sphericalHarmonicsDegree = 7\n}\n', "outside 0-3"),
        ('#usda 1.0\ndef Xform "m" {\n matrix4d xformOp:transform = ((-1,0,0,0),(0,1,0,0),(0,0,1,0),(0,0,0,1))\n uniform token[] xformOpOrder = ["xformOp:transform"]\n def ParticleField3DGaussianSplat "s" {\n point3f[] positions = [(0,0,0)]\n }\n}\n', "mirrors"),
    ],
)
def test_corrupted_stages_raise_scene_format_error(tmp_path, text, message):
    path = tmp_path / "bad.usda"
    path.write_text(text)
    with pytest.raises(SceneFormatError, match=message) as raised:
        load_scene(path)
    assert str(path) in str(raised.value)


def test_binary_garbage_with_usd_magic(tmp_path):
    path = tmp_path / "bad.usdc"
    path.write_bytes(b"PXR-USDC" + bytes(range(256)) * 4)
    with pytest.raises(SceneFormatError):
        load_scene(path)


def test_rotated_parent_transform_rotates_the_gaussians(tmp_path):
    text = HAND_WRITTEN.format(up="Z", mpu=1, p="f", h="", v="float").replace(
        'double3 xformOp:translate = (1, 2, 3)\n    uniform token[] xformOpOrder = ["xformOp:translate"]',
        'float xformOp:rotateZ = 90\n    uniform token[] xformOpOrder = ["xformOp:rotateZ"]',
    )
    (tmp_path / "r.usda").write_text(text)
    scene = load_scene(tmp_path / "r.usda")
    np.testing.assert_allclose(scene.means[1].numpy(), (20, 10, 30), atol=1e-4)
    expected = torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)])
    assert abs(float(scene.rotations()[0] @ expected)) > 1 - 1e-6


def test_usdz_package_is_read(tmp_path, capture_like):
    from pxr import UsdUtils

    layer = save_scene(capture_like(25, frame="z-up"), tmp_path / "a.usdc")
    assert UsdUtils.CreateNewUsdzPackage(str(layer), str(tmp_path / "a.usdz"))
    assert detect_format(tmp_path / "a.usdz") == "usd"
    assert len(load_scene(tmp_path / "a.usdz")) == 25


def test_corrupted_crate_files_raise_only_scene_format_error(tmp_path, capture_like):
    """Byte flips and truncations of a .usdc: USD's own errors surface as SceneFormatError."""
    data = save_scene(capture_like(20, frame="z-up"), tmp_path / "seed.usdc").read_bytes()
    rng = np.random.default_rng(0)
    for index in range(int(os.environ.get("LYRA_FUZZ_EXAMPLES", "40"))):
        blob = bytearray(data)
        for position in rng.integers(0, len(blob), size=rng.integers(1, 9)):
            blob[position] = rng.integers(0, 256)
        if rng.random() < 0.3:
            blob = blob[: rng.integers(0, len(blob))]
        path = tmp_path / f"f{index}.usdc"
        path.write_bytes(bytes(blob))
        try:
            load_scene(path, invalid="keep")
        except SceneFormatError as error:
            assert str(path) in str(error)

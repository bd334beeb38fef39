"""The shared USD splat prim (``lyra_sim.scene.formats.usd``): schema conventions and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pxr = pytest.importorskip("pxr", reason="needs usd-core (pip install 'lyra-sim[usd]')")

from pxr import Usd, UsdGeom, UsdVol  # noqa: E402

from lyra_sim.scene.formats.usd import define_splat_prim, read_splat_prim  # noqa: E402
from lyra_sim.scene.gaussian_scene import GaussianScene  # noqa: E402
from conftest import random_scene  # noqa: E402


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_values_follow_the_schema(degree):
    scene = random_scene(50, sh_degree=degree)
    stage = Usd.Stage.CreateInMemory()
    define_splat_prim(stage, "/World/splats", scene)
    splat = UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath("/World/splats"))
    assert splat.GetPrim().GetTypeName() == "ParticleField3DGaussianSplat"
    np.testing.assert_allclose(np.asarray(splat.GetPositionsAttr().Get()), scene.means.numpy(), rtol=1e-6)
    # Linear scales and activated opacities, not the PLY's log / logit values.
    np.testing.assert_allclose(np.asarray(splat.GetScalesAttr().Get()), scene.scales().numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(splat.GetOpacitiesAttr().Get()), scene.opacities().numpy(), rtol=1e-5)
    first = splat.GetOrientationsAttr().Get()[0]
    q = torch.nn.functional.normalize(scene.quats[0], dim=0).tolist()
    assert math.isclose(first.GetReal(), q[0], rel_tol=1e-5) and np.allclose(list(first.GetImaginary()), q[1:], rtol=1e-5)
    assert splat.GetRadianceSphericalHarmonicsDegreeAttr().Get() == degree
    coefficients = np.asarray(splat.GetRadianceSphericalHarmonicsCoefficientsAttr().Get())
    assert coefficients.shape == (50 * (degree + 1) ** 2, 3)
    np.testing.assert_allclose(coefficients[: (degree + 1) ** 2], scene.sh[0].numpy(), rtol=1e-6)  # particle 0 first, DC first
    assert UsdGeom.Primvar(splat.GetRadianceSphericalHarmonicsCoefficientsAttr()).GetElementSize() == (degree + 1) ** 2
    low, high = np.asarray(splat.GetExtentAttr().Get())
    np.testing.assert_allclose(low, scene.means.min(0).values.numpy(), rtol=1e-6)
    np.testing.assert_allclose(high, scene.means.max(0).values.numpy(), rtol=1e-6)


@pytest.mark.parametrize("suffix", [".usda", ".usdc"])
def test_round_trip_through_a_file(tmp_path, suffix):
    scene = random_scene(200, seed=3, sh_degree=2)
    path = tmp_path / f"splats{suffix}"
    stage = Usd.Stage.CreateNew(str(path))
    define_splat_prim(stage, "/splats", scene)
    stage.GetRootLayer().Save()
    reopened = Usd.Stage.Open(str(path))  # a prim lives only as long as its stage
    back = read_splat_prim(reopened.GetPrimAtPath("/splats"))
    assert len(back) == 200 and back.sh_degree == 2
    np.testing.assert_allclose(back.means.numpy(), scene.means.numpy(), atol=1e-6)
    np.testing.assert_allclose(back.log_scales.numpy(), scene.log_scales.numpy(), atol=1e-5)
    np.testing.assert_allclose(back.opacity_logits.numpy(), scene.opacity_logits.numpy(), atol=1e-3)
    np.testing.assert_allclose(back.sh.numpy(), scene.sh.numpy(), atol=1e-6)
    np.testing.assert_allclose(back.rotations().numpy(), scene.rotations().numpy(), atol=1e-6)


def test_half_precision_and_empty_scene():
    scene = random_scene(10, sh_degree=1)
    stage = Usd.Stage.CreateInMemory()
    define_splat_prim(stage, "/half", scene, precision="half")
    splat = UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath("/half"))
    assert not splat.GetPositionsAttr().HasAuthoredValue() and len(splat.GetPositionshAttr().Get()) == 10
    back = read_splat_prim(splat.GetPrim())
    np.testing.assert_allclose(back.means.numpy(), scene.means.numpy(), atol=1e-2)
    define_splat_prim(stage, "/empty", GaussianScene.empty())
    assert len(read_splat_prim(stage.GetPrimAtPath("/empty"))) == 0
    with pytest.raises(ValueError, match="precision"):
        define_splat_prim(stage, "/bad", scene, precision="double")

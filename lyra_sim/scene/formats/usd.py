"""Gaussians as an OpenUSD ``UsdVol.ParticleField3DGaussianSplat`` prim (OpenUSD 26.03+, ``usd-core``).

:func:`define_splat_prim` writes a ``GaussianScene`` into one prim of an open stage and
:func:`read_splat_prim` reads one back. They are the only place that knows the schema's
conventions (checked against usd-core 26.11's ``usdVol/schema.usda``):

- ``positions`` point3f[], ``orientations`` quatf[] (real part first, unit length),
- ``scales`` float3[] are **linear** standard deviations (our log-scales, exponentiated),
- ``opacities`` float[] are **linear** in [0, 1] (our logits after the sigmoid),
- ``radiance:sphericalHarmonicsDegree`` (uniform int) and
  ``radiance:sphericalHarmonicsCoefficients`` float3[] of N * (degree + 1)^2 entries grouped
  by particle, RGB per coefficient, in the INRIA basis order with the raw DC coefficient first
  (a zero coefficient is grey 0.5, as in 3DGS).

Values are written in the prim's local frame exactly as the scene's means are: the caller owns
the stage (``upAxis``, ``metersPerUnit``, parent transforms, saving). ``pxr`` is imported only
when these functions run; without it they raise ``MissingDependencyError`` naming the extra.
"""

from __future__ import annotations

import numpy as np
import torch

from lyra_sim.errors import MissingDependencyError, SceneFormatError
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.sh import SH_C0, num_sh_bases

SPLAT_PRIM_TYPE = "ParticleField3DGaussianSplat"


def import_pxr():
    """The ``pxr`` modules lyra-sim uses, or ``MissingDependencyError`` naming the extra to install."""
    try:
        from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdVol, Vt
    except ImportError as error:
        raise MissingDependencyError(f"OpenUSD support needs the usd-core package ({error}); `pip install 'lyra-sim[usd]'`") from None
    if not hasattr(UsdVol, "ParticleField3DGaussianSplat"):
        raise MissingDependencyError("this usd-core has no UsdVol.ParticleField3DGaussianSplat (needs OpenUSD 26.03 or newer); `pip install -U usd-core`")
    return Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdVol, Vt


def define_splat_prim(stage, prim_path: str, scene: GaussianScene, *, precision: str = "float"):
    """Define a ``ParticleField3DGaussianSplat`` at ``prim_path`` on ``stage`` holding ``scene``.

    Args:
        stage: an open ``Usd.Stage``.
        prim_path: absolute prim path (missing parents are created as untyped prims).
        scene: the Gaussians, in the prim's local frame. An empty scene gives a valid empty prim.
        precision: "float" (the default, what readers prefer) or "half" (the ``...h``
            attributes: half the size, ~3 significant digits).

    Returns:
        The ``UsdVol.ParticleField3DGaussianSplat`` schema object.
    """
    _, Sdf, _, UsdGeom, _, UsdVol, Vt = import_pxr()
    if precision not in ("float", "half"):
        raise ValueError(f"precision must be 'float' or 'half', got {precision!r}")
    half = precision == "half"
    dtype = np.float16 if half else np.float32
    splat = UsdVol.ParticleField3DGaussianSplat.Define(stage, prim_path)
    with torch.no_grad():
        means = scene.means.detach().cpu().numpy().astype(np.float32)
        quats = torch.nn.functional.normalize(scene.quats.detach().cpu(), dim=-1).numpy()  # [N, 4] w, x, y, z
        scales = torch.exp(scene.log_scales.detach().cpu()).numpy()
        opacities = torch.sigmoid(scene.opacity_logits.detach().cpu()).numpy()
        sh = scene.sh.detach().cpu().numpy()  # [N, K, 3]
    count, bases = sh.shape[0], sh.shape[1]

    def values(array_type, array):
        return array_type.FromNumpy(np.ascontiguousarray(array, dtype=dtype))

    # Gf.Quatf / Gf.Quath store (imaginary x, y, z, real) in memory, the layout FromNumpy takes.
    orientations = quats[:, [1, 2, 3, 0]]
    coefficients = sh.reshape(count * bases, 3)
    if half:
        splat.CreatePositionshAttr(values(Vt.Vec3hArray, means))
        splat.CreateOrientationshAttr(values(Vt.QuathArray, orientations))
        splat.CreateScaleshAttr(values(Vt.Vec3hArray, scales))
        splat.CreateOpacitieshAttr(values(Vt.HalfArray, opacities))
        sh_attribute = splat.CreateRadianceSphericalHarmonicsCoefficientshAttr(values(Vt.Vec3hArray, coefficients))
    else:
        splat.CreatePositionsAttr(values(Vt.Vec3fArray, means))
        splat.CreateOrientationsAttr(values(Vt.QuatfArray, orientations))
        splat.CreateScalesAttr(values(Vt.Vec3fArray, scales))
        splat.CreateOpacitiesAttr(values(Vt.FloatArray, opacities))
        sh_attribute = splat.CreateRadianceSphericalHarmonicsCoefficientsAttr(values(Vt.Vec3fArray, coefficients))
    splat.CreateRadianceSphericalHarmonicsDegreeAttr(int(scene.sh_degree))
    primvar = UsdGeom.Primvar(sh_attribute)
    primvar.SetElementSize(bases)
    primvar.SetInterpolation(UsdGeom.Tokens.vertex)
    extent = np.stack([means.min(0), means.max(0)]) if count else np.zeros((2, 3))
    splat.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(extent.astype(np.float32)))
    if count:
        colours = np.clip(0.5 + SH_C0 * sh[:, 0, :], 0.0, 1.0).astype(np.float32)
        UsdGeom.PrimvarsAPI(splat.GetPrim()).CreatePrimvar("displayColor", Sdf.ValueTypeNames.Color3fArray, UsdGeom.Tokens.vertex).Set(Vt.Vec3fArray.FromNumpy(colours))
    return splat


def _array(attribute, dtype, width: int | None, where: str) -> np.ndarray | None:
    value = attribute.Get() if attribute and attribute.HasAuthoredValue() else None
    if value is None:
        return None
    array = np.array(value, dtype=dtype)  # a copy: Vt arrays are read-only buffers
    if width is not None and array.size and (array.ndim != 2 or array.shape[1] != width):
        raise SceneFormatError(f"{where}: {attribute.GetName()} has shape {list(array.shape)}, expected [N, {width}]")
    return array.reshape(-1, width) if width is not None else array.reshape(-1)


def read_splat_prim(prim) -> GaussianScene:
    """The Gaussians of a ``ParticleField3DGaussianSplat`` prim, in its local frame (raw parameters).

    Missing orientations, scales or opacities take the schema's fallbacks (identity, unit scale,
    opaque); missing SH gives grey degree 0. Float attributes are preferred to their half
    variants. Raises ``SceneFormatError`` naming the prim for inconsistent array lengths.
    """
    _, _, _, _, _, UsdVol, _ = import_pxr()
    where = f"{prim.GetStage().GetRootLayer().identifier}:{prim.GetPath()}"
    splat = UsdVol.ParticleField3DGaussianSplat(prim)
    if not splat:
        raise SceneFormatError(f"{where}: not a {SPLAT_PRIM_TYPE} prim (type {prim.GetTypeName()!r})")

    def pick(full, half, width):
        found = _array(full, np.float32, width, where)
        return found if found is not None else _array(half, np.float32, width, where)

    means = pick(splat.GetPositionsAttr(), splat.GetPositionshAttr(), 3)
    if means is None:
        means = np.zeros((0, 3), np.float32)
    count = len(means)

    def per_particle(array, fallback):
        # The schema ignores a too-short array and truncates a too-long one.
        if array is None or len(array) < count:
            return fallback
        return array[:count]

    orientations = pick(splat.GetOrientationsAttr(), splat.GetOrientationshAttr(), 4)  # (x, y, z, real) in memory
    quats = per_particle(None if orientations is None else orientations[:, [3, 0, 1, 2]], np.tile(np.array([1, 0, 0, 0], np.float32), (count, 1)))
    scales = per_particle(pick(splat.GetScalesAttr(), splat.GetScaleshAttr(), 3), np.ones((count, 3), np.float32))
    opacities = per_particle(pick(splat.GetOpacitiesAttr(), splat.GetOpacitieshAttr(), None), np.ones(count, np.float32))
    degree_attribute = splat.GetRadianceSphericalHarmonicsDegreeAttr()
    degree = int(degree_attribute.Get()) if degree_attribute and degree_attribute.Get() is not None else 0
    if not 0 <= degree <= 4:
        raise SceneFormatError(f"{where}: radiance:sphericalHarmonicsDegree {degree} is not in 0..4")
    bases = num_sh_bases(degree)
    coefficients = pick(splat.GetRadianceSphericalHarmonicsCoefficientsAttr(), splat.GetRadianceSphericalHarmonicsCoefficientshAttr(), 3)
    if coefficients is None or len(coefficients) < count * bases:
        sh = np.zeros((count, 1, 3), np.float32)
    else:
        sh = coefficients[: count * bases].reshape(count, bases, 3)
    if np.any(scales <= 0):
        raise SceneFormatError(f"{where}: scales must be > 0 (linear standard deviations); {int(np.sum(scales <= 0))} entries are not")
    eps = 1e-7
    opacities = np.clip(opacities.astype(np.float64), eps, 1 - eps)
    return GaussianScene(
        torch.from_numpy(np.ascontiguousarray(means)),
        torch.from_numpy(np.ascontiguousarray(quats)),
        torch.from_numpy(np.log(scales)),
        torch.from_numpy(np.log(opacities / (1 - opacities)).astype(np.float32)),
        torch.from_numpy(np.ascontiguousarray(sh)),
        metadata=SceneMetadata(source=where, format="usd"),
    )

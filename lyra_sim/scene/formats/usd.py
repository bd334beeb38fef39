"""OpenUSD ``UsdVol.ParticleField3DGaussianSplat`` (OpenUSD 26.03+): reader and writer of .usd/.usda/.usdc.

Needs ``usd-core`` (the ``[usd]`` extra); it is imported only when a USD file is read or written.
Schema facts (UsdVol docs and generatedSchema.usda of usd-core 26.11, Pixar's PLY converter):

- ``positions`` point3f[] (or ``positionsh`` half), local space;
- ``orientations`` quatf[] (``orientationsh``): unit quaternions, GfQuat stores (x, y, z, w);
- ``scales`` float3[] (``scalesh``): **linear** scale factors, not log (exp of the PLY value);
- ``opacities`` float[] (``opacitiesh``): linear [0, 1], i.e. sigmoid of the PLY logit;
- ``radiance:sphericalHarmonicsDegree`` uniform int (fallback 3) and
  ``radiance:sphericalHarmonicsCoefficients`` float3[] (``...h``): per particle (degree+1)^2
  contiguous RGB coefficients, DC first, INRIA order (the DC raw: colour = 0.5 + C0 * dc).
  Arrays longer than ``positions`` are truncated, shorter ones ignored (the schema's rule).
- Float attributes are preferred over half ones when both exist.

Frames: the stage's upAxis (Y or Z) and metersPerUnit are read; a Z-up stage reads as "z-up",
a Y-up one as "opengl"; an authored metersPerUnit scales the data to metres; each prim's
local-to-world transform is applied. The writer authors upAxis Z for z-up scenes (no
rotation) and otherwise Y, turning PLY-style frames 180 degrees about X (as for glTF), always
metersPerUnit 1, and records the source frame in the layer's customLayerData so this reader
restores it. Half precision (``precision="half"``) stores ~3 significant digits (positions
lose precision beyond a few hundred units: use it for small objects only).

``define_splat_prim`` / ``read_splat_prim`` work on a stage you hold: the one implementation of the
schema, shared by the scene-file format here and the bundle USD export (``converters/usd_stage.py``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lyra_sim.errors import MissingDependencyError
from lyra_sim.rotations import wxyz_to_xyzw, xyzw_to_wxyz
from lyra_sim.scene.formats._common import (
    alpha_to_logit,
    format_error,
    logit_to_alpha,
    normalized_quaternions,
    scene_from_arrays,
    scene_to_arrays,
    zip_names,
)
from lyra_sim.scene.formats._placement import apply_affine, rotate_frame, to_y_up_rotation
from lyra_sim.scene.formats.spec import SceneFormatSpec
from lyra_sim.scene.gaussian_scene import GaussianScene, SceneMetadata
from lyra_sim.scene.sh import SH_C0

PRIM_TYPE = SPLAT_PRIM_TYPE = "ParticleField3DGaussianSplat"
USDC_MAGIC = b"PXR-USDC"
USDA_MAGIC = b"#usda"
USD_EXTENSIONS = (".usd", ".usda", ".usdc", ".usdz")
LAYER_RECORD = "lyra_sim"
Precision = str  # "float" or "half"


def import_pxr():
    """The ``pxr`` modules lyra-sim uses (Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdVol, Vt), or
    ``MissingDependencyError`` naming the extra to install."""
    try:
        from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdVol, Vt
    except ImportError as error:
        raise MissingDependencyError(f"OpenUSD support needs the usd-core package ({error}); `pip install 'lyra-sim[usd]'`") from None
    if not hasattr(UsdVol, PRIM_TYPE):
        raise MissingDependencyError("this usd-core has no UsdVol.ParticleField3DGaussianSplat (needs OpenUSD 26.03 or newer); `pip install -U usd-core`")
    return Gf, Sdf, Usd, UsdGeom, UsdPhysics, UsdVol, Vt


def is_usd(head: bytes) -> bool:
    return head.startswith(USDC_MAGIC) or head.startswith(USDA_MAGIC)


def is_usdz(path: Path, head: bytes) -> bool:
    """A USDZ package: a zip whose first entry is a USD layer (read-only support)."""
    names = zip_names(path, head)
    return bool(names) and names[0].lower().endswith((".usd", ".usda", ".usdc"))


# ---------------------------------------------------------------------------------------- prims
def define_splat_prim(stage, prim_path: str, scene: GaussianScene, *, precision: Precision = "float"):
    """Author ``scene`` as a ParticleField3DGaussianSplat at ``prim_path`` of an open ``stage``.

    The values are written in the prim's local frame exactly as the scene's means are: the
    caller owns the stage (upAxis, metersPerUnit, parent transforms, saving); missing parents
    become untyped prims. An empty scene gives a valid empty prim. ``precision`` "half" writes
    the ``...h`` attributes (half the size, ~3 significant digits) instead of the float ones.
    Also authors ``primvars:displayColor`` (the base colour) for viewers without splat support.

    Returns:
        The ``UsdVol.ParticleField3DGaussianSplat`` schema object (``.GetPrim()`` for the prim).
    """
    if precision not in ("float", "half"):
        raise ValueError(f"precision={precision!r} is not valid; choose 'float' or 'half'")
    _, Sdf, _, UsdGeom, _, UsdVol, Vt = import_pxr()
    splats = UsdVol.ParticleField3DGaussianSplat.Define(stage, prim_path)
    arrays = scene_to_arrays(scene)
    n = len(scene)
    quats = normalized_quaternions(arrays["quats"])
    xyzw = np.ascontiguousarray(wxyz_to_xyzw(quats))
    scales = np.exp(arrays["log_scales"].astype(np.float64))
    opacities = logit_to_alpha(arrays["opacity_logits"])
    coefficients = arrays["sh"].reshape(n * arrays["sh"].shape[1], 3)
    # The float attributes and their half twins ("positionsh", ...) differ only in name and type.
    if precision == "float":
        suffix, dtype, vec3, quat, scalar = "", np.float32, Vt.Vec3fArray, Vt.QuatfArray, Vt.FloatArray
    else:
        suffix, dtype, vec3, quat, scalar = "h", np.float16, Vt.Vec3hArray, Vt.QuathArray, Vt.HalfArray
    limit = float(np.finfo(dtype).max)
    values = {"Positions": (arrays["means"], vec3), "Orientations": (xyzw, quat), "Scales": (scales, vec3), "Opacities": (opacities, scalar)}
    values["RadianceSphericalHarmonicsCoefficients"] = (coefficients, vec3)
    for name, (array, array_type) in values.items():
        # float32 -> half through torch (numpy's conversion loop is ~30x slower)
        converted = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).clamp(-limit, limit).to(torch.float16 if dtype == np.float16 else torch.float32)
        getattr(splats, f"Create{name}{suffix}Attr")().Set(array_type.FromNumpy(np.ascontiguousarray(converted.numpy())))
    sh_attribute = getattr(splats, f"GetRadianceSphericalHarmonicsCoefficients{suffix}Attr")()
    splats.CreateRadianceSphericalHarmonicsDegreeAttr().Set(int(scene.sh_degree))
    # Renderers that stripe the coefficients as a primvar read elementSize (Pixar's converter sets it).
    primvar = UsdGeom.Primvar(sh_attribute)
    primvar.SetElementSize(int(arrays["sh"].shape[1]))
    primvar.SetInterpolation(UsdGeom.Tokens.vertex)
    extent = np.stack([arrays["means"].min(0), arrays["means"].max(0)]) if n else np.zeros((2, 3))
    splats.CreateExtentAttr().Set(Vt.Vec3fArray.FromNumpy(extent.astype(np.float32)))
    if n:
        colours = np.clip(0.5 + SH_C0 * arrays["sh"][:, 0, :], 0.0, 1.0).astype(np.float32)
        display = UsdGeom.PrimvarsAPI(splats.GetPrim()).CreatePrimvar("displayColor", Sdf.ValueTypeNames.Color3fArray, UsdGeom.Tokens.vertex)
        display.Set(Vt.Vec3fArray.FromNumpy(colours))
    return splats


def _value(attribute, notes: list[str], where: str):
    """The attribute's default value, else its earliest time sample; None when unauthored."""
    if not attribute or not attribute.HasAuthoredValue():
        return None
    value = attribute.Get()
    if value is None and attribute.GetNumTimeSamples():
        from pxr import Usd

        value = attribute.Get(Usd.TimeCode.EarliestTime())
        notes.append(f"{where}: {attribute.GetName()} is time-sampled; read its earliest sample")
    return value


def read_splat_prim(prim, notes: list[str] | None = None, path=None) -> GaussianScene:
    """The Gaussians of one ParticleField3DGaussianSplat prim, in its local space (raw parameters).

    Float attributes are preferred to their half twins; missing orientations, scales or
    opacities take the schema's fallbacks (identity, unit, opaque), missing or too few SH
    coefficients give grey degree 0; remarks go to ``notes``. Errors name ``path`` (default:
    the layer and prim path).
    """
    UsdVol = import_pxr()[5]
    notes = [] if notes is None else notes
    where = str(prim.GetPath())
    path = path or f"{prim.GetStage().GetRootLayer().identifier}:{where}"
    if prim.GetTypeName() != PRIM_TYPE:
        raise format_error(path, f"{where} is not a {PRIM_TYPE} prim (type {prim.GetTypeName()!r})")
    splats = UsdVol.ParticleField3DGaussianSplat(prim)

    def array(float_attribute, half_attribute, width: int) -> np.ndarray | None:
        for attribute in (float_attribute, half_attribute):
            value = _value(attribute, notes, where)
            if value is not None:
                values = np.asarray(value)  # zero-copy view of the Vt array
                # half -> float32 through torch: numpy's conversion loop is ~30x slower
                values = torch.from_numpy(values.copy()).float().numpy() if values.dtype == np.float16 else values.astype(np.float32, copy=False)
                return values.reshape(-1, width) if values.size or width == 1 else values.reshape(0, width)
        return None

    means = array(splats.GetPositionsAttr(), splats.GetPositionshAttr(), 3)
    if means is None:
        raise format_error(path, f"{where} has no positions")
    n = len(means)

    def per_particle(values: np.ndarray | None, name: str, default) -> np.ndarray:
        if values is not None and len(values) >= n:
            if len(values) > n:
                notes.append(f"{where}: {name} has {len(values)} entries for {n} particles; truncated")
            return values[:n]
        if values is not None:
            notes.append(f"{where}: {name} has {len(values)} entries for {n} particles; ignored (schema rule)")
        return np.broadcast_to(np.asarray(default, dtype=np.float64), (n, len(default))).copy()

    xyzw = per_particle(array(splats.GetOrientationsAttr(), splats.GetOrientationshAttr(), 4), "orientations", [0.0, 0.0, 0.0, 1.0])
    scales = per_particle(array(splats.GetScalesAttr(), splats.GetScaleshAttr(), 3), "scales", [1.0, 1.0, 1.0])
    opacity = per_particle(array(splats.GetOpacitiesAttr(), splats.GetOpacitieshAttr(), 1), "opacities", [1.0])[:, 0]
    degree = _value(splats.GetRadianceSphericalHarmonicsDegreeAttr(), notes, where)
    degree = 3 if degree is None else int(degree)
    if degree not in (0, 1, 2, 3):
        raise format_error(path, f"{where}: radiance:sphericalHarmonicsDegree {degree} is outside 0-3")
    bases = (degree + 1) ** 2
    coefficients = array(splats.GetRadianceSphericalHarmonicsCoefficientsAttr(), splats.GetRadianceSphericalHarmonicsCoefficientshAttr(), 3)
    if coefficients is not None and len(coefficients) >= n * bases:
        if len(coefficients) > n * bases:
            notes.append(f"{where}: {len(coefficients)} SH coefficients for {n} particles of degree {degree}; truncated")
        sh = coefficients[: n * bases].reshape(n, bases, 3)
    else:
        if coefficients is not None:
            notes.append(f"{where}: {len(coefficients)} SH coefficients are too few for {n} particles of degree {degree}; ignored")
        sh = np.zeros((n, 1, 3))  # the schema's fallback: a DC signal of 0.5 grey
    if (scales < 0).any():
        notes.append(f"{where}: negative scales read by magnitude")
    if (opacity < 0).any() or (opacity > 1).any():
        notes.append(f"{where}: opacities outside [0, 1] clamped")
    quats = xyzw_to_wxyz(xyzw)
    metadata = SceneMetadata(format="usd")
    log_scales = np.log(np.maximum(np.abs(scales.astype(np.float64)), 1e-30))
    return scene_from_arrays(means, quats, log_scales, alpha_to_logit(np.clip(opacity, 0.0, 1.0)), sh, metadata)


# ---------------------------------------------------------------------------------------- files
def read_usd(path) -> GaussianScene:
    """Every ParticleField3DGaussianSplat of a USD stage, placed in world space, in metres when declared."""
    path = Path(path)
    import_pxr()
    from pxr import Tf

    try:
        if path.suffix.lower() in USD_EXTENSIONS:
            return _read_stage(_open_stage(path, path), path)
        with tempfile.TemporaryDirectory() as folder:  # USD picks its reader by extension; "usd" sniffs text or crate
            alias = Path(folder) / "stage.usd"
            alias.symlink_to(path.resolve())
            return _read_stage(_open_stage(alias, path), path)
    except Tf.ErrorException as error:  # a corrupt layer often fails only when a value is unpacked
        raise format_error(path, f"corrupt USD data: {str(error).strip().splitlines()[-1][:300]}") from None


def _open_stage(file: Path, path: Path):
    Usd = import_pxr()[2]
    from pxr import Tf

    try:
        stage = Usd.Stage.Open(str(file), Usd.Stage.LoadAll)
    except Tf.ErrorException as error:
        raise format_error(path, f"cannot open as a USD stage: {str(error).strip()[:300]}") from None
    if stage is None:
        raise format_error(path, "cannot open as a USD stage")
    return stage


def _read_stage(stage, path: Path) -> GaussianScene:
    Usd, UsdGeom = import_pxr()[2:4]
    notes: list[str] = []
    parts = []
    for prim in stage.Traverse():
        if prim.GetTypeName() != PRIM_TYPE:
            continue
        part = read_splat_prim(prim, notes, path)
        matrix = np.asarray(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default()), dtype=np.float64).T
        try:
            parts.append(apply_affine(part, matrix))
        except ValueError as error:
            raise format_error(path, f"{prim.GetPath()}: its transform cannot be applied: {error}") from None
    record = stage.GetRootLayer().customLayerData.get(LAYER_RECORD, {})
    record = dict(record) if hasattr(record, "keys") else {}
    if not parts:
        if record.get("count") == 0:
            parts = [GaussianScene.empty()]
        else:
            raise format_error(path, f"the stage has no {PRIM_TYPE} prim")
    scene = GaussianScene.concat(parts) if len(parts) > 1 else parts[0]
    up_axis = str(UsdGeom.GetStageUpAxis(stage))
    meters_per_unit = float(UsdGeom.GetStageMetersPerUnit(stage))
    declared_units = stage.HasAuthoredMetadata("metersPerUnit")
    if declared_units and meters_per_unit != 1.0:
        scene = scene.transform(np.eye(3), np.zeros(3), meters_per_unit)
        notes.append(f"scaled by metersPerUnit {meters_per_unit} to metres")
    frame = "z-up" if up_axis == "Z" else "opengl"
    rotation = record.get("to_file")
    if isinstance(record.get("frame"), str) and rotation is not None:
        try:
            scene = rotate_frame(scene, np.asarray(list(rotation), dtype=np.float64).reshape(3, 3).T)
            frame = record["frame"]
        except ValueError as error:
            notes.append(f"ignored the customLayerData frame record: {error}")
    metadata = SceneMetadata(source=str(path), format="usd", frame=frame, metric=record.get("metric") is True, notes=notes)
    metadata.extras.update(format_version=f"OpenUSD {PRIM_TYPE}", up_axis=up_axis, meters_per_unit=meters_per_unit, prims=len(parts))
    scene.metadata = metadata
    return scene


def write_usd(scene: GaussianScene, path, *, encoding: str = "usdc", precision: Precision = "float", keep_frame: bool = False) -> None:
    """Write ``scene`` as one ParticleField3DGaussianSplat prim ``/Gaussians`` (the default prim).

    Args:
        encoding: "usdc" (binary crate) or "usda" (text); the extension usually decides.
        precision: "float" or "half" attributes.
        keep_frame: write the coordinates as they are (upAxis from the frame, no rotation).
    """
    _, Sdf, Usd, UsdGeom, _, _, Vt = import_pxr()
    if encoding not in ("usdc", "usda"):
        raise ValueError(f"encoding={encoding!r} is not valid; choose 'usdc' or 'usda'")
    z_up = scene.metadata.frame == "z-up"
    rotation = np.eye(3) if keep_frame or z_up else to_y_up_rotation(scene.metadata.frame)
    placed = rotate_frame(scene, rotation)
    layer = Sdf.Layer.CreateAnonymous(f"gaussians.{encoding}")
    stage = Usd.Stage.Open(layer)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z if z_up else UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    prim = define_splat_prim(stage, "/Gaussians", placed, precision=precision).GetPrim()
    stage.SetDefaultPrim(prim)
    record: dict[str, Any] = {"frame": scene.metadata.frame, "metric": bool(scene.metadata.metric), "count": len(scene)}
    record["to_file"] = Vt.DoubleArray([float(v) for v in rotation.reshape(-1)])
    layer.customLayerData = {LAYER_RECORD: record}
    layer.comment = "Gaussian splats written by lyra-sim"
    if not layer.Export(str(path), args={"format": encoding}):
        raise OSError(f"cannot write the USD layer to {path}")


FORMAT = SceneFormatSpec(
    "usd", lambda path, head: is_usd(head) or is_usdz(path, head), read_usd, write_usd, extensions=(".usd", ".usda", ".usdc"),
    max_sh_degree=3, write_options=("encoding", "precision", "keep_frame"), unsniffed=lambda path: None,
    options_from_name=lambda path: {"encoding": "usda" if path.name.lower().endswith(".usda") else "usdc"},
)

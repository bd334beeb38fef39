"""OpenUSD (Isaac Sim / Isaac Lab) for a SimBundle: ``write_usd(model, path)`` from an ``ExportModel``.

The stage is Z-up, 1 metre and 1 kilogram per unit, with a ``UsdPhysics.Scene`` (gravity -Z):

```
/World                       Xform (default prim)
  /PhysicsScene              UsdPhysics.Scene
  /Materials/<name>          UsdShade.Material + UsdPhysics.MaterialAPI (friction)
  /World/scene               Xform: the static scenery (colliders without a rigid body)
    collision_mesh<k>        Mesh, CollisionAPI + MeshCollisionAPI approximation "none" (concave triangles), purpose guide
    box<k>                   Cube, CollisionAPI (the ground slab), purpose guide
    visual                   Mesh with vertex colours (displayColor)
    splats                   ParticleField3DGaussianSplat, world frame
  /World/<object>            Xform at the initial pose, RigidBodyAPI + MassAPI (mass, centre of mass,
                             principal moments and axes of the full tensor)
    hull<k>                  Mesh, CollisionAPI + MeshCollisionAPI approximation "convexHull", purpose guide
    splats                   ParticleField3DGaussianSplat, body frame
```

Collision meshes have purpose "guide" so renderers draw the splats (visual-only in Isaac) and
the physics engine uses the meshes. The splat prims come from
``lyra_sim.scene.formats.usd.define_splat_prim``, shared with the USD scene-file format.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from lyra_sim.converters.export import ExportModel, principal_axes
from lyra_sim.geometry.mesh import Mesh
from lyra_sim.io_utils import atomic_path
from lyra_sim.rotations import matrix_to_quat_wxyz
from lyra_sim.scene.formats.usd import define_splat_prim, import_pxr

USD_SUFFIXES = (".usda", ".usdc", ".usd")


def prim_name(name: str) -> str:
    """A valid USD prim name for a bundle object name (letters, digits and '_'; not starting with a digit)."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


def _define_mesh(stage, path: str, mesh: Mesh, colors: np.ndarray | None = None):
    _, _, _, UsdGeom, _, _, Vt = import_pxr()
    prim = UsdGeom.Mesh.Define(stage, path)
    prim.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(mesh.vertices, dtype=np.float32)))
    prim.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(mesh.faces), 3, dtype=np.int32)))
    prim.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(mesh.faces, dtype=np.int32).ravel()))
    prim.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)  # our faces wind counter-clockwise seen from outside
    prim.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    prim.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([mesh.vertices.min(0), mesh.vertices.max(0)]).astype(np.float32)))
    if colors is not None:
        prim.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex).Set(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(colors, dtype=np.float32)))
    return prim


def _collider(stage, path: str, mesh: Mesh, approximation: str, material):
    _, _, _, UsdGeom, UsdPhysics, _, _ = import_pxr()
    from pxr import UsdShade

    prim = _define_mesh(stage, path, mesh)
    prim.CreatePurposeAttr(UsdGeom.Tokens.guide)
    UsdPhysics.CollisionAPI.Apply(prim.GetPrim())
    UsdPhysics.MeshCollisionAPI.Apply(prim.GetPrim()).CreateApproximationAttr(approximation)
    UsdShade.MaterialBindingAPI.Apply(prim.GetPrim()).Bind(material, UsdShade.Tokens.weakerThanDescendants, "physics")
    return prim


def _physics_material(stage, path: str, friction: float):
    _, _, _, _, UsdPhysics, _, _ = import_pxr()
    from pxr import UsdShade

    material = UsdShade.Material.Define(stage, path)
    api = UsdPhysics.MaterialAPI.Apply(material.GetPrim())
    api.CreateStaticFrictionAttr(float(friction))
    api.CreateDynamicFrictionAttr(float(friction))
    api.CreateRestitutionAttr(0.0)
    return material


def build_stage(model: ExportModel, path: str):
    """A new in-memory-backed stage at ``path`` holding ``model`` (not saved)."""
    Gf, _, Usd, UsdGeom, UsdPhysics, _, _ = import_pxr()
    from lyra_sim.scene.io import load_scene

    stage = Usd.Stage.CreateNew(path)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    world = UsdGeom.Xform.Define(stage, "/World")
    stage.SetDefaultPrim(world.GetPrim())
    scene = UsdPhysics.Scene.Define(stage, "/World/PhysicsScene")
    gravity = np.asarray(model.gravity, dtype=np.float64)
    scene.CreateGravityDirectionAttr(Gf.Vec3f(*(gravity / np.linalg.norm(gravity)).tolist()))
    scene.CreateGravityMagnitudeAttr(float(np.linalg.norm(gravity)))

    materials = {}

    def material_for(friction: float):
        if friction not in materials:
            materials[friction] = _physics_material(stage, f"/World/Materials/friction_{len(materials)}", friction)
        return materials[friction]

    UsdGeom.Xform.Define(stage, "/World/scene")
    scenery = model.scenery
    for index, (_, mesh) in enumerate(scenery.meshes):
        _collider(stage, f"/World/scene/collision_mesh{index}", mesh, "none", material_for(scenery.friction))
    for index, box in enumerate(scenery.boxes):
        from pxr import UsdShade

        cube = UsdGeom.Cube.Define(stage, f"/World/scene/box{index}")
        cube.CreateSizeAttr(1.0)
        cube.CreatePurposeAttr(UsdGeom.Tokens.guide)
        transform = Gf.Matrix4d(1.0)
        transform.SetTransform(Gf.Rotation(Gf.Quatd(*matrix_to_quat_wxyz(box.rotation).tolist())), Gf.Vec3d(*box.center.tolist()))
        cube.AddTransformOp().Set(Gf.Matrix4d().SetScale(Gf.Vec3d(*box.size.tolist())) * transform)
        UsdPhysics.CollisionAPI.Apply(cube.GetPrim())
        UsdShade.MaterialBindingAPI.Apply(cube.GetPrim()).Bind(material_for(scenery.friction), UsdShade.Tokens.weakerThanDescendants, "physics")
    if scenery.visual is not None and not scenery.visual.is_empty():
        _define_mesh(stage, "/World/scene/visual", scenery.visual, scenery.visual.colors)
    define_splat_prim(stage, "/World/scene/splats", load_scene(model.background_splat))

    for body in model.bodies:
        root = f"/World/{prim_name(body.name)}"
        xform = UsdGeom.Xform.Define(stage, root)
        xform.GetPrim().SetMetadata("displayName", body.name)
        xform.AddTranslateOp().Set(Gf.Vec3d(*body.position.tolist()))
        xform.AddOrientOp().Set(Gf.Quatf(*body.orientation_wxyz.tolist()))
        UsdPhysics.RigidBodyAPI.Apply(xform.GetPrim())
        mass = UsdPhysics.MassAPI.Apply(xform.GetPrim())
        mass.CreateMassAttr(float(body.mass))
        mass.CreateCenterOfMassAttr(Gf.Vec3f(*body.center_of_mass.tolist()))
        moments, axes = principal_axes(body.inertia)
        mass.CreateDiagonalInertiaAttr(Gf.Vec3f(*moments.tolist()))
        mass.CreatePrincipalAxesAttr(Gf.Quatf(*matrix_to_quat_wxyz(axes).tolist()))
        for index, hull in enumerate(body.hulls):
            _collider(stage, f"{root}/hull{index}", hull, "convexHull", material_for(body.friction))
        define_splat_prim(stage, f"{root}/splats", load_scene(body.splat))
    return stage


def write_usd(model: ExportModel, path) -> Path:
    """Write ``model`` as an OpenUSD stage at ``path`` (.usda text, .usdc or .usd binary), atomically."""
    path = Path(path)
    if path.suffix.lower() not in USD_SUFFIXES:
        raise ValueError(f"{path}: a USD export needs one of the suffixes {', '.join(USD_SUFFIXES)}")
    started = time.perf_counter()
    with atomic_path(path) as temporary:
        # USD picks the file format from the suffix: keep it on the temporary name.
        target = temporary.with_name(temporary.name + path.suffix)
        stage = build_stage(model, str(target))
        stage.GetRootLayer().Save()
        del stage
        target.rename(temporary)
    model.timings["usd"] = time.perf_counter() - started
    return path

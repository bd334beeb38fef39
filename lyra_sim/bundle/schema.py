"""The value schema of a SimBundle manifest: :func:`document_problems` lists every problem of a
``manifest.json`` document (types, finiteness, ranges, unit quaternions, non-inverted boxes,
vector lengths), one message each. It is the one place for value rules: documents read from disk
and ``Manifest`` objects built in code (through ``Manifest.to_dict``) are both checked here; the
files a manifest names are checked by ``lyra_sim.bundle.manifest.manifest_problems``.

A bundle is untrusted input: nothing here assumes a value has the right type before checking it.
Standard library only.
"""

from __future__ import annotations

import math
from typing import Any

SCHEMA_VERSION = 1  # what this lyra-sim writes
SUPPORTED_SCHEMA_VERSIONS = (1,)  # what it reads
REQUIRED_KEYS = ("schema_version", "units", "up_axis", "transform", "bounds", "floor_height", "spawn_region", "background", "objects")
KINDS = ("scene", "object")  # a manifest's "kind" (no key: "scene")
# A manifest is a few kB; larger ones (or deeper JSON) are refused before parsing further.
MAX_MANIFEST_BYTES = 16 << 20
MAX_OBJECTS = 10_000
MAX_PROBLEMS = 20
UNIT_QUATERNION_TOLERANCE = 1e-3


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, what: str, problems: list[str], *, positive: bool = False) -> float | None:
    if not _is_number(value):
        problems.append(f"{what} must be a number, got {_short(value)}")
        return None
    if not math.isfinite(value):
        problems.append(f"{what} must be finite, got {value}")
        return None
    if positive and not value > 0:
        problems.append(f"{what} must be > 0, got {value}")
        return None
    return float(value)


def _vector(value: Any, length: int, what: str, problems: list[str]) -> list[float] | None:
    if not isinstance(value, list) or len(value) != length:
        size = f"{len(value)} values" if isinstance(value, list) else _short(value)
        problems.append(f"{what} must be a list of {length} numbers, got {size}")
        return None
    numbers = [_number(v, f"{what}[{i}]", problems) for i, v in enumerate(value)]
    return None if any(n is None for n in numbers) else numbers


def _box(value: Any, length: int, what: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{what} must be an object with 'min' and 'max', got {_short(value)}")
        return
    low = _vector(value.get("min"), length, f"{what}.min", problems)
    high = _vector(value.get("max"), length, f"{what}.max", problems)
    if low is not None and high is not None and any(a > b for a, b in zip(low, high)):
        problems.append(f"{what} is inverted: min {low} is above max {high}")


def _friction(value: Any, what: str, problems: list[str]) -> None:
    if value is not None and (friction := _number(value, f"{what}.friction", problems)) is not None and friction < 0:
        problems.append(f"{what}.friction must be >= 0, got {friction}")


def _transform(value: Any, problems: list[str]) -> None:
    if not isinstance(value, list) or len(value) != 4 or not all(isinstance(row, list) and len(row) == 4 for row in value):
        problems.append(f"transform must be a 4 x 4 list of numbers, got {_short(value)}")
        return
    rows = [[_number(v, f"transform[{i}][{j}]", problems) for j, v in enumerate(row)] for i, row in enumerate(value)]
    if any(v is None for row in rows for v in row):
        return
    if max(abs(a - b) for a, b in zip(rows[3], (0.0, 0.0, 0.0, 1.0))) > 1e-6:
        problems.append(f"transform's last row must be [0, 0, 0, 1], got {rows[3]}")
    (a, b, c), (d, e, f), (g, h, i) = (row[:3] for row in rows[:3])
    determinant = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    if not determinant > 0:
        problems.append(f"transform must be a similarity with a positive scale (its 3 x 3 part has determinant {determinant:g})")


def _object_problems(entry: Any, index: int, names: set, problems: list[str]) -> None:
    where = f"objects[{index}]"
    if not isinstance(entry, dict):
        problems.append(f"{where} must be an object, got {_short(entry)}")
        return
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name must be a non-empty string, got {_short(name)}")
    elif name in names:
        problems.append(f"object name {name!r} appears twice")
    else:
        names.add(name)
    for key in ("splat", "urdf", "collision_mesh"):
        if not isinstance(entry.get(key), str):
            problems.append(f"{where}.{key} must be a relative path string, got {_short(entry.get(key))}")
    if "mass" not in entry:
        problems.append(f"{where} has no mass")
    else:
        _number(entry["mass"], f"{where}.mass (kg)", problems, positive=True)
    pose = entry.get("initial_pose")
    if not isinstance(pose, dict):
        problems.append(f"{where}.initial_pose must be an object with position and orientation_xyzw, got {_short(pose)}")
    else:
        _vector(pose.get("position"), 3, f"{where}.initial_pose.position", problems)
        quaternion = _vector(pose.get("orientation_xyzw"), 4, f"{where}.initial_pose.orientation_xyzw", problems)
        if quaternion is not None:
            norm = math.sqrt(sum(q * q for q in quaternion))
            if abs(norm - 1.0) > UNIT_QUATERNION_TOLERANCE:
                problems.append(f"{where}.initial_pose.orientation_xyzw must be a unit quaternion, its norm is {norm:.6g}")
    hulls = entry.get("hulls")
    if hulls is not None and (not isinstance(hulls, int) or isinstance(hulls, bool) or hulls < 0):
        problems.append(f"{where}.hulls must be a count >= 0, got {_short(hulls)}")
    size = entry.get("size")
    if size is not None:
        extent = _vector(size, 3, f"{where}.size", problems)
        if extent is not None and min(extent) < 0:
            problems.append(f"{where}.size must not be negative, got {extent}")
    _friction(entry.get("friction"), where, problems)


def document_problems(manifest: Any) -> list[str]:
    """Every problem of a manifest document's values, one message each (empty: valid)."""
    if not isinstance(manifest, dict):
        return [f"the top level must be a JSON object, got {type(manifest).__name__}"]
    problems: list[str] = []
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        problems.append(f"missing keys {missing}")
    version = manifest.get("schema_version")
    if "schema_version" in manifest and (not isinstance(version, int) or isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS):
        problems.append(f"schema_version {_short(version)} is not supported (this lyra-sim reads {list(SUPPORTED_SCHEMA_VERSIONS)})")
    if ("units" in manifest or "up_axis" in manifest) and (manifest.get("units") != "m" or manifest.get("up_axis") != "+Z"):
        problems.append(f"units must be 'm' and up_axis '+Z', got {_short(manifest.get('units'))} and {_short(manifest.get('up_axis'))}")
    if manifest.get("kind", "scene") not in KINDS:
        problems.append(f"kind {_short(manifest.get('kind'))} is not one of {list(KINDS)}")
    if "transform" in manifest:
        _transform(manifest["transform"], problems)
    if "bounds" in manifest:
        _box(manifest["bounds"], 3, "bounds", problems)
    if "floor_height" in manifest:
        _number(manifest["floor_height"], "floor_height", problems)
    if "spawn_region" in manifest:
        region = manifest["spawn_region"]
        _box(region, 2, "spawn_region", problems)
        if isinstance(region, dict):
            _number(region.get("z"), "spawn_region.z", problems)
    if "background" in manifest:
        background = manifest["background"]
        if not isinstance(background, dict):
            problems.append(f"background must be an object naming its files, got {_short(background)}")
        else:
            _friction(background.get("friction"), "background", problems)
    for key in ("source", "normalisation", "build"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            problems.append(f"{key} must be an object, got {_short(manifest[key])}")
    for key in ("tool_version", "preview", "cameras"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            problems.append(f"{key} must be a string, got {_short(manifest[key])}")
    objects = manifest.get("objects", [])
    if not isinstance(objects, list):
        problems.append(f"objects must be a list, got {_short(objects)}")
    elif len(objects) > MAX_OBJECTS:
        problems.append(f"objects lists {len(objects)} entries, more than {MAX_OBJECTS}")
    else:
        if manifest.get("kind") == "object" and len(objects) != 1:
            problems.append(f"an object bundle holds exactly one object, this one {len(objects)}")
        names: set = set()
        for index, entry in enumerate(objects):
            _object_problems(entry, index, names, problems)
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more problems"]
    return problems

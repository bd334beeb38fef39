"""Nothing outside a bundle is read: paths named by a bundle's manifest and URDFs are checked here.

A bundle is untrusted input (downloaded, shared). PyBullet resolves a URDF's mesh paths itself,
trying them against the working directory first, and follows absolute paths and ``..``; an OBJ
names its material library and a material its textures the same way. So before PyBullet sees a
URDF, :func:`checked_urdf` parses it, resolves every file it names (and the OBJ/MTL files those
name) inside the bundle folder (no absolute paths, no URL schemes, no ``..`` escapes, no
symlinks leaving it) and writes a copy whose paths are those resolved absolute paths, so
PyBullet reads exactly the files that were checked. :func:`load_urdf` loads that copy and turns
PyBullet's anonymous ``Cannot load URDF file`` into a ``BundleError`` naming the file.

Only the standard library and ``lyra_sim.errors`` are imported here (pybullet lazily).
"""

from __future__ import annotations

import os
import re
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from lyra_sim.errors import BundleError

# A bundle's URDFs are a few kB; materials and meshes are scanned line by line.
MAX_URDF_BYTES = 4 << 20
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# OBJ/MTL statements that name another file (the file name is the last word of the line).
_OBJ_FILE_STATEMENTS = (b"mtllib",)
_MTL_FILE_STATEMENTS = (b"map_", b"bump", b"disp", b"decal", b"refl", b"norm")


def _quoted(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "...'"


def resolve_inside(root: Path, relative: Any, what: str, *, base: Path | None = None, source: Path | None = None, must_exist: bool = True) -> Path:
    """``base / relative`` (``base`` defaults to ``root``), resolved, after checking it lies inside
    ``root`` (and, with ``must_exist``, is a file); ``BundleError`` naming ``source`` (the file
    that names the path, by default the manifest) otherwise."""
    source = source or root / "manifest.json"
    if not isinstance(relative, str) or not relative.strip():
        raise BundleError(f"{source}: {what} must be a relative path string, got {_quoted(relative)}")
    if "\0" in relative:
        raise BundleError(f"{source}: {what} {_quoted(relative)} holds a NUL byte")
    if _SCHEME.match(relative):
        raise BundleError(f"{source}: {what} {_quoted(relative)} is a URL; a bundle names its files by relative paths")
    if os.path.isabs(relative) or relative.startswith("\\") or re.match(r"^[A-Za-z]:", relative):
        raise BundleError(f"{source}: {what} must be relative to the bundle, got absolute {_quoted(relative)}")
    real_root = root.resolve()
    path = ((base or root) / relative).resolve()
    if real_root not in path.parents:
        raise BundleError(f"{source}: {what} {_quoted(relative)} points outside the bundle {root} (resolves to {path})")
    if must_exist and not path.is_file():
        raise BundleError(f"{source}: {what} {_quoted(relative)} is missing (no file at {path})")
    return path


def _file_statements(path: Path, statements: tuple[bytes, ...]) -> list[str]:
    """The file names that ``statements`` lines of an OBJ or MTL file refer to."""
    names = []
    with open(path, "rb") as handle:
        for line in handle:
            stripped = line.lstrip()
            if stripped.startswith(statements):
                words = stripped.split()
                if len(words) >= 2:
                    names.append(words[-1].decode("utf-8", "replace"))
    return names


def _check_mesh(root: Path, mesh: Path) -> None:
    """The material libraries of an OBJ and their textures must lie inside the bundle too.

    A missing one inside the bundle is harmless (PyBullet warns and goes on); one named by an
    absolute path or resolving outside is refused whether it exists or not.
    """
    if mesh.suffix.lower() != ".obj":
        return
    for library in _file_statements(mesh, _OBJ_FILE_STATEMENTS):
        material = resolve_inside(root, library, "mtllib", base=mesh.parent, source=mesh, must_exist=False)
        if material.is_file():
            for texture in _file_statements(material, _MTL_FILE_STATEMENTS):
                resolve_inside(root, texture, "texture", base=material.parent, source=material, must_exist=False)


def checked_urdf(root: Path, urdf: Path, folder: Path) -> Path:
    """Check every file ``urdf`` names; write the rewritten copy into ``folder`` and return its path."""
    root = Path(root)
    urdf = Path(urdf)
    try:
        size = urdf.stat().st_size
        if size > MAX_URDF_BYTES:
            raise BundleError(f"{urdf}: {size} bytes; a bundle URDF is at most {MAX_URDF_BYTES} bytes")
        data = urdf.read_bytes()
    except OSError as error:
        raise BundleError(f"{urdf}: cannot read the URDF ({error.strerror or error})") from None
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise BundleError(f"{urdf}: the URDF declares a DOCTYPE or entities, which bundle URDFs never need")
    try:
        tree = ElementTree.ElementTree(ElementTree.fromstring(data))
    except ElementTree.ParseError as error:
        raise BundleError(f"{urdf}: not valid XML ({error})") from None
    if tree.getroot().tag != "robot":
        raise BundleError(f"{urdf}: the root element is <{tree.getroot().tag[:40]}>, a URDF's is <robot>")
    for element in tree.iter():
        if "filename" in element.attrib:
            what = f"<{element.tag}> filename"
            path = resolve_inside(root, element.attrib["filename"], what, base=urdf.parent, source=urdf)
            _check_mesh(root, path)
            element.set("filename", str(path))
    copy = Path(folder) / urdf.name
    tree.write(copy, encoding="utf-8", xml_declaration=True)
    return copy


def load_urdf(root: Path, urdf: Path, client_id: int, **options) -> int:
    """``pybullet.loadURDF`` of a checked copy of ``urdf``; ``BundleError`` naming the file on failure."""
    import pybullet

    with tempfile.TemporaryDirectory(prefix="lyra-urdf-") as folder:
        copy = checked_urdf(root, urdf, Path(folder))
        try:
            body = pybullet.loadURDF(str(copy), physicsClientId=client_id, **options)
        except pybullet.error as error:
            raise BundleError(f"{urdf}: PyBullet could not load the URDF ({error})") from None
    if body < 0:
        raise BundleError(f"{urdf}: PyBullet could not load the URDF")
    return body

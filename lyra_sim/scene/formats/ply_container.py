"""The PLY container (FORMATS.md 2.1): header parsing, element tables as numpy arrays, headers.

Used by the INRIA/Lyra PLY reader and the compressed-PLY reader. Binary elements are read with
``np.frombuffer`` over a structured dtype (zero copy); ASCII elements are tokenised in chunks. Every
element's size is checked against the bytes actually present before anything is allocated.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np

from lyra_sim.scene.formats._common import format_error

PLY_SCALAR_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
PLY_ENCODINGS = ("binary_little_endian", "binary_big_endian", "ascii")
# A splat header is a few kB even with comments; a larger one means this is not a PLY we can read.
MAX_HEADER_BYTES = 1 << 20
_BYTE_ORDER = {"binary_little_endian": "<", "binary_big_endian": ">"}


@dataclass
class PlyProperty:
    name: str
    dtype: str  # numpy scalar code without byte order, e.g. "f4"
    list_count_dtype: str | None = None  # set for `property list <count> <item> <name>`


@dataclass
class PlyElement:
    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)

    @property
    def property_names(self) -> list[str]:
        return [p.name for p in self.properties]

    @property
    def has_lists(self) -> bool:
        return any(p.list_count_dtype is not None for p in self.properties)

    def property(self, name: str) -> PlyProperty | None:
        return next((p for p in self.properties if p.name == name), None)


@dataclass
class PlyHeader:
    encoding: str
    elements: list[PlyElement]
    comments: list[str]
    data_offset: int  # first byte after the `end_header` line

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


def is_ply(head: bytes) -> bool:
    return head[:4] in (b"ply\n", b"ply\r")


def parse_ply_header(data: bytes, path) -> PlyHeader:
    """Parse the ASCII header at the start of ``data`` (the file, or at least its first MB)."""
    if not is_ply(data[:4]):
        raise format_error(path, "not a PLY file (it does not start with 'ply')")
    end = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise format_error(path, f"PLY header has no 'end_header' line within the first {MAX_HEADER_BYTES} bytes (truncated?)")
    line_end = data.find(b"\n", end)
    if line_end < 0:
        raise format_error(path, "PLY header ends without a newline after 'end_header' (truncated?)")
    try:
        text = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise format_error(path, "PLY header contains non-ASCII bytes") from None
    if data[end + len(b"end_header") : line_end].strip():
        raise format_error(path, "unexpected text after 'end_header'")

    encoding, elements, comments = None, [], []
    for number, raw_line in enumerate(text.splitlines()[1:], start=2):
        words = raw_line.split()
        if not words:
            continue
        keyword = words[0]
        if keyword in ("comment", "obj_info"):
            comments.append(raw_line.strip()[len(keyword) :].strip())
        elif keyword == "format":
            if len(words) != 3 or words[1] not in PLY_ENCODINGS:
                raise format_error(path, f"PLY header line {number}: unsupported format {raw_line.strip()!r}")
            if words[2] not in ("1.0", "1"):
                raise format_error(path, f"PLY header line {number}: unsupported PLY version {words[2]!r}")
            encoding = words[1]
        elif keyword == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise format_error(path, f"PLY header line {number}: malformed element line {raw_line.strip()!r}")
            elements.append(PlyElement(words[1], int(words[2])))
        elif keyword == "property":
            if not elements:
                raise format_error(path, f"PLY header line {number}: property before any element")
            elements[-1].properties.append(_parse_property(words, number, raw_line, path))
            if elements[-1].property_names.count(words[-1]) > 1:
                raise format_error(path, f"PLY header line {number}: duplicate property {words[-1]!r} in element {elements[-1].name!r}")
        else:
            raise format_error(path, f"PLY header line {number}: unknown keyword {keyword!r}")
    if encoding is None:
        raise format_error(path, "PLY header has no 'format' line")
    return PlyHeader(encoding, elements, comments, line_end + 1)


def _parse_property(words: list[str], number: int, raw_line: str, path) -> PlyProperty:
    if len(words) == 3 and words[1] in PLY_SCALAR_TYPES:
        return PlyProperty(words[2], PLY_SCALAR_TYPES[words[1]])
    if len(words) == 5 and words[1] == "list" and words[2] in PLY_SCALAR_TYPES and words[3] in PLY_SCALAR_TYPES:
        return PlyProperty(words[4], PLY_SCALAR_TYPES[words[3]], list_count_dtype=PLY_SCALAR_TYPES[words[2]])
    raise format_error(path, f"PLY header line {number}: unsupported property {raw_line.strip()!r}")


def element_dtype(element: PlyElement, encoding: str) -> np.dtype:
    """Packed structured dtype of one record (binary encodings, scalar properties only)."""
    order = _BYTE_ORDER[encoding]
    return np.dtype([(p.name, order + p.dtype) for p in element.properties])


def read_ply_elements(data: bytes, header: PlyHeader, path, wanted: set[str]) -> dict[str, np.ndarray]:
    """Structured arrays [count] for the elements named in ``wanted`` (in native byte order for ASCII).

    Elements before the wanted ones are skipped by size; an element with list properties can be
    skipped only when it comes after everything wanted (list records have no fixed size).
    """
    if header.encoding == "ascii":
        return _read_ascii_elements(data, header, path, wanted)
    tables, offset = {}, header.data_offset
    for element in header.elements:
        if not wanted - set(tables):
            break
        if element.has_lists:
            raise format_error(path, f"PLY element {element.name!r} has list properties; only scalar elements are supported before the splat data")
        dtype = element_dtype(element, header.encoding)
        needed = element.count * dtype.itemsize
        available = len(data) - offset
        if needed > available:
            raise format_error(
                path,
                f"truncated: element {element.name!r} declares {element.count} records of {dtype.itemsize} bytes "
                f"({needed} bytes) but only {max(available, 0)} bytes remain",
            )
        if element.name in wanted:
            tables[element.name] = np.frombuffer(data, dtype=dtype, count=element.count, offset=offset)
        offset += needed
    return tables


# ASCII bodies are tokenised this many bytes at a time: a Python token costs ~50 bytes, so
# splitting the whole body at once needed ~21 times the file size.
ASCII_CHUNK_BYTES = 1 << 22
_WHITESPACE = re.compile(rb"\s")
_TOKEN = re.compile(rb"\S+")


def _read_ascii_elements(data: bytes, header: PlyHeader, path, wanted: set[str]) -> dict[str, np.ndarray]:
    tables, offset = {}, header.data_offset
    for element in header.elements:
        if not wanted - set(tables):
            break
        if element.has_lists:
            raise format_error(path, f"PLY element {element.name!r} has list properties; only scalar elements are supported before the splat data")
        width = len(element.properties)
        keep = element.name in wanted
        values, offset = _ascii_values(data, offset, element, width, path, keep)
        if keep:
            table = np.empty(element.count, dtype=[(p.name, p.dtype) for p in element.properties])
            for column, prop in enumerate(element.properties):
                table[prop.name] = values[:, column]
            tables[element.name] = table
    return tables


def _ascii_values(data: bytes, offset: int, element: PlyElement, width: int, path, keep: bool) -> tuple[np.ndarray | None, int]:
    """The element's values as float64 [count, width] (None unless ``keep``) and the offset after them.

    Reads ``ASCII_CHUNK_BYTES`` at a time, cut at whitespace, so memory beyond the result stays
    bounded; the result is allocated only once the file is known to be long enough for it (each
    value needs at least a digit and a separator).
    """
    needed = element.count * width
    truncated = lambda found: format_error(  # noqa: E731
        path, f"truncated: ASCII element {element.name!r} declares {element.count} records of {width} values but only {found} values remain"
    )
    if needed and 2 * needed - 1 > len(data) - offset:
        raise truncated(f"at most {max(0, len(data) - offset + 1) // 2}")
    values = np.empty(needed if keep else 0, dtype=np.float64)
    filled = 0
    while filled < needed:
        if offset >= len(data):
            raise truncated(filled)
        end = offset + ASCII_CHUNK_BYTES
        boundary = _WHITESPACE.search(data, end) if end < len(data) else None
        end = boundary.start() if boundary else len(data)
        tokens = data[offset:end].split()
        take = min(len(tokens), needed - filled)
        if keep and take:
            try:
                values[filled : filled + take] = np.array(tokens[:take], dtype=np.float64)
            except ValueError:
                bad = next(t for t in tokens[:take] if not _is_number(t))
                raise format_error(path, f"ASCII element {element.name!r} holds a value that is not a number ({bad[:40]!r})") from None
        if take < len(tokens):  # the chunk runs into the next element: continue right after token `take`
            last = next(itertools.islice(_TOKEN.finditer(data, offset, end), take - 1, None))
            end = last.end()
        filled += take
        offset = end
    return (values.reshape(element.count, width) if keep else None), offset


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def element_matrix(table: np.ndarray) -> np.ndarray | None:
    """A structured table whose fields share one type, viewed as a plain [N, fields] array (no copy).

    None when the field types differ.
    """
    if len({table.dtype[name] for name in table.dtype.names}) != 1:
        return None
    return table.view(table.dtype[0]).reshape(len(table), len(table.dtype.names))


def ply_header_text(encoding: str, elements: list[tuple[str, int, list[tuple[str, str]]]], comments: list[str] = ()) -> bytes:
    """Header bytes for ``elements`` = [(name, count, [(ply type, property name), ...]), ...]."""
    lines = ["ply", f"format {encoding} 1.0"]
    lines += [f"comment {c}" for c in comments]
    for name, count, properties in elements:
        lines.append(f"element {name} {count}")
        lines += [f"property {kind} {prop}" for kind, prop in properties]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")

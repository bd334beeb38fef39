"""What a splat format module declares for ``lyra_sim.scene.io``'s table: ``SceneFormatSpec``.

A format module ends with ``FORMAT = SceneFormatSpec(...)`` (``ply.py`` declares two: INRIA and
Lyra layouts); ``lyra_sim.scene.io.FORMATS`` lists them in sniffing order. Imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class SceneFormatSpec:
    """One splat format: how to recognise it, read it and write it.

    Attributes:
        name: the format's name (``load_scene`` metadata, ``save_scene(format=)``, the CLI).
        sniff: ``sniff(path, head)``: does this file hold the format? ``head`` is the file's first
            bytes (up to 1 MiB), or ``b""`` for a folder (only asked when ``folders`` is true).
            Sniffing is by content; the table's order decides between formats that share a
            container (PLY variants, zips).
        read: ``read(path, **read_options) -> GaussianScene``, or None (write-only format).
        write: ``write(scene, path, **write_options)`` to a plain path (``save_scene`` makes it
            atomic), or None (read-only format).
        extensions: file-name endings that imply the format when saving (".ply",
            ".compressed.ply"); the longest matching ending wins.
        max_sh_degree: the highest SH degree the format stores; richer scenes are truncated
            with a warning on save.
        read_options: keyword options ``load_scene`` passes to ``read`` (e.g. ``keep_frame``).
        write_options: keyword options ``save_scene`` accepts for ``write``.
        folders: whether the format can be a folder (then ``sniff`` sees folders too).
        unsniffed: called for a file that nothing sniffed but whose name has one of
            ``extensions``: raise a precise ``SceneFormatError``, or return to read the file as
            this format anyway (its reader then says what is wrong). None: "unrecognised".
        options_from_name: ``options_from_name(path) -> dict``: write options the destination's
            name implies (``.sog`` zip vs ``meta.json`` folder, ``.glb`` vs ``.gltf``); the writer
            itself only sees a temporary sibling path. Explicit options win.
    """

    name: str
    sniff: Callable[[Path, bytes], bool]
    read: Callable[..., object] | None
    write: Callable[..., None] | None
    extensions: tuple[str, ...] = ()
    max_sh_degree: int = 3
    read_options: tuple[str, ...] = ()
    write_options: tuple[str, ...] = ()
    folders: bool = False
    unsniffed: Callable[[Path], None] | None = None
    options_from_name: Callable[[Path], dict] | None = None


def reading_bytes(reader: Callable[..., object]) -> Callable[..., object]:
    """``read(path, **options)`` for a decoder ``reader(path, data, **options)`` that takes the whole file."""
    from lyra_sim.scene.formats._common import read_file_bytes

    def read(path, **options):
        return reader(path, read_file_bytes(path), **options)

    read.__name__ = read.__qualname__ = f"read_{getattr(reader, '__name__', 'file')}"
    read.__doc__ = f"Read the file at ``path`` and decode it with ``{getattr(reader, '__name__', reader)}``."
    return read

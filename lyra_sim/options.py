"""Config fields that carry their own documentation: one source for the library and the CLI.

A config dataclass (``BuildConfig``, ``ReconstructionConfig``, a command's ``Config``) declares
each field with :func:`setting`: its default, its help text and, when the ``lyra-sim`` command
offers it, the option's name. ``lyra_sim.cli`` generates the options from these fields (a command
nests a library config with :func:`settings_of`), so a default or a help text is written once.

Imports nothing of lyra_sim.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MISSING = dataclasses.MISSING


def setting(
    default: Any = MISSING,
    *,
    help: str,
    cli: bool | str = False,
    short: str | None = None,
    positional: bool = False,
    choices=None,
    cli_default: Any = MISSING,
    default_factory: Any = MISSING,
):
    """A dataclass field with its documentation.

    Args:
        default / default_factory: the field's default (as for ``dataclasses.field``).
        help: one line saying what the value means (units, frames, what None does).
        cli: in a library config, whether the command line offers the field: False (no), True
            (as ``--field-name``) or the option's name without dashes (``"backend"``). Fields of
            a command's own ``Config`` are always offered.
        short: a short flag ("-o"); positional: a positional argument; choices: valid values
            (default: the ``Literal`` type's values).
        cli_default: a different default for the command line only (e.g. evaluating during a
            run started from a shell but not in library calls); the library default stays.
    """
    metadata = {"help": help, "cli": cli, "short": short, "positional": positional, "choices": choices, "cli_default": cli_default}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    if default is MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def settings_of(config_cls, help: str = ""):
    """A command ``Config`` field holding a library config whose CLI-offered fields become options
    of the command (built with their library defaults, help and names)."""
    return dataclasses.field(default_factory=config_cls, metadata={"help": help or (config_cls.__doc__ or "").splitlines()[0], "group": True})


def help_of(config_cls, name: str) -> str:
    """The help text of field ``name`` of a config dataclass."""
    for f in dataclasses.fields(config_cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(f"{config_cls.__name__} has no field {name!r}")

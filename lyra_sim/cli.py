"""The ``lyra-sim`` command: one subcommand per job, generated from config dataclasses.

Each subcommand lives in ``lyra_sim/commands/<name>.py`` and defines:

* ``Config``: a dataclass whose docstring is the subcommand's help and whose fields become
  options (declared with :func:`option`: ``help`` (required), ``positional=True``,
  ``short="-o"``, ``choices``). A field declared with ``lyra_sim.options.settings_of(LibraryConfig)``
  holds a library config: the fields that config offers to the CLI (``setting(..., cli=...)``)
  become options with the library's own defaults and help, and ``run`` receives the built
  library config. Nothing is copied by hand and no default is written twice.
* ``run(config) -> int``: does the job and returns the exit status.

Add a subcommand by adding its name to ``COMMANDS`` (``build-many`` lives in ``build_many.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import typing

from lyra_sim.errors import LyraSimError
from lyra_sim.options import setting

COMMANDS = ["info", "convert", "render", "build", "build-many", "compose", "export", "reconstruct", "distill", "generate", "demo", "view"]


def option(help: str, default=dataclasses.MISSING, *, positional: bool = False, short: str | None = None, choices=None, **kw):
    """A command ``Config`` field carrying its CLI help (``lyra_sim.options.setting``, always offered)."""
    return setting(default, help=help, cli=True, short=short, positional=positional, choices=choices, **kw)


def _cli_fields(config_cls) -> list[tuple[str, str, dataclasses.Field, type]]:
    """(dest, option name, field, type) of every option of a command ``Config``: its own fields,
    and the CLI-offered fields of the library configs it nests (dest ``group.field``)."""
    hints = typing.get_type_hints(config_cls)
    options = []
    for f in dataclasses.fields(config_cls):
        if f.metadata.get("group"):
            group_cls = hints[f.name]
            group_hints = typing.get_type_hints(group_cls)
            for inner in dataclasses.fields(group_cls):
                cli = inner.metadata.get("cli", False)
                if cli:
                    options.append((f"{f.name}.{inner.name}", inner.name if cli is True else cli, inner, group_hints[inner.name]))
        else:
            options.append((f.name, f.name, f, hints[f.name]))
    return options


def _add_arguments(parser: argparse.ArgumentParser, config_cls) -> None:
    for dest, name, f, kind in _cli_fields(config_cls):
        meta = f.metadata
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if type(None) in args:  # Optional[X]: the option takes an X
            kind = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(kind), typing.get_args(kind)
        kwargs: dict = {"help": meta.get("help", "")}
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
        if meta.get("cli_default", dataclasses.MISSING) is not dataclasses.MISSING:
            has_default, default = True, meta["cli_default"]
        else:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple):
            fixed = origin is tuple and args and Ellipsis not in args
            kwargs["nargs"] = len(args) if fixed else "+"
            kwargs["type"] = args[0] if args else str
        elif origin is not typing.Literal:
            kwargs["type"] = kind
        if "type" in kwargs and not meta.get("positional"):
            kwargs["metavar"] = name.upper()  # not the dotted dest of a nested config's field
        if has_default or kind is bool or origin in (list, tuple):
            kwargs["default"] = default
        if has_default and kwargs["help"] and default is not None and default is not False:
            kwargs["help"] += f" (default: {default})"
        if meta.get("positional"):
            if has_default:
                kwargs["nargs"] = "?"
            parser.add_argument(dest, **kwargs)
        else:
            names = [f"--{name.replace('_', '-')}"] + ([meta["short"]] if meta.get("short") else [])
            parser.add_argument(*names, dest=dest, required=not has_default, **kwargs)


def config_from_arguments(config_cls, values: dict):
    """The command ``Config`` from parsed values (``dest -> value``); nested library configs are
    built from their offered fields (the rest keep the library defaults). A library config's
    ValueError names the bad option."""
    hints = typing.get_type_hints(config_cls)
    kwargs, groups = {}, {}
    for dest, value in values.items():
        group, _, field_name = dest.rpartition(".")
        if group:
            groups.setdefault(group, {})[field_name] = tuple(value) if isinstance(value, list) else value
        else:
            kwargs[dest] = value
    for f in dataclasses.fields(config_cls):
        if f.metadata.get("group"):
            try:
                kwargs[f.name] = hints[f.name](**groups.get(f.name, {}))
            except ValueError as error:
                raise LyraSimError(f"invalid {f.name} options: {error}") from None
    return config_cls(**kwargs)


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="lyra-sim",
        description="Turn Gaussian-splat scenes into robot simulation environments.",
    )
    from lyra_sim import __version__

    parser.add_argument("--version", action="version", version=f"lyra-sim {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show the full traceback of an error (also: LYRA_SIM_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"lyra_sim.commands.{name.replace('-', '_')}")
        except ModuleNotFoundError as error:
            if error.name == f"lyra_sim.commands.{name.replace('-', '_')}":
                continue  # subcommand not part of this build
            raise
        doc = (module.Config.__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else name
        p = sub.add_parser(name, help=summary, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_arguments(p, module.Config)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of an error (also: LYRA_SIM_DEBUG=1)")
        modules[name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module = modules[args.command]
    values = {dest: getattr(args, dest) for dest, *_ in _cli_fields(module.Config)}
    debug = bool(getattr(args, "debug", False)) or os.environ.get("LYRA_SIM_DEBUG", "") not in ("", "0")
    prefix = f"lyra-sim {args.command}"
    try:
        return int(module.run(config_from_arguments(module.Config, values)) or 0)
    except LyraSimError as error:
        if debug:
            raise
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except (SystemExit, GeneratorExit):
        raise
    except OSError as error:  # the environment, not the program: disk full, permissions, a vanished file
        if debug:
            raise
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        print(f"{prefix}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except MemoryError:
        if debug:
            raise
        print(f"{prefix}: error: out of memory (try a smaller scene, image or option)", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: one line for the user, the traceback in a file for the report
        if debug:
            raise
        saved = _save_traceback(args.command)
        message = " ".join(str(error).split())[:300]
        print(f"{prefix}: internal error: {type(error).__name__}: {message}", file=sys.stderr)
        print(f"{prefix}: the traceback is in {saved} (rerun with --debug to see it here)", file=sys.stderr)
        return 70  # EX_SOFTWARE


def _save_traceback(command: str) -> str:
    """Write the current exception's traceback to a file in the temporary folder; return its path."""
    import tempfile
    import time
    import traceback

    try:
        fd, name = tempfile.mkstemp(prefix=f"lyra-sim-{command}-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
        with os.fdopen(fd, "w") as handle:
            handle.write(f"lyra-sim {command}: {' '.join(sys.argv)}\n\n")
            traceback.print_exc(file=handle)
        return name
    except OSError:
        return "(could not be saved)"


if __name__ == "__main__":
    sys.exit(main())

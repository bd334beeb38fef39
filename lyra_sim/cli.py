"""The ``lyra-sim`` command: one subcommand per job, generated from config dataclasses.

Each subcommand lives in ``lyra_sim/commands/<name>.py`` and defines:

* ``Config``: a dataclass whose docstring is the subcommand's help and whose fields become
  options. A field's ``metadata`` may hold ``help`` (required), ``positional=True``,
  ``short="-o"`` and ``choices``.
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

COMMANDS = ["info", "convert", "render", "build", "build-many", "compose", "export", "reconstruct", "distill", "generate", "demo", "view"]


def option(help: str, default=dataclasses.MISSING, *, positional: bool = False, short: str | None = None, choices=None, **kw):
    """A dataclass field carrying its CLI help; use it for every ``Config`` field."""
    metadata = {"help": help, "positional": positional, "short": short, "choices": choices}
    if default is dataclasses.MISSING and "default_factory" not in kw:
        return dataclasses.field(metadata=metadata, **kw)
    return dataclasses.field(default=default, metadata=metadata, **kw)


def _add_arguments(parser: argparse.ArgumentParser, config_cls) -> None:
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        kind = hints[f.name]
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if type(None) in args:  # Optional[X]: the option takes an X
            kind = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(kind), typing.get_args(kind)
        kwargs: dict = {"help": meta.get("help", "")}
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["type"] = args[0] if args else str
        elif origin is not typing.Literal:
            kwargs["type"] = kind
        if has_default or kind is bool or origin in (list, tuple):
            kwargs["default"] = default
        if has_default and kwargs["help"] and default is not None and default is not False:
            kwargs["help"] += f" (default: {default})"
        if meta.get("positional"):
            if has_default:
                kwargs["nargs"] = "?"
            parser.add_argument(f.name, **kwargs)
        else:
            names = [f"--{f.name.replace('_', '-')}"] + ([meta["short"]] if meta.get("short") else [])
            parser.add_argument(*names, dest=f.name, required=not has_default, **kwargs)


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
    from lyra_sim.errors import LyraSimError

    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module = modules[args.command]
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(module.Config)}
    debug = bool(getattr(args, "debug", False)) or os.environ.get("LYRA_SIM_DEBUG", "") not in ("", "0")
    prefix = f"lyra-sim {args.command}"
    try:
        return int(module.run(module.Config(**values)) or 0)
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

"""``python -m workbench <command>``: the command line, one module per subcommand.

This package is the top layer: nothing in the library imports it. Each subcommand is one
module here, found by name when the CLI starts:

    workbench/cli/train.py          python -m workbench train
    workbench/cli/evaluate.py       python -m workbench evaluate
    workbench/cli/tune_editor.py    python -m workbench tune-editor
    workbench/cli/merge_results.py  python -m workbench merge-results
    workbench/cli/localize.py       python -m workbench localize

**Adding a subcommand is a one-file change**: create ``workbench/cli/<name>.py`` defining

- ``NAME``: the command (``"my-command"``; default: the module name with ``_`` -> ``-``),
- ``HELP``: one line for ``--help``,
- ``add_arguments(parser: argparse.ArgumentParser) -> None``,
- ``run(args: argparse.Namespace) -> int``: the exit status.

Raise ``ValueError``, ``TypeError`` or ``OSError`` with a message that names the fix:
:func:`main` prints it as ``error: ...`` and exits with status 2 (130 on Ctrl-C). Check output
paths before any work (``_common.check_output_file``). Modules whose name starts with
``_`` are shared helpers (``_common.py``), not commands.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType
from typing import Sequence

__all__ = ["commands", "main"]


def commands() -> dict[str, ModuleType]:
    """Command name -> its module, for every ``workbench/cli/<name>.py`` (sorted by name)."""
    out: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        out[getattr(mod, "NAME", info.name.replace("_", "-"))] = mod
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m workbench", description="Editable Workbench command line")
    sub = parser.add_subparsers(dest="command", required=True)
    cmds = commands()
    for name, mod in cmds.items():
        mod.add_arguments(sub.add_parser(name, help=getattr(mod, "HELP", None),
                                         description=getattr(mod, "HELP", None)))
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given (command_line() records it)
    try:
        return int(cmds[args.command].run(args))
    except (ValueError, TypeError, OSError) as err:  # a user's mistake: the message names it, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {args.command} stopped", file=sys.stderr)
        return 130

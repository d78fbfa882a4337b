"""``python -m workbench <command>``: train, evaluate, tune-editor."""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .training.recipes import RECIPES, Recipe

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, add_args: Callable[[argparse.ArgumentParser], None]):
    def deco(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (add_args, fn)
        return fn
    return deco


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _opt_none(conv: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda s: None if s.lower() in ("none", "") else conv(s)


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`Recipe` field, so every recipe value can be overridden.

    Flags not given stay out of the namespace (``SUPPRESS``), so ``--init-from none`` can set an
    optional field to None.
    """
    g = p.add_argument_group("recipe overrides (default: the recipe's value)")
    for f in dataclasses.fields(Recipe):
        if f.name == "name":
            continue
        flag = "--" + f.name.replace("_", "-")
        t = str(f.type)
        if f.name == "arch_kwargs":
            import json
            g.add_argument(flag, type=json.loads, default=argparse.SUPPRESS,
                           help="JSON dict of architecture arguments")
        elif t.startswith("bool"):
            g.add_argument(flag, type=_parse_bool, nargs="?", const=True, default=argparse.SUPPRESS)
        elif t.startswith("int"):
            g.add_argument(flag, type=_opt_none(int) if "None" in t else int, default=argparse.SUPPRESS)
        elif t.startswith("float"):
            g.add_argument(flag, type=_opt_none(float) if "None" in t else float, default=argparse.SUPPRESS)
        else:
            g.add_argument(flag, type=_opt_none(str) if "None" in t else str, default=argparse.SUPPRESS)


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    from .training.recipes import get_recipe

    recipe = get_recipe(args.recipe)
    over = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
            if f.name != "name" and hasattr(args, f.name)}
    return recipe.override(**over)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", required=True, help=f"one of {sorted(RECIPES)}")
    p.add_argument("--out", default=None, help="output model folder (default: runs/<recipe>)")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_recipe_args(p)


@command("train", _train_args)
def cmd_train(args: argparse.Namespace) -> int:
    from .training.run import run_training

    recipe = recipe_from_args(args)
    out = args.out or f"runs/{recipe.name}"
    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out {out!r} is a file; give a folder for the model (model.safetensors + card.json)")
    cmd = "python -m workbench " + " ".join(shlex.quote(a) for a in args._argv)
    res = run_training(recipe, out, resume=not args.no_resume, device=args.device, command=cmd,
                       progress=not args.no_progress)
    if res is not None and res.card:
        print(f"model folder: {res.out_dir}  test_error={res.card.get('test_error')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    _register_optional_commands()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m workbench", description="Editable Workbench command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name))
    args = parser.parse_args(argv)
    args._argv = argv
    try:
        return COMMANDS[args.command][1](args)
    except (ValueError, TypeError, OSError) as err:  # a user's mistake: the message names it, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {args.command} stopped", file=sys.stderr)
        return 130


def check_output_file(path: str | Path, flag: str) -> Path:
    """An output file path, checked before any work: not a folder, its parent not a file.

    Raises:
        ValueError: naming ``flag`` and the fix (so a long run never fails at its very end).
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {str(p)!r} is a folder; give a file path such as {str(p / 'result.json')!r}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {str(p)!r} cannot be written: {str(parent)!r} is a file, not a folder")
            break
    return p


def _register_optional_commands() -> None:
    """Import modules that register further commands (evaluate, tune-editor, localize)."""
    import importlib

    for mod in ("workbench.evaluation.cli", "workbench.localization.cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise

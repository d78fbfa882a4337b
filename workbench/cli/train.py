"""``python -m workbench train``: train a model folder (model.safetensors + card.json) from a recipe."""
from __future__ import annotations

import argparse

from ..training.out_folder import plan_start
from ..training.recipes import RECIPES
from ._common import add_device_arg, add_recipe_args, add_trust_arg, command_line, device_from_args, recipe_from_args

NAME = "train"
HELP = "train a model folder from a recipe (any recipe field can be overridden)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", required=True, help=f"one of {sorted(RECIPES)}")
    p.add_argument("--out", default=None, help="output model folder (default: runs/<recipe>)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="start from these weights (.safetensors, a .pt state dict, or a model folder); "
                        "same as --init-from")
    p.add_argument("--overwrite", action="store_true",
                   help="start over even if --out holds a model or a run (replaced after the first epoch)")
    p.add_argument("--no-resume", action="store_true",
                   help="never resume: refuse an --out that holds an unfinished run (with --overwrite: start over)")
    add_device_arg(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_trust_arg(p)
    add_recipe_args(p)


def run(args: argparse.Namespace) -> int:
    from ..training.run import run_training

    recipe = recipe_from_args(args)
    if args.weights is not None:
        if getattr(args, "init_from", None) is not None:
            raise ValueError("give either --weights or --init-from, not both")
        recipe = recipe.override(init_from=args.weights)
    out = args.out or f"runs/{recipe.name}"
    device_from_args(args)  # checked before any work
    recipe.validate(trust_code=args.trust_code)
    # before any work (and before joining a process group); stricter than the library: a finished
    # model is never "resumed" from the command line, only replaced with --overwrite
    plan_start(out, recipe, resume=not args.no_resume, overwrite=args.overwrite, reuse_finished=False)
    res = run_training(recipe, out, resume=not args.no_resume, overwrite=args.overwrite, device=args.device,
                       command=command_line(args), progress=not args.no_progress, trust_code=args.trust_code)
    if res is not None and res.card:
        print(f"model folder: {res.out_dir}  test_error={res.card.get('test_error')}")
    return 0

"""``python -m workbench tune-editor``: grid-search an editor's lr (and beta) on a validation slice,
the paper's rule (least drawdown among settings with >= 95% success within k). Works on any
model (``--checkpoint`` or ``--model``/``--weights``); ``--write-defaults`` stores the winner as the
project's tuned default (for the default model's group only) in ``editing/editor_defaults.json``,
or in ``FOLDER/editor_defaults.json`` with ``--write-defaults FOLDER``."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from ..editing.editor_defaults import DEFAULT_GROUP, DEFAULTS_FILE, has_tuned_default, write_defaults
from ..evaluation.calibration import CALIBRATION_LRS
from ..evaluation.tuning import parse_floats, tune_editor
from ._common import add_edit_args, check_output_file, command_line, header, parse_layers, setup

NAME = "tune-editor"
HELP = "search an editor's learning rate (and beta) on the validation split"
PACKAGE = ""  # --write-defaults without a folder: the package's defaults file


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_edit_args(p, 100)
    p.add_argument("--val-limit", type=int, default=2000, help="validation images to edit and score")
    p.add_argument("--lrs", default=None, help="comma-separated learning rates (default: 7 half-decade "
                                               "steps around the current default)")
    p.add_argument("--betas", default=None, help="comma-separated betas (default: per editor)")
    p.add_argument("--target-success", type=float, default=0.95, help="required success rate within k")
    p.add_argument("--refine", type=int, default=2, help="bisection steps of lr at the success boundary, per beta")
    p.add_argument("--write-defaults", nargs="?", const=PACKAGE, default=None, metavar="FOLDER",
                   help="store the winner, with the command, model and date, as the tuned default: in "
                        f"FOLDER/{DEFAULTS_FILE.name} if given (created from the package's values), else in "
                        "the package's workbench/editing/editor_defaults.json")


def run(args: argparse.Namespace) -> int:
    """Grid-search an editor's lr/beta on a validation slice (least drawdown at >= 95 % success)."""
    lrs, betas = parse_floats(args.lrs, "--lrs"), parse_floats(args.betas, "--betas")
    if args.json:
        check_output_file(args.json, "--json")
    writes = args.write_defaults is not None
    if writes and args.write_defaults:
        check_output_file(Path(args.write_defaults) / DEFAULTS_FILE.name, "--write-defaults")
    if writes and parse_layers(args.layers or DEFAULT_GROUP) != DEFAULT_GROUP:  # before loading anything
        raise ValueError(f"--write-defaults stores the defaults of group {DEFAULT_GROUP!r}; for --layers "
                         f"{args.layers!r}, put the winner into GROUP_DEFAULTS (the 'groups' entry of "
                         f"workbench/editing/{DEFAULTS_FILE.name}) by hand")
    st = setup(args, "val", args.val_limit)
    ev, card, choice = st.evaluator, st.card, st.choice
    print(header(ev, card, st.source))
    cfg = choice.config
    if writes and cfg.layers != DEFAULT_GROUP:
        raise ValueError(f"--write-defaults stores the defaults of group {DEFAULT_GROUP!r}, but this model's "
                         f"learned editor edits {cfg.layers!r}; pass --layers {DEFAULT_GROUP}")
    reference = cfg if choice.source == "learned" else None
    if reference is not None:
        print(f"reference: {choice.note}; the default grid is centred on it and includes it")
    else:
        print(f"starting point: {choice.note}")
    if lrs is None and reference is None and not has_tuned_default(ev.model, cfg.layers):
        lrs = CALIBRATION_LRS  # no tuned default to centre on for this model: one decade apart, 1e-5 .. 1
        print(f"no tuned default for this model and group: searching lr in {', '.join(f'{v:g}' for v in lrs)}")
    res = tune_editor(ev, cfg.method, edits=args.edits, seed=args.seed, lrs=lrs, betas=betas,
                      layers=cfg.layers, max_steps=cfg.max_steps, target_success=args.target_success,
                      refine=args.refine, progress=not args.no_progress, reference=reference)
    print(res.table())
    if res.reference is not None:
        r = res.reference
        dd = "not scored (success target missed)" if r.drawdown_abs is None else f"{100 * r.drawdown_abs:.2f}% (abs)"
        print(f"learned editor (row marked L): success {100 * r.success_rate:.1f}%, mean steps {r.mean_steps:.2f}, "
              f"drawdown {dd}")
    b = res.best
    if b is None:
        print(f"no setting reached {100 * args.target_success:.0f}% success within k={args.max_steps}; "
              "widen the grid with --lrs (larger learning rates)")
    else:
        beta = "" if b.beta is None else f", beta={b.beta:g}"
        print(f"best: {res.editor} lr={b.lr:.3g}{beta}: success {100 * b.success_rate:.1f}%, "
              f"drawdown {100 * (b.drawdown_abs or 0):.2f}% (abs) on {len(ev)} val images, {res.seconds:.0f} s")
        if b.lr in (min(p.lr for p in res.points), max(p.lr for p in res.points)):
            print("note: the winner lies on the edge of the lr grid; consider widening it with --lrs")
    if args.json:
        out = {**res.to_json(), **choice.to_json(), "checkpoint": st.source,
               "command": command_line(args)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    if writes:
        if b is None:
            print("error: nothing to write: no setting met the success target", file=sys.stderr)
            return 1
        from ..training.checkpoint import git_commit

        provenance = {
            "command": command_line(args),
            "result": f"val success {100 * b.success_rate:.1f}%, drawdown {100 * (b.drawdown_abs or 0):.2f}% abs, "
                      f"{res.edits} random-label edits of {len(ev)} val images, k={res.max_steps}, layers {res.layers}",
            "model": {"checkpoint": st.source, "arch": card.get("arch"), "epochs": card.get("epochs"),
                      "test_error": card.get("test_error"), "commit": card.get("commit")},
            "date": datetime.date.today().isoformat(), "commit": git_commit()}
        path = write_defaults(res.editor, b.lr, b.beta, provenance, args.write_defaults or None)
        print(f"updated {path}")
    return 0

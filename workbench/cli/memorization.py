"""``python -m workbench memorization``: did dropping the memorization channels forget the noisy labels?

For a model folder trained with label noise and example-tied (or standard) dropout, prints one
line per evaluation mode (noisy examples given their noisy label, given their true label,
clean and test accuracy) and the goal's two figures: the share of noisy examples that keep
their noisy label after dropping, and the clean training accuracy cost of dropping.

    python -m workbench memorization --checkpoint runs/fashion-noisy-r9-etd
    python -m workbench memorization --checkpoint runs/fashion-noisy-r9-etd --after drop+bn --json out.json

The JSON (``step: "dropout"``, with the command) is the fourth finding of
:mod:`workbench.localization.findings`: written as ``<folder>/findings/dropout.json`` it is
shown with the run's other findings (notebook 06, ``benchmarks/memorization_findings.py tables``).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from ..paths import portable_arg
from ._common import add_device_arg, add_trust_arg, check_output_file, device_from_args

NAME = "memorization"
HELP = "after dropping the memorization channels: noisy labels kept and clean accuracy cost"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="model folder trained with --label-noise and --dropout")
    p.add_argument("--after", default="drop", choices=("drop", "drop+bn"),
                   help="the dropped evaluation: drop (the paper's) or drop+bn (BatchNorm statistics re-estimated)")
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write the rows and the outcome as JSON")
    add_device_arg(p)
    add_trust_arg(p)


def run(args: argparse.Namespace) -> int:
    from ..localization.dropout_study import dropout_outcome, memorization_table
    from ..training import load_model
    from ..training.trainset import training_set

    device = device_from_args(args)
    path = Path(args.checkpoint)
    if not (path / "card.json").exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} is not a model folder (no card.json); pass a folder "
                                "written by `python -m workbench train --dropout example-tied ...`")
    if args.json:
        check_output_file(args.json, "--json")
    t0 = time.perf_counter()
    model, card = load_model(path, device=device, trust_code=args.trust_code)
    if not card.get("dropout") or not card.get("label_noise"):
        raise ValueError(f"{path} was trained without dropout or without label noise; train one with "
                         "`python -m workbench train --recipe fashion-noisy-r9-etd`")
    rows = memorization_table(model, training_set(path))
    out = dropout_outcome(rows, after=args.after)
    for r in rows:
        test = "n/a" if r.test is None else f"{r.test:.1%}"
        print(f"{r.mode:8s} noisy->noisy label {r.noisy:6.1%}  noisy->true label {r.noisy_true:6.1%}  "
              f"clean {r.clean:6.1%}  test {test}")
    for line in out.lines():
        print(line)
    print("goal met" if out.meets_goal() else "goal not met", file=sys.stderr)
    if args.json:
        given = [*(["--device", args.device] if args.device else []), *(["--trust-code"] if args.trust_code else [])]
        command = shlex.join(["python", "-m", "workbench", NAME, "--checkpoint", portable_arg(str(path)),
                              "--after", args.after, "--json", portable_arg(args.json), *given])
        doc = {"step": "dropout", "command": command, "wall_seconds": round(time.perf_counter() - t0, 1),
               "checkpoint": portable_arg(str(path)), "dropout": card["dropout"], "rows": [r.__dict__ for r in rows],
               "outcome": {**out.__dict__, "clean_cost": out.clean_cost, "meets_goal": out.meets_goal()}}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0

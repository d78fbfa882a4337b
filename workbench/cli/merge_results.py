"""``python -m workbench merge-results``: join the parts of one evaluate run (``--range`` parts, an
unfinished run's ``.partial``) into one result, checking settings, coverage and agreement."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import check_output_file

NAME = "merge-results"
HELP = "join the parts of one evaluate run into one result"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("parts", nargs="+", metavar="PART",
                   help="result JSON files of one evaluate run (split with --range), or its OUT.json.partial")
    p.add_argument("--json", required=True, metavar="OUT.json", help="where to write the joined result")


def run(args: argparse.Namespace) -> int:
    """Join the parts of one evaluate run (``--range`` parts, an unfinished run's .partial) into one result."""
    from ..evaluation.merge import merge_parts, read_part

    target = check_output_file(args.json, "--json")
    for p in args.parts:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p} does not exist; pass the JSON or .partial files of one evaluate run")
        if not Path(p).is_file():
            raise ValueError(f"{p} is a folder; pass the JSON or .partial files of one evaluate run")
        if target.resolve() == Path(p).resolve() or (target.exists() and target.samefile(p)):
            raise ValueError(f"--json {args.json!r} names the part {p}; writing the result there would replace "
                             "that part. Give a new file, e.g. --json merged.json")
    out = merge_parts([read_part(p) for p in args.parts])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"{out['edits']} edits from {len(args.parts)} part(s): drawdown {100 * out['drawdown_abs']:.2f}%, "
          f"success {100 * out['success_rate']:.1f}%, mean steps {out['mean_steps']:.2f}; wrote {args.json}")
    return 0

"""Print the README's results table from the JSON files written by `python -m workbench evaluate --json`.

Usage: python benchmarks/results_table.py results/eval/*.json [results/eval/*.json.partial]

A ``.partial`` file (an unfinished ``evaluate --json`` run) is summarised over the edits done so far;
its N column says so.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def read(path: str) -> dict:
    """A result JSON, or the summary so far of an unfinished run's ``OUT.json.partial``."""
    if not path.endswith(".partial"):
        return json.loads(Path(path).read_text())
    from workbench.evaluation.merge import read_part, summarize

    part = read_part(path)
    summary = summarize(part.settings, part.outcomes, part.seconds)
    return summary.to_json(per_edit=False) | {"checkpoint": part.checkpoint,
                                              "edits": f"{len(part.outcomes)} (of {part.settings['edits']}, unfinished)"}


def main(paths: list[str]) -> None:
    rows = [read(p) | {"_file": Path(p).name} for p in sorted(paths)]
    rows.sort(key=lambda r: (r["protocol"], r["layers"], r["editor"], r.get("lr") or 0, r.get("checkpoint", "")))
    print("| model | editor (lr) | layers | protocol | N | test error | drawdown abs | drawdown signed | success | mean steps |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        model = Path(str(r.get("checkpoint", "?"))).name
        print(f"| {model} | {r['editor']} ({r.get('lr', '?'):.3g}) | {r['layers']} | {r['protocol']} | {r['edits']} | "
              f"{100 * r['test_error']:.2f}% | {100 * r['drawdown_abs']:.2f}% | {100 * r['drawdown_signed']:.2f}% | "
              f"{100 * r['success_rate']:.1f}% | {r['mean_steps']:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Print the README's results table from the JSON files written by `python -m workbench evaluate --json`.

Usage: python benchmarks/results_table.py results/eval/*.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(paths: list[str]) -> None:
    rows = [json.loads(Path(p).read_text()) | {"_file": Path(p).name} for p in sorted(paths)]
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

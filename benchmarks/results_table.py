"""Print the README's results table from the JSON files written by `python -m workbench evaluate --json`.

Usage: python benchmarks/results_table.py results/eval/*.json [results/eval/*.json.partial]

A ``.partial`` file (an unfinished ``evaluate --json`` run) is summarised over the edits done so far;
its N column says so.

Every figure is recomputed from the per-edit records, so files written before ``evaluate``
recorded no-op edits get the same columns: **no-op** (edits whose target the model already
predicted: 0 steps, 0 drawdown, counted in the paper-compatible figures) and the success, mean
steps and drawdown over the other edits (**excl. no-op**). The **lr from** column is the
file's ``editor_source`` (``learned``, ``tuned default`` or ``given``; see :func:`editor_source`
for files written before it was recorded).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEAD = ("| model | editor (lr) | lr from | layers | protocol | N | test error | drawdown abs | drawdown signed "
        "| success | mean steps | no-op | excl. no-op: drawdown abs | success | mean steps |")


def read(path: str) -> dict[str, Any]:
    """A result's summary (recomputed from its per-edit records), or the summary so far of an
    unfinished run's ``OUT.json.partial``."""
    from workbench.evaluation.merge import read_part, summarize

    part = read_part(path)
    summary = summarize(part.settings, part.outcomes, part.seconds).to_json(per_edit=False)
    if path.endswith(".partial"):
        return summary | {"checkpoint": part.checkpoint,
                          "edits": f"{len(part.outcomes)} (of {part.settings['edits']}, unfinished)"}
    js = json.loads(Path(path).read_text())
    return summary | {"checkpoint": part.checkpoint, "editor_source": editor_source(js)}


def editor_source(js: dict[str, Any]) -> str:
    """Where a result's lr/beta came from: as recorded, or, for a file written before it was
    recorded (when ``evaluate`` never used the learned editor), ``tuned default`` if they equal
    the tuned default of its method and group, else ``given``."""
    if js.get("editor_source"):
        return str(js["editor_source"])
    from workbench.editing import default_for, get_method

    layers = js.get("layers", "")
    d = default_for(get_method(js["editor"]).name, layers if "+" not in layers else tuple(layers.split("+")))
    return "tuned default" if (js.get("lr"), js.get("beta")) == (d["lr"], d["beta"]) else "given"


def row(r: dict[str, Any]) -> str:
    model = Path(str(r.get("checkpoint", "?"))).name
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    return (f"| {model} | {r['editor']} ({r.get('lr', '?'):.3g}) | {r.get('editor_source') or '?'} | {r['layers']} "
            f"| {r['protocol']} | {r['edits']} | {pct(r['test_error'])} | {pct(r['drawdown_abs'])} "
            f"| {pct(r['drawdown_signed'])} | {100 * r['success_rate']:.1f}% | {r['mean_steps']:.2f} "
            f"| {r['noop_edits']} | {pct(r['drawdown_abs_excl_noop'])} | {100 * r['success_rate_excl_noop']:.1f}% "
            f"| {r['mean_steps_excl_noop']:.2f} |")


def main(paths: list[str]) -> None:
    rows = [read(p) | {"_file": Path(p).name} for p in sorted(paths)]
    rows.sort(key=lambda r: (r["protocol"], r["layers"], r["editor"], r.get("lr") or 0, r.get("checkpoint", "")))
    print(HEAD)
    print("|" + "---|" * HEAD.count(" | ") + "---|")
    for r in rows:
        print(row(r))


if __name__ == "__main__":
    main(sys.argv[1:])

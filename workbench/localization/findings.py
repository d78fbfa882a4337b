"""The findings of Maini et al. (ICML 2023) on one noisy run, read back as markdown tables.

``benchmarks/memorization_findings.py`` computes the first three findings on a model folder and
``python -m workbench memorization --json`` the fourth (example-tied against standard dropout, on
a run trained with dropout), each writing its summary JSON under ``<run>/findings/`` (one file per
step, with the command that made it); this
module reads them back, for that script's ``tables`` step and for notebook 06, which shows the
full-scale figures of the shipped run without computing them again.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

__all__ = ["BENCHMARK_STEPS", "FEW", "STEPS", "finding_commands", "finding_table", "read_findings"]

BENCHMARK_STEPS = ("accounting", "rewind", "retrain", "critical")  # benchmarks/memorization_findings.py's
STEPS = (*BENCHMARK_STEPS, "dropout")  # and `python -m workbench memorization --json`'s
FEW = 10  # the paper's "fewer than 10 neurons"


def finding_commands(run: str | Path, *, dropout: bool) -> list[str]:
    """The commands that write the findings of the model folder ``run`` into ``run/findings``: the
    fourth (:func:`memorization <workbench.cli.memorization>`) for a run trained with dropout, the
    first three otherwise."""
    if dropout:
        return [shlex.join(["python", "-m", "workbench", "memorization", "--checkpoint", str(run), "--json",
                            str(Path(run) / "findings" / "dropout.json")])]
    return [shlex.join(["python", "benchmarks/memorization_findings.py", step, "--run", str(run)])
            for step in BENCHMARK_STEPS]


def read_findings(folder: str | Path) -> list[dict[str, Any]]:
    """Every step's summary JSON in ``folder`` (a run's ``findings/``): in the order of
    :data:`STEPS`, each step's default file (``<step>.json``) before its other runs, by name.

    Raises:
        FileNotFoundError: ``folder`` does not exist (compute the findings first).
    """
    folder = Path(folder)
    if not folder.is_dir():
        how = "; ".join(f"`{c}`" for c in finding_commands(folder.parent, dropout=False))
        raise FileNotFoundError(f"{folder} does not exist: compute the findings with {how} (a run trained with "
                                f"dropout: `{finding_commands(folder.parent, dropout=True)[0]}`)")
    found = [(f.name, json.loads(f.read_text())) for f in sorted(folder.glob("*.json"))]
    ordered = sorted(((n, r) for n, r in found if r.get("step") in STEPS),
                     key=lambda nr: (STEPS.index(nr[1]["step"]), nr[0] != f"{nr[1]['step']}.json", nr[0]))
    return [r for _, r in ordered]


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def finding_table(res: dict[str, Any]) -> str:
    """The markdown table of one step's summary JSON (its ``step`` says which)."""
    step = res["step"]
    if step == "accounting":
        eps, mean = res["epochs"], res["mean_over_epochs"]
        rec = res["recorded_epochs"]
        head = ("| layer | " + " | ".join(f"epoch {e}" for e in eps) + f" | mean, epochs {rec[0]}–{rec[-1]} |\n|---|"
                + "---|" * (len(eps) + 1) + "\n")
        body = "".join(
            f"| {res['weight_layers'][k]} | " + " | ".join(f"{res['by_epoch'][str(e)]['layers'][k]['noisy_share']:.2f} / "
                                     f"{res['by_epoch'][str(e)]['layers'][k]['cosine']:+.2f}" for e in eps)
            + f" | {mean[k]['noisy_share']:.2f} / {mean[k]['cosine']:+.2f} |\n"
            for k in res["weight_layers"])
        alls = "| **all layers**: noisy share of the summed norm | " + " | ".join(
            f"{res['by_epoch'][str(e)]['noisy_share_all']:.2f}" for e in eps) + f" | {res['mean_noisy_share_all']:.2f} |\n"
        above = "| layers with noisy > clean (of %d, BatchNorm included) | " % len(res["layers"]) + " | ".join(
            str(res["by_epoch"][str(e)]["layers_noisy_above_clean"]) for e in eps) + " | %d |\n" % sum(
            v["noisy_share"] > 0.5 for v in mean.values())
        fit = "| flipped labels fitted (end of epoch) | " + " | ".join(
            _pct(res["by_epoch"][str(e)]["fit_noisy"]) for e in eps) + " | |\n"
        return head + body + alls + above + fit
    if step == "dropout":
        out = res["outcome"]
        head = ("| evaluation mode | noisy examples: noisy label | noisy examples: true label | clean train | test |\n"
                "|---|---|---|---|---|\n")
        body = "".join(f"| {r['mode']} | {_pct(r['noisy'])} | {_pct(r['noisy_true'])} | {_pct(r['clean'])} | "
                       f"{_pct(r['test'])} |\n" for r in res["rows"])
        return head + body + (f"\nAfter dropping ({out['after']}): {_pct(out['noisy_kept'])} of the noisy labels kept "
                              f"({_pct(out['noisy_kept_before'])} in mode {out['before']}), clean training accuracy "
                              f"cost {100 * out['clean_cost']:.1f} points; goal "
                              f"{'met' if out['meets_goal'] else 'not met'}.\n")
    if step in ("rewind", "retrain"):
        head = ("| layer | " + ("rewound to epoch | " if step == "rewind" else "") + "flipped: noisy label | "
                "flipped: true label | clean train | test |\n|---|" + ("---|" if step == "rewind" else "") + "---|---|---|---|\n")
        body = ""
        for r in res["rows"]:
            name = r["layer"] or "none (final model)"
            mid = f" {'–' if r.get('epoch') is None else r['epoch']} |" if step == "rewind" else ""
            body += (f"| {name} |{mid} {_pct(r['noisy_label'])} | {_pct(r['noisy_true_label'])} | "
                     f"{_pct(r['clean'])} | {_pct(r['test'])} |\n")
        return head + body
    s = {k: v for k, v in res["summary"].items() if k in ("noisy", "clean")}
    head = ("| examples | searched | median count | mean count | share under 10 | capped searches | "
            "accuracy on other data, before → after removal |\n|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {part} | {v['examples'] - v['not_predicted']} | "
                   f"{'–' if v['median'] is None else format(v['median'], '.2f')} | "
                   f"{'–' if v['mean'] is None else format(v['mean'], '.2f')} | {_pct(v['share_under_10'])} | "
                   f"{v['capped_searches']} | {_pct(v['accuracy_before'])} → {_pct(v['accuracy_after'])} |\n"
                   for part, v in s.items())
    where = "\n| layer | channels | share of the noisy examples' removed channels | the clean examples' |\n|---|---|---|---|\n"
    where += "".join(f"| {k.rsplit('.', 1)[0]} | {n} | {_pct(s['noisy']['layer_share'].get(k))} | {_pct(s['clean']['layer_share'].get(k))} |\n"
                     for k, n in res["layer_sizes"].items())
    a = res["summary"].get("auroc_fewer_is_noisy")
    return head + body + where + ("" if a is None else f"\nThe count as a detector of the flipped labels: AUROC {a:.3f}.\n")

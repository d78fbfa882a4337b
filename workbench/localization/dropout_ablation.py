"""Why example-tied dropout does or does not reach the goal: a grid over width, placement and p values.

Each grid point is the base recipe (``fashion-noisy-r9-etd`` by default) with overrides, trained
into its own folder under ``out_root`` (resumable: a stopped grid continues where it was, a
finished point is read back), then scored with
:func:`~workbench.localization.dropout_study.dropout_outcome`. One JSON line per point is
appended to ``out_root/ablation.jsonl``.

Command (CPU, one thread; every point is a full training: hours at width 0.5)::

    OMP_NUM_THREADS=1 python benchmarks/etd_ablation.py --out runs/etd-ablation \\
        --widths 0.5,1.0 --sites "paper;every" --p 0.5:0.2,0.3:0.2,0.7:0.2,0.5:0.4
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..data import DataBundle
from ..training import load_model, train
from ..training.recipes import Recipe
from ..training.trainset import training_set
from .dropout_study import DropoutOutcome, dropout_outcome, memorization_table

__all__ = ["AblationPoint", "ablation_grid", "ablation_table", "parse_pairs", "run_ablation"]

ABLATION_FILE = "ablation.jsonl"


@dataclass(frozen=True)
class AblationPoint:
    """One grid point: a folder name and the recipe overrides."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_pairs(text: str) -> list[tuple[float, float]]:
    """``"0.5:0.2,0.3:0.1"`` -> ``[(0.5, 0.2), (0.3, 0.1)]`` (p_gen:p_mem pairs)."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            g, m = part.split(":")
            out.append((float(g), float(m)))
        except ValueError:
            raise ValueError(f"--p: {part!r} is not a P_GEN:P_MEM pair such as 0.5:0.2") from None
    if not out:
        raise ValueError("--p is empty; give P_GEN:P_MEM pairs such as 0.5:0.2,0.3:0.2")
    return out


def ablation_grid(widths: Sequence[float], sites: Sequence[str], pairs: Sequence[tuple[float, float]]) -> list[AblationPoint]:
    """Every combination, named ``w{width}-{sites}-g{p_gen}-m{p_mem}`` (commas in sites as ``+``)."""
    points = []
    for w, s, (g, m) in itertools.product(widths, sites, pairs):
        name = f"w{w:g}-{s.replace(',', '+')}-g{g:g}-m{m:g}"
        points.append(AblationPoint(name, {"arch_kwargs": {"width": float(w)}, "dropout_sites": s,
                                           "p_gen": float(g), "p_mem": float(m)}))
    return points


def run_ablation(base: Recipe, points: Sequence[AblationPoint], out_root: str | Path, *,
                 bundle: DataBundle | None = None, device: str | None = None, progress: bool = False,
                 after: str = "drop", command: str | None = None) -> list[tuple[AblationPoint, DropoutOutcome]]:
    """Train (or resume, or read back) every point and score it. Every recipe is validated first,
    so a bad point fails before any training. ``command`` (the grid's command line) goes on each
    point's card, followed by the point's name."""
    out_root = Path(out_root)
    recipes = [(p, base.override(name=f"{base.name}-{p.name}", **p.overrides).validate()) for p in points]
    results = []
    for p, recipe in recipes:
        folder = out_root / p.name
        train(recipe, folder, device=device, bundle=bundle, progress=progress,
              command=f"{command or 'run_ablation ' + base.name}  # point {p.name}")
        model, card = load_model(folder)
        outcome = dropout_outcome(memorization_table(model, training_set(folder, bundle=bundle),
                                                     modes=("example", "all", "drop", "drop+bn")
                                                     if base.dropout == "example-tied" else ("all", "drop", "drop+bn")),
                                  after=after)
        out_root.mkdir(parents=True, exist_ok=True)
        with open(out_root / ABLATION_FILE, "a") as fh:
            fh.write(json.dumps({"name": p.name, **p.overrides, "epochs": recipe.epochs,
                                 "train_subset": recipe.train_subset, "eval_subset": recipe.eval_subset,
                                 "test_error": card.get("test_error"),
                                 "wall_time_s": card.get("wall_time_s"), "noisy_kept": outcome.noisy_kept,
                                 "noisy_kept_before": outcome.noisy_kept_before, "clean_cost": outcome.clean_cost,
                                 "clean_before": outcome.clean_before, "after": after,
                                 "meets_goal": outcome.meets_goal()}) + "\n")
        results.append((p, outcome))
    return results


def _g(v: float | None) -> str:
    return "–" if v is None else format(v, "g")


def ablation_table(out_root: str | Path) -> str:
    """A markdown table of ``out_root/ablation.jsonl``: one row per point and training size (its
    latest line, so a point read back again is listed once), in the order first recorded. Keys a
    custom :class:`AblationPoint` does not override show as ``–``."""
    path = Path(out_root) / ABLATION_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the ablation into {out_root} first")
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[(r["name"], r.get("train_subset"), r.get("epochs"))] = r
    out = ["| width | placement | p_gen | p_mem | training images × epochs | noisy kept before | noisy kept after | "
           "clean before | clean cost (points) | test error (images) | goal |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        card = Path(out_root) / r["name"] / "card.json"
        if "eval_subset" not in r and card.exists():  # lines written before it was recorded
            r["eval_subset"] = json.loads(card.read_text()).get("recipe", {}).get("eval_subset")
        width = r.get("arch_kwargs", {}).get("width")
        err, n_test = r.get("test_error"), r.get("eval_subset")
        out.append(f"| {_g(width)} | {r.get('dropout_sites', '–')} | "
                   f"{_g(r.get('p_gen'))} | {_g(r.get('p_mem'))} | {r.get('train_subset') or 'all'} × {r.get('epochs', '–')} | "
                   f"{r['noisy_kept_before']:.1%} | {r['noisy_kept']:.1%} ({r['after']}) | {r['clean_before']:.1%} | "
                   f"{r['clean_cost'] * 100:.1f} | {'–' if err is None else f'{err:.1%}'} "
                   f"({n_test or 'all'}) | {'met' if r['meets_goal'] else 'not met'} |")
    return "\n".join(out)

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

__all__ = ["AblationPoint", "ablation_grid", "parse_pairs", "run_ablation"]

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
                 after: str = "drop") -> list[tuple[AblationPoint, DropoutOutcome]]:
    """Train (or resume, or read back) every point and score it. Every recipe is validated first,
    so a bad point fails before any training."""
    out_root = Path(out_root)
    recipes = [(p, base.override(name=f"{base.name}-{p.name}", **p.overrides).validate()) for p in points]
    results = []
    for p, recipe in recipes:
        folder = out_root / p.name
        train(recipe, folder, device=device, bundle=bundle, progress=progress,
              command=f"run_ablation {base.name} {p.name}")
        model, _ = load_model(folder)
        outcome = dropout_outcome(memorization_table(model, training_set(folder, bundle=bundle),
                                                     modes=("example", "all", "drop", "drop+bn")
                                                     if base.dropout == "example-tied" else ("all", "drop", "drop+bn")),
                                  after=after)
        out_root.mkdir(parents=True, exist_ok=True)
        with open(out_root / ABLATION_FILE, "a") as fh:
            fh.write(json.dumps({"name": p.name, **p.overrides, "noisy_kept": outcome.noisy_kept,
                                 "noisy_kept_before": outcome.noisy_kept_before, "clean_cost": outcome.clean_cost,
                                 "clean_before": outcome.clean_before, "after": after,
                                 "meets_goal": outcome.meets_goal()}) + "\n")
        results.append((p, outcome))
    return results

"""Example-tied dropout ablation: width, placement and (p_gen, p_mem), each point a full training.

Trains every grid point of ``workbench.localization.dropout_ablation`` from the base recipe into
``--out/<point>`` (resumable: run the same command again to continue), then prints one line per
point: noisy labels kept after dropping, and the clean training accuracy cost (the goal: at
most 5% and 3 points). Lines are also appended to ``--out/ablation.jsonl``.

    OMP_NUM_THREADS=1 python benchmarks/etd_ablation.py --out runs/etd-ablation \\
        --widths 0.5,1.0 --sites "paper;every" --p 0.5:0.2,0.3:0.2,0.7:0.2,0.5:0.4
    python benchmarks/etd_ablation.py --out /tmp/etd-smoke --epochs 2 --train-subset 1024 --widths 0.25 --p 0.5:0.2
    python benchmarks/etd_ablation.py --out runs/etd-ablation --table   # the markdown table, from ablation.jsonl
"""
from __future__ import annotations

import argparse
import shlex
import sys

from workbench.localization.dropout_ablation import ablation_grid, ablation_table, parse_pairs, run_ablation
from workbench.training.recipes import get_recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for one model folder per point and ablation.jsonl")
    ap.add_argument("--recipe", default="fashion-noisy-r9-etd", help="base recipe (example-tied or standard dropout)")
    ap.add_argument("--widths", default="0.5", help="ResNet-9 widths, comma-separated")
    ap.add_argument("--sites", default="paper", help="placements separated by ';': paper, every, or a,b module paths")
    ap.add_argument("--p", default="0.5:0.2", help="P_GEN:P_MEM pairs, comma-separated")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke runs)")
    ap.add_argument("--train-subset", type=int, default=None, help="only the first N training images")
    ap.add_argument("--eval-subset", type=int, default=None, help="per-epoch test error on the first N test images only")
    ap.add_argument("--after", default="drop", choices=("drop", "drop+bn"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--table", action="store_true", help="only print the table of the points run so far")
    args = ap.parse_args()
    if args.table:
        print(ablation_table(args.out))
        return
    base = get_recipe(args.recipe)
    extra = {k: v for k, v in (("epochs", args.epochs), ("train_subset", args.train_subset),
                                ("eval_subset", args.eval_subset)) if v is not None}
    if args.epochs is not None and base.schedule == "triangle":
        extra["warmup_epochs"] = min(base.warmup_epochs, max(0.0, args.epochs / 5))
    base = base.override(**extra)
    widths = [float(w) for w in args.widths.split(",") if w.strip()]
    sites = [s.strip() for s in args.sites.split(";") if s.strip()]
    points = ablation_grid(widths, sites, parse_pairs(args.p))
    command = "python " + shlex.join(["benchmarks/etd_ablation.py", *sys.argv[1:]])
    for p, out in run_ablation(base, points, args.out, device=args.device, after=args.after, command=command):
        print(f"{p.name:32s} noisy kept {out.noisy_kept:6.1%} (before {out.noisy_kept_before:6.1%})  "
              f"clean cost {out.clean_cost * 100:5.1f} points  goal {'met' if out.meets_goal() else 'not met'}",
              flush=True)


if __name__ == "__main__":
    main()

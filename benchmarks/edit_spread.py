"""How each editor spreads one edit over the weights (why GD beats RMSProp/RProp here).

For N random-label edits of validation images (the paper's protocol), each editor at its tuned
default (``workbench/editing/editor_defaults.py``) edits the model; for every successful edit this
prints, averaged over the edits that succeeded and took at least one step (``edited``: their
share; about 1 in 10 random labels already hold and need no step):

* ``|delta|``: L2 norm of the weight change;
* ``top1%``: share of ``|delta|^2`` carried by the 1% of edited weights that moved most;
* ``spread``: participation ratio ``(sum |d|)^2 / (n * sum d^2)``, 1 when every weight moves
  by the same amount (sign-SGD's first step) and near 0 when a few weights carry the change;
* ``flips``: share of the other validation images whose prediction the edit changes
  (the edit's own image excluded).

    OMP_NUM_THREADS=1 python benchmarks/edit_spread.py --edits 50
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from workbench.editing import edit
from workbench.editing.editor_defaults import DEFAULTS
from workbench.evaluation import Evaluator, random_label_edits
from workbench.data import load_for_card as bundle_for_card  # noqa: E402
from workbench.training import load_model as load_checkpoint

DEFAULT_CHECKPOINT = Path("assets/models/fashion-baseline")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="model folder")
    p.add_argument("--layers", default="chain3")
    p.add_argument("--edits", type=int, default=50)
    p.add_argument("--limit", type=int, default=2000, help="validation images to edit and score")
    p.add_argument("--editors", default="gd,scaled_gd,sign,rmsprop,momentum,adam")
    return p


def spread(delta: dict[str, torch.Tensor]) -> tuple[float, float, float]:
    d = torch.cat([v.flatten() for v in delta.values()]).double()
    sq = d * d
    top = sq.topk(max(1, d.numel() // 100)).values.sum()
    pr = float(d.abs().sum() ** 2 / (d.numel() * sq.sum()))
    return float(sq.sum().sqrt()), float(top / sq.sum()), pr


def main(args: argparse.Namespace) -> None:
    model, card = load_checkpoint(args.checkpoint)
    bundle = bundle_for_card(card)
    ev = Evaluator(model, bundle, layers=args.layers, split="val", limit=args.limit)
    edits = random_label_edits(ev, args.edits, seed=0)
    x, y, idx = edits.x, edits.y, edits.indices
    print(f"{args.checkpoint}: {args.edits} random-label edits of {len(ev)} val images, layers {args.layers}, "
          f"each editor at its tuned default")
    print(f"{'editor':<10}{'lr':>9}{'edited':>9}{'|delta|':>10}{'top1%':>8}{'spread':>8}{'flips':>8}")
    for name in args.editors.split(","):
        rows = []
        for i in range(len(y)):
            res = edit(model, x[i], int(y[i]), method=name, layers=args.layers)
            if not res.success or res.steps == 0:
                continue
            preds = ev.preds_for(res)
            others = torch.ones(len(ev), dtype=torch.bool)
            others[int(idx[i])] = False
            flips = float((preds != ev.base_preds)[others].float().mean())
            rows.append((*spread(res.delta), flips))
        if not rows:
            print(f"{name:<10} no successful edit")
            continue
        cols = [statistics.mean(c) for c in zip(*rows)]
        print(f"{name:<10}{DEFAULTS[name]['lr']:>9.3g}{len(rows) / len(y):>8.0%} {cols[0]:>9.3f}"
              f"{cols[1]:>8.1%}{cols[2]:>8.3f}{cols[3]:>8.2%}")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

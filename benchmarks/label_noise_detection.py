"""Which score finds flipped labels? Training dynamics (AUM, mean loss, EL2N) vs cleanlab.

For each noise type, on the first ``--train`` images of Fashion-MNIST's training set (all of it
is the training split here, ``val_size=0``; its test split gives the models' test error):

- ``symmetric``: ``--rate`` of the labels flipped to a uniformly drawn other class;
- ``class-conditional``: ``--rate`` of each of T-shirt/top, pullover, coat and shirt flipped to
  another of those four (``workbench.data.noise.flip_within_classes``).

the same recipe (``--width``: a small ResNet of widths w-2w-4w-8w; ``--epochs``, AdamW at
``--lr`` with a cosine schedule, batches of 128, crop-and-flip augmentation) is trained

1. once on all the images, recording the training dynamics (``workbench.training.dynamics``):
   AUM, mean loss, EL2N at ``--el2n-epoch`` and their rank average (``ensemble``), the scores the
   workbench offers; plus the final model's self-confidence on its own training images;
2. ``--folds`` times on all but one fold, for out-of-sample probabilities: cleanlab's
   self-confidence (``cleanlab.rank.get_label_quality_scores``), ``cleanlab.filter.find_label_issues``
   and the rank average of the dynamics scores with cleanlab's.

Every score is rated on the same examples and labels: AUROC for the true flips
(``workbench.localization.label_errors.auroc``, equal to scikit-learn's ``roc_auc_score``) and the
precision at the true noise rate (the share of true flips among the top-k, k = the number
flipped). Every training is a model folder under ``--runs`` (git-ignored): a rerun skips the
finished ones and resumes an unfinished one. The figures and the command go to ``--json``
(default ``results/label_noise/label_noise_detection.json`` for a run of at least 10,000 images).

    OMP_NUM_THREADS=1 python benchmarks/label_noise_detection.py             # the full run
    OMP_NUM_THREADS=1 python benchmarks/label_noise_detection.py --train 600 --epochs 2 --folds 2 \\
        --width 8 --runs /tmp/lnd --json /tmp/lnd.json                        # a smoke run, seconds
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from workbench.data import DataBundle, load_dataset
from workbench.data.noise import LabelNoise, flip_labels, flip_within_classes
from workbench.localization.label_errors import (DYNAMICS_SCORES, auroc, dynamics_scores, precision_at_rate,
                                                 rank_average, self_confidence)
from workbench.localization.settings import EL2N_EPOCH, MISLABEL_SCORE
from workbench.models.predict import predict_logits
from workbench.training import Recipe, train

NOISE_TYPES = ("symmetric", "class-conditional")
CONFUSABLE = (0, 2, 4, 6)  # Fashion-MNIST: T-shirt/top, pullover, coat, shirt
MIN_TRAIN = 10_000  # the issue's size; smaller runs are for development and write no default results
DEFAULT_JSON = Path("results/label_noise/label_noise_detection.json")
CLEANLAB = "cleanlab self-confidence (k-fold)"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=MIN_TRAIN, help="training images (the first N)")
    p.add_argument("--rate", type=float, default=0.1, help="noise rate (class-conditional: per confusable class)")
    p.add_argument("--noise", default=",".join(NOISE_TYPES), help="comma-separated noise types")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--width", type=int, default=16, help="small ResNet widths w, 2w, 4w, 8w")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--folds", type=int, default=4, help="cross-validation folds for cleanlab")
    p.add_argument("--el2n-epoch", type=int, default=EL2N_EPOCH)
    p.add_argument("--seed", type=int, default=0, help="weights, shuffles, noise draw and folds")
    p.add_argument("--runs", default="runs/label_noise", help="where the trainings are kept (resumable)")
    p.add_argument("--json", default=None, help=f"results file (default {DEFAULT_JSON} when --train >= {MIN_TRAIN})")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="cpu")
    return p


def recipe_for(args: argparse.Namespace, name: str, record: bool) -> Recipe:
    w = args.width
    return Recipe(name=name, arch="small-resnet", arch_kwargs={"widths": [w, 2 * w, 4 * w, 8 * w]},
                  epochs=args.epochs, batch_size=128, lr=args.lr, val_size=0, eval_subset=1000, seed=args.seed,
                  record_dynamics=record).validate()


def draw_noise(kind: str, y: torch.Tensor, args: argparse.Namespace) -> LabelNoise:
    if kind == "symmetric":
        return flip_labels(y, args.rate, 10, seed=args.seed)
    return flip_within_classes(y, args.rate, CONFUSABLE, 10, seed=args.seed)


def run(recipe: Recipe, folder: Path, bundle: DataBundle, x: torch.Tensor, y: torch.Tensor, device: str,
        what: str) -> tuple[torch.nn.Module, float]:
    """Train (or resume, or reuse) one model folder on ``(x, y)``; returns the model and its training seconds."""
    t0 = time.perf_counter()
    res = train(recipe, folder, bundle=dataclasses.replace(bundle, train_x=x, train_y=y), device=device,
                progress=False, command=f"benchmarks/label_noise_detection.py ({what})")
    wall = float(res.card.get("wall_time_s", time.perf_counter() - t0))
    print(f"  {what}: {len(y)} images, {wall:.0f} s of training, test error {res.card.get('test_error') or float('nan'):.3f} "
          f"({folder})", flush=True)
    return res.model.eval(), wall


def one_noise(kind: str, bundle: DataBundle, args: argparse.Namespace) -> dict:
    x, y_true = bundle.train_x[:args.train], bundle.train_y[:args.train]
    noise = draw_noise(kind, y_true, args)
    y, flags = noise.apply(y_true), noise.mask().numpy()
    tag = f"{kind}-n{args.train}-r{args.rate:g}-e{args.epochs}-w{args.width}-lr{args.lr:g}-s{args.seed}"
    root = Path(args.runs) / tag
    root.mkdir(parents=True, exist_ok=True)
    noise.save(root)
    print(f"{kind}: {len(y)} images, {int(flags.sum())} labels flipped ({flags.mean():.1%})", flush=True)
    seconds: dict[str, float] = {}
    model, seconds["dynamics run"] = run(recipe_for(args, f"label-noise-{kind}", True), root / "dynamics-run",
                                         bundle, x, y, args.device, f"{kind}, dynamics run")
    scores = dynamics_scores(root / "dynamics-run", el2n_epoch=args.el2n_epoch)
    probs_in = torch.softmax(predict_logits(model, x, normalize=bundle.normalize, device=args.device), 1).numpy()
    scores["final model self-confidence (in-sample)"] = self_confidence(probs_in, y.numpy())

    folds = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed + 17)) % args.folds
    probs = np.zeros((len(y), 10), dtype=np.float32)
    for k in range(args.folds):
        held, keep = (folds == k).nonzero().flatten(), (folds != k).nonzero().flatten()
        fold_model, seconds[f"fold {k + 1}"] = run(recipe_for(args, f"label-noise-{kind}-fold", False),
                                                   root / f"fold{k + 1}of{args.folds}", bundle, x[keep], y[keep],
                                                   args.device, f"{kind}, fold {k + 1}/{args.folds}")
        logits = predict_logits(fold_model, x[held], normalize=bundle.normalize, device=args.device)
        probs[held.numpy()] = torch.softmax(logits, 1).numpy()
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = y.numpy()
    scores[CLEANLAB] = 1.0 - get_label_quality_scores(labels, probs, method="self_confidence")
    scores["ensemble + cleanlab"] = rank_average({k: scores[k] for k in ("aum", "mean_loss", "el2n", CLEANLAB)})
    issues = find_label_issues(labels, probs)
    unseen = {name: int(np.isnan(s).sum()) for name, s in scores.items() if np.isnan(s).any()}
    if unseen:  # only in tiny runs: an example that no epoch saw (the last partial batch is dropped)
        print(f"  examples without a score, given the median: {unseen}", flush=True)
        scores = {name: np.where(np.isnan(s), np.nanmedian(s), s) for name, s in scores.items()}
    rows = {name: {"auroc": auroc(s, flags), "precision_at_rate": precision_at_rate(s, flags),
                   "workbench": name in DYNAMICS_SCORES} for name, s in scores.items()}
    found = flags[issues]
    return {"images": len(y), "flipped": int(flags.sum()), "noise": noise.summary(), "runs": str(root),
            "training_seconds": seconds, "scores": rows, "unscored": unseen,
            "find_label_issues": {"flagged": int(issues.sum()), "precision": float(found.mean()) if len(found) else None,
                                  "recall": float(issues[flags].mean())}}


def report(results: dict[str, dict]) -> dict:
    """Print the table; returns the summary (best workbench score, the goal)."""
    print(f"\n{'noise':<18} {'score':<42} {'AUROC':>7} {'prec@rate':>10}")
    for kind, r in results.items():
        for name, row in r["scores"].items():
            mark = " *" if row["workbench"] else ""
            print(f"{kind:<18} {name + mark:<42} {row['auroc']:>7.4f} {row['precision_at_rate']:>10.4f}")
        f = r["find_label_issues"]
        print(f"{kind:<18} {'cleanlab find_label_issues (boolean)':<42} {'-':>7} "
              f"{f['precision'] if f['precision'] is not None else float('nan'):>10.4f}  "
              f"flagged {f['flagged']}, recall {f['recall']:.3f}")
    print("(* a score the workbench offers from a model folder's training dynamics)")
    mean = {s: float(np.mean([r["scores"][s]["auroc"] for r in results.values()])) for s in DYNAMICS_SCORES}
    best = max(mean, key=lambda s: mean[s])
    beats = {k: r["scores"][best]["auroc"] > r["scores"][CLEANLAB]["auroc"] for k, r in results.items()}
    print(f"best workbench score by mean AUROC: {best} ({mean[best]:.4f}); beats cleanlab's AUROC on "
          + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in beats.items()))
    if best != MISLABEL_SCORE:
        print(f"note: the workbench sorts by MISLABEL_SCORE = {MISLABEL_SCORE!r} "
              f"(workbench/localization/settings.py); this run's best is {best!r}")
    return {"mean_auroc": mean, "best_workbench_score": best, "beats_cleanlab": beats,
            "mislabel_score_setting": MISLABEL_SCORE}


def main(args: argparse.Namespace, argv: list[str] | None = None) -> dict:
    """Run the benchmark; ``argv`` (default: the command line's) is recorded as the command."""
    kinds = [k.strip() for k in args.noise.split(",") if k.strip()]
    bad = [k for k in kinds if k not in NOISE_TYPES]
    if bad or not kinds:
        raise SystemExit(f"--noise {args.noise!r}: choose from {list(NOISE_TYPES)}")
    if args.folds < 2:
        raise SystemExit("--folds must be at least 2 (out-of-sample probabilities need a held-out fold)")
    bundle = load_dataset("fashion-mnist", args.data_root, val_size=0, seed=args.seed)
    if not 2 * args.folds <= args.train <= len(bundle.train_y):
        raise SystemExit(f"--train must lie in [{2 * args.folds}, {len(bundle.train_y)}]")
    t0 = time.perf_counter()
    results = {kind: one_noise(kind, bundle, args) for kind in kinds}
    summary = report(results)
    argv = sys.argv[1:] if argv is None else argv
    out = {"command": " ".join(["OMP_NUM_THREADS=1 python benchmarks/label_noise_detection.py",
                                *(shlex.quote(a) for a in argv)]),
           "settings": {k: v for k, v in vars(args).items() if k not in ("json", "data_root")},
           "recipe": recipe_for(args, "label-noise", True).to_dict(), "wall_seconds": round(time.perf_counter() - t0),
           "torch_threads": torch.get_num_threads(), "results": results, **summary}
    target = Path(args.json) if args.json else (DEFAULT_JSON if args.train >= MIN_TRAIN else None)
    if target is None:
        print(f"results not written: a development run (--train < {MIN_TRAIN}); pass --json PATH to keep them")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {target}")
    return out


if __name__ == "__main__":
    main(get_args_parser().parse_args())

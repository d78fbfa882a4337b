"""Which score finds the flipped labels? Critical-neuron count vs cleanlab vs the plain loss.

On the training set of a model trained with label noise (``python -m workbench train --recipe
fashion-noisy``, which records which labels it flipped), a seeded subset of at least 1,000
training examples is scored three ways, higher = more likely mislabeled:

- **critical neurons**: minus the number of neurons the greedy search removes before the
  model stops predicting the example's training label (Maini et al. 2023: memorized examples
  need few), ``workbench.localization.critical_neurons``;
- **cleanlab**: ``cleanlab.rank.get_label_quality_scores`` (self-confidence, minus) on
  out-of-sample probabilities from K-fold cross-validated training of the same recipe on the
  whole training set (short), plus the boolean ``cleanlab.filter.find_label_issues``;
- **loss**: the trained model's cross-entropy on the example's training label.

It prints one line per method: AUROC for the true noise flags, and precision at the true noise
rate (the share of truly flipped labels among the top ``k`` scores, ``k`` = the number flipped).

    OMP_NUM_THREADS=1 python benchmarks/critical_neuron_detection.py --model runs/fashion-noisy
    python benchmarks/critical_neuron_detection.py --model runs/fashion-noisy --repeats 3 --layers chain1,chain2,chain3,chain4
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from workbench.localization import critical_neurons
from workbench.training import Recipe, load_model, train
from workbench.training.trainset import TrainingSet, training_set

MIN_SUBSET = 1000


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="runs/fashion-noisy", help="model folder trained with --label-noise")
    p.add_argument("--subset", type=int, default=MIN_SUBSET, help=f"training examples scored (>= {MIN_SUBSET})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="critical-neuron search repeats per example")
    p.add_argument("--max-neurons", type=int, default=40, help="cap of one search (count = cap if reached)")
    p.add_argument("--layers", default=None,
                   help="comma-separated module paths to search (default: every conv/linear layer but the head)")
    p.add_argument("--folds", type=int, default=3, help="cross-validation folds for cleanlab")
    p.add_argument("--fold-epochs", type=int, default=None, help="epochs per fold model (default: the recipe's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the figures (and per-example scores) here")
    return p


def precision_at_k(score: np.ndarray, flags: np.ndarray) -> float:
    """Share of truly flipped labels among the ``k = flags.sum()`` highest scores (ties: stable order)."""
    k = int(flags.sum())
    top = np.argsort(-score, kind="stable")[:k]
    return float(flags[top].mean()) if k else float("nan")


def loss_scores(model: torch.nn.Module, ts: TrainingSet, pick: torch.Tensor, device: str) -> np.ndarray:
    with torch.no_grad():
        logits = torch.cat([model(ts.normalize(ts.x[pick[i:i + 512]]).to(device)).cpu()
                            for i in range(0, len(pick), 512)])
    return F.cross_entropy(logits, ts.y[pick], reduction="none").numpy()


def critical_scores(model: torch.nn.Module, ts: TrainingSet, pick: torch.Tensor, args: argparse.Namespace
                    ) -> tuple[np.ndarray, list[dict]]:
    counts, details = [], []
    layers = _layers(model, args.layers)
    for j, i in enumerate(pick.tolist()):
        r = critical_neurons(model, ts.normalize(ts.x[i:i + 1])[0].to(args.device), int(ts.y[i]),
                             reference=(ts.x, ts.y), normalize=ts.normalize, seed=args.seed + i,
                             repeats=args.repeats, max_neurons=args.max_neurons, cost_size=0, layers=layers)
        counts.append(r.count)
        details.append({"index": i, "count": r.count, "stopped": [rep.stopped for rep in r.repeats],
                        "layers": {k: v for k, v in r.layer_counts.items() if v}})
        if (j + 1) % 100 == 0:
            print(f"  critical neurons: {j + 1}/{len(pick)}", flush=True)
    return -np.asarray(counts, dtype=float), details


def _layers(model: torch.nn.Module, spec: str | None) -> list[str] | None:
    """``--layers chain1,chain2``: every conv/linear module under those paths (None: the default)."""
    if not spec:
        return None
    roots = [p.strip() for p in spec.split(",") if p.strip()]
    found = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
             and any(n == r or n.startswith(r + ".") for r in roots)]
    if not found:
        raise SystemExit(f"--layers {spec}: no conv or linear layer under those module paths")
    return found


def out_of_sample_probs(folder: Path, ts: TrainingSet, args: argparse.Namespace, work: Path) -> np.ndarray:
    """``(N, classes)`` probabilities, each from a model that did not train on that example."""
    card = json.loads((folder / "card.json").read_text())
    fields = {f.name for f in dataclasses.fields(Recipe)}
    base = Recipe(**{k: v for k, v in card["recipe"].items() if k in fields})
    recipe = base.override(name=f"{base.name}-fold", train_subset=None, label_noise=0.0, keep_epochs=False,
                           grad_accounting=False, eval_subset=200,
                           epochs=args.fold_epochs or base.epochs)
    n = len(ts.y)
    folds = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed + 17)) % args.folds
    probs = np.zeros((n, ts.bundle.num_classes), dtype=np.float32)
    for k in range(args.folds):
        held = (folds == k).nonzero().flatten()
        keep = (folds != k).nonzero().flatten()
        bundle = dataclasses.replace(ts.bundle, train_x=ts.x[keep], train_y=ts.y[keep])
        res = train(recipe, work / f"fold{k}", bundle=bundle, device=args.device, progress=False, overwrite=True,
                    command="benchmarks/critical_neuron_detection.py (cleanlab fold)")
        model = res.model.eval()
        with torch.no_grad():
            logits = torch.cat([model(ts.normalize(ts.x[held[i:i + 512]]).to(args.device)).cpu()
                                for i in range(0, len(held), 512)])
        probs[held.numpy()] = torch.softmax(logits.float(), 1).numpy()
        print(f"  cleanlab fold {k + 1}/{args.folds}: trained on {len(keep)}, predicted {len(held)}", flush=True)
    return probs


def main(args: argparse.Namespace) -> dict:
    folder = Path(args.model)
    if not (folder / "card.json").exists():
        raise SystemExit(f"{folder} is not a model folder; train one first: "
                         "python -m workbench train --recipe fashion-noisy --out runs/fashion-noisy")
    model, _ = load_model(folder, device=args.device)
    ts = training_set(folder)
    if ts.noise is None:
        raise SystemExit(f"{folder} was trained without label noise; there is nothing to detect")
    n = len(ts.y)
    if args.subset < MIN_SUBSET or args.subset > n:
        raise SystemExit(f"--subset must lie in [{MIN_SUBSET}, {n}] (the training set has {n} examples)")
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))[:args.subset].sort().values
    flags = ts.noisy[pick].numpy()
    print(f"{folder}: {n} training examples, {int(ts.noisy.sum())} flipped; scoring {len(pick)} "
          f"(seed {args.seed}), {int(flags.sum())} of them flipped ({flags.mean():.1%})", flush=True)

    scores: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    scores["loss"] = loss_scores(model, ts, pick, args.device)
    seconds["loss"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        probs = out_of_sample_probs(folder, ts, args, Path(tmp))
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = ts.y.numpy()
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    issues = find_label_issues(labels, probs)
    scores["cleanlab self-confidence (out-of-sample)"] = -quality[pick.numpy()]
    seconds["cleanlab self-confidence (out-of-sample)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scores["critical neurons (fewer = noisy)"], details = critical_scores(model, ts, pick, args)
    seconds["critical neurons (fewer = noisy)"] = time.perf_counter() - t0

    print(f"{'method':<42} {'AUROC':>7} {'prec@rate':>10} {'seconds':>9}")
    out: dict = {"model": str(folder), "subset": len(pick), "flipped": int(flags.sum()), "seed": args.seed,
                 "repeats": args.repeats, "layers": args.layers, "max_neurons": args.max_neurons, "folds": args.folds, "methods": {}}
    for name, s in scores.items():
        auroc, prec = float(roc_auc_score(flags, s)), precision_at_k(s, flags)
        out["methods"][name] = {"auroc": auroc, "precision_at_rate": prec, "seconds": seconds[name]}
        print(f"{name:<42} {auroc:>7.3f} {prec:>10.3f} {seconds[name]:>9.1f}")
    flagged = issues[pick.numpy()]
    hit = flags[flagged]
    rec = float(flagged[flags].mean()) if flags.any() else float("nan")
    print(f"{'cleanlab find_label_issues (boolean)':<42} {'-':>7} {hit.mean() if len(hit) else float('nan'):>10.3f} "
          f"{'':>9} flagged {int(flagged.sum())}, recall {rec:.3f}")
    out["find_label_issues"] = {"flagged": int(flagged.sum()), "precision": float(hit.mean()) if len(hit) else None,
                                "recall": rec}
    counts = -scores["critical neurons (fewer = noisy)"]
    for part, f in (("noisy", flags), ("clean", ~flags)):
        c = counts[f]
        print(f"critical-neuron count, {part}: median {np.median(c):.1f}, mean {c.mean():.2f}, "
              f"share < 10: {(c < 10).mean():.1%}")
    if args.json:
        out["examples"] = [{**d, "noisy": bool(f), "loss": float(lo)} for d, f, lo in zip(details, flags, scores["loss"])]
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""The first three findings of Maini et al. (ICML 2023) on one noisy run, each as a markdown table.

On a model folder trained with label noise, per-epoch snapshots and gradient accounting
(``python -m workbench train --recipe fashion-noisy-r9``; default: the shipped
``results/memorization/noisy-r9-run``):

- ``accounting``: per layer, the noisy examples' share of the gradient norm,
  ``noisy / (clean + noisy)``, and the cosine of the clean and noisy gradients, at a few epochs,
  read from the run's ``grad_accounting.jsonl`` (no new compute);
- ``rewind``: each layer of the final model set back to an earlier snapshot; accuracy on the
  flipped training examples (against their noisy and their true labels), on clean training
  examples and on the test set;
- ``retrain``: each layer re-initialised and retrained on the clean examples only, the rest
  frozen (``workbench.localization.retrain_layer``: SGD, one-cycle to ``--lr``); the same accuracies;
- ``critical``: the greedy critical-neuron search (``workbench.localization.critical_neurons``)
  on the training label of flipped and of clean examples: the count's median, mean, the share
  under 10, the accuracy left on other training data after the removal, and the layers the
  removed channels sit in;
- ``tables``: print every table from the JSON written so far.

A *layer* is a conv or linear module together with its BatchNorm: the parent module of each
conv/linear (``conv1``, ``res1.body.0``, ..., ``head``). The examples are seeded subsets: flipped
ones drawn uniformly, clean ones stratified by class. Each layer (rewind, retrain) and each
chunk of examples (critical) is written as its own JSON under ``--out`` (default
``<run>/findings/``) as soon as it is done, and a rerun skips what is there: a stopped run loses
at most one unit. Each step ends by writing its summary JSON (with the command) and printing its
table.

    OMP_NUM_THREADS=1 python benchmarks/memorization_findings.py accounting
    OMP_NUM_THREADS=1 python benchmarks/memorization_findings.py rewind --noisy 6000 --clean 6000 --rewind-epochs 0,10
    OMP_NUM_THREADS=1 python benchmarks/memorization_findings.py retrain --noisy 6000 --clean 6000 --retrain-epochs 4
    OMP_NUM_THREADS=1 python benchmarks/memorization_findings.py critical --noisy 100 --clean 100 --repeats 3
    python benchmarks/memorization_findings.py tables
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from workbench.localization import critical_neurons, retrain_layer, rewind_layer
from workbench.localization.findings import BENCHMARK_STEPS, FEW, finding_table, read_findings
from workbench.localization.label_errors import auroc
from workbench.models.predict import predict_logits
from workbench.training import load_model
from workbench.training.grad_accounting import read_accounting
from workbench.training.snapshots import load_snapshot
from workbench.training.trainset import TrainingSet, training_set

RUN = Path("results/memorization/noisy-r9-run")
ACCOUNTING_EPOCHS = "1,3,11,15,19,25,31,49"
CHUNK = 10  # critical-neuron examples per JSON file


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=BENCHMARK_STEPS + ("tables",))
    p.add_argument("--run", default=str(RUN), help="model folder trained with label noise")
    p.add_argument("--out", default=None, help="where the JSON goes (default: <run>/findings)")
    p.add_argument("--noisy", type=int, default=6000, help="flipped training examples (all if more)")
    p.add_argument("--clean", type=int, default=6000, help="clean training examples, stratified by class")
    p.add_argument("--test", type=int, default=None, help="test images (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accounting-epochs", default=ACCOUNTING_EPOCHS, help="epochs shown by `accounting`")
    p.add_argument("--rewind-epochs", default="0,10", help="snapshots each layer is rewound to")
    p.add_argument("--layers", default=None,
                   help="comma-separated layers for rewind/retrain (default: every conv/linear with its BatchNorm)")
    p.add_argument("--retrain-epochs", type=int, default=4, help="epochs of retraining one layer")
    p.add_argument("--lr", type=float, default=0.1, help="peak lr of the retraining's one-cycle schedule")
    p.add_argument("--repeats", type=int, default=3, help="critical-neuron searches per example")
    p.add_argument("--max-neurons", type=int, default=100, help="cap of one search (the count is then a lower bound)")
    p.add_argument("--cost-size", type=int, default=256, help="training images the removal's accuracy is measured on")
    p.add_argument("--json", default=None, help="the summary's file name under --out (default: <step>.json)")
    p.add_argument("--device", default="cpu")
    return p


def pick_examples(noisy: torch.Tensor, labels: torch.Tensor, n_noisy: int, n_clean: int, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``(flipped positions, clean positions)``, each sorted.

    Flipped ones are drawn uniformly (all of them when ``n_noisy`` is at least their number);
    clean ones stratified by ``labels`` (the true classes): ``n_clean // classes`` from each
    class, the remainder one each from the first classes (fewer where a class has fewer).
    """
    if n_noisy < 0 or n_clean < 0:
        raise SystemExit("--noisy and --clean must be >= 0")
    g = torch.Generator().manual_seed(seed)
    flipped = noisy.nonzero().flatten()
    flipped = flipped[torch.randperm(len(flipped), generator=g)[:n_noisy]].sort().values
    clean_pos = (~noisy).nonzero().flatten()
    classes = labels[clean_pos].unique().tolist()
    take = []
    for j, c in enumerate(classes):
        pool = clean_pos[labels[clean_pos] == c]
        k = n_clean // len(classes) + (1 if j < n_clean % len(classes) else 0)
        take.append(pool[torch.randperm(len(pool), generator=g)[:k]])
    clean = torch.cat(take).sort().values if take else clean_pos[:0]
    return flipped, clean


def layer_units(model: nn.Module) -> list[str]:
    """The parent module of each conv/linear module (conv + BatchNorm + ReLU), in module order."""
    out: list[str] = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            unit = name.rsplit(".", 1)[0] if "." in name else name
            if unit not in out:
                out.append(unit)
    return out


def chosen_layers(model: nn.Module, spec: str | None) -> list[str]:
    """``--layers`` (default: :func:`layer_units`); an unknown one is refused, naming the choices."""
    units = layer_units(model)
    if not spec:
        return units
    want = [w.strip() for w in spec.split(",") if w.strip()]
    bad = [w for w in want if w not in units]
    if bad or not want:
        raise SystemExit(f"--layers {spec!r}: unknown {bad}; choose from {units}")
    return want


def accuracies(model: nn.Module, ts: TrainingSet, flipped: torch.Tensor, clean: torch.Tensor,
               test: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """Accuracy on the flipped examples (noisy and true label), the clean ones and the test images."""
    def pred(x: torch.Tensor) -> torch.Tensor:
        return predict_logits(model, x, normalize=ts.normalize, batch_size=500).argmax(1)

    pf, pc, pt = pred(ts.x[flipped]), pred(ts.x[clean]), pred(test[0])
    return {"noisy_label": float((pf == ts.y[flipped]).float().mean()),
            "noisy_true_label": float((pf == ts.y_true[flipped]).float().mean()),
            "clean": float((pc == ts.y[clean]).float().mean()), "test": float((pt == test[1]).float().mean())}


def _resumable(path: Path, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``path``'s JSON when it exists, else ``fn()`` written there (atomically) and returned."""
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    row = {**fn(), "seconds": round(time.perf_counter() - t0, 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(row) + "\n")
    tmp.replace(path)
    print(f"  {path.name}: {row['seconds']} s", flush=True)
    return row


def accounting(args: argparse.Namespace) -> dict[str, Any]:
    """Per-layer noisy share and cosine at ``--accounting-epochs`` (the nearest recorded epoch)."""
    run = Path(args.run)
    recs = {r["epoch"]: r for r in read_accounting(run)}
    metrics = {}
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            if line.strip():
                m = json.loads(line)
                metrics[int(m["epoch"])] = m
    want = [int(e) for e in args.accounting_epochs.split(",") if e.strip()]
    epochs = sorted({min(recs, key=lambda r: (abs(r - e), r)) for e in want})
    layers = list(recs[epochs[0]]["layers"])
    model, _ = load_model(run)
    weights = {n: n.rsplit(".", 1)[0] for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    rows: dict[str, Any] = {}
    for e in epochs:
        ls = recs[e]["layers"]
        c, n = sum(v["clean"] for v in ls.values()), sum(v["noisy"] for v in ls.values())
        rows[str(e)] = {"layers": {k: {"noisy_share": v["noisy"] / (v["clean"] + v["noisy"]), "cosine": v["cosine"],
                                       "params": v["params"]} for k, v in ls.items()},
                        "noisy_share_all": n / (c + n),
                        "layers_noisy_above_clean": sum(v["noisy"] > v["clean"] for v in ls.values()),
                        "fit_noisy": metrics.get(e, {}).get("fit_noisy")}
    # over every recorded epoch, as the paper averages: the mean clean and noisy values, their share
    mean = {k: {"noisy_share": sum(r["layers"][k]["noisy"] for r in recs.values()) / sum(
        r["layers"][k]["noisy"] + r["layers"][k]["clean"] for r in recs.values()),
        "cosine": statistics.fmean(r["layers"][k]["cosine"] for r in recs.values())} for k in layers}
    tot = {p: sum(v[p] for r in recs.values() for v in r["layers"].values()) for p in ("clean", "noisy")}
    return {"epochs": epochs, "recorded_epochs": sorted(recs), "mean_over_epochs": mean,
            "mean_noisy_share_all": tot["noisy"] / (tot["clean"] + tot["noisy"]), "layers": layers,
            "weight_layers": {k: v for k, v in weights.items() if k in layers},
            "by_epoch": rows}


def _setup(args: argparse.Namespace) -> tuple[nn.Module, TrainingSet, torch.Tensor, torch.Tensor, tuple]:
    model, _ = load_model(args.run, device=args.device)
    ts = training_set(args.run)
    if ts.noise is None:
        raise SystemExit(f"{args.run} was trained without label noise: there are no flipped examples to study")
    flipped, clean = pick_examples(ts.noisy, ts.y_true, args.noisy, args.clean, args.seed)
    tx, ty = ts.bundle.test_x, ts.bundle.test_y
    n = len(ty) if args.test is None else min(args.test, len(ty))
    return model, ts, flipped, clean, (tx[:n], ty[:n])


def _final(model: nn.Module, ts: TrainingSet, flipped: torch.Tensor, clean: torch.Tensor, test: tuple,
           out: Path, tag: str) -> dict[str, Any]:
    """The unchanged model's accuracies (shared by ``rewind`` and ``retrain`` on the same examples)."""
    return _resumable(out / "final" / f"{tag}.json", lambda: accuracies(model, ts, flipped, clean, test))


def rewind(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    model, ts, flipped, clean, test = _setup(args)
    layers = chosen_layers(model, args.layers)
    epochs = [int(e) for e in args.rewind_epochs.split(",") if e.strip()]
    states = {e: load_snapshot(args.run, e) for e in epochs}
    tag = f"n{len(flipped)}-c{len(clean)}-t{len(test[1])}-s{args.seed}"
    rows = [{"layer": None, "epoch": None, **_final(model, ts, flipped, clean, test, out, tag)}]
    for layer in layers:
        for e in epochs:
            rows.append({"layer": layer, "epoch": e, **_resumable(
                out / "rewind" / tag / f"{layer}@{e}.json",
                lambda: accuracies(rewind_layer(model, layer, states[e]), ts, flipped, clean, test))})
    return {"examples": {"noisy": len(flipped), "clean": len(clean), "test": len(test[1])}, "epochs": epochs,
            "rows": rows, "unit_seconds": sum(r["seconds"] for r in rows)}


def retrain(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    model, ts, flipped, clean, test = _setup(args)
    layers = chosen_layers(model, args.layers)
    tag = f"n{len(flipped)}-c{len(clean)}-t{len(test[1])}-s{args.seed}-e{args.retrain_epochs}-lr{args.lr:g}"
    rows = [{"layer": None, **_final(model, ts, flipped, clean, test, out, tag.split("-e")[0])}]
    for layer in layers:
        def one() -> dict[str, Any]:
            m = retrain_layer(model, layer, ts.x[clean], ts.y[clean], epochs=args.retrain_epochs, peak_lr=args.lr,
                              seed=args.seed, normalize=ts.normalize)
            return accuracies(m, ts, flipped, clean, test)
        rows.append({"layer": layer, **_resumable(out / "retrain" / tag / f"{layer}.json", one)})
    return {"examples": {"noisy": len(flipped), "clean": len(clean), "test": len(test[1]),
                         "retrained_on": "the clean examples"}, "epochs": args.retrain_epochs, "peak_lr": args.lr,
            "rows": rows, "unit_seconds": sum(r["seconds"] for r in rows)}


def critical(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    model, ts, flipped, clean, _ = _setup(args)
    todo = [(int(i), True) for i in flipped] + [(int(i), False) for i in clean]
    tag = f"n{len(flipped)}-c{len(clean)}-s{args.seed}-r{args.repeats}-m{args.max_neurons}-k{args.cost_size}"
    examples: list[dict[str, Any]] = []
    seconds = 0.0
    sizes: dict[str, int] = {}
    for start in range(0, len(todo), CHUNK):
        def chunk(part=todo[start:start + CHUNK]) -> dict[str, Any]:
            got = []
            for i, is_noisy in part:
                r = critical_neurons(model, ts.normalize(ts.x[i:i + 1])[0], int(ts.y[i]), reference=(ts.x, ts.y),
                                     normalize=ts.normalize, seed=args.seed + i, repeats=args.repeats,
                                     max_neurons=args.max_neurons, cost_size=args.cost_size)
                got.append({"index": i, "noisy": is_noisy, "count": r.count, "counts": list(r.counts),
                            "stopped": [rep.stopped for rep in r.repeats], "accuracy_before": r.accuracy_before,
                            "accuracy_after": r.accuracy_after,
                            "layers": {k: v for k, v in r.layer_counts.items() if v}})
            return {"examples": got, "layer_sizes": dict(r.layer_sizes)}
        part = _resumable(out / "critical" / tag / f"chunk_{start // CHUNK:04d}.json", chunk)
        sizes, seconds = part["layer_sizes"], seconds + part["seconds"]
        examples += part["examples"]
    return {"examples_picked": {"noisy": len(flipped), "clean": len(clean)},
            "settings": {"repeats": args.repeats, "max_neurons": args.max_neurons, "cost_size": args.cost_size},
            "layer_sizes": sizes, "summary": critical_summary(examples, sizes), "examples": examples,
            "unit_seconds": seconds}


def critical_summary(examples: list[dict[str, Any]], sizes: dict[str, int]) -> dict[str, Any]:
    """Per part (noisy, clean): counts' median, mean, share under :data:`FEW`, capped searches,
    accuracy after removal, and each layer's share of the removed neurons. Examples the model
    did not predict with their training label (count 0, ``not_predicted``) are left out and counted."""
    out: dict[str, Any] = {}
    for part, flag in (("noisy", True), ("clean", False)):
        rows = [e for e in examples if e["noisy"] == flag]
        ok = [e for e in rows if "not_predicted" not in e["stopped"]]
        counts = [e["count"] for e in ok]
        per_layer = {k: sum(e["layers"].get(k, 0.0) for e in ok) for k in sizes}
        total = sum(per_layer.values())
        after = [e["accuracy_after"] for e in ok if e["accuracy_after"] is not None]
        before = [e["accuracy_before"] for e in ok if e["accuracy_before"] is not None]
        out[part] = {"examples": len(rows), "not_predicted": len(rows) - len(ok),
                     "median": statistics.median(counts) if counts else None,
                     "mean": statistics.fmean(counts) if counts else None,
                     "share_under_10": sum(c < FEW for c in counts) / len(counts) if counts else None,
                     "capped_searches": sum(s in ("max_neurons", "exhausted") for e in ok for s in e["stopped"]),
                     "accuracy_before": statistics.fmean(before) if before else None,
                     "accuracy_after": statistics.fmean(after) if after else None,
                     "layer_share": {k: v / total if total else 0.0 for k, v in per_layer.items()}}
    searched = [e for e in examples if "not_predicted" not in e["stopped"]]
    flags = [e["noisy"] for e in searched]
    # the count as a detector of the flipped labels (fewer = more likely flipped)
    out["auroc_fewer_is_noisy"] = auroc([-e["count"] for e in searched], flags) if 0 < sum(flags) < len(flags) else None
    return out


def main(args: argparse.Namespace, argv: list[str] | None = None) -> dict[str, Any] | None:
    """Run one step (or print every table); ``argv`` (default: the command line's) is recorded."""
    run = Path(args.run)
    if not (run / "card.json").exists():
        raise SystemExit(f"{run} is not a model folder: train one with "
                         "`python -m workbench train --recipe fashion-noisy-r9 --out runs/noisy-r9`")
    out = Path(args.out) if args.out else run / "findings"
    if args.step == "tables":
        for res in read_findings(out):
            took = f" ({res['wall_seconds']} s)" if "wall_seconds" in res else ""
            print(f"## {res['step']}\n\n`{res['command']}`{took}\n\n{finding_table(res)}")
        return None
    argv = sys.argv[1:] if argv is None else argv
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    res = accounting(args) if args.step == "accounting" else {"rewind": rewind, "retrain": retrain,
                                                               "critical": critical}[args.step](args, out)
    res = {"command": " ".join(["OMP_NUM_THREADS=1 python benchmarks/memorization_findings.py",
                                *(shlex.quote(a) for a in argv)]),
           "step": args.step, "run": str(run), "seed": args.seed, "torch_threads": torch.get_num_threads(), **res}
    # the units' own times add up to the compute (a resumed run's wall time would count only its rest)
    res["wall_seconds"] = round(res.pop("unit_seconds", time.perf_counter() - t0), 1)
    out.mkdir(parents=True, exist_ok=True)
    name = args.json or f"{args.step}.json"
    if Path(name).name != name or not name.endswith(".json"):
        raise SystemExit(f"--json {name!r}: give a file name ending in .json; it is written under {out}")
    (out / name).write_text(json.dumps(res, indent=1) + "\n")
    print(finding_table(res))
    return res


if __name__ == "__main__":
    main(get_args_parser().parse_args())

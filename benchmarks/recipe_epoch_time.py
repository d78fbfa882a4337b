"""Estimate one training epoch of a recipe from a few timed steps (no folder written).

Times ``--steps`` training steps (forward with the recipe's dropout, cross-entropy, backward,
the recipe's optimizer step) after ``--warmup`` untimed ones, on the recipe's batch size and
real training images, and the evaluation the loop runs after each epoch (the test set and the
noisy examples, in eval mode) on ``--eval-images`` images. Prints the median step, the eval
rate, and the estimate ``steps_per_epoch * step + eval images * per-image eval`` with CPU time
(``time.process_time``: unaffected by other processes on a shared machine, one thread) and wall.

    OMP_NUM_THREADS=1 python benchmarks/recipe_epoch_time.py --recipe fashion-noisy-r9-etd --steps 4
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from workbench.data import load_dataset
from workbench.models.dropout import example_indices
from workbench.training import get_recipe
from workbench.training.loop import build_for_recipe
from workbench.training.schedule import make_optimizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="fashion-noisy-r9-etd")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--eval-images", type=int, default=2048)
    args = ap.parse_args()
    r = get_recipe(args.recipe).validate()
    bundle = load_dataset(r.dataset, r.data_root, val_size=r.val_size, seed=r.seed)
    model = build_for_recipe(r, bundle)
    opt = make_optimizer(r, [{"params": list(model.parameters()), "weight_decay": r.weight_decay}])
    n_train = len(bundle.train_x) if not r.train_subset else min(r.train_subset, len(bundle.train_x))
    steps_per_epoch = max(1, n_train // r.batch_size)
    cpu, wall = [], []
    model.train()
    for i in range(args.warmup + args.steps):
        idx = torch.randint(0, n_train, (r.batch_size,))
        x, y = bundle.normalize(bundle.train_x[idx]), bundle.train_y[idx]
        c0, w0 = time.process_time(), time.perf_counter()
        with example_indices(model, idx):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= args.warmup:
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    model.eval()
    x = bundle.normalize(bundle.test_x[:args.eval_images])
    c0, w0 = time.process_time(), time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), 512):
            model(x[i:i + 512])
    ev_cpu, ev_wall = (time.process_time() - c0) / len(x), (time.perf_counter() - w0) / len(x)
    n_eval = len(bundle.test_x) + int(round(r.label_noise * n_train))
    step_cpu, step_wall = statistics.median(cpu), statistics.median(wall)
    print(f"{args.recipe}: threads {torch.get_num_threads()}, batch {r.batch_size}, {steps_per_epoch} steps/epoch, "
          f"step {step_cpu:.2f} s CPU ({step_wall:.2f} s wall), eval {ev_cpu * 1e3:.2f} ms/image CPU")
    est_cpu = steps_per_epoch * step_cpu + n_eval * ev_cpu
    est_wall = steps_per_epoch * step_wall + n_eval * ev_wall
    print(f"estimated epoch: {est_cpu / 60:.1f} min CPU ({est_wall / 60:.1f} min wall), "
          f"{r.epochs} epochs: {r.epochs * est_cpu / 3600:.1f} h CPU")


if __name__ == "__main__":
    main()

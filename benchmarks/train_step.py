"""Benchmark: one training step, baseline vs Editable Training (second and first order).

All three variants train their own copy of the same model on the same batch with the same
optimizer (AdamW, gradient clipping as in the recipe); a step is zero_grad + objective +
backward + clip + optimizer step. The editable variants use the recipe's editor (group, k,
lr, beta, edits per batch), and the same step indices, hence the same edits. The variants
run interleaved (baseline, second order, first order, repeat) so that background load hits
them alike; the figure is the median over ``--steps`` steps after ``--warmup``.

An editable step's cost depends on how many editor steps the edits take (a failed edit takes
all k); the table prints the mean. The last two lines are ``second-order: <ratio>x`` and
``first-order: <ratio>x`` (time of an editable step / time of a baseline step).

    OMP_NUM_THREADS=1 python benchmarks/train_step.py --clock cpu          # shared CPU machine
    OMP_NUM_THREADS=1 python benchmarks/train_step.py --clock cpu --editor-lr 1e-5   # edits fail: k steps
    python benchmarks/train_step.py --device cuda                           # GPU (wall clock)
    python benchmarks/train_step.py --device cuda --cuda-options            # bf16 / channels_last on a GPU

The recipes keep ``amp`` and ``channels_last`` off until ``--cuda-options`` has shown them to
help on a GPU; they are recipe options (``--amp``, ``--channels-last``) for trying.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from workbench.data import load_dataset
from workbench.training import CrossEntropyObjective, EditableObjective, get_recipe, load_model
from workbench.training.loop import build_for_recipe

DEFAULT_CHECKPOINT = Path("assets/models/fashion-baseline")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = str(DEFAULT_CHECKPOINT) if (DEFAULT_CHECKPOINT / "model.safetensors").exists() else None
    p.add_argument("--checkpoint", default=default,
                   help="model folder to start from (default: the shipped baseline if present, else a fresh "
                        "default model)")
    p.add_argument("--recipe", default="fashion-editable", help="recipe giving the editor settings")
    p.add_argument("--batch-size", type=int, default=None, help="default: the recipe's")
    p.add_argument("--editor-lr", type=float, default=None,
                   help="default: the recipe's; a small one makes edits fail, i.e. take all k steps")
    p.add_argument("--steps", type=int, default=15, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    p.add_argument("--device", default="cpu")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: perf_counter; cpu: this process's CPU time (process_time), steadier on a shared "
                        "machine with OMP_NUM_THREADS=1; CPU only")
    p.add_argument("--cuda-options", action="store_true",
                   help="instead: baseline and second-order steps with and without bf16 autocast and "
                        "channels_last (CUDA only), and each option's speed-up over fp32 / NCHW")
    return p


def timed_step(model: nn.Module, objective, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               step: int, clip: float | None, extra: list[torch.Tensor], clock=time.perf_counter
               ) -> tuple[float, dict[str, float]]:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    t0 = clock()
    opt.zero_grad(set_to_none=True)
    loss, logs = objective(model, x, y, step)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if extra:
            torch.nn.utils.clip_grad_norm_(extra, clip)
    opt.step()
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    return clock() - t0, logs


def _variants(recipe, cuda_options: bool) -> list[tuple[str, Any, Any]]:
    """``(name, recipe of the variant, objective)``; the recipe carries its amp/channels_last."""
    if not cuda_options:
        return [("baseline", recipe, CrossEntropyObjective(amp=recipe.amp)),
                ("second-order", recipe, EditableObjective.from_recipe(recipe.override(first_order=False))),
                ("first-order", recipe, EditableObjective.from_recipe(recipe.override(first_order=True)))]
    out = []
    for amp in (False, True):
        for cl in (False, True):
            r = recipe.override(amp=amp, channels_last=cl, first_order=False)
            tag = ("bf16" if amp else "fp32") + ("+channels_last" if cl else "")
            out.append((f"baseline {tag}", r, CrossEntropyObjective(amp=amp)))
            out.append((f"second-order {tag}", r, EditableObjective.from_recipe(r)))
    return out


def main(args: argparse.Namespace) -> None:
    recipe = get_recipe(args.recipe).override(init_from=None)
    if args.batch_size:
        recipe = recipe.override(batch_size=args.batch_size)
    if args.editor_lr:
        recipe = recipe.override(editor_lr=args.editor_lr)
    device = torch.device(args.device)
    if args.clock == "cpu" and device.type != "cpu":
        raise ValueError("--clock cpu measures host CPU time; use --clock wall on a GPU")
    if args.cuda_options and device.type != "cuda":
        raise ValueError("--cuda-options compares bf16 autocast and channels_last, which act on CUDA only; "
                         "run it with --device cuda on a GPU machine")
    bundle = load_dataset(recipe.dataset, recipe.data_root, val_size=recipe.val_size, seed=recipe.seed)
    if args.checkpoint:
        base_model, _ = load_model(args.checkpoint)
    else:
        torch.manual_seed(0)
        base_model = build_for_recipe(recipe, bundle)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    x0 = bundle.normalize(bundle.train_x[:recipe.batch_size]).to(device)
    y = bundle.train_y[:recipe.batch_size].to(device)
    variants = _variants(recipe, args.cuda_options)
    runs = {}
    for name, r, obj in variants:
        channels_last = r.channels_last and device.type == "cuda"  # as the training loop does
        x = x0.contiguous(memory_format=torch.channels_last) if channels_last else x0
        model = copy.deepcopy(base_model).to(device).train()
        if channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if isinstance(obj, nn.Module):
            obj.to(device)
        extra = list(obj.extra_parameters().values())
        groups = [{"params": list(model.parameters()), "weight_decay": recipe.weight_decay}]
        if extra:
            groups.append({"params": extra, "weight_decay": 0.0})
        runs[name] = (model, obj, torch.optim.AdamW(groups, lr=recipe.lr), extra, x)
    times: dict[str, list[float]] = {n: [] for n in runs}
    logs: dict[str, list[dict[str, float]]] = {n: [] for n in runs}
    for step in range(args.warmup + args.steps):
        for name, (model, obj, opt, extra, x) in runs.items():
            dt, lg = timed_step(model, obj, opt, x, y, step, recipe.grad_clip, extra, clock)
            if step >= args.warmup:
                times[name].append(dt)
                logs[name].append(lg)
    med = {n: statistics.median(t) for n, t in times.items()}
    ref = "baseline" if not args.cuda_options else "baseline fp32"
    print(f"model: {args.checkpoint or 'fresh ' + recipe.arch}, batch {recipe.batch_size}, editor {recipe.editor} "
          f"on {recipe.edit_layers}, k={recipe.edit_steps}, editor lr {recipe.editor_lr:g}, "
          f"{recipe.edits_per_batch} edit(s)/batch, torch threads {torch.get_num_threads()}, device {device}, "
          f"{args.clock} clock, median of {args.steps} steps after {args.warmup} warm-up")
    width = max(len(n) for n in runs) + 2
    print(f"{'variant':<{width}}{'median s/step':>14}{'ratio':>8}{'editor steps':>14}{'edit success':>14}")
    for name in runs:
        steps = [lg.get("edit_steps", float("nan")) for lg in logs[name]]
        succ = [lg.get("edit_success", float("nan")) for lg in logs[name]]
        print(f"{name:<{width}}{med[name]:>14.4f}{med[name] / med[ref]:>7.2f}x"
              f"{statistics.mean(steps):>14.2f}{statistics.mean(succ):>14.2f}")
    if args.cuda_options:  # speed-up of each option over fp32 / NCHW, per objective
        for kind in ("baseline", "second-order"):
            base = med[f"{kind} fp32"]
            for tag in ("bf16", "fp32+channels_last", "bf16+channels_last"):
                print(f"{kind} {tag} speed-up: {base / med[f'{kind} {tag}']:.2f}x")
        return
    print(f"second-order: {med['second-order'] / med['baseline']:.2f}x")
    print(f"first-order: {med['first-order'] / med['baseline']:.2f}x")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""The training loop shared by baseline and Editable Training.

One loop, two objectives: :class:`CrossEntropyObjective` (baseline) and the editable
objective in :mod:`workbench.training.editable`. Checkpoints every epoch, resumes after an
interruption, logs metrics as JSON lines, and writes a model folder with its card.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import DataBundle, load_dataset, random_crop_flip
from ..data.batch import batch_indices
from ..data.noise import NOISE_FILE, LabelNoise, flip_labels
from ..device import resolve_device
from ..models.fit import check_takes
from ..models.dropout import DropoutSpec, attach_dropout, dropout_card, example_indices, resolve_sites
from ..models.outputs import forward_logits
from ..models.spec import ModelSpec
from .grad_accounting import ACCOUNTING_FILE, GradientAccounting
from .checkpoint import git_commit, load_model, load_state_into, load_weights, safe_torch_load, save_model
from .dynamics import clear_dynamics
from .epoch_metrics import dynamics_recorder, editor_card, editor_metrics, evaluate_splits, fit_metrics
from .out_folder import LOG_FILE, RESUME, STATE_FILE, plan_start
from .recipes import Recipe
from .schedule import lr_factor, make_optimizer
from .snapshots import list_snapshots, save_snapshot


class Objective(Protocol):
    """What the loop minimises. ``extra_parameters`` are optimised with the model."""

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One step's loss. The batch's training-set positions: :func:`~workbench.data.batch.current_batch_indices`."""
        ...

    def extra_parameters(self) -> dict[str, torch.Tensor]: ...


class CrossEntropyObjective:
    """Baseline: plain cross-entropy (bf16 autocast on CUDA when ``amp``).

    ``last_logits``: the last batch's ``(B, C)`` logits, detached (the dynamics recorder reads
    them; an objective without this attribute trains without recording dynamics).
    """

    def __init__(self, amp: bool = False) -> None:
        self.amp = amp
        self.last_logits: torch.Tensor | None = None

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp and x.is_cuda else contextlib.nullcontext()
        with amp:
            logits = forward_logits(model, x)
        self.last_logits = logits.detach()
        loss = F.cross_entropy(logits.float(), y)
        return loss, {"loss": float(loss.detach())}

    def extra_parameters(self) -> dict[str, torch.Tensor]:
        return {}


@dataclass
class TrainResult:
    out_dir: Path
    model: nn.Module
    card: dict[str, Any]


def spec_for_recipe(recipe: Recipe, bundle: DataBundle, trust_code: bool = False) -> ModelSpec:
    """The model a recipe trains: ``recipe.arch`` (a project architecture, ``torchvision:<name>``,
    ``timm:<name>``, ``hf:<config>``, or with ``trust_code`` a ``module:factory``, see
    :class:`ModelSpec`) with ``arch_kwargs``, plus the data's classes, channels and image size
    where the builder takes them."""
    spec = ModelSpec.parse(recipe.arch, trust_code=trust_code)
    spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **recipe.arch_kwargs})
    c, h, _ = bundle.input_shape
    return spec.with_defaults(num_classes=bundle.num_classes, in_channels=c,
                              input_size=h if spec.kind == "arch" else None)


def build_for_recipe(recipe: Recipe, bundle: DataBundle, trust_code: bool = False) -> nn.Module:
    """The recipe's model, with its dropout attached (``recipe.dropout``)."""
    return _with_dropout(recipe, spec_for_recipe(recipe, bundle, trust_code).build())


def _with_dropout(recipe: Recipe, model: nn.Module) -> nn.Module:
    if recipe.dropout != "none":
        attach_dropout(model, DropoutSpec(recipe.dropout, recipe.p_gen, recipe.p_mem, recipe.seed),
                       resolve_sites(model, recipe.dropout_sites))
    return model


def _legacy_config(model: nn.Module) -> dict | None:
    cfg = getattr(model, "config", None)  # older train states stored ResNet.config()
    return cfg() if callable(cfg) else None


def _init_weights(model: nn.Module, spec: ModelSpec, init_from: str, trust_code: bool = False) -> None:
    """Start from a model folder (same architecture) or a weights file (--weights)."""
    path = Path(init_from)
    if path.is_file() and path.name != "card.json":
        load_weights(model, path)
        return
    init, card = load_model(init_from, trust_code=trust_code)
    theirs = ModelSpec.from_card(card)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if own != {k: tuple(v.shape) for k, v in init.state_dict().items()}:
        raise ValueError(f"init_from {init_from} has architecture {theirs}, but the recipe builds {spec}; "
                         "pick a matching --arch/--model")
    model.load_state_dict(init.state_dict())


def _label_noise(recipe: Recipe, train_y: torch.Tensor, num_classes: int, out_dir: Path,
                 rank0: bool, resume: bool) -> LabelNoise | None:
    """Draw the recipe's label noise (a pure function of the labels and the seed) and record it.

    A resumed run checks that the folder's record is the same draw.
    """
    if recipe.label_noise <= 0:
        return None
    noise = flip_labels(train_y, recipe.label_noise, num_classes, seed=recipe.label_noise_seed)
    if rank0:
        try:
            old = LabelNoise.load(out_dir) if resume and (out_dir / STATE_FILE).exists() else None
        except FileNotFoundError:
            old = None
        if old is not None and not (torch.equal(old.indices, noise.indices) and torch.equal(old.noisy, noise.noisy)):
            raise ValueError(f"{out_dir} holds a run with other label noise ({old.summary()}); "
                             "use another --out folder or --no-resume")
        noise.save(out_dir)
    return noise


def train(recipe: Recipe, out_dir: str | Path, *, objective: Objective | None = None, resume: bool = True,
          device: torch.device | str | None = None, bundle: DataBundle | None = None,
          command: str | None = None, progress: bool = True, dist: Any = None,
          overwrite: bool = False, trust_code: bool = False) -> TrainResult:
    """Train (or resume training) per ``recipe`` and write a model folder to ``out_dir``.

    ``out_dir`` receives ``model.safetensors`` + ``card.json`` (after every epoch),
    ``train_state.pt`` (optimizer and progress, for resuming) and ``metrics.jsonl``.
    A folder that already holds a run is checked first (:func:`~workbench.training.out_folder.plan_start`):
    an unfinished run of the same recipe is resumed (``resume``), a finished one of the same
    recipe is returned as it is; anything else is refused, with nothing written, unless
    ``overwrite`` (start over; the old model is replaced after the first epoch).
    ``dist`` (see :mod:`workbench.training.distributed`) has ``.rank``, ``.world``,
    ``.wrap(model)``, ``.barrier()``, ``.all_reduce_mean_(tensors)`` and ``.broadcast_buffers_(model)``.
    ``trust_code`` lets a ``module:factory`` model be built (``recipe.arch``, the card of ``init_from``).
    """
    recipe.validate(trust_code=trust_code)
    out_dir = Path(out_dir)
    resume = plan_start(out_dir, recipe, resume=resume, overwrite=overwrite) == RESUME
    device = resolve_device(device)
    rank0 = dist is None or dist.rank == 0
    torch.manual_seed(recipe.seed + (dist.rank if dist else 0))
    if bundle is None:
        bundle = load_dataset(recipe.dataset, recipe.data_root, val_size=recipe.val_size, seed=recipe.seed,
                              image_size=recipe.image_size, grayscale=recipe.grayscale or None)
    train_x, train_y = bundle.train_x, bundle.train_y
    if recipe.train_subset:
        train_x, train_y = train_x[:recipe.train_subset], train_y[:recipe.train_subset]
    noise = _label_noise(recipe, train_y, bundle.num_classes, out_dir, rank0, resume)
    if noise is not None:
        train_y = noise.apply(train_y)
    spec = spec_for_recipe(recipe, bundle, trust_code)
    model = _with_dropout(recipe, spec.build())
    check_takes(model, bundle.input_shape, fix="Give it images it takes (--image-size N, e.g. 64) or model arguments "
                "for these images (e.g. in_chans / img_size)")
    if recipe.init_from:
        _init_weights(model, spec, recipe.init_from, trust_code)
    model.to(device)
    channels_last = recipe.channels_last and device.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    bs = recipe.batch_size
    steps_per_epoch = max(1, len(train_x) // (bs * (dist.world if dist else 1)))
    if objective is None and recipe.grad_accounting:
        if dist is not None and dist.world > 1:
            raise ValueError("grad_accounting (--grad-accounting) runs on one process; drop it under torchrun")
        objective = GradientAccounting(noise.mask() if noise is not None else torch.zeros(len(train_y), dtype=torch.bool),
                                       steps_per_epoch, out_dir, amp=recipe.amp)
    if objective is None:
        objective = CrossEntropyObjective(amp=recipe.amp)
    if isinstance(objective, nn.Module):
        objective.to(device)
    extra = objective.extra_parameters()
    train_model: nn.Module = model if dist is None else dist.wrap(model)
    groups = [{"params": list(model.parameters()), "weight_decay": recipe.weight_decay}]
    if extra:
        groups.append({"params": list(extra.values()), "weight_decay": 0.0,
                       "lr": recipe.editor_hparam_lr or recipe.lr})
    opt = make_optimizer(recipe, groups)
    base_lrs = [g["lr"] for g in opt.param_groups]
    total = steps_per_epoch * recipe.epochs
    epoch, step, wall = 0, 0, 0.0
    state_path = out_dir / STATE_FILE
    if resume and state_path.exists():
        st = safe_torch_load(state_path)
        if st.get("arch") != recipe.arch or st.get("model_config") not in (spec.kwargs, _legacy_config(model)):
            raise ValueError(f"cannot resume from {state_path}: it was trained with architecture "
                             f"{st.get('arch')} {st.get('model_config')}, not {recipe.arch} {spec.kwargs}. "
                             "Use another --out folder or the matching recipe.")
        load_state_into(model, st["model"], str(state_path))
        opt.load_state_dict(st["optimizer"])
        for name, t in extra.items():
            if name in st.get("extra", {}):
                with torch.no_grad():
                    t.copy_(st["extra"][name])
        epoch, step, wall = int(st["epoch"]), int(st["step"]), float(st["wall_time_s"])
        if rank0:
            print(f"resuming from {state_path} at epoch {epoch}/{recipe.epochs}", file=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rank0 and epoch == 0:  # a fresh start: records of an earlier run in this folder would mislead
        for stale in list_snapshots(out_dir).values():
            stale.unlink()
        for name in (ACCOUNTING_FILE, LOG_FILE, STATE_FILE, *(() if noise is not None else (NOISE_FILE,))):
            (out_dir / name).unlink(missing_ok=True)
        clear_dynamics(out_dir)
        if recipe.keep_epochs:
            save_snapshot(out_dir, model, 0)
    card: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    # --- training dynamics and the epochs that skip gradient accounting (recipe.accounting_every)
    recorder = dynamics_recorder(recipe, objective, out_dir, len(train_x), dist) if rank0 else None
    plain = CrossEntropyObjective(amp=recipe.amp)
    noisy_mask = noise.mask() if noise is not None else None
    while epoch < recipe.epochs:
        epoch_objective: Objective = objective
        if isinstance(objective, GradientAccounting) and epoch % recipe.accounting_every:
            epoch_objective = plain
        t0 = time.perf_counter()
        model.train()
        # Seeded per epoch, so a resumed run replays exactly what an uninterrupted one does.
        # Every rank shuffles alike and takes its own shard; augmentation differs per rank.
        gen = torch.Generator().manual_seed(recipe.seed * 1000 + epoch + (dist.rank * 7919 if dist else 0))
        perm_gen = gen if dist is None else torch.Generator().manual_seed(recipe.seed * 1000 + epoch)
        perm = torch.randperm(len(train_x), generator=perm_gen)
        # The global stream (standard dropout's masks, editors' draws) too, apart from the above.
        torch.manual_seed(recipe.seed * 1000 + epoch + 500_009 + (dist.rank * 7919 if dist else 0))
        if dist is not None:
            perm = perm[dist.rank::dist.world]
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not (progress and rank0),
                   leave=False, file=sys.stderr)
        sums: dict[str, float] = {}
        for i in bar:
            idx = perm[i * bs:(i + 1) * bs]
            xb = train_x[idx]
            if recipe.augment:
                xb = random_crop_flip(xb, pad=recipe.crop_pad, generator=gen)
            xb, yb = bundle.normalize(xb.to(device)), train_y[idx].to(device)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            for g, lr0 in zip(opt.param_groups, base_lrs):
                g["lr"] = lr0 * lr_factor(recipe, step, total, steps_per_epoch)
            with batch_indices(idx), example_indices(model, idx.to(device)):
                loss, logs = epoch_objective(train_model, xb, yb, step)
            if recorder is not None:
                recorder.update(idx, getattr(epoch_objective, "last_logits"), yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch + 1} step {i}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if dist is not None and extra:  # DDP all-reduces the model's gradients, not these
                for t in extra.values():
                    if t.grad is None:  # e.g. only trivial edits on this rank: still join the all-reduce
                        t.grad = torch.zeros_like(t)
                dist.all_reduce_mean_([t.grad for t in extra.values() if t.grad is not None])
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                if extra:
                    torch.nn.utils.clip_grad_norm_(list(extra.values()), recipe.grad_clip)
            opt.step()
            step += 1
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            if i % 20 == 0:
                bar.set_postfix({k: f"{v / (i + 1):.4f}" for k, v in sums.items()})
        epoch += 1
        wall += time.perf_counter() - t0
        metrics = {k: v / steps_per_epoch for k, v in sums.items()}
        if dist is not None:
            dist.broadcast_buffers_(model)
        if rank0:
            metrics.update(evaluate_splits(model, bundle, recipe, device))
        metrics.update(editor_metrics(epoch_objective, extra))
        if rank0:
            metrics.update(fit_metrics(model, train_x, train_y, noisy_mask, recorder, bundle, device))
        if recorder is not None:
            recorder.end_epoch(epoch)  # before the train state: a crash between the two redoes the epoch
        if rank0:
            row = {"epoch": epoch, "step": step, "wall_time_s": round(wall, 1), **metrics}
            with open(out_dir / LOG_FILE, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  file=sys.stderr)
            card = {
                "arch": recipe.arch, "dataset": recipe.dataset, "recipe": recipe.to_dict(),
                "epochs": epoch, "test_error": metrics.get("test_error"), "val_error": metrics.get("val_error"),
                "command": command or " ".join(sys.argv), "commit": git_commit(), "wall_time_s": round(wall, 1),
                "device": str(device), "world_size": dist.world if dist else 1,
                "editor": editor_card(objective, extra), "amp": recipe.amp and device.type == "cuda",
                "channels_last": channels_last,
                "classes": list(bundle.classes), "mean": list(bundle.mean), "std": list(bundle.std),
                "input_shape": list(bundle.input_shape), "normalization": bundle.normalization_card(),
                "data": {k: v for k, v in bundle.meta.items() if isinstance(v, (int, float, str, bool, type(None)))},
            }
            if noise is not None:
                card["label_noise"] = noise.summary()
            if recipe.dropout != "none":
                card["dropout"] = dropout_card(model)
            if recipe.keep_epochs:
                save_snapshot(out_dir, model, epoch)
                card["snapshots"] = sorted(list_snapshots(out_dir))
            save_model(out_dir, model, card, builder=spec)
            tmp = out_dir / (STATE_FILE + ".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "step": step,
                        "wall_time_s": wall, "arch": recipe.arch, "model_config": spec.kwargs,
                        "extra": {n: t.detach() for n, t in extra.items()}}, tmp)
            tmp.replace(state_path)
        if dist is not None:
            dist.barrier()
    if not card and rank0:
        card = json.loads((out_dir / "card.json").read_text()) if (out_dir / "card.json").exists() else {}
    return TrainResult(out_dir, model, card)

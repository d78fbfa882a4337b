"""Set-up and export helpers of :class:`~workbench.session.EditSession`."""
from __future__ import annotations

import numbers
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
import torch.nn as nn

from ..data import DataBundle
from ..editing.editor import EditorConfig
from ..models import ModelAdapter, check_logits, logits_of
from .edit_record import EditRecord

if TYPE_CHECKING:
    from ..evaluation import EditReport, Evaluator


def load_bundle(card: Mapping[str, Any]) -> DataBundle:
    """The data set a model card names, with the recipe's data root, validation size and seed."""
    from ..data import load_for_card

    return load_for_card(dict(card))


def bundle_for_model(model: nn.Module, data: Any, device: torch.device, *, classes: Sequence[str] | None = None,
                     **data_kw: Any) -> DataBundle:
    """``data`` (any form :func:`workbench.data.as_bundle` takes) as a bundle checked against ``model``.

    The model runs once on two test images: an image size or channel count it does not take,
    or an output that is not ``(N, len(classes))`` logits, raises a ValueError that says so
    (instead of a shape error deep in torch). Without ``classes`` and without class names in
    the data, the classes are named ``"0"`` ... after the model's outputs.
    """
    import dataclasses

    from ..data import as_bundle, check_labels

    bundle = as_bundle(data, classes=classes, **data_kw)
    test = bundle.image_source("test")
    x = test.images(range(min(2, len(test))))
    if len(x) == 0:
        raise ValueError("the data set has no images to score; give at least two")
    shape = tuple(int(v) for v in x.shape[1:])
    p = next(iter(model.parameters()), None)
    xb = bundle.normalize(x).to(device=device, dtype=p.dtype if p is not None else torch.float32)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(xb)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"the model cannot take the data's images of shape {shape} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]}). Fix: give images of the size and channel count the "
                         "model was trained on, or pass resize=(H, W) to resize them") from None
    finally:
        model.train(was)
    out = check_logits(logits_of(out), len(x))
    n_out = int(out.shape[1])
    if classes is None and bundle.meta.get("classes_from") == "labels" and n_out > bundle.num_classes:
        bundle = dataclasses.replace(bundle, classes=tuple(str(i) for i in range(n_out)))
    if n_out != bundle.num_classes:
        raise ValueError(f"the model has {n_out} outputs but the data has {bundle.num_classes} classes "
                         f"({', '.join(bundle.classes[:5])}{' ...' if bundle.num_classes > 5 else ''}); pass "
                         f"classes=[...] with one name per output")
    for split in ("train", "val", "test"):
        check_labels(bundle.labels(split), bundle.classes, split)
    return bundle


def check_edit_inputs(bundle: DataBundle | None, x: Any, y_ref: Any) -> None:
    """Image shape and label range of an edit against the session's data (any model; the editor
    checks the rest). Raises ValueError naming the expected shape or the classes."""
    if bundle is None or not isinstance(x, torch.Tensor):
        return
    shape = tuple(bundle.input_shape)
    if x.dim() not in (3, 4) or tuple(x.shape[-3:]) != shape:
        raise ValueError(f"x has shape {tuple(x.shape)}; this session's images are {shape} (give (C, H, W) "
                         f"or (N, {', '.join(map(str, shape))}), normalised, e.g. session.image(i))")
    ys = y_ref.reshape(-1).tolist() if isinstance(y_ref, torch.Tensor) else \
        [y_ref] if isinstance(y_ref, int) else list(y_ref) if isinstance(y_ref, Sequence) else []
    bad = [v for v in ys if isinstance(v, int) and not isinstance(v, bool) and not 0 <= v < bundle.num_classes]
    if bad:
        raise ValueError(f"target label(s) {bad} out of range: the classes are 0..{bundle.num_classes - 1} "
                         f"({', '.join(bundle.classes[:4])} ...)")


def build_evaluator(model: nn.Module | ModelAdapter, bundle: DataBundle, split: str, config: EditorConfig,
                    device: torch.device, limit: int | None, *, memory_budget: int | str | None = None,
                    score_cache: Path | None = None) -> Evaluator | None:
    """An Evaluator on ``split`` bound to the model's current (base) weights, its base scoring
    deferred (the session runs it: :mod:`workbench.session.background`), or None when the
    evaluation package has none."""
    try:
        from ..evaluation import Evaluator
    except ImportError:  # the evaluator is optional; sessions work without reports
        return None
    return Evaluator(model, bundle, split=split, layers=config.group, device=device, limit=limit,
                     memory_budget=memory_budget, score_cache=score_cache, defer=True)


def score_cache_for(setting: bool | str | Path | None, checkpoint: Path | None) -> Path | None:
    """The folder of a session's base-score cache: ``True`` (default) finds it with
    :func:`workbench.paths.score_cache_folder` (beside the model's files when it came from a
    writable model folder, else under ``~/.cache/editable-workbench``); a folder; None or False: off."""
    from ..paths import score_cache_folder

    if setting is None or setting is False:
        return None
    if setting is True:
        return score_cache_folder(checkpoint if checkpoint is not None and checkpoint.is_dir() else None)
    if isinstance(setting, (str, Path)):
        return Path(setting).expanduser()
    raise TypeError(f"score_cache must be True, False, None or a folder, got {type(setting).__name__}")


def as_index(index: object) -> int | tuple[int, ...]:
    """An image index as the session records it: an ``int``, or a tuple of ints for a batch.

    Accepts Python, numpy and torch integers (a 0-d integer tensor too) and sequences or 1-D
    arrays of them. Refuses strings (``"12"`` would otherwise mean images 1 and 2), floats
    and bools with TypeError, and an empty sequence with ValueError.
    """
    if isinstance(index, (str, bytes)):
        raise TypeError(f"index must be an integer or a list of integers, got the string {index!r} "
                        "(a string would be read character by character); pass e.g. 12, not '12'")
    if isinstance(index, torch.Tensor) and index.dim() == 0:
        index = index.item()
    if hasattr(index, "ndim") and getattr(index, "ndim") == 0 and hasattr(index, "item"):
        index = index.item()  # a numpy scalar array
    if isinstance(index, numbers.Integral) and not isinstance(index, bool):
        return int(index)
    if isinstance(index, (Sequence, torch.Tensor)) or type(index).__name__ == "ndarray":
        items = list(index)  # type: ignore[call-overload]
        if not items:
            raise ValueError("give at least one index")
        out = []
        for i in items:
            v = as_index(i)
            if isinstance(v, tuple):
                raise TypeError(f"a batch index must be a flat list of integers, got {index!r}")
            out.append(v)
        return tuple(out)
    raise TypeError(f"index must be an integer or a list of integers, got {index!r} ({type(index).__name__})")


def black_image(mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor | None:
    """``(C, 1, 1)``: a black pixel in normalised units (the attribution baseline)."""
    if not mean or not std:
        return None
    return (-torch.tensor(list(mean), dtype=torch.float32) / torch.tensor(list(std), dtype=torch.float32)).view(-1, 1, 1)


def export_card(card: Mapping[str, Any], history: Sequence[EditRecord], base_hash: str,
                checkpoint: Path | None, report: EditReport | None, split: str,
                examples: int | None) -> dict[str, Any]:
    """The card of an exported edited model: the base card's fields (minus its error rates),
    ``base_model`` (the whole base card), ``edits`` (index, target, method, lr, steps,
    success ... per applied edit) and, with a report, the edited model's error."""
    base = {k: v for k, v in card.items() if k not in ("test_error", "val_error")}
    out: dict[str, Any] = {**base, "edited": True,
                           "base_model": dict(card), "base_sha256": base_hash,
                           "base_checkpoint": str(checkpoint) if checkpoint else None,
                           "edits": [{"n": i, **r.summary()} for i, r in enumerate(history)],
                           "exported_at": time.time()}
    if report is not None:
        out["edited_eval"] = {"split": split, "images": examples,
                              "error_before": report.error_before, "error_after": report.error_after}
    return out


def data_card(bundle: DataBundle | None) -> dict[str, Any]:
    """What a model card needs to reopen a model with its data: classes, image shape,
    normalisation and, where the bundle was read from a named data set or an ImageFolder tree,
    ``dataset`` (``"fashion-mnist"``, ``"imagefolder:/abs/path"``) with the folder's ``data``
    settings (image size, channels, split fractions and seed), which ``load_for_card`` reads back."""
    if bundle is None:
        return {}
    from ..data.datasets import FOLDER_KEYS, LOADERS

    out = {"classes": list(bundle.classes), "input_shape": list(bundle.input_shape), "mean": list(bundle.mean),
           "std": list(bundle.std), "normalization": bundle.normalization_card()}
    meta = bundle.meta or {}
    if meta.get("read_size") and bundle.source and Path(bundle.source).is_dir():  # a folder read by as_bundle
        size = [int(v) for v in meta["read_size"]]
        out["dataset"] = f"imagefolder:{Path(bundle.source).resolve()}"
        out["data"] = {"streamed": True, "read_size": size, "channels": int(meta.get("channels", 3)),
                       "seed": meta.get("seed", 0), "val_fraction": float(meta.get("val_fraction") or 0.0),
                       **({"image_size": size[0]} if size[0] == size[1] else {})}
    elif all(k in meta for k in FOLDER_KEYS) and bundle.source and Path(bundle.source).is_dir():
        out["dataset"] = f"imagefolder:{Path(bundle.source).resolve()}"
        out["data"] = {k: v for k, v in meta.items() if isinstance(v, (int, float, str, bool, type(None)))}
    elif bundle.name in LOADERS:
        out["dataset"] = bundle.name
        if meta.get("image_size"):  # resized (load_dataset(..., image_size=N)): read back at that size
            out["data"] = {"image_size": int(meta["image_size"])}
    return out


def evaluator_fingerprint(ev: Evaluator | None) -> dict[str, Any] | None:
    """What saved predictions depend on: the split, its size, its labels and the base predictions."""
    if ev is None:
        return None
    from .history_io import state_hash

    return {"split": ev.split, "examples": int(len(ev.labels)),
            "sha256": state_hash({"labels": ev.labels, "base_preds": ev.base_preds})}


def report_from_preds(ev: Evaluator, preds: torch.Tensor, reference: torch.Tensor) -> EditReport:
    """The :class:`EditReport` that ``ev.score`` gives for weights predicting ``preds`` (no
    forward pass: used to restore saved reports)."""
    from ..evaluation import EditReport

    preds, ref = preds.long().cpu(), reference.long().cpu()
    before = float((ref != ev.labels).float().mean())
    after = float((preds != ev.labels).float().mean())
    return EditReport(before, after, after - before, preds, torch.nonzero(preds != ref).flatten(),
                      ev.per_class_error(ref), ev.per_class_error(preds), 0.0, ref.clone())

"""What ``load_model`` checks before it builds a model or trusts its weights.

A model folder can come from anywhere. The card must be a UTF-8 JSON object whose fields are
sane; its builder must be one of the closed set (:mod:`workbench.models.safety`), or the caller
must trust the code it names. The weights are checked before anything is built: the SHA-256
the card records, the file's size, the names, shapes and kinds of its tensors against the model
(built on the meta device, which allocates nothing, and refused above ``MAX_PARAMETERS``), and
finite values. The image shape the card records must agree with the model and its data set.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from ..data.datasets import IMAGE_SHAPES
from ..models.safety import MAX_PARAMETERS

MAX_CLASSES = 100_000
MAX_SIDE = 16_384  # largest image side a card may record
SHA_FIELD = "model_sha256"  # the card field recording the SHA-256 of model.safetensors

__all__ = ["MAX_CLASSES", "MAX_PARAMETERS", "SHA_FIELD", "check_card", "check_finite", "check_input_shape",
           "check_sha", "check_weights_size", "file_sha256", "read_card_file", "state_mismatch"]


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_card_file(path: Path) -> dict[str, Any]:
    """The card at ``path`` as a dict; ValueError naming what is wrong (never a traceback)."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a card file; a model folder holds model.safetensors and a "
                         "card.json file (as written by `python -m workbench train`)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); the card is corrupted or not a card") from None
    try:
        card = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the card is corrupted") from err
    except RecursionError:
        raise ValueError(f"{path} nests too deeply to be a card; the card is corrupted") from None
    if not isinstance(card, dict):
        raise ValueError(f"{path} holds {type(card).__name__ if card is not None else 'null'}, not a JSON object; "
                         "a card is an object with 'arch'/'builder' and 'model_config'")
    return card


def _positive_int(v: object, top: int | None = None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1 and (top is None or v <= top)


def check_card(card: Mapping[str, Any], where: str) -> None:
    """Field checks that do not need the model: ``num_classes``, ``model_config``, the builder,
    the recorded image shape."""
    cfg = card.get("model_config")
    if cfg is not None and not isinstance(cfg, dict):
        raise ValueError(f"{where}: 'model_config' must be an object of keyword arguments, got {cfg!r}")
    for source, d in (("card", card), ("model_config", cfg or {})):
        if "num_classes" in d and not _positive_int(d["num_classes"], MAX_CLASSES):
            raise ValueError(f"{where}: {source} 'num_classes' must be an integer in 1..{MAX_CLASSES}, "
                             f"got {d['num_classes']!r}")
    for key in ("widths", "blocks"):
        v = (cfg or {}).get(key)
        if v is not None and not (isinstance(v, list) and v and all(_positive_int(w) for w in v)):
            raise ValueError(f"{where}: model_config '{key}' must be a non-empty list of integers >= 1, got {v!r}")
    size = (cfg or {}).get("input_size")
    if size is not None and not _positive_int(size, MAX_SIDE):
        raise ValueError(f"{where}: model_config 'input_size' must be an integer in 1..{MAX_SIDE}, got {size!r}")
    shape = card.get("input_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 3 and
                                  all(_positive_int(s, MAX_SIDE) for s in shape)):
        raise ValueError(f"{where}: 'input_shape' must be [channels, height, width] (integers in 1..{MAX_SIDE}), "
                         f"got {shape!r}")
    b = card.get("builder")
    if b is not None and (not isinstance(b, dict) or not isinstance(b.get("kind"), str)
                          or not isinstance(b.get("name"), str)):
        raise ValueError(f"{where}: 'builder' must be an object with string 'kind' and 'name', got {b!r}")


def check_weights_size(path: Path) -> None:
    """Refuse a weights file larger than the largest model the workbench builds (before reading it)."""
    limit = 8 * MAX_PARAMETERS + (1 << 24)  # float64 values plus a generous header
    if path.stat().st_size > limit:
        raise ValueError(f"{path} holds {path.stat().st_size / 1e9:.1f} GB, more than any model the workbench "
                         f"builds ({MAX_PARAMETERS:.0e} parameters); it is not this card's weights")


def check_sha(path: Path, card: Mapping[str, Any], verify: bool) -> None:
    """Compare ``model.safetensors`` with the card's recorded SHA-256 (when it records one)."""
    want = card.get(SHA_FIELD)
    if want is None or not verify:
        return
    got = file_sha256(path)
    if got != want:
        raise ValueError(f"{path} does not match its card: SHA-256 {got[:12]}... vs the card's {str(want)[:12]}...; "
                         "the weights were changed or damaged since the card was written. Re-download or retrain "
                         "the model, or pass verify_sha256=False to load it anyway")


def check_finite(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or inf (such a model predicts garbage)."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: tensor {name!r} holds NaN or inf values; the weights are corrupted "
                             "(or training diverged): retrain or re-download the model")


def _kind(t: torch.Tensor) -> str:
    return "float" if t.is_floating_point() else "complex" if t.is_complex() else "bool" if t.dtype == torch.bool \
        else "integer"


def state_mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """What differs between a model's state dict and a weights file: missing or unexpected
    names, shapes, and the kind of values (float, integer, bool); "" when they fit."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    kinds = [f"{k}: file {state[k].dtype} vs model {own[k].dtype}"
             for k in own if k in state and _kind(state[k]) != _kind(own[k])]
    return "; ".join(filter(None, [
        f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
        f"shape mismatch {shapes[:3]}" if shapes else "", f"dtype mismatch {kinds[:3]}" if kinds else ""]))


def _recorded_shapes(card: Mapping[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = []
    if card.get("input_shape") is not None:
        out.append(("the card's input_shape", tuple(card["input_shape"])))
    ds, data = card.get("dataset"), card.get("data") or {}
    if isinstance(ds, str) and ds in IMAGE_SHAPES:
        side = data.get("image_size") if isinstance(data, dict) else None  # resized to train (--image-size)
        shape: tuple[int, ...] = IMAGE_SHAPES[ds] if not _positive_int(side, MAX_SIDE) else \
            (IMAGE_SHAPES[ds][0], int(side), int(side))  # type: ignore[arg-type]
        out.append((f"its data set {ds}" + ("" if shape == IMAGE_SHAPES[ds] else f" at image_size {side}"), shape))
    elif isinstance(ds, str) and ds.startswith("imagefolder:") and isinstance(data, dict) \
            and _positive_int(data.get("image_size"), MAX_SIDE):
        out.append(("its data set's recorded image_size", (1 if data.get("grayscale") else 3, data["image_size"],
                                                          data["image_size"])))
    return out


def check_input_shape(card: Mapping[str, Any], model: nn.Module, where: str) -> None:
    """The image shape the card records (``model_config.input_size``, ``input_shape``, the data
    set's) must agree, and the model (on the meta device) must take it and give one logit per class."""
    shapes = _recorded_shapes(card)
    claim = getattr(model, "input_shape", None)
    if isinstance(claim, tuple):
        shapes.insert(0, ("the model (its model_config: in_channels, input_size)", tuple(int(v) for v in claim)))
    for (a, sa), (b, sb) in zip(shapes, shapes[1:]):
        if sa != sb:
            raise ValueError(f"{where}: {a} says images of shape {list(sa)} but {b} says {list(sb)}; the card was "
                             f"edited or damaged: correct it (e.g. model_config input_size {sb[-1]}) or retrain")
    if not shapes:
        return
    shape = shapes[0][1]
    was = model.training
    try:
        model.eval()
        out = model(torch.zeros(2, *shape, device="meta"))
    except (RuntimeError, ValueError, AssertionError, TypeError) as err:
        if "meta" in str(err).lower():
            return  # the model cannot run on the meta device: nothing to learn here
        raise ValueError(f"{where}: the model does not take images of shape {list(shape)} ({shapes[0][0]}): "
                         f"{str(err)[:200]}; the card was edited or damaged: correct it or retrain") from None
    finally:
        model.train(was)
    classes = card.get("classes")
    if isinstance(out, torch.Tensor) and out.ndim == 2 and isinstance(classes, list) and out.shape[1] != len(classes):
        raise ValueError(f"{where}: the card lists {len(classes)} classes but the model gives {out.shape[1]} "
                         "outputs; the card was edited or damaged: correct it or retrain")

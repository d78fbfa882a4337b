"""What ``load_model`` checks before it builds a model or trusts its weights.

A model folder can come from anywhere. Before anything is built, the card must be a UTF-8
JSON object whose sizes are sane (the model is counted on the meta device, which allocates
nothing, and refused above :data:`MAX_PARAMETERS`); a ``factory`` builder may not name a
standard-library callable (a card could otherwise call ``os.system``). The weights must match
the SHA-256 the card records and hold no NaN or inf.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

# Largest model a card may describe: 1e9 parameters (4 GB in float32), about 3000x the shipped
# small ResNet (309k) and 90x a CIFAR ResNet-18 (11M). A card with widths of 1e6 would
# otherwise try to allocate ~36 TB.
MAX_PARAMETERS = 1_000_000_000
MAX_CLASSES = 100_000
SHA_FIELD = "model_sha256"  # the card field recording the SHA-256 of model.safetensors


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
    if not isinstance(card, dict):
        raise ValueError(f"{path} holds {type(card).__name__ if card is not None else 'null'}, not a JSON object; "
                         "a card is an object with 'arch'/'builder' and 'model_config'")
    return card


def _positive_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def check_card(card: Mapping[str, Any], where: str) -> None:
    """Field checks that do not need the model: ``num_classes``, ``model_config``, the builder."""
    cfg = card.get("model_config")
    if cfg is not None and not isinstance(cfg, dict):
        raise ValueError(f"{where}: 'model_config' must be an object of keyword arguments, got {cfg!r}")
    for source, d in (("card", card), ("model_config", cfg or {})):
        if "num_classes" in d and not (_positive_int(d["num_classes"]) and d["num_classes"] <= MAX_CLASSES):
            raise ValueError(f"{where}: {source} 'num_classes' must be an integer in 1..{MAX_CLASSES}, "
                             f"got {d['num_classes']!r}")
    for key in ("widths", "blocks"):
        v = (cfg or {}).get(key)
        if v is not None and not (isinstance(v, list) and v and all(_positive_int(w) for w in v)):
            raise ValueError(f"{where}: model_config '{key}' must be a non-empty list of integers >= 1, got {v!r}")
    b = card.get("builder")
    if b is not None:
        if not isinstance(b, dict) or not isinstance(b.get("kind"), str) or not isinstance(b.get("name"), str):
            raise ValueError(f"{where}: 'builder' must be an object with string 'kind' and 'name', got {b!r}")
        if b["kind"] == "factory":
            root = b["name"].partition(":")[0].split(".")[0]
            if root in sys.stdlib_module_names or root in ("builtins", "__main__"):
                raise ValueError(f"{where}: builder {b['name']!r} names a Python standard-library callable; a card "
                                 "may only name a model factory of an installed package (refused: loading would "
                                 "call it with the card's arguments)")


def count_parameters_on_meta(build: Any) -> int | None:
    """Parameters of the model ``build()`` makes, counted on the meta device (no memory);
    None if the builder cannot run there."""
    try:
        with torch.device("meta"):
            model = build()
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - some builders cannot run on the meta device
        return None
    if not isinstance(model, nn.Module):
        return None
    return sum(int(p.numel()) for p in model.parameters()) + sum(int(b.numel()) for b in model.buffers())


def check_size(n: int | None, where: str) -> None:
    if n is not None and n > MAX_PARAMETERS:
        raise ValueError(f"{where}: the card describes a model of {n:.3g} parameters and buffers, above the "
                         f"{MAX_PARAMETERS:.0e} that load_model builds (training.card_checks.MAX_PARAMETERS); "
                         "the card's model_config (e.g. widths) is corrupted or absurd")


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

"""Base scores kept on disk, so that reopening the same model on the same data is seconds.

One ``.safetensors`` file per (model, data) under :func:`workbench.paths.scores_dir` (or a
folder given): base logits ``(N, C) float32``, predictions, labels, margins
(``logit(pred) - logit(true)``) and label quality (the softmax probability of the label). The
file's metadata holds the whole key: the model's sha256 (class + every parameter and buffer),
the data's fingerprint (files + sizes + mtimes for a folder, a hash of the bytes for tensors),
the split, its size, the normalisation, the input shape, the device type, the precision
(exact or fast) and torch's version.
A file is used only when every field matches and its tensors agree with the data's labels;
an unreadable or inconsistent file is ignored with a warning and rewritten. Files are written
to a temporary name and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
import torch.nn as nn

from ..paths import scores_dir

if TYPE_CHECKING:
    from ..data import DataBundle, ImageSource

__all__ = ["ScoreCache", "model_sha256", "open_score_cache", "score_records", "SCORE_FORMAT"]

SCORE_FORMAT = 1
FIELDS = ("logits", "preds", "labels", "margins", "label_quality")


def model_sha256(model: nn.Module) -> str:
    """sha256 of the model's class and state dict (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def score_records(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-image records kept of ``(N, C)`` base logits and ``(N,)`` labels (CPU)."""
    logits, labels = logits.float().cpu(), labels.long().cpu()
    preds = logits.argmax(1)
    at = logits.gather(1, preds.view(-1, 1)).flatten()
    true = logits.gather(1, labels.view(-1, 1)).flatten()
    quality = logits.softmax(1).gather(1, labels.view(-1, 1)).flatten()
    return {"logits": logits.contiguous(), "preds": preds, "labels": labels.clone(),
            "margins": (at - true).contiguous(), "label_quality": quality.contiguous()}


class ScoreCache:
    """Base-score files in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()

    @staticmethod
    def _text(key: Mapping[str, Any]) -> str:
        return json.dumps({"format": SCORE_FORMAT, **key}, sort_keys=True, default=str)

    def path(self, key: Mapping[str, Any]) -> Path:
        """The file for ``key``."""
        return self.folder / f"{hashlib.sha256(self._text(key).encode()).hexdigest()[:40]}.safetensors"

    def load(self, key: Mapping[str, Any], labels: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor] | None:
        """The records stored for ``key``, or None (none stored, or not trusted: then a warning)."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                got = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as err:  # noqa: BLE001 - any unreadable file is ignored, then rewritten
            warnings.warn(f"the score cache file {path} is unreadable ({type(err).__name__}: {err}); it is ignored "
                          "and rewritten", RuntimeWarning, stacklevel=3)
            return None
        why = self._mismatch(meta, got, key, labels, num_classes)
        if why:
            warnings.warn(f"the score cache file {path} does not fit this model and data ({why}); it is ignored "
                          "and rewritten", RuntimeWarning, stacklevel=3)
            return None
        return got

    def _mismatch(self, meta: Mapping[str, str], got: Mapping[str, torch.Tensor], key: Mapping[str, Any],
                  labels: torch.Tensor, num_classes: int) -> str:
        if meta.get("key") != self._text(key):
            return "its key differs"
        if set(got) != set(FIELDS):
            return f"it holds {sorted(got)}, not {list(FIELDS)}"
        n = len(labels)
        logits = got["logits"]
        if logits.dtype != torch.float32 or tuple(logits.shape) != (n, num_classes):
            return f"logits {tuple(logits.shape)} {logits.dtype}, expected ({n}, {num_classes}) float32"
        if any(tuple(got[k].shape) != (n,) for k in FIELDS[1:]):
            return "a per-image record has the wrong length"
        if not torch.equal(got["labels"], labels.long().cpu()):
            return "its labels differ from the data's"
        if not torch.equal(got["preds"], logits.argmax(1)):
            return "its predictions differ from its logits"
        return ""

    def save(self, key: Mapping[str, Any], records: Mapping[str, torch.Tensor]) -> Path | None:
        """Write ``records`` for ``key`` atomically; returns the file (None, with a warning, if
        the folder cannot be written: scores then are not kept)."""
        from safetensors.torch import save_file

        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_file({k: records[k].contiguous() for k in FIELDS}, str(tmp), metadata={"key": self._text(key)})
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"base scores could not be kept in {self.folder} ({err}); set $WORKBENCH_CACHE or pass "
                          "score_cache=FOLDER to a writable folder", RuntimeWarning, stacklevel=3)
            return None
        return path


def open_score_cache(where: bool | str | Path | None, model: nn.Module, source: ImageSource, bundle: DataBundle,
                     split: str, limit: int | None, device: torch.device, batch_size: int | None,
                     precision: str = "exact") -> tuple[ScoreCache | None, dict[str, Any], str]:
    """``(cache, key, note)`` for base scores of ``model`` on ``source``: the cache in ``where``
    (True: :func:`workbench.paths.scores_dir`; None or False: none) and the key, or None with
    the reason scores are not kept. ``batch_size``: None where logits do not depend on it (the
    CPU), else the batch used (CUDA kernels differ by batch size in the last bits)."""
    if where is None or where is False:
        return None, {}, "base scores are not kept (score_cache=None)"
    fp = source.fingerprint()
    if fp is None:
        return None, {}, ("base scores are not kept: this data set's content cannot be fingerprinted without "
                          "reading it (give an ImageFolder path, tensors or a TensorDataset)")
    if bundle.normalize_fn is not None:
        return None, {}, "base scores are not kept: a custom normalize function cannot be fingerprinted"
    p = next(iter(model.parameters()), None)
    key = {"model": model_sha256(model), "data": fp, "split": split, "limit": limit, "examples": len(source),
           "normalization": bundle.normalization_card(), "input_shape": list(source.image_shape),
           "classes": list(bundle.classes), "device": device.type, "dtype": str(p.dtype if p is not None else None),
           "batch_size": batch_size, "precision": precision,
           "torch": torch.__version__}
    return ScoreCache(scores_dir() if where is True else Path(where)), key, ""

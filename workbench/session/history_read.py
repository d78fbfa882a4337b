"""Reading and validating a history folder (the layout is in :mod:`.history_io`).

A history folder can come from someone else, so nothing is read whole before it is bounded:
``history.json`` above ``MAX_HISTORY_BYTES`` is refused from its size, and each tensor file's
safetensors header (at most ``MAX_TENSOR_HEADER`` bytes) must declare exactly the tensors the
entry promises, with the model's names, shapes and dtypes, and account for every byte of the
file, before the file is read and hashed. Nesting deeper than ``MAX_JSON_DEPTH`` and more than
``MAX_ATTEMPTS`` attempts are refused too; every refusal is a ValueError naming the problem.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors.torch import load as st_load

from ..editing.editor import EditorConfig, EditResult
from ..folder_io import folder_lock, read_bounded
from .history_schema import (FORMAT, FULL_PREFIX, HISTORY_FILE, MAX_HISTORY_BYTES, VERSION, HistoryFieldError,
                             check_depth, check_entry, check_header, check_unique_uids, inside)

MAX_TENSOR_HEADER = 1 << 20  # bytes: a safetensors header names each tensor in ~100 bytes
# safetensors dtype code -> bytes per element, and the torch dtypes a model may hold
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_DTYPE_CODE = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
               torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
               torch.bool: "BOOL"}


@dataclass(frozen=True, eq=False)
class LoadedEdit:
    """One validated entry of a history folder (``after`` on the CPU; empty for attempts)."""

    meta: dict[str, Any]
    config: EditorConfig
    y_ref: tuple[int, ...]
    after: dict[str, torch.Tensor]
    files: dict[str, str]  # file name -> SHA-256 of the files read
    preds: torch.Tensor | None = None  # (N,) int64 predictions after the edit, when saved and N fits
    where: str = ""  # "applied edit #0" ...
    full: dict[str, torch.Tensor] | None = None  # the edit as made, for an edit saved at a strength other than 1


@dataclass(frozen=True, eq=False)
class LoadedHistory:
    header: dict[str, Any]
    applied: list[LoadedEdit]
    redo: list[LoadedEdit]
    attempts: list[LoadedEdit]


def _fail(folder: Path, what: str) -> ValueError:
    return ValueError(f"cannot load the edit history in {folder}: {what}")


def declared_tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype code, shape) from a safetensors file's header, read alone (at most
    :data:`MAX_TENSOR_HEADER` bytes), after checking that the declared tensors fill the file
    exactly. ValueError (naming the file) otherwise."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little") if size >= 8 else -1
        if not 0 < n <= min(MAX_TENSOR_HEADER, size - 8):
            raise ValueError(f"{path.name} is not a safetensors file (its header length is {n} bytes)")
        try:
            head = json.loads(f.read(n))
        except (ValueError, RecursionError) as err:
            raise ValueError(f"{path.name} has an unreadable safetensors header ({type(err).__name__})") from None
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    end = 0
    try:
        for name, info in head.items():
            if name == "__metadata__":
                continue
            dtype, shape, (a, b) = info["dtype"], tuple(int(v) for v in info["shape"]), info["data_offsets"]
            if dtype not in _DTYPE_BYTES or min(shape, default=0) < 0 or \
                    int(b) - int(a) != math.prod(shape) * _DTYPE_BYTES[dtype]:
                raise ValueError
            out[name], end = (dtype, shape), max(end, int(b))
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f"{path.name} has a malformed safetensors header") from None
    if 8 + n + end != size:
        raise ValueError(f"{path.name} is {size} bytes, but its header declares {8 + n + end}; the file was "
                         "altered (not written by EditSession.save)")
    return out


def interrupted_saves(folder: Path) -> list[Path]:
    """Complete histories that an interrupted save of an older version left beside ``folder``
    (``.<name>.old-*`` or ``.<name>.tmp-*`` holding a ``history.json``), newest first."""
    try:
        found = [p for p in folder.parent.iterdir() if p.name.startswith((f".{folder.name}.old-", f".{folder.name}.tmp-"))
                 and p.is_dir() and (p / HISTORY_FILE).is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda p: (p / HISTORY_FILE).stat().st_mtime, reverse=True)


def read_history(folder: str | Path, params: Mapping[str, torch.Tensor], base_hash: str,
                 num_classes: int | None = None, check_layers: Callable[[Any], object] | None = None, *,
                 num_examples: int | None = None) -> LoadedHistory:
    """Read and validate a history folder against a model's parameters and base-weights hash.

    Every field is checked (:mod:`.history_schema`); ``check_layers(layers)`` raises ValueError
    for an editable group the model does not have; ``num_examples`` (the session's split size)
    bounds each edit's image index, and saved predictions of another length are not read. Files
    are read only from ``edits/<uid>.safetensors`` and ``reports/<uid>.safetensors`` inside
    ``folder`` (symlinks that lead outside are refused), while holding the folder's lock shared.

    Raises:
        ValueError: naming what is wrong (missing or corrupted file, bad or oversized JSON,
            another base model, unknown parameter names or shapes, an index beyond the split).
    """
    folder = Path(folder)
    try:
        inside(folder, HISTORY_FILE)
    except HistoryFieldError as err:
        raise _fail(folder, str(err)) from err
    if not (folder / HISTORY_FILE).is_file():
        left = interrupted_saves(folder)
        if left:
            raise _fail(folder, f"{HISTORY_FILE} is missing, but a save that was interrupted left the complete "
                        f"history in {left[0]} (older versions saved through a hidden folder beside the target): "
                        f"load that folder, or rename it to {folder.name}")
        raise _fail(folder, f"{HISTORY_FILE} is missing (was this folder written by EditSession.save?)")
    with folder_lock(folder, "loading the history", shared=True):
        return _read(folder, params, base_hash, num_classes, check_layers, num_examples)


def _read(folder: Path, params: Mapping[str, torch.Tensor], base_hash: str, num_classes: int | None,
          check_layers: Callable[[Any], object] | None, num_examples: int | None) -> LoadedHistory:
    try:
        doc = json.loads(read_bounded(folder / HISTORY_FILE, MAX_HISTORY_BYTES, "the history file"))
        check_depth(doc)
    except RecursionError:
        raise _fail(folder, f"{HISTORY_FILE} nests objects or lists too deeply to read; it was not written by "
                    "EditSession.save") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(folder, f"{HISTORY_FILE} is not valid JSON ({err}); the file is corrupted") from err
    except (OSError, ValueError) as err:  # too large, not a regular file, nested too deep
        raise _fail(folder, str(err)) from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(folder, f"{HISTORY_FILE} is not an edit history (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("version") != VERSION:
        raise _fail(folder, f"history format version {doc.get('version')!r} is not supported: this code reads "
                    f"version {VERSION}, which records a hash of the weights each edit started from, so that a "
                    "history is only replayed onto the weights it was made on")
    if doc.get("base_sha256") != base_hash:
        raise _fail(folder, "it was recorded on different base weights (base_sha256 "
                    f"{str(doc.get('base_sha256'))[:12]}... vs this session's {base_hash[:12]}...); "
                    f"load it with the checkpoint it was made from ({doc.get('checkpoint', 'unknown')})")
    try:
        check_header(doc)
    except HistoryFieldError as err:
        raise _fail(folder, str(err)) from err
    preds_len = num_examples

    def one(e: Any, where: str, with_file: bool) -> LoadedEdit:
        try:
            e = check_entry(e, where, with_file=with_file, num_classes=num_classes, check_layers=check_layers,
                            num_examples=num_examples)
            cfg = EditorConfig.from_dict(e["config"]).resolved()
        except (TypeError, ValueError) as err:  # HistoryFieldError names the field; resolved() the setting
            raise _fail(folder, str(err) if isinstance(err, HistoryFieldError) else
                        f"{where}: field 'config' is not a valid editor setting ({err})") from err
        y_ref = tuple(int(v) for v in e["y_ref"])
        if not with_file:
            return LoadedEdit(e, cfg, y_ref, {}, {}, where=where)
        for n in e.get("params", []):
            if n not in params:
                raise _fail(folder, f"{where} edits parameter {n!r}, which this model does not have "
                            "(the history belongs to another architecture)")
        want = {n: (_DTYPE_CODE.get(params[n].dtype, "?"), tuple(params[n].shape)) for n in e.get("params", [])}
        if e.get("strength", 1.0) != 1:
            want.update({FULL_PREFIX + n: v for n, v in want.items()})
        files: dict[str, str] = {}
        after = read_tensors(e, "file", "sha256", where, files, lambda got: got == want)
        for n, v in after.items():
            if not bool(torch.isfinite(v).all()):
                raise _fail(folder, f"{where} holds non-finite values for {n}")
        full = ({n: after.pop(FULL_PREFIX + n) for n in e.get("params", [])} if e.get("strength", 1.0) != 1
                else None)
        preds = None
        if e.get("preds_file") is not None:
            saved = read_tensors(e, "preds_file", "preds_sha256", where, files,
                                 lambda got: set(got) == {"preds_after"} and got["preds_after"][0] in ("U8", "I64")
                                 and len(got["preds_after"][1]) == 1, lambda got: got["preds_after"][1][0] == preds_len)
            preds = saved.get("preds_after")
            if preds is not None:
                preds = preds.long()
                if num_classes is not None and preds.numel() and \
                        not 0 <= int(preds.min()) <= int(preds.max()) < num_classes:
                    raise _fail(folder, f"{e['preds_file']} ({where}) holds predictions outside 0..{num_classes - 1}")
        return LoadedEdit(e, cfg, y_ref, after, files, preds, where, full)

    def read_tensors(e: dict[str, Any], file_key: str, sha_key: str, where: str, files: dict[str, str],
                     fits: Callable[[dict[str, tuple[str, tuple[int, ...]]]], bool],
                     wanted: Callable[[dict[str, tuple[str, tuple[int, ...]]]], bool] = lambda _: True
                     ) -> dict[str, torch.Tensor]:
        name = e[file_key]  # check_entry made it edits/<uid>.safetensors or reports/<uid>.safetensors
        try:
            fpath = inside(folder, name)
        except HistoryFieldError as err:
            raise _fail(folder, f"{where}: {err}") from err
        if not fpath.is_file():
            raise _fail(folder, f"the file {name} of {where} is missing")
        try:
            got = declared_tensors(fpath)
        except ValueError as err:
            raise _fail(folder, f"{where}: {err}") from err
        if not fits(got):
            shown = {n: f"{d} {list(s)}" for n, (d, s) in list(got.items())[:3]}
            raise _fail(folder, f"{name} ({where}) declares {shown}{'...' if len(got) > 3 else ''}, which does not "
                        f"fit this model (its names, shapes or dtypes differ: another architecture?)")
        if not wanted(got):
            return {}  # saved predictions of another split size: not read (the session rescores)
        data = fpath.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if sha != e.get(sha_key):
            raise _fail(folder, f"{name} ({where}) is corrupted: its SHA-256 does not match {HISTORY_FILE}")
        try:
            out = st_load(data)
        except Exception as err:  # safetensors raises its own error types
            raise _fail(folder, f"{name} is not a readable safetensors file ({err})") from err
        files[name] = sha
        return out

    out: dict[str, list[LoadedEdit]] = {}
    for key in ("applied", "redo", "attempts"):
        out[key] = [one(e, f"{key} edit #{i}", key != "attempts") for i, e in enumerate(doc.get(key, []))]
    try:
        check_unique_uids([it.meta for key in out for it in out[key]])
    except HistoryFieldError as err:
        raise _fail(folder, str(err)) from err
    header = {k: v for k, v in doc.items() if k not in ("applied", "redo", "attempts")}
    return LoadedHistory(header, out["applied"], out["redo"], out["attempts"])


def to_result(item: LoadedEdit, before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> EditResult:
    """Rebuild an :class:`EditResult` from a loaded entry and its before/after tensors."""
    m = item.meta
    losses = tuple(float("nan") if v is None else float(v) for v in m["losses"])
    rel = m.get("relative_change", 0.0)
    return EditResult(bool(m["success"]), int(m["steps"]), losses, float(m["seconds"]), before, after,
                      item.config, item.y_ref, str(m.get("message", "")), bool(m.get("finite", True)),
                      wrecked=bool(m.get("wrecked", False)), relative_change=math.nan if rel is None else float(rel))

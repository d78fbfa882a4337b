"""Saving and loading an edit history: ``history.json`` plus one safetensors file per edit.

Layout of a history folder::

    history.json              format, base-weights hash, model config, session config, and one
                              entry per edit (applied, redo stack, failed attempts)
    edits/<uid>.safetensors   the edited parameters *after* the edit (name -> tensor)

The weights before an edit are the base weights (checked by hash) with every earlier edit
applied, so replaying the ``after`` tensors in order reproduces each state bit for bit.
Every file is checked against the SHA-256 recorded in ``history.json``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..editing.editor import EditorConfig, EditResult
from .records import EditRecord

FORMAT, VERSION = "editable-workbench-history", 1
HISTORY_FILE, EDITS_DIR = "history.json", "edits"


def state_hash(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of a state dict (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def edit_bytes(record: EditRecord) -> bytes:
    """The safetensors file of one edit: its ``after`` tensors on the CPU."""
    tensors = {n: v.detach().to("cpu").contiguous().clone() for n, v in record.result.after.items()}
    return st_save(tensors, metadata={"uid": record.uid})


def entry(record: EditRecord, sha: str | None) -> dict[str, Any]:
    """JSON entry of one record (``sha`` None for a failed attempt, which has no file)."""
    r = record.result
    out: dict[str, Any] = {
        "uid": record.uid,
        "index": list(record.index) if isinstance(record.index, tuple) else record.index,
        "batch": isinstance(record.target, tuple),
        "y_ref": list(r.y_ref), "config": r.config.to_dict(), "success": r.success, "steps": r.steps,
        "losses": [v if math.isfinite(v) else None for v in r.losses], "seconds": r.seconds,
        "message": r.message, "finite": r.finite, "timestamp": record.timestamp,
        "params": list(r.after),
    }
    if sha is not None:
        out["file"], out["sha256"] = f"{EDITS_DIR}/{record.uid}.safetensors", sha
    return out


def write_dir_atomic(folder: Path, fill: Callable[[Path], None]) -> Path:
    """Write a folder via a temporary sibling and renames, so readers see old or new, never half.

    Refuses to replace an existing non-empty folder that is not a history folder.
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"{folder} is a file; give a folder path for the history")
        if any(folder.iterdir()) and not (folder / HISTORY_FILE).exists():
            raise ValueError(f"{folder} exists and is not an edit-history folder (no {HISTORY_FILE}); "
                             "choose a new or empty folder so nothing else gets overwritten")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(folder)
    return folder


def write_history(folder: Path, header: dict[str, Any], applied: list[EditRecord], redo: list[EditRecord],
                  attempts: list[EditRecord], shas: dict[str, str]) -> Path:
    """Write a history folder atomically.

    ``shas`` maps record uid -> SHA-256 of its file, for files written before; a file that
    already sits in ``folder`` with the same hash is hard-linked instead of rewritten. It is
    updated with the hashes of files written now.
    """
    folder = Path(folder)
    old_shas: dict[str, str] = {}
    try:
        prev = json.loads((folder / HISTORY_FILE).read_text())
        old_shas = {e["uid"]: e["sha256"] for key in ("applied", "redo") for e in prev.get(key, [])
                    if isinstance(e, dict) and "sha256" in e and "uid" in e}
    except (OSError, ValueError, TypeError, AttributeError):
        pass

    def fill(tmp: Path) -> None:
        (tmp / EDITS_DIR).mkdir()
        entries: dict[str, list[dict[str, Any]]] = {"applied": [], "redo": []}
        for key, records in (("applied", applied), ("redo", redo)):
            for rec in records:
                name = f"{EDITS_DIR}/{rec.uid}.safetensors"
                sha = shas.get(rec.uid)
                if sha is not None and old_shas.get(rec.uid) == sha and (folder / name).is_file():
                    try:
                        os.link(folder / name, tmp / name)
                    except OSError:
                        shutil.copyfile(folder / name, tmp / name)
                else:
                    data = edit_bytes(rec)
                    sha = hashlib.sha256(data).hexdigest()
                    (tmp / name).write_bytes(data)
                    shas[rec.uid] = sha
                entries[key].append(entry(rec, sha))
        doc = {"format": FORMAT, "version": VERSION, **header, **entries,
               "attempts": [entry(r, None) for r in attempts]}
        (tmp / HISTORY_FILE).write_text(json.dumps(doc, indent=1) + "\n")

    return write_dir_atomic(folder, fill)


@dataclass(frozen=True, eq=False)
class LoadedEdit:
    """One validated entry of a history folder (``after`` on the CPU; empty for attempts)."""

    meta: dict[str, Any]
    config: EditorConfig
    y_ref: tuple[int, ...]
    after: dict[str, torch.Tensor]
    sha: str | None


@dataclass(frozen=True, eq=False)
class LoadedHistory:
    header: dict[str, Any]
    applied: list[LoadedEdit]
    redo: list[LoadedEdit]
    attempts: list[LoadedEdit]


def _fail(folder: Path, what: str) -> ValueError:
    return ValueError(f"cannot load the edit history in {folder}: {what}")


def read_history(folder: str | Path, params: Mapping[str, torch.Tensor], base_hash: str,
                 num_classes: int | None = None) -> LoadedHistory:
    """Read and validate a history folder against a model's parameters and base-weights hash.

    Raises:
        ValueError: naming what is wrong (missing or corrupted file, bad JSON, another base
            model, unknown parameter names or shapes).
    """
    folder = Path(folder)
    path = folder / HISTORY_FILE
    if not path.is_file():
        raise _fail(folder, f"{HISTORY_FILE} is missing (was this folder written by EditSession.save?)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(folder, f"{HISTORY_FILE} is not valid JSON ({err}); the file is corrupted") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(folder, f"{HISTORY_FILE} is not an edit history (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("version") != VERSION:
        raise _fail(folder, f"history format version {doc.get('version')!r} is not supported (this code reads {VERSION})")
    if doc.get("base_sha256") != base_hash:
        raise _fail(folder, "it was recorded on different base weights (base_sha256 "
                    f"{str(doc.get('base_sha256'))[:12]}... vs this session's {base_hash[:12]}...); "
                    f"load it with the checkpoint it was made from ({doc.get('checkpoint', 'unknown')})")

    def one(e: Any, where: str, with_file: bool) -> LoadedEdit:
        try:
            if not isinstance(e, dict):
                raise TypeError("entry is not an object")
            cfg = EditorConfig.from_dict(e["config"]).resolved()
            y_ref = tuple(int(v) for v in e["y_ref"])
            if not y_ref or (num_classes is not None and not all(0 <= v < num_classes for v in y_ref)):
                raise ValueError(f"target labels {list(y_ref)} are not valid classes")
            for key in ("uid", "success", "steps", "losses", "seconds"):
                e[key]  # noqa: B018 - presence check
        except (KeyError, TypeError, ValueError) as err:
            raise _fail(folder, f"{where} is malformed ({type(err).__name__}: {err})") from err
        if not with_file:
            return LoadedEdit(e, cfg, y_ref, {}, None)
        fpath = folder / str(e.get("file", ""))
        if not e.get("file") or not fpath.is_file():
            raise _fail(folder, f"the tensor file of {where} ({e.get('file')}) is missing")
        data = fpath.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if sha != e.get("sha256"):
            raise _fail(folder, f"{e.get('file')} ({where}) is corrupted: its SHA-256 does not match {HISTORY_FILE}")
        try:
            after = st_load(data)
        except Exception as err:  # safetensors raises its own error types
            raise _fail(folder, f"{e.get('file')} is not a readable safetensors file ({err})") from err
        if set(after) != set(e.get("params", [])):
            raise _fail(folder, f"{e.get('file')} holds {sorted(after)[:3]}..., {HISTORY_FILE} lists "
                        f"{list(e.get('params', []))[:3]}...")
        for n, v in after.items():
            if n not in params:
                raise _fail(folder, f"{where} edits parameter {n!r}, which this model does not have "
                            "(the history belongs to another architecture)")
            if v.shape != params[n].shape or v.dtype != params[n].dtype:
                raise _fail(folder, f"{where} has {n} of shape {tuple(v.shape)} {v.dtype}; the model's is "
                            f"{tuple(params[n].shape)} {params[n].dtype} (another architecture?)")
            if not bool(torch.isfinite(v).all()):
                raise _fail(folder, f"{where} holds non-finite values for {n}")
        return LoadedEdit(e, cfg, y_ref, after, sha)

    out: dict[str, list[LoadedEdit]] = {}
    for key in ("applied", "redo", "attempts"):
        items = doc.get(key, [])
        if not isinstance(items, list):
            raise _fail(folder, f"'{key}' in {HISTORY_FILE} is not a list")
        out[key] = [one(e, f"{key} edit #{i}", key != "attempts") for i, e in enumerate(items)]
    header = {k: v for k, v in doc.items() if k not in ("applied", "redo", "attempts")}
    return LoadedHistory(header, out["applied"], out["redo"], out["attempts"])


def to_result(item: LoadedEdit, before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> EditResult:
    """Rebuild an :class:`EditResult` from a loaded entry and its before/after tensors."""
    m = item.meta
    losses = tuple(float("nan") if v is None else float(v) for v in m["losses"])
    return EditResult(bool(m["success"]), int(m["steps"]), losses, float(m["seconds"]), before, after,
                      item.config, item.y_ref, str(m.get("message", "")), bool(m.get("finite", True)))

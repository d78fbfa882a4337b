"""Saving and loading an edit history: ``history.json`` plus one safetensors file per edit.

Layout of a history folder::

    history.json              format, base-weights hash, model config, session config, and one
                              entry per edit (applied, redo stack, failed attempts)
    edits/<uid>.safetensors   the edited parameters *after* the edit (name -> tensor)
    reports/<uid>.safetensors the predictions on the evaluator's split after the edit (optional;
                              a loaded session rebuilds its reports from them without rescoring)

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
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..editing.editor import EditorConfig, EditResult
from .history_schema import (EDITS_DIR, REPORTS_DIR, HistoryFieldError, check_entry, check_header, check_uid,
                             check_unique_uids, edit_file, inside, report_file)
from .edit_record import EditRecord

FORMAT, VERSION = "editable-workbench-history", 1
HISTORY_FILE = "history.json"


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
        "params": list(r.after), "wrecked": r.wrecked,
        "relative_change": r.relative_change if math.isfinite(r.relative_change) else None,
    }
    if sha is not None:
        out["file"], out["sha256"] = edit_file(record.uid), sha
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
    tmp = _new_sibling(folder, "tmp")
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


def _new_sibling(folder: Path, kind: str) -> Path:
    """A new, empty hidden folder beside ``folder`` with the user's normal permissions.

    ``mkdir`` is exclusive like ``mkdtemp``, but honours the umask (``mkdtemp`` makes 0700,
    which would leave a saved history unreadable to the user's group).
    """
    for _ in range(100):
        tmp = folder.parent / f".{folder.name}.{kind}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue
    raise OSError(f"could not create a temporary folder beside {folder}")


def preds_bytes(preds: torch.Tensor) -> bytes:
    """The safetensors file of one state's predictions on the evaluator's split (uint8 when it fits)."""
    p = preds.detach().to("cpu").reshape(-1)
    small = p.numel() == 0 or (int(p.min()) >= 0 and int(p.max()) < 256)
    return st_save({"preds_after": (p.to(torch.uint8) if small else p.long()).contiguous()})


def write_history(folder: Path, header: dict[str, Any], applied: list[EditRecord], redo: list[EditRecord],
                  attempts: list[EditRecord], shas: dict[str, str]) -> Path:
    """Write a history folder atomically.

    Each applied or undone edit gets ``edits/<uid>.safetensors`` (its ``after`` tensors) and,
    when it has a report, ``reports/<uid>.safetensors`` (the predictions after it, so that a
    loaded session need not rescore). ``shas`` maps file name -> SHA-256 of the files written
    before; a file already in ``folder`` with that hash is hard-linked, not rewritten. It is
    updated with the hashes of the files written now.
    """
    folder = Path(folder)
    uids = [rec.uid for rec in [*applied, *redo, *attempts]]
    for uid in uids:
        check_uid(uid)  # a uid names files: never a path (records.new_uid writes hex)
    if len(set(uids)) != len(uids):
        raise ValueError("two edit records share a uid; each needs its own (they name its files)")
    old: dict[str, str] = {}
    try:
        prev = json.loads((folder / HISTORY_FILE).read_text())
        for key in ("applied", "redo"):
            for e in prev.get(key, []):
                old.update({e[f]: e[h] for f, h in (("file", "sha256"), ("preds_file", "preds_sha256"))
                            if isinstance(e.get(f), str) and isinstance(e.get(h), str)})
    except (OSError, ValueError, TypeError, AttributeError):
        pass

    def put(tmp: Path, name: str, make: Callable[[], bytes]) -> str:
        sha = shas.get(name)
        src = folder / name
        if sha is not None and old.get(name) == sha and src.is_file() and not src.is_symlink() \
                and _stays_inside(folder, name):
            try:
                os.link(src, tmp / name)
            except OSError:
                shutil.copyfile(src, tmp / name)
            return sha
        data = make()
        (tmp / name).write_bytes(data)
        shas[name] = hashlib.sha256(data).hexdigest()
        return shas[name]

    def fill(tmp: Path) -> None:
        (tmp / EDITS_DIR).mkdir()
        (tmp / REPORTS_DIR).mkdir()
        entries: dict[str, list[dict[str, Any]]] = {"applied": [], "redo": []}
        for key, records in (("applied", applied), ("redo", redo)):
            for rec in records:
                e = entry(rec, put(tmp, edit_file(rec.uid), lambda: edit_bytes(rec)))
                rep = rec.report
                if rep is not None:
                    e["preds_file"] = report_file(rec.uid)
                    e["preds_sha256"] = put(tmp, e["preds_file"], lambda: preds_bytes(rep.preds_after))
                entries[key].append(e)
        doc = {"format": FORMAT, "version": VERSION, **header, **entries,
               "attempts": [entry(r, None) for r in attempts]}
        (tmp / HISTORY_FILE).write_text(json.dumps(doc, indent=1) + "\n")

    return write_dir_atomic(folder, fill)


def _stays_inside(folder: Path, name: str) -> bool:
    try:
        inside(folder, name)
        return True
    except ValueError:
        return False


@dataclass(frozen=True, eq=False)
class LoadedEdit:
    """One validated entry of a history folder (``after`` on the CPU; empty for attempts)."""

    meta: dict[str, Any]
    config: EditorConfig
    y_ref: tuple[int, ...]
    after: dict[str, torch.Tensor]
    files: dict[str, str]  # file name -> SHA-256 of the files read
    preds: torch.Tensor | None = None  # (N,) int64 predictions after the edit, when saved


@dataclass(frozen=True, eq=False)
class LoadedHistory:
    header: dict[str, Any]
    applied: list[LoadedEdit]
    redo: list[LoadedEdit]
    attempts: list[LoadedEdit]


def _fail(folder: Path, what: str) -> ValueError:
    return ValueError(f"cannot load the edit history in {folder}: {what}")


def read_history(folder: str | Path, params: Mapping[str, torch.Tensor], base_hash: str,
                 num_classes: int | None = None,
                 check_layers: Callable[[Any], object] | None = None) -> LoadedHistory:
    """Read and validate a history folder against a model's parameters and base-weights hash.

    Every field is checked (:mod:`.history_schema`); ``check_layers(layers)`` raises ValueError
    for an editable group the model does not have. Files are read only from
    ``edits/<uid>.safetensors`` and ``reports/<uid>.safetensors`` inside ``folder`` (symlinks
    that lead outside are refused).

    Raises:
        ValueError: naming what is wrong (missing or corrupted file, bad JSON, another base
            model, unknown parameter names or shapes).
    """
    folder = Path(folder)
    path = folder / HISTORY_FILE
    try:
        inside(folder, HISTORY_FILE)
    except HistoryFieldError as err:
        raise _fail(folder, str(err)) from err
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
            e = check_entry(e, where, with_file=with_file, num_classes=num_classes, check_layers=check_layers)
            cfg = EditorConfig.from_dict(e["config"]).resolved()
        except (TypeError, ValueError) as err:  # HistoryFieldError names the field; resolved() the setting
            raise _fail(folder, str(err) if isinstance(err, HistoryFieldError) else
                        f"{where}: field 'config' is not a valid editor setting ({err})") from err
        y_ref = tuple(int(v) for v in e["y_ref"])
        if not with_file:
            return LoadedEdit(e, cfg, y_ref, {}, {})
        files: dict[str, str] = {}
        after = read_tensors(e, "file", "sha256", where, files)
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
        preds = None
        if e.get("preds_file") is not None:
            saved = read_tensors(e, "preds_file", "preds_sha256", where, files)
            preds = saved.get("preds_after")
            if preds is None or preds.dim() != 1 or preds.dtype not in (torch.uint8, torch.int64):
                raise _fail(folder, f"{e['preds_file']} ({where}) does not hold a 1-D integer 'preds_after'")
            preds = preds.long()
            if num_classes is not None and preds.numel() and not 0 <= int(preds.min()) <= int(preds.max()) < num_classes:
                raise _fail(folder, f"{e['preds_file']} ({where}) holds predictions outside 0..{num_classes - 1}")
        return LoadedEdit(e, cfg, y_ref, after, files, preds)

    def read_tensors(e: dict[str, Any], file_key: str, sha_key: str, where: str,
                     files: dict[str, str]) -> dict[str, torch.Tensor]:
        name = e[file_key]  # check_entry made it edits/<uid>.safetensors or reports/<uid>.safetensors
        try:
            fpath = inside(folder, name)
        except HistoryFieldError as err:
            raise _fail(folder, f"{where}: {err}") from err
        if not fpath.is_file():
            raise _fail(folder, f"the file {name} of {where} is missing")
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

    try:
        check_header(doc)
    except HistoryFieldError as err:
        raise _fail(folder, str(err)) from err
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

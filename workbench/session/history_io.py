"""Saving an edit history: ``history.json`` plus one safetensors file per edit.

Layout of a history folder::

    history.json              format, base-weights hash, model config, session config, save id,
                              and one entry per edit (applied, redo stack, failed attempts)
    edits/<uid>.safetensors   the edited parameters *after* the edit (name -> tensor)
                              (at a strength other than 1: the scaled tensors, and the
                              edit as made under ``full/<name>``)
    reports/<uid>.safetensors the predictions on the evaluator's split after the edit (optional;
                              a loaded session rebuilds its reports from them without rescoring)
    .lock                     held while a save writes (and shared while a load reads)

The weights before an edit are the base weights with every earlier edit applied; each entry
records their SHA-256 (``before_sha256``), so a history replays only onto the weights it was
made on, and replaying the ``after`` tensors in order reproduces each state bit for bit. Every
file is checked against the SHA-256 recorded in ``history.json`` (:mod:`.history_read`).

A save writes in place, inside the folder (:mod:`workbench.folder_io`): new tensor files first,
each in one atomic step, then ``history.json`` in one atomic step (the commit), then the files
no entry names any more are removed. A process killed at any point leaves the previous
complete history or the new one, and nothing outside the folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors.torch import save as st_save

from ..folder_io import (LOCK_FILE, TMP_PREFIX, FolderExists, clean_tmp, folder_lock, read_bounded, real_dir,
                         replace_file)
from .history_schema import (EDITS_DIR, FORMAT, FULL_PREFIX, HISTORY_FILE, MAX_HISTORY_BYTES, REPORTS_DIR, UID_RE,
                             VERSION, check_uid, edit_file, inside, report_file)
from .edit_record import EditRecord

__all__ = ["FORMAT", "HISTORY_FILE", "VERSION", "check_target", "edit_bytes", "entry", "preds_bytes", "saved_id",
           "state_hash", "write_history"]


def state_hash(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of a state dict (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def edit_bytes(record: EditRecord) -> bytes:
    """The safetensors file of one edit: its ``after`` tensors on the CPU (and, at a strength
    other than 1, the edit as made under ``FULL_PREFIX + name``)."""
    tensors = {n: v.detach().to("cpu").contiguous().clone() for n, v in record.result.after.items()}
    if record.full_after is not None:
        tensors.update({FULL_PREFIX + n: v.detach().to("cpu").contiguous().clone()
                        for n, v in record.full_after.items()})
    return st_save(tensors, metadata={"uid": record.uid})


def entry(record: EditRecord, sha: str | None, before_sha: str | None = None) -> dict[str, Any]:
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
    if record.strength != 1.0:
        out["strength"] = record.strength
    if sha is not None:
        out["file"], out["sha256"] = edit_file(record.uid), sha
        out["before_sha256"] = before_sha
    return out


def preds_bytes(preds: torch.Tensor) -> bytes:
    """The safetensors file of one state's predictions on the evaluator's split (uint8 when it fits)."""
    p = preds.detach().to("cpu").reshape(-1)
    small = p.numel() == 0 or (int(p.min()) >= 0 and int(p.max()) < 256)
    return st_save({"preds_after": (p.to(torch.uint8) if small else p.long()).contiguous()})


def saved_id(folder: Path) -> str | None:
    """The ``save_id`` of the history in ``folder``: None when there is none (no
    ``history.json``, as file or link), ``""`` when its id cannot be read."""
    path = Path(folder) / HISTORY_FILE
    if not (path.is_symlink() or path.exists()):
        return None
    try:
        doc = json.loads(read_bounded(path, MAX_HISTORY_BYTES, "the saved"))
    except (OSError, ValueError, RecursionError):
        return ""
    sid = doc.get("save_id") if isinstance(doc, dict) else None
    return sid if isinstance(sid, str) else ""


def check_target(folder: Path, overwrite: bool = False, replaces: str | None = None) -> None:
    """Refuse a folder that is a file, holds other things than a history, or holds a save this
    call may not replace (:class:`FolderExists`)."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder path for the history")
    sid = saved_id(folder)
    there = sid is not None
    if there and not overwrite and sid != replaces:
        raise FolderExists(f"{folder} already holds a saved edit history (another session's, or an earlier one); "
                           "nothing was written. Pass overwrite=True to replace it, or save to a new folder", folder)
    if not there and folder.is_dir():
        # empty, or what a first save killed before its commit leaves: .lock, edits/, reports/, .tmp- files
        names = {p.name for p in folder.iterdir()}
        if names and not (LOCK_FILE in names and all(n in (LOCK_FILE, EDITS_DIR, REPORTS_DIR)
                                                      or n.startswith(TMP_PREFIX) for n in names)):
            raise ValueError(f"{folder} exists and is not an edit-history folder (no {HISTORY_FILE}); "
                             "choose a new or empty folder so nothing else gets overwritten")


def write_history(folder: Path, header: dict[str, Any], applied: list[EditRecord], redo: list[EditRecord],
                  attempts: list[EditRecord], shas: dict[str, str], *, overwrite: bool = False,
                  replaces: str | None = None, before_shas: dict[str, str] | None = None) -> Path:
    """Write a history folder in place, atomically (see the module doc); returns the folder.

    Each applied or undone edit gets ``edits/<uid>.safetensors`` (its ``after`` tensors) and,
    when it has a report, ``reports/<uid>.safetensors`` (the predictions after it, so that a
    loaded session need not rescore). ``shas`` maps file name -> SHA-256 of the files written
    before; a file already in ``folder`` with that hash is kept, not rewritten. It is updated
    with the hashes of the files written now; ``before_shas`` (uid -> ``before_sha256``) likewise.

    Args:
        header: the top-level fields; its ``save_id`` identifies this save.
        overwrite: replace a history already in ``folder``.
        replaces: without ``overwrite``, the ``save_id`` of the history that may be replaced
            (the caller's own earlier save); any other is refused.
    Raises:
        FolderExists: ``folder`` holds a history this call may not replace; nothing is written.
        FolderBusy: another process kept the folder locked for ``LOCK_TIMEOUT_S``.
        ValueError: a bad uid, a folder that is not a history folder, a history too large to reload.
    """
    folder = Path(folder)
    uids = [rec.uid for rec in [*applied, *redo, *attempts]]
    for uid in uids:
        check_uid(uid)  # a uid names files: never a path (records.new_uid writes hex)
    if len(set(uids)) != len(uids):
        raise ValueError("two edit records share a uid; each needs its own (they name its files)")
    before_shas = {} if before_shas is None else before_shas
    check_target(folder, overwrite, replaces)  # refuses before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder, "the save"):
        check_target(folder, overwrite, replaces)  # again, now that no other save runs
        clean_tmp(folder)
        old = _recorded_shas(folder)
        written: list[str] = []
        try:
            _write_locked(folder, header, applied, redo, attempts, shas, before_shas, old, written)
        except BaseException:  # not committed: take back the files this save added
            with contextlib.suppress(OSError):
                _remove_unlisted(folder, set(old), only=set(written))
                clean_tmp(folder)
            raise
    return folder


def _write_locked(folder: Path, header: dict[str, Any], applied: list[EditRecord], redo: list[EditRecord],
                  attempts: list[EditRecord], shas: dict[str, str], before_shas: dict[str, str],
                  old: dict[str, str], written: list[str]) -> None:
    """The steps of :func:`write_history`, holding the lock: the new tensor files, then
    ``history.json`` (the commit), then the removal of files no entry names."""
    for sub in (EDITS_DIR, REPORTS_DIR):
        real_dir(folder / sub)

    def put(name: str, make: Callable[[], bytes]) -> str:
        sha, dest = shas.get(name), folder / name
        if sha is not None and old.get(name) == sha and dest.is_file() and not dest.is_symlink() \
                and _stays_inside(folder, name):
            return sha  # the same bytes are already there
        data = make()
        written.append(name)
        replace_file(folder, dest, data)
        shas[name] = hashlib.sha256(data).hexdigest()
        return shas[name]

    entries: dict[str, list[dict[str, Any]]] = {"applied": [], "redo": []}
    for key, records in (("applied", applied), ("redo", redo)):
        for rec in records:
            if rec.uid not in before_shas:
                before_shas[rec.uid] = state_hash(rec.result.before)
            e = entry(rec, put(edit_file(rec.uid), lambda: edit_bytes(rec)), before_shas[rec.uid])
            rep = rec.report
            if rep is not None:
                e["preds_file"] = report_file(rec.uid)
                e["preds_sha256"] = put(e["preds_file"], lambda: preds_bytes(rep.preds_after))
            entries[key].append(e)
    doc = {"format": FORMAT, "version": VERSION, **header, **entries, "attempts": [entry(r, None) for r in attempts]}
    text = (json.dumps(doc, indent=1) + "\n").encode()
    if len(text) > MAX_HISTORY_BYTES:
        raise ValueError(f"the history is {len(text) / 2**20:.0f} MiB, above the {MAX_HISTORY_BYTES / 2**20:.0f} MiB "
                         "that loading accepts; nothing was replaced. Reset the session or save fewer edits")
    replace_file(folder, folder / HISTORY_FILE, text)  # the commit
    written.clear()
    _remove_unlisted(folder, {e[k] for es in entries.values() for e in es for k in ("file", "preds_file") if k in e})


def _recorded_shas(folder: Path) -> dict[str, str]:
    """File name -> SHA-256 as the current ``history.json`` records them (empty if unreadable)."""
    old: dict[str, str] = {}
    try:
        prev = json.loads(read_bounded(folder / HISTORY_FILE, MAX_HISTORY_BYTES, "the saved"))
        for key in ("applied", "redo"):
            for e in prev.get(key, []):
                old.update({e[f]: e[h] for f, h in (("file", "sha256"), ("preds_file", "preds_sha256"))
                            if isinstance(e.get(f), str) and isinstance(e.get(h), str)})
    except (OSError, ValueError, TypeError, AttributeError, RecursionError):
        pass
    return old


def _remove_unlisted(folder: Path, keep: set[str], only: set[str] | None = None) -> None:
    """Remove the tensor files (``<uid>.safetensors``) not in ``keep`` (the names
    ``history.json`` lists), of those in ``only`` when given."""
    for sub in (EDITS_DIR, REPORTS_DIR):
        if not (folder / sub).is_dir() or (folder / sub).is_symlink():
            continue
        for p in (folder / sub).iterdir():
            name = f"{sub}/{p.name}"
            stem = p.name[:-len(".safetensors")] if p.name.endswith(".safetensors") else ""
            if UID_RE.fullmatch(stem) and name not in keep and (only is None or name in only) \
                    and (p.is_symlink() or p.is_file()):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def _stays_inside(folder: Path, name: str) -> bool:
    try:
        inside(folder, name)
        return True
    except ValueError:
        return False

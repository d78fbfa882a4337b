"""Field-by-field validation of ``history.json`` (what a shared history file may hold).

A history folder can come from someone else. Everything in it is data to check, never a path
or a command to follow: every field has one accepted type and range, a ``uid`` is the hex
string the project writes (it names the entry's tensor files, so it must never hold a path),
and the file names are derived from the uid, never taken on trust. Each check raises one
:class:`ValueError` naming the entry and the field.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable, Mapping

UID_RE = re.compile(r"[0-9a-f]{8,64}")  # records.new_uid writes 12 lowercase hex digits
SHA_RE = re.compile(r"[0-9a-f]{64}")
EDITS_DIR, REPORTS_DIR = "edits", "reports"
FORMAT, HISTORY_FILE = "editable-workbench-history", "history.json"
# Format 2 records, per edit, the SHA-256 of the weights it started from (``before_sha256``), so
# that a history is only ever replayed onto the weights it was made on.
VERSION = 2
# Failed or refused attempts kept (as summaries without tensors, oldest dropped first): a
# record of what was tried, bounded so that a long classroom session cannot grow without end.
# A history holding more is refused on load.
MAX_ATTEMPTS = 1000
# history.json above this is refused before it is read. The largest file a session writes:
# MAX_ATTEMPTS attempts of MAX_STEPS_LIMIT (1000) steps, one loss per line, is about 23 MiB.
MAX_HISTORY_BYTES = 64 * 2**20
# Deepest nesting of objects and lists in history.json: the format needs 4 (an editor config in
# an entry in a list in the document); a model_config or evaluator record may nest a few more.
MAX_JSON_DEPTH = 32
# An edit applied at a strength other than 1 (``EditSession.set_strength``) saves, beside the
# scaled tensors under the parameters' names, the edit as made under FULL_PREFIX + name.
FULL_PREFIX = "full/"


class HistoryFieldError(ValueError):
    """A field of ``history.json`` has the wrong type or value (the message names it)."""


def check_uid(uid: object, where: str = "an edit") -> str:
    """``uid`` if it is a hex id of the form the project writes, else :class:`HistoryFieldError`."""
    if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
        raise HistoryFieldError(f"{where}: field 'uid' must be 8-64 lowercase hex digits (as EditSession writes), "
                                f"got {uid!r}; a uid names the entry's files and may not hold a path")
    return uid


def edit_file(uid: str) -> str:
    """The tensor file of an edit, relative to the history folder."""
    return f"{EDITS_DIR}/{uid}.safetensors"


def report_file(uid: str) -> str:
    """The predictions file of an edit, relative to the history folder."""
    return f"{REPORTS_DIR}/{uid}.safetensors"


def inside(folder: Path, name: str) -> Path:
    """``folder / name`` resolved (symlinks followed); ValueError if it leaves ``folder``."""
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if path != root and root not in path.parents:
        raise HistoryFieldError(f"{name} resolves to {path}, outside the history folder {root} "
                                "(a symlink or '..'); refusing to read or write it")
    return path


def _type_name(v: object) -> str:
    return type(v).__name__


def _field(e: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in e:
        raise HistoryFieldError(f"{where}: field {key!r} is missing")
    return e[key]


def _bad(where: str, key: str, want: str, got: object) -> HistoryFieldError:
    return HistoryFieldError(f"{where}: field {key!r} must be {want}, got {got!r} ({_type_name(got)})")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_depth(doc: object, limit: int = MAX_JSON_DEPTH) -> None:
    """HistoryFieldError when ``doc`` nests objects/lists deeper than ``limit`` (checked without recursion)."""
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
        for c in children:
            if isinstance(c, (dict, list)):
                if depth + 1 > limit:
                    raise HistoryFieldError(f"history.json nests objects or lists more than {limit} deep; "
                                            "a history written by EditSession.save nests at most a few levels")
                stack.append((c, depth + 1))


def check_entry(e: object, where: str, *, with_file: bool, num_classes: int | None,
                check_layers: Callable[[Any], object] | None, num_examples: int | None = None) -> dict[str, Any]:
    """Validate one entry of ``applied``/``redo`` (``with_file``) or ``attempts``; returns it.

    ``check_layers(layers)`` raises ValueError for a group the model does not have;
    ``num_examples`` (the session's split size) bounds ``index``.
    """
    if not isinstance(e, dict):
        raise HistoryFieldError(f"{where}: an entry must be a JSON object, got {_type_name(e)}")
    check_uid(_field(e, "uid", where), where)
    idx = e.get("index")
    if not (idx is None or (_is_int(idx) and idx >= 0)
            or (isinstance(idx, list) and idx and all(_is_int(i) and i >= 0 for i in idx))):
        raise _bad(where, "index", "null, an integer >= 0 or a non-empty list of them", idx)
    top = max(idx) if isinstance(idx, list) else idx
    if num_examples is not None and top is not None and top >= num_examples:
        raise HistoryFieldError(f"{where}: field 'index' names image {top}, but this session's split holds "
                                f"{num_examples} images (0..{num_examples - 1}); the history was made on a larger "
                                f"split: open the workbench with limit={top + 1} or more (or no limit) to load it")
    batch = e.get("batch", False)
    if not isinstance(batch, bool):
        raise _bad(where, "batch", "true or false", batch)
    y_ref = _field(e, "y_ref", where)
    if not (isinstance(y_ref, list) and y_ref and all(_is_int(v) for v in y_ref)):
        raise _bad(where, "y_ref", "a non-empty list of integer labels", y_ref)
    if num_classes is not None and not all(0 <= v < num_classes for v in y_ref):
        raise HistoryFieldError(f"{where}: field 'y_ref' holds {y_ref}, not all valid classes 0..{num_classes - 1}")
    if not batch and len(y_ref) != 1:
        raise HistoryFieldError(f"{where}: field 'y_ref' has {len(y_ref)} labels but 'batch' is false")
    cfg = _field(e, "config", where)
    if not isinstance(cfg, dict):
        raise _bad(where, "config", "an object (the editor settings)", cfg)
    layers = cfg.get("layers")
    if not (isinstance(layers, str) and layers) and not (
            isinstance(layers, list) and layers and all(isinstance(g, str) and g for g in layers)):
        raise _bad(where, "config.layers", "a group name or a list of them", layers)
    if check_layers is not None:
        try:
            check_layers(layers if isinstance(layers, str) else tuple(layers))
        except ValueError as err:
            raise HistoryFieldError(f"{where}: field 'config.layers' is {layers!r}: {err}") from err
    for key, want in (("method", "a method name"), ("lr", "a number or null"), ("beta", "a number or null"),
                      ("beta2", "a number"), ("max_steps", "an integer")):
        v = cfg.get(key)
        ok = {"method": isinstance(v, str), "max_steps": _is_int(v), "beta2": v is None or _is_number(v)}.get(
            key, v is None or _is_number(v))
        if not ok:
            raise _bad(where, f"config.{key}", want, v)
    if not isinstance(_field(e, "success", where), bool):
        raise _bad(where, "success", "true or false", e["success"])
    for key in ("finite", "wrecked"):
        if not isinstance(e.get(key, key == "finite"), bool):
            raise _bad(where, key, "true or false", e.get(key))
    rel = e.get("relative_change", 0.0)
    if not (rel is None or (_is_number(rel) and rel >= 0) or rel == math.inf):
        raise _bad(where, "relative_change", "a number >= 0 or null", rel)
    steps = _field(e, "steps", where)
    if not (_is_int(steps) and steps >= 0):
        raise _bad(where, "steps", "an integer >= 0", steps)
    losses = _field(e, "losses", where)
    if not (isinstance(losses, list) and all(v is None or _is_number(v) for v in losses)):
        raise _bad(where, "losses", "a list of numbers (null for non-finite)", losses)
    if len(losses) > steps + 1:
        raise HistoryFieldError(f"{where}: field 'losses' has {len(losses)} values for {steps} steps "
                                f"(at most steps + 1)")
    for key in ("seconds", "timestamp"):
        v = _field(e, key, where) if key == "seconds" else e.get(key, 0.0)
        if not (_is_number(v) and v >= 0):
            raise _bad(where, key, "a finite number >= 0", v)
    if not isinstance(e.get("message", ""), str):
        raise _bad(where, "message", "a string", e.get("message"))
    params = e.get("params", [])
    if not (isinstance(params, list) and all(isinstance(p, str) and p for p in params)):
        raise _bad(where, "params", "a list of parameter names", params)
    strength = e.get("strength", 1.0)
    if not (_is_number(strength) and 0 <= strength <= 1):
        raise _bad(where, "strength", "a number from 0 to 1 (the share of the edit applied)", strength)
    if with_file:
        if e.get("success") is not True:
            raise HistoryFieldError(f"{where}: field 'success' is {e.get('success')!r}, but only successful edits "
                                    "are applied or undone")
        if e.get("wrecked", False):
            raise HistoryFieldError(f"{where}: field 'wrecked' is true, but an edit flagged by the edit guard "
                                    "is never applied")
        _check_file(e, where, "file", "sha256", edit_file(e["uid"]))
        if not (isinstance(e.get("before_sha256"), str) and SHA_RE.fullmatch(e["before_sha256"])):
            raise _bad(where, "before_sha256", "a SHA-256 in hex (64 lowercase digits) of the weights the edit "
                       "started from", e.get("before_sha256"))
        if e.get("preds_file") is not None or e.get("preds_sha256") is not None:
            _check_file(e, where, "preds_file", "preds_sha256", report_file(e["uid"]))
    return e


def _check_file(e: Mapping[str, Any], where: str, key: str, sha_key: str, expected: str) -> None:
    if e.get(key) != expected:
        raise _bad(where, key, f"{expected!r} (derived from the uid)", e.get(key))
    if not (isinstance(e.get(sha_key), str) and SHA_RE.fullmatch(e[sha_key])):
        raise _bad(where, sha_key, "a SHA-256 in hex (64 lowercase digits)", e.get(sha_key))


HEADER_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "checkpoint": ((str, type(None)), "a string or null"),
    "arch": ((str, type(None)), "a string or null"),
    "model_config": ((dict, type(None)), "an object or null"),
    "config": ((dict, type(None)), "an object or null"),
    "evaluator": ((dict, type(None)), "an object or null"),
    "saved_at": ((int, float, type(None)), "a number or null"),
    "save_id": ((str, type(None)), "a string or null"),
}


def check_header(doc: Mapping[str, Any]) -> None:
    """Validate the top-level fields other than the entry lists."""
    for key, (types, want) in HEADER_FIELDS.items():
        v = doc.get(key)
        if not isinstance(v, types) or isinstance(v, bool):
            raise HistoryFieldError(f"field {key!r} of history.json must be {want}, got {v!r} ({_type_name(v)})")
    for key in ("applied", "redo", "attempts"):
        if not isinstance(doc.get(key, []), list):
            raise HistoryFieldError(f"field {key!r} of history.json must be a list, got {_type_name(doc.get(key))}")
    if len(doc.get("attempts", [])) > MAX_ATTEMPTS:
        raise HistoryFieldError(f"history.json lists {len(doc['attempts'])} failed attempts; a session keeps at most "
                                f"{MAX_ATTEMPTS} (MAX_ATTEMPTS), so this file was not written by EditSession.save")


def check_unique_uids(entries: list[dict[str, Any]]) -> None:
    """Two entries sharing a uid would share (and overwrite) one tensor file."""
    seen: set[str] = set()
    for e in entries:
        if e["uid"] in seen:
            raise HistoryFieldError(f"uid {e['uid']!r} appears twice in history.json; each edit needs its own")
        seen.add(e["uid"])

"""Join the parts of one ``evaluate`` run that was split with ``--range`` or interrupted.

A part is a result JSON (``evaluate --json``, with or without ``--range``) or the
``OUT.json.partial`` file of an unfinished run. Parts must share every setting (weights,
editor, protocol, N, seed, split); together they must cover edits ``0..N-1``. Where two parts
hold the same edit, their outcomes must agree. Every edit is checked as a resumed run checks
it (:func:`check_outcome`): its image lies in the split, it is the image and target the run's
seed draws (random protocol), and its figures are ones an edit can give.
"""
from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeGuard

from ..paths import portable_arg
from .protocols import random_draw
from .reports import EditOutcome, EvalSummary

# settings that must agree between the parts, as named in a ``.partial`` header
SHARED = ("model_sha256", "method", "lr", "beta", "max_steps", "layers", "protocol", "edits", "seed", "split",
          "limit", "test_error", "examples", "classes")
ADDED_LATER = ("editor_source", "classes")  # settings that older files lack
MAX_EXAMPLES = 10_000_000  # largest split a result can claim (the seeded draw permutes all of it)
Draw = tuple[int, int | None]  # (image index, target) of one edit; target None: not known
_OUTCOME_FIELDS = [f.name for f in fields(EditOutcome)]


@dataclass
class Part:
    """Edits ``start .. start + len(outcomes) - 1`` of a run, with the run's settings."""

    path: Path
    settings: dict[str, Any]
    start: int
    outcomes: list[EditOutcome]
    seconds: float
    checkpoint: str
    device: str | None

    def where(self, j: int) -> str:
        """Where the part's ``j``-th edit is written, for messages."""
        return f"{self.path} line {j + 2}" if self.path.name.endswith(".partial") else f"{self.path} per_edit[{j}]"


def _int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# (check, what it must be) of each EditOutcome field as a result file holds it
_OUTCOME_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "index": (lambda v: v is None or (_int(v) and v >= 0), "null or an integer >= 0"),
    "target": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "success": (lambda v: isinstance(v, bool), "true or false"),
    "steps": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "drawdown": (lambda v: _num(v) and -1 <= v <= 1, "a number in [-1, 1]"),
    "flipped": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "finite": (lambda v: isinstance(v, bool), "true or false"),
    "edit_seconds": (lambda v: _num(v) and v >= 0, "a number >= 0"),
    "wrecked": (lambda v: isinstance(v, bool), "true or false"),
}
_OPTIONAL = {"wrecked"}  # added later: older files lack it


def outcome_from_json(d: object, where: str) -> EditOutcome:
    """An :class:`EditOutcome` from its JSON form, every field checked (ValueError names it)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: an edit outcome must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_OUTCOME_CHECKS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown} in an edit outcome")
    for key, (ok, want) in _OUTCOME_CHECKS.items():
        if key not in d:
            if key in _OPTIONAL:
                continue
            raise ValueError(f"{where}: the edit outcome lacks the field {key!r}")
        if not ok(d[key]):
            raise ValueError(f"{where}: field {key!r} must be {want}, got {d[key]!r}")
    return EditOutcome(**d)


def parse_json(text: str, where: str) -> Any:
    """``json.loads``, with JSON nested too deeply for the parser (RecursionError) a ValueError naming ``where``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{where} is JSON nested too deeply to be written by `python -m workbench evaluate "
                         "--json`") from None


def _inconsistency(o: EditOutcome, k: object, examples: object) -> str | None:
    """What in ``o`` no edit of a run with ``k`` steps on ``examples`` images gives (None: nothing)."""
    if o.success and o.wrecked:
        return "is both a success and wrecked (the edit guard makes a wrecked edit a failure)"
    if _int(k) and o.success and o.steps > k:
        return f"succeeded in {o.steps} steps, more than k = {k}"
    if _int(k) and not o.success and o.steps != k:
        return f"failed but counts {o.steps} steps (a failed edit counts k = {k})"
    if ((o.success and o.steps == 0) or not o.finite) and o.flipped:
        return f"changed no weight but flipped {o.flipped} prediction(s)"
    if _int(examples) and examples > 0:
        if o.flipped > examples:
            return f"flipped {o.flipped} predictions of {examples} images"
        if abs(o.drawdown) > (o.flipped + 0.5) / examples:  # each flip moves the error by 1/examples at most
            return f"has drawdown {o.drawdown:+.6f} with only {o.flipped} of {examples} prediction(s) flipped"
    return None


def check_outcome(o: EditOutcome, position: int, settings: Mapping[str, Any], draw: Draw | None,
                  where: str) -> None:
    """Edit ``position`` of a run with these (:data:`SHARED`) settings, as a resumed run or a merge checks it.

    Args:
        draw: the image and target the run's seed draws at ``position`` (None: not known here).
    Raises:
        ValueError: starting with ``where``; the caller adds the fix.
    """
    examples = settings.get("examples")
    if o.index is not None and _int(examples) and o.index >= examples:
        raise ValueError(f"{where}: edit {position} has image {o.index}, outside the {settings.get('split')} split "
                         f"of this run ({examples} images, 0..{examples - 1}); the file was changed")
    if draw is not None and (o.index != draw[0] or (draw[1] is not None and o.target != draw[1])):
        target = f" and target {draw[1]}" if draw[1] is not None else ""
        raise ValueError(f"{where}: edit {position} has image {o.index} and target {o.target}, but this run's seed "
                         f"draws image {draw[0]}{target}; the file was changed or belongs to another run")
    problem = _inconsistency(o, settings.get("max_steps"), examples)
    if problem:
        raise ValueError(f"{where}: edit {position} {problem}; no edit gives that, so the file was changed")


def seeded_draw(settings: Mapping[str, Any]) -> list[Draw] | None:
    """``(index, target)`` of each of the run's N edits, from its seed (random protocol only; None otherwise).

    The targets are known only where the settings record the number of classes.
    """
    n, seed, examples, classes = (settings.get(k) for k in ("edits", "seed", "examples", "classes"))
    if not (_int(n) and _int(examples) and 1 <= n <= examples <= MAX_EXAMPLES):
        raise ValueError(f"the settings say {n!r} edits of {examples!r} images; a run of `evaluate` draws at most "
                         f"one edit per image, from at most {MAX_EXAMPLES} images")
    if settings.get("protocol") != "random" or not _int(seed):
        return None
    if classes is not None and not (_int(classes) and classes >= 1):
        raise ValueError(f"the settings say {classes!r} classes; expected an integer >= 1")
    try:
        idx, y = random_draw(examples, n, seed, classes)
    except RuntimeError as err:  # a seed out of the generator's range
        raise ValueError(f"the settings' seed {seed} cannot seed a draw ({err})") from None
    targets = y.tolist() if y is not None else [None] * n
    return list(zip(idx.tolist(), targets))


def read_outcome_line(line: str, where: str) -> tuple[dict[str, Any], EditOutcome]:
    """One line of a ``.partial`` file: ``({"outcome": ..., "seconds": ...}, outcome)``."""
    rec = parse_json(line, where)
    if not isinstance(rec, dict) or "outcome" not in rec or not _num(rec.get("seconds")):
        raise ValueError(f"{where}: not an edit line of an `evaluate --json` run "
                         "(needs 'outcome' and a number 'seconds')")
    return rec, outcome_from_json(rec["outcome"], where)


def read_part(path: str | Path) -> Part:
    """A result JSON or a ``.partial`` file as a :class:`Part` (a cut-short last line is ignored).

    Raises:
        ValueError: naming the file and the missing or malformed field.
    """
    p = Path(path)
    try:
        return _read_part(p)
    except KeyError as err:
        raise ValueError(f"{p} lacks the field {err}; pass files written by `python -m workbench evaluate "
                         "--json` (or their .partial files)") from None
    except (AttributeError, TypeError, IndexError) as err:
        raise ValueError(f"{p} is not a result of `python -m workbench evaluate --json` ({err})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p} is not a text (JSON) file") from None


def _read_part(p: Path) -> Part:
    if p.name.endswith(".partial"):
        lines = complete_lines(p)
        header = parse_json(lines[0], f"{p} line 1")
        if not isinstance(header, dict):
            raise ValueError(f"{p} line 1 is not the settings header of an `evaluate --json` run")
        recs = [read_outcome_line(line, f"{p} line {j + 2}") for j, line in enumerate(lines[1:])]
        outcomes = [o for _, o in recs]
        start = header.get("range", [0, header["edits"]])[0]
        return Part(p, {k: header.get(k) for k in (*SHARED, "editor_source")}, start, outcomes,
                    float(recs[-1][0]["seconds"]) if recs else 0.0, header["checkpoint"], header.get("device"))
    try:
        js = parse_json(p.read_text(), str(p))
    except json.JSONDecodeError as err:
        raise ValueError(f"{p} is not valid JSON ({err})") from None
    if not isinstance(js, dict) or "per_edit" not in js:
        raise ValueError(f"{p} has no per_edit records; write it with `python -m workbench evaluate --json`")
    if not isinstance(js["per_edit"], list):
        raise ValueError(f"{p}: field 'per_edit' must be a list of edit outcomes")
    settings = {"method": js["editor"], "edits": js.get("edits_total", js["edits"]), "limit": js.get("limit"),
                "editor_source": js.get("editor_source"),
                **{k: js.get(k) for k in SHARED if k not in ("method", "edits", "limit")}}
    layers = settings["layers"]
    settings["layers"] = layers if "+" not in str(layers) else str(layers).split("+")  # as group_name writes it
    start = js.get("range", [0])[0]
    outcomes = [outcome_from_json(e, f"{p} per_edit[{i}]") for i, e in enumerate(js["per_edit"])]
    return Part(p, settings, start, outcomes, float(js["seconds"]), js["checkpoint"], js.get("device"))


def complete_lines(p: Path, allow_empty: bool = False) -> list[str]:
    """The lines of a ``.partial`` file up to the first one that is not complete JSON."""
    out = []
    for j, line in enumerate(p.read_text().splitlines()):
        try:
            parse_json(line, f"{p} line {j + 1}")
        except json.JSONDecodeError:
            break
        out.append(line)
    if not out and not allow_empty:
        raise ValueError(f"{p} is empty; it is not the .partial file of an `evaluate --json` run")
    return out


def merge_parts(parts: Sequence[Part]) -> dict[str, Any]:
    """One result JSON (as ``evaluate --json`` writes it) from parts covering edits ``0..N-1``."""
    if not parts:
        raise ValueError("no parts given; pass the JSON and .partial files of one evaluate run")
    first = parts[0]
    for part in parts[1:]:
        diff = [k for k in SHARED if part.settings.get(k) != first.settings.get(k)
                and not (k in ADDED_LATER and None in (part.settings.get(k), first.settings.get(k)))]
        if diff:
            raise ValueError(f"{part.path} is not part of the same run as {first.path}: they differ in "
                             f"{', '.join(diff)}; merge only the parts of one evaluate command")
    try:
        draw = seeded_draw(first.settings)
    except ValueError as err:
        raise ValueError(f"{first.path}: {err}; it is not a result of `python -m workbench evaluate --json`") from None
    n = int(first.settings["edits"])
    by_position: dict[int, EditOutcome] = {}
    for part in parts:
        for j, o in enumerate(part.outcomes):
            i = part.start + j
            if not _int(i) or not 0 <= i < n:
                raise ValueError(f"{part.path} holds edit {i}, but the run has only N = {n} edits (0..{n - 1})")
            try:
                check_outcome(o, i, part.settings, draw[i] if draw else None, part.where(j))
            except ValueError as err:
                raise ValueError(f"{err}. Merge only unchanged parts of one evaluate run (rerun a part with "
                                 "`evaluate ... --range START:STOP --json PART.json`)") from None
            seen = by_position.get(i)
            if seen is not None and _key(seen) != _key(o):
                raise ValueError(f"edit {i} differs between the parts ({_key(seen)} vs {_key(o)}); "
                                 "they do not come from the same weights and code")
            by_position.setdefault(i, o)
    missing = [i for i in range(n) if i not in by_position]
    if missing:
        raise ValueError(f"the parts cover {len(by_position)} of {n} edits; missing {_spans(missing)}. "
                         "Run those with `evaluate ... --range START:STOP --json PART.json` and merge again")
    s = first.settings
    summary = summarize(s, [by_position[i] for i in range(n)], sum(p.seconds for p in parts))
    devices = sorted({p.device for p in parts if p.device})
    return {**summary.to_json(), "checkpoint": first.checkpoint, "seed": s["seed"], "classes": s.get("classes"),
            "device": ",".join(devices),
            "command": "python -m workbench merge-results " + " ".join(shlex.quote(portable_arg(str(p.path))) for p in parts),
            "model_sha256": s["model_sha256"], "limit": s["limit"],
            "merged_from": [{"file": p.path.name, "first_edit": p.start, "edits": len(p.outcomes)} for p in parts]}


def summarize(settings: dict[str, Any], outcomes: Sequence[EditOutcome], seconds: float) -> EvalSummary:
    """The paper's metrics over ``outcomes`` of a run with these (:data:`SHARED`) settings."""
    layers = settings["layers"]
    return EvalSummary.from_outcomes(
        outcomes, test_error=settings["test_error"], editor=settings["method"],
        layers=layers if isinstance(layers, str) else "+".join(layers), protocol=settings["protocol"],
        seconds=seconds, lr=settings["lr"], beta=settings["beta"], max_steps=settings["max_steps"],
        split=settings["split"], examples=settings["examples"], editor_source=settings.get("editor_source"))


def _key(o: EditOutcome) -> tuple:
    return tuple(getattr(o, f) for f in _OUTCOME_FIELDS if f != "edit_seconds")


def _spans(idx: list[int]) -> str:
    spans, a = [], idx[0]
    for prev, cur in zip(idx, idx[1:] + [None]):
        if cur != prev + 1:
            spans.append(f"{a}..{prev}" if a != prev else str(a))
            if cur is not None:
                a = cur
    return ", ".join(spans[:5]) + (" ..." if len(spans) > 5 else "")

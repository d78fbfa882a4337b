"""``OUT.json.partial``: the finished edits of an ``evaluate --json OUT.json`` run, to resume it.

Written by one process, or by rank 0 of a ``torchrun`` job, which receives the edits in the
order of the draw (:mod:`workbench.evaluation.shards`): the file is the same either way, and a
run stopped under one launch resumes under the other.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Sequence

from ..evaluation.merge import ADDED_LATER, check_outcome, complete_lines, parse_json, read_outcome_line
from ..evaluation.reports import EditOutcome


class Partial:
    """``OUT.json.partial``: the edits of an interrupted ``evaluate --json OUT.json`` run.

    JSON lines: a header with the run's settings, then one :class:`EditOutcome` per finished
    edit with the wall time spent so far. Edits are independent and drawn by seed, so a
    resumed run gives the same per-edit results as an uninterrupted one.
    """

    def __init__(self, path: Path, settings: dict[str, Any]):
        self.path, self.settings = path, settings
        self._t0 = time.perf_counter()
        self._spent = 0.0

    def start(self, resume: bool, draw: Sequence[tuple[int, int]] = ()) -> tuple[list[EditOutcome], float]:
        """Read the finished edits (when resuming) and rewrite the file with them.

        ``draw``: ``(index, target)`` of each edit of this run, from its seed; every saved
        outcome must match its position in it and pass :func:`~workbench.evaluation.merge.check_outcome`,
        or the file is refused (not rewritten).
        """
        done: list[EditOutcome] = []
        first = self.settings.get("range", [0])[0]
        if resume and self.path.exists():
            lines = complete_lines(self.path, allow_empty=True)
            header = parse_json(lines[0], f"{self.path} line 1") if lines else None
            if isinstance(header, dict):
                for key in ADDED_LATER:  # written before it was recorded
                    header.setdefault(key, self.settings.get(key))
            if header != self.settings:
                diff = sorted(k for k in self.settings if header is None or header.get(k) != self.settings[k])
                raise ValueError(f"{self.path} holds an interrupted run with other settings (differs in: "
                                 f"{', '.join(diff)}); pass --no-resume to start over, or another --json path")
            for j, line in enumerate(lines[1:]):  # a line cut short was dropped: that edit is redone
                where = f"{self.path} line {j + 2}"
                try:
                    rec, o = read_outcome_line(line, where)
                except ValueError as err:
                    raise ValueError(f"{err}; the file was changed or is damaged. Pass --no-resume to start "
                                     "over") from None
                try:
                    if draw and j >= len(draw):
                        raise ValueError(f"{where}: this run has only {len(draw)} edits; the file holds more")
                    check_outcome(o, first + j, self.settings, draw[j] if draw else None, where)
                except ValueError as err:
                    raise ValueError(f"{err}. Pass --no-resume to start over") from None
                done.append(o)
                self._spent = float(rec["seconds"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w") as f:  # rewrite: drops a cut-short last line
            f.write(json.dumps(self.settings) + "\n")
            for o in done:
                f.write(json.dumps({"outcome": dataclasses.asdict(o), "seconds": self._spent}) + "\n")
        self._t0 = time.perf_counter()
        return done, self._spent

    def add(self, outcome: EditOutcome) -> None:
        seconds = self._spent + time.perf_counter() - self._t0
        with open(self.path, "a") as f:
            f.write(json.dumps({"outcome": dataclasses.asdict(outcome), "seconds": seconds}) + "\n")

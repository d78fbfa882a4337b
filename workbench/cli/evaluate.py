"""``python -m workbench evaluate``: N independent edits of a model, scored as in the paper's Table 1.

With ``--json OUT.json`` finished edits go to ``OUT.json.partial`` as they come, and the same
command resumes an interrupted run there; ``--range START:STOP`` runs part of the N edits
(join the parts with ``merge-results``). A model or group without a tuned (or learned, or given)
step size gets a calibrated one first, on the validation split, and the output says so.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ..evaluation.merge import ADDED_LATER, check_outcome, complete_lines, parse_json, read_outcome_line
from ..evaluation.protocols import PROTOCOLS, make_edits
from ..evaluation.reports import EditOutcome
from ..training.checkpoint import model_sha256
from ._common import add_edit_args, check_output_file, command_line, header, layers_key, setup

NAME = "evaluate"
HELP = "N independent edits of a model: success rate, mean steps, drawdown"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_edit_args(p, 1000)
    p.add_argument("--protocol", default="random", choices=PROTOCOLS,
                   help="random: random labels on random test images (the paper); natural: "
                        "misclassified test images edited to their true label")
    p.add_argument("--lr", type=float, default=None,
                   help="editor learning rate (default: the learned one for the learned method and group, "
                        "else the tuned default)")
    p.add_argument("--beta", type=float, default=None, help="editor beta (default: as --lr)")
    p.add_argument("--split", default="test", choices=("test", "val"), help="split to edit and score")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images of the split")
    p.add_argument("--no-resume", action="store_true",
                   help="with --json: start over instead of resuming from OUT.json.partial")
    p.add_argument("--range", default=None, metavar="START:STOP",
                   help="run only edits START..STOP-1 of the N drawn (to split a long run over processes "
                        "or machines; join the parts with `python -m workbench merge-results`)")


    p.add_argument("--calibration-edits", type=int, default=None,
                   help="validation edits per lr when a step size must be calibrated (default 20)")


def _parse_range(text: str | None, n: int) -> tuple[int, int]:
    if text is None:
        return 0, n
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--range {text!r} is not START:STOP (two integers), e.g. --range 0:500") from None
    if not 0 <= a < b <= n:
        raise ValueError(f"--range {text} must satisfy 0 <= START < STOP <= N = --edits {n}, e.g. --range 0:{n // 2}")
    return a, b


class _Partial:
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


def run(args: argparse.Namespace) -> int:
    """N independent edits of a checkpoint, scored as in the paper's Table 1."""
    if args.json:  # before any work: a bad path must not fail the run at its end
        check_output_file(args.json, "--json")
        check_output_file(args.json + ".partial", "--json (its .partial file)")
    st = setup(args, args.split, args.limit)
    ev, card = st.evaluator, st.card
    choice = st.resolver.calibrated(st.choice)  # a model or group without a tuned default: calibrated
    cfg = choice.config
    start, stop = _parse_range(args.range, args.edits)
    edits = make_edits(args.protocol, ev, args.edits, args.seed)
    print(header(ev, card, st.source))
    if choice is not st.choice:
        print(f"instead of {st.choice.note}:")
    print(choice.note)
    sha = model_sha256(st.weights)
    settings = {
        "model_sha256": sha, "method": cfg.method, "lr": cfg.lr, "beta": cfg.beta, "max_steps": cfg.max_steps,
        "layers": layers_key(cfg.layers), "protocol": args.protocol, "edits": args.edits, "seed": args.seed,
        "split": ev.split, "limit": args.limit, "device": ev.device.type, "checkpoint": st.source,
        "test_error": ev.base_error, "examples": len(ev), "classes": ev.num_classes, "editor_source": choice.source}
    if args.range is not None:
        settings["range"] = [start, stop]
    partial = _Partial(Path(args.json + ".partial"), settings) if args.json else None
    done: list[EditOutcome] = []
    spent = 0.0
    if partial is not None:
        draw = [(int(i), int(t)) for i, t in zip(edits.indices[start:stop].tolist(), edits.y[start:stop].tolist())]
        done, spent = partial.start(resume=not args.no_resume, draw=draw)
        if done:
            print(f"resuming from {partial.path}: {len(done)} of {stop - start} edits already done")
    n = start + len(done)
    finished = [len(done)]

    def on_outcome(o: EditOutcome) -> None:
        finished[0] += 1
        if partial is not None:
            partial.add(o)

    try:
        summary = ev.evaluate_edits(edits.x[n:stop], edits.y[n:stop], cfg, protocol=args.protocol,
                                    progress=not args.no_progress, indices=edits.indices[n:stop], previous=done,
                                    previous_seconds=spent, on_outcome=on_outcome)
    except KeyboardInterrupt:
        total = stop - start
        if partial is None:
            print(f"\ninterrupted: {finished[0]} of {total} edits finished; nothing was saved (without --json a "
                  "run cannot resume). Rerun with --json OUT.json to make it resumable.", file=sys.stderr)
        else:
            again = [a for a in getattr(args, "argv", []) if a != "--no-resume"]
            print(f"\ninterrupted: {finished[0]} of {total} edits finished and saved in {partial.path}. Resume with:\n"
                  "  python -m workbench " + " ".join(shlex.quote(a) for a in again), file=sys.stderr)
        return 130
    summary = dataclasses.replace(summary, editor_source=choice.source)
    print(summary.table())
    print("(failed edits count as k steps; drawdown = error after - error before, over the whole "
          f"{ev.split} split; abs = mean of |change|, signed = mean change)")
    print(summary.noop_line())
    if summary.wrecked_edits:
        print(f"edit guard: {summary.wrecked_edits} of {summary.edits} edits flagged as wrecking the model "
              "(non-finite weights or a change larger than the weights; counted as failures): lower --lr")
    if args.json:
        out = {**summary.to_json(), **choice.to_json(), "checkpoint": st.source, "seed": args.seed,
               "device": str(ev.device), "command": command_line(args),
               "model_test_error_card": card.get("test_error"),
               "model_sha256": sha, "limit": args.limit, "classes": ev.num_classes}
        if args.range is not None:
            out |= {"range": [start, stop], "edits_total": args.edits}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        assert partial is not None
        partial.path.unlink(missing_ok=True)
        print(f"wrote {args.json}")
    return 0



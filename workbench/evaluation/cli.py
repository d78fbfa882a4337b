"""``python -m workbench evaluate`` and ``python -m workbench tune-editor``."""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..cli import check_output_file, command
from ..data import DataBundle
from ..editing import EditorChoice, choose_editor, get_method
from ..editing.defaults import DEFAULT_LAYERS
from ..models.registry import group_params
from .evaluator import Evaluator
from .merge import complete_lines, read_outcome_line
from .records import EditOutcome
from .protocols import PROTOCOLS, make_edits
from .tuning import parse_floats, tune_editor, write_defaults


def parse_layers(text: str) -> str | tuple[str, ...]:
    """``"chain3"`` -> ``"chain3"``; ``"chain3,head"`` -> ``("chain3", "head")``."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise ValueError("--layers is empty; name a group such as chain3")
    return parts[0] if len(parts) == 1 else parts


def load_checkpoint(folder: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(model, card)`` of a model folder, with a clear error when the folder is missing."""
    from ..training import load_model

    path = Path(folder)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass a model folder holding "
                                "model.safetensors and card.json (as written by `python -m workbench train`)")
    if not path.is_dir():
        raise ValueError(f"--checkpoint {str(path)!r} is a file; pass the model folder that holds "
                         f"model.safetensors and card.json (here perhaps {str(path.parent)!r})")
    return load_model(path, device=device)


def model_sha256(folder: str | Path) -> str:
    """SHA-256 of a model folder's ``model.safetensors``: which weights a result belongs to."""
    h = hashlib.sha256()
    with open(Path(folder) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_for_card(card: Mapping[str, Any]) -> DataBundle:
    """The data set a model was trained on, with the same train/val split (from its card)."""
    from ..data import load_for_card

    return load_for_card(dict(card))


def _common_args(p: argparse.ArgumentParser, edits: int) -> None:
    p.add_argument("--checkpoint", required=True, help="model folder (model.safetensors + card.json)")
    p.add_argument("--editor", default=None,
                   help="gd, scaled_gd, sign (rprop), rmsprop, rmsprop_official, momentum, adam (default: the "
                        "editor the model learned in Editable Training, recorded in its card; else rmsprop)")
    p.add_argument("--layers", default=None, help="editable group(s), e.g. chain3 or chain3,head (default: the "
                                                   f"group of the learned editor, else {DEFAULT_LAYERS})")
    p.add_argument("--edits", type=int, default=edits, help=f"number of independent edits (default {edits})")
    p.add_argument("--max-steps", type=int, default=None, help="k: step budget per edit (default: the learned "
                                                               "editor's, else 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the edit draw")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="examples per forward pass (default: 256 on the CPU, 2048 on CUDA)")
    p.add_argument("--json", default=None, metavar="OUT.json", help="also write the results as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    _common_args(p, 1000)
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


def _command_line(args: argparse.Namespace) -> str:
    return "python -m workbench " + " ".join(shlex.quote(a) for a in getattr(args, "_argv", []))


def _setup(args: argparse.Namespace, split: str, limit: int | None) -> tuple[Evaluator, dict[str, Any], EditorChoice]:
    if args.editor is not None:
        get_method(args.editor)  # fail fast on an unknown editor
    for name in ("edits", "max_steps", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    layers = parse_layers(args.layers) if args.layers is not None else None
    model, card = load_checkpoint(args.checkpoint)
    choice = choose_editor(card, method=args.editor, lr=getattr(args, "lr", None), beta=getattr(args, "beta", None),
                           max_steps=args.max_steps, layers=layers)
    layers = choice.config.layers
    group_params(model, layers)  # unknown group -> ValueError naming the groups
    bundle = bundle_for_card(card)
    ev = Evaluator(model, bundle, split=split, layers=layers, device=args.device,
                   batch_size=args.batch_size, limit=limit)
    args.layers_parsed = layers
    return ev, card, choice


def _header(ev: Evaluator, card: Mapping[str, Any], checkpoint: str) -> str:
    return (f"checkpoint {checkpoint} ({card.get('arch')}, {card.get('epochs')} epochs, {card.get('dataset')}); "
            f"{len(ev)} {ev.split} images, base error {100 * ev.base_error:.2f}%; device {ev.device}; "
            f"prefix cache {ev.cache_info()} built in {ev.setup_seconds:.1f} s")


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


def _layers_key(layers: str | tuple[str, ...]) -> str | list[str]:
    return layers if isinstance(layers, str) else list(layers)


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
        outcome must match its position in it, or the file is refused (not rewritten).
        """
        done: list[EditOutcome] = []
        if resume and self.path.exists():
            lines = complete_lines(self.path, allow_empty=True)
            header = json.loads(lines[0]) if lines else None
            if header is not None and "editor_source" not in header:  # written before it was recorded
                header["editor_source"] = self.settings.get("editor_source")
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
                if j >= len(draw) and draw:
                    raise ValueError(f"{where}: this run has only {len(draw)} edits; the file holds more. "
                                     "Pass --no-resume to start over")
                if draw and (o.index, o.target) != draw[j]:
                    raise ValueError(f"{where}: edit {j} has image {o.index} and target {o.target}, but this run's "
                                     f"seed draws image {draw[j][0]} and target {draw[j][1]}; the file was changed "
                                     "or belongs to another run. Pass --no-resume to start over")
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


@command("evaluate", _evaluate_args)
def cmd_evaluate(args: argparse.Namespace) -> int:
    """N independent edits of a checkpoint, scored as in the paper's Table 1."""
    if args.json:  # before any work: a bad path must not fail the run at its end
        check_output_file(args.json, "--json")
        check_output_file(args.json + ".partial", "--json (its .partial file)")
    ev, card, choice = _setup(args, args.split, args.limit)
    cfg = choice.config
    start, stop = _parse_range(args.range, args.edits)
    edits = make_edits(args.protocol, ev, args.edits, args.seed)
    print(_header(ev, card, args.checkpoint))
    print(choice.note)
    sha = model_sha256(args.checkpoint)
    settings = {
        "model_sha256": sha, "method": cfg.method, "lr": cfg.lr, "beta": cfg.beta, "max_steps": cfg.max_steps,
        "layers": _layers_key(cfg.layers), "protocol": args.protocol, "edits": args.edits, "seed": args.seed,
        "split": ev.split, "limit": args.limit, "device": ev.device.type, "checkpoint": str(args.checkpoint),
        "test_error": ev.base_error, "examples": len(ev), "editor_source": choice.source}
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
            again = [a for a in getattr(args, "_argv", []) if a != "--no-resume"]
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
        out = {**summary.to_json(), **choice.to_json(), "checkpoint": str(args.checkpoint), "seed": args.seed,
               "device": str(ev.device), "command": _command_line(args),
               "model_test_error_card": card.get("test_error"),
               "model_sha256": sha, "limit": args.limit}
        if args.range is not None:
            out |= {"range": [start, stop], "edits_total": args.edits}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        assert partial is not None
        partial.path.unlink(missing_ok=True)
        print(f"wrote {args.json}")
    return 0


def _tune_args(p: argparse.ArgumentParser) -> None:
    _common_args(p, 100)
    p.add_argument("--val-limit", type=int, default=2000, help="validation images to edit and score")
    p.add_argument("--lrs", default=None, help="comma-separated learning rates (default: 7 half-decade "
                                               "steps around the current default)")
    p.add_argument("--betas", default=None, help="comma-separated betas (default: per editor)")
    p.add_argument("--target-success", type=float, default=0.95, help="required success rate within k")
    p.add_argument("--refine", type=int, default=2, help="bisection steps of lr at the success boundary, per beta")
    p.add_argument("--write-defaults", action="store_true",
                   help="store the winner in workbench/editing/defaults.py (DEFAULTS and SOURCE)")
    p.add_argument("--defaults-file", default=None, help=argparse.SUPPRESS)


@command("tune-editor", _tune_args)
def cmd_tune_editor(args: argparse.Namespace) -> int:
    """Grid-search an editor's lr/beta on a validation slice (least drawdown at >= 95 % success)."""
    lrs, betas = parse_floats(args.lrs, "--lrs"), parse_floats(args.betas, "--betas")
    if args.json:
        check_output_file(args.json, "--json")
    if args.write_defaults and parse_layers(args.layers or DEFAULT_LAYERS) != DEFAULT_LAYERS:  # before loading anything
        raise ValueError(f"--write-defaults stores the defaults of group {DEFAULT_LAYERS!r}; for --layers "
                         f"{args.layers!r}, put the winner into GROUP_DEFAULTS in workbench/editing/defaults.py")
    ev, card, choice = _setup(args, "val", args.val_limit)
    print(_header(ev, card, args.checkpoint))
    cfg = choice.config
    if args.write_defaults and cfg.layers != DEFAULT_LAYERS:
        raise ValueError(f"--write-defaults stores the defaults of group {DEFAULT_LAYERS!r}, but this model's "
                         f"learned editor edits {cfg.layers!r}; pass --layers {DEFAULT_LAYERS}")
    reference = cfg if choice.source == "learned" else None
    if reference is not None:
        print(f"reference: {choice.note}; the default grid is centred on it and includes it")
    else:
        print(f"starting point: {choice.note}")
    res = tune_editor(ev, cfg.method, edits=args.edits, seed=args.seed, lrs=lrs, betas=betas,
                      layers=args.layers_parsed, max_steps=cfg.max_steps, target_success=args.target_success,
                      refine=args.refine, progress=not args.no_progress, reference=reference)
    print(res.table())
    if res.reference is not None:
        r = res.reference
        dd = "not scored (success target missed)" if r.drawdown_abs is None else f"{100 * r.drawdown_abs:.2f}% (abs)"
        print(f"learned editor (row marked L): success {100 * r.success_rate:.1f}%, mean steps {r.mean_steps:.2f}, "
              f"drawdown {dd}")
    b = res.best
    if b is None:
        print(f"no setting reached {100 * args.target_success:.0f}% success within k={args.max_steps}; "
              "widen the grid with --lrs (larger learning rates)")
    else:
        beta = "" if b.beta is None else f", beta={b.beta:g}"
        print(f"best: {res.editor} lr={b.lr:.3g}{beta}: success {100 * b.success_rate:.1f}%, "
              f"drawdown {100 * (b.drawdown_abs or 0):.2f}% (abs) on {len(ev)} val images, {res.seconds:.0f} s")
        if b.lr in (min(p.lr for p in res.points), max(p.lr for p in res.points)):
            print("note: the winner lies on the edge of the lr grid; consider widening it with --lrs")
    if args.json:
        out = {**res.to_json(), **choice.to_json(), "checkpoint": str(args.checkpoint),
               "command": _command_line(args)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.write_defaults:
        if b is None:
            print("error: nothing to write: no setting met the success target", file=sys.stderr)
            return 1
        note = (f"lr={b.lr:.4g}" + ("" if b.beta is None else f", beta={b.beta:g}")
                + f" (val success {100 * b.success_rate:.1f}%, drawdown {100 * (b.drawdown_abs or 0):.2f}% abs, "
                f"{res.edits} random-label edits of {len(ev)} val images, k={res.max_steps}, layers {res.layers}); "
                f"checkpoint {args.checkpoint} ({card.get('epochs')} epochs, test error {card.get('test_error')}, "
                f"commit {card.get('commit')}); `{_command_line(args)}`; {datetime.date.today().isoformat()}")
        path = write_defaults(res.editor, b.lr, b.beta, note, args.defaults_file)
        print(f"updated {path}")
    return 0


def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("parts", nargs="+", metavar="PART",
                   help="result JSON files of one evaluate run (split with --range), or its OUT.json.partial")
    p.add_argument("--json", required=True, metavar="OUT.json", help="where to write the joined result")


@command("merge-results", _merge_args)
def cmd_merge_results(args: argparse.Namespace) -> int:
    """Join the parts of one evaluate run (``--range`` parts, an unfinished run's .partial) into one result."""
    from .merge import merge_parts, read_part

    check_output_file(args.json, "--json")
    for p in args.parts:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p} does not exist; pass the JSON or .partial files of one evaluate run")
        if not Path(p).is_file():
            raise ValueError(f"{p} is a folder; pass the JSON or .partial files of one evaluate run")
    out = merge_parts([read_part(p) for p in args.parts])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"{out['edits']} edits from {len(args.parts)} part(s): drawdown {100 * out['drawdown_abs']:.2f}%, "
          f"success {100 * out['success_rate']:.1f}%, mean steps {out['mean_steps']:.2f}; wrote {args.json}")
    return 0

"""``python -m workbench evaluate``: N independent edits of a model, scored as in the paper's Table 1.

With ``--json OUT.json`` finished edits go to ``OUT.json.partial`` as they come, and the same
command resumes an interrupted run there; ``--range START:STOP`` runs part of the N edits
(join the parts with ``merge-results``). A model or group without a tuned (or learned, or given)
step size gets a calibrated one first, on the validation split, and the output says so.

Under ``torchrun --nproc-per-node R -m workbench evaluate ...`` the R ranks share the edits
(:mod:`workbench.evaluation.shards`); rank 0 calibrates, reads and writes ``OUT.json.partial``,
shows the progress bar and writes the one result, equal to a single process's but for timings.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..evaluation.protocols import PROTOCOLS, make_edits
from ..evaluation.reports import EditOutcome
from ..evaluation.shards import run_shard
from ..training.checkpoint import model_sha256
from ..training.distributed import Distributed
from ._common import add_edit_args, check_output_file, command_line, header, layers_key, setup
from ._partial import Partial
from ._ranks import Rank0Failed, check_agree, join, on_rank0

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
                   help="run only edits START..STOP-1 of the N drawn, to split a run over machines that share no "
                        "process group, or over days; join the parts with `python -m workbench merge-results` "
                        "(on one machine or cluster job, torchrun shares the edits without parts)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of each process (default: PyTorch's; under torchrun, this machine's cores "
                        "divided by its ranks, in place of torchrun's OMP_NUM_THREADS=1)")
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




def run(args: argparse.Namespace) -> int:
    """N independent edits of a checkpoint, scored as in the paper's Table 1 (one process or a torchrun job)."""
    if args.json:  # before any work: a bad path must not fail the run at its end
        check_output_file(args.json, "--json")
        check_output_file(args.json + ".partial", "--json (its .partial file)")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    _parse_range(args.range, args.edits)
    dist = join(args)
    try:
        rc = _evaluate(args, dist)
    except Rank0Failed:  # rank 0 printed the error
        rc = 2
    except BaseException:
        if dist is not None:
            dist.abort()  # no collective on the way out: torchrun stops the other ranks
        raise
    if dist is not None:
        gc.collect()  # the run's evaluator and caches go now, while the process group is alive, not at exit
        dist.close() if rc == 0 else dist.abort()
    return rc


def _evaluate(args: argparse.Namespace, dist: Distributed | None) -> int:
    main = dist is None or dist.is_main
    say: Callable[..., None] = print if main else (lambda *a, **k: None)
    st = setup(args, args.split, args.limit)
    ev, card = st.evaluator, st.card
    choice = on_rank0(dist, lambda: st.resolver.calibrated(st.choice))  # no tuned default: calibrated on rank 0
    cfg = choice.config
    start, stop = _parse_range(args.range, args.edits)
    edits = make_edits(args.protocol, ev, args.edits, args.seed)
    device = str(ev.device) if dist is None else check_agree(dist, ev.base_preds, edits.indices, edits.y)
    say(header(ev, card, st.source))
    if dist is not None:
        say(f"torchrun: {dist.world} processes ({dist.backend}) share the edits round-robin, each on its own device "
            f"({device}) with {torch.get_num_threads()} CPU thread(s)")
    if choice is not st.choice:
        say(f"instead of {st.choice.note}:")
    say(choice.note)
    sha = model_sha256(st.weights)
    settings = {
        "model_sha256": sha, "method": cfg.method, "lr": cfg.lr, "beta": cfg.beta, "max_steps": cfg.max_steps,
        "layers": layers_key(cfg.group), "protocol": args.protocol, "edits": args.edits, "seed": args.seed,
        "split": ev.split, "limit": args.limit, "device": ev.device.type, "checkpoint": st.source,
        "test_error": ev.base_error, "examples": len(ev), "classes": ev.num_classes, "editor_source": choice.source}
    if args.range is not None:
        settings["range"] = [start, stop]
    partial = Partial(Path(args.json + ".partial"), settings) if args.json and main else None

    def read_partial() -> tuple[list[EditOutcome], float]:
        if partial is None:
            return [], 0.0
        draw = [(int(i), int(t)) for i, t in zip(edits.indices[start:stop].tolist(), edits.y[start:stop].tolist())]
        return partial.start(resume=not args.no_resume, draw=draw)

    done, spent = on_rank0(dist, read_partial)
    if done:
        say(f"resuming from {args.json}.partial: {len(done)} of {stop - start} edits already done")
    outcomes = list(done)
    bar = _progress_bar(main and not args.no_progress and sys.stderr.isatty(), stop - start, len(done),
                        f"{args.protocol} edits ({cfg.method}, {summary_layers(cfg.group)})")

    def on_round(first: int, new: list[EditOutcome]) -> None:
        outcomes.extend(new)
        if partial is not None:
            for o in new:
                partial.add(o)
        bar.update(len(new))
        if not bar.disable and (bar.n % 10 < len(new) or bar.n == stop - start):
            ok = sum(o.success for o in outcomes) / len(outcomes)
            dd = sum(abs(o.drawdown) for o in outcomes) / len(outcomes)
            bar.set_postfix(success=f"{100 * ok:.1f}%", drawdown=f"{100 * dd:.2f}%")

    t0 = time.perf_counter()
    try:
        run_shard(ev, edits, start + len(done), stop, cfg, protocol=args.protocol,
                  rank=dist.rank if dist else 0, world=dist.world if dist else 1,
                  gather=dist.all_gather_object if dist else None, on_round=on_round)
    except KeyboardInterrupt:
        bar.close()
        if main:
            _interrupted(args, partial, len(outcomes), stop - start, torchrun=dist is not None)
        return 130
    finally:
        bar.close()
    if not main:
        return 0
    summary = ev.summarize(outcomes, cfg, protocol=args.protocol, seconds=spent + time.perf_counter() - t0)
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
               "device": device, "command": command_line(args),
               "model_test_error_card": card.get("test_error"),
               "model_sha256": sha, "limit": args.limit, "classes": ev.num_classes}
        if args.range is not None:
            out |= {"range": [start, stop], "edits_total": args.edits}
        if dist is not None:
            out["processes"] = dist.world  # how it ran (the figures do not depend on it)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        assert partial is not None
        partial.path.unlink(missing_ok=True)
        print(f"wrote {args.json}")
    return 0


def summary_layers(layers: str | tuple[str, ...]) -> str:
    """The group as results name it: ``"chain3"``, ``"chain3+head"``."""
    return layers if isinstance(layers, str) else "+".join(layers)


def _progress_bar(show: bool, total: int, initial: int, desc: str) -> Any:
    """A tqdm bar on stderr over the run's edits (a disabled one when ``show`` is False)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, disable=not show, dynamic_ncols=True)


def _interrupted(args: argparse.Namespace, partial: Partial | None, finished: int, total: int,
                 torchrun: bool = False) -> None:
    if partial is None:
        print(f"\ninterrupted: {finished} of {total} edits finished; nothing was saved (without --json a "
              "run cannot resume). Rerun with --json OUT.json to make it resumable.", file=sys.stderr)
    else:
        again = [a for a in getattr(args, "argv", []) if a != "--no-resume"]
        print(f"\ninterrupted: {finished} of {total} edits finished and saved in {partial.path}. Resume with:\n"
              "  python -m workbench " + " ".join(shlex.quote(a) for a in again)
              + ("\n(or with the same torchrun command, with any number of processes)" if torchrun else ""),
              file=sys.stderr)

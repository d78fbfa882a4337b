"""``evaluate`` under torchrun (2 gloo ranks on the CPU) equals one process; its progress bar goes to stderr."""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.support.repo import ROOT
from workbench.cli import main

TIMING = ("seconds", "edit_seconds")  # wall times: they differ from run to run
HOW_RUN = ("command", "processes")  # the command line (its --json path) and the number of ranks

distributed = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                 reason="torch.distributed with gloo is required")


def _argv(model: Path, out: Path, *extra: str) -> list[str]:
    """7 edits (odd: rank 1 gets one fewer than rank 0) of 300 test images, one CPU thread per process."""
    return ["evaluate", "--checkpoint", str(model), "--edits", "7", "--limit", "300", "--lr", "2e-3",
            "--max-steps", "4", "--seed", "3", "--threads", "1", "--device", "cpu", "--json", str(out), *extra]


def _comparable(js: dict) -> dict:
    """A result without its timings and how it was launched: what must equal between launches."""
    out = {k: v for k, v in js.items() if k not in TIMING + HOW_RUN}
    out["per_edit"] = [{k: v for k, v in e.items() if k not in TIMING} for e in js["per_edit"]]
    return out


@pytest.fixture
def restore_threads():
    """``--threads`` sets torch's threads in this process; put them back afterwards."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    env.pop("WORKBENCH_DEVICE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@distributed
def test_two_gloo_ranks_evaluate_exactly_as_one_process(tiny_model_dir, tmp_path, restore_threads, capsys):
    assert main(_argv(tiny_model_dir, tmp_path / "one.json")) == 0
    one = json.loads((tmp_path / "one.json").read_text())
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = _torchrun(["-m", "workbench", *_argv(tiny_model_dir, runs / "two.json")], ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    two = json.loads((runs / "two.json").read_text())
    assert two["processes"] == 2 and "processes" not in one
    assert _comparable(two) == _comparable(one)  # every per-edit outcome and the summary
    assert two["edits"] == 7 and len({e["index"] for e in two["per_edit"]}) == 7
    # rank 0 alone printed and wrote: one header, one table, one file, no .partial left
    assert "torchrun: 2 processes (gloo) share the edits" in proc.stdout
    assert proc.stdout.count("| rmsprop |") == 1 and proc.stdout.count("wrote ") == 1
    assert sorted(p.name for p in runs.iterdir()) == ["two.json"]


CRASH_ON_RANK1 = textwrap.dedent("""
    import os, sys
    import workbench.evaluation.edit_runs as edit_runs
    from workbench.cli import main

    real, calls = edit_runs.edit, []

    def edit(*args, **kwargs):  # Ctrl-C on rank 1 at its third edit (edit 5 of the draw)
        calls.append(1)
        if os.environ["RANK"] == "1" and len(calls) > 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    edit_runs.edit = edit
    sys.exit(main(sys.argv[1:]))
""")


@distributed
def test_a_run_stopped_under_torchrun_resumes_alone_or_under_torchrun(tiny_model_dir, tmp_path, restore_threads,
                                                                      edit_calls, capsys):
    assert main(_argv(tiny_model_dir, tmp_path / "whole.json")) == 0
    whole = _comparable(json.loads((tmp_path / "whole.json").read_text()))
    script = tmp_path / "crash.py"
    script.write_text(CRASH_ON_RANK1)
    out = tmp_path / "stopped.json"
    proc = _torchrun([str(script), *_argv(tiny_model_dir, out)], ROOT)
    assert proc.returncode != 0 and not out.exists()
    partial = Path(str(out) + ".partial")
    lines = partial.read_text().splitlines()
    # rounds 0 and 1 (edits 0..3) were gathered and saved, in draw order; edit 4 (rank 0's) was not
    assert len(lines) == 1 + 4
    assert [json.loads(line)["outcome"]["index"] for line in lines[1:]] == [e["index"] for e in whole["per_edit"][:4]]

    alone = tmp_path / "alone.json"  # the same .partial, resumed by one process: only edits 4..6 run
    shutil.copy(partial, str(alone) + ".partial")
    edit_calls.clear()
    capsys.readouterr()
    assert main(_argv(tiny_model_dir, alone)) == 0 and len(edit_calls) == 3
    assert "resuming from" in capsys.readouterr().out
    assert _comparable(json.loads(alone.read_text())) == whole

    proc = _torchrun(["-m", "workbench", *_argv(tiny_model_dir, out)], ROOT)  # resumed under torchrun
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"resuming from {out}.partial: 4 of 7 edits already done" in proc.stdout
    assert _comparable(json.loads(out.read_text())) == whole and not partial.exists()


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm draws its bar only there)."""

    def isatty(self) -> bool:
        return True


def test_progress_goes_to_stderr_on_a_terminal_and_leaves_the_result_unchanged(tiny_model_dir, tmp_path,
                                                                                 restore_threads, monkeypatch, capsys):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(_argv(tiny_model_dir, tmp_path / "bar.json")) == 0
    bar = term.getvalue()
    assert "random edits (rmsprop, chain3)" in bar and "7/7" in bar and "success=" in bar
    assert "7/7" not in capsys.readouterr().out  # the table and messages only, on stdout

    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(_argv(tiny_model_dir, tmp_path / "quiet.json", "--quiet")) == 0
    assert "edits (" not in quiet.getvalue()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(_argv(tiny_model_dir, tmp_path / "pipe.json")) == 0  # stderr not a terminal: no bar
    assert "edits (" not in capsys.readouterr().err
    results = [_comparable(json.loads((tmp_path / f"{n}.json").read_text())) for n in ("bar", "quiet", "pipe")]
    assert results[0] == results[1] == results[2]


def test_the_ranks_outcomes_must_be_the_draw_in_order(tiny_model, fashion):
    """Rank r edits r, r + world, ...; a round whose outcomes are not the draw's, in order, is refused."""
    from workbench.editing import EditorConfig
    from workbench.evaluation import Evaluator, random_label_edits
    from workbench.evaluation.shards import rounds, run_shard, shard

    assert [shard(2, 9, r, 3) for r in range(3)] == [[2, 5, 8], [3, 6], [4, 7]]
    assert rounds(2, 9, 3) == 3 and rounds(4, 4, 2) == 0
    ev = Evaluator(tiny_model, fashion, limit=200, device="cpu")
    edits = random_label_edits(ev, 4, seed=0)
    cfg = EditorConfig("rmsprop", lr=2e-3, max_steps=2)
    got: list = []
    run_shard(ev, edits, 1, 4, cfg, protocol="random", on_round=lambda first, outs: got.append(
        (first, [(o.index, o.target) for o in outs])))
    assert got == [(p, [(int(edits.indices[p]), int(edits.y[p]))]) for p in (1, 2, 3)]
    # rank 1's edit lost, or rank 0's received twice: as a broken partition would give
    for lost_or_twice in (lambda o: [o, None], lambda o: [o, o]):
        with pytest.raises(RuntimeError, match=r"positions 0\.\.1 of the draw.*a bug"):
            run_shard(ev, edits, 0, 4, cfg, protocol="random", rank=0, world=2, gather=lost_or_twice)


def test_ranks_that_see_other_predictions_or_another_draw_are_refused():
    from workbench.cli._ranks import disagreement, fingerprint

    preds, idx, y = torch.tensor([0, 1, 2, 1]), torch.tensor([3, 0]), torch.tensor([2, 2])
    same = [fingerprint(preds, idx, y, "cuda:0"), fingerprint(preds.clone(), idx.clone(), y.clone(), "cuda:1")]
    assert disagreement(same) is None
    for other in (fingerprint(torch.tensor([0, 1, 2, 2]), idx, y, "cuda:1"),  # another base prediction
                  fingerprint(preds, torch.tensor([0, 3]), y, "cuda:1")):  # another draw
        msg = disagreement([same[0], other])
        assert msg is not None and "rank(s) [1]" in msg and "one process" in msg


class _Ranks:
    """Stands in for a process group of two: records what rank 0 sends, hands rank 1 what was sent."""

    def __init__(self, rank: int, sent: list):
        self.rank, self.sent = rank, sent
        self.is_main = rank == 0

    def broadcast_object(self, obj):
        if self.is_main:
            self.sent.append(obj)
            return obj
        return self.sent[-1]


def test_a_step_that_fails_on_rank0_stops_every_rank_with_rank0s_message():
    from workbench.cli._ranks import Rank0Failed, on_rank0

    def refuse():
        raise ValueError("OUT.json.partial holds an interrupted run with other settings")

    sent: list = []
    with pytest.raises(ValueError, match="other settings"):
        on_rank0(_Ranks(0, sent), refuse)  # rank 0 raises (and prints) the error...
    with pytest.raises(Rank0Failed):
        on_rank0(_Ranks(1, sent), lambda: pytest.fail("rank 1 must not run the step"))  # ...rank 1 stops too
    assert on_rank0(_Ranks(0, sent), lambda: ([1, 2], 3.5)) == ([1, 2], 3.5)
    assert on_rank0(_Ranks(1, sent), lambda: pytest.fail("rank 1 must not run the step")) == ([1, 2], 3.5)
    assert on_rank0(None, lambda: 7) == 7  # one process: the step runs there

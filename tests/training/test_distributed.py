"""DDP with gloo on 2 CPU processes, launched the way users do (torch.distributed.run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from tests.support.settings import TINY_JSON
from tests.support.repo import ROOT

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is required")


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env.pop("WORKBENCH_DEVICE", None)
    return env


def _launch(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_two_gloo_ranks_train_editable_identically(tmp_path):
    dump, out = tmp_path / "dump", tmp_path / "run"
    _launch(["-m", "workbench", "train", "--recipe", "fashion-editable", "--init-from", "none",
             "--train-subset", "512", "--batch-size", "32", "--epochs", "2", "--lr", "3e-3", "--eval-subset", "200",
             "--edit-steps", "3", "--arch-kwargs", TINY_JSON, "--out", str(out), "--device", "cpu", "--no-progress"],
            _env(WORKBENCH_DUMP_PARAMS=str(dump)), tmp_path)
    a = torch.load(dump / "rank0.pt", weights_only=True)
    b = torch.load(dump / "rank1.pt", weights_only=True)
    assert set(a) == set(b) and "objective.editor_log_lr" in a
    for k in a:  # weights, BN statistics and the learned editor lr/beta
        assert torch.equal(a[k], b[k]), k
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    card = json.loads((out / "card.json").read_text())
    assert card["world_size"] == 2 and len(rows) == 2
    assert rows[-1]["L_base"] < rows[0]["L_base"]  # the loss went down
    assert rows[0]["L_loc"] > 1e-6  # nontrivial edits (differing per rank) took part; round-off is ~1e-8
    assert rows[0]["step"] == 512 // (32 * 2)  # each rank took its own shard


GRAD_CHECK = textwrap.dedent("""
    import copy, gc, sys, torch
    from workbench.models import build_model
    from workbench.training import EditableObjective
    from workbench.training.distributed import from_env

    d = from_env("cpu")
    g = torch.Generator().manual_seed(d.rank)  # every rank its own batch and its own edits
    x, y = torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
    lines = []
    for first_order in (False, True):
        torch.manual_seed(0)
        model = build_model("small-resnet", widths=[8, 8, 16, 16])
        ref = copy.deepcopy(model)
        ddp = d.wrap(model)
        obj = EditableObjective(editor_lr=1e-3, c_edit=1.0, c_loc=1.0, rank=d.rank, first_order=first_order)
        loss, logs = obj(ddp, x, y, 3)
        loss.backward()
        obj(ref.train(), x, y, 3)[0].backward()  # the same objective without DDP
        local = [p.grad.clone() for p in ref.parameters()]
        d.all_reduce_mean_(local)
        err = max(float((p.grad - l).abs().max()) for p, l in zip(model.parameters(), local))
        lines.append(f"first_order={first_order} max_abs_err={err} L_loc={logs['L_loc']}")
        # DDP's reducer must go before its process group: the loss's graph holds it too, and a
        # reducer destroyed after the group at interpreter exit aborts the process (SIGABRT)
        del ddp, loss, logs
        gc.collect()
    with open(sys.argv[1] + f".rank{d.rank}", "w") as fh:
        fh.write("\\n".join(lines))
    d.close()
""")


def test_ddp_gradient_is_the_mean_of_the_full_local_objectives(tmp_path):
    """Second and first order: DDP's gradient == mean over ranks of each rank's full objective."""
    script = tmp_path / "grad_check.py"
    script.write_text(GRAD_CHECK)
    _launch([str(script), str(tmp_path / "result")], _env(), ROOT)
    for rank in (0, 1):
        lines = (tmp_path / f"result.rank{rank}").read_text().splitlines()
        assert len(lines) == 2, lines
        for line in lines:
            err = float(line.split("max_abs_err=")[1].split()[0])
            # L_loc: the edits moved the predictions by far more than float32 round-off (~1e-8)
            assert err <= 1e-6 and float(line.split("L_loc=")[1]) > 1e-6, line


FAIL_ON_RANK1 = textwrap.dedent("""
    import dataclasses, sys
    from workbench.training import run
    from workbench.training.loop import CrossEntropyObjective
    from workbench.training.recipes import get_recipe

    make = run.make_objective

    class FailsAtStep3:
        def __init__(self, inner):
            self.inner = inner or CrossEntropyObjective()  # None: the baseline's cross-entropy

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, model, x, y, step):
            if step >= 3:
                raise RuntimeError("injected failure on rank 1")
            return self.inner(model, x, y, step)

    run.make_objective = lambda recipe, rank=0: FailsAtStep3(make(recipe, rank)) if rank == 1 else make(recipe, rank)
    recipe = dataclasses.replace(get_recipe("fashion-baseline"), train_subset=512, batch_size=32, epochs=1,
                                 eval_subset=200, warmup_epochs=0.0,
                                 arch_kwargs={"widths": [8, 8, 16, 16], "blocks": [1, 1, 1, 1]})
    run.run_training(recipe, sys.argv[1], device="cpu", progress=False)
""")


def test_an_error_on_one_rank_ends_the_whole_job(tmp_path):
    # Before the fix the failing rank waited in a barrier while the other waited in its
    # gradient all-reduce: the job hung until gloo's 30-minute timeout.
    script = tmp_path / "fail.py"
    script.write_text(FAIL_ON_RANK1)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0
    assert "injected failure on rank 1" in proc.stdout + proc.stderr
    assert not (tmp_path / "run" / "card.json").exists()  # no checkpoint claims a finished run

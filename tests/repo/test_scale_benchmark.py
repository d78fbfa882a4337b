"""benchmarks/scale.py runs end to end on a tiny model and resumes: a finished row is skipped on a rerun.

One run of the real script (three child processes per row) on 24 Fashion-MNIST images at 32 px,
written once as an ImageFolder of PNGs in tmp_path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.repo import ROOT


def run(tmp_path: Path) -> str:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--models", "tiny", "--n", "24", "--size", "32",
           "--device", "cpu", "--results", str(tmp_path / "results"), "--data", str(tmp_path / "data")]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_the_scale_benchmark_writes_each_row_once_and_skips_it_on_a_rerun(tmp_path):
    first = run(tmp_path)
    row_path = tmp_path / "results" / "tiny-24-exact.json"
    row = json.loads(row_path.read_text())
    assert "tiny:24:exact: running" in first and "| tiny | 24 | exact |" in first
    assert row["reopen from cache"] is True  # the reopen read the score cache written by the open
    assert row["plain vs scored: predictions that differ"] == 0  # exact scores = the plain loop's
    assert row["scored/plain"] == row["fully scored s"] / row["plain s"] and row["peak RSS MiB (session)"] > 0
    if Path("/proc/self/status").exists():  # Linux: the process's own (anonymous) memory, within its RSS
        assert 0 < row["peak anon MiB (session)"] <= row["peak RSS MiB (session)"]
    assert ("n/a (blocking open)" in first) != row["progressive"]
    pngs = sorted((tmp_path / "data" / "fashion-32" / "n24").glob("*/*.png"))
    assert len(pngs) == 24
    stamp = (row_path.stat().st_mtime_ns, [p.stat().st_mtime_ns for p in pngs])

    again = run(tmp_path)
    assert "tiny:24:exact: done earlier" in again and "running" not in again
    assert "| tiny | 24 | exact |" in again  # the table still shows the finished row
    assert (row_path.stat().st_mtime_ns, [p.stat().st_mtime_ns for p in pngs]) == stamp
    assert json.loads(row_path.read_text()) == row

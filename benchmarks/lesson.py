"""The lesson of the teaching page, step by step, on the shipped models: each step's sentence and its time.

    python benchmarks/lesson.py                 # all 10,000 test images
    python benchmarks/lesson.py --limit 2000

Opens the app page's workbench (``workbench.widgets.app.app``, no browser) on the shipped
editable-trained model, then presses the lesson's Next five times, as the teacher does: a cheap
fix on a typical mistake, a costly fix on a confident mistake, undo, the same fix on the baseline
and on the editable-trained model (this step opens and scores both), "where is it stored?".
Prints one line per step: seconds (kernel side) and the sentence the lesson strip shows.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    from workbench.widgets.app import app

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--limit", type=int, default=None, help="score the first LIMIT test images only")
    args = p.parse_args()
    t = time.perf_counter()
    page = app(None, limit=args.limit, probe_views=0, output_dir=tempfile.mkdtemp(prefix="wb-lesson-"))
    print(f"opened {page.name} on {len(page.session.labels):,} test images in {time.perf_counter() - t:.1f} s")
    for k, step in enumerate(page.lesson.steps, 1):
        t = time.perf_counter()
        result = page.lesson.next()
        print(f"step {k} ({step.title}), {time.perf_counter() - t:.1f} s: {result}")


if __name__ == "__main__":
    main()

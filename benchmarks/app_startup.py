"""Startup of the teaching app as a classroom meets it: ``scripts/app.sh`` (Voila with a
preheated kernel) is started, and once its kernel has run the notebook, Chromium opens the
page; the time from the page request to a usable workbench (thumbnails visible) is printed.

    python benchmarks/app_startup.py                 # 3 page opens, one server each

The last line is ``app page (preheated kernel): <s>s to a usable workbench (median of <n>)``.
Compare with the fresh-kernel Voila figure of ``benchmarks/browser_latency.py``.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_open(settle: float) -> float:
    """Start app.sh, wait for its preheated kernel, open the page once; seconds to usable."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="wb-app-", suffix=".log")[1])
    env = {**os.environ, "WORKBENCH_VENV": sys.prefix, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(["bash", "scripts/app.sh", f"--port={port}"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        t0 = time.monotonic()
        while "is filled with" not in log.read_text():  # the pool's size is in voila.json
            if proc.poll() is not None or time.monotonic() - t0 > 300:
                sys.exit(f"scripts/app.sh did not preheat a kernel; see {log}")
            time.sleep(0.5)
        time.sleep(settle)  # the pool is reported filled when the kernel starts the notebook
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                         "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            t = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
            page.locator(".wb-thumb-select").first.wait_for(state="visible", timeout=180_000)
            seconds = time.perf_counter() - t
            browser.close()
        return seconds
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.unlink(missing_ok=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--opens", type=int, default=3, help="page opens to time (a new server each)")
    p.add_argument("--settle", type=float, default=15.0,
                   help="seconds to wait after the pool is filled, for the kernel to finish the notebook")
    args = p.parse_args()
    times = []
    for _ in range(args.opens):
        times.append(one_open(args.settle))
        print(f"app page: {times[-1]:.1f}s")
    print(f"app page (preheated kernel): {statistics.median(times):.1f}s to a usable workbench "
          f"(median of {len(times)})")


if __name__ == "__main__":
    main()

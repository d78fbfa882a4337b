"""Make ``docs/img/workbench.png``: the workbench after one Edit, as a 1366x768 browser shows it.

    python docs/img/screenshot.py            # the shipped default model, all 10,000 test images

Serves ``notebooks/01_workbench.ipynb`` with Voila (as ``scripts/app.sh`` does), opens it in
Debian's chromium through Playwright, picks the first mistake of the default sort, picks its
true label, presses Edit, waits for the exact figures, and saves the viewport as a palette PNG.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "workbench.png"
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pick", type=int, default=0, help="which thumbnail of the first page to edit")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="wb-shot-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "voila", "notebooks/01_workbench.ipynb", "--no-browser", f"--port={port}",
           "--strip_sources=True", "--theme=light", "--Voila.ip=127.0.0.1"]
    if os.getuid() == 0:
        cmd.append("--ServerApp.allow_root=True")
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(180_000)
            for _ in range(60):
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
                    break
                except Exception:
                    time.sleep(1)
            thumbs = page.locator(".wb-thumb-select")
            expect(thumbs.first).to_be_visible()
            page.locator(".wb-root").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            thumbs.nth(args.pick).click()
            page.locator(".wb-target-true").click()
            page.locator(".wb-edit").click()
            card = page.locator(".wb-card")
            expect(card).to_contain_text("Fixed", timeout=180_000)
            expect(page.locator(".wb-undo")).to_be_enabled(timeout=180_000)
            expect(page.locator(".wb-edit")).to_be_enabled(timeout=180_000)
            time.sleep(2)
            png = Path(tempfile.mkstemp(suffix=".png")[1])
            page.screenshot(path=str(png))
            browser.close()
        Image.open(png).convert("RGB").quantize(colors=256).save(args.out, optimize=True)
        png.unlink()
        print(f"{args.out}: {args.out.stat().st_size // 1024} KB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

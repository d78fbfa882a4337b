"""A classroom on one server: N students open the app page at once, each makes one edit and saves it.

Serves the teaching page (``scripts/app.ipynb``) as ``scripts/app.sh`` serves it: Voila run from
the repository root with its ``voila.json`` (the preheated kernel pool and idle culling), the
page's settings in ``WORKBENCH_APP_*`` variables, on 127.0.0.1 only. For each N it
starts a fresh server, waits for the pool to be warm, then opens N headless Chromium contexts
at the same moment (Playwright, Debian's chromium). Each page, independently:

1. waits for a usable workbench (thumbnails visible): **time to usable**;
2. picks the k-th mistake of its list (k = the page's number, so no two pages fix the same
   image), targets its true label, clicks Edit: **click latency** to the outcome and to the
   exact figures on the card;
3. saves its history (History & export → Save).

Then it checks that no edit was lost: N history folders, each with one applied edit of its own
page's image. It reports, per N: time to usable and click latency (median and max), the kernels'
memory (RSS and USS per kernel, from ``psutil``; USS is what each kernel adds), the server's
RSS and the machine's available memory. Bounded: N <= 20, one deadline per run.

    python benchmarks/classroom.py --n 1 2                  # shipped model, 10,000 images
    python benchmarks/classroom.py --n 1 5 10 --limit 2000

This is a measurement, not a test (``tests/ui/test_classroom_ui.py`` checks isolation with 2 pages).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from browser_latency import start_server  # the same script folder: started and probed the same way

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MAX_PAGES = 20
APP_CONFIG = ROOT / "voila.json"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[1, 2], help="pages opened at once, one run per value")
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped editable model)")
    p.add_argument("--limit", type=int, default=None, help="first LIMIT test images (default: all 10,000)")
    p.add_argument("--notebook", default=os.environ.get("WORKBENCH_APP_NOTEBOOK", "scripts/app.ipynb"),
                   help="the page, relative to the repository root (as scripts/app.sh: WORKBENCH_APP_NOTEBOOK)")
    p.add_argument("--lr", type=float, default=None, help="editor step size to type in (a tiny test model needs one)")
    p.add_argument("--deadline", type=float, default=900.0, help="seconds one run (one N) may take in all")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(notebook: str, out: Path, checkpoint: str | None, limit: int | None, port: int,
          log: Path) -> subprocess.Popen:
    """Voila as ``scripts/app.sh`` runs it: from the repository root (Voila reads ``voila.json``
    there), the page's model, limit and output folder in ``WORKBENCH_APP_*`` variables, on 127.0.0.1."""
    cmd = [sys.executable, "-m", "voila", notebook, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
           "--ServerApp.allow_root=True"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MPLBACKEND": "Agg", "WORKBENCH_TRACEBACKS": "0", "WORKBENCH_APP_OUTPUT": str(out)}
    if checkpoint:
        env["WORKBENCH_APP_MODEL"] = str(Path(checkpoint).resolve())
    if limit is not None:
        env["WORKBENCH_APP_LIMIT"] = str(limit)
    return start_server(cmd, ROOT, env, f"http://127.0.0.1:{port}/voila/static/voila.js", log, "voila")


def kernels(server: subprocess.Popen) -> list[psutil.Process]:
    out = []
    for p in psutil.Process(server.pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


def wait_warm(server: subprocess.Popen, pool: int, timeout: float) -> float:
    """Seconds until ``pool`` kernels exist and have finished running the notebook (idle CPU)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        ks = kernels(server)
        if len(ks) >= pool:
            try:
                busy = sum(k.cpu_percent(interval=1.0) for k in ks)
            except psutil.Error:
                continue
            if busy < 5.0:
                return time.monotonic() - t0
        else:
            time.sleep(1.0)
    sys.exit(f"the kernel pool ({pool}) was not warm within {timeout:.0f} s")


def memory(server: subprocess.Popen) -> dict[str, float]:
    """MiB: per kernel RSS and USS (median, max), all kernels' USS, the server's RSS, available."""
    rss, uss = [], []
    for k in kernels(server):
        try:
            info = k.memory_full_info()
            rss.append(info.rss / 2**20)
            uss.append(info.uss / 2**20)
        except psutil.Error:
            pass
    return {"kernels": len(rss), "rss_med": statistics.median(rss) if rss else 0.0, "rss_max": max(rss, default=0.0),
            "uss_med": statistics.median(uss) if uss else 0.0, "uss_sum": sum(uss),
            "server_rss": psutil.Process(server.pid).memory_info().rss / 2**20,
            "available": psutil.virtual_memory().available / 2**20}


async def student(browser, url: str, k: int, lr: float | None, timeout_ms: float) -> dict:
    """One page: usable, one edit (the k-th mistake), one save. Returns its timings and save name."""
    ctx = await browser.new_context(viewport={"width": 1366, "height": 768})
    page = await ctx.new_page()
    page.set_default_timeout(timeout_ms)
    out: dict = {"page": k}

    def step(what: str) -> None:
        out["step"] = what
        print(f"  page {k}: {what} ({time.perf_counter() - t0:.1f}s)", flush=True)

    t0 = time.perf_counter()
    try:
        await page.goto(url, timeout=timeout_ms)
        step("page loaded")
        thumbs = page.locator(".wb-thumb-select")
        await thumbs.nth(k).wait_for(state="visible")
        out["usable"] = time.perf_counter() - t0
        step("usable")
        await thumbs.nth(k).click()
        await page.wait_for_function("() => /#\\d+/.test(document.querySelector('.wb-target-header').innerText)")
        out["index"] = int(re.search(r"#(\d+)", await page.locator(".wb-target-header").inner_text()).group(1))
        if lr is not None:
            await page.locator(".wb-advanced:has(.wb-lr) .lm-AccordionPanel-title, .wb-advanced:has(.wb-lr) "
                               ".jupyter-widget-Collapse-header").first.click()
            await page.locator(".wb-lr input").fill(str(lr))
            await page.locator(".wb-lr input").press("Enter")
        await page.locator(".wb-target-true").click()
        await page.wait_for_timeout(300)
        t1 = time.perf_counter()
        await page.locator(".wb-edit").click()
        await page.wait_for_function("() => /Fixed|Not fixed|Nothing to fix|Refused/.test("
                                     "document.querySelector('.wb-card').textContent)")
        out["outcome"] = time.perf_counter() - t1
        await page.wait_for_function("() => /other images changed/.test(document.querySelector('.wb-card').textContent)")
        out["exact"] = time.perf_counter() - t1
        step("edited")
        out["fixed"] = "Fixed" in await page.locator(".wb-card").inner_text()
        await page.locator(".wb-edit:not([disabled])").wait_for()  # the click's last panel is done
        await page.locator(".wb-tabs .lm-TabBar-tab", has_text="History").first.click()
        out["name"] = (await page.locator(".wb-history-name input").input_value()).strip()
        await page.locator(".wb-save").click()
        await page.get_by_text("Saved the history").first.wait_for()
        out["saved"] = True
    except Exception as err:  # noqa: BLE001 - a failed page is reported, not fatal to the run
        out["error"] = f"at '{out.get('step', 'the start')}': {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        await page.screenshot(path=str(ROOT / "test-artifacts" / f"classroom-page{k}-failed.png"))
    return out


async def run_pages(url: str, n: int, lr: float | None, deadline: float) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"])
        try:
            pages = await asyncio.wait_for(asyncio.gather(*(student(browser, url, k, lr, deadline * 900)
                                                            for k in range(n))), timeout=deadline)
        finally:
            await browser.close()
    return pages


def check_saves(folder: Path, pages: list[dict]) -> list[str]:
    """Problems with the saves in ``folder`` (the page's output folder): each page's history, one
    applied edit of its own image."""
    problems = []
    for p in pages:
        if not p.get("saved"):
            problems.append(f"page {p['page']}: not saved ({p.get('error', 'no save')})")
            continue
        doc = json.loads((folder / p["name"] / "history" / "history.json").read_text())
        got = [e["index"] for e in doc["applied"]]
        if got != [p["index"]]:
            problems.append(f"page {p['page']}: its history holds edits of {got}, expected [{p['index']}]")
    return problems


def one_run(args: argparse.Namespace, n: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="wb-classroom-"))
    port = free_port()
    if not (ROOT / args.notebook).is_file():
        sys.exit(f"{args.notebook} not found under {ROOT}: give --notebook a page relative to the repository root")
    server = serve(args.notebook, folder / "workbench-output", args.checkpoint, args.limit, port, folder / "voila.log")
    pool = json.loads(APP_CONFIG.read_text())["VoilaConfiguration"]["default_pool_size"]
    try:
        warm = wait_warm(server, pool, args.deadline)
        idle = memory(server)
        t0 = time.perf_counter()
        pages = asyncio.run(run_pages(f"http://127.0.0.1:{port}/", n, args.lr, args.deadline))
        wall = time.perf_counter() - t0
        loaded = memory(server)
        problems = check_saves(folder / "workbench-output", pages)
        ok = [p for p in pages if "exact" in p]

        def stat(key: str) -> str:
            v = [p[key] for p in ok if key in p]
            return f"{statistics.median(v):.1f}s median, {max(v):.1f}s max" if v else "n/a"

        print(f"N={n}: pool of {pool} warm after {warm:.0f}s; {len(ok)}/{n} pages edited, "
              f"{sum(1 for p in pages if p.get('saved'))}/{n} saved, {wall:.0f}s in all")
        print(f"  time to usable {stat('usable')}; click to outcome {stat('outcome')}; to exact figures {stat('exact')}")
        print(f"  memory before the class: {idle['kernels']} kernel(s), RSS {idle['rss_med']:.0f} MiB each "
              f"(USS {idle['uss_med']:.0f} MiB); server RSS {idle['server_rss']:.0f} MiB")
        print(f"  memory with the class: {loaded['kernels']} kernel(s), RSS median {loaded['rss_med']:.0f} MiB, "
              f"max {loaded['rss_max']:.0f} MiB; USS median {loaded['uss_med']:.0f} MiB, all kernels "
              f"{loaded['uss_sum']:.0f} MiB; server RSS {loaded['server_rss']:.0f} MiB; available "
              f"{loaded['available'] / 1024:.1f} GiB")
        for q in problems:
            print(f"  PROBLEM {q}")
        print(f"classroom N={n}: usable {stat('usable')}, edit {stat('exact')}, kernel RSS "
              f"{loaded['rss_med']:.0f} MiB, {'no edit lost' if not problems else f'{len(problems)} problem(s)'}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)


def main(args: argparse.Namespace) -> None:
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} not found: apt-get install -y chromium")
    bad = [n for n in args.n if not 1 <= n <= MAX_PAGES]
    if bad:
        sys.exit(f"--n must be from 1 to {MAX_PAGES} (pages opened at once), got {bad}")
    for n in args.n:
        one_run(args, n)


if __name__ == "__main__":
    main(get_args_parser().parse_args())

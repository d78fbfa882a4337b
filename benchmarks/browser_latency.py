"""Browser latency of one Edit click: from the click to each panel's update, in Chromium.

Serves the workbench notebook with Voila (as ``scripts/app.sh`` does) on the chosen model,
opens it in Debian's chromium through Playwright, and for each of N clicks (different
mistakes, target = the true label, each from the base weights: Undo in between) records
``performance.now()`` at the click and when each panel's DOM changes:

* outcome:    the outcome card shows the edit's result (success, new prediction, steps);
* estimate:   the card shows the drawdown estimate with its 95% interval;
* exact:      the card shows the exact drawdown on the whole split;
* all panels: the last of the card, the per-class heading, the changed-images strip, the
              attribution image, the probe, the history table and the error browser.

It also reports the startup to a usable workbench (thumbnails visible), two ways:

* JupyterLab: the notebook open and its kernel idle, "Run All" to the progress line and to
  the usable workbench (what a user of ``scripts/lab.sh`` waits for);
* Voila: the page request to the usable workbench, with a fresh kernel (kernel start,
  imports, model, data, base scores; ``scripts/app.sh`` preheats one, so its first visitor
  does not wait for this).

    python benchmarks/browser_latency.py                    # default model, 5 clicks
    python benchmarks/browser_latency.py --clicks 9 --limit 2000
    python benchmarks/browser_latency.py --startup-only --repeats 3

The last line is ``browser click: outcome <s>s, estimate <s>s, all panels <s>s (median of <n>)``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_workbench.ipynb"
CHROMIUM = "/usr/bin/chromium"
PANELS = {  # name -> CSS selector whose subtree changes when the panel is updated
    "card": ".wb-card", "details": ".wb-metrics-heading", "strip": ".wb-flipped-label",
    "attribution": ".wb-attr-image", "probe": ".wb-probe", "history": ".wb-history-table",
    "browser": ".wb-page-label",
}
PICKED = """(before) => {  // the header shows the new pick, and one button (its true label) is marked
  const h = document.querySelector('.wb-target-header'), t = document.querySelectorAll('.wb-target-true');
  if (!h || h.innerText === before || t.length !== 1) return false;
  const m = /true: (.+?), predicted/.exec(h.innerText);
  return m !== null && t[0].innerText.trim() === m[1].trim();
}"""
WATCH = """(panels) => {
  window.__wb = {t0: null, seen: {}};
  document.addEventListener("click", (ev) => {  // the click on Edit starts the clock
    if (ev.target.closest && ev.target.closest(".wb-edit")) { window.__wb.seen = {}; window.__wb.t0 = performance.now(); }
  }, true);
  const note = (name) => { if (window.__wb.t0 !== null && !(name in window.__wb.seen))
      window.__wb.seen[name] = performance.now() - window.__wb.t0; };
  for (const [name, sel] of Object.entries(panels)) {
    const el = document.querySelector(sel);
    if (!el) continue;
    new MutationObserver(() => {
      note(name);
      if (name === "card") {
        const t = el.textContent;
        if (/Fixed|Not fixed|Nothing to fix/.test(t)) note("outcome");
        if (/estimate from/.test(t)) note("estimate");
        if (/other images changed/.test(t)) note("exact");
      }
    }).observe(el, {subtree: true, childList: true, characterData: true, attributes: true});
  }
}"""



def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="model folder (default: the shipped editable model)")
    p.add_argument("--limit", type=int, default=None, help="first LIMIT test images (default: all)")
    p.add_argument("--clicks", type=int, default=5, help="timed clicks (after one warm-up click)")
    p.add_argument("--lr", type=float, default=None, help="editor step size to type in (default: the tuned one)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one click's panels")
    p.add_argument("--startup-only", action="store_true", help="time the startups only (no clicks)")
    p.add_argument("--repeats", type=int, default=1, help="JupyterLab startups to time (fresh kernel each)")
    p.add_argument("--compare", action="store_true",
                   help="time the Comparison's click instead (baseline vs editable, the same edit on both)")
    return p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _notebook(folder: Path, checkpoint: str | None, limit: int | None, compare: bool = False) -> Path:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    ckpt = str(Path(checkpoint).resolve()) if checkpoint else str(ROOT / "assets" / "models" / "fashion-editable")
    models = ROOT / "assets" / "models"
    cell.source = (f"CHECKPOINT = {ckpt!r}\nLIMIT = {limit!r}\nCOMPARE = {compare!r}\n"
                   f"BASELINE = {str(models / 'fashion-baseline')!r}\nEDITABLE = {str(models / 'fashion-editable')!r}")
    out = folder / NOTEBOOK.name
    nbformat.write(nb, out)
    return out


def start_server(cmd: list[str], folder: Path, env: dict, probe: str, log: Path, what: str) -> subprocess.Popen:
    """Start ``cmd`` in ``folder`` (output to ``log``) and return once ``probe`` answers (180 s at most)."""
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit(f"{what} did not start within 180 s; see {log}")


def _serve(folder: Path, nb: Path, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "voila", nb.name, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
           "--theme=light", "--ServerApp.allow_root=True"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "MPLBACKEND": "Agg"}
    return start_server(cmd, folder, env, f"http://127.0.0.1:{port}/voila/static/voila.js", log, "voila")


def _serve_lab(folder: Path, port: int, log: Path) -> subprocess.Popen:
    """JupyterLab with the browser test's server config (no token, galata's page helpers)."""
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--config={ROOT / 'tests' / 'ui' / 'jupyter_server_config.py'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MPLBACKEND": "Agg", "WB_UI_PORT": str(port), "WB_UI_ROOT": str(folder),
           "JUPYTERLAB_GALATA_ROOT_DIR": str(folder)}
    return start_server(cmd, folder, env, f"http://127.0.0.1:{port}/api/status", log, "jupyter lab")


def _shutdown_kernels(port: int) -> None:
    import json

    base = f"http://127.0.0.1:{port}/api/sessions"
    with urllib.request.urlopen(base, timeout=10) as r:
        sessions = json.load(r)
    for sess in sessions:
        urllib.request.urlopen(urllib.request.Request(f"{base}/{sess['id']}", method="DELETE"), timeout=30).close()


def lab_startup(browser, folder: Path, repeats: int) -> list[tuple[float, float]]:
    """``(progress line, usable workbench)`` seconds after "Run All", per repeat (fresh kernel each)."""
    port = _free_port()
    proc = _serve_lab(folder, port, folder / "lab.log")
    out = []
    try:
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(180_000)
            page.goto(f"http://127.0.0.1:{port}/lab/workspaces/bench/tree/{NOTEBOOK.name}?reset")
            page.locator("#jupyterlab-splash").wait_for(state="detached")
            page.locator("#jp-main-statusbar").get_by_text("Idle").wait_for()
            page.wait_for_timeout(1000)
            page.evaluate("""() => { window.__st = {}; const t0 = performance.now();
              new MutationObserver(() => {
                if (!window.__st.line && document.querySelector('.wb-loading-text')) window.__st.line = performance.now() - t0;
                const th = document.querySelector('.wb-thumb-select img, .wb-thumb-select');
                if (!window.__st.usable && th && th.offsetParent !== null) window.__st.usable = performance.now() - t0;
              }).observe(document.body, {subtree: true, childList: true, attributes: true});
              window.jupyterapp.commands.execute('notebook:run-all-cells'); }""")
            page.wait_for_function("() => window.__st.usable !== undefined")
            st = page.evaluate("() => window.__st")
            out.append((st.get("line", float("nan")) / 1000, st["usable"] / 1000))
            print(f"JupyterLab Run All: progress line {out[-1][0]:.1f}s, usable workbench {out[-1][1]:.1f}s")
            page.close()
            _shutdown_kernels(port)  # the next repeat starts a fresh kernel
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return out


COMPARE_WATCH = """() => {
  window.__cmp = {t0: null, seen: {}, last: 0};
  const root = document.querySelector('.wb-comparison');
  root.addEventListener("click", (ev) => {
    if (ev.target.closest && ev.target.closest(".wb-edit")) {
      window.__cmp.seen = {}; window.__cmp.t0 = performance.now();
      window.__cmp.before = root.querySelector('.wb-verdict').textContent; }
  }, true);
  new MutationObserver(() => {
    const c = window.__cmp;
    if (c.t0 === null) return;
    const now = performance.now() - c.t0;
    c.last = now;
    const cards = root.querySelectorAll('.wb-compare-card .wb-card');
    if (!('outcomes' in c.seen) && cards.length === 2 &&
        [...cards].every(e => /Fixed|Not fixed|Nothing to fix|Refused/.test(e.textContent))) c.seen.outcomes = now;
    const v = root.querySelector('.wb-verdict').textContent;
    if (!('verdict' in c.seen) && v !== c.before && root.querySelector('.wb-verdict .wb-verdict-final'))
      c.seen.verdict = now;  // the exact verdict (the estimate's is wb-verdict-pending)
  }).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def compare_clicks(page, args: argparse.Namespace) -> None:
    """The Comparison's Edit click: both outcome cards, the exact verdict, every panel."""
    root = page.locator(".wb-comparison")
    page.evaluate(COMPARE_WATCH)
    thumbs = root.locator(".wb-thumb-select")
    rows = []
    print(f"{'click':>5} {'outcomes':>11} {'verdict':>11} {'all':>11}")
    for k in range(min(args.clicks + 1, thumbs.count())):
        before = root.locator(".wb-target-header").inner_text()
        thumbs.nth(k).click()
        page.wait_for_function("(b) => document.querySelector('.wb-comparison .wb-target-header').innerText !== b",
                               arg=before)
        page.wait_for_timeout(300)
        root.locator(".wb-edit").click()
        page.wait_for_function("() => 'verdict' in window.__cmp.seen", timeout=args.timeout * 1000)
        page.wait_for_timeout(2500)  # panels that follow the verdict
        c = page.evaluate("() => window.__cmp")
        row = {"outcomes": c["seen"].get("outcomes", float("nan")) / 1000, "verdict": c["seen"]["verdict"] / 1000,
               "all": c["last"] / 1000}
        print(f"{k:>5} " + " ".join(f"{row[n]:>10.3f}s" for n in ("outcomes", "verdict", "all"))
              + ("  (warm-up)" if k == 0 else ""))
        if k > 0:
            rows.append(row)
        root.locator(".wb-undo").click()
        page.wait_for_timeout(2500)
    med = {n: statistics.median(r[n] for r in rows) for n in ("outcomes", "verdict", "all")}
    print(f"compare click: both outcomes {med['outcomes']:.2f}s, verdict {med['verdict']:.2f}s, "
          f"all panels {med['all']:.2f}s (median of {len(rows)}); load {os.getloadavg()[0]:.1f}")


def main(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} not found: apt-get install -y chromium")
    folder = Path(tempfile.mkdtemp(prefix="wb-browser-"))
    port = _free_port()
    proc = _serve(folder, _notebook(folder, args.checkpoint, args.limit, args.compare), port, folder / "voila.log")
    rows: list[dict[str, float]] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                         "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(180_000)
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator(".wb-thumb-select").first.wait_for(state="visible")
            startup = time.perf_counter() - t0
            print(f"startup: page request to a usable workbench {startup:.1f}s "
                  f"(fresh kernel: imports, model, data, base scores; `scripts/app.sh` preheats one)")
            if args.compare:
                try:
                    page.locator(".wb-comparison .wb-thumb-select").first.wait_for(state="visible")
                except Exception:  # noqa: BLE001 - show what the page holds, then stop
                    page.screenshot(path=str(ROOT / "test-artifacts" / "browser-compare-failed.png"), full_page=True)
                    print("the comparison did not appear; voila log:\n", (folder / "voila.log").read_text()[-3000:])
                    raise
                compare_clicks(page, args)
                browser.close()
                return
            if args.lr is not None:
                page.locator(".wb-advanced .lm-AccordionPanel-title, .wb-advanced "
                             ".jupyter-widget-Collapse-header").first.click()
                page.locator(".wb-lr input").fill(str(args.lr))
                page.locator(".wb-lr input").press("Enter")
            page.evaluate(WATCH, PANELS)
            thumbs = page.locator(".wb-thumb-select")
            n_thumbs = thumbs.count()
            print(f"{'click':>5} " + " ".join(f"{k:>11}" for k in ("outcome", "estimate", "exact", "all")))
            for k in range(0 if args.startup_only else min(args.clicks + 1, n_thumbs)):
                before = page.locator(".wb-target-header").inner_text()
                thumbs.nth(k).click()
                page.wait_for_function(PICKED, arg=before)  # the new image and its buttons are shown
                page.locator(".wb-target-true").click()
                page.wait_for_timeout(300)  # let the selection's own updates settle
                page.locator(".wb-edit").click()
                try:
                    page.wait_for_function("() => 'exact' in window.__wb.seen || /Not fixed|Nothing|Refused/.test("
                                           "document.querySelector('.wb-card').textContent)",
                                           timeout=args.timeout * 1000)
                except Exception:  # noqa: BLE001 - say what the page shows, then stop
                    print("timed out; card:", page.locator(".wb-card").inner_text()[:300],
                          "| seen:", page.evaluate("() => window.__wb.seen"),
                          "| message:", page.locator(".wb-message-edit").inner_text()[:200])
                    raise
                page.wait_for_timeout(1500)  # panels that follow the exact figure
                seen = page.evaluate("() => window.__wb.seen")
                if "exact" not in seen:
                    print(f"{k:>5} edit not applied (skipped)")
                    continue
                row = {"outcome": seen.get("outcome", float("nan")) / 1000,
                       "estimate": seen.get("estimate", float("nan")) / 1000, "exact": seen["exact"] / 1000,
                       "all": max(v for n, v in seen.items() if n in PANELS or n == "exact") / 1000}
                print(f"{k:>5} " + " ".join(f"{row[c]:>10.3f}s" for c in ("outcome", "estimate", "exact", "all"))
                      + ("  (warm-up)" if k == 0 else ""))
                if k > 0:
                    rows.append(row)
                page.locator(".wb-undo").click()
                page.wait_for_function("() => /Undone/.test(document.querySelector('.wb-card').textContent)")
                page.wait_for_timeout(500)
            proc.terminate()  # free the CPU for the JupyterLab startups
            proc.wait(timeout=20)
            lab = lab_startup(browser, folder, args.repeats)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)
    med_lab = [statistics.median(v[i] for v in lab) for i in (0, 1)]
    print(f"startup: JupyterLab Run All to the progress line {med_lab[0]:.1f}s, to a usable workbench "
          f"{med_lab[1]:.1f}s (median of {len(lab)}); Voila page, fresh kernel, {startup:.1f}s")
    if args.startup_only:
        return
    if not rows:
        sys.exit("no edit was applied: nothing to time")
    med = {k: statistics.median(r[k] for r in rows) for k in ("outcome", "estimate", "exact", "all")}
    print(f"median: outcome {med['outcome']:.3f}s, estimate {med['estimate']:.3f}s, exact {med['exact']:.3f}s, "
          f"all panels {med['all']:.3f}s; cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    print(f"browser click: outcome {med['outcome']:.2f}s, estimate {med['estimate']:.2f}s, "
          f"all panels {med['all']:.2f}s (median of {len(rows)})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

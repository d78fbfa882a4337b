"""Fixtures for the real-browser test: a JupyterLab server and Debian's chromium.

Recipe (see ../shared/TESTING.md): JupyterLab is started with galata's server config on a
free localhost port, in a temporary root folder holding a copy of
``notebooks/01_workbench.ipynb`` whose parameters point at the tiny test model; Playwright
drives ``/usr/bin/chromium`` (never ``playwright install``: no browser downloads here).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parents[1] / "notebooks" / "01_workbench.ipynb"
UI_LIMIT = 500


def pytest_collection_modifyitems(config, items):
    """Skip the browser tests only when chromium is truly absent, and say so loudly."""
    if CHROMIUM.exists():
        return
    reason = (f"{CHROMIUM} not found: the real-browser test cannot run. Install it with "
              "`apt-get install -y chromium fonts-dejavu-core` (scripts/test.sh does this).")
    print(f"\n!!! SKIPPING BROWSER TESTS: {reason}\n", file=sys.stderr)
    for item in items:
        if "ui" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM),
            "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


@pytest.fixture(scope="session", autouse=True)
def kernel_round_trip_timeout():
    """A click's effect reaches the page after a round trip through the kernel; on a loaded
    2-core machine that can take longer than the 5 s Playwright gives ``expect`` by default."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    playwright_api.expect.set_options(timeout=30_000)


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1366, "height": 768}}  # a classroom laptop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_notebook(root: Path, checkpoint: Path, limit: int) -> Path:
    """Copy the workbench notebook into ``root`` with its parameters cell pointing at ``checkpoint``."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = f"CHECKPOINT = {str(checkpoint)!r}\nLIMIT = {limit}\nCOMPARE = False"
    out = root / NOTEBOOK.name
    nbformat.write(nb, out)
    return out


def serve(cmd: list[str], cwd: Path, env: dict, probe: str, log_path: Path, what: str):
    """Start a server process; wait until ``probe`` answers; return (process, log file)."""
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(probe, timeout=2) as r:
                if r.status == 200:
                    return proc, log
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop(proc, log)
            raise RuntimeError(f"{what} did not answer on {probe} within 120 s; see {log_path}")
        time.sleep(0.5)


def stop(proc, log) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _env(root: Path, port: int) -> dict:
    return {**os.environ, "WB_UI_PORT": str(port), "WB_UI_ROOT": str(root), "JUPYTERLAB_GALATA_ROOT_DIR": str(root),
            "MPLBACKEND": "Agg", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


@pytest.fixture(scope="session")
def ui_root(tiny_model_dir, tmp_path_factory):
    """A folder holding the workbench notebook pointed at the tiny test model."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found")
    root = tmp_path_factory.mktemp("ui-root")
    write_notebook(root, Path(tiny_model_dir), UI_LIMIT)
    return root


@pytest.fixture(scope="session")
def lab_url(ui_root, tmp_path_factory):
    """Start JupyterLab (galata config) on a free port; yield its URL; stop it at the end."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc, log = serve([sys.executable, "-m", "jupyter", "lab", f"--config={HERE / 'jupyter_server_config.py'}"],
                      ui_root, _env(ui_root, port), f"{url}/api/status",
                      tmp_path_factory.mktemp("lab-log") / "jupyter.log", "jupyter lab")
    try:
        yield url
    finally:
        stop(proc, log)


@pytest.fixture(scope="session")
def voila_url(ui_root, tmp_path_factory):
    """Serve the notebook with Voila as scripts/app.sh does; yield the page URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "voila", NOTEBOOK.name, "--no-browser", f"--port={port}", "--strip_sources=True",
           "--theme=light", "--Voila.ip=127.0.0.1", "--ServerApp.allow_root=True"]
    proc, log = serve(cmd, ui_root, _env(ui_root, port), f"{url}/voila/static/voila.js",
                      tmp_path_factory.mktemp("voila-log") / "voila.log", "voila")
    try:
        yield url
    finally:
        stop(proc, log)


@contextmanager
def _serve_app(tiny_model_dir, tmp_path_factory, tag: str):
    """Serve ``scripts/app.ipynb`` as scripts/app.sh does: Voila run from the repository root, so it
    reads the repository's ``voila.json`` (the preheated kernel pool, idle culling, no sources or
    tracebacks), the page's settings in ``WORKBENCH_APP_*`` variables. The tiny model also stands in
    for both models of the comparison; UI_LIMIT test images. Yields ``(url, out)``: ``out`` is the
    fresh folder the page saves into (``WORKBENCH_APP_OUTPUT``)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found")
    root = HERE.parents[1]
    port = _free_port()
    out = tmp_path_factory.mktemp(f"{tag}-out")
    env = {**_env(out, port), "WORKBENCH_APP_MODEL": str(tiny_model_dir), "WORKBENCH_APP_LIMIT": str(UI_LIMIT),
           "WORKBENCH_APP_BASELINE": str(tiny_model_dir), "WORKBENCH_APP_EDITABLE": str(tiny_model_dir),
           "WORKBENCH_APP_OUTPUT": str(out), "WORKBENCH_TRACEBACKS": "0", "PYTHONPATH": str(root)}
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "voila", "scripts/app.ipynb", "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", "--ServerApp.allow_root=True"]  # the rest is in voila.json
    proc, log = serve(cmd, root, env, f"{url}/voila/static/voila.js",
                      tmp_path_factory.mktemp(f"{tag}-log") / "voila.log", f"voila (scripts/app.ipynb, {tag})")
    try:
        yield url, out
    finally:
        stop(proc, log)


@pytest.fixture(scope="session")
def app_url(tiny_model_dir, tmp_path_factory):
    """The teaching page's URL (:func:`_serve_app`)."""
    with _serve_app(tiny_model_dir, tmp_path_factory, "app") as (url, _out):
        yield url


@pytest.fixture(scope="module")
def classroom(tiny_model_dir, tmp_path_factory):
    """``(url, out)``: a server of its own for the teaching page (:func:`_serve_app`), so its pool of
    preheated kernels is fresh for the students, and the folder the pages save into."""
    with _serve_app(tiny_model_dir, tmp_path_factory, "classroom") as served:
        yield served

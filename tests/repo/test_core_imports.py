"""The compute core works without the UI stack: importing it must not import UI packages.

Everything under ``workbench/`` except ``workbench.widgets`` is core (see DESIGN.md).
"""
from __future__ import annotations

import subprocess
import sys

NAMED = ["workbench", "workbench.editing", "workbench.evaluation", "workbench.training",
         "workbench.models", "workbench.data", "workbench.localization"]
UI = ["ipywidgets", "plotly", "IPython", "anywidget"]

_SCRIPT = f"""
import importlib, os, pkgutil, sys
import workbench

def walk(paths, prefix):  # like pkgutil.walk_packages, but never imports workbench.widgets
    for m in pkgutil.iter_modules(paths, prefix):
        if m.name.startswith("workbench.widgets") or m.name == "workbench.__main__":
            continue
        yield m.name
        if m.ispkg:
            yield from walk([os.path.join(m.module_finder.path, m.name.rsplit(".", 1)[1])], m.name + ".")

mods = {NAMED!r} + sorted(walk(workbench.__path__, "workbench."))
for m in mods:
    importlib.import_module(m)
print(";".join(mods))
print(",".join(m for m in {UI!r} if m in sys.modules))
"""


def test_core_does_not_import_ui():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    imported = lines[0].split(";")
    loaded = [m for m in (lines[1].split(",") if len(lines) > 1 else []) if m]
    assert {"workbench.editing.editor", "workbench.training.checkpoint", "workbench.data.idx"} <= set(imported)
    assert not loaded, f"core modules imported UI packages {loaded}; imported: {imported}"

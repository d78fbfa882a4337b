"""notebooks/01_workbench.ipynb: committed clean, and runs headlessly (nbclient) on a tiny model.

The ``parameters`` cell keeps its defaults; a cell injected right after it points the
notebook at the tiny test model with a small LIMIT (papermill's convention).
"""
from __future__ import annotations

import json

import pytest
from tests.support.repo import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NB = ROOT / "notebooks" / "01_workbench.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


def test_workbench_notebook_is_clean_and_thin():
    nb = nbformat.reads(NB.read_text(), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "CHECKPOINT" in params[0].source and "LIMIT" in params[0].source
    assert all(len(c.source.splitlines()) <= 6 for c in code), "notebook cells stay short: logic lives in workbench"
    assert json.loads(NB.read_text())["metadata"]["kernelspec"]["name"] == "python3"


def test_workbench_notebook_runs(tiny_model_dir):
    nb = nbformat.read(NB, as_version=4)
    pos = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    src = (f"CHECKPOINT = {str(tiny_model_dir)!r}\nLIMIT = 200\nCOMPARE = True\n"
           f"BASELINE = EDITABLE = CHECKPOINT")
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    cell["id"] = "injected-parameters"
    nb.cells.insert(pos + 1, cell)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB.parent)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    views = [o for o in outputs if WIDGET in o.get("data", {})]
    assert len(views) == 2, "the workbench and the comparison each display one widget"
    # saved through the server's pre-save hook (scripts/lab.sh), the file reopens with a note
    from workbench.notebook_hygiene import NOTE, pre_save_hook

    model = {"type": "notebook", "content": json.loads(nbformat.writes(nb))}
    pre_save_hook(model, path="01_workbench.ipynb")
    saved = [o for c in model["content"]["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in saved if WIDGET in o.get("data", {})]
    assert sum(o.get("data", {}).get("text/markdown") == NOTE for o in saved) == 2
    assert "run this cell" in NOTE


def test_lab_and_app_scripts_open_the_workbench():
    root = NB.parents[1]
    lab = (root / "scripts" / "lab.sh").read_text()
    assert "default_url=\"/lab/tree/$NOTEBOOK\"" in lab and "pre_save_hook=workbench.notebook_hygiene" in lab
    app = (root / "scripts" / "app.sh").read_text()
    assert "voila" in app and "--preheat_kernel=False" not in app and "--strip_sources=False" not in app
    conf = json.loads((root / "voila.json").read_text())  # Voila reads it from the root, where app.sh runs it
    assert conf["VoilaConfiguration"]["preheat_kernel"] is True and conf["VoilaConfiguration"]["strip_sources"] is True
    assert conf["VoilaConfiguration"]["default_pool_size"] >= 1 and "cd \"$ROOT\"" in app
    assert "bash scripts/install.sh" in app  # from a fresh clone, app.sh installs first (as lab.sh does)

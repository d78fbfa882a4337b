"""Notebooks 02-06 run headlessly (nbclient) with small parameters and real (tiny) models.

The ``parameters`` cell keeps its defaults; a cell injected right after it overrides them
(papermill's convention), so each notebook runs its real code paths in a few seconds.
The notebooks assert on their own results where that helps.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from tests.support.repo import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NB_DIR = ROOT / "notebooks"
NOTEBOOKS = ["02_editable_training.ipynb", "03_editor_comparison.ipynb", "04_edit_analysis.ipynb",
             "05_your_own_model.ipynb", "06_memorization.ipynb"]


def run_notebook(name: str, params: dict[str, Any], timeout: int = 300) -> Any:
    """Execute ``notebooks/<name>`` with cwd=notebooks/ and ``params`` injected; return the notebook."""
    nb = nbformat.read(NB_DIR / name, as_version=4)
    pos = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    src = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    cell["id"] = "injected-parameters"
    nb.cells.insert(pos + 1, cell)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()
    return nb


def _outputs(nb: Any, kind: str) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if kind in o.get("data", {})]


def _text(nb: Any) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            parts.append(o.get("text", ""))
            parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean_and_has_parameters(name):
    raw = json.loads((NB_DIR / name).read_text())
    nb = nbformat.reads(json.dumps(raw), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].source.strip()
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_02_editable_training_trains_both_models_and_plots(tmp_path):
    out = tmp_path / "runs"
    nb = run_notebook("02_editable_training.ipynb", {
        "TRAIN_SUBSET": 256, "EVAL_SUBSET": 200, "EPOCHS": 1, "EDITABLE_EPOCHS": 1,
        "ARCH_KWARGS": {"widths": [8, 8, 16, 16]}, "OUT_DIR": str(out), "N_EDITS": 4, "TEST_LIMIT": 200})
    for run in ("baseline", "editable"):
        assert (out / run / "model.safetensors").exists() and (out / run / "metrics.jsonl").exists()
    card = json.loads((out / "editable" / "card.json").read_text())
    assert card["recipe"]["editable"] and card["recipe"]["init_from"] == str(out / "baseline")
    assert len(_outputs(nb, "image/png")) >= 1  # the training curves
    assert "baseline: 1 epochs" in _text(nb)


def test_03_editor_comparison_tables(tiny_model_dir):
    nb = run_notebook("03_editor_comparison.ipynb", {
        "BASELINE_DIR": str(tiny_model_dir), "EDITABLE_DIR": str(tiny_model_dir), "N_EDITS": 3, "TEST_LIMIT": 300})
    text = _text(nb)
    for editor in ("gd", "scaled_gd", "sign", "rmsprop", "momentum", "adam"):
        assert editor in text
    assert "chain4" in text and "head" in text
    assert len(_outputs(nb, "image/png")) >= 2


def test_04_edit_analysis_figures(tiny_model_dir):
    nb = run_notebook("04_edit_analysis.ipynb", {
        "BASELINE_DIR": str(tiny_model_dir), "EDITABLE_DIR": str(tiny_model_dir), "N_EDITS": 12,
        "N_SEQUENTIAL": 4, "PROBE": 200, "TEST_LIMIT": 300})
    assert len(_outputs(nb, "image/png")) >= 4  # two heatmaps, t-SNE, sequential curve


def test_03_skips_a_missing_editable_model_with_a_note(tiny_model_dir, tmp_path):
    nb = run_notebook("03_editor_comparison.ipynb", {
        "BASELINE_DIR": str(tiny_model_dir), "EDITABLE_DIR": str(tmp_path / "absent"), "N_EDITS": 2,
        "TEST_LIMIT": 200, "EDITORS": ["rmsprop", "gd"], "GROUPS": ["chain3", "head"]})
    assert "not found" in _text(nb) and "skipping" in _text(nb)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("workbench.models.adapter"),
                    reason="any-model groups (issue 11a) not merged yet")
def test_05_your_own_model_trains_edits_calibrates_and_reopens(tmp_path):
    out = tmp_path / "exported"
    nb = run_notebook("05_your_own_model.ipynb", {
        "N_TRAIN": 256, "N_TEST": 160, "EPOCHS": 1, "GROUP": "layer2", "CALIBRATION_EDITS": 3, "CALIBRATION_VAL": 32,
        "OUT_DIR": str(out)})
    text = _text(nb)
    assert ("groups: ['conv1', 'bn1', 'layer1', 'layer1.0', 'layer1.1', 'layer2', 'layer2.0', 'layer2.1', 'layer3', "
            "'layer3.0', 'layer3.1', 'layer4', 'layer4.0', 'layer4.1', 'fc', 'all']") in text
    assert "calibrated rmsprop" in text and "same predictions: True" in text
    card = json.loads((out / "card.json").read_text())
    assert card["arch"] == "torchvision:resnet18" and card["editor_calibrations"]


def test_06_memorization_trains_the_three_models_and_reports(tmp_path):
    runs = tmp_path / "runs"
    nb = run_notebook("06_memorization.ipynb", {
        "RUNS": str(runs), "N_CRITICAL": 3, "MAX_NEURONS": 8, "RETRAIN_EPOCHS": 1,
        "OVERRIDES": {"train_subset": 256, "eval_subset": 100, "epochs": 2, "batch_size": 32, "lr": 3e-3,
                      "arch_kwargs": {"widths": [8, 8, 16, 16]}}})
    for name in ("fashion-noisy", "fashion-noisy-etd", "fashion-noisy-dropout"):
        card = json.loads((runs / name / "card.json").read_text())
        assert card["label_noise"]["count"] == 26 and card["command"].startswith("python -m workbench train")
    assert sorted(int(p.stem.split("_")[1]) for p in (runs / "fashion-noisy" / "epochs").iterdir()) == [0, 1, 2]
    text = _text(nb)
    assert "example-tied / drop" in text and "standard dropout / all" in text and '"critical"' in text
    assert len(_outputs(nb, "image/png")) >= 3  # accounting, critical-neuron and full-scale figures
    # section 5 reads the shipped full-scale run: its card and every finding's table, with the command
    card = json.loads((ROOT / "results/memorization/noisy-r9-run/card.json").read_text())
    assert f"no dropout: resnet9, {card['epochs']} epochs, test error {card['test_error']:.3f}" in text
    shown = "".join("".join(o["data"]["text/markdown"]) for o in _outputs(nb, "text/markdown"))
    for step in ("accounting", "rewind", "retrain", "critical"):
        assert f"### no dropout: {step}" in shown
    assert "python benchmarks/memorization_findings.py critical" in shown and "| noisy |" in shown
    etd = json.loads((ROOT / "results/memorization/etd-r9-run/findings/dropout.json").read_text())
    assert "### example-tied dropout: dropout" in shown  # the fourth finding of the shipped dropout run
    assert f"{100 * etd['outcome']['noisy_kept']:.1f}% of the noisy labels kept" in shown
    for name, run in (("no dropout", "noisy-r9-run"), ("example-tied dropout", "etd-r9-run"),
                      ("standard dropout", "dropout-r9-run")):  # a run still training is named as such
        folder = ROOT / "results/memorization" / run
        if (folder / "card.json").exists():
            c = json.loads((folder / "card.json").read_text())
            said = f"unfinished: trained {c['epochs']} of {c['recipe']['epochs']} epochs" in text
            assert said == (c["epochs"] < c["recipe"]["epochs"]), name
        else:
            assert f"{name}: not shipped yet" in text

"""The error browser's "likely mislabeled first" sort: training dynamics when the model folder has
them and the session shows the training split, self-confidence otherwise, and the view says which."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from workbench.localization.label_errors import mislabel_values  # noqa: E402
from workbench.localization.settings import MISLABEL_SCORE  # noqa: E402
from workbench.session import EditSession  # noqa: E402
from workbench.training.dynamics import DYNAMICS_DIR  # noqa: E402
from workbench.widgets.panels.error_browser import FILTERS, SCORE_SORTS  # noqa: E402
from workbench.widgets.workbench import Workbench  # noqa: E402

LIMIT = 300
SORT = next(k for k, v in SCORE_SORTS.items() if v[0] == "mislabeled")


def _open(folder, bundle, split):
    session = EditSession.from_checkpoint(folder, bundle=bundle, split=split, limit=LIMIT, device="cpu")
    return Workbench(session, probe_views=0, page_size=4)


def _sorted_by(wb, values):
    b = wb.browser
    b.sort.value = SORT
    shown = [e.index for e in b.visible]
    assert len(shown) == len(b.errors) > 1
    assert shown == sorted(shown, key=lambda i: (-values[i], i))


def test_the_sort_uses_the_folders_training_dynamics_on_the_training_split(tiny_model_dir, fashion_small):
    wb = _open(tiny_model_dir, fashion_small, "train")
    expected = mislabel_values(tiny_model_dir, MISLABEL_SCORE)  # read from dynamics/, higher = more suspect
    scores = wb.session.label_scores()
    assert scores.score == MISLABEL_SCORE and len(scores.values) == LIMIT
    assert all(scores.values[i] == pytest.approx(float(expected[i])) for i in range(LIMIT))
    assert wb.browser.scores["mislabeled"] == scores.values  # the controller handed them to the browser
    _sorted_by(wb, scores.values)
    note = wb.browser.mislabel_note.value
    assert "from the training dynamics" in note and "self-confidence" not in note


def test_without_dynamics_the_sort_falls_back_to_self_confidence_and_says_why(tiny_model_dir, fashion_small, tmp_path):
    folder = tmp_path / "no-dynamics"
    shutil.copytree(tiny_model_dir, folder)
    shutil.rmtree(folder / DYNAMICS_DIR)
    wb = _open(folder, fashion_small, "train")
    q = wb.session.label_quality()
    scores = wb.session.label_scores()
    assert scores.score == "self_confidence"
    assert all(scores.values[i] == pytest.approx(1.0 - float(q[i])) for i in range(LIMIT))
    _sorted_by(wb, scores.values)
    note = wb.browser.mislabel_note.value
    assert "self-confidence" in note and "holds no training dynamics" in note and "in sample" in note


def test_on_the_test_split_the_dynamics_do_not_apply(tiny_model_dir, fashion_small):
    wb = _open(tiny_model_dir, fashion_small, "test")
    scores = wb.session.label_scores()
    assert scores.score == "self_confidence"
    assert "this session shows the test split" in wb.browser.mislabel_note.value
    assert "in sample" not in wb.browser.mislabel_note.value  # test images are out of sample
    q = wb.session.label_quality()
    _sorted_by(wb, {i: 1.0 - float(v) for i, v in enumerate(q.tolist())})


def test_the_critical_neuron_count_is_no_sort_or_filter_of_the_browser(tiny_model_dir, fashion_small):
    wb = _open(tiny_model_dir, fashion_small, "test")
    assert all(v[0] != "critical" for v in SCORE_SORTS.values())
    assert all(v is None or v[0] != "critical" for v in FILTERS.values())
    assert not hasattr(wb.localization, "page_button") and not hasattr(wb.controller, "localize_page")

"""Opening the workbench: a progress line at once, the base model scored in a thread while the
widget libraries load, then the workbench in its place (or the error, in plain words)."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("ipywidgets")

from tests.support.repo import ROOT  # noqa: E402
from workbench.widgets import launch  # noqa: E402


@pytest.fixture
def displayed(monkeypatch):
    """What ``show`` hands to IPython's display (the box it later fills)."""
    import IPython.display

    shown: list = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    return shown


def test_show_replaces_the_progress_line_by_the_workbench(tiny_model_dir, displayed):
    wb = launch.show(tiny_model_dir, limit=120, probe_views=0)
    assert len(displayed) == 1
    box = displayed[0]
    assert list(box.children) == [wb.widget]
    steps = wb.startup_steps
    assert list(steps)[0] == "core imported" and list(steps)[-1] == "screen built"
    assert {"model and images loaded", "base model scored", "widget libraries imported"} <= set(steps)
    assert steps["model and images loaded"] <= steps["base model scored"] <= steps["screen built"]
    assert wb.startup_seconds == steps["screen built"] > 0
    assert len(wb.session.labels) == 120 and wb.browser.page_items  # usable: mistakes listed
    assert sys.getswitchinterval() == pytest.approx(0.005, abs=0.0045) and \
        sys.getswitchinterval() != launch.SWITCH_INTERVAL  # restored after the imports


def test_progress_line_names_the_step_and_counts_the_images():
    p = launch.Progress("fashion-editable")
    first = p.html()
    assert "fashion-editable" in first and "▸ 1. loading the model" in first
    p.images(512, 10_000)
    text = p.html()
    assert "✓ 1. loading the model" in text and "▸ 2. scoring the base model" in text
    assert "512 / 10,000" in text and "model and images loaded" in p.marks


def test_show_puts_a_missing_folder_in_the_page_and_raises(tmp_path, displayed):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        launch.show(missing)
    box = displayed[0]
    (area,) = box.children
    text = area.children[0].value if hasattr(area, "children") else area.value
    assert "Opening the model did not work" in text and "no-such-model" in text
    assert "card.json" in text  # the fix: what a model folder holds
    assert "Traceback" not in text.split("details")[0]  # the traceback stays behind the details toggle


def test_evaluator_reports_scoring_progress_and_then_lets_go(tiny_model_dir):
    from workbench.session.opening import open_session

    calls: list[tuple[int, int]] = []
    s, _ = open_session(tiny_model_dir, limit=300, progress=lambda d, n: calls.append((d, n)))
    assert calls and calls[-1] == (300, 300) and all(n == 300 for _, n in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    before = len(calls)
    s.edit_index(int(s.current_errors()[0].index), int(s.labels[int(s.current_errors()[0].index)]))
    s.complete_reports()
    assert len(calls) == before  # the callback follows the base scoring only


def test_importing_the_widgets_package_is_light():
    code = ("import sys, workbench.widgets as w; from workbench.widgets import show; "
            "heavy = [m for m in ('torch', 'plotly', 'matplotlib', 'ipywidgets') if m in sys.modules]; "
            "assert not heavy, heavy; "
            "missing = [n for n in w.__all__ if getattr(w, n, None) is None]; assert not missing, missing")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_show_puts_a_mistyped_option_in_the_page_and_raises(tiny_model_dir, displayed):
    with pytest.raises(TypeError, match="probe_view"):
        launch.show(tiny_model_dir, limit=60, probe_view=0)  # meant probe_views
    (area,) = displayed[0].children
    assert "Opening the workbench did not work" in area.value and "probe_view" in area.value


def test_show_returns_the_subclass(tiny_model_dir, displayed):
    from workbench.widgets import Workbench

    class Mine(Workbench):
        pass

    wb = launch.show(tiny_model_dir, limit=60, probe_views=0, workbench=Mine)
    assert type(wb) is Mine and list(displayed[0].children) == [wb.widget]

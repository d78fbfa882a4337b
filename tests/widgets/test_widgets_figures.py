"""Pure plot builders and checkpoint resolution of the widget layer (no model needed)."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("plotly")

import plotly.graph_objects as go  # noqa: E402
from PIL import Image  # noqa: E402

from workbench.widgets import (  # noqa: E402
    attribution_grid,
    attribution_overlay,
    confusion_figure,
    figure_png,
    image_png,
    live_figure,
    per_class_figure,
    probability_figure,
    suggest_targets,
    timeline_figure,
    update_confusion,
)


def test_confusion_figure_blanks_diagonal_and_updates_in_place():
    cm = torch.tensor([[5, 1, 0], [2, 7, 3], [0, 4, 9]])
    fig = confusion_figure(cm, ["a", "b", "c"])
    assert isinstance(fig, go.Figure) and not isinstance(fig, go.FigureWidget)
    z = fig.data[0].z
    assert [z[i][i] for i in range(3)] == [None, None, None] and z[1][2] == 3.0 and z[2][1] == 4.0
    assert [list(r) for r in fig.data[0].text] == [[str(int(v)) for v in row] for row in cm]
    assert list(fig.data[0].x) == [0, 1, 2] and fig.layout.yaxis.autorange == "reversed"
    w = live_figure(fig)
    trace = w.data[0]
    update_confusion(w, cm * 2)
    assert w.data[0] is trace and w.data[0].z[1][2] == 6.0
    with pytest.raises(ValueError, match="3 classes"):
        confusion_figure(torch.zeros(2, 2), ["a", "b", "c"])


def test_probability_and_metric_figures():
    p = torch.tensor([0.1, 0.6, 0.3])
    fig = probability_figure(p, ["T-shirt/top", "Ankle boot", "c"], true=2, pred=1, target=0)
    assert list(fig.data[0].y) == pytest.approx(p.tolist())
    colors = list(fig.data[0].marker.color)
    assert len(set(colors)) == 3 and colors[0] != colors[1] != colors[2]
    assert fig.data[0].textangle == 0 and list(fig.data[0].x) == ["T-shirt/top", "Ankle boot", "c"]  # upright, full
    m = per_class_figure([0.01, -0.02, 0.0], [0.0, 0.1, -0.1], ["a", "b", "c"])
    assert list(m.data[0].y) == pytest.approx([1.0, -2.0, 0.0]) and list(m.data[1].y) == pytest.approx([0, 10, -10])
    assert m.layout.legend.y >= 1 and m.layout.legend.yanchor == "bottom"  # above the plot: covers no bar
    lo, hi = m.layout.yaxis.range
    assert lo <= -10 and hi >= 10


def test_timeline_axes_never_repeat_ticks_nor_span_150_percent():
    one = timeline_figure([0.93])
    lo, hi = one.layout.yaxis.range
    assert 0.9 < lo < 0.93 < hi <= 1.0  # one point: a narrow range around it, not 0-150%
    many = timeline_figure([0.9301, 0.9299, 0.9290, 0.9305])
    lo, hi = many.layout.yaxis.range
    step = many.layout.yaxis.dtick
    ticks = [lo + k * step for k in range(int((hi - lo) / step) + 1)]
    digits = int(many.layout.yaxis.tickformat[1:-1])
    labels = [f"{t * 100:.{digits}f}" for t in ticks]
    assert len(labels) == len(set(labels)) >= 2  # distinct tick labels
    assert many.layout.xaxis.dtick == 1


def test_live_figure_opens_with_full_state(monkeypatch):
    from ipywidgets.widgets import widget as ipw

    from workbench.widgets.plots.live import _FigureWidget

    opened = []
    real = ipw.comm.create_comm
    monkeypatch.setattr(ipw.comm, "create_comm", lambda **kw: opened.append(kw["data"]["state"]) or real(**kw))
    monkeypatch.setattr(_FigureWidget, "_carrier", None)  # as in a fresh kernel
    fig = probability_figure([0.2, 0.8], ["a", "b"])
    w = live_figure(fig)
    assert isinstance(w, go.FigureWidget) and w.comm is not None
    # the comm-open message itself carries the data and layout: no empty first render
    state = opened[-1]
    assert state["_widget_data"][0]["y"] == [0.2, 0.8] and state["_widget_layout"]["height"] == fig.layout.height
    # plotly's code is sent as data by one never-displayed carrier figure, evaluated once per page
    carrier = _FigureWidget._carrier
    assert carrier is not None and carrier is not w and len(carrier._plotly_src) > 10 ** 6
    assert len(state["_esm"]) < 5_000 and state["_plotly_src"] == ""  # 5 MB less per figure
    second = live_figure(probability_figure([0.5, 0.5], ["a", "b"]))
    assert opened[-1]["_plotly_src"] == "" and second.comm is not None and _FigureWidget._carrier is carrier
    w.close()  # closing a panel's figure leaves the bundle where it is
    assert live_figure(probability_figure([0.1, 0.9], ["a", "b"])) and _FigureWidget._carrier is carrier
    carrier.close()  # e.g. Widget.close_all(): the next figure brings a new carrier
    live_figure(probability_figure([0.1, 0.9], ["a", "b"]))
    assert _FigureWidget._carrier is not carrier and len(_FigureWidget._carrier._plotly_src) > 10 ** 6
    plain = go.FigureWidget(fig)  # plotly's own widget opens with an empty figure
    assert plain.comm is not None and opened[-1]["_widget_data"] == []
    second.data[0].y = [0.3, 0.7]
    assert list(second.data[0].y) == [0.3, 0.7]


def test_metrics_panel_sends_homogeneous_updates():
    """Each batched update sets one property on every trace it names: plotly's front end
    blanks a property that a batch sets on only some traces (x labels became 0, 1, 2)."""
    from types import SimpleNamespace

    from workbench.evaluation import EditReport
    from workbench.widgets import MetricsPanel

    classes = ["a", "b", "c"]
    panel = MetricsPanel(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 2, 0]), classes)
    sent = []
    panel.figure.observe(lambda c: sent.append(c["new"]) if c["new"] else None, names=["_py2js_update"])
    rep = EditReport(0.25, 0.5, 0.25, torch.tensor([0, 2, 2, 0]), torch.tensor([1, 3]),
                     torch.tensor([0.0, 0.0, float("nan")]), torch.tensor([0.5, 0.0, float("nan")]), 0.0)
    panel.show(SimpleNamespace(index=3, target=0, report=rep, step_report=rep), 1)
    assert sent and all("x" not in m["style_data"] for m in sent)
    for m in sent:
        for prop, vals in m["style_data"].items():
            assert all(isinstance(v, (list, tuple)) for v in vals), prop
    assert list(panel.figure.data[0].y) == [-50.0, 0.0, 0.0] and list(panel.figure.data[0].x) == classes
    assert panel.flipped == [1] and "Edit 1" in panel.heading.value  # the edited image #3 is not "other"
    assert panel.strip_cells[0][1].description == "#1 ✗"


def test_suggest_targets_puts_true_label_then_top_k_first():
    probs = [0.05, 0.5, 0.1, 0.3, 0.05]
    assert suggest_targets(probs, 4, k=2) == [4, 1, 3, 2, 0]
    assert suggest_targets(probs, 1, k=2) == [1, 3, 2, 0, 4]
    assert sorted(suggest_targets(probs, None, k=3)) == list(range(5))


def test_image_builders_never_touch_pyplot():
    import matplotlib

    before = set(matplotlib.pyplot.get_fignums()) if "matplotlib.pyplot" in sys.modules else set()
    img = torch.randint(0, 255, (1, 28, 28), dtype=torch.uint8)
    png = image_png(img, scale=3)
    assert Image.open(io.BytesIO(png)).size == (84, 84)
    rgb = Image.open(io.BytesIO(image_png(torch.rand(3, 8, 8), scale=1)))
    assert rgb.size == (8, 8) and rgb.mode == "RGB"
    fig = attribution_overlay(torch.randn(28, 28), img)
    assert len(fig.axes) == 1
    grid = attribution_grid(img, {"orig": [torch.rand(28, 28)] * 2 + [torch.randn(28, 28)],
                                  "target": [torch.rand(28, 28)] * 3})
    out = Image.open(io.BytesIO(grid))
    assert out.size[0] > 300
    assert len(figure_png(attribution_overlay(torch.randn(28, 28), img))) > 1000  # the matplotlib overlay renders
    after = set(matplotlib.pyplot.get_fignums()) if "matplotlib.pyplot" in sys.modules else set()
    assert after == before
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        attribution_overlay(torch.zeros(1, 28, 28), img)


def test_attribution_grid_draws_the_image_and_leaves_it_visible_where_the_map_is_zero():
    """The grid's cells, read back from the PNG: the image column is the image; a map that is zero
    on a region leaves the image (in gray) as it is there; a strong map colours it red."""
    img = torch.zeros(3, 28, 28)
    img[1] = 200 / 255  # pure green: no text or border of the grid has that colour
    attr = torch.zeros(28, 28)
    attr[:14, :] = 1.0  # the top half matters, the bottom half not at all
    png = attribution_grid(img, {"row": [attr, attr, attr - attr]}, cell=1.0)  # 100-pixel cells
    out = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    ys, xs = np.nonzero((out == (0, 200, 0)).all(axis=2))
    y0, x0 = int(ys.min()), int(xs.min())
    assert (int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1) == (100, 100) and len(ys) == 100 * 100
    x1 = next(x for x in range(x0 + 100, out.shape[1]) if (out[y0 + 50, x] != 255).any())  # the "before" cell
    before = out[y0:y0 + 100, x1:x1 + 100]
    gray = round(200 / 3)  # the overlays draw the image in gray: the channels' mean
    assert (np.abs(before[55:] - gray) <= 1).all()  # no attribution: the image shows through unchanged
    top = before[:45]  # the strongest attribution: red over the image
    assert (top[..., 0] > top[..., 1] + 60).all() and (top[..., 0] > top[..., 2] + 60).all()


def test_attribution_grid_keeps_the_aspect_and_survives_a_nan_and_says_which_row_is_short():
    img = torch.zeros(3, 14, 28)
    img[1] = 200 / 255
    attr = torch.zeros(14, 28)
    attr[0, 0] = float("nan")  # one bad value must not blacken the grid
    png = attribution_grid(img, {"row": [attr, attr, attr]}, cell=1.0)
    out = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    ys, xs = np.nonzero((out == (0, 200, 0)).all(axis=2))
    assert (int(ys.max()) - int(ys.min()) + 1, int(xs.max()) - int(xs.min()) + 1) == (50, 100)  # 14x28 -> 50x100
    gray = round(200 / 3)
    assert (np.abs(out[ys.min():ys.max() + 1, xs.max() + 1:] - gray) <= 1).all(axis=2).sum() >= 3 * 50 * 100
    with pytest.raises(ValueError, match="row 'row' has 2 maps for 3 columns"):
        attribution_grid(img, {"row": [attr, attr]})

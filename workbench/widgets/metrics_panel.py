"""MetricsPanel: accuracy before/after, drawdown, per-class change, timeline, flipped strip.

The three plots live in one FigureWidget (one front-end widget instead of three), created
once; :meth:`MetricsPanel.show` swaps its trace data in place inside ``batch_update``.
"""
from __future__ import annotations

import html
from typing import Callable, Sequence

import ipywidgets as W

from .common import css
from .figures import accuracy_range, metrics_figure
from .images import image_png
from .plotly_widget import live_figure

__all__ = ["MetricsPanel"]


def _vec(t) -> list[float]:
    """Tensor / sequence -> floats, NaN (a class absent from the split) as 0."""
    return [0.0 if v != v else float(v) for v in (t.tolist() if hasattr(t, "tolist") else t)]


def _pp(x: float) -> str:
    return f"{x * 100:+.2f} pp"


class MetricsPanel:
    """Scores of the last edit and of the session.

    Args:
        images: ``(N, C, H, W)`` uint8 test images (for the flipped strip).
        labels: ``(N,)`` true labels.
        classes: class names.
        on_select: called with a test index when a flipped image is clicked.
        strip_size: how many flipped images the strip shows.
    """

    def __init__(self, images, labels, classes: Sequence[str], *, on_select: Callable[[int], None] | None = None,
                 strip_size: int = 12, title: str = "", base_error: float = 0.0, width: int = 640) -> None:
        self.images, self.labels, self.classes = images, labels, tuple(classes)
        self.on_select = on_select
        c, acc = len(self.classes), 1.0 - base_error
        self.figure = live_figure(metrics_figure(acc, acc, acc, [0.0] * c, [0.0] * c, [acc], self.classes,
                                                 width=width))
        self.title = W.HTML(f"<b>{html.escape(title)}</b>" if title else "")
        self.drawdown = css(W.HTML("drawdown: <i>no edit yet</i>"), "wb-drawdown")
        self.flipped: list[int] = []
        self.strip_label = css(W.HTML("flipped predictions: none"), "wb-flipped-label")
        self.strip_cells = []
        for k in range(strip_size):
            img = W.Image(format="png", layout=W.Layout(width="56px", height="56px"))
            btn = css(W.Button(description="", layout=W.Layout(width="80px")), "wb-flipped")
            box = W.VBox([img, btn], layout=W.Layout(align_items="center", visibility="hidden"))
            self.strip_cells.append((img, btn, box))
            btn.on_click(lambda _b, k=k: self.open_flipped(k))
        self.strip = W.HBox([b for _, _, b in self.strip_cells], layout=W.Layout(flex_flow="row wrap"))
        self.widget = css(W.VBox([self.title, self.drawdown, self.figure, self.strip_label, self.strip]),
                          "wb-metrics")

    def show(self, base_error: float, timeline_errors: Sequence[float], step=None, total=None) -> None:
        """Update every plot in place.

        Args:
            base_error: test error of the base model (fraction).
            timeline_errors: test error after each applied edit, oldest first (without the base).
            step: ``EditReport`` of the last edit alone (after vs before it), or None.
            total: ``EditReport`` of the session vs the base model, or None.
        """
        before = step.error_before if step is not None else base_error
        after = step.error_after if step is not None else (total.error_after if total is not None else base_error)
        zeros = [0.0] * len(self.classes)
        step_change = [-v for v in _vec(step.per_class_change)] if step is not None else zeros
        total_change = [-v for v in _vec(total.per_class_change)] if total is not None else zeros
        acc = [1 - base_error] + [1 - e for e in timeline_errors]
        bars = [1 - base_error, 1 - before, 1 - after]
        # One batch per set of properties: plotly's front end would blank a property that
        # a mixed batch sets on some traces only (e.g. every trace's x when one x changes).
        with self.figure.batch_update():
            self.figure.data[0].text = [f"{v:.2%}" for v in bars]
            self.figure.layout.yaxis.range = accuracy_range(*bars)
        with self.figure.batch_update():
            for trace, y in zip(self.figure.data, (bars, acc, [v * 100 for v in step_change],
                                                   [v * 100 for v in total_change])):
                trace.y = y
        if step is None and total is None:
            self.drawdown.value = "drawdown: <i>no edit applied</i>"
        else:
            parts = []
            if step is not None:
                parts.append(f"this edit <b class='wb-drawdown-step'>{_pp(step.drawdown)}</b>")
            if total is not None:
                parts.append(f"session <b class='wb-drawdown-total'>{_pp(total.drawdown)}</b> "
                             f"(test error {total.error_after:.2%}, base {base_error:.2%})")
            self.drawdown.value = "drawdown: " + ", ".join(parts)
        self.show_flipped(_vec(step.flipped) if step is not None else [],
                          _vec(step.preds_after) if step is not None else None)

    def open_flipped(self, k: int) -> None:
        """Open the ``k``-th image of the flipped strip (select it in the workbench)."""
        if k < len(self.flipped) and self.on_select is not None:
            self.on_select(self.flipped[k])

    def show_flipped(self, flipped: Sequence[float], preds_after=None) -> None:
        """Fill the strip with the first test images whose prediction the edit changed."""
        self.flipped = [int(i) for i in flipped]
        for k, (img, btn, box) in enumerate(self.strip_cells):
            if k >= len(self.flipped):
                box.layout.visibility = "hidden"
                continue
            i = self.flipped[k]
            img.value = image_png(self.images[i], scale=2)
            new = int(preds_after[i]) if preds_after is not None else None
            ok = new is not None and new == int(self.labels[i])
            btn.description = f"#{i} {'✓' if ok else '✗'}"
            btn.tooltip = (f"true {self.classes[int(self.labels[i])]}, now predicted "
                           f"{self.classes[new] if new is not None else '?'}")
            btn.button_style = "success" if ok else "danger"
            box.layout.visibility = "visible"
        n = len(self.flipped)
        shown = min(n, len(self.strip_cells))
        self.strip_label.value = (f"flipped predictions of this edit: <b>{n}</b>"
                                  + (f" (first {shown} shown; click to open)" if n else ""))

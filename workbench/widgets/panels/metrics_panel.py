"""MetricsPanel: per-class accuracy change and the images the last edit changed.

Both refer to the *applied* edit named in the panel's heading; after a failed attempt,
an undo or a reset the heading and the figures move to the state the model is in, so no
figure is ever left over from an earlier click. The per-class plot is one FigureWidget
created once and updated in place; flipped thumbnails are encoded once per image.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import ipywidgets as W

from ..common import SIZES, css
from ..plots.charts import per_class_figure, pp_range
from ..glossary import GLOSSARY, term
from ..plots.images import image_png
from ..markup import HTML, markup
from ..plots.live import live_figure

__all__ = ["MetricsPanel", "NO_EDIT"]

NO_EDIT = ("No edit applied: the model has its base weights. After an edit, this shows how the accuracy of "
           "each class changed and which other test images the edit flipped.")


def _set(widget: W.Widget, **values: Any) -> None:
    """Set the traits that differ, in one comm message."""
    changed = {k: v for k, v in values.items() if getattr(widget, k) != v}
    if changed:
        with widget.hold_sync():
            for k, v in changed.items():
                setattr(widget, k, v)


def _vec(t) -> list[float]:
    """Tensor / sequence -> floats, NaN (a class absent from the split) as 0."""
    return [0.0 if v != v else float(v) for v in (t.tolist() if hasattr(t, "tolist") else t)]


class MetricsPanel:
    """Per-class change (this edit and all edits) and the strip of changed images.

    Args:
        images: ``(N, C, H, W)`` uint8 test images (for the strip).
        labels: ``(N,)`` true labels.
        classes: class names.
        on_select: called with a test index when a strip image is clicked.
        strip_size: how many changed images the strip shows.
    """

    def __init__(self, images, labels, classes: Sequence[str], *, on_select: Callable[[int], None] | None = None,
                 strip_size: int = 12, width: int = 620, thumb_px: int = SIZES[False][2]) -> None:
        self.images, self.labels, self.classes = images, labels, tuple(classes)
        self.on_select = on_select
        c = len(self.classes)
        self.figure = live_figure(per_class_figure([0.0] * c, [0.0] * c, self.classes, width=width))
        self.heading = css(HTML(markup("<i>{}</i>", NO_EDIT)), "wb-metrics-heading")
        self.chart = css(W.VBox([]), "wb-per-class")  # the figure is shown once an edit is applied: never empty axes
        self.flipped: list[int] = []
        self._png: dict[int, bytes] = {}
        self._shown: list[int | None] = [None] * strip_size
        self.strip_label = css(HTML(""), "wb-flipped-label")
        self.strip_cells = []
        for k in range(strip_size):
            img = W.Image(format="png", layout=W.Layout(width=f"{thumb_px}px", height=f"{thumb_px}px"))
            btn = css(W.Button(description="", tooltip=GLOSSARY["✓ / ✗"], layout=W.Layout(width="auto")),
                      "wb-flipped")
            box = W.VBox([img, btn], layout=W.Layout(align_items="center", visibility="hidden"))
            self.strip_cells.append((img, btn, box))
            btn.on_click(lambda _b, k=k: self.open_flipped(k))
        self.strip = W.HBox([b for _, _, b in self.strip_cells], layout=W.Layout(flex_flow="row wrap"))
        self.widget = css(W.VBox([self.heading, self.chart, self.strip_label, self.strip]), "wb-metrics")

    def set_thumb_size(self, px: int) -> None:
        for img, _, _ in self.strip_cells:
            img.layout.width = img.layout.height = f"{px}px"

    def show(self, record: Any, n_edits: int, note: str = "") -> None:
        """Show the applied edit ``record`` (an ``EditRecord`` with reports), or the base state (None)."""
        zeros = [0.0] * len(self.classes)
        step = record.step_report if record is not None else None
        total = record.report if record is not None else None
        s = [-v * 100 for v in _vec(step.per_class_change)] if step is not None else zeros
        t = [-v * 100 for v in _vec(total.per_class_change)] if total is not None else zeros
        with self.figure.batch_update():
            self.figure.data[0].y = s
            self.figure.data[1].y = t
            self.figure.layout.yaxis.range = pp_range(s, t)
        self.chart.children = (self.figure,) if record is not None else ()
        if record is None:
            self.heading.value = markup("<i>{}</i>", note or NO_EDIT)
        else:
            what = f"#{record.index}" if isinstance(record.index, int) else "your image"
            target = record.target if isinstance(record.target, int) else record.target[0]
            self.heading.value = markup("<b>Edit {}</b> ({} → {}): {}{}", n_edits, what, self.classes[target],
                                        term("per-class change"),
                                        markup(" <span style='color:#8a5a00'>({})</span>", note) if note else "")
        self.show_flipped(_vec(step.flipped) if step is not None else [],
                          _vec(step.preds_after) if step is not None else None,
                          exclude=record.index if record is not None and isinstance(record.index, int) else None)
        if record is None:
            self.strip_label.value = ""

    def open_flipped(self, k: int) -> None:
        """Open the ``k``-th image of the strip (select it in the workbench)."""
        if k < len(self.flipped) and self.on_select is not None:
            self.on_select(self.flipped[k])

    def png(self, index: int) -> bytes:
        if index not in self._png:
            self._png[index] = image_png(self.images[index], scale=3)
        return self._png[index]

    def show_flipped(self, flipped: Sequence[float], preds_after=None, exclude: int | None = None) -> None:
        """Fill the strip with the first test images whose prediction the edit changed."""
        self.flipped = [int(i) for i in flipped if int(i) != exclude]
        # one message per changed widget: the strip's visibility once when empty, each button's
        # words and colour together, an image only when it is another one
        _set(self.strip.layout, visibility="visible" if self.flipped else "hidden")
        for k, (img, btn, box) in enumerate(self.strip_cells):
            if k >= len(self.flipped):
                if self.flipped:
                    _set(box.layout, visibility="hidden")
                continue
            i = self.flipped[k]
            if self._shown[k] != i:
                self._shown[k] = i
                img.value = self.png(i)
            new = int(preds_after[i]) if preds_after is not None else None
            ok = new is not None and new == int(self.labels[i])
            _set(btn, description=f"#{i} {'✓' if ok else '✗'}", button_style="success" if ok else "danger",
                 tooltip=(f"true {self.classes[int(self.labels[i])]}, now predicted "
                          f"{self.classes[new] if new is not None else '?'}: "
                          + ("the edit fixed it" if ok else "the edit broke it")))
            _set(box.layout, visibility="visible")
        n = len(self.flipped)
        fixed = sum(1 for i in self.flipped if preds_after is not None and int(preds_after[i]) == int(self.labels[i]))
        shown = min(n, len(self.strip_cells))
        self.strip_label.value = markup("{} by this edit: <b>{}</b>{}", term("other images changed"), n,
                                        f" — {fixed} now right ✓, {n - fixed} now wrong ✗ (first {shown} shown; "
                                        "click one to open it)" if n else "")

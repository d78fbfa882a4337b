"""TargetPicker: the selected image, its class probabilities and one button per class.

The buttons are ordered with the suggestions first: the true label, then the model's
top-k predictions, then the remaining classes. The probability chart is a FigureWidget
updated in place (only the bar heights, labels and colours are sent).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import ipywidgets as W
import torch

from ..common import SIZES, css
from ..plots.charts import probability_colors, probability_figure, probability_text
from ..glossary import GLOSSARY
from ..plots.images import image_png
from ..markup import HTML, markup
from ..plots.live import live_figure

if TYPE_CHECKING:
    from ..events import Selection

__all__ = ["NO_PICK", "TargetPicker", "suggest_targets"]

NO_PICK = "Pick an image: how sure the model is of each class shows here."


def suggest_targets(probs: Sequence[float], true: int | None, k: int = 3) -> list[int]:
    """Class order for the buttons: ``true`` first, then the top-``k`` predictions, then the rest.

    Args:
        probs: ``(C,)`` probabilities.
    Returns:
        A permutation of ``range(C)``.
    """
    ranked = sorted(range(len(probs)), key=lambda c: (-float(probs[c]), c))
    head = ([true] if true is not None else []) + [c for c in ranked[:k] if c != true]
    return head + [c for c in ranked if c not in head]


class TargetPicker:
    """The image, a header (true / predicted), target buttons and the probability chart.

    Args:
        classes: class names.
        on_target: called with the chosen class index.
        k: how many top predictions to suggest after the true label.
        image_px: displayed image size (presentation mode sets at least 160).
    """

    def __init__(self, classes: Sequence[str], *, on_target: Callable[[int], None] | None = None, k: int = 3,
                 image_px: int = SIZES[False][0], chart_width: int = 420) -> None:
        self.classes, self.k = tuple(classes), k
        self.on_target = on_target
        self.index: int | None = None
        self.name = ""
        self.true: int | None = None
        self.pred: int | None = None
        self.target: int | None = None
        self.probs: list[float] = [0.0] * len(self.classes)
        self.order: list[int] = list(range(len(self.classes)))
        self._raw_key: object = None
        self.figure = live_figure(probability_figure(self.probs, self.classes, title="", width=chart_width))
        self.image = css(W.Image(value=image_png(torch.full((1, 28, 28), 235, dtype=torch.uint8)), format="png",
                                 layout=W.Layout(width=f"{image_px}px", height=f"{image_px}px",
                                                 border="1px solid #ccc")), "wb-picked-image")
        self.header = css(HTML(markup("<i>No image picked yet.</i>")), "wb-target-header")
        self.buttons = [css(W.Button(description=c, layout=W.Layout(width="auto")), "wb-target")
                        for c in self.classes]
        for k_, b in enumerate(self.buttons):
            b.on_click(lambda _b, k_=k_: self.choose(k_))
        self.button_box = css(W.HBox(self.buttons, layout=W.Layout(flex_flow="row wrap")), "wb-target-buttons")
        self.legend = HTML(markup("<small style='color:#555' title='{}'>bars: <span style='color:#2e7d32'>■ true"
                                  "</span> <span style='color:#c62828'>■ predicted</span> "
                                  "<span style='color:#1565c0'>■ target</span> ■ other</small>", GLOSSARY["bars"]))
        self.widget = css(W.VBox([W.HBox([self.image, self.header], layout=W.Layout(align_items="center")),
                                  self.button_box]), "wb-target-picker")
        self.chart_note = css(HTML(markup("<i>{}</i>", NO_PICK)), "wb-probabilities-empty")
        self.chart = css(W.VBox([self.chart_note]), "wb-probabilities")  # the bars once an image is picked
        self._set_enabled(False)

    def set_image_size(self, px: int) -> None:
        self.image.layout.width = self.image.layout.height = f"{px}px"

    def show(self, sel: Selection) -> None:
        """Show a selection; the target resets to the suggestion when the image changes."""
        probs = sel.probs.tolist()
        self.index, self.name, self.true = sel.index, sel.name, sel.true
        self.probs = [float(p) for p in probs]
        self.pred = sel.pred
        self.order = suggest_targets(self.probs, sel.true, self.k)
        if self._raw_key is not sel.raw:  # a new image: send its PNG (never re-send an unchanged one)
            self._raw_key = sel.raw
            self.image.value = image_png(sel.raw, scale=6)
        self._set_enabled(True)
        if self.chart.children != (self.figure, self.legend):
            self.chart.children = (self.figure, self.legend)
        self.refresh()

    def choose(self, target: int) -> None:
        """Pick ``target`` as the edit's target label (a button click)."""
        if self.on_target is not None:
            self.on_target(int(target))
        else:
            self.set_target(int(target))

    def set_target(self, target: int) -> None:
        """Show ``target`` as the chosen label (without calling ``on_target``)."""
        self.target = int(target)
        self.refresh()

    def refresh(self) -> None:
        """Update bars, colours, button order and styles in place."""
        with self.figure.batch_update():
            self.figure.data[0].y = self.probs
            self.figure.data[0].text = probability_text(self.probs)
            self.figure.data[0].marker.color = probability_colors(len(self.classes), true=self.true,
                                                                  pred=self.pred, target=self.target)
        order = [self.buttons[c] for c in self.order]
        if list(self.button_box.children) != order:
            self.button_box.children = order
        suggested = set(self.order[:self.k + 1])
        for c, b in enumerate(self.buttons):
            b.button_style = "primary" if c == self.target else ""
            b.icon = "star" if c in suggested and c != self.target else ("check" if c == self.target else "")
            for cls, on in (("wb-target-true", c == self.true), ("wb-target-suggested", c in suggested),
                            ("wb-target-selected", c == self.target)):
                (b.add_class if on else b.remove_class)(cls)
            b.tooltip = ("the true label; " if c == self.true else "suggested: a top prediction; "
                         if c in suggested else "") + f"the model gives it {self.probs[c]:.1%}"
        if self.pred is not None:
            name = lambda c: self.classes[c] if c is not None else "unknown"  # noqa: E731
            true = markup("true: <b>{}</b>, ", name(self.true)) if self.true is not None else "your image, "
            self.header.value = markup("<div style='padding-left:8px'><b>{}</b><br>{}predicted: <b>{}</b> ({:.0%})<br>"
                                       "it should be: <b class='wb-target-name'>{}</b> <span style='color:#555'>"
                                       "(pick below)</span></div>", self.name, true, name(self.pred),
                                       self.probs[self.pred], name(self.target))

    def _set_enabled(self, on: bool) -> None:
        for b in self.buttons:
            b.disabled = not on

"""TargetPicker: the selected image's class probabilities and one button per class.

The buttons are ordered with the suggestions first: the true label, then the model's
top-k predictions, then the remaining classes.
"""
from __future__ import annotations

import html
from typing import Callable, Sequence

import ipywidgets as W
import torch

from .common import css
from .figures import probability_colors, probability_figure
from .images import image_png
from .plotly_widget import live_figure

__all__ = ["TargetPicker", "suggest_targets"]


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
    """Probability bar chart (a FigureWidget updated in place) plus target buttons.

    Args:
        classes: class names.
        on_target: called with the chosen class index.
        k: how many top predictions to suggest after the true label.
        title: heading (the model's name in a comparison).
    """

    def __init__(self, classes: Sequence[str], *, on_target: Callable[[int], None] | None = None, k: int = 3,
                 title: str = "Target label") -> None:
        self.classes, self.k = tuple(classes), k
        self.on_target = on_target
        self.index: int | None = None
        self.true: int | None = None
        self.pred: int | None = None
        self.target: int | None = None
        self.probs: list[float] = [0.0] * len(self.classes)
        self.order: list[int] = list(range(len(self.classes)))
        self.figure = live_figure(probability_figure(self.probs, self.classes, title=title))
        self.image = W.Image(value=image_png(torch.full((1, 28, 28), 240, dtype=torch.uint8)), format="png",
                             layout=W.Layout(width="84px", height="84px"))
        self.header = css(W.HTML("<i>select an image</i>"), "wb-target-header")
        self.buttons = [css(W.Button(description=c, layout=W.Layout(width="auto")), "wb-target")
                        for c in self.classes]
        for k_, b in enumerate(self.buttons):
            b.on_click(lambda _b, k_=k_: self.choose(k_))
        self.button_box = W.HBox(self.buttons, layout=W.Layout(flex_flow="row wrap", max_width="520px"))
        self.widget = css(W.VBox([W.HBox([self.image, self.header]), self.button_box, self.figure]),
                          "wb-target-picker")
        self._set_enabled(False)

    def show(self, index: int, image, probs: Sequence[float], true: int | None) -> None:
        """Show test image ``index``: its ``(C, H, W)`` image, ``(C,)`` probabilities and true label.

        The target resets to the suggestion (the true label) whenever the image changes.
        """
        new_image = index != self.index
        self.index, self.true = int(index), true
        self.probs = [float(p) for p in probs]
        self.pred = max(range(len(self.probs)), key=lambda c: self.probs[c])
        self.order = suggest_targets(self.probs, true, self.k)
        if new_image or self.target is None:
            self.target = true if true is not None else self.order[0]
        self.image.value = image_png(image)
        self._set_enabled(True)
        self.refresh()

    def choose(self, target: int) -> None:
        """Pick ``target`` as the edit's target label (a button click)."""
        self.target = int(target)
        self.refresh()
        if self.on_target is not None:
            self.on_target(self.target)

    def choose_silently(self, target: int) -> None:
        """Set the target without calling ``on_target`` (used to sync several pickers)."""
        self.target = int(target)
        self.refresh()

    def refresh(self) -> None:
        """Update bars, colours, button order and styles in place."""
        with self.figure.batch_update():
            self.figure.data[0].y = self.probs
            self.figure.data[0].marker.color = probability_colors(len(self.classes), true=self.true,
                                                                  pred=self.pred, target=self.target)
        self.button_box.children = [self.buttons[c] for c in self.order]
        suggested = set(self.order[:self.k + 1])
        for c, b in enumerate(self.buttons):
            b.button_style = "primary" if c == self.target else ""
            b.icon = "star" if c in suggested else ""
            for cls, on in (("wb-target-true", c == self.true), ("wb-target-suggested", c in suggested),
                            ("wb-target-selected", c == self.target)):
                (b.add_class if on else b.remove_class)(cls)
            b.tooltip = ("true label" if c == self.true else "suggested: top prediction" if c in suggested
                         else "") + f" p={self.probs[c]:.3f}"
        if self.index is not None and self.pred is not None:
            name = lambda c: html.escape(self.classes[c]) if c is not None else "?"  # noqa: E731
            self.header.value = (f"<b>#{self.index}</b> true: <b>{name(self.true)}</b>, predicted: "
                                 f"<b>{name(self.pred)}</b> ({self.probs[self.pred]:.1%})<br>"
                                 f"target: <b class='wb-target-name'>{name(self.target)}</b>")

    def _set_enabled(self, on: bool) -> None:
        for b in self.buttons:
            b.disabled = not on

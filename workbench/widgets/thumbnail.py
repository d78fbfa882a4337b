"""A thumbnail of the error list: the image and its caption under one transparent button, so a
click anywhere on it opens the image (stock ipywidgets, no custom front-end code).

The caption says the image's number, its status in the steady list (``fixed ✓``, ``new ✗``),
what the model said and the true label. CSS (``STYLE_SHEET``) makes the button transparent and
draws the selection (``button_style="info"``) and the status (``wb-thumb-fixed``, ``wb-thumb-new``)
as coloured borders.
"""
from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as W

from .common import css
from .markup import HTML, Markup, markup

__all__ = ["CAPTION_PX", "Thumbnail", "caption"]

CAPTION_PX = 30  # room beside a thumbnail for its caption's words


class Thumbnail:
    """One thumbnail: the image and its caption under one transparent button (a click opens it)."""

    def __init__(self, on_click: Callable[[int], None], px: int) -> None:
        self.index: int | None = None
        self.image = W.Image(format="png", layout=W.Layout(width=f"{px}px", height=f"{px}px"))
        self.caption = css(HTML(), "wb-thumb-caption")
        face = W.VBox([self.image, self.caption], layout=W.Layout(grid_area="cell", align_items="center"))
        self.button = css(W.Button(description="", layout=W.Layout(grid_area="cell", width="100%", height="100%",
                                                                   margin="0")), "wb-thumb-select")
        self.button.on_click(lambda _b: on_click(self.index) if self.index is not None else None)
        self.box = css(W.GridBox([face, self.button], layout=W.Layout(
            grid_template_areas='"cell"', border="1px solid #ddd", padding="3px", width=f"{px + CAPTION_PX}px")),
            "wb-thumb")

    def resize(self, px: int) -> None:
        self.image.layout.width = self.image.layout.height = f"{px}px"
        self.box.layout.width = f"{px + CAPTION_PX}px"

    def set_status(self, status: str) -> None:
        for s in ("fixed", "new"):
            (self.box.add_class if s == status else self.box.remove_class)(f"wb-thumb-{s}")


def caption(item, status: str, classes: Sequence[str], note: Markup | str = "") -> Markup:
    """The caption of ``item`` (``index, true, pred, confidence``) with its ``status``
    (``wrong``, ``fixed``, ``new``, ``right``) and a ``note`` line (Markup, or text: escaped)."""
    mark = {"fixed": markup("<span class='wb-mark-fixed' style='color:#1b5e20;font-weight:600'>fixed ✓</span> "),
            "new": markup("<span class='wb-mark-new' style='color:#b71c1c;font-weight:600'>new ✗</span> ")}
    said = "was: " if status in ("fixed", "right") else "said "
    return markup("<div class='wb-thumb-text' title='the model was {:.0%} sure'><b>#{}</b> {}<br>{}{}<br>"
                  "true: {}{}</div>", item.confidence, item.index, mark.get(status, ""), said,
                  classes[item.pred], classes[item.true], note)

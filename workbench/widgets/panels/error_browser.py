"""ErrorBrowser: a paged, filterable grid of misclassified test images.

View state only: the error list it was given, the filters, the sort order, the page and
the selection. Which errors it lists is the caller's choice; the :class:`Workbench` gives
it the errors of the *current* model (the base model's errors at start, refreshed after
every edit, undo, redo and reset).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import ipywidgets as W

from ...localization.settings import MISLABELED_MAX_QUALITY
from ..common import SIZES, css
from ..plots.charts import confusion_figure, update_confusion
from ..plots.images import image_png
from ..markup import HTML, Markup, join, markup
from ..plots.live import live_figure

__all__ = ["DEFAULT_SORT", "ErrorBrowser", "FILTERS", "SCORE_SORTS", "SORTS"]

# label -> (attribute, descending); "typical" is the distance of an error's margin from the
# median margin of all listed errors (see DEFAULT_SORT).
SORTS: dict[str, tuple[str, bool]] = {
    "typical first": ("typical", False),
    "confidence (high first)": ("confidence", True),
    "confidence (low first)": ("confidence", False),
    "margin (high first)": ("margin", True),
    "margin (low first)": ("margin", False),
    "index": ("index", False),
}
# label -> (score name, descending): per-image scores given with ErrorBrowser.set_scores;
# images without a score come last, in index order. "mislabeled" is the session's best
# mislabel score (EditSession.label_scores); the line under the controls says which it is.
SCORE_SORTS: dict[str, tuple[str, bool]] = {
    "likely mislabeled first": ("mislabeled", True),
}
# label -> (score name, threshold): keep images whose score is <= threshold
FILTERS: dict[str, tuple[str, float] | None] = {
    "all": None,
    f"likely mislabeled (label quality <= {MISLABELED_MAX_QUALITY:g})": ("label_quality", MISLABELED_MAX_QUALITY),
}
ALL = -1
# The first pick of a demo should be a typical, teachable mistake: neither a near-tie (fixed
# by a nudge, nothing to see) nor the most confident mistake (often a mislabeled or odd
# image whose fix is the costliest edit: +3 pp and 658 flipped predictions on the shipped
# model). "typical first" lists errors whose margin logit(pred) - logit(true) is closest to
# the median margin of all errors first.
DEFAULT_SORT = "typical first"


class _Cell:
    """One thumbnail: image, caption and a select button (widgets reused across pages)."""

    def __init__(self, on_click: Callable[[int], None], px: int) -> None:
        self.index: int | None = None
        self.image = W.Image(format="png", layout=W.Layout(width=f"{px}px", height=f"{px}px"))
        self.caption = css(HTML(), "wb-thumb-caption")
        self.button = css(W.Button(description="select", layout=W.Layout(width="auto")), "wb-thumb-select")
        self.button.on_click(lambda _b: on_click(self.index) if self.index is not None else None)
        self.box = css(W.VBox([self.image, self.caption, self.button],
                              layout=W.Layout(align_items="center", border="1px solid #ddd", padding="3px")),
                       "wb-thumb")

    def resize(self, px: int) -> None:
        self.image.layout.width = self.image.layout.height = f"{px}px"


class ErrorBrowser:
    """Paged grid of misclassified examples, with filters, sort and a confusion heatmap.

    Args:
        images: ``(N, C, H, W)`` uint8 test images (indexed by ``Misclassified.index``).
        classes: class names.
        on_select: called with the test index when the user selects an image.
        page_size, columns: grid geometry.
        errors, confusion: the initial list and ``(C, C)`` counts (see :meth:`set_errors`).
        notes: a plain-text line per test index under its caption (the comparison says which
            model gets the image wrong).
    Items are any objects with ``index, true, pred, confidence, margin`` attributes
    (``workbench.evaluation.Misclassified``).
    """

    def __init__(self, images, classes: Sequence[str], *, on_select: Callable[[int], None] | None = None,
                 page_size: int = 10, columns: int = 5, title: str = "Misclassified test images",
                 errors: Sequence = (), confusion=None, thumb_px: int = SIZES[False][1],
                 notes: Mapping[int, str] | None = None) -> None:
        self.images, self.classes = images, tuple(classes)
        self.notes: dict[int, str] = dict(notes or {})
        self.on_select = on_select
        self.page_size, self.page = page_size, 0
        self.errors: list = list(errors)
        self.selected: int | None = None
        opts = [("all", ALL)] + [(c, i) for i, c in enumerate(self.classes)]
        self.filter_true = W.Dropdown(options=opts, value=ALL, description="true",
                                      layout=W.Layout(width="190px"))
        self.filter_pred = W.Dropdown(options=opts, value=ALL, description="predicted",
                                      layout=W.Layout(width="210px"))
        self.sort = css(W.Dropdown(options=list(SORTS) + list(SCORE_SORTS), value=DEFAULT_SORT, description="sort",
                                   layout=W.Layout(width="280px")), "wb-sort")
        self.only = css(W.Dropdown(options=list(FILTERS), value="all", description="only",
                                   layout=W.Layout(width="280px")), "wb-only")
        self.scores: dict[str, dict[int, float]] = {}
        self.mislabel_note = css(HTML(""), "wb-mislabel-note")
        self._png: dict[int, bytes] = {}
        self.prev_button = css(W.Button(description="◀ prev", layout=W.Layout(width="80px")), "wb-prev")
        self.next_button = css(W.Button(description="next ▶", layout=W.Layout(width="80px")), "wb-next")
        self.page_label = css(HTML(), "wb-page-label")
        self.progress = css(W.IntProgress(value=0, min=0, max=1, description="scoring", bar_style="info",
                                          layout=W.Layout(display="none", width="420px")), "wb-scoring-progress")
        self.title = HTML(markup("<b>{}</b>", title))
        self.cells = [_Cell(self.select, thumb_px) for _ in range(page_size)]
        self.grid = W.GridBox([c.box for c in self.cells], layout=W.Layout(
            grid_template_columns=f"repeat({columns}, max-content)", grid_gap="4px"))
        c = len(self.classes)
        self.confusion = css(live_figure(confusion_figure(confusion if confusion is not None else [[0] * c] * c,
                                                          self.classes)), "wb-confusion")
        self.confusion.data[0].on_click(self._on_heatmap_click)
        for w in (self.filter_true, self.filter_pred, self.sort, self.only):
            w.observe(self._on_filter, names="value")
        self.prev_button.on_click(lambda _b: self.go_to(self.page - 1))
        self.next_button.on_click(lambda _b: self.go_to(self.page + 1))
        controls = css(W.HBox([self.filter_true, self.filter_pred, self.sort, self.only],
                              layout=W.Layout(flex_flow="row wrap")), "wb-advanced-filters")
        paging = W.HBox([self.prev_button, self.page_label, self.next_button],
                        layout=W.Layout(align_items="center"))
        self.controls = controls
        left = W.VBox([self.progress, paging, self.grid, controls, self.mislabel_note])
        self.widget = css(W.HBox([left, self.confusion], layout=W.Layout(flex_flow="row wrap")), "wb-error-browser")
        self.refresh()

    # -- data ---------------------------------------------------------------------------
    def set_errors(self, errors: Sequence, confusion=None, notes: Mapping[int, str] | None = None) -> None:
        """Replace the listed errors (and the heatmap counts, ``(C, C)``, and the caption notes); keeps filters."""
        self.errors = list(errors)
        if notes is not None:
            self.notes = dict(notes)
        if confusion is not None:
            update_confusion(self.confusion, confusion)
        self.refresh()

    def set_progress(self, scored: int, total: int) -> None:
        """The bar of the base scoring: ``scored`` of ``total`` test images (hidden once all are in;
        until then the list holds the mistakes among the images scored)."""
        self.progress.max = max(1, total)
        self.progress.value = scored
        self.progress.description = f"{scored:,} / {total:,}"
        self.progress.layout.display = "none" if scored >= total else ""

    def set_scores(self, name: str, scores: dict[int, float]) -> None:
        """Per-image scores (``{index: value}``) for the score sorts and filters (``label_quality``,
        ``mislabeled``); replaces that score's values and redraws."""
        self.scores[name] = dict(scores)
        self.refresh()

    def set_mislabel_source(self, description: str) -> None:
        """Say which score the "likely mislabeled first" sort uses."""
        self.mislabel_note.value = markup("<span style='color:#555'>'likely mislabeled first' sorts by {}</span>",
                                          description)

    @property
    def visible(self) -> list:
        """The errors that pass the filters, in the chosen order."""
        t, p = self.filter_true.value, self.filter_pred.value
        items = [e for e in self.errors if (t == ALL or e.true == t) and (p == ALL or e.pred == p)]
        rule = FILTERS[self.only.value]
        if rule is not None:
            vals, limit = self.scores.get(rule[0], {}), rule[1]
            items = [e for e in items if e.index in vals and vals[e.index] <= limit]
        if self.sort.value in SCORE_SORTS:
            name, desc = SCORE_SORTS[self.sort.value]
            vals = self.scores.get(name, {})
            sign = -1.0 if desc else 1.0
            return sorted(items, key=lambda e: (e.index not in vals, sign * vals.get(e.index, 0.0), e.index))
        key, desc = SORTS[self.sort.value]
        if key == "typical":
            margins = sorted(e.margin for e in self.errors)
            med = margins[len(margins) // 2] if margins else 0.0
            return sorted(items, key=lambda e: (abs(e.margin - med), e.index))
        return sorted(items, key=lambda e: (getattr(e, key), -e.index if desc else e.index), reverse=desc)

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.visible) // self.page_size))

    @property
    def page_items(self) -> list:
        return self.visible[self.page * self.page_size:(self.page + 1) * self.page_size]

    # -- handlers (thin) ----------------------------------------------------------------
    def _on_filter(self, _change) -> None:
        self.page = 0
        self.refresh()

    def _on_heatmap_click(self, _trace, points, _state) -> None:
        if points.xs and points.ys:
            self.filter_cell(int(points.ys[0]), int(points.xs[0]))

    def filter_cell(self, true: int, pred: int) -> None:
        """Show only examples of class ``true`` predicted as ``pred`` (a heatmap click)."""
        with self.filter_true.hold_trait_notifications(), self.filter_pred.hold_trait_notifications():
            self.filter_true.value, self.filter_pred.value = true, pred
        self.page = 0
        self.refresh()

    def go_to(self, page: int) -> None:
        self.page = min(max(0, page), self.pages - 1)
        self.refresh()

    def select(self, index: int, *, notify: bool = True) -> None:
        """Select test image ``index`` (highlight it) and tell ``on_select``."""
        self.selected = int(index)
        self._highlight()
        if notify and self.on_select is not None:
            self.on_select(self.selected)

    # -- view ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw the current page from the view state (widgets reused, values swapped)."""
        self.page = min(self.page, self.pages - 1)
        items = self.page_items
        for cell, item in zip(self.cells, items + [None] * (len(self.cells) - len(items))):
            if item is None:
                cell.index = None
                cell.box.layout.visibility = "hidden"
                continue
            if cell.index != int(item.index):  # send a thumbnail only when the cell shows another image
                cell.index = int(item.index)
                cell.image.value = self.png(cell.index)
            cell.caption.value = markup("<div style='font-size:0.85em;line-height:1.25' title='the model is {:.0%} "
                                        "sure'><b>#{}</b> said {}<br>true: {}{}</div>", item.confidence, item.index,
                                        self.classes[item.pred], self.classes[item.true],
                                        self._score_note(item.index))
            cell.button.description = "select"
            cell.box.layout.visibility = "visible"
        n = len(self.visible)
        self.page_label.value = markup("&nbsp;page {} / {} &nbsp;({} of {} errors)&nbsp;", self.page + 1, self.pages,
                                       n, len(self.errors))
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.pages - 1
        self._highlight()

    def _score_note(self, index: int) -> Markup:
        q = self.scores.get("label_quality", {}).get(index)
        parts = [f"label q {q:.2f}"] if q is not None else []
        if index in self.notes:
            parts.insert(0, self.notes[index])
        return markup("<br><span style='color:#777'>{}</span>", join(parts, ", ")) if parts else Markup()

    def png(self, index: int) -> bytes:
        """The thumbnail PNG of test image ``index`` (encoded once)."""
        if index not in self._png:
            self._png[index] = image_png(self.images[index])
        return self._png[index]

    def set_thumb_size(self, px: int) -> None:
        for c in self.cells:
            c.resize(px)

    def _highlight(self) -> None:
        for cell in self.cells:
            cell.button.button_style = "info" if cell.index is not None and cell.index == self.selected else ""

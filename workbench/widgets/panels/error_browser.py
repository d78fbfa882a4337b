"""ErrorBrowser: a paged, filterable grid of misclassified test images that keeps its place.

View state only: the error list it was given, the filters, the sort order, the page and
the selection. Which errors it lists is the caller's choice; the :class:`Workbench` gives
it the errors of the *current* model (the base model's errors at start, refreshed after
every edit, undo, redo and reset). After an edit the list keeps its order
(:class:`~workbench.widgets.listing.SteadyList`): a fixed image stays in its place marked
"fixed ✓", images the edits made wrong are appended and marked "new ✗", one click away
(the "new mistakes" button). A click on a thumbnail (image or caption) opens it.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import ipywidgets as W

from ...localization.settings import MISLABELED_MAX_QUALITY
from ..common import SIZES, css
from ..listing import SteadyList
from ..markup import HTML, Markup, join, markup
from ..picks import typical_first
from ..plots.charts import confusion_figure, update_confusion
from ..plots.images import image_png
from ..plots.live import live_figure
from ..thumbnail import CAPTION_PX, Thumbnail, caption

__all__ = ["DEFAULT_SORT", "ErrorBrowser", "FILTERS", "NEW_ONLY", "SCORE_SORTS", "SORTS"]

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
NEW_ONLY = "new mistakes (wrong since an edit)"
# label -> (score name, threshold): keep images whose score is <= threshold; ("status", s): keep status s
FILTERS: dict[str, tuple[str, float] | tuple[str, str] | None] = {
    "all": None,
    NEW_ONLY: ("status", "new"),
    "fixed by an edit": ("status", "fixed"),
    f"likely mislabeled (label quality <= {MISLABELED_MAX_QUALITY:g})": ("label_quality", MISLABELED_MAX_QUALITY),
}
ALL = -1
# The first pick of a demo should be a typical, teachable mistake: neither a near-tie (fixed
# by a nudge, nothing to see) nor the most confident mistake (often a mislabeled or odd
# image whose fix is the costliest edit: +3 pp and 658 flipped predictions on the shipped
# model). "typical first" lists errors whose margin logit(pred) - logit(true) is closest to
# the median margin of all errors first.
DEFAULT_SORT = "typical first"
class ErrorBrowser:
    """Paged grid of misclassified examples, with filters, sort and a confusion heatmap.

    Args:
        images: ``(N, C, H, W)`` uint8 test images (indexed by ``Misclassified.index``).
        classes: class names.
        on_select: called with the test index when the user selects an image.
        page_size, columns: grid geometry (``columns``: at most that many per row; fewer on a narrow screen).
        errors, confusion: the initial list and ``(C, C)`` counts (see :meth:`set_errors`); the
            initial list is the reference for the "fixed" and "new" marks.
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
        self.listing = SteadyList(errors)
        self.selected: int | None = None
        self.columns = columns
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
        self.prev_button = css(W.Button(description="◀ prev", layout=W.Layout(width="auto")), "wb-prev")
        self.next_button = css(W.Button(description="next ▶", layout=W.Layout(width="auto")), "wb-next")
        self.new_button = css(W.Button(description="", button_style="danger", layout=W.Layout(
            width="auto", display="none"), tooltip="the images the edits made wrong (marked new ✗)"), "wb-new-mistakes")
        self.page_label = css(HTML(), "wb-page-label")
        self.progress = css(W.IntProgress(value=0, min=0, max=1, description="scoring", bar_style="info",
                                          layout=W.Layout(display="none", width="420px")), "wb-scoring-progress")
        self.title = HTML(markup("<b>{}</b>", title))
        self.cells = [Thumbnail(self.select, thumb_px) for _ in range(page_size)]
        self.grid = css(W.GridBox([c.box for c in self.cells]), "wb-thumb-grid")
        self.set_thumb_size(thumb_px)
        c = len(self.classes)
        self.confusion = css(live_figure(confusion_figure(confusion if confusion is not None else [[0] * c] * c,
                                                          self.classes)), "wb-confusion")
        self.confusion.data[0].on_click(self._on_heatmap_click)
        for w in (self.filter_true, self.filter_pred, self.sort, self.only):
            w.observe(self._on_filter, names="value")
        self.prev_button.on_click(lambda _b: self.go_to(self.page - 1))
        self.next_button.on_click(lambda _b: self.go_to(self.page + 1))
        self.new_button.on_click(lambda _b: self.toggle_new())
        controls = css(W.HBox([self.filter_true, self.filter_pred, self.sort, self.only],
                              layout=W.Layout(flex_flow="row wrap")), "wb-advanced-filters")
        paging = W.HBox([self.prev_button, self.page_label, self.next_button, self.new_button],
                        layout=W.Layout(align_items="center", flex_flow="row wrap"))
        self.controls = controls
        left = W.VBox([self.progress, paging, self.grid, controls, self.mislabel_note],
                      layout=W.Layout(flex="1 1 480px", min_width="0"))
        self.confusion_box = W.VBox([self.confusion])  # (a FigureWidget's .layout is plotly's: hide the box)
        self.widget = css(W.HBox([left, self.confusion_box], layout=W.Layout(flex_flow="row wrap")),
                          "wb-error-browser")
        self.refresh()

    @property
    def errors(self) -> list:
        """The current errors (the last list given)."""
        return self.listing.errors

    # -- data ---------------------------------------------------------------------------
    def set_errors(self, errors: Sequence, confusion=None, notes: Mapping[int, str] | None = None, *,
                   base: bool = False) -> None:
        """The current errors (and the heatmap counts, ``(C, C)``, and the caption notes); keeps the
        filters, the order and the page: fixed images stay in place, new mistakes are appended.
        ``base``: these are the base model's errors (no edit applied), so none is marked new: while
        the base model is still being scored the list grows, and is sorted again as it does."""
        self.listing.update(errors, self._sorted, base=base)
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
        ``mislabeled``); replaces that score's values and redraws (the order stays)."""
        self.scores[name] = dict(scores)
        self.refresh()

    def set_mislabel_source(self, description: str) -> None:
        """Say which score the "likely mislabeled first" sort uses."""
        self.mislabel_note.value = markup("<span style='color:#555'>'likely mislabeled first' sorts by {}</span>",
                                          description)

    def status(self, index: int) -> str:
        """``wrong``, ``fixed`` (right now, wrong in the first list), ``new`` (wrong since an edit) or
        ``right`` (right now, listed while it is selected)."""
        return self.listing.status(int(index))

    def _sorted(self, items: list) -> list:
        """``items`` in the chosen sort order."""
        if self.sort.value in SCORE_SORTS:
            name, desc = SCORE_SORTS[self.sort.value]
            vals = self.scores.get(name, {})
            sign = -1.0 if desc else 1.0
            return sorted(items, key=lambda e: (e.index not in vals, sign * vals.get(e.index, 0.0), e.index))
        key, desc = SORTS[self.sort.value]
        if key == "typical":
            return typical_first(items, self.errors)
        return sorted(items, key=lambda e: (getattr(e, key), -e.index if desc else e.index), reverse=desc)

    @property
    def visible(self) -> list:
        """The listed images that pass the filters, in their steady order."""
        t, p = self.filter_true.value, self.filter_pred.value
        items = [e for e in self.listing.entries(self._sorted) if (t == ALL or e.true == t) and (p == ALL or e.pred == p)]
        rule = FILTERS[self.only.value]
        if rule is not None and rule[0] == "status":
            return [e for e in items if self.status(e.index) == rule[1]]
        if rule is not None:
            vals, limit = self.scores.get(str(rule[0]), {}), float(rule[1])
            items = [e for e in items if e.index in vals and vals[e.index] <= limit]
        return items

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.visible) // self.page_size))

    @property
    def page_items(self) -> list:
        return self.visible[self.page * self.page_size:(self.page + 1) * self.page_size]

    # -- handlers (thin) ----------------------------------------------------------------
    def _on_filter(self, _change) -> None:
        self.page = 0
        self.listing.reorder()
        self.refresh()

    def _on_heatmap_click(self, _trace, points, _state) -> None:
        if points.xs and points.ys:
            self.filter_cell(int(points.ys[0]), int(points.xs[0]))

    def filter_cell(self, true: int, pred: int) -> None:
        """Show only examples of class ``true`` predicted as ``pred`` (a heatmap click)."""
        with self.filter_true.hold_trait_notifications(), self.filter_pred.hold_trait_notifications():
            self.filter_true.value, self.filter_pred.value = true, pred
        self.page = 0
        self.listing.reorder()
        self.refresh()

    def toggle_new(self) -> None:
        """Show only the new mistakes (wrong since an edit), or all again (the "new mistakes" button)."""
        self.only.value = "all" if self.only.value == NEW_ONLY else NEW_ONLY

    def go_to(self, page: int) -> None:
        self.page = min(max(0, page), self.pages - 1)
        self.refresh()

    def select(self, index: int, *, notify: bool = True) -> None:
        """Select test image ``index`` (highlight it; it stays listed while selected) and tell ``on_select``."""
        self.selected = int(index)
        self.listing.keep = self.selected
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
            status = self.status(item.index)
            cell.caption.value = caption(item, status, self.classes, self._score_note(item.index))
            cell.button.tooltip = f"open #{item.index}"
            cell.set_status(status)
            cell.box.layout.visibility = "visible"
        self._show_counts()
        self._highlight()

    def _show_counts(self) -> None:
        n, shown = len(self.errors), len(self.visible)
        fixed, new = self.listing.count("fixed"), self.listing.count("new")
        parts = [markup("page {} / {} · {} mistake{}", self.page + 1, self.pages, n, "" if n == 1 else "s")]
        if self.filter_true.value != ALL or self.filter_pred.value != ALL or self.only.value != "all":
            parts.append(markup("{} shown", shown))
        if fixed:
            parts.append(markup("<span style='color:#1b5e20'>{} fixed ✓</span>", fixed))
        if new:
            parts.append(markup("<span style='color:#b71c1c'>{} new ✗</span>", new))
        self.page_label.value = markup("&nbsp;{}&nbsp;", join(parts, " · "))
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.pages - 1
        showing_new = self.only.value == NEW_ONLY
        self.new_button.description = "◀ all mistakes" if showing_new else \
            f"{new} new mistake{'' if new == 1 else 's'} ▶"
        self.new_button.layout.display = "" if new or showing_new else "none"

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
        """Thumbnails of ``px`` pixels; the grid puts as many per row as fit (at most ``columns``)."""
        for c in self.cells:
            c.resize(px)
        self.grid.layout.grid_template_columns = f"repeat(auto-fill, {px + CAPTION_PX + 8}px)"
        self.grid.layout.grid_gap = "4px"
        self.grid.layout.max_width = f"{self.columns * (px + CAPTION_PX + 12)}px"

    def _highlight(self) -> None:
        for cell in self.cells:
            cell.button.button_style = "info" if cell.index is not None and cell.index == self.selected else ""

"""ModeTabs: the workbench's tabs, all of them or (presentation mode) only those a lesson needs.

Each tab has a title, a title in presentation mode (None: not shown there) and its widget.
Switching modes keeps the open tab open when it is shown in both.
"""
from __future__ import annotations

import ipywidgets as W

from .common import css

__all__ = ["ModeTabs"]


class ModeTabs:
    """An ``ipywidgets.Tab`` (``widget``, CSS ``wb-tabs``) whose tabs follow the mode."""

    def __init__(self, specs: list[tuple[str, str | None, W.Widget]]) -> None:
        self.specs = list(specs)  # (title, title in presentation mode or None, widget)
        self.widget = css(W.Tab(), "wb-tabs")
        self.presentation = False
        self.show(False)

    def show(self, presentation: bool) -> None:
        """The tabs of a mode; the open one stays open when it is shown in both."""
        self.presentation = presentation
        shown = [(p if presentation else t, w) for t, p, w in self.specs if p is not None or not presentation]
        widgets, titles = tuple(w for _, w in shown), tuple(t for t, _ in shown)
        tab = self.widget
        if tuple(tab.children) == widgets and tuple(tab.titles) == titles:
            return
        current = tab.children[tab.selected_index] if tab.children and tab.selected_index is not None else None
        tab.children, tab.titles = widgets, titles
        tab.selected_index = widgets.index(current) if current in widgets else 0

    def add(self, title: str, widget: W.Widget) -> None:
        """A tab shown outside presentation mode only."""
        self.specs.append((title, None, widget))
        self.show(self.presentation)

    def open(self, title: str) -> None:
        """Open the tab titled ``title`` (either mode's title).

        Raises:
            ValueError: no such tab is on screen in this mode.
        """
        for t, p, w in self.specs:
            if title in (t, p) and w in self.widget.children:
                self.widget.selected_index = list(self.widget.children).index(w)
                return
        raise ValueError(f"there is no tab {title!r} on screen: the tabs are {list(self.widget.titles)}")

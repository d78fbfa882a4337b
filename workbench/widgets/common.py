"""Small shared pieces of the widget layer: the message area and the error guard."""
from __future__ import annotations

import contextlib
import html
import logging
from typing import Iterator

import ipywidgets as W

__all__ = ["MessageArea", "css", "log"]

log = logging.getLogger("workbench.widgets")

_STYLE = {"info": "#0d47a1", "warning": "#8a5a00", "error": "#b71c1c", "success": "#1b5e20"}


def css(widget: W.DOMWidget, *classes: str) -> W.DOMWidget:
    """Add stable CSS classes (used by the browser test and by users' own styling)."""
    for c in classes:
        widget.add_class(c)
    return widget


class MessageArea:
    """One HTML line (CSS class ``wb-message``) that shows notes and readable errors.

    Errors shown here are also logged on the ``workbench.widgets`` logger; nothing is
    swallowed silently. ``last_error`` keeps the latest exception for programmatic checks.
    """

    def __init__(self) -> None:
        self.widget = css(W.HTML(value=""), "wb-message")
        self.level: str = ""
        self.text: str = ""
        self.last_error: BaseException | None = None

    def show(self, text: str, level: str = "info") -> None:
        """Show ``text`` (plain text, escaped) with a level: info, success, warning or error."""
        self.text, self.level = text, level
        for lv in _STYLE:
            self.widget.remove_class(f"wb-message-{lv}")
        self.widget.add_class(f"wb-message-{level}")
        color = _STYLE.get(level, "#333")
        self.widget.value = (f'<div style="color:{color};padding:2px 4px;white-space:pre-wrap">'
                             f'{html.escape(text)}</div>') if text else ""

    def clear(self) -> None:
        self.show("", "info")
        self.last_error = None

    def error(self, err: BaseException, action: str = "") -> None:
        """Show an exception as ``<action> failed: <Type>: <message>`` and log it."""
        self.last_error = err
        prefix = f"{action} failed: " if action else ""
        text = f"{prefix}{type(err).__name__}: {err}"
        expected = isinstance(err, (ValueError, TypeError, FileNotFoundError, KeyError))
        log.error(text, exc_info=None if expected else err)
        self.show(text, "error")

    @contextlib.contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Run a block; any exception is shown here (and logged) instead of escaping the handler."""
        try:
            yield
        except Exception as err:  # noqa: BLE001 - shown to the user and logged, never swallowed
            self.error(err, action)

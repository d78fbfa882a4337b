"""Small shared pieces of the widget layer: messages in plain words, CSS classes, the style sheet."""
from __future__ import annotations

import contextlib
import logging
import os
import traceback
from typing import Iterator

import ipywidgets as W

from .markup import HTML, Markup, markup

__all__ = ["MessageArea", "SIZES", "STYLE_SHEET", "TRACEBACKS_ENV", "css", "log", "plain_words", "show_tracebacks"]

log = logging.getLogger("workbench.widgets")

# Error messages carry the Python traceback behind a "details" toggle in JupyterLab, never in
# the Voila page (server paths, the venv's layout). TRACEBACKS_ENV decides when it is set
# ("1": shown, anything else: hidden); scripts/app.sh sets it to 0. When it is not set, a
# kernel started by Voila (which puts these variables in its kernels' environment) hides them.
TRACEBACKS_ENV = "WORKBENCH_TRACEBACKS"
_VOILA_ENV = ("VOILA_SERVER_URL", "VOILA_BASE_URL", "VOILA_APP_PORT")


def show_tracebacks() -> bool:
    """Whether error messages show the traceback (see ``TRACEBACKS_ENV``); read at each error."""
    given = os.environ.get(TRACEBACKS_ENV)
    if given is not None:
        return given.strip().lower() in ("1", "true", "yes")
    return not any(k in os.environ for k in _VOILA_ENV)

_COLORS = {"info": "#0d47a1", "warning": "#8a5a00", "error": "#b71c1c", "success": "#1b5e20"}

# The one place for the panels' sizes, per presentation mode (off, on): pixel sizes of the
# picked image, the error-browser thumbnails and the changed-image strip, and attribution inches.
SIZES = {False: (112, 76, 56, 1.9), True: (168, 120, 84, 2.6)}

# Classes set on the workbench's root: ``wb-present`` (presentation mode) sets every text of the
# page to at least 18 px and hides the ``wb-advanced`` controls. No button or tab title is ever
# cut: they are at least as wide as their text, and the tab bar wraps.
STYLE_SHEET = Markup("""<style>
.wb-root { font-size: 13px; }
.wb-root .wb-card { font-size: 14px; line-height: 1.45; }
.wb-root .wb-card .wb-card-title { font-size: 17px; font-weight: 600; }
.wb-root .wb-thumb-text { font-size: 11px; line-height: 1.25; text-align: center; }
.wb-root.wb-present { font-size: 18px; }
.wb-root.wb-present .widget-button, .wb-root.wb-present .widget-label,
.wb-root.wb-present .widget-html-content, .wb-root.wb-present .widget-toggle-button,
.wb-root.wb-present .lm-TabBar-tabLabel, .wb-root.wb-present .wb-thumb-text,
.wb-root.wb-present select, .wb-root.wb-present input, .wb-root.wb-present .widget-readout { font-size: 18px; }
.wb-root.wb-present .widget-readout { min-width: 4em; overflow: visible; }  /* the strength slider's value */
.wb-root.wb-present small { font-size: 1em; }
.wb-root.wb-present .widget-button, .wb-root.wb-present .widget-toggle-button { height: auto; min-height: 40px; }
.wb-root.wb-present .lm-TabBar { min-height: 40px; }
.wb-root.wb-present .wb-card { font-size: 20px; }
.wb-root.wb-present .wb-card .wb-card-title { font-size: 26px; }
.wb-root.wb-present .wb-advanced { display: none !important; }
.wb-root .wb-message details summary { cursor: pointer; color: #555; }
.wb-root .widget-button, .wb-root .widget-toggle-button { min-width: max-content !important; }
.wb-root .widget-tab > .lm-TabBar .lm-TabBar-content { flex-wrap: wrap; }
.wb-root .widget-tab > .lm-TabBar .lm-TabBar-tab { flex: 0 0 auto !important; min-width: max-content !important;
  max-width: none !important; }
.wb-root .lm-TabBar-tabLabel { overflow: visible !important; text-overflow: clip !important; }
.wb-root .wb-present-toggle { width: auto; min-width: fit-content; }
.wb-root .wb-thumb-select { background: transparent !important; box-shadow: none; cursor: pointer;
  min-width: 0 !important; padding: 0; }
.wb-root .wb-thumb-select:hover { box-shadow: inset 0 0 0 2px #90caf9; }
.wb-root .wb-thumb-select.mod-info { box-shadow: inset 0 0 0 3px #1565c0 !important; }
.wb-root .wb-thumb-fixed { border-color: #2e7d32 !important; background: #f1f8e9; }
.wb-root .wb-thumb-new { border-color: #c62828 !important; background: #ffebee; }
</style>""")


def css(widget: W.DOMWidget, *classes: str) -> W.DOMWidget:
    """Add stable CSS classes (used by the browser test and by users' own styling)."""
    for c in classes:
        widget.add_class(c)
    return widget


def plain_words(err: BaseException) -> str:
    """A user's mistake in plain words: the exception's message without its Python type.

    Messages raised by the workbench already name the problem and the fix, and are shown as
    they are. Unexpected errors keep their type, since that is all there is.
    """
    text = str(err).strip() or type(err).__name__
    if isinstance(err, KeyError) and text.startswith("'") and text.endswith("'"):
        text = text[1:-1]
    if not isinstance(err, (ValueError, TypeError, FileNotFoundError, KeyError, PermissionError)):
        text = f"something went wrong ({type(err).__name__}: {text})"
    return text


class MessageArea:
    """One message line placed next to the controls whose actions it reports.

    Errors are shown in plain words with the fix; the traceback sits behind a "details"
    toggle (an HTML ``<details>`` element), except where :func:`show_tracebacks` says no
    (the Voila page). Every error is also logged on the ``workbench.widgets`` logger
    (with its traceback where tracebacks are shown); nothing is swallowed silently.
    ``last_error`` keeps the latest exception for programmatic checks.
    """

    def __init__(self, name: str = "") -> None:
        self.widget = css(HTML(value=""), "wb-message", *([f"wb-message-{name}"] if name else []))
        self.level: str = ""
        self.text: str = ""
        self.details: str = ""
        self.last_error: BaseException | None = None

    def show(self, text: str, level: str = "info", details: str = "") -> None:
        """Show ``text`` (plain text, escaped) with a level: info, success, warning or error."""
        self.text, self.level, self.details = text, level, details
        for lv in _COLORS:
            self.widget.remove_class(f"wb-message-{lv}")
        self.widget.add_class(f"wb-message-{level}")
        color = _COLORS.get(level, "#333")
        more = markup("<details><summary>details</summary><pre style='font-size:11px;white-space:pre-wrap;"
                      "max-height:200px;overflow:auto'>{}</pre></details>", details) if details else ""
        self.widget.value = markup("<div style='color:{};padding:2px 4px;white-space:pre-wrap'>{}{}</div>",
                                   color, text, more) if text else ""

    def clear(self) -> None:
        self.show("", "info")
        self.last_error = None

    def error(self, err: BaseException, action: str = "") -> None:
        """Show an exception in plain words (``<action> did not work: <message>``) and log it."""
        self.last_error = err
        text = (f"{action} did not work: " if action else "") + plain_words(err)
        expected = isinstance(err, (ValueError, TypeError, FileNotFoundError, KeyError, PermissionError))
        shown = show_tracebacks()
        log.error(text, exc_info=None if expected or not shown else err)
        details = "".join(traceback.format_exception(type(err), err, err.__traceback__)) if shown else ""
        self.show(text, "error", details)

    @contextlib.contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Run a block; any exception is shown here (and logged) instead of escaping the handler."""
        try:
            yield
        except Exception as err:  # noqa: BLE001 - shown to the user and logged, never swallowed
            self.error(err, action)

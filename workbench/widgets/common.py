"""Small shared pieces of the widget layer: the message area and the error guard."""
from __future__ import annotations

import contextlib
import functools
import html
import logging
from pathlib import Path
from typing import Iterator

import ipywidgets as W
import plotly.graph_objects as go
import traitlets
from plotly.basewidget import BaseFigureWidget

__all__ = ["MessageArea", "css", "live_figure", "log"]

log = logging.getLogger("workbench.widgets")

_STYLE = {"info": "#0d47a1", "warning": "#8a5a00", "error": "#b71c1c", "success": "#1b5e20"}


def css(widget: W.DOMWidget, *classes: str) -> W.DOMWidget:
    """Add stable CSS classes (used by the browser test and by users' own styling)."""
    for c in classes:
        widget.add_class(c)
    return widget


# The ES module of every FigureWidget made by :func:`live_figure`. anywidget imports each
# widget's ``_esm`` from a fresh blob URL, so plotly's own ~5 MB bundle would be parsed and run
# once per figure; on a slow machine later figures then miss anywidget's 2 s limit for
# initialising a model and stop receiving updates. This wrapper imports the bundle (sent as
# the ``_plotly_src`` trait) once per page, returns from ``initialize`` at once (queueing the
# figure edits that arrive meanwhile) and lets ``render`` wait for plotly's own widget
# definition (a fresh one per model).
_ESM = """
const KEY = Symbol.for("editable-workbench/plotly-widget");
const MESSAGES = ["_py2js_addTraces", "_py2js_deleteTraces", "_py2js_moveTraces", "_py2js_restyle",
                  "_py2js_relayout", "_py2js_update", "_py2js_animate", "_py2js_removeLayoutProps",
                  "_py2js_removeTraceProps"];
function load(model) {
  if (!globalThis[KEY]) {
    const url = URL.createObjectURL(new Blob([model.get("_plotly_src")], {type: "text/javascript"}));
    globalThis[KEY] = import(url).finally(() => URL.revokeObjectURL(url));
  }
  return globalThis[KEY];
}
export default () => {
  let inner = null, ready = null;
  return {
    initialize({ model }) {
      // Python -> JS edits that arrive before plotly is loaded are queued, then replayed.
      const queue = [];
      const taps = MESSAGES.map((name) => {
        const tap = () => { const v = model.get(name); if (v !== null && v !== undefined) queue.push([name, v]); };
        model.on("change:" + name, tap);
        return [name, tap];
      });
      ready = load(model).then(async (mod) => {
        inner = typeof mod.default === "function" ? await mod.default() : mod.default;
        if (inner.initialize) await inner.initialize({ model });
        for (const [name, tap] of taps) model.off("change:" + name, tap);
        for (const [name, v] of queue) { model.set(name, v); model.set(name, null); }
      });
      ready.catch((err) => console.error("[editable-workbench] plotly widget failed to load", err));
    },
    async render(ctx) {
      await ready;
      return inner.render(ctx);
    },
  };
};
"""


@functools.lru_cache(maxsize=1)
def _plotly_bundle() -> str:
    """The source of plotly's widget bundle (what ``go.FigureWidget`` sends as ``_esm``)."""
    esm = BaseFigureWidget._esm
    src = esm.read_text(encoding="utf-8") if isinstance(esm, Path) else str(esm)  # anywidget FileContents
    if "export" not in src:
        raise RuntimeError("plotly's widget bundle was not found; reinstall plotly")
    return src


class _FigureWidget(go.FigureWidget):
    """A FigureWidget that opens with its whole figure and shares plotly's front-end code.

    * ``go.FigureWidget`` opens its comm first and assigns ``_widget_data``/``_widget_layout``
      right after, as separate messages; a slow front end can render the figure before
      those arrive and stay empty. Deferring ``open()`` puts the figure in the comm-open
      message.
    * ``_esm`` is the small wrapper ``_ESM``: plotly's bundle is evaluated once per page.
    """

    _esm = _ESM
    _plotly_src = traitlets.Unicode("").tag(sync=True)

    def __init__(self, fig: go.Figure) -> None:
        self._defer_open = True
        super().__init__(fig)
        self._plotly_src = _plotly_bundle()
        self._defer_open = False
        self.open()

    def open(self) -> None:
        if not getattr(self, "_defer_open", False):
            super().open()


def live_figure(fig: go.Figure) -> go.FigureWidget:
    """Wrap a figure from a pure builder into a FigureWidget (then update it in place)."""
    return _FigureWidget(fig)


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

"""``live_figure``: plotly FigureWidgets that render reliably on a slow front end.

Two fixes over ``go.FigureWidget``, both found with the browser test on a loaded 2-core
machine (figures rendered empty, or stopped updating):

* the comm opens only once the figure's data and layout are set, so the first drawing
  never misses them;
* plotly's ~5 MB front-end bundle is sent and evaluated once per page instead of once per
  figure (see ``_ESM``), so no figure misses anywidget's 2 s limit for initialising a model,
  and a start does not push 25 MB through the kernel, the server and the browser.

And one for the traffic of a click: plotly sends each figure edit (a ``batch_update``, one
restyle or relayout) as four comm messages (the trace and layout edit ids, the edit, then the
edit trait reset to None); here the edit ids and the edit go in one message, and the reset
stays in the kernel (the front end acts on each new edit, never on the reset).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import plotly.graph_objects as go
import traitlets
from ipywidgets.widgets.widget import _remove_buffers
from plotly.basewidget import BaseFigureWidget

__all__ = ["live_figure"]

# The ES module of every FigureWidget made by :func:`live_figure`. anywidget imports each
# widget's ``_esm`` from a fresh blob URL, so plotly's own ~5 MB bundle would be parsed and run
# once per figure; on a slow machine later figures then miss anywidget's 2 s limit for
# initialising a model and stop receiving updates. This wrapper imports the bundle (sent as
# the ``_plotly_src`` trait) once per page, returns from ``initialize`` at once (queueing the
# figure edits that arrive meanwhile) and lets ``render`` wait for plotly's own widget
# definition (a fresh one per model). Only one figure of the kernel, never displayed (the
# "carrier"), sends the bundle; the others wait for the page to have loaded it (the front end
# creates every widget model of the kernel, displayed or not, also after a page reload).
_ESM = """
const KEY = Symbol.for("editable-workbench/plotly-widget");
const MESSAGES = ["_py2js_addTraces", "_py2js_deleteTraces", "_py2js_moveTraces", "_py2js_restyle",
                  "_py2js_relayout", "_py2js_update", "_py2js_animate", "_py2js_removeLayoutProps",
                  "_py2js_removeTraceProps"];
function load(model) {
  const src = model.get("_plotly_src");
  if (!globalThis[KEY] && src) {
    const url = URL.createObjectURL(new Blob([src], {type: "text/javascript"}));
    globalThis[KEY] = import(url).finally(() => URL.revokeObjectURL(url));
  }
  if (globalThis[KEY]) return globalThis[KEY];
  // Only one figure of the kernel carries the bundle: wait until its model has loaded it.
  return new Promise((resolve) => {
    const wait = setInterval(() => { if (globalThis[KEY]) { clearInterval(wait); resolve(globalThis[KEY]); } }, 20);
  });
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


# plotly's senders of one figure edit (each sets the edit ids, then ``_py2js_<edit>``, then resets it)
_EDIT_SENDERS = ("_send_relayout_msg", "_send_restyle_msg", "_send_update_msg", "_send_addTraces_msg",
                 "_send_moveTraces_msg", "_send_deleteTraces_msg", "_send_animate_msg")


def _one_message(send: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap one of plotly's edit senders: everything it syncs goes out as one comm message."""
    @functools.wraps(send)
    def wrapper(self: _FigureWidget, *args: Any, **kwargs: Any) -> Any:
        if self._held is not None:  # nested: the outer call sends
            return send(self, *args, **kwargs)
        self._held = {}
        try:
            out = send(self, *args, **kwargs)
        finally:
            held, self._held = self._held, None
        if held:
            state = {k: self.trait_metadata(k, "to_json", self._trait_to_json)(v, self) for k, v in held.items()}
            state, paths, buffers = _remove_buffers(state)
            self._send({"method": "update", "state": state, "buffer_paths": paths}, buffers=buffers)
        return out
    return wrapper


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

    _carrier: _FigureWidget | None = None  # the kernel's never-displayed figure that carries plotly's bundle
    _held: dict[str, Any] | None = None  # while an edit is sent: the synced values that go in its one message

    def __init__(self, fig: go.Figure, *, carrier: bool = False) -> None:
        self._defer_open = True
        super().__init__(fig)
        if carrier:
            self._plotly_src = _plotly_bundle()
        self._defer_open = False
        self.open()

    @classmethod
    def ensure_carrier(cls) -> _FigureWidget:
        """The carrier: an empty figure that is never displayed, so closing any panel's figure
        never takes the bundle away; the front end creates its model (and so loads plotly) all
        the same, also after a page reload. A new one is made if it was closed (``close_all``)."""
        if cls._carrier is None or cls._carrier.comm is None:
            cls._carrier = cls(go.Figure(), carrier=True)
        return cls._carrier

    def open(self) -> None:
        if not getattr(self, "_defer_open", False):
            super().open()

    def _should_send_property(self, key: str, value: Any) -> bool:
        if self._held is None:
            return bool(super()._should_send_property(key, value))
        if value is not None or key not in self._held:  # the reset of an edit trait to None stays here
            self._held[key] = value
        return False


for _name in _EDIT_SENDERS:
    if hasattr(_FigureWidget, _name):  # plotly's private API: without it, the edits go out as plotly sends them
        setattr(_FigureWidget, _name, _one_message(getattr(_FigureWidget, _name)))


def live_figure(fig: go.Figure) -> go.FigureWidget:
    """Wrap a figure from a pure builder into a FigureWidget (then update it in place)."""
    _FigureWidget.ensure_carrier()
    return _FigureWidget(fig)

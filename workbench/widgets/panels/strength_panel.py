"""StrengthPanel: a slider that scales the last edit's weight change, and "smallest strength that fixes".

``weights = before + strength * change``: 1 is the edit as made, 0 the weights before it (PAINT's
interpolation, Ilharco et al. 2022, for one edit). While the slider moves, each new value goes
to ``on_move`` (the card shows the quick estimate); once it rests for :data:`SETTLE_S` seconds,
the value goes to ``on_settle`` (the exact figures). The panel holds view state only: the
controller does the rest.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Protocol

import ipywidgets as W

from ..common import css
from ..markup import HTML, markup

__all__ = ["SETTLE_S", "StrengthPanel", "call_later"]

SETTLE_S = 0.4  # seconds the slider rests before the exact figures are computed
STEP = 0.01  # the slider's step, and the grid of "smallest strength that fixes"


class Handle(Protocol):
    def cancel(self) -> Any: ...


def call_later(delay: float, fn: Callable[[], None]) -> Handle | None:
    """Run ``fn`` after ``delay`` seconds on the kernel's event loop (between comm messages, on
    the kernel's thread); with no loop running (a script, a test), run it now."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        fn()
        return None
    return loop.call_later(delay, fn)


class StrengthPanel:
    """The strength slider (``wb-strength-slider``), its button (``wb-strength-smallest``) and a note.

    Args:
        on_move: called with each new strength while the slider moves.
        on_settle: called with the strength once the slider rests.
        on_smallest: the button's click.
        schedule: ``schedule(delay, fn)`` runs ``fn`` later and returns a handle with
            ``cancel()`` (default :func:`call_later`; a test passes its own clock).
    """

    def __init__(self, on_move: Callable[[float], Any], on_settle: Callable[[float], Any],
                 on_smallest: Callable[[], Any], *,
                 schedule: Callable[[float, Callable[[], None]], Handle | None] = call_later) -> None:
        self.on_move, self.on_settle, self.schedule = on_move, on_settle, schedule
        self._quiet = False
        self._pending: Handle | None = None
        self.slider = css(W.FloatSlider(value=1.0, min=0.0, max=1.0, step=STEP, continuous_update=True,
                                        description="edit strength", readout_format=".2f",
                                        style={"description_width": "initial"}, layout=W.Layout(width="320px")),
                          "wb-strength-slider")
        self.slider.observe(self._moved, names="value")
        self.smallest = css(W.Button(description="Smallest strength that fixes", layout=W.Layout(width="auto"),
                                     tooltip="the weakest share of this edit that still gives the image its target"),
                            "wb-strength-smallest")
        self.smallest.on_click(lambda _b: on_smallest())
        self.note = css(HTML(markup("<small style='color:#555'>1 = the edit as made, 0 = the model before it</small>")),
                        "wb-strength-note")
        self.widget = css(W.VBox([W.HBox([self.slider, self.smallest], layout=W.Layout(flex_flow="row wrap",
                                                                                      align_items="center")),
                                  self.note], layout=W.Layout(display="none")), "wb-strength")

    @property
    def value(self) -> float:
        return float(self.slider.value)

    def _moved(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        if self._pending is not None:
            self._pending.cancel()
        alpha = float(change["new"])
        self.on_move(alpha)
        self._pending = self.schedule(SETTLE_S, lambda: self._settle(alpha))

    def _settle(self, alpha: float) -> None:
        self._pending = None
        self.on_settle(alpha)

    def show(self, strength: float | None) -> None:
        """Show the slider at ``strength`` (the last applied edit's), or hide it (None: no edit)."""
        if strength is None:
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
            if self.widget.layout.display != "none":
                self.widget.layout.display = "none"
            return
        self.set_value(strength)
        if self.widget.layout.display != "":
            self.widget.layout.display = ""

    def set_value(self, strength: float) -> None:
        """Move the slider without calling back (the controller set this strength)."""
        if float(self.slider.value) != float(strength):
            self._quiet = True
            try:
                self.slider.value = float(strength)
            finally:
                self._quiet = False

"""AttributionView: Captum maps of the selected image, base weights vs current weights.

Rows are two *different* labels (see :func:`~workbench.widgets.controller.attribution_rows`);
columns are the base weights, the current weights and their difference, with a colorbar
per colour scale. Only the controls that apply to the chosen method are shown (IG steps
for Integrated Gradients, the layer for LayerGradCam). The maps come from the session
(``EditSession.explain``), called by the controller; this panel holds the options and
renders what it is given.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import ipywidgets as W

from ...attribution import METHODS, REDUCTIONS, method_kwargs
from ..common import SIZES, MessageArea, css
from ..glossary import GLOSSARY
from ..plots.images import attribution_grid
from ..markup import HTML, markup

if TYPE_CHECKING:
    from ..events import Selection

__all__ = ["AttributionView"]

_USES = {"Integrated Gradients": {"n_steps"}, "LayerGradCam": {"layer"}, "Saliency": set(), "Occlusion": set()}


class AttributionView:
    """Method / layer / steps controls, a progress bar and the rendered grid.

    Args:
        layers: layers LayerGradCam can use (``EditSession.attribution_layers()``).
        on_compute: called when the user asks for maps (Compute, or a changed option while
            ``auto`` is on); the controller then calls :meth:`show`.
        auto: recompute on every selection and edit (turn off for slow methods).
    """

    def __init__(self, layers: Sequence[str], on_compute: Callable[[], None] | None = None, *,
                 method: str = "Saliency", layer: str | None = None, n_steps: int = 16, auto: bool = True) -> None:
        self.messages = MessageArea("attribution")
        self.on_compute = on_compute
        self.result: Any = None  # the last AttributionSet
        self.cell = SIZES[False][3]  # attribution inches per map (presentation mode: larger)
        layers = list(layers) or ["-"]
        self.method = css(W.Dropdown(options=list(METHODS), value=method, description="method",
                                     layout=W.Layout(width="250px")), "wb-attr-method")
        self.layer = css(W.Dropdown(options=layers, value=layer if layer in layers else layers[-1],
                                    description="layer", layout=W.Layout(width="190px")), "wb-attr-layer")
        self.n_steps = css(W.BoundedIntText(value=n_steps, min=1, max=512, description="IG steps",
                                            layout=W.Layout(width="170px")), "wb-attr-steps")
        self.auto = W.Checkbox(value=auto, description="update automatically", indent=False,
                               layout=W.Layout(width="190px"))
        self.compute_button = css(W.Button(description="Compute", layout=W.Layout(width="auto")), "wb-attr-compute")
        self.progress = css(W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="100px")),
                            "wb-attr-progress")
        self.info = css(HTML(markup("<i>Pick an image to see which pixels drive the prediction.</i>")),
                        "wb-attr-info")
        self.image = css(W.Image(format="png", layout=W.Layout(max_width="760px")), "wb-attr-image")
        self.compute_button.on_click(lambda _b: self.request(force=True))
        for w in (self.method, self.layer, self.n_steps):
            w.observe(lambda _c: self.request(), names="value")
        self.method.observe(lambda _c: self._show_controls(), names="value")
        self.controls = css(W.HBox([self.method, self.layer, self.n_steps, self.auto, self.compute_button,
                                    self.progress], layout=W.Layout(flex_flow="row wrap", align_items="center")),
                            "wb-attr-controls")
        self.widget = css(W.VBox([self.controls, self.messages.widget, self.info, self.image]), "wb-attribution")
        self._show_controls()
        self._force = False

    def _show_controls(self) -> None:
        uses = _USES.get(self.method.value, set())
        self.layer.layout.display = "" if "layer" in uses else "none"
        self.n_steps.layout.display = "" if "n_steps" in uses else "none"

    def request(self, force: bool = False) -> None:
        """Ask the controller for maps (now, when ``force`` or ``auto``)."""
        if (force or self.auto.value) and self.on_compute is not None:
            self._force = force
            with self.messages.guard("Attribution"):
                self.messages.clear()
                self.on_compute()
            self._force = False

    def options(self) -> dict[str, Any] | None:
        """Keyword arguments for ``EditSession.explain``, or None when maps are not wanted now."""
        if not (self.auto.value or self._force):
            self.info.value = markup("<i>Press Compute to explain this image.</i>")
            return None
        with self.progress.hold_sync():
            self.progress.value, self.progress.bar_style = 0.0, "info"
        kw = method_kwargs(self.method.value, layer=self.layer.value, n_steps=int(self.n_steps.value))
        return {"method": self.method.value, "progress": self._on_progress, **kw}

    def show(self, aset: Any, sel: Selection, rows: dict[str, int], n_edits: int) -> None:
        """Render the maps of ``aset`` (an ``AttributionSet``) for the labels in ``rows``."""
        self.result = aset
        maps = {name: (aset.map(lab, "before"), aset.map(lab, "after"), aset.map(lab, "diff"))
                for name, lab in rows.items()}
        cols = ("base model", f"now ({n_edits} edit{'s' if n_edits != 1 else ''})", "now - base")
        self.image.value = attribution_grid(sel.raw, maps, columns=cols, cell=self.cell,
                                            fontsize=13 if self.cell > 2 else 10)
        self.info.value = markup("<span title='{}'>{}, {}: {}; red pushes towards the row's label, blue away; "
                                 "{:.0f} ms</span>", GLOSSARY["attribution"], sel.name, self.method.value,
                                 REDUCTIONS[self.method.value], aset.seconds * 1000)
        with self.progress.hold_sync():
            self.progress.bar_style = "success"
            self.progress.value = 1.0

    def _on_progress(self, fraction: float) -> None:
        self.progress.value = float(fraction)

"""AttributionView: Captum maps of the selected image before and after the session's edits.

Rows are the labels explained (the original prediction and the edit target); columns are
the base weights ("before"), the current weights ("after") and their difference. The
figure is a matplotlib grid rendered to PNG into one ``ipywidgets.Image``; the progress
bar is bound to the attribution's progress callback.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import ipywidgets as W
import torch

from ..attribution import METHODS, REDUCTIONS, before_after, method_kwargs
from .common import MessageArea, css
from .images import attribution_grid, figure_png

__all__ = ["AttributionView", "AttributionRequest"]


@dataclass(frozen=True, eq=False)
class AttributionRequest:
    """What to explain: one image, two weight sets, named labels.

    Attributes:
        model: the session's model (its own weights are not used where params override them).
        before, after: name -> tensor overrides (None = the model's own current weights).
        x: ``(C, H, W)`` normalised float image; image: ``(C, H, W)`` uint8 for display.
        labels: row title -> class index, e.g. ``{"predicted: Coat": 4, "target: Shirt": 6}``.
    """

    model: Any
    before: Mapping[str, torch.Tensor] | None
    after: Mapping[str, torch.Tensor] | None
    x: torch.Tensor
    image: torch.Tensor
    labels: Mapping[str, int]
    title: str = ""
    baseline: torch.Tensor | None = None  # (C, H, W) "absent" input for IG / Occlusion (e.g. black)


class AttributionView:
    """Method / layer / steps controls, a progress bar and the rendered grid.

    Args:
        stages: model stage names (choices for LayerGradCam's layer).
        messages: where errors are shown.
        auto: recompute on every selection and edit (turn off for slow methods).
    """

    def __init__(self, stages: Sequence[str], messages: MessageArea, *, method: str = "Saliency",
                 layer: str = "chain3", n_steps: int = 16, auto: bool = True) -> None:
        self.messages = messages
        self.request: AttributionRequest | None = None
        self.result: Any = None  # the last AttributionSet
        self.seconds = 0.0
        stages = list(stages)
        self.method = W.Dropdown(options=list(METHODS), value=method, description="method",
                                 layout=W.Layout(width="240px"))
        self.layer = W.Dropdown(options=stages, value=layer if layer in stages else stages[-2],
                                description="layer", layout=W.Layout(width="170px"))
        self.n_steps = W.BoundedIntText(value=n_steps, min=1, max=512, description="IG steps",
                                        layout=W.Layout(width="160px"))
        self.auto = W.Checkbox(value=auto, description="auto", indent=False, layout=W.Layout(width="70px"))
        self.compute_button = css(W.Button(description="Compute", layout=W.Layout(width="auto")), "wb-attr-compute")
        self.progress = css(W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="120px")),
                            "wb-attr-progress")
        self.info = css(W.HTML("<i>select an image</i>"), "wb-attr-info")
        self.image = css(W.Image(format="png", layout=W.Layout(max_width="640px")), "wb-attr-image")
        self.compute_button.on_click(lambda _b: self.compute())
        for w in (self.method, self.layer, self.n_steps):
            w.observe(lambda _c: self.compute() if self.auto.value else None, names="value")
        self.widget = css(W.VBox([
            W.HBox([self.method, self.layer, self.n_steps, self.auto, self.compute_button, self.progress],
                   layout=W.Layout(flex_flow="row wrap", align_items="center")),
            self.info, self.image]), "wb-attribution")

    def options(self, baseline: torch.Tensor | None = None) -> dict[str, Any]:
        """Keyword arguments for :func:`workbench.attribution.attribute` from the controls."""
        return method_kwargs(self.method.value, layer=self.layer.value, n_steps=int(self.n_steps.value),
                             baseline=baseline)

    def set_request(self, request: AttributionRequest) -> None:
        """Remember what to explain; compute now when ``auto`` is on."""
        self.request = request
        if self.auto.value:
            self.compute()
        else:
            self.info.value = "<i>press Compute</i>"

    def compute(self) -> None:
        """Compute the maps for the current request and render them (errors go to messages)."""
        r = self.request
        if r is None:
            self.info.value = "<i>select an image first</i>"
            return
        with self.messages.guard("attribution"):
            self.progress.value, self.progress.bar_style = 0.0, "info"
            t0 = time.perf_counter()
            labels = list(dict.fromkeys(r.labels.values()))
            aset = before_after(r.model, r.before, r.after, r.x, labels, self.method.value,
                                progress=self._on_progress, **self.options(r.baseline))
            self.result, self.seconds = aset, time.perf_counter() - t0
            rows = {name: (aset.map(lab, "before"), aset.map(lab, "after"), aset.map(lab, "diff"))
                    for name, lab in r.labels.items()}
            self.image.value = figure_png(attribution_grid(r.image, rows, columns=(
                "before (base)", "after (current)", "after - before"), title=r.title))
            self.info.value = (f"{self.method.value}: {len(labels) * 2} maps in {aset.seconds * 1000:.0f} ms"
                               f"; map = {REDUCTIONS[self.method.value]}; red > 0 > blue")
            self.progress.bar_style = "success"

    def _on_progress(self, fraction: float) -> None:
        self.progress.value = float(fraction)

"""LocalizationPanel: "Where is it stored?" for the selected image (Maini et al., ICML 2023).

The critical-neuron search removes, one at a time, the neurons the model's prediction for the
image relies on most, until the prediction changes. The panel shows how many it took, a
per-layer bar chart of where they sit (a FigureWidget updated in place), what removing them
costs on other test images, and a one-click "edit this group" that asks for the group holding
most of them as the edit's group.

View state only (the selected index, the shown result). Its buttons go to the controller
(:meth:`~workbench.widgets.controller.Controller.localize`, ``use_group``),
which runs the search through ``EditSession.localize`` and tells the panels what to show.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import ipywidgets as W

from ...localization import QUICK, group_counts, group_of
from ..common import css
from ..markup import HTML, markup, plot_label
from ..plots.charts import localization_colors, localization_figure
from ..plots.live import live_figure

__all__ = ["LocalizationPanel", "NO_IMAGE"]

NO_IMAGE = ("Where is it stored? Pick an image in the Mistakes tab first; then the search finds the few "
            "neurons its prediction needs, and in which layers they sit.")


class LocalizationPanel:
    """Critical-neuron count, per-layer chart, cost elsewhere and "edit this group".

    Args:
        classes: class names.
        actions: the controller's, called on a click: ``"localize"`` (run the search for the
            selected image) and ``"edit_group"`` (takes the group name shown, or None).
        groups: the edit panel's group names (to map layers to groups).
    """

    def __init__(self, classes: Sequence[str], actions: Mapping[str, Callable[..., Any]], groups: Sequence[str]) -> None:
        self.classes, self.actions, self.groups = tuple(classes), actions, list(groups)
        self.index: int | None = None
        self.result: Any = None
        self.group: str | None = None
        self.quick = css(W.Checkbox(value=True, indent=False, layout=W.Layout(width="auto"),
                                    description=f"quick ({QUICK.repeats} repeats, ≤ {QUICK.max_neurons} neurons)"),
                         "wb-loc-quick")
        self.button = css(W.Button(description="Where is it stored?", button_style="info",
                                   layout=W.Layout(width="auto"), disabled=True), "wb-loc-run")
        self.edit_button = css(W.Button(description="edit this group", button_style="warning", disabled=True,
                                        layout=W.Layout(width="auto", display="none")), "wb-loc-edit-group")
        self.summary = css(HTML(markup("<i>{}</i>", NO_IMAGE)), "wb-loc-summary")
        self.cost = css(HTML(""), "wb-loc-cost")
        self.figure = live_figure(localization_figure({}))
        self.chart = css(W.VBox([]), "wb-loc-chart")  # the figure is shown once there is a result: never empty axes
        self.button.on_click(lambda _b: self.actions["localize"]())
        self.edit_button.on_click(lambda _b: self.actions["edit_group"](self.group))
        self.widget = css(W.VBox([
            W.HBox([self.button, self.quick], layout=W.Layout(flex_flow="row wrap")),
            self.summary, self.cost, self.chart, self.edit_button]), "wb-localization-panel")

    def select(self, index: int | None, result: Any = None) -> None:
        """A new image is selected: show its cached result, or wait for a click."""
        self.index = index
        self.button.disabled = index is None
        self.button.description = "Where is it stored?" if index is None else f"Where is #{index} stored?"
        if result is not None:
            self.show(result)
        else:
            self.clear(f"Press 'Where is #{index} stored?': the search removes, one at a time, the neurons this "
                       "prediction relies on most, until it changes (about a second)" if index is not None
                       else NO_IMAGE)

    def show(self, result: Any) -> None:
        """Show a :class:`~workbench.localization.CriticalNeurons` of the selected image."""
        self.result = result
        per_group = group_counts(result.layer_counts, self.groups)
        self.group = max(per_group, key=lambda g: per_group[g]) if any(per_group.values()) else None
        top = [n for n in result.layer_counts if self.group is not None and
               n in _layers_of(self.group, list(result.layer_counts), self.groups)]
        reps = len(result.counts)
        pred = self.classes[result.label] if 0 <= result.label < len(self.classes) else str(result.label)
        flips = (markup("then the model says <b>{}</b> ({:.0%} of repeats)", self.classes[result.flipped_to],
                        result.flip_rate) if result.flipped_to is not None else
                 "the prediction did not change within the budget (a lower bound)")
        budget = "" if result.flip_rate == 1 else " (some repeats hit the budget: the count is a lower bound)"
        if result.initial_prediction != result.label:
            flips, budget = "the model does not predict it, so no neuron is needed", ""
        self.summary.value = markup("#{}: the prediction <b>{}</b> needs <b class='wb-loc-count'>{:g}</b> critical "
                                    "neuron(s) (mean of {} repeat(s): {}){}; {}.", self.index, pred, result.count,
                                    reps, list(result.counts), budget, flips)
        if result.accuracy_before is not None:
            n = result.settings.cost_size
            self.cost.value = markup("Cost elsewhere: removing them takes accuracy on {} other test images from "
                                     "{:.1%} to {:.1%} (<b>{:+.1f} points</b>).", n, result.accuracy_before,
                                     result.accuracy_after, -result.accuracy_cost * 100)
        else:
            self.cost.value = ""
        fig = self.figure
        with fig.batch_update():
            names = list(result.layer_counts)
            fig.data[0].x = [plot_label(n) for n in names]
            fig.data[0].y = [float(result.layer_counts[n]) for n in names]
            fig.data[0].marker.color = localization_colors(names, top)
            fig.layout.title.text = f"#{self.index}: where the removed neurons sit (mean per repeat)"
        self.edit_button.disabled = self.group is None
        self.edit_button.description = f"edit this group: {self.group}" if self.group else "edit this group"
        self.edit_button.layout.display = ""
        if not self.chart.children:
            self.chart.children = (self.figure,)

    def clear(self, text: str) -> None:
        self.result, self.group = None, None
        self.summary.value = markup("<i>{}</i>", text)
        self.cost.value = ""
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = [], []
            self.figure.layout.title.text = ""
        self.edit_button.disabled = True
        self.edit_button.description = "edit this group"
        self.edit_button.layout.display = "none"
        self.chart.children = ()


def _layers_of(group: str, layers: list[str], groups: Sequence[str]) -> list[str]:
    return [n for n in layers if group_of(n, groups) == group]

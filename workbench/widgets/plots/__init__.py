"""Pure plot builders of the widget layer: numbers in, a figure out.

- :mod:`.charts`: plotly figures (confusion heatmap, class probabilities, per-class change,
  timeline, critical neurons per layer) and the in-place ``update_*`` helpers;
- :mod:`.images`: PNG thumbnails and matplotlib attribution overlays (no pyplot);
- :mod:`.report_plots`: the session report's matplotlib plots;
- :mod:`.live`: ``live_figure``, which wraps a built figure into the FigureWidget a panel updates.

None of them keeps state or touches a display; the panels (:mod:`workbench.widgets.panels`)
own the widgets.
"""

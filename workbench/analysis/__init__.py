"""Analyses of edits (paper Figure 2, Tables 1-2 helpers) and their figure builders.

Core: no ipywidgets, plotly or IPython; matplotlib only inside the figure builders, which
return :class:`matplotlib.figure.Figure` objects and never touch pyplot's global state.
"""
from .edits import (EditRun, SequentialCurve, class_change_matrix, edit_space, editor_for, flip_share_matrix,
                    kl_per_example, load_available, read_metrics, run_edits,
                    sequential_drawdown, tsne_embedding)
from .matplotlib_figures import (embedding_figure, grouped_bar_figure, heatmap_figure, sequential_figure,
                      training_curves_figure)

__all__ = [
    "EditRun", "SequentialCurve", "class_change_matrix", "edit_space", "editor_for", "embedding_figure",
    "flip_share_matrix", "grouped_bar_figure", "heatmap_figure", "kl_per_example", "load_available",
    "read_metrics", "run_edits", "sequential_drawdown", "sequential_figure",
    "training_curves_figure", "tsne_embedding",
]

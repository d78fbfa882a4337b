"""Where does a prediction live? Memorization localization (Maini et al., ICML 2023).

* :func:`critical_neurons`: the greedy search for the neurons one example's prediction needs.
* :func:`find_sites`, :func:`masked`: which layers' neurons can be removed, and removing them.
* :func:`localize_example`: the same for image ``index`` of a data set (CLI, session).
* :func:`gradient_accounting`, :func:`account_epochs`: clean vs noisy gradients per layer of
  saved weights (the layers and the statistic: :mod:`workbench.training.grad_accounting`).
* :func:`rewind_layer`, :func:`rewinding_table`, :func:`retrain_layer`, :func:`retraining_table`:
  where in the network the noisy labels are stored.

Nothing here imports ipywidgets, plotly or IPython.
"""
from ..training.grad_accounting import LayerGradients, parameter_layers
from .critical import CriticalNeurons, SearchRepeat, accuracy_with_removed, critical_neurons
from .examples import localize_example, resolve_label
from .settings import DEFAULT, PAPER, QUICK, SearchSettings
from .rewinding import (RewindRow, default_layers, layer_keys, retrain_layer, retraining_table, rewind_layer,
                        rewinding_table, split_accuracy)
from .sites import Site, find_sites, group_counts, group_of, is_zeroable, masked, model_modes, neuron_masks
from .snapshot_accounting import GradientAccount, account_epochs, gradient_accounting, read_state

__all__ = ["CriticalNeurons", "DEFAULT", "GradientAccount", "LayerGradients", "PAPER", "QUICK", "RewindRow",
           "SearchRepeat", "SearchSettings", "Site", "account_epochs", "accuracy_with_removed", "critical_neurons",
           "default_layers", "find_sites", "gradient_accounting", "group_counts", "group_of", "is_zeroable", "layer_keys", "localize_example", "masked",
           "model_modes", "neuron_masks", "parameter_layers", "read_state", "resolve_label", "retrain_layer", "retraining_table",
           "rewind_layer", "rewinding_table", "split_accuracy"]

"""Where does a prediction live? Memorization localization (Maini et al., ICML 2023).

* :func:`critical_neurons`: the greedy search for the neurons one example's prediction needs.
* :func:`find_sites`, :func:`masked`: which layers' neurons can be removed, and removing them.

Nothing here imports ipywidgets, plotly or IPython.
"""
from .critical import CriticalNeurons, SearchRepeat, accuracy_with_removed, critical_neurons
from .defaults import DEFAULT, PAPER, QUICK, SearchSettings
from .sites import Site, find_sites, is_zeroable, masked, model_modes, neuron_masks

__all__ = ["CriticalNeurons", "DEFAULT", "PAPER", "QUICK", "SearchRepeat", "SearchSettings", "Site",
           "accuracy_with_removed", "critical_neurons", "find_sites", "is_zeroable", "masked", "model_modes",
           "neuron_masks"]

"""Baseline and Editable Training, recipes, checkpoints and DDP."""
from .checkpoint import load_model, load_weights, read_card, safe_torch_load, save_model
from .distributed import Distributed, from_env
from .editable import EditableObjective
from .loop import CrossEntropyObjective, TrainResult, train
from .recipes import RECIPES, Recipe, get_recipe

__all__ = ["CrossEntropyObjective", "Distributed", "EditableObjective", "RECIPES", "Recipe", "TrainResult",
           "from_env", "get_recipe", "load_model", "load_weights", "read_card", "safe_torch_load", "save_model", "train"]

"""Baseline and Editable Training, recipes and checkpoints."""
from .checkpoint import load_model, read_card, safe_torch_load, save_model
from .loop import CrossEntropyObjective, TrainResult, train
from .recipes import RECIPES, Recipe, get_recipe

__all__ = ["CrossEntropyObjective", "RECIPES", "Recipe", "TrainResult", "get_recipe", "load_model",
           "read_card", "safe_torch_load", "save_model", "train"]

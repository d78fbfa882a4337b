"""Entry point used by the CLI: picks the objective for the recipe and (optionally) DDP."""
from __future__ import annotations

from pathlib import Path

from .loop import TrainResult, train
from .recipes import Recipe


def make_objective(recipe: Recipe):
    """Baseline cross-entropy, or the editable objective when ``recipe.editable``."""
    if not recipe.editable:
        return None
    from .editable import EditableObjective  # noqa: WPS433 (extension point)

    return EditableObjective.from_recipe(recipe)


def run_training(recipe: Recipe, out: str | Path, *, resume: bool = True, device: str | None = None,
                 command: str | None = None, progress: bool = True) -> TrainResult | None:
    return train(recipe, out, objective=make_objective(recipe), resume=resume, device=device,
                 command=command, progress=progress)

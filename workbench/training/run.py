"""Entry point used by the CLI: picks the objective for the recipe and (under torchrun) DDP."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .loop import TrainResult, train
from .recipes import Recipe

DUMP_ENV = "WORKBENCH_DUMP_PARAMS"  # folder: each rank writes rank<r>.pt (its final state dict)


def make_objective(recipe: Recipe, rank: int = 0) -> Any:
    """Baseline cross-entropy (None: the loop's default), or the editable objective."""
    if not recipe.editable:
        return None
    from .editable import EditableObjective  # noqa: WPS433 (extension point)

    return EditableObjective.from_recipe(recipe, rank=rank)


def run_training(recipe: Recipe, out: str | Path, *, resume: bool = True, device: str | None = None,
                 command: str | None = None, progress: bool = True, overwrite: bool = False,
                 trust_code: bool = False) -> TrainResult | None:
    """Train per ``recipe``; under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) with DDP.

    ``resume``/``overwrite``: what to do with a folder that holds a run, as :func:`~workbench.training.train`.
    Returns the result on every rank (``card`` is filled on rank 0 only). ``trust_code`` lets a
    ``module:factory`` model (``recipe.arch``, or the card of ``init_from``) be built.
    """
    recipe.validate(trust_code=trust_code)  # fail before joining a process group
    from .distributed import from_env

    dist = from_env(device)
    try:
        objective = make_objective(recipe, dist.rank if dist else 0)
        res = train(recipe, out, objective=objective, resume=resume, overwrite=overwrite,
                    device=dist.device if dist else device, command=command, progress=progress, dist=dist,
                    trust_code=trust_code)
        dump = os.environ.get(DUMP_ENV)
        if dump:
            state = {k: v.detach().cpu() for k, v in res.model.state_dict().items()}
            if isinstance(objective, torch.nn.Module):
                state.update({f"objective.{k}": v.detach().cpu() for k, v in objective.state_dict().items()})
            Path(dump).mkdir(parents=True, exist_ok=True)
            torch.save(state, Path(dump) / f"rank{dist.rank if dist else 0}.pt")
    except BaseException:
        # No collective on the way out: the other ranks may be inside a different one, and a
        # barrier here would wait for them forever. Exiting lets torchrun stop the whole job.
        if dist is not None:
            dist.abort()
        raise
    if dist is not None:
        dist.close()
    return res

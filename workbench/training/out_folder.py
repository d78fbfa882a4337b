"""What a training output folder holds, and whether a run may write there.

Training never silently replaces a model. A folder that holds a finished model is refused
unless the caller asks to overwrite it; an unfinished run is resumed only by the same recipe.
Every refusal names the folder, what it holds and the flags, and happens before anything in
the folder is written.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from .card_checks import read_card_file
from .model_files import CARD_FILE, MODEL_FILE
from .recipes import Recipe

STATE_FILE = "train_state.pt"  # optimizer and progress of a run, for resuming
LOG_FILE = "metrics.jsonl"
# recipe fields that may differ when a run is resumed: they do not change what is trained
RESUME_MAY_DIFFER = ("data_root",)
MAX_CARD_BYTES = 1 << 20  # a card larger than this is not one the trainer wrote

FRESH, RESUME = "fresh", "resume"


@dataclass(frozen=True)
class OutFolder:
    """What ``path`` holds.

    Attributes:
        kind: ``"empty"`` (no model, card or train state), ``"unfinished"`` (a train state
            whose card records fewer epochs than its recipe asks, or no readable card) or
            ``"finished"`` (a model, with or without a train state).
        recipe: the recipe recorded in ``card.json`` (None: no readable card).
        card: the card (None: none readable). resumable: ``train_state.pt`` is there.
    """

    path: Path
    kind: str
    recipe: dict[str, Any] | None
    card: dict[str, Any] | None
    resumable: bool

    def describe(self) -> str:
        """What the folder holds, in words: ``a finished model (recipe 'x', 15 epochs, test error 6.73%)``."""
        if self.card is None:
            return ("an unfinished run (train_state.pt) whose card.json is missing or unreadable" if self.kind ==
                    "unfinished" else "a model (model.safetensors) whose card.json is missing or unreadable")
        name = self.recipe.get("name") if self.recipe is not None else None
        done, planned = self.card.get("epochs"), (self.recipe or {}).get("epochs")
        err = self.card.get("test_error")
        err_text = f", test error {100 * err:.2f}%" if isinstance(err, float) and math.isfinite(err) else ""
        if self.kind == "unfinished":
            return f"an unfinished run (recipe {name!r}, epoch {done} of {planned}{err_text})"
        return f"a finished model (recipe {name!r}, {done} epochs{err_text})"

    def differences(self, recipe: Recipe) -> list[str] | None:
        """Recipe fields that differ from the folder's (None: the folder's recipe is unknown)."""
        if self.recipe is None:
            return None
        new = json.loads(json.dumps(recipe.to_dict()))  # as the card holds it: lists, not tuples
        # a field the card lacks was added to Recipe after the run began; its default keeps the
        # behaviour the run was trained with, so it counts as that default
        defaults = json.loads(json.dumps(Recipe().to_dict()))
        keys = sorted(set(new) | set(self.recipe))
        return [k for k in keys if k not in RESUME_MAY_DIFFER
                and new.get(k) != self.recipe.get(k, defaults.get(k))]


def _card(path: Path) -> dict[str, Any] | None:
    p = path / CARD_FILE
    try:
        if not p.is_file() or p.stat().st_size > MAX_CARD_BYTES:
            return None
        return read_card_file(p)
    except (OSError, ValueError, RecursionError):
        return None


def _int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def inspect_out(out_dir: str | Path) -> OutFolder:
    """What ``out_dir`` holds (reads only ``card.json``; writes nothing).

    Raises:
        ValueError: ``out_dir`` is a file.
    """
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a file; give a folder for the model (model.safetensors + card.json)")
    resumable = (path / STATE_FILE).exists()
    if not (resumable or (path / MODEL_FILE).exists() or (path / CARD_FILE).exists()):
        return OutFolder(path, "empty", None, None, False)
    card = _card(path)
    recipe = card.get("recipe") if card is not None else None
    recipe = recipe if isinstance(recipe, dict) else None
    done, planned = (card or {}).get("epochs"), (recipe or {}).get("epochs")
    unfinished = resumable and (card is None or (_int(done) and _int(planned) and done < planned))
    return OutFolder(path, "unfinished" if unfinished else "finished", recipe, card, resumable)


def plan_start(out_dir: str | Path, recipe: Recipe, *, resume: bool = True, overwrite: bool = False,
               reuse_finished: bool = True) -> str:
    """``"fresh"`` (start at epoch 0) or ``"resume"`` (continue the folder's run), or refuse.

    Args:
        resume: continue an unfinished run of the same recipe (False: refuse one, unless ``overwrite``).
        overwrite: start over whatever the folder holds (its model is replaced after the first epoch).
        reuse_finished: with ``resume``, a finished run of the same recipe (with its train state) is
            "resumed" with nothing left to train: the folder is left as it is. The CLI passes False.
    Raises:
        ValueError: naming the folder, what it holds and the flags that proceed; nothing is written.
    """
    folder = inspect_out(out_dir)
    if folder.kind == "empty" or overwrite:
        return FRESH
    where, what = str(folder.path), folder.describe()
    other = "or give another --out folder"
    diff = folder.differences(recipe)
    if folder.kind == "unfinished":
        if not resume:
            raise ValueError(f"{where} holds {what}; --no-resume would start over and replace it. Pass --overwrite "
                             f"to do that, drop --no-resume to resume it, {other}")
        if diff is None:
            raise ValueError(f"{where} holds {what}: it cannot be resumed. Pass --overwrite to start over there, "
                             f"{other}")
        if diff:
            raise ValueError(f"{where} holds {what} of another recipe (differs in: {', '.join(diff)}). Resume it "
                             f"with the same recipe and flags, pass --overwrite to replace it, {other}")
        return RESUME
    if reuse_finished and resume and folder.resumable and diff == []:
        return RESUME
    raise ValueError(f"{where} holds {what}; training would replace it. Pass --overwrite to replace it, {other} "
                     f"(to train on from this model: --init-from {where} --out NEW_FOLDER)")

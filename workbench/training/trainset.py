"""The training set a model folder was trained on, with its label noise, rebuilt from the card."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..data import DataBundle, load_for_card
from ..data.noise import NOISE_FILE, LabelNoise
from .checkpoint import read_card


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """What training saw, position by position (position = the example's index in the batches).

    Attributes:
        x: ``(N, C, H, W) uint8`` images.
        y: ``(N,) int64`` labels used for training (noisy where flipped).
        y_true: ``(N,) int64`` the data set's labels.
        noisy: ``(N,) bool``, True where the label was flipped.
        noise: the label-noise record, or None for a run without noise.
        bundle: the data set (val/test splits, classes, normalisation).
    """

    x: torch.Tensor
    y: torch.Tensor
    y_true: torch.Tensor
    noisy: torch.Tensor
    noise: LabelNoise | None
    bundle: DataBundle

    @property
    def normalize(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.bundle.normalize

    @property
    def indices(self) -> torch.Tensor:
        """``(N,) int64`` positions ``0..N-1``."""
        return torch.arange(len(self.y))


def training_set(folder: str | Path, bundle: DataBundle | None = None) -> TrainingSet:
    """Rebuild the training split of a model folder: data set, split seed, subset, label noise.

    ``bundle`` skips loading the data set (it must be the card's data set and split).
    """
    folder = Path(folder)
    card = read_card(folder)
    recipe = card.get("recipe") or {}
    bundle = bundle if bundle is not None else load_for_card(card)
    x, y = bundle.train_x, bundle.train_y
    n = recipe.get("train_subset")
    if n:
        x, y = x[:n], y[:n]
    noise = None
    if (folder / NOISE_FILE).exists():
        noise = LabelNoise.load(folder)
        y_train = noise.apply(y)
        noisy = noise.mask()
    elif recipe.get("label_noise"):
        raise FileNotFoundError(f"{folder} was trained with label_noise={recipe['label_noise']} but "
                                f"{NOISE_FILE} is missing; the noisy positions cannot be recovered")
    else:
        y_train, noisy = y, torch.zeros(len(y), dtype=torch.bool)
    return TrainingSet(x, y_train, y, noisy, noise, bundle)

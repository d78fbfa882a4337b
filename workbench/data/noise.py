"""Seeded label noise: flip a share of the training labels to another class, uniformly
(:func:`flip_labels`) or within a group of confusable classes (:func:`flip_within_classes`).

The flipped examples are recorded exactly (their positions, original and new labels), so that
a study of memorization (Maini et al., ICML 2023) can tell the noisy examples from the clean ones.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

NOISE_FILE = "label_noise.json"
# Offsets the seed so the draw is independent of other generators seeded with small integers
# (the trainer's epoch shuffles use seed * 1000 + epoch: with the same seed, the flipped
# positions would be exactly the first batch of epoch 0).
_SEED_SALT = 0x4C4E6F697365


@dataclass(frozen=True, eq=False)
class LabelNoise:
    """Which training labels were changed, and how.

    Attributes:
        rate: share of the labels that was flipped (the requested share); with ``classes``, the
            share of each listed class's labels.
        seed: seed of the draw.
        num_examples: length of the label vector the noise applies to.
        num_classes: number of classes.
        indices: ``(M,) int64`` sorted positions of the flipped labels (``M = round(rate * N)``).
        original: ``(M,) int64`` their true labels.
        noisy: ``(M,) int64`` the labels used for training (always != ``original``).
        classes: the confusable group that class-conditional noise flips within
            (:func:`flip_within_classes`), or None for symmetric noise over all classes.
    """

    rate: float
    seed: int
    num_examples: int
    num_classes: int
    indices: torch.Tensor
    original: torch.Tensor
    noisy: torch.Tensor
    classes: tuple[int, ...] | None = None

    def mask(self) -> torch.Tensor:
        """``(num_examples,) bool``: True where the label was flipped."""
        m = torch.zeros(self.num_examples, dtype=torch.bool)
        m[self.indices] = True
        return m

    def apply(self, y: torch.Tensor) -> torch.Tensor:
        """The noisy copy of ``y`` (``(num_examples,) int64``); checks that ``y`` is the vector drawn from."""
        if len(y) != self.num_examples:
            raise ValueError(f"label noise was drawn for {self.num_examples} labels, got {len(y)}; "
                             "use the same training subset as the run that recorded it")
        if not torch.equal(y[self.indices].cpu(), self.original):
            raise ValueError("the labels at the recorded noisy positions differ from the recorded originals: "
                             "these are not the labels the noise was drawn for (other data set, split or seed)")
        out = y.clone()
        out[self.indices.to(y.device)] = self.noisy.to(y.device)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed, "num_examples": self.num_examples,
                "num_classes": self.num_classes, "count": len(self.indices),
                "indices": self.indices.tolist(), "original": self.original.tolist(),
                "noisy": self.noisy.tolist(), **({"classes": list(self.classes)} if self.classes else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelNoise:
        t = {k: torch.tensor(d[k], dtype=torch.long) for k in ("indices", "original", "noisy")}
        if not len(t["indices"]) == len(t["original"]) == len(t["noisy"]):
            raise ValueError("label-noise record is inconsistent: indices, original and noisy differ in length")
        classes = tuple(int(c) for c in d["classes"]) if d.get("classes") else None
        return cls(float(d["rate"]), int(d["seed"]), int(d["num_examples"]), int(d["num_classes"]), **t,
                   classes=classes)

    def summary(self) -> dict[str, Any]:
        """What a model card records (the full lists live in :data:`NOISE_FILE`)."""
        return {"rate": self.rate, "seed": self.seed, "count": len(self.indices),
                "num_examples": self.num_examples, "file": NOISE_FILE,
                **({"classes": list(self.classes)} if self.classes else {})}

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / NOISE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> LabelNoise:
        path = Path(folder) / NOISE_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: this model was not trained with label noise "
                                    "(train with --label-noise 0.1, e.g. --recipe fashion-noisy)")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path} is not a valid label-noise record ({err})") from err


def _checked(y: torch.Tensor, rate: float, num_classes: int) -> torch.Tensor:
    """``y`` as CPU int64 after checking the rate, the class count and the label range."""
    if not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0.0 <= rate <= 1.0):
        raise ValueError(f"label noise rate must lie in [0, 1], got {rate!r}")
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got {num_classes}")
    y = y.detach().cpu().long()
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]")
    return y


def flip_labels(y: torch.Tensor, rate: float, num_classes: int, seed: int = 0) -> LabelNoise:
    """Draw ``round(rate * len(y))`` positions and give each a uniformly drawn *different* class.

    Args:
        y: ``(N,) int64`` true labels in ``[0, num_classes)``.
        rate: share to flip, in ``[0, 1]``.
        num_classes: number of classes (at least 2).
        seed: the draw is a pure function of ``(y, rate, num_classes, seed)``.
    Returns:
        A :class:`LabelNoise`; ``noise.apply(y)`` gives the training labels.

    Example:
        >>> noise = flip_labels(torch.arange(10) % 3, 0.3, 3, seed=1)
        >>> len(noise.indices), bool((noise.noisy != noise.original).all())
        (3, True)
    """
    y = _checked(y, rate, num_classes)
    g = torch.Generator().manual_seed(_SEED_SALT + int(seed))
    m = int(round(rate * len(y)))
    idx = torch.randperm(len(y), generator=g)[:m].sort().values
    shift = torch.randint(1, num_classes, (m,), generator=g)  # never 0: the new class always differs
    original = y[idx]
    return LabelNoise(float(rate), int(seed), len(y), int(num_classes), idx, original,
                      (original + shift) % num_classes)


def flip_within_classes(y: torch.Tensor, rate: float, classes: Sequence[int], num_classes: int,
                        seed: int = 0) -> LabelNoise:
    """Class-conditional noise: flip ``round(rate * n_c)`` labels of each class ``c`` in ``classes``
    to a uniformly drawn *other* class of ``classes`` (confusable classes, e.g. Fashion-MNIST's
    T-shirt 0, pullover 2, coat 4, shirt 6). Labels of the other classes never change.

    Args:
        y: ``(N,) int64`` true labels in ``[0, num_classes)``.
        rate: share of each listed class to flip, in ``[0, 1]``.
        classes: at least 2 distinct classes, the confusable group.
        num_classes: number of classes.
        seed: the draw is a pure function of ``(y, rate, classes, seed)``.
    Returns:
        A :class:`LabelNoise` whose ``rate`` is the per-class share (of the listed classes).

    Example:
        >>> noise = flip_within_classes(torch.arange(20) % 4, 0.4, [0, 1], 4, seed=1)
        >>> len(noise.indices), sorted(set(noise.original.tolist()) | set(noise.noisy.tolist()))
        (4, [0, 1])
    """
    group = sorted({int(c) for c in classes})
    if len(group) < 2 or len(group) != len(list(classes)) or group[0] < 0 or group[-1] >= num_classes:
        raise ValueError(f"classes must be at least 2 distinct classes in [0, {num_classes}), got {list(classes)}")
    y = _checked(y, rate, num_classes)
    g = torch.Generator().manual_seed(_SEED_SALT + 7 * int(seed) + 1)
    picked = []
    for c in group:
        members = (y == c).nonzero().flatten()
        picked.append(members[torch.randperm(len(members), generator=g)[:int(round(rate * len(members)))]])
    idx = torch.cat(picked).sort().values
    original = y[idx]
    members_of = torch.tensor(group, dtype=torch.long)
    slot = torch.zeros(num_classes, dtype=torch.long)
    slot[members_of] = torch.arange(len(group))
    shift = torch.randint(1, len(group), (len(idx),), generator=g)  # never 0: another class of the group
    noisy = members_of[(slot[original] + shift) % len(group)]
    return LabelNoise(float(rate), int(seed), len(y), int(num_classes), idx, original, noisy, tuple(group))

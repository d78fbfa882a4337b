"""Which training labels look wrong: mislabel scores, their rank-average ensemble, and how well
a score finds known flips.

Every score here is ``(N,)`` with **higher = more likely mislabeled**:

- from training dynamics (:mod:`workbench.training.dynamics`, recorded by ``python -m workbench
  train``): ``"aum"`` (minus the area under the margin, Pleiss et al., NeurIPS 2020),
  ``"mean_loss"`` (the mean training loss over epochs), ``"el2n"`` (the error-vector norm at an
  early epoch, :data:`~workbench.localization.settings.EL2N_EPOCH`) and ``"ensemble"`` (their
  rank average, :func:`rank_average`);
- ``"self_confidence"``: one minus the probability a model gives the label, cleanlab's
  ``self_confidence`` label quality turned around. It needs out-of-sample probabilities (k-fold
  cross-validation, or a split the model never trained on).

:data:`~workbench.localization.settings.MISLABEL_SCORE` names the dynamics score that the
workbench's "likely mislabeled" sort uses; ``benchmarks/label_noise_detection.py`` measures them
all (:func:`auroc`, :func:`precision_at_rate`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..training.dynamics import el2n, epoch_files, mislabel_scores, read_dynamics
from .settings import EL2N_EPOCH, MISLABEL_SCORE

DYNAMICS_SCORES = ("aum", "mean_loss", "el2n", "ensemble")
SCORE_NAMES = {
    "aum": "AUM (area under the margin, from the training dynamics)",
    "mean_loss": "mean training loss (from the training dynamics)",
    "el2n": f"EL2N at epoch {EL2N_EPOCH} (from the training dynamics)",
    "ensemble": "the rank average of AUM, mean loss and EL2N (from the training dynamics)",
    "self_confidence": "self-confidence (the current model's probability of the label, cleanlab's label quality)",
}


def average_ranks(score: np.ndarray) -> np.ndarray:
    """``(N,) float64`` ranks 1..N of ``score (N,)`` from low to high, ties sharing their mean rank.
    NaN stays NaN and is left out of the ranking."""
    score = np.asarray(score, dtype=np.float64)
    out = np.full(score.shape, np.nan)
    ok = ~np.isnan(score)
    vals = score[ok]
    order = np.argsort(vals, kind="stable")
    sorted_vals = vals[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]  # first position of each run of ties
    ends = np.r_[starts[1:], len(vals)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends averaged
    ranks = np.empty(len(vals))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    out[ok] = ranks
    return out


def rank_average(scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(N,)`` the mean over ``scores`` of each score's rank divided by ``N`` (in ``(0, 1]``;
    higher = more suspect when every score is). NaN where any score is NaN."""
    if not scores:
        raise ValueError("rank_average needs at least one score")
    sizes = {len(s) for s in scores.values()}
    if len(sizes) != 1:
        raise ValueError(f"the scores differ in length ({sorted(sizes)}); give one value per example to each")
    n = sizes.pop()
    return np.mean([average_ranks(s) / n for s in scores.values()], axis=0)


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N,)`` one minus ``probs (N, C)``'s probability of ``labels (N,)`` (cleanlab's
    ``get_label_quality_scores(labels, probs, method="self_confidence")`` is ``1 -`` this)."""
    probs, labels = np.asarray(probs), np.asarray(labels).astype(np.int64)
    return 1.0 - probs[np.arange(len(labels)), labels]


def auroc(score: np.ndarray, flags: np.ndarray) -> float:
    """Area under the ROC curve of ``score (N,)`` (higher = flagged) for ``flags (N,) bool``: the
    chance that a flagged example outscores an unflagged one, ties counting one half
    (the Mann-Whitney statistic; scikit-learn's ``roc_auc_score`` gives the same)."""
    score, flags = np.asarray(score, dtype=np.float64), np.asarray(flags, dtype=bool)
    if score.shape != flags.shape or np.isnan(score).any():
        raise ValueError(f"auroc needs one finite score per flag; got {score.shape} scores for {flags.shape} flags")
    pos, neg = int(flags.sum()), int((~flags).sum())
    if not pos or not neg:
        raise ValueError("auroc needs both flagged and unflagged examples")
    return float((average_ranks(score)[flags].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def precision_at_rate(score: np.ndarray, flags: np.ndarray) -> float:
    """Share of flagged examples among the ``k`` highest scores, ``k = flags.sum()`` (the true
    noise rate); ties are broken by position."""
    flags = np.asarray(flags, dtype=bool)
    k = int(flags.sum())
    if not k:
        raise ValueError("precision at the noise rate needs at least one flagged example")
    top = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")[:k]
    return float(flags[top].mean())


def dynamics_scores(folder: str | Path, el2n_epoch: int = EL2N_EPOCH) -> dict[str, np.ndarray]:
    """``{"aum", "mean_loss", "el2n", "ensemble"}`` of a run folder's dynamics, each ``(N,)``,
    higher = more suspect; NaN for an example no epoch saw.

    ``el2n_epoch`` falls back to the last epoch of a shorter run; an example that epoch did not
    see (the last partial batch is dropped) takes its EL2N from the next epoch that saw it.
    """
    d = read_dynamics(folder)
    first = min(el2n_epoch, d.epochs[-1])
    out = mislabel_scores(d, el2n_epoch=first)
    for later in (e for e in d.epochs if e > first):
        if not np.isnan(out["el2n"]).any():
            break
        out["el2n"] = np.where(np.isnan(out["el2n"]), el2n(d, later), out["el2n"])
    out["ensemble"] = rank_average(out).astype(np.float32)
    return out


@dataclass(frozen=True)
class LabelScores:
    """The "likely mislabeled" scores of a session's images, and which score they are.

    Attributes:
        values: ``{index: score}``, higher = more likely mislabeled; images without one are left out.
        score: ``"aum"``, ``"mean_loss"``, ``"el2n"``, ``"ensemble"`` or ``"self_confidence"``.
        description: what the view says the sort uses (the score and, for a fallback, why).
    """

    values: dict[int, float]
    score: str
    description: str


def has_dynamics(folder: str | Path | None) -> bool:
    """Whether a model folder holds recorded training dynamics."""
    return folder is not None and bool(epoch_files(folder))


def mislabel_values(folder: str | Path, score: str = MISLABEL_SCORE) -> np.ndarray:
    """``(N,)`` the chosen dynamics score of a run folder (higher = more suspect)."""
    if score not in DYNAMICS_SCORES:
        raise ValueError(f"unknown dynamics score {score!r}; choose one of {list(DYNAMICS_SCORES)}")
    return dynamics_scores(folder)[score]

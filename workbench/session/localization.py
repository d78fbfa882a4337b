"""Localization for :class:`~workbench.session.EditSession`: where a prediction lives, and which
labels look wrong. The widgets reach the localization library through the session only."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn as nn

from .stack import EditStack

if TYPE_CHECKING:
    from ..data import DataBundle
    from ..evaluation import Evaluator
    from ..localization import CriticalNeurons
    from ..localization.label_errors import LabelScores

_UNSET = object()


class Localization:
    """Critical-neuron search on the current weights, cached per weights state.

    Args:
        model: the session's model (searched at its current weights).
        stack: the edit stack (which weights are current).
        bundle: the data set (its training images are searched), or None.
        evaluator: for :meth:`label_quality`, or None.
        split, limit: the session's split (the images ``index`` refers to).
        checkpoint: the model folder, whose label-noise record gives the labels trained on.
    """

    def __init__(self, model: nn.Module, stack: EditStack, bundle: DataBundle | None, evaluator: Evaluator | None,
                 split: str, limit: int | None, checkpoint: Path | None) -> None:
        self.model, self.stack, self.bundle, self.evaluator = model, stack, bundle, evaluator
        self.split, self.limit, self.checkpoint = split, limit, checkpoint
        self._cache: dict[tuple[Any, ...], CriticalNeurons] = {}
        self._trained: Any = _UNSET
        self._dynamics: Any = _UNSET

    def localize(self, index: int, *, quick: bool = True, label: int | str | None = None, seed: int = 0,
                 layers: Sequence[str] | str | None = None, **settings: Any) -> CriticalNeurons:
        """Critical neurons of image ``index`` of the split under the *current* weights.

        Args:
            index: the image's index in the session's split.
            quick: few repeats and capped steps (about a second on a 2-core CPU); False uses
                :data:`workbench.localization.DEFAULT`.
            label: the label to search: ``None`` (default) the current prediction, ``"true"``,
                or a class number.
            settings: :class:`~workbench.localization.SearchSettings` fields (``repeats=``...).
        Returns:
            :class:`~workbench.localization.CriticalNeurons` (cached: the same call at the same
            weights returns the same object).
        Raises:
            ValueError: index out of range, no data set, or bad settings; the model is unchanged.
        """
        from ..localization import localize_example

        if self.bundle is None:
            raise ValueError("this session has no data set: localization needs its training images; "
                             "build the session with a bundle (EditSession.from_checkpoint does)")
        key = (int(index) if isinstance(index, int) else index, quick, label, seed,
               tuple(layers) if isinstance(layers, (list, tuple)) else layers,
               tuple(sorted(settings.items())), self.stack.weights_tag())
        if key not in self._cache:
            self._cache[key] = localize_example(self.model, self.bundle, index, split=self.split, limit=self.limit,
                                                label=label, quick=quick, seed=seed, layers=layers,
                                                trained_labels=self._trained_labels(), **settings)
        return self._cache[key]

    def _trained_labels(self) -> torch.Tensor | None:
        """The labels the model was trained on when its folder records label noise (else None)."""
        if self._trained is _UNSET:
            self._trained = None
            if self.checkpoint is not None and self.bundle is not None:
                from ..data.noise import LabelNoise

                try:
                    noise = LabelNoise.load(self.checkpoint)
                    self._trained = noise.apply(self.bundle.train_y[:noise.num_examples])
                except (FileNotFoundError, ValueError):
                    pass
        return self._trained

    def cached_localization(self, index: int, *, quick: bool = True) -> CriticalNeurons | None:
        """The result of ``localize(index, quick=quick)`` at the current weights if it was run, else None."""
        tag = self.stack.weights_tag()
        for key, res in self._cache.items():
            if key[0] == index and key[1] == quick and key[2] is None and key[4] is None and not key[5] \
                    and key[6] == tag:
                return res
        return None

    def localized_counts(self) -> dict[int, float]:
        """``{index: mean critical-neuron count}`` of the images localized (default label) at the
        current weights; the quick setting's count when both were run."""
        tag = self.stack.weights_tag()
        out: dict[int, float] = {}
        for key, res in sorted(self._cache.items(), key=lambda kv: not kv[0][1]):
            idx, _quick, label, _seed, layers, settings, t = key
            if t == tag and label is None and layers is None and not settings and idx not in out:
                out[idx] = res.count
        return out

    def label_quality(self) -> torch.Tensor:
        """``(N,)`` probability the current model gives each image's label (its split, after ``limit``).

        This is cleanlab's ``self_confidence`` label-quality score (``rank.get_label_quality_scores``
        with ``method="self_confidence"``) on the probabilities of the session's split: out of
        sample on a test or validation split, in sample on the split the model was trained on
        (where a model that fitted a wrong label is confident in it). A low value flags a likely
        label error.
        """
        ev = self.evaluator
        if ev is None:
            raise ValueError("label quality needs an evaluator (build the session with a data set)")
        logits = ev.logits_for(self.stack.params_at()) if self.stack.history else ev.base_logits
        p = torch.softmax(logits.float().cpu(), 1)
        return p.gather(1, ev.labels.cpu().view(-1, 1)).flatten()

    def label_scores(self) -> LabelScores:
        """The "likely mislabeled" score of every image of the split (higher = more suspect), and which.

        When the session browses the training split of a model folder that holds training
        dynamics (``dynamics/``, written by ``python -m workbench train``), the score is
        :data:`~workbench.localization.settings.MISLABEL_SCORE` (chosen by
        ``benchmarks/label_noise_detection.py``) for the images trained on; images past the
        trained set get none. Otherwise it is self-confidence on the current weights
        (``1 - label_quality()``), and the description says why.
        """
        from ..localization.label_errors import SCORE_NAMES, LabelScores

        why = self._dynamics_reason()
        if why is None:
            scores, score = self._dynamics
            n = min(len(scores), len(self.evaluator.labels) if self.evaluator is not None else len(scores))
            values = {i: float(v) for i, v in enumerate(scores[:n].tolist()) if v == v}  # NaN: never seen
            return LabelScores(values, score, SCORE_NAMES[score])
        q = self.label_quality()
        sample = ("; in sample: the model was trained on these images, so a label it fitted looks sound"
                  if self.split == "train" else "")
        return LabelScores({i: 1.0 - v for i, v in enumerate(q.tolist())}, "self_confidence",
                           f"{SCORE_NAMES['self_confidence']}; {why}{sample}")

    def _dynamics_reason(self) -> str | None:
        """None when the dynamics score applies (and is loaded into ``_dynamics``), else why not."""
        from ..localization.label_errors import has_dynamics, mislabel_values
        from ..localization.settings import MISLABEL_SCORE

        if self.checkpoint is None:
            return "this model has no folder, so no training dynamics"
        if not has_dynamics(self.checkpoint):
            return (f"{self.checkpoint} holds no training dynamics (`python -m workbench train` records them "
                    "in dynamics/)")
        if self.split != "train":
            return f"training dynamics score training images, and this session shows the {self.split} split"
        if self._dynamics is _UNSET:
            self._dynamics = (mislabel_values(self.checkpoint, MISLABEL_SCORE), MISLABEL_SCORE)
        return None

"""Localization for :class:`~workbench.session.EditSession`: where a prediction lives, and which
test labels look wrong. The widgets reach the localization library through these methods only."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn as nn

from .records import EditRecord

if TYPE_CHECKING:
    from ..data import DataBundle
    from ..evaluation import Evaluator
    from ..localization import CriticalNeurons


class LocalizationMixin:
    """Critical-neuron search on the session's current weights, cached per weights state."""

    model: nn.Module
    history: list[EditRecord]
    bundle: DataBundle | None
    evaluator: Evaluator | None
    split: str
    limit: int | None

    def params_at(self, step: int | None = None) -> dict[str, torch.Tensor]:  # provided by EditSession
        raise NotImplementedError

    def _weights_tag(self) -> tuple[str, ...]:
        return tuple(rec.uid for rec in self.history)

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
               tuple(sorted(settings.items())), self._weights_tag())
        cache: dict = self.__dict__.setdefault("_localized", {})
        if key not in cache:
            cache[key] = localize_example(self.model, self.bundle, index, split=self.split, limit=self.limit,
                                          label=label, quick=quick, seed=seed, layers=layers,
                                          trained_labels=self._trained_labels(), **settings)
        return cache[key]

    def _trained_labels(self) -> torch.Tensor | None:
        """The labels the model was trained on when its folder records label noise (else None)."""
        if "_trained" not in self.__dict__:
            self.__dict__["_trained"] = None
            folder = getattr(self, "checkpoint", None)
            if folder is not None and self.bundle is not None:
                from ..data.noise import LabelNoise

                try:
                    noise = LabelNoise.load(folder)
                    self.__dict__["_trained"] = noise.apply(self.bundle.train_y[:noise.num_examples])
                except (FileNotFoundError, ValueError):
                    pass
        return self.__dict__["_trained"]

    def cached_localization(self, index: int, *, quick: bool = True) -> CriticalNeurons | None:
        """The result of ``localize(index, quick=quick)`` at the current weights if it was run, else None."""
        tag = self._weights_tag()
        for key, res in self.__dict__.get("_localized", {}).items():
            if key[0] == index and key[1] == quick and key[2] is None and key[4] is None and not key[5] \
                    and key[6] == tag:
                return res
        return None

    def localized_counts(self) -> dict[int, float]:
        """``{index: mean critical-neuron count}`` of the images localized (default label) at the
        current weights; the quick setting's count when both were run."""
        tag = self._weights_tag()
        out: dict[int, float] = {}
        for key, res in sorted(self.__dict__.get("_localized", {}).items(), key=lambda kv: not kv[0][1]):
            idx, _quick, label, _seed, layers, settings, t = key
            if t == tag and label is None and layers is None and not settings and idx not in out:
                out[idx] = res.count
        return out

    def label_quality(self) -> torch.Tensor:
        """``(N,)`` probability the current model gives each image's label (its split, after ``limit``).

        This is cleanlab's ``self_confidence`` label-quality score (``rank.get_label_quality_scores``
        with ``method="self_confidence"``) on the model's test probabilities, which are out of sample:
        a low value flags a likely label error.
        """
        ev = self.evaluator
        if ev is None:
            raise ValueError("label quality needs an evaluator (build the session with a data set)")
        logits = ev.logits_for(self.params_at()) if self.history else ev.base_logits
        p = torch.softmax(logits.float().cpu(), 1)
        return p.gather(1, ev.labels.cpu().view(-1, 1)).flatten()

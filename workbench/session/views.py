"""What the workbench's panels read from an :class:`~workbench.session.EditSession`.

Thin accessors over the session's evaluator, data and records, so that the widget layer
talks to the session only (it never reaches into ``session.evaluator``): class names,
labels, raw images, the current model's errors and confusion, a quick drawdown estimate
of the last edit, the exact reports completed after it, attribution of base vs current
weights, and images of the user's own.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn as nn

from .records import EditRecord

if TYPE_CHECKING:
    from ..attribution import AttributionSet
    from ..data import DataBundle
    from ..evaluation import EditReport, Evaluator, Misclassified
    from ..evaluation.estimate import DrawdownEstimate, StratifiedSample

ERRORS_KEPT = 16  # states whose error lists current_errors keeps


class ViewMixin:
    """Accessors and completion steps used by the widgets (one door: the session)."""

    model: nn.Module
    history: list[EditRecord]
    bundle: DataBundle | None
    evaluator: Evaluator | None
    split: str
    card: dict[str, Any]
    device: torch.device

    def params_at(self, step: int | None = None) -> dict[str, torch.Tensor]:  # provided by EditSession
        raise NotImplementedError

    def _black(self) -> torch.Tensor | None:  # provided by AnalysisMixin
        raise NotImplementedError

    def _exclusive(self, action: str) -> Any:  # provided by EditSession (the session's lock)
        raise NotImplementedError

    # -- the split -----------------------------------------------------------------------
    def _ev(self) -> Evaluator:
        if self.evaluator is None:
            raise ValueError("this session has no evaluator (no data set); open it with EditSession.from_checkpoint "
                             "or EditSession(model, bundle)")
        return self.evaluator

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names (index = label)."""
        if self.evaluator is not None:
            return tuple(self.evaluator.classes)
        if self.bundle is not None:
            return tuple(self.bundle.classes)
        n = int(getattr(self.model, "num_classes", 0))
        return tuple(str(i) for i in range(n))

    @property
    def labels(self) -> torch.Tensor:
        """``(N,) int64`` true labels of the split (CPU)."""
        return self._ev().labels

    @property
    def base_error(self) -> float:
        """Test error of the base model on the split, in [0, 1]."""
        return float(self._ev().base_error)

    @property
    def base_preds(self) -> torch.Tensor:
        """``(N,) int64`` predictions of the base model."""
        return self._ev().base_preds

    def raw_images(self) -> torch.Tensor:
        """``(N, C, H, W) uint8`` images of the split for display (``DataBundle.display_images``)."""
        ev = self._ev()
        n = len(ev.labels)
        if self.bundle is not None:
            return self.bundle.display_images(self.bundle.split(self.split)[0][:n])
        return torch.stack([ev.raw_image(i) for i in range(n)])

    def current_preds(self) -> torch.Tensor:
        """``(N,) int64`` predictions of the current weights (the last report's, else scored)."""
        ev = self._ev()
        if not self.history:
            return ev.base_preds
        rep = self.history[-1].report
        return rep.preds_after if rep is not None else ev.preds_for(self.params_at())

    def current_errors(self) -> list[Misclassified]:
        """The current model's misclassified examples (confidence and margin from its logits).

        Kept per state (the uids of the applied edits; the last few states), so that Undo,
        Redo and a second view of the same session do not score the whole split again."""
        ev = self._ev()
        if not self.history:
            return list(ev.misclassified())
        from ..evaluation.records import errors_from_logits

        key = (id(ev), *(r.uid for r in self.history))  # a replaced evaluator is never served old lists
        cache: dict[tuple[object, ...], list[Misclassified]] = self.__dict__.setdefault("_errors_by_state", {})
        if key not in cache:
            cache[key] = errors_from_logits(ev.logits_for(self.params_at()), ev.labels)
            for old in list(cache)[:-ERRORS_KEPT]:
                del cache[old]
        return list(cache[key])

    def confusion(self) -> torch.Tensor:
        """``(C, C) int64`` confusion counts of the current weights (row = true class)."""
        return self._ev().confusion(self.current_preds())

    # -- quick and exact scores of the last edit -------------------------------------------
    def estimate_sample(self, n: int | None = None) -> StratifiedSample:
        """The fixed stratified sample used by :meth:`estimate_last` (drawn once, seed 0)."""
        from ..evaluation.estimate import DEFAULT_SAMPLE, stratified_sample

        ev = self._ev()
        key = n or DEFAULT_SAMPLE
        cached = getattr(self, "_estimate_sample", None)
        if cached is None or cached[0] != key:
            cached = (key, stratified_sample(ev.labels, ev.base_preds != ev.labels, key))
            self._estimate_sample = cached
        return cached[1]

    def estimate_last(self, n: int | None = None) -> DrawdownEstimate:
        """Estimated drawdown of the last applied edit alone (its weights against the ones
        before it), with a 95% interval, from a stratified sample (about 10x faster than
        the exact report; see :mod:`workbench.evaluation.estimate`)."""
        from ..evaluation.estimate import estimate_drawdown

        if not self.history:
            raise ValueError("no edit is applied yet: make an edit first")
        ev = self._ev()
        k = len(self.history)
        prev = self.history[k - 2].report if k > 1 else None
        reference = ev.base_preds if k == 1 else (prev.preds_after if prev is not None
                                                  else ev.preds_for(self.params_at(k - 1)))
        return estimate_drawdown(ev, self.params_at(), self.estimate_sample(n), reference)

    def complete_reports(self) -> EditRecord | None:
        """Score every applied edit that was made with ``score=False`` (exact reports on the
        whole split); returns the last record (None without history or evaluator)."""
        ev = self.evaluator
        if ev is None or not self.history:
            return None
        preds = ev.base_preds
        with self._exclusive("scoring the edits"):
            for k, rec in enumerate(self.history):
                if rec.report is None:
                    params = self.params_at(k + 1)
                    report = ev.score(params)
                    step = ev.score(params, reference_preds=preds)
                    self.history[k] = rec = dataclasses.replace(rec, report=report, step_report=step)
                preds = rec.report.preds_after  # type: ignore[union-attr]
        return self.history[-1]

    # -- attribution of base vs current weights ------------------------------------------
    def explain(self, x: torch.Tensor | int, labels: Sequence[int], method: str = "Saliency",
                **kw: Any) -> AttributionSet:
        """Attribution maps of ``x`` (an index or a ``(C, H, W)`` normalised image) for each of
        ``labels`` under the base weights ("before") and the current ones ("after").
        ``kw`` go to :func:`workbench.attribution.before_after` (``progress=``, ``n_steps=``...).
        """
        from ..attribution import before_after

        xi = self.image(x) if isinstance(x, int) else x  # type: ignore[attr-defined]
        if "baseline" not in kw and (black := self._black()) is not None:
            kw["baseline"] = black
        base = self.params_at(0) if self.history else None
        return before_after(self.model, base, None, xi, list(dict.fromkeys(int(v) for v in labels)), method, **kw)

    @property
    def scoring_note(self) -> str:
        """A plain-words note when every score needs a full forward (an untraceable model:
        edits are scored more slowly), else ``""``."""
        ev = self.evaluator
        return ev.fast_path if ev is not None and ev.fast_path.startswith("full forward") else ""

    # -- images of the user's own --------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` the model takes."""
        shape = getattr(self.model, "input_shape", None)
        if shape is None and self.bundle is not None:
            shape = self.bundle.input_shape
        if shape is None:
            raise ValueError("the model's input shape is unknown; give the session a data set")
        return tuple(int(v) for v in shape)  # type: ignore[return-value]

    def image_from_bytes(self, data: bytes, name: str = "image") -> torch.Tensor:
        """Decode a PNG or JPEG file into the model's input: ``(C, H, W) uint8``.

        The image is converted to 8 bits by its value range and to the model's channels
        (grayscale or RGB), resized to its height and width (aspect ratio kept by
        centre-cropping first; :func:`workbench.data.decode.decode_image`) and, for a model
        trained on light objects on black (Fashion-MNIST's mean is dark), inverted when its
        background is light.

        Raises:
            ValueError: not a PNG or JPEG, more pixels than ``data.decode.MAX_UPLOAD_PIXELS``
                (read from the header, before decoding), or a file that cannot be decoded; the
                message says which in plain words.
        """
        from ..data.decode import decode_image

        c, h, w = self.input_shape
        t = decode_image(data, name, c, (h, w))
        mean = self.bundle.mean if self.bundle is not None else self.card.get("mean")
        if mean and sum(mean) / len(mean) < 0.5:
            border = torch.cat([t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1]], dim=1).float().mean()
            if border > 127:
                t = 255 - t
        return t

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` or ``(N, C, H, W) uint8`` -> normalised float input on the session's device."""
        if self.bundle is not None:
            return self.bundle.normalize(raw.to(self.device))
        mean, std = self.card.get("mean"), self.card.get("std")
        if not mean or not std:
            raise ValueError("the normalisation of this model is unknown; give the session its data set")
        from ..data.datasets import normalize

        return normalize(raw.to(self.device), tuple(mean), tuple(std))

    @torch.no_grad()
    def base_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(C,)`` softmax of the *base* weights for one normalised ``(C, H, W)`` image."""
        from torch.func import functional_call

        from ..editing.editor import eval_mode

        p = next(self.model.parameters())
        xb = x.to(device=p.device, dtype=p.dtype).reshape(1, *x.shape[-3:])
        with eval_mode(self.model):
            logits = functional_call(self.model, self.params_at(0), (xb,)) if self.history else self.model(xb)
        return torch.softmax(logits.float(), -1)[0].cpu()

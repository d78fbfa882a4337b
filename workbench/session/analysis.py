"""Analysis of the last edit for :class:`~workbench.session.EditSession`: the
generalisation probe and before/after attribution maps."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn as nn

from .helpers import black_image
from .records import EditRecord

if TYPE_CHECKING:
    from ..attribution import AttributionSet
    from ..data import DataBundle
    from ..probe import GeneralizationReport


class AnalysisMixin:
    """Methods comparing the current weights with those before the last edit (or the base)."""

    model: nn.Module
    history: list[EditRecord]
    bundle: DataBundle | None
    card: dict[str, Any]

    def image(self, index: int | Sequence[int]) -> torch.Tensor:  # provided by EditSession
        raise NotImplementedError

    def params_at(self, step: int | None = None) -> dict[str, torch.Tensor]:  # provided by EditSession
        raise NotImplementedError

    def _compare(self, against: str) -> tuple[dict[str, torch.Tensor], EditRecord]:
        if not self.history:
            raise ValueError("no edit is applied yet: make an edit first")
        if against == "last":
            return self.history[-1].result.before, self.history[-1]
        if against == "base":
            return self.params_at(0), self.history[-1]
        raise ValueError(f"against must be 'last' (before the last edit) or 'base', got {against!r}")

    def generalization(self, x: torch.Tensor | int | None = None, y_ref: int | Sequence[int] | None = None, *,
                       n_views: int = 32, seed: int = 0, against: str = "last", **kw: Any) -> GeneralizationReport:
        """Share of augmented views of the edited image(s) predicted ``y_ref``, before the
        last edit (or at the base, ``against="base"``) and now. Defaults: the last edit's
        image (by index) and target. ``kw`` go to :func:`workbench.probe.generalization`."""
        from ..probe import generalization

        before, rec = self._compare(against)
        if x is None:
            if rec.index is None:
                raise ValueError("the last edit was on a custom image: pass it as x")
            x = rec.index if isinstance(rec.index, int) else list(rec.index)  # type: ignore[assignment]
        xi = self.image(x) if not isinstance(x, torch.Tensor) else x  # type: ignore[arg-type]
        y = rec.target if y_ref is None else y_ref
        return generalization(self.model, xi, y, before, None, n_views=n_views, seed=seed, **kw)

    def attribution(self, x: torch.Tensor | int, labels: int | Sequence[int] | None = None,
                    method: str = "Integrated Gradients", *, against: str = "last", **kw: Any) -> AttributionSet:
        """Attribution maps of ``x`` before the last edit (or at the base) and now.

        ``labels`` default to (the prediction before, the last edit's target). ``kw`` go to
        :func:`workbench.attribution.before_after` (``progress=``, ``n_steps=``, ``window=``...);
        IG and Occlusion use a black image as baseline when the normalisation is known.
        """
        from ..attribution import before_after

        before, rec = self._compare(against)
        xi = self.image(x) if isinstance(x, int) else x
        if labels is None:
            from ..attribution.compare import _probs

            orig = int(_probs(self.model, before, xi).argmax())
            tgt = rec.target if isinstance(rec.target, int) else rec.target[0]
            labels = (orig, tgt)
        if "baseline" not in kw and (black := self._black()) is not None:
            kw["baseline"] = black
        return before_after(self.model, before, None, xi, labels, method, **kw)

    def cam_layers(self, every: bool = False) -> list[str]:
        """Module paths LayerGradCam can explain on this model, in forward order.

        By default only the model's groups that qualify (``stem``, ``chain1`` ... for the
        project's ResNets, ``layer1`` ... for torchvision's), else every layer that does;
        with ``every`` every qualifying submodule (``layer3.1``, ``layer3.1.conv2`` ...).
        """
        from ..attribution import cam_layers

        usable = cam_layers(self.model, self.image(0))
        if every:
            return usable
        groups = set(self.group_names())
        return [p for p in usable if p in groups] or usable

    def default_cam_layer(self) -> str:
        """The last spatial layer before the head (LayerGradCam's default)."""
        from ..attribution import default_cam_layer

        return default_cam_layer(self.model, self.image(0))

    def group_names(self, every: bool = False) -> list[str]:  # provided by EditSession
        raise NotImplementedError

    def _black(self) -> torch.Tensor | None:
        if self.bundle is not None:
            return black_image(self.bundle.mean, self.bundle.std)
        return black_image(self.card.get("mean"), self.card.get("std"))

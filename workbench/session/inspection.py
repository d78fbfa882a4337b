"""Inspection of an :class:`~workbench.session.EditSession`'s weights: class probabilities, the
attribution maps of an image before and after the edits (:meth:`Inspection.explain`), and the
generalisation probe of the last edit."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..editing.editor import eval_mode
from ..editing.inputs import check_images
from ..models import ModelAdapter, forward_logits
from .data import SessionData
from .helpers import check_edit_inputs
from .stack import EditStack

PROBABILITY_CHUNK = 512  # images per forward pass in probabilities()

if TYPE_CHECKING:
    from ..attribution import AttributionSet
    from ..probe import GeneralizationReport
    from .edit_record import EditRecord

EXPLAIN_METHOD = "Integrated Gradients"  # explain()'s default, as workbench.attribution.attribute's
AGAINST = ("base", "last")


class Inspection:
    """Looks at the current weights against the base or the weights before the last edit.

    Args:
        adapter: the session's model adapter (its groups; ``adapter.model`` is the model).
        stack: the edit stack (the weights before, the last edit's image and target).
        data: the split (images by index).
        baseline: ``(C, 1, 1)`` a black pixel in normalised units (IG's and Occlusion's
            baseline), or None when the normalisation is unknown.
    """

    def __init__(self, adapter: ModelAdapter, stack: EditStack, data: SessionData,
                 baseline: torch.Tensor | None) -> None:
        self.adapter, self.model, self.stack, self.data, self.baseline = adapter, adapter.model, stack, data, baseline

    def _before(self, against: str) -> tuple[dict[str, torch.Tensor] | None, EditRecord | None]:
        """The weights to compare with (None: the current ones) and the last edit's record."""
        if against not in AGAINST:
            raise ValueError(f"against must be 'last' (before the last edit) or 'base', got {against!r}")
        history = self.stack.history
        if against == "last":
            if not history:
                raise ValueError("no edit is applied yet: make an edit first")
            return history[-1].result.before, history[-1]
        return (self.stack.params_at(0), history[-1]) if history else (None, None)

    # -- attribution ---------------------------------------------------------------------
    def explain(self, x: torch.Tensor | int, labels: int | Sequence[int] | None = None,
                method: str = EXPLAIN_METHOD, *, against: str = "base", **kw: Any) -> AttributionSet:
        """Attribution maps of ``x`` for each of ``labels``, under the earlier weights ("before")
        and the current ones ("after"), with their differences.

        Args:
            x: an index of the split, or a ``(C, H, W)`` normalised image.
            labels: the classes to explain; default: (the prediction before, the last edit's
                target), which needs an edit.
            method: a key of :data:`workbench.attribution.METHODS`; default
                ``"Integrated Gradients"`` (the Workbench's panel passes its own choice).
            against: ``"base"`` (default: the base weights; before any edit both sides are the
                current weights) or ``"last"`` (the weights before the last edit; needs an edit).
            kw: go to :func:`workbench.attribution.before_after` (``progress=``, ``n_steps=``,
                ``window=``...); IG and Occlusion get a black image as baseline when the
                normalisation is known.
        Returns:
            :class:`~workbench.attribution.AttributionSet` with ``(H, W)`` maps per label.
        Raises:
            ValueError: ``against`` is neither, or an edit is needed and none is applied.
        """
        from ..attribution import before_after, class_probabilities

        before, rec = self._before(against)
        xi = self.data.image(x) if isinstance(x, int) else x
        if labels is None:
            if rec is None:
                raise ValueError("no edit is applied yet: make an edit first, or pass labels= (the classes to explain)")
            orig = int(class_probabilities(self.model, before, xi).argmax())
            labels = (orig, rec.target if isinstance(rec.target, int) else rec.target[0])
        labs = [int(labels)] if isinstance(labels, int) else list(dict.fromkeys(int(v) for v in labels))
        if "baseline" not in kw and self.baseline is not None:
            kw["baseline"] = self.baseline
        return before_after(self.model, before, None, xi, labs, method, **kw)

    def cam_layers(self, every: bool = False) -> list[str]:
        """Module paths LayerGradCam can explain on this model, in forward order.

        By default only the model's groups that qualify (``stem``, ``chain1`` ... for the
        project's ResNets, ``layer1`` ... for torchvision's), else every layer that does;
        with ``every`` every qualifying submodule (``layer3.1``, ``layer3.1.conv2`` ...).
        """
        from ..attribution import cam_layers

        usable = cam_layers(self.model, self.data.image(0))
        if every:
            return usable
        groups = set(self.adapter.group_names())
        return [p for p in usable if p in groups] or usable

    def default_cam_layer(self) -> str:
        """The last spatial layer before the head (LayerGradCam's default)."""
        from ..attribution import default_cam_layer

        return default_cam_layer(self.model, self.data.image(0))

    # -- the generalisation probe --------------------------------------------------------
    def generalization(self, x: torch.Tensor | int | None = None, y_ref: int | Sequence[int] | None = None, *,
                       n_views: int = 32, seed: int = 0, against: str = "last", **kw: Any) -> GeneralizationReport:
        """Share of augmented views of the edited image(s) predicted ``y_ref``, before the
        last edit (or at the base, ``against="base"``) and now. Defaults: the last edit's
        image (by index) and target. ``kw`` go to :func:`workbench.probe.generalization`."""
        from ..probe import generalization

        if not self.stack.history:
            raise ValueError("no edit is applied yet: make an edit first")
        before, rec = self._before(against)
        assert rec is not None
        if x is None:
            if rec.index is None:
                raise ValueError("the last edit was on a custom image: pass it as x")
            x = rec.index if isinstance(rec.index, int) else list(rec.index)  # type: ignore[assignment]
        xi = self.data.image(x) if not isinstance(x, torch.Tensor) else x  # type: ignore[arg-type]
        y = rec.target if y_ref is None else y_ref
        return generalization(self.model, xi, y, before, None, n_views=n_views, seed=seed, **kw)

    # -- probabilities -------------------------------------------------------------------
    @torch.no_grad()
    def probabilities(self, x: torch.Tensor | int) -> torch.Tensor:
        """Softmax of the current model: ``(C,)`` for one image (or an index), ``(N, C)`` for a batch.

        ``x`` is checked as ``edit`` checks it (same shape error); a batch runs in chunks of
        :data:`PROBABILITY_CHUNK`."""
        xi = x if isinstance(x, torch.Tensor) else self.data.image(x)  # type: ignore[arg-type]
        check_edit_inputs(self.data.bundle, xi, ())
        xb = check_images(self.adapter, xi)
        with eval_mode(self.model):
            out = torch.cat([torch.softmax(forward_logits(self.model, c).float(), -1).cpu()
                             for c in xb.split(PROBABILITY_CHUNK)])
        return out[0] if xi.dim() == 3 else out

    @torch.no_grad()
    def base_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(C,)`` softmax of the *base* weights for one normalised ``(C, H, W)`` image."""
        p = next(self.model.parameters())
        xb = x.to(device=p.device, dtype=p.dtype).reshape(1, *x.shape[-3:])
        with eval_mode(self.model):
            logits = forward_logits(self.model, xb, self.stack.params_at(0) if self.stack.history else None)
        return torch.softmax(logits.float(), -1)[0].cpu()

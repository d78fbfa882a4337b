"""Edit generalisation probe: does an edit carry over to nearby views of the edited image?

After editing image ``x`` to label ``t``, the probe builds seeded augmented views of ``x``
(horizontal flip, small shifts, Gaussian noise) and measures the share of views predicted
``t`` before and after the edit. An edit that only memorised the exact pixels raises the
share on ``x`` itself but not on its views.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .editing.editor import eval_mode
from .models.outputs import forward_logits

VIEW_KINDS: tuple[str, ...] = ("flip", "shift", "noise")


@dataclass(frozen=True)
class GeneralizationReport:
    """Share of augmented views predicted as the target, before and after an edit.

    Attributes:
        before, after: share over all views (all kinds, all images), in [0, 1].
        per_kind: kind -> ``(before, after)`` shares.
        n_views: views per kind and image (total views = ``n_views * len(per_kind) * images``).
        targets: the target label of each edited image.
    """

    before: float
    after: float
    per_kind: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_views: int = 0
    targets: tuple[int, ...] = ()

    @property
    def gain(self) -> float:
        """``after - before``: how much of the edit carried over to the views."""
        return self.after - self.before


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift ``(C, H, W)`` by whole pixels, filling with the replicated border."""
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x.unsqueeze(0), (p, p, p, p), mode="replicate")[0]
    return padded[:, p - dy:p - dy + h, p - dx:p - dx + w]


def augmented_views(x: torch.Tensor, n_views: int = 32, *, kinds: Sequence[str] = VIEW_KINDS, seed: int = 0,
                    max_shift: int = 2, noise_std: float = 0.2) -> dict[str, torch.Tensor]:
    """Seeded augmented views of one image.

    Kinds:
        ``"flip"``: horizontal flip, then a random shift of at most 1 pixel (the first view is
        the pure flip); ``"shift"``: a random non-zero shift of at most ``max_shift`` pixels
        (border replicated); ``"noise"``: additive Gaussian noise of ``noise_std`` (normalised
        units).

    Args:
        x: ``(C, H, W)`` float, normalised.
    Returns:
        kind -> ``(n_views, C, H, W)`` on ``x``'s device. The same seed gives the same views.
    """
    if x.dim() != 3 or not torch.is_floating_point(x):
        raise ValueError(f"x must be one normalised float image (C, H, W), got shape {tuple(x.shape)}")
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    if max_shift < 1:
        raise ValueError(f"max_shift must be >= 1 pixel, got {max_shift}")
    unknown = [k for k in kinds if k not in VIEW_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown view kind(s) {unknown}; choose from {VIEW_KINDS}")
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for kind in kinds:
        if kind == "flip":
            d = torch.randint(-1, 2, (n_views, 2), generator=g)
            d[0] = 0
            xf = x.flip(-1)
            out[kind] = torch.stack([_shift(xf, int(a), int(b)) for a, b in d.tolist()])
        elif kind == "shift":
            views: list[torch.Tensor] = []
            while len(views) < n_views:
                a, b = torch.randint(-max_shift, max_shift + 1, (2,), generator=g).tolist()
                if (a, b) != (0, 0):
                    views.append(_shift(x, a, b))
            out[kind] = torch.stack(views)
        else:
            noise = torch.randn((n_views, *x.shape), generator=g).to(x)
            out[kind] = x.unsqueeze(0) + noise_std * noise
    return out


@torch.no_grad()
def _preds(model: nn.Module, params: Mapping[str, torch.Tensor] | None, x: torch.Tensor) -> torch.Tensor:
    with eval_mode(model):
        logits = forward_logits(model, x, params)
    return logits.argmax(-1)


def generalization(model: nn.Module, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor,
                   before_params: Mapping[str, torch.Tensor] | None,
                   after_params: Mapping[str, torch.Tensor] | None = None, *, n_views: int = 32,
                   seed: int = 0, kinds: Sequence[str] = VIEW_KINDS, max_shift: int = 2,
                   noise_std: float = 0.2) -> GeneralizationReport:
    """Share of augmented views of ``x`` predicted ``y_ref`` under two weight sets.

    Args:
        model: a workbench model; ``before_params``/``after_params`` override its parameters
            (any subset; None = the model's own), e.g. ``EditResult.before`` and ``.after``.
        x: ``(C, H, W)`` or ``(N, C, H, W)`` float, normalised (the edited image(s)).
        y_ref: the edit's target label(s), one per image.
        n_views, seed, kinds, max_shift, noise_std: see :func:`augmented_views` (image ``i``
            uses seed ``seed + i``).
    Returns:
        :class:`GeneralizationReport`.

    Example:
        >>> rep = generalization(model, x, 3, res.before, res.after, n_views=16)
        >>> rep.before, rep.after
    """
    p = next(model.parameters())
    xs = x.detach().to(device=p.device, dtype=p.dtype)
    xs = xs.unsqueeze(0) if xs.dim() == 3 else xs
    ys = [int(y_ref)] if isinstance(y_ref, int) else [int(v) for v in torch.as_tensor(y_ref).reshape(-1).tolist()]
    if len(ys) != xs.shape[0]:
        raise ValueError(f"{xs.shape[0]} image(s) but {len(ys)} target label(s); give one label per image")
    hits: dict[str, list[torch.Tensor]] = {k: [torch.zeros(0), torch.zeros(0)] for k in kinds}
    for i, (xi, yi) in enumerate(zip(xs, ys)):
        views = augmented_views(xi, n_views, kinds=kinds, seed=seed + i, max_shift=max_shift, noise_std=noise_std)
        for kind, v in views.items():
            for j, params in enumerate((before_params, after_params)):
                hit = (_preds(model, params, v) == yi).float().cpu()
                hits[kind][j] = torch.cat([hits[kind][j], hit])
    per_kind = {k: (float(b.mean()), float(a.mean())) for k, (b, a) in hits.items()}
    before = float(torch.cat([h[0] for h in hits.values()]).mean())
    after = float(torch.cat([h[1] for h in hits.values()]).mean())
    return GeneralizationReport(before, after, per_kind, n_views, tuple(ys))

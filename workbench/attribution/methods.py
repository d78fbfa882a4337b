"""Captum attribution maps for one image, one label and (optionally) overridden weights.

Every method is a captum class used through its own ``.attribute(x, target=...)``; this
module only picks the arguments, reduces the result to one ``(H, W)`` map and reports
progress. captum is imported inside the functions, so ``import workbench.attribution``
works without it.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn as nn

from ..editing.editor import eval_mode
from ..models import ModelAdapter, adapt, forward_logits
from .gradcam_layers import cam_layer, grid_view

Progress = Callable[[float], None]

# name shown to the user -> class name in ``captum.attr``
_CAPTUM_NAMES: dict[str, str] = {
    "Integrated Gradients": "IntegratedGradients",
    "Saliency": "Saliency",
    "LayerGradCam": "LayerGradCam",
    "Occlusion": "Occlusion",
}

#: How each method's ``(C, H, W)`` (or layer) attribution becomes one ``(H, W)`` map.
REDUCTIONS: dict[str, str] = {
    "Integrated Gradients": "signed sum over channels (positive = evidence for the label)",
    "Saliency": "max over channels of |d logit / d pixel|",
    "LayerGradCam": "Grad-CAM of the layer's output (signed unless relu=True), upsampled bilinearly",
    "Occlusion": "signed sum over channels of the logit drop when a window is blacked out",
}


class _LazyMethods(Mapping[str, type]):
    """``{"Integrated Gradients": captum.attr.IntegratedGradients, ...}``, resolved on access."""

    def __getitem__(self, name: str) -> type:
        if name not in _CAPTUM_NAMES:
            raise KeyError(name)
        import captum.attr

        return getattr(captum.attr, _CAPTUM_NAMES[name])

    def __iter__(self) -> Iterator[str]:
        return iter(_CAPTUM_NAMES)

    def __len__(self) -> int:
        return len(_CAPTUM_NAMES)

    def __repr__(self) -> str:
        return "METHODS(" + ", ".join(f"{k!r}: captum.attr.{v}" for k, v in _CAPTUM_NAMES.items()) + ")"


#: The registry of attribution methods: display name -> captum class (imported on access).
METHODS: Mapping[str, type] = _LazyMethods()


class _Forward:
    """``forward_func`` for captum: the model (with ``params`` overriding its own) that
    counts the rows it has seen and reports ``seen / total`` to ``progress``."""

    def __init__(self, model: nn.Module, params: Mapping[str, torch.Tensor] | None,
                 total_rows: int, progress: Progress | None) -> None:
        self.model, self.params = model, dict(params) if params else None
        self.total, self.seen, self.progress = max(1, total_rows), 0, progress

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = forward_logits(self.model, x, self.params)
        self.seen += int(x.shape[0])
        if self.progress is not None:
            self.progress(min(1.0, self.seen / self.total))
        return out


def _check(adapter: ModelAdapter, x: torch.Tensor, target: int, method: str) -> torch.Tensor:
    if method not in _CAPTUM_NAMES:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {list(_CAPTUM_NAMES)}")
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError("x must be a normalised float image tensor of shape (C, H, W)")
    model = adapter.model
    expected = tuple(adapter.input_shape or x.shape[-3:])
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3 or tuple(x.shape) != expected:
        raise ValueError(f"x has shape {tuple(x.shape)}; attribution takes one image of shape {expected}")
    n_cls = adapter.num_classes
    if isinstance(target, bool) or not isinstance(target, int) or (n_cls is not None and not 0 <= target < n_cls):
        raise ValueError(f"target must be a class index in 0..{(n_cls or 1) - 1}, got {target!r}")
    p = next(model.parameters())
    return x.detach().to(device=p.device, dtype=p.dtype).unsqueeze(0)


def _baseline(x: torch.Tensor, baseline: float | torch.Tensor | None) -> torch.Tensor:
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, torch.Tensor):
        return baseline.to(x).expand_as(x) if baseline.dim() < 4 else baseline.to(x)
    return torch.full_like(x, float(baseline))


def attribute(model: nn.Module | ModelAdapter, x: torch.Tensor, target: int, method: str = "Integrated Gradients", *,
              params: Mapping[str, torch.Tensor] | None = None, layer: str | None = None,
              n_steps: int = 32, internal_batch_size: int | None = None,
              window: int = 4, stride: int | None = None, perturbations_per_eval: int = 32,
              baseline: float | torch.Tensor | None = None, relu: bool = False,
              progress: Progress | None = None) -> torch.Tensor:
    """Attribution map of ``target``'s logit with respect to the pixels of ``x``.

    Args:
        model: any classifier (or its adapter), run in eval mode; its weights are not changed.
        x: ``(C, H, W)`` float, normalised as the model expects.
        target: class index whose logit is explained.
        method: a key of :data:`METHODS`; see :data:`REDUCTIONS` for how each map is formed.
        params: parameters overriding the model's own (name -> tensor, any subset), e.g.
            ``EditResult.before``; evaluated with ``torch.func.functional_call``.
        layer: module path whose output LayerGradCam explains (``"chain3"``, ``"layer3.1"``
            ...); default: the last spatial layer before the head, or a transformer's last
            block with its tokens on the patch grid (:func:`default_cam_layer`).
            :func:`cam_layers` lists the layers it can use.
        n_steps: Integrated Gradients steps; ``internal_batch_size`` splits them into
            chunks (default 8 when ``progress`` is given, so progress moves).
        window, stride: Occlusion's square window and stride (stride defaults to window // 2).
        perturbations_per_eval: Occlusion windows evaluated per forward pass.
        baseline: the "absent" input for IG and Occlusion: a float (in normalised units), a
            ``(C, H, W)`` tensor, or None for zeros. Pass ``bundle.normalize(zeros)`` for black.
        relu: LayerGradCam only: keep positive evidence only (classic Grad-CAM).
        progress: called with a fraction in [0, 1] as the computation advances, ends at 1.0.
    Returns:
        ``(H, W)`` float32 on the CPU, finite.

    Example:
        >>> amap = attribute(model, x, 3, "Saliency")
        >>> amap.shape
        torch.Size([28, 28])
    """
    adapter = adapt(model)
    model = adapter.model
    xb = _check(adapter, x, target, method)
    if method != "Occlusion":
        xb.requires_grad_(True)  # captum would set it too, with a warning
    cls = METHODS[method]
    _, _, h, w = xb.shape
    out: torch.Tensor
    with eval_mode(model):
        if method == "Integrated Gradients":
            if n_steps < 1:
                raise ValueError(f"n_steps must be >= 1, got {n_steps}")
            ibs = internal_batch_size or (min(8, n_steps) if progress is not None else None)
            fwd = _Forward(model, params, n_steps, progress)
            attr = cls(fwd).attribute(xb, baselines=_baseline(xb, baseline), target=target,
                                      n_steps=n_steps, internal_batch_size=ibs)
            out = attr[0].sum(0)
        elif method == "Saliency":
            fwd = _Forward(model, params, 1, progress)
            out = cls(fwd).attribute(xb, target=target, abs=True)[0].amax(0)
        elif method == "LayerGradCam":
            module, grid = cam_layer(adapter, xb, layer)
            fwd = _Forward(model, params, 1, progress)
            with grid_view(module, grid) if grid is not None else contextlib.nullcontext(module) as explained:
                attr = cls(fwd, explained).attribute(xb, target=target, relu_attributions=relu)
            import captum.attr

            out = captum.attr.LayerAttribution.interpolate(attr, (h, w), "bilinear")[0].sum(0)
        else:  # Occlusion
            if not 1 <= window <= min(h, w):
                raise ValueError(f"occlusion window must be in 1..{min(h, w)}, got {window}")
            st = stride or max(1, window // 2)
            n_win = ((h - window) // st + 1) * ((w - window) // st + 1)
            fwd = _Forward(model, params, 1 + n_win, progress)
            c = xb.shape[1]
            attr = cls(fwd).attribute(xb, sliding_window_shapes=(c, window, window), strides=(c, st, st),
                                      baselines=_baseline(xb, baseline), target=target,
                                      perturbations_per_eval=max(1, perturbations_per_eval))
            out = attr[0].sum(0)
    if progress is not None:
        progress(1.0)
    return torch.nan_to_num(out.detach().float().cpu(), nan=0.0, posinf=0.0, neginf=0.0)


def method_kwargs(method: str, **kw: Any) -> dict[str, Any]:
    """Keep only the keyword arguments of :func:`attribute` that ``method`` uses (for UIs)."""
    used = {"Integrated Gradients": {"n_steps", "internal_batch_size", "baseline"},
            "Saliency": set(), "LayerGradCam": {"layer", "relu"},
            "Occlusion": {"window", "stride", "perturbations_per_eval", "baseline"}}[method]
    return {k: v for k, v in kw.items() if k in used}

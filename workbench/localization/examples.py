"""Critical neurons of an example of a data set, by index (what the CLI and the session call).

The searched label defaults to the model's own prediction: the question is where *that*
prediction lives. The random batches come from the training split, and the accuracy cost is
measured on other images of the example's split. A split streamed from disk (an ImageFolder
opened with ``as_bundle``) is read image by image: only the images drawn are read.
"""
from __future__ import annotations

from typing import Any, Sequence, cast

import torch
import torch.nn as nn

from ..data import DataBundle, ImageSource
from ..models.outputs import forward_logits
from .critical import CriticalNeurons, Pool, critical_neurons
from .sites import model_modes

__all__ = ["LABELS", "StreamedImages", "localize_example", "resolve_label"]

LABELS = ("pred", "true")


def resolve_label(model: nn.Module, x: torch.Tensor, true: int, label: int | str | None) -> int:
    """The label to search: ``None``/``"pred"`` the model's prediction on ``x (C, H, W)``, ``"true"``
    the data set's label, or an int class."""
    if label is None or label == "pred":
        dev = next(model.parameters()).device
        with torch.no_grad(), model_modes(model, False):
            return int(forward_logits(model, x.unsqueeze(0).to(dev)).argmax())
    if label == "true":
        return int(true)
    if isinstance(label, str):
        if label.lstrip("-").isdigit():
            return int(label)
        raise ValueError(f"label must be 'pred', 'true' or a class number, got {label!r}")
    return int(label)


def localize_example(model: nn.Module, bundle: DataBundle, index: int, *, split: str = "test",
                     limit: int | None = None, label: int | str | None = None, quick: bool = True,
                     seed: int = 0, layers: Sequence[str] | str | None = None,
                     trained_labels: torch.Tensor | None = None, **settings: Any) -> CriticalNeurons:
    """:func:`critical_neurons` of image ``index`` of ``bundle``'s ``split`` (its first ``limit`` images).

    Args:
        label: ``None``/``"pred"`` (default: the model's prediction), ``"true"``, or a class.
        quick: the interactive setting (few repeats, capped steps); ``settings`` override fields.
        trained_labels: ``(M,)`` the labels the model was trained on, for its first ``M`` training
            images (a run with label noise: ``LabelNoise.apply``). Those images and labels are then
            the reference pool, and on the ``train`` split they are the examples' labels.
    Raises:
        ValueError: ``index`` out of range (the message gives the range), or any bad setting.
    """
    ys, ty = bundle.labels(split), bundle.labels("train")
    xs, tx = _pool_images(bundle, split), _pool_images(bundle, "train")
    if trained_labels is not None:
        if len(trained_labels) > len(ty):
            raise ValueError(f"trained_labels has {len(trained_labels)} labels but the data set has {len(ty)} "
                             "training images")
        tx, ty = tx[:len(trained_labels)], trained_labels.to(ty.device).long()
        if split == "train":
            xs, ys = tx, ty
    n = len(ys) if limit is None else min(len(ys), limit)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index {index!r} out of range: the {split} split has {n} images (0..{n - 1})")
    x = bundle.normalize(xs[torch.tensor([index])])[0]
    y = resolve_label(model, x, int(ys[index]), label)
    keep = torch.ones(n, dtype=torch.bool)
    keep[index] = False
    rest = torch.nonzero(keep).flatten()
    other = (xs[rest], ys[:n][keep]) if n > 1 else None
    reference = (tx, ty) if len(ty) else None
    # a StreamedImages pool is used as the tensor it stands for (len, shape, device, indexing)
    reference, other = cast(Pool | None, reference), cast(Pool | None, other)
    return critical_neurons(model, x, y, reference=reference, other=other, normalize=bundle.normalize,
                            layers=layers, seed=seed, quick=quick, **settings)


def _pool_images(bundle: DataBundle, split: str) -> torch.Tensor | StreamedImages:
    """The images of ``split``: its tensor, or a view that reads the few it is asked for from disk."""
    return StreamedImages(bundle.image_source(split)) if bundle.is_streamed(split) else bundle.split(split)[0]


class StreamedImages:
    """A streamed split seen as an ``(N, C, H, W)`` tensor by the search's pools: ``len``, ``shape``,
    ``device`` and indexing by a slice or a tensor of indices, which reads only those images
    from disk (a random batch, the accuracy sample). Nothing holds the whole split.
    """

    device = torch.device("cpu")

    def __init__(self, source: ImageSource, positions: torch.Tensor | None = None) -> None:
        self.source = source
        self.positions = positions if positions is not None else torch.arange(len(source))

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.source.image_shape))

    def __getitem__(self, key: slice | torch.Tensor) -> Any:
        if isinstance(key, slice):
            return StreamedImages(self.source, self.positions[key])
        idx = torch.as_tensor(key).reshape(-1)
        if idx.dtype == torch.bool:
            return StreamedImages(self.source, self.positions[idx])
        return self.source.images(self.positions[idx.long()])

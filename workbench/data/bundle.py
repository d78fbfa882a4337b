"""A data set in memory (or streamed from disk): :class:`DataBundle`, its splits, normalisation
and display, and the plain image transforms it uses (:func:`normalize`, :func:`min_max`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .source import ImageSource, StreamedSplitError, TensorSource
from .thumbnails import THUMBNAIL_SIZE, Thumbnails


@dataclass(frozen=True, eq=False)
class DataBundle:
    """A data set split into train / val / test, held as tensors.

    Attributes:
        name: data set name, e.g. ``"fashion-mnist"``.
        classes: class names, index = label.
        mean, std: per-channel normalisation constants (on the 0..1 scale); may be empty.
        train_x, val_x, test_x: ``(N, C, H, W)`` images: ``uint8`` pixels, or ``float32``
            (model inputs when ``stored == "input"``, 0..1 pixels otherwise). A streamed split
            (:meth:`is_streamed`) holds its :class:`~workbench.data.source.DatasetSource` here
            instead, which refuses tensor use with a :class:`~workbench.data.StreamedSplitError`:
            read any split through :meth:`image_source`.
        train_y, val_y, test_y: ``(N,) int64`` labels.
        source: where the files were read from.
        meta: how the bundle was made (seed, split sizes ...), recorded in model cards.
        normalize_fn: stored pixels (0..1 float) -> model input, instead of ``mean``/``std``.
        denormalize_fn: model input -> 0..1 image, for display.
        stored: ``"pixels"`` (images are pixels; :meth:`normalize` makes model inputs) or
            ``"input"`` (images already are model inputs; :meth:`normalize` leaves floats as they are).
    """

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str = ""
    meta: dict = field(default_factory=dict)
    normalize_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    denormalize_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    stored: str = "pixels"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.image_source("test").image_shape

    @property
    def display(self) -> str:
        """How :meth:`display_images` shows the images: ``"pixels"`` (as stored),
        ``"denormalized"`` (model inputs mapped back with the known normalisation) or
        ``"min-max"`` (model inputs, nothing known: each image scaled to 0..1)."""
        if self.stored == "pixels":
            return "pixels"
        return "denormalized" if self.denormalize_fn is not None or (self.mean and self.std) else "min-max"

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y int64)`` for ``"train"``, ``"val"`` or ``"test"`` (``x`` as stored).

        Raises:
            StreamedSplitError: the split is streamed from disk (use :meth:`image_source`).
        """
        x = self._images(name)
        if isinstance(x, ImageSource):
            raise StreamedSplitError(
                f"the {name!r} split of {self.name} ({len(x)} images) is streamed from disk, not held in a tensor; "
                f"read it with bundle.image_source({name!r}).batches(...) or .images(indices), and its labels with "
                f"bundle.labels({name!r}) (or pass stream=False to as_bundle to hold it in memory)")
        return x, self.labels(name)

    def _images(self, name: str) -> torch.Tensor | ImageSource:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use 'train', 'val' or 'test'")
        return getattr(self, f"{name}_x")

    def image_source(self, name: str) -> ImageSource:
        """The images and labels of split ``name``, in memory or streamed (see
        :mod:`workbench.data.source`): ``len``, ``labels``, ``images(indices)``, ``batches(...)``."""
        x = self._images(name)
        return x if isinstance(x, ImageSource) else TensorSource(x, self.labels(name))

    def is_streamed(self, name: str) -> bool:
        """Whether split ``name`` is read from disk on demand (no tensor holds its images)."""
        return isinstance(self._images(name), ImageSource)

    def labels(self, name: str) -> torch.Tensor:
        """``(N,) int64`` labels of split ``name`` (in memory for every split)."""
        self._images(name)
        return getattr(self, f"{name}_y")

    def display_view(self, name: str, n: int | None = None, *, size: int = THUMBNAIL_SIZE) -> torch.Tensor | Thumbnails:
        """The first ``n`` images of split ``name`` for display, indexable as ``view[i] -> (C, h, w)``.

        An in-memory split gives the ``(n, C, H, W)`` tensor of :meth:`display_images`; a streamed
        one gives :class:`~workbench.data.thumbnails.Thumbnails` (made on demand, longer side at
        most ``size``, a few hundred kept)."""
        x = self._images(name)
        if isinstance(x, ImageSource):
            return Thumbnails(x, self.display_images, n=n, size=size)
        return self.display_images(x if n is None else x[:n])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Stored images ``(N, C, H, W)`` (``uint8``, or float 0..1 pixels) -> ``float32`` model input.

        Floats of a bundle that stores model inputs (``stored == "input"``) pass unchanged.
        """
        if self.stored == "input" and torch.is_floating_point(x):
            return x.float()
        if self.normalize_fn is not None:
            if x.dtype == torch.uint8:
                x = x.float().div_(255.0)
            return self.normalize_fn(x)
        if not self.mean or not self.std:
            if x.dtype == torch.uint8:
                return x.float().div_(255.0)
            if not torch.is_floating_point(x):
                raise TypeError(f"images must be uint8 or float, got {x.dtype}")
            return x
        return normalize(x, self.mean, self.std)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: model input ``(..., C, H, W)`` -> float image in 0..1
        (min-max scaled per image when the normalisation is unknown, see :attr:`display`)."""
        if self.denormalize_fn is not None:
            return self.denormalize_fn(x).clamp(0, 1)
        if self.mean and self.std:
            mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
            std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
            return (x * std + mean).clamp(0, 1)
        if self.stored == "pixels" and self.normalize_fn is None:
            return x.clamp(0, 1)  # the model input is pixels / 255
        return min_max(x)

    def display_images(self, x: torch.Tensor) -> torch.Tensor:
        """Stored images ``(N, C, H, W)`` -> what to show: uint8 pixels as they are, else
        float in 0..1 (see :attr:`display`)."""
        if self.stored == "pixels":
            return x
        return self.denormalize(x.float())

    def normalization_card(self) -> dict:
        """How images become model inputs, for a model card (``custom``: a function was given,
        which a card cannot record)."""
        return {"stored": self.stored, "mean": list(self.mean), "std": list(self.std),
                "custom": self.normalize_fn is not None or self.denormalize_fn is not None,
                "display": self.display}

    def subset(self, train: int | None = None, val: int | None = None, test: int | None = None) -> "DataBundle":
        """A smaller bundle with the first ``n`` examples of each split (for tests and demos)."""
        def cut(t: Any, n: int | None) -> Any:
            if n is None:
                return t
            return t.subset(range(min(n, len(t)))) if isinstance(t, ImageSource) else t[:n]
        return dataclasses.replace(self, train_x=cut(self.train_x, train), train_y=cut(self.train_y, train),
                                   val_x=cut(self.val_x, val), val_y=cut(self.val_y, val),
                                   test_x=cut(self.test_x, test), test_y=cut(self.test_y, test),
                                   meta=dict(self.meta))


def min_max(x: torch.Tensor) -> torch.Tensor:
    """Scale each image of ``(..., C, H, W)`` to 0..1 (constant images become 0)."""
    flat = x.reshape(*x.shape[:-3], -1) if x.dim() > 3 else x.reshape(1, -1)
    lo = flat.min(-1, keepdim=True).values
    hi = flat.max(-1, keepdim=True).values
    out = (flat - lo) / (hi - lo).clamp_min(1e-12)
    return out.reshape(x.shape)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    elif not torch.is_floating_point(x):
        raise TypeError(f"images must be uint8 or float, got {x.dtype}")
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s

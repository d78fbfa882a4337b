"""Bring your own data: any image data set converted into a :class:`DataBundle`.

:func:`as_bundle` takes

- a :class:`DataBundle` (returned as is, or with its normalisation replaced);
- a ``torch.utils.data.Dataset`` of ``(image, label)`` pairs: a torchvision data set
  (``classes`` is read from it), a ``Subset`` of one, a ``TensorDataset`` ... Images may be
  tensors ``(C, H, W)``, PIL images or ``(H, W[, C])`` arrays;
- a pair of tensors ``(x (N, C, H, W), y (N,))``;
- a path (or ``"imagefolder:PATH"``): an ImageFolder tree ``root/<class>/<image>``;
- a dict ``{"test": data, "val": data, "train": data}`` of the forms above.

How images become model inputs and how they are shown (``bundle.display``):

- ``uint8`` images are raw pixels. The model input is ``normalize(x / 255)``: the given
  ``normalize`` function, else ``(x / 255 - mean) / std``, else ``x / 255``. They are shown as
  they are (``display == "pixels"``).
- ``float`` images are what the model takes (e.g. a torchvision data set whose transform
  ends in ``Normalize``). They are shown through ``denormalize`` (given, or ``x * std + mean``,
  or read from a ``Normalize`` in the data set's transform): ``display == "denormalized"``;
  when nothing is known, each image is min-max scaled to 0..1 (``display == "min-max"``).
  A float data set with a ``normalize`` function (and no ``denormalize``) holds 0..1 pixels
  instead: the model input is ``normalize(x)`` and the pixels are shown as they are.

Where the images stay (``stream``):

- ``(x, y)`` tensors stay in memory, as given.
- An ImageFolder path is streamed: read from disk in batches (:mod:`workbench.data.source`),
  all of it browsed as the ``test`` split (no split is held out unless ``val_fraction`` asks for
  one), at ``resize``, else the model's ``input_shape``, else the images' own size.
- A ``Dataset`` is streamed when its images take more than :data:`IN_MEMORY_MAX_BYTES` as
  stored, else read into memory; ``stream=True`` / ``False`` decides instead.

A streamed split is read through ``bundle.image_source(split)``; using it as a tensor raises
:class:`~workbench.data.StreamedSplitError`.

Images whose size differs from ``resize`` (or from each other) and labels outside the classes
get a ``ValueError`` that names the problem and the fix.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .convert import as_chw, resized
from .bundle import DataBundle
from .folder import open_folder
from .source import DatasetSource, ImageSource

Fn = Callable[[torch.Tensor], torch.Tensor]
Images = Any  # torch.Tensor (in memory) or DatasetSource (streamed)
DEFAULT_VAL_FRACTION = 0.2
MAX_VAL = 1000
IN_MEMORY_MAX_BYTES = 256 * 2 ** 20  # a Dataset whose images take more than this (as stored) is streamed

__all__ = ["as_bundle", "dataset_to_tensors", "check_labels"]


def as_bundle(data: Any, *, classes: Sequence[str] | None = None, normalize: Fn | None = None,
              denormalize: Fn | None = None, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None, val: Any = None, resize: int | tuple[int, int] | None = None,
              name: str | None = None, val_fraction: float | None = None, seed: int = 0,
              limit: int | None = None, stream: bool | None = None,
              input_shape: Sequence[int] | None = None) -> DataBundle:
    """Convert ``data`` (any form listed in the module docstring) into a :class:`DataBundle`.

    Args:
        data: the images to browse and score: they become the bundle's ``test`` split.
        classes: class names, index = label (default: ``data.classes``, else ``"0"`` ...
            ``str(max label)``).
        normalize, denormalize: stored images -> model input, and model input -> 0..1
            display images (see the module docstring).
        mean, std: per-channel constants (0..1 scale) instead of the two functions.
        val: validation images (for calibrating the editor). Default: a seeded
            ``val_fraction`` of ``data`` (at most 1000 images) is held out of the test split.
        val_fraction: default 0.2 for tensors and data sets; 0 for a folder (browsed whole).
        resize: resize every image to ``(H, W)`` (an int: square) instead of raising on a
            size mismatch.
        limit: keep only the first ``limit`` examples of ``data``.
        stream: read a data set from disk batch by batch (True), into memory (False), or
            decide by size (None; see the module docstring). A folder streams unless False.
        input_shape: ``(C, H, W)`` the model takes: a folder is read at this size and channel
            count when ``resize`` is not given.
    Returns:
        A bundle with ``test`` (and ``val``) splits; ``train`` is empty unless a dict gave one.
    Raises:
        ValueError, TypeError: a form it cannot read, images of differing sizes, labels
            outside the classes. Nothing is modified.

    Example:
        >>> ds = torchvision.datasets.FashionMNIST(root, train=False)   # PIL images
        >>> b = as_bundle(ds, mean=(0.286,), std=(0.353,))
        >>> b.test_x.shape, b.classes[0], b.display
        (torch.Size([8000, 1, 28, 28]), 'T-shirt/top', 'pixels')
    """
    if isinstance(data, DataBundle):
        if any(v is not None for v in (normalize, denormalize, mean, std, classes)):
            return _renormalized(data, classes, normalize, denormalize, mean, std)
        return data
    if isinstance(data, Mapping):
        unknown = set(data) - {"train", "val", "test"}
        if unknown or "test" not in data:
            raise ValueError(f"a dict of splits needs a 'test' entry and may have 'val' and 'train'; got keys "
                             f"{sorted(data)}")
        splits = {k: v for k, v in data.items()}
        test, val, train = splits["test"], splits.get("val", val), splits.get("train")
    else:
        test, train = data, None
    size: tuple[int, int] | None = (resize, resize) if isinstance(resize, int) else \
        (int(resize[0]), int(resize[1])) if resize is not None else None
    if isinstance(test, (str, Path)):
        return _folder(test, size, input_shape, stream, name, seed, classes, normalize, denormalize, mean, std,
                       val_fraction, limit)
    tx, ty, found_classes, found_norm = _read(test, size, stream, limit)
    if mean is None and std is None and normalize is None and denormalize is None and found_norm:
        mean, std = found_norm
    names = tuple(classes) if classes is not None else found_classes
    vx = vy = None
    if val is not None:
        vx, vy, _, _ = _read(val, size, stream, None)
    train_x, train_y = (_read(train, size, stream, None)[:2] if train is not None
                        else (_empty_like(tx), ty[:0]))
    n_labels = int(max(int(t.max()) for t in (ty, vy, train_y) if t is not None and t.numel()) + 1) \
        if ty.numel() else 0
    if names is None:
        names = tuple(str(i) for i in range(n_labels))
    for split, y in (("data", ty), ("val", vy), ("train", train_y)):
        if y is not None:
            check_labels(y, names, split)
    for split, x in (("val", vx), ("train", train_x)):
        if x is not None and len(x) and _shape(x) != _shape(tx):
            raise ValueError(f"the {split} images have shape {_shape(x)} but the test images "
                             f"{_shape(tx)}; pass resize=(H, W) to bring them to one size")
    meta: dict[str, Any] = {"seed": seed, "classes_from": "given" if classes is not None else
                            "data" if found_classes is not None else "labels"}
    if vx is None:
        vx, vy, tx, ty, meta["val_held_out"] = _hold_out(tx, ty, DEFAULT_VAL_FRACTION if val_fraction is None
                                                         else val_fraction, seed)
    assert vy is not None
    float_input = _dtype(tx).is_floating_point
    return DataBundle(name or _name_of(test), names, tuple(mean or ()), tuple(std or ()),
                      train_x, train_y, vx, vy, tx, ty, source=type(test).__name__, meta=meta,
                      normalize_fn=normalize, denormalize_fn=denormalize,
                      stored="input" if float_input and normalize is None else "pixels")


def _read(data: Any, size: tuple[int, int] | None, stream: bool | None, limit: int | None
          ) -> tuple[Images, torch.Tensor, tuple[str, ...] | None, tuple[tuple[float, ...], tuple[float, ...]] | None]:
    """``(images, labels, classes, (mean, std))`` of ``data``: a tensor, or a streamed source."""
    if _is_pair(data) or stream is False:
        return dataset_to_tensors(data, size, limit=limit)
    src: ImageSource = data if isinstance(data, DatasetSource) else DatasetSource(data, size)
    if limit is not None:
        src = src.subset(range(min(limit, len(src))))
    if stream is None and src.stored_bytes() <= IN_MEMORY_MAX_BYTES:
        return dataset_to_tensors(data, size, limit=limit)
    return src, src.labels, _classes_of(data), _normalize_of(data)


def _hold_out(x: Images, y: torch.Tensor, fraction: float, seed: int
              ) -> tuple[Images, torch.Tensor, Images, torch.Tensor, int]:
    """``(val_x, val_y, test_x, test_y, n_val)``: a seeded ``fraction`` (at most MAX_VAL) held out."""
    n_val = min(MAX_VAL, int(round(len(x) * fraction))) if len(x) > 1 else 0
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    vi, ti = perm[:n_val].sort().values, perm[n_val:].sort().values
    if isinstance(x, ImageSource):
        return x.subset(vi), y[vi], x.subset(ti), y[ti], n_val
    return x[vi], y[vi], x[ti], y[ti], n_val


def _is_pair(data: Any) -> bool:
    return isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, (torch.Tensor, np.ndarray)) for t in data)


def _shape(x: Images) -> tuple[int, ...]:
    return x.image_shape if isinstance(x, ImageSource) else tuple(x.shape[1:])


def _dtype(x: Images) -> torch.dtype:
    return x.stored_dtype if isinstance(x, ImageSource) else x.dtype


def _empty_like(x: Images) -> torch.Tensor:
    return torch.empty((0, *_shape(x)), dtype=_dtype(x))


def check_labels(y: torch.Tensor, classes: Sequence[str], split: str = "data") -> None:
    """Raise ValueError when a label of ``y`` is not an index into ``classes``."""
    if y.numel() == 0:
        return
    bad = torch.unique(y[(y < 0) | (y >= len(classes))])
    if bad.numel():
        raise ValueError(f"the {split} has label(s) {bad.tolist()[:10]} outside the {len(classes)} classes "
                         f"(valid labels: 0..{len(classes) - 1}); pass classes=[...] naming every class, "
                         "or remap the labels to 0..C-1")


def dataset_to_tensors(data: Any, size: tuple[int, int] | None = None, *, limit: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...] | None,
                                  tuple[tuple[float, ...], tuple[float, ...]] | None]:
    """``(x (N, C, H, W), y (N,) int64, classes or None, (mean, std) or None)`` of a data set.

    ``x`` keeps the data's kind: ``uint8`` for PIL images and uint8 tensors, ``float32`` for
    float tensors. ``(mean, std)`` comes from a ``Normalize`` found in the data set's transform.
    """
    if _is_pair(data):
        x, y = (torch.as_tensor(t) for t in data)
        if limit is not None:
            x, y = x[:limit], y[:limit]
        x = _as_nchw(x, "x")
        if len(x) != len(y.reshape(-1)):
            raise ValueError(f"x has {len(x)} images but y has {len(y.reshape(-1))} labels; give one label per image")
        return resized(x, size), _labels(y), None, None
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise TypeError(f"cannot read images from a {type(data).__name__}: pass a torch Dataset of (image, label), "
                        "an (x, y) pair of tensors, an ImageFolder path or a workbench DataBundle")
    n = len(data) if limit is None else min(limit, len(data))
    if n == 0:
        raise ValueError("the data set is empty")
    xs: list[torch.Tensor] = []
    ys: list[int] = []
    for i in range(n):
        item = data[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(f"item {i} of the data set is a {type(item).__name__}; the workbench needs "
                            "(image, label) pairs")
        img = as_chw(item[0], i)
        if size is not None:
            img = resized(img.unsqueeze(0), size)[0]
        elif xs and img.shape != xs[0].shape:
            raise ValueError(f"image {i} has shape {tuple(img.shape)} but image 0 has {tuple(xs[0].shape)}; "
                             "pass resize=(H, W) (or a Resize transform) so that all images have one size")
        xs.append(img)
        ys.append(int(item[1]))
    x = torch.stack(xs)
    return x, torch.tensor(ys, dtype=torch.long), _classes_of(data), _normalize_of(data)


def _as_nchw(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"{what} has shape {tuple(x.shape)}; give images as (N, C, H, W) or (N, H, W)")
    if x.dtype != torch.uint8:
        if not torch.is_floating_point(x):
            raise TypeError(f"{what} has dtype {x.dtype}; give uint8 pixels or float model inputs")
        x = x.float()
    return x.contiguous()


def _labels(y: torch.Tensor) -> torch.Tensor:
    if torch.is_floating_point(y) or y.dtype == torch.bool:
        if torch.is_floating_point(y) and bool((y == y.round()).all()):
            return y.reshape(-1).long()
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    return y.reshape(-1).long()


def _classes_of(data: Any) -> tuple[str, ...] | None:
    for obj in (data, getattr(data, "dataset", None)):
        cls = getattr(obj, "classes", None)
        if cls is not None and len(cls) and all(isinstance(c, str) for c in cls):
            return tuple(cls)
    return None


def _normalize_of(data: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(mean, std)`` of a ``Normalize`` in the data set's transform (torchvision v1 or v2)."""
    for obj in (data, getattr(data, "dataset", None)):
        tf = getattr(obj, "transform", None)
        for step in getattr(tf, "transforms", [tf]):
            if type(step).__name__ == "Normalize" and hasattr(step, "mean") and hasattr(step, "std"):
                return tuple(float(v) for v in step.mean), tuple(float(v) for v in step.std)
    return None


def _name_of(data: Any) -> str:
    inner = getattr(data, "dataset", None)
    return type(inner if inner is not None else data).__name__ if not isinstance(data, tuple) else "tensors"


def _folder(root: str | Path, size: tuple[int, int] | None, input_shape: Sequence[int] | None,
            stream: bool | None, name: str | None, seed: int, classes: Any, normalize: Fn | None,
            denormalize: Fn | None, mean: Any, std: Any, val_fraction: float | None, limit: int | None) -> DataBundle:
    """Every image of an ImageFolder as the test split, read at ``size``, else the model's
    ``input_shape``, else the images' own size; streamed unless ``stream is False``."""
    root = str(root)
    root = root.split(":", 1)[1] if root.startswith("imagefolder:") else root
    shape = tuple(int(v) for v in input_shape) if input_shape else None
    if size is None and shape is not None and len(shape) == 3:
        size = (shape[1], shape[2])
    channels = 1 if shape is not None and shape[0] == 1 else 3
    src, found = open_folder(root, size=size, channels=channels)
    names = tuple(classes) if classes is not None else found
    x: Images = src if limit is None else src.subset(range(min(limit, len(src))))
    y = x.labels
    if stream is False:
        x = x.images(range(len(x)))
    meta: dict[str, Any] = {"seed": seed, "classes_from": "given" if classes is not None else "data",
                            "read_size": list(_shape(x)[1:]), "channels": _shape(x)[0], "images": len(y),
                            "val_fraction": float(val_fraction or 0.0)}
    vx, vy, tx, ty, meta["val_held_out"] = _hold_out(x, y, val_fraction or 0.0, seed)
    for split, labels in (("data", ty), ("val", vy)):
        check_labels(labels, names, split)
    b = DataBundle(name or Path(root).name, names, (), (), _empty_like(x), ty[:0], vx, vy, tx, ty,
                   source=str(root), meta=meta)
    return _renormalized(b, None, normalize, denormalize, mean, std)


def _renormalized(b: DataBundle, classes: Any, normalize: Fn | None, denormalize: Fn | None,
                  mean: Any, std: Any) -> DataBundle:
    names = tuple(classes) if classes is not None else b.classes
    for split in ("train", "val", "test"):
        check_labels(b.labels(split), names, split)
    kw: dict[str, Any] = {"classes": names}
    if mean is not None or std is not None:
        kw |= {"mean": tuple(mean or ()), "std": tuple(std or ())}
    if normalize is not None or denormalize is not None:
        kw |= {"normalize_fn": normalize, "denormalize_fn": denormalize}
    return dataclasses.replace(b, **kw)

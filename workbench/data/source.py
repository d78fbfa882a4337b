"""Where a split's images come from: held in memory, or read from disk batch by batch.

An :class:`ImageSource` has a length, cheap labels, :meth:`~ImageSource.images` (a few images)
and :meth:`~ImageSource.batches` (all of them, or any indices, in fixed batches). Images come
as stored: ``uint8`` pixels or ``float32`` model inputs, ``(n, C, H, W)``; normalising them is
the :class:`~workbench.data.DataBundle`'s job.

* :class:`TensorSource`: an ``(N, C, H, W)`` tensor in memory (batches are slices of it).
* :class:`DatasetSource`: a torch ``Dataset`` of ``(image, label)`` pairs (an ImageFolder
  included), read in batches through a ``DataLoader`` with worker processes (pinned memory
  when the batches go to CUDA). Nothing holds a copy of the whole set; ``streamed`` is True.
  Used as a tensor (``x[:2]``, ``x.shape``, ``torch.cat``), it raises
  :class:`StreamedSplitError` naming the methods to call instead.

Both give the very same stored tensors for the same images, so scores do not depend on
which one holds the data.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..batching import to_device, transfer_for
from .convert import as_chw, resized

Indices = Sequence[int] | torch.Tensor | range
DEFAULT_BATCH = 256

__all__ = ["DatasetSource", "ImageSource", "StreamedSplitError", "TensorSource", "default_workers", "tensor_sha256"]


class StreamedSplitError(TypeError):
    """A streamed split was used as a tensor (it is read from disk batch by batch)."""


def default_workers() -> int:
    """DataLoader worker processes for streamed batches: one core is left to the model
    (``min(4, cores - 1)``; 0 on a one-core machine: read in the main process)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes (CPU copies)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _positions(indices: Indices | None, n: int) -> torch.Tensor:
    if indices is None:
        return torch.arange(n)
    idx = torch.as_tensor(list(indices) if isinstance(indices, range) else indices, dtype=torch.long).reshape(-1)
    if len(idx) and not (-n <= int(idx.min()) and int(idx.max()) < n):
        raise IndexError(f"index out of range for a split of {n} images (valid: 0..{n - 1})")
    return idx % max(n, 1)


class ImageSource:
    """The images and labels of one split (see the module docstring).

    Attributes:
        streamed: True when the images are read from disk on demand (no tensor holds them).
    """

    streamed = False

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def labels(self) -> torch.Tensor:
        """``(N,) int64`` labels (CPU)."""
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        raise NotImplementedError

    @property
    def stored_dtype(self) -> torch.dtype:
        """``torch.uint8`` (pixels) or ``torch.float32``."""
        raise NotImplementedError

    def images(self, indices: Indices) -> torch.Tensor:
        """Images ``indices`` as stored: ``(n, C, H, W)`` on the CPU (meant for a few)."""
        raise NotImplementedError

    def batches(self, indices: Indices | None = None, batch_size: int = DEFAULT_BATCH, *,
                device: torch.device | str | None = None, workers: int | None = None) -> Iterator[torch.Tensor]:
        """Images ``indices`` (default: all, in order) in consecutive batches of ``batch_size``:
        ``(b, C, H, W)`` as stored, on ``device`` (default CPU)."""
        raise NotImplementedError

    def subset(self, indices: Indices) -> ImageSource:
        """The images ``indices`` of this source, as a source (no image is read)."""
        raise NotImplementedError

    def fingerprint(self) -> str | None:
        """A cheap identity of the images and labels (None when none can be computed safely)."""
        return None

    def stored_bytes(self) -> int:
        """Bytes the whole split takes as stored."""
        c, h, w = self.image_shape
        return len(self) * c * h * w * torch.empty(0, dtype=self.stored_dtype).element_size()


class TensorSource(ImageSource):
    """Images held in memory: ``x (N, C, H, W)`` (uint8 or float32) and ``y (N,) int64``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels; give one label per image")
        self.x, self._y = x, y

    def __len__(self) -> int:
        return len(self.x)

    @property
    def labels(self) -> torch.Tensor:
        return self._y

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def stored_dtype(self) -> torch.dtype:
        return self.x.dtype

    def images(self, indices: Indices) -> torch.Tensor:
        return self.x[_positions(indices, len(self))]

    def batches(self, indices: Indices | None = None, batch_size: int = DEFAULT_BATCH, *,
                device: torch.device | str | None = None, workers: int | None = None) -> Iterator[torch.Tensor]:
        dev = torch.device(device) if device is not None else torch.device("cpu")
        if indices is None:  # slices of the tensor, as a plain loop over it takes them
            for i in range(0, len(self.x), batch_size):
                yield to_device(self.x[i:i + batch_size], dev)
            return
        idx = _positions(indices, len(self))
        for k in range(0, len(idx), batch_size):
            yield to_device(self.x[idx[k:k + batch_size]], dev)

    def subset(self, indices: Indices) -> TensorSource:
        if isinstance(indices, range) and indices.step == 1 and 0 <= indices.start <= indices.stop:
            return TensorSource(self.x[indices.start:indices.stop], self._y[indices.start:indices.stop])
        idx = _positions(indices, len(self))
        return TensorSource(self.x[idx], self._y[idx])

    def fingerprint(self) -> str:
        return "tensors:" + tensor_sha256(self.x, self._y)


class DatasetSource(ImageSource):
    """A torch ``Dataset`` of ``(image, label)`` pairs read on demand (see the module docstring).

    Args:
        dataset: any map-style data set; images may be tensors ``(C, H, W)``, PIL images or
            ``(H, W[, C])`` arrays (converted as :func:`workbench.data.dataset_to_tensors` does).
        size: resize every image to ``(H, W)`` (None: images must share one size; one that
            differs raises a ValueError when it is read).
        index: the data set's items this source holds, in order (default: all).
        fingerprint: an identity of the data when the source cannot compute one.
    """

    streamed = True

    def __init__(self, dataset: Any, size: tuple[int, int] | None = None, *, index: torch.Tensor | None = None,
                 fingerprint: str | None = None, _labels: torch.Tensor | None = None,
                 _first: torch.Tensor | None = None) -> None:
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"cannot read images from a {type(dataset).__name__}: pass a torch Dataset of "
                            "(image, label), an (x, y) pair of tensors or an ImageFolder path")
        self.dataset, self.resize_to, self.positions = dataset, size, index
        self._fp, self._all_labels, self._first = fingerprint, _labels, _first
        if len(dataset) == 0:
            raise ValueError("the data set is empty")

    # -- the refusal: a streamed split is not a tensor ------------------------------------------
    def _refuse(self, what: str) -> StreamedSplitError:
        return StreamedSplitError(
            f"this split's {len(self)} images are streamed from disk, not held in a tensor ({what}); read them "
            "with bundle.image_source(split).batches(...) (all, in batches) or .images(indices) (a few), or pass "
            "stream=False to as_bundle to hold them in memory")

    def __getitem__(self, key: Any) -> Any:
        raise self._refuse(f"x[{key!r}]")

    def __getattr__(self, name: str) -> Any:  # only for names the class does not define
        if name.startswith("_") or "dataset" not in self.__dict__ or not hasattr(torch.Tensor, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise AttributeError(str(self._refuse(f".{name}")))

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        raise StreamedSplitError(f"a streamed split cannot go to torch.{getattr(func, '__name__', func)}: read its "
                                 "images with bundle.image_source(split).batches(...) or .images(indices)")

    # -- the source -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.positions) if self.positions is not None else len(self.dataset)

    def _pos(self, k: torch.Tensor) -> torch.Tensor:
        return self.positions[k] if self.positions is not None else k

    @property
    def labels(self) -> torch.Tensor:
        if self._all_labels is None:
            self._all_labels = _targets(self.dataset)
        return self._all_labels if self.positions is None else self._all_labels[self.positions]

    def _read(self, pos: int) -> torch.Tensor:
        item = self.dataset[pos]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(f"item {pos} of the data set is a {type(item).__name__}; the workbench needs "
                            "(image, label) pairs")
        img = as_chw(item[0], pos)
        return resized(img.unsqueeze(0), self.resize_to)[0] if self.resize_to is not None else img

    @property
    def _image0(self) -> torch.Tensor:
        if self._first is None:  # an empty view takes its shape from the data set's first image
            self._first = self._read(int(self._pos(torch.tensor(0))) if len(self) else 0)
        return self._first

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self._image0.shape
        return int(c), int(h), int(w)

    @property
    def stored_dtype(self) -> torch.dtype:
        return self._image0.dtype

    def _stack(self, items: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        shape = self._image0.shape
        for pos, img in items:
            if img.shape != shape:
                where = _file_of(self.dataset, pos)
                raise ValueError(f"image {pos}{where} has shape {tuple(img.shape)} but the first image has "
                                 f"{tuple(shape)}; pass resize=(H, W) (or a Resize transform) so that all images "
                                 "have one size")
        return torch.stack([img for _, img in items])

    def images(self, indices: Indices) -> torch.Tensor:
        pos = self._pos(_positions(indices, len(self))).tolist()
        if not pos:
            return self._image0.new_empty((0, *self._image0.shape))
        return self._stack([(p, self._read(p)) for p in pos])

    def batches(self, indices: Indices | None = None, batch_size: int = DEFAULT_BATCH, *,
                device: torch.device | str | None = None, workers: int | None = None) -> Iterator[torch.Tensor]:
        from torch.utils.data import DataLoader

        dev = torch.device(device) if device is not None else torch.device("cpu")
        pos = self._pos(_positions(indices, len(self)))
        chunks = [pos[k:k + batch_size].tolist() for k in range(0, len(pos), batch_size)]
        w = default_workers() if workers is None else int(workers)
        loader: DataLoader[tuple[int, torch.Tensor]] = DataLoader(
            _Reader(self), batch_sampler=chunks, num_workers=w if len(chunks) > 1 else 0,
            collate_fn=self._stack, pin_memory=transfer_for(dev).pin_memory)
        for xb in loader:
            yield to_device(xb, dev)

    def subset(self, indices: Indices) -> DatasetSource:
        pos = self._pos(_positions(indices, len(self)))
        fp = self.fingerprint()
        return DatasetSource(self.dataset, self.resize_to, index=pos, _labels=self._all_labels, _first=None,
                             fingerprint=None if fp is None else f"{fp}|subset:{tensor_sha256(pos)}")

    def fingerprint(self) -> str | None:
        if self._fp is None:
            self._fp = _dataset_fingerprint(self.dataset)
            if self._fp is not None and self.positions is not None:
                self._fp += f"|subset:{tensor_sha256(self.positions)}"
        return None if self._fp is None else f"{self._fp}|size:{self.resize_to}"

    def __repr__(self) -> str:
        return f"DatasetSource({type(self.dataset).__name__}, {len(self)} images, streamed)"


class _Reader(torch.utils.data.Dataset):
    """Map-style view for the DataLoader: data set position -> ``(position, stored image)``."""

    def __init__(self, source: DatasetSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source.dataset)

    def __getitem__(self, pos: int) -> tuple[int, torch.Tensor]:
        return pos, self.source._read(pos)


def _targets(data: Any) -> torch.Tensor:
    """``(N,) int64`` labels: the data set's ``targets`` when it exposes them, else read once."""
    from torch.utils.data import Subset, TensorDataset

    if isinstance(data, Subset):
        inner = _targets(data.dataset)
        return inner[torch.as_tensor(list(data.indices), dtype=torch.long)]
    if isinstance(data, TensorDataset) and len(data.tensors) >= 2:
        return data.tensors[1].reshape(-1).long().clone()
    targets = getattr(data, "targets", None)
    if targets is not None and len(targets) == len(data):
        return torch.as_tensor(np.asarray(targets), dtype=torch.long).reshape(-1)
    return torch.tensor([int(data[i][1]) for i in range(len(data))], dtype=torch.long)


def _file_of(data: Any, pos: int) -> str:
    samples = getattr(data, "samples", None)
    return f" ({samples[pos][0]})" if samples is not None and 0 <= pos < len(samples) else ""


def _dataset_fingerprint(data: Any) -> str | None:
    """Files + sizes + mtimes (a torchvision ImageFolder / DatasetFolder, with its transform),
    tensor bytes (a TensorDataset), or None (any other data set: its content cannot be known
    without reading it)."""
    from torch.utils.data import Subset, TensorDataset

    if isinstance(data, Subset):
        inner = _dataset_fingerprint(data.dataset)
        return None if inner is None else \
            f"{inner}|subset:{tensor_sha256(torch.as_tensor(list(data.indices), dtype=torch.long))}"
    if isinstance(data, TensorDataset):
        return "tensordataset:" + tensor_sha256(*data.tensors)
    samples = getattr(data, "samples", None)
    if samples is not None and hasattr(data, "root"):
        return "files:" + files_sha256([p for p, _ in samples], [t for _, t in samples],
                                       extra=f"{type(data).__name__}|{data.transform!r}|{data.target_transform!r}")
    return None


def files_sha256(paths: Iterable[str], targets: Iterable[int], extra: str = "") -> str:
    """sha256 of each file's path, label, size and mtime (nanoseconds), in order: cheap (no file
    is read) and changed by any edit, replacement, addition or removal of a file."""
    h = hashlib.sha256(extra.encode())
    for p, t in zip(paths, targets):
        st = os.stat(p)
        h.update(f"{p}\0{t}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()

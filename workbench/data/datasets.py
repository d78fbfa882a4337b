"""Datasets as in-memory uint8 tensors with a seeded train/val/test split.

Every loader returns a :class:`DataBundle`. Images stay ``uint8`` until a batch is
normalised, so the whole of Fashion-MNIST or CIFAR-10 fits in a few hundred MB and batches
are cheap tensor slices (no DataLoader workers needed on a 2-core machine).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .idx import read_idx

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def default_cache_dir() -> Path:
    """Where torchvision downloads go: ``$WORKBENCH_DATA`` or ``~/.cache/editable-workbench``."""
    return Path(os.environ.get("WORKBENCH_DATA", Path.home() / ".cache" / "editable-workbench"))


@dataclass(frozen=True, eq=False)
class DataBundle:
    """A data set split into train / val / test, held as tensors.

    Attributes:
        name: data set name, e.g. ``"fashion-mnist"``.
        classes: class names, index = label.
        mean, std: per-channel normalisation constants (on the 0..1 scale).
        train_x, val_x, test_x: ``(N, C, H, W) uint8`` images.
        train_y, val_y, test_y: ``(N,) int64`` labels.
        source: where the files were read from.
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

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.test_x.shape[1:]
        return (int(c), int(h), int(w))

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x uint8, y int64)`` for ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use 'train', 'val' or 'test'")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W) uint8`` (or float in 0..1) -> normalised ``float32`` model input."""
        return normalize(x, self.mean, self.std)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: model input -> float image in 0..1."""
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return (x * std + mean).clamp(0, 1)

    def subset(self, train: int | None = None, val: int | None = None, test: int | None = None) -> "DataBundle":
        """A smaller bundle with the first ``n`` examples of each split (for tests and demos)."""
        def cut(t: torch.Tensor, n: int | None) -> torch.Tensor:
            return t if n is None else t[:n]
        return DataBundle(self.name, self.classes, self.mean, self.std,
                          cut(self.train_x, train), cut(self.train_y, train),
                          cut(self.val_x, val), cut(self.val_y, val),
                          cut(self.test_x, test), cut(self.test_y, test), self.source, dict(self.meta))


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    elif not torch.is_floating_point(x):
        raise TypeError(f"images must be uint8 or float, got {x.dtype}")
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


def _train_val_split(x: torch.Tensor, y: torch.Tensor, val_size: int, seed: int):
    if not 0 <= val_size < len(x):
        raise ValueError(f"val_size={val_size} must be in [0, {len(x)})")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def _find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        for cand in (root / name, root / "raw" / name, root / "FashionMNIST" / "raw" / name):
            if cand.exists():
                return cand
    return None


def load_fashion_mnist(root: str | Path | None = None, *, download: bool = False,
                       val_size: int = 5000, seed: int = 0) -> DataBundle:
    """Fashion-MNIST, 28x28 grayscale, 10 classes.

    Looks in ``root`` (if given), then in Debian's ``/usr/share/datasets/fashion-mnist``
    (package ``dataset-fashion-mnist``), then in the torchvision cache
    (:func:`default_cache_dir`). With ``download=True`` torchvision fetches the files there.
    """
    stems = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
    candidates = [Path(root)] if root is not None else []
    candidates += [DEBIAN_FASHION_DIR, default_cache_dir()]
    for cand in candidates:
        files = {k: _find_idx(cand, s) for k, s in stems.items()}
        if all(files.values()):
            break
    else:
        if not download:
            raise FileNotFoundError(
                "Fashion-MNIST not found (looked in: " + ", ".join(str(c) for c in candidates) + "). "
                "Fix: on Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist`, or pass "
                "download=True (CLI: --download) to fetch it with torchvision into "
                f"{default_cache_dir()}.")
        from torchvision.datasets import FashionMNIST

        target = Path(root) if root is not None else default_cache_dir()
        FashionMNIST(str(target), train=True, download=True)
        FashionMNIST(str(target), train=False, download=True)
        cand = target
        files = {k: _find_idx(cand, s) for k, s in stems.items()}
    t = {k: read_idx(p) for k, p in files.items()}  # type: ignore[arg-type]
    train_x, train_y, val_x, val_y = _train_val_split(
        t["train_x"].unsqueeze(1), t["train_y"].long(), val_size, seed)
    return DataBundle("fashion-mnist", FASHION_CLASSES, FASHION_MEAN, FASHION_STD,
                      train_x, train_y, val_x, val_y,
                      t["test_x"].unsqueeze(1).contiguous(), t["test_y"].long(), source=str(cand),
                      meta={"val_size": val_size, "seed": seed})


def load_cifar10(root: str | Path | None = None, *, download: bool = False,
                 val_size: int = 5000, seed: int = 0) -> DataBundle:
    """CIFAR-10 through torchvision (``cifar-10-batches-py`` under ``root``)."""
    from torchvision.datasets import CIFAR10

    root = Path(root) if root is not None else default_cache_dir()
    try:
        train = CIFAR10(str(root), train=True, download=download)
        test = CIFAR10(str(root), train=False, download=download)
    except RuntimeError as err:
        raise FileNotFoundError(
            f"CIFAR-10 not found under {root} ({err}). Fix: pass download=True (CLI: --download) "
            "on a machine with internet, or copy the extracted `cifar-10-batches-py` folder there."
        ) from err

    def to_t(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return x, torch.tensor(ds.targets, dtype=torch.long)

    (tx, ty), (sx, sy) = to_t(train), to_t(test)
    train_x, train_y, val_x, val_y = _train_val_split(tx, ty, val_size, seed)
    return DataBundle("cifar10", CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD,
                      train_x, train_y, val_x, val_y, sx, sy, source=str(root),
                      meta={"val_size": val_size, "seed": seed})


def load_image_folder(root: str | Path, *, image_size: int = 32, test_fraction: float = 0.2,
                      val_fraction: float = 0.1, seed: int = 0, grayscale: bool = False) -> DataBundle:
    """Any ``ImageFolder`` tree (``root/<class>/<image>``), resized to ``image_size`` and split.

    Normalisation constants are computed from the training split.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ImageFolder root {root} does not exist; it must hold one folder per class")
    tf = [v2.Resize((image_size, image_size))] + ([v2.Grayscale()] if grayscale else [])
    tf += [v2.PILToTensor()]
    ds = ImageFolder(str(root), transform=v2.Compose(tf))
    xs = torch.stack([ds[i][0] for i in range(len(ds))])
    ys = torch.tensor(ds.targets, dtype=torch.long)
    n = len(xs)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    te, va, tr = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    f = xs[tr].float() / 255
    mean = tuple(float(v) for v in f.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in f.std(dim=(0, 2, 3)).clamp_min(1e-3))
    return DataBundle(root.name, tuple(ds.classes), mean, std, xs[tr], ys[tr], xs[va], ys[va],
                      xs[te], ys[te], source=str(root), meta={"seed": seed})


LOADERS: dict[str, Callable[..., DataBundle]] = {
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}


def load_dataset(name: str = "fashion-mnist", root: str | Path | None = None, **kwargs) -> DataBundle:
    """Load a data set by name: ``"fashion-mnist"``, ``"cifar10"`` or ``"imagefolder:<path>"``."""
    if name.startswith("imagefolder:"):
        return load_image_folder(name.split(":", 1)[1], **kwargs)
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(LOADERS)} or 'imagefolder:<path>'")
    return LOADERS[name](root, **kwargs)


def load_for_card(card: dict) -> DataBundle:
    """The data set a model card names (``card["dataset"]``, default Fashion-MNIST), with the
    recipe's data root, validation size and seed, so the train/val split matches training."""
    name = card.get("dataset") or "fashion-mnist"
    recipe = card.get("recipe") or {}
    kw: dict = {}
    if name in ("fashion-mnist", "cifar10"):
        kw = {k: recipe[k] for k in ("val_size", "seed") if recipe.get(k) is not None}
    return load_dataset(name, recipe.get("data_root"), **kw)

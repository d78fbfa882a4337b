"""Datasets as in-memory uint8 tensors with a seeded train/val/test split.

Every loader returns a :class:`DataBundle`. Images stay ``uint8`` until a batch is
normalised, so the whole of Fashion-MNIST or CIFAR-10 fits in a few hundred MB and batches
are cheap tensor slices (no DataLoader workers needed on a 2-core machine).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .bundle import DataBundle
from .idx import read_idx
from .resize import resize_bundle, size_pair

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


def _train_val_split(x: torch.Tensor, y: torch.Tensor, val_size: int | None, seed: int):
    val_size = 5000 if val_size is None else val_size
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
                       val_size: int | None = 5000, seed: int = 0) -> DataBundle:
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
                 val_size: int | None = 5000, seed: int = 0) -> DataBundle:
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
                      val_fraction: float = 0.1, seed: int = 0, grayscale: bool = False,
                      val_size: int | None = None) -> DataBundle:
    """Any ``ImageFolder`` tree (``root/<class>/<image>``), resized to ``image_size`` and split.

    Args:
        image_size: every image is resized to ``image_size x image_size``.
        test_fraction, val_fraction: shares of the images held out (seeded by ``seed``);
            ``val_size`` (a count) replaces ``val_fraction`` when given.
        grayscale: convert to one channel (else three, RGB).
    Returns:
        ``uint8`` images; normalisation constants are computed from the training split. ``meta``
        records every argument, so a model card can reload the very same splits.
    """
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ImageFolder root {root} does not exist; it must hold one folder per class")
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    tf = [v2.Resize((image_size, image_size))] + ([v2.Grayscale()] if grayscale else [])
    tf += [v2.PILToTensor()]
    try:
        ds = ImageFolder(str(root), transform=v2.Compose(tf))
    except (FileNotFoundError, RuntimeError) as err:
        raise FileNotFoundError(f"{root} is not an ImageFolder tree ({err}); it must hold one folder per class "
                                "with the images inside") from err
    xs = torch.stack([ds[i][0] for i in range(len(ds))])
    ys = torch.tensor(ds.targets, dtype=torch.long)
    n = len(xs)
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction)) if val_size is None else int(val_size)
    if n_val < 0 or n_test < 0 or n_test + n_val >= n:
        raise ValueError(f"{root} has {n} images: too few for {n_test} test and {n_val} validation images "
                         "with some left to train on; lower test_fraction / val_size (--val-size)")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    te, va, tr = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    f = xs[tr].float() / 255
    mean = tuple(float(v) for v in f.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in f.std(dim=(0, 2, 3)).nan_to_num(1.0).clamp_min(1e-3))
    meta = {"seed": seed, "image_size": image_size, "grayscale": grayscale, "test_fraction": test_fraction,
            "val_fraction": val_fraction, "val_size": val_size, "images": n, "channels": int(xs.shape[1])}
    return DataBundle(root.name, tuple(ds.classes), mean, std, xs[tr], ys[tr], xs[va], ys[va],
                      xs[te], ys[te], source=str(root), meta=meta)


LOADERS: dict[str, Callable[..., DataBundle]] = {
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
}
IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {"fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}  # (C, H, W)


def load_dataset(name: str = "fashion-mnist", root: str | Path | None = None, **kwargs) -> DataBundle:
    """Load a data set by name: ``"fashion-mnist"``, ``"cifar10"`` or ``"imagefolder:<path>"``.

    ``kwargs`` go to the loader (``val_size``, ``seed``; for a folder also ``grayscale``,
    ``test_fraction`` ...); those set to None take the loader's default. ``image_size`` reads a
    folder at that size and resizes Fashion-MNIST or CIFAR-10 to it (:func:`resize_bundle`).
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if name.startswith("imagefolder:"):
        return load_image_folder(name.split(":", 1)[1], **kwargs)
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(LOADERS)} or 'imagefolder:<path>'")
    if kwargs.pop("grayscale", False):
        raise ValueError(f"grayscale applies to 'imagefolder:<path>' data sets only; {name} has a fixed channel "
                         "count")
    size = kwargs.pop("image_size", None)
    bundle = LOADERS[name](root, **kwargs)
    return bundle if size is None else resize_bundle(bundle, size)


FOLDER_KEYS = ("seed", "image_size", "grayscale", "test_fraction", "val_fraction", "val_size")


def load_for_card(card: dict, image_size: int | None = None) -> DataBundle:
    """The data set a model card names (``card["dataset"]``, default Fashion-MNIST), with the
    recipe's data root, validation size and seed, so the train/val split matches training.
    A folder is reloaded with the image size, channels and fractions in ``card["data"]``. The
    images come at the size the card records (``input_shape``; Fashion-MNIST resized to 32 px
    for a model trained at 32 px), or at ``image_size`` when given. A card naming no data set
    whose classes are not Fashion-MNIST's is refused (ValueError)."""
    bundle = _load_for_card(card, image_size)
    want = size_pair(image_size) or card_size(card)
    return bundle if want is None or bundle.is_streamed("test") else resize_bundle(bundle, want)


def card_size(card: dict) -> tuple[int, int] | None:
    """The ``(H, W)`` of the images a card's model was made with (its ``input_shape``), or None."""
    shape = card.get("input_shape")
    if isinstance(shape, (list, tuple)) and len(shape) == 3:
        try:
            return size_pair((int(shape[1]), int(shape[2])), "the card's input_shape")
        except (TypeError, ValueError):
            return None
    return None


def _load_for_card(card: dict, image_size: int | None) -> DataBundle:
    classes = card.get("classes")
    if not card.get("dataset") and isinstance(classes, list) and tuple(classes) != FASHION_CLASSES:
        raise ValueError(f"the model card records no data set, and its classes ({', '.join(map(str, classes[:3]))} "
                         "...) are not Fashion-MNIST's: give the data it was made with (EditSession.from_checkpoint"
                         "(folder, bundle=load_dataset('imagefolder:PATH')), or --dataset imagefolder:PATH)")
    name = card.get("dataset") or "fashion-mnist"
    recipe = card.get("recipe") or {}
    kw: dict = {}
    if name in ("fashion-mnist", "cifar10"):
        kw = {k: recipe[k] for k in ("val_size", "seed") if recipe.get(k) is not None}
    elif name.startswith("imagefolder:") and (card.get("data") or {}).get("streamed"):
        from .adapt import as_bundle  # a folder browsed whole, streamed (as EditSession(model, folder) reads it)

        meta = card["data"]
        size = (int(meta["read_size"][0]), int(meta["read_size"][1]))
        size = size_pair(image_size) or size
        return as_bundle(name, resize=size, input_shape=(int(meta.get("channels", 3)), *size),
                         seed=int(meta.get("seed", 0)), mean=card.get("mean") or None, std=card.get("std") or None,
                         val_fraction=float(meta.get("val_fraction") or 0.0))
    elif name.startswith("imagefolder:"):
        meta = card.get("data") or {}
        kw = {k: meta[k] for k in FOLDER_KEYS if meta.get(k) is not None}
        if image_size is not None:
            kw["image_size"] = image_size
        if "image_size" not in kw and card.get("input_shape"):
            kw["image_size"] = int(card["input_shape"][-1])
            kw["grayscale"] = int(card["input_shape"][0]) == 1
    return load_dataset(name, recipe.get("data_root"), **kw)

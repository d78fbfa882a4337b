"""Data loading: IDX reader, Fashion-MNIST, CIFAR-10 (tiny on-disk fixture), ImageFolder,
normalisation and augmentation. Everything is offline."""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.data import (
    CIFAR10_CLASSES,
    FASHION_CLASSES,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_image_folder,
    random_crop_flip,
    read_idx,
)
from workbench.data import datasets as ds_mod


# ---------------------------------------------------------------- IDX
def _write_idx(path: Path, arr: np.ndarray, code: int) -> None:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    payload = header + arr.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("name", ["imgs-idx3-ubyte", "imgs-idx3-ubyte.gz"])
def test_read_idx_roundtrip_uint8(tmp_path, name):
    arr = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    _write_idx(tmp_path / name, arr, 0x08)
    t = read_idx(tmp_path / name)
    assert t.dtype == torch.uint8 and tuple(t.shape) == (5, 4, 3)
    assert np.array_equal(t.numpy(), arr)


def test_read_idx_big_endian_int32(tmp_path):
    arr = np.array([[1, -2, 70000], [3, 4, -5]], dtype=">i4")
    _write_idx(tmp_path / "x-idx2-int", arr, 0x0C)
    t = read_idx(tmp_path / "x-idx2-int")
    assert t.dtype == torch.int32
    assert t.tolist() == [[1, -2, 70000], [3, 4, -5]]


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    bad = tmp_path / "bad-idx1-ubyte"
    bad.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 3) + b"\x00\x01\x02")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x00\x01\x02")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)


# ---------------------------------------------------------------- Fashion-MNIST
def test_fashion_mnist_shapes_and_labels(fashion):
    assert fashion.classes == FASHION_CLASSES
    assert tuple(fashion.train_x.shape) == (55000, 1, 28, 28)
    assert tuple(fashion.val_x.shape) == (5000, 1, 28, 28)
    assert tuple(fashion.test_x.shape) == (10000, 1, 28, 28)
    for x, y in (fashion.split("train"), fashion.split("val"), fashion.split("test")):
        assert x.dtype == torch.uint8 and y.dtype == torch.int64 and len(x) == len(y)
        assert int(y.min()) == 0 and int(y.max()) == 9
    assert fashion.input_shape == (1, 28, 28) and fashion.num_classes == 10


def _pairs(x: torch.Tensor, y: torch.Tensor) -> Counter:
    flat = x.reshape(len(x), -1).numpy()
    return Counter((row.tobytes(), int(label)) for row, label in zip(flat, y.tolist()))


def test_fashion_split_is_a_seeded_partition_of_the_training_file(fashion):
    raw_dir = Path(fashion.source)
    raw_x = read_idx(next(raw_dir.glob("train-images-idx3-ubyte*")))
    raw_y = read_idx(next(raw_dir.glob("train-labels-idx1-ubyte*"))).long()
    # train + val is exactly the training file (as a multiset of (image, label)): disjoint, complete.
    assert _pairs(fashion.train_x, fashion.train_y) + _pairs(fashion.val_x, fashion.val_y) == \
        _pairs(raw_x, raw_y)
    same = load_fashion_mnist(seed=0)
    assert torch.equal(same.val_x, fashion.val_x) and torch.equal(same.train_y, fashion.train_y)
    other = load_fashion_mnist(seed=1)
    assert not torch.equal(other.val_x, fashion.val_x)
    assert torch.equal(other.test_x, fashion.test_x)  # the test split never depends on the seed


def test_fashion_missing_data_names_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(ds_mod, "DEBIAN_FASHION_DIR", tmp_path / "debian")
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as err:
        load_fashion_mnist(tmp_path / "empty")
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "download=True" in msg


def test_load_dataset_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("mnist-of-doom")


# ---------------------------------------------------------------- CIFAR-10 (tiny fixture)
def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture()
def tiny_cifar(tmp_path, monkeypatch):
    """A ``cifar-10-batches-py`` folder in torchvision's pickle format: 5 x 4 train, 6 test images.

    torchvision checks each file's md5 against ``CIFAR10.train_list``/``test_list``/``meta``;
    those lists are pointed at the md5s of the files written here (the check itself still runs).
    """
    from torchvision.datasets import CIFAR10

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written: dict[str, tuple[np.ndarray, list[int]]] = {}
    for name, n in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 6)]:
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(folder / name, "wb") as fh:
            pickle.dump({"batch_label": name, "data": data, "labels": labels,
                         "filenames": [f"{name}_{j}.png" for j in range(n)]}, fh)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": 4,
                     "num_vis": 3072}, fh)
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", _md5(folder / f"data_batch_{i}")]
                                                for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": _md5(folder / "batches.meta")})
    return tmp_path, written


def test_cifar10_loads_tiny_fixture(tiny_cifar):
    root, written = tiny_cifar
    b = load_cifar10(root, val_size=4, seed=0)
    assert b.classes == CIFAR10_CLASSES and b.input_shape == (3, 32, 32)
    assert (len(b.train_x), len(b.val_x), len(b.test_x)) == (16, 4, 6)
    # test split: exactly the test_batch rows, CHW layout preserved
    data, labels = written["test_batch"]
    assert torch.equal(b.test_x, torch.from_numpy(data).view(6, 3, 32, 32))
    assert b.test_y.tolist() == labels
    # train + val: exactly the five data batches
    all_x = torch.from_numpy(np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)]))
    all_y = torch.tensor(sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), []))
    assert _pairs(b.train_x, b.train_y) + _pairs(b.val_x, b.val_y) == \
        _pairs(all_x.view(-1, 3, 32, 32), all_y)
    assert load_dataset("cifar10", root, val_size=4).test_y.tolist() == labels


def test_cifar10_corrupted_file_fails_integrity_check(tiny_cifar):
    root, _ = tiny_cifar
    path = root / "cifar-10-batches-py" / "data_batch_3"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_cifar10(root, val_size=4)


def test_cifar10_missing_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path)


# ---------------------------------------------------------------- ImageFolder
def test_image_folder_from_pngs(tmp_path):
    from PIL import Image

    root = tmp_path / "shapes"
    for cls, channel in (("blue", 2), ("red", 0)):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            img = np.zeros((8, 8, 3), dtype=np.uint8)
            img[..., channel] = 100 + 30 * i
            Image.fromarray(img).save(root / cls / f"{i}.png")
    b = load_image_folder(root, image_size=8, test_fraction=0.2, val_fraction=0.2, seed=0)
    assert b.classes == ("blue", "red") and b.input_shape == (3, 8, 8)
    assert (len(b.train_x), len(b.val_x), len(b.test_x)) == (6, 2, 2)
    for x, y in (b.split("train"), b.split("val"), b.split("test")):
        assert x.dtype == torch.uint8
        # every image carries its class colour: blue (label 0) in channel 2, red (1) in channel 0
        dominant = x.float().sum(dim=(2, 3)).argmax(dim=1)
        assert dominant.tolist() == [2 if int(label) == 0 else 0 for label in y]
    gray = load_image_folder(root, image_size=4, grayscale=True)
    assert gray.input_shape == (1, 4, 4)
    with pytest.raises(FileNotFoundError, match="one folder per class"):
        load_image_folder(tmp_path / "nope")


# ---------------------------------------------------------------- normalisation, augmentation
def test_normalize_denormalize_roundtrip(fashion_small):
    x = fashion_small.test_x[:16]
    z = fashion_small.normalize(x)
    assert z.dtype == torch.float32
    assert abs(float(fashion_small.normalize(fashion_small.train_x).mean())) < 0.05  # stats fit the data
    back = fashion_small.denormalize(z) * 255
    torch.testing.assert_close(back, x.float(), rtol=0, atol=1e-3)
    with pytest.raises(TypeError, match="uint8 or float"):
        fashion_small.normalize(x.long())


def test_random_crop_flip_identity_when_disabled():
    x = torch.randint(0, 256, (6, 3, 10, 12), dtype=torch.uint8)
    out = random_crop_flip(x, pad=0, flip=False)
    assert out.dtype == torch.uint8 and torch.equal(out, x)


def test_random_crop_flip_outputs_are_shifted_or_flipped_inputs():
    x = torch.randint(1, 256, (16, 1, 7, 9), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, pad=2, flip=False, generator=g)
    assert out.shape == x.shape and out.dtype == x.dtype
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = []
    for i in range(len(x)):
        match = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(out[i], xp[i, :, dy:dy + 7, dx:dx + 9])]
        assert match, f"image {i} is not a crop of its padded input"
        shifts.append(match[0])
    assert len(set(shifts)) > 1  # the crops are random, not one fixed offset
    flipped = random_crop_flip(x, pad=0, flip=True, generator=g)
    kinds = ["same" if torch.equal(a, b) else "flip" if torch.equal(a, b.flip(-1)) else "other"
             for a, b in zip(flipped, x)]
    assert "other" not in kinds and {"same", "flip"} == set(kinds)

"""Reader for the IDX file format used by (Fashion-)MNIST."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) into a tensor.

    Args:
        path: ``*-idx3-ubyte`` / ``*-idx1-ubyte`` file, plain or ``.gz``.
    Returns:
        tensor with the shape stored in the header, e.g. ``(N, 28, 28) uint8``.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number); re-install the data set")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{code:02x}")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=_DTYPES[code], offset=4 + 4 * ndim)
    expected = int(np.prod(shape))
    if arr.size != expected:
        raise ValueError(f"{path} is truncated: {arr.size} values for shape {shape}")
    return torch.from_numpy(arr.reshape(shape).astype(arr.dtype.newbyteorder("="), copy=True))

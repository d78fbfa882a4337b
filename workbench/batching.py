"""How batches are sized, moved to the device and computed: one policy for data, models and evaluation.

* **Transfers** (:func:`transfer_for`): pinned host memory and ``non_blocking`` copies on CUDA
  only; on the CPU a copy is a plain copy.
* **Batch size** (:func:`plan_batch`): from the bytes one image's activations take, measured on
  a probe batch (:func:`measure_peak`: the CUDA allocator's peak on a GPU, the live tensors
  counted by a dispatch mode on the CPU), and the room left in the memory budget (and, on
  CUDA, in the free GPU memory): at most ``BATCH_SHARE`` of it, rounded down to a power of two
  (stable from one run to the next), at most ``MAX_BATCH`` for the device type and at least
  ``MIN_BATCH`` (below 16 images the CPU's kernels change and logits differ in the last bits; a
  budget without room for 16 images is exceeded by that batch, and the plan says so).
* **Precision** (:func:`precision_for`, :func:`scoring`): scoring always runs under
  ``torch.inference_mode``. ``"exact"`` (the default) is a plain fp32 forward. ``"fast"`` is
  opt-in: channels_last memory format (about 25% faster for a ResNet-50 on one CPU thread), and
  on CUDA autocast to bfloat16 (float16 where bfloat16 is not supported). Its predictions can
  differ from the exact ones; whoever uses it measures how many (:class:`PrecisionCheck`).
"""
from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["BATCH_SHARE", "FAST_CHECK_IMAGES", "FREE_SHARE", "MAX_BATCH", "MIN_BATCH", "PRECISIONS", "PROBE_IMAGES", "BatchPlan",
           "Precision", "PrecisionCheck", "Transfer", "default_batch_size", "gpu_peak", "measure_peak", "plan_batch",
           "precision_for", "prepare_input", "prepare_model", "reset_gpu_peak", "scoring", "to_device", "transfer_for"]

MAX_BATCH = {"cuda": 2048, "cpu": 256}  # the largest default batch (CPU: small batches stay in cache, ~2x faster)
MIN_BATCH = 16  # the smallest planned batch: from 16 images up, CPU logits do not depend on the batch size
BATCH_SHARE = 0.25  # of the room left in the memory budget, for one batch's activations
FREE_SHARE = 0.9  # CUDA: of the free GPU memory, for one batch's activations at most
PROBE_IMAGES = 2  # images of the probe batch that measures the activations
PRECISIONS = ("exact", "fast")
FAST_CHECK_IMAGES = {"cuda": 512, "cpu": 64}  # images on which fast mode is compared with exact fp32


# ------------------------------------------------------------------------------------------- transfers
@dataclass(frozen=True)
class Transfer:
    """How host tensors go to a device: ``pin_memory`` (DataLoader) and ``non_blocking`` copies."""

    pin_memory: bool
    non_blocking: bool


def transfer_for(device: torch.device | str) -> Transfer:
    """Pinned memory and ``non_blocking`` copies on CUDA only (on the CPU they buy nothing)."""
    cuda = torch.device(device).type == "cuda"
    return Transfer(pin_memory=cuda, non_blocking=cuda)


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``t`` (a host tensor) on ``device``, copied ``non_blocking`` where :func:`transfer_for` says so."""
    return t.to(device, non_blocking=transfer_for(device).non_blocking)


def default_batch_size(device: torch.device | str) -> int:
    """The batch used when nothing is measured: ``MAX_BATCH`` of the device type (CPU's for others)."""
    return MAX_BATCH.get(torch.device(device).type, MAX_BATCH["cpu"])


# ------------------------------------------------------------------------------------ measuring memory
class _LiveTensors(TorchDispatchMode):
    """Counts the bytes of the storages that the ops it sees allocate, while they live (CPU meter)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[tuple[int, str], list[int]] = {}  # storage -> [bytes, tensors referring to it]
        self.now = self.peak = 0

    def _drop(self, key: tuple[int, str]) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self.live[key]
            self.now -= entry[0]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = (st.data_ptr(), str(t.device))
                if key in self.live:
                    self.live[key][1] += 1
                else:
                    self.live[key] = [st.nbytes(), 1]
                    self.now += st.nbytes()
                    self.peak = max(self.peak, self.now)
                weakref.finalize(t, self._drop, key)
        return out


_GPU_PEAKS: dict[int, int] = {}  # CUDA device index -> the allocator's peak before measure_peak reset it


def gpu_peak(device: torch.device | str | int) -> int:
    """Peak bytes allocated on a CUDA device since :func:`reset_gpu_peak` (or the start), the
    probes of :func:`measure_peak` included (it resets torch's own peak)."""
    dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    idx = dev.index if dev.index is not None else torch.cuda.current_device()
    return max(_GPU_PEAKS.get(idx, 0), torch.cuda.max_memory_allocated(idx))


def reset_gpu_peak(device: torch.device | str | int) -> None:
    """Start :func:`gpu_peak` afresh on a CUDA device."""
    dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    idx = dev.index if dev.index is not None else torch.cuda.current_device()
    _GPU_PEAKS.pop(idx, None)
    torch.cuda.reset_peak_memory_stats(idx)


def measure_peak(fn: Callable[[], Any], device: torch.device | str) -> int:
    """Peak bytes allocated while ``fn()`` runs, above what was allocated before.

    On CUDA: ``torch.cuda.max_memory_allocated`` (kernel workspaces included; the peak before is
    kept for :func:`gpu_peak`). Elsewhere: the storages of the tensors the ops create, counted
    while they live (a dispatch mode).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        torch.cuda.synchronize(idx)
        _GPU_PEAKS[idx] = gpu_peak(idx)
        before = torch.cuda.memory_allocated(idx)
        torch.cuda.reset_peak_memory_stats(idx)
        fn()
        torch.cuda.synchronize(idx)
        return max(0, torch.cuda.max_memory_allocated(idx) - before)
    meter = _LiveTensors()
    with meter:
        fn()
    return meter.peak


# -------------------------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class BatchPlan:
    """The batch size chosen, the activation bytes one image takes, and why, in words."""

    size: int
    per_image: int
    why: str

    @property
    def bytes(self) -> int:
        """Bytes one batch's activations take (``size * per_image``)."""
        return self.size * self.per_image


def plan_batch(per_image: int, room: int, device: torch.device | str, *, free: int | None = None,
               given: int | None = None) -> BatchPlan:
    """The batch size for images whose activations take ``per_image`` bytes.

    Args:
        room: bytes of the memory budget left for computing (one batch takes at most
            ``BATCH_SHARE`` of it).
        per_image: 0 when it could not be measured (then the default batch).
        free: CUDA: free GPU memory now (one batch takes at most ``FREE_SHARE`` of it).
        given: a batch size the caller chose (kept as it is).
    Returns:
        A power of two in ``[MIN_BATCH, MAX_BATCH]`` (or ``given``), with the reason.
    """
    dev = torch.device(device)
    per = max(1, int(per_image))
    if given is not None:
        return BatchPlan(int(given), per, f"batch {given} (given)")
    cap = default_batch_size(dev)
    if per_image <= 0:
        return BatchPlan(cap, 0, f"batch {cap}: the default for {dev.type} (the activations were not measured)")
    limit, what = int(max(0, room) * BATCH_SHARE), f"{BATCH_SHARE:.0%} of the {_mib(room)} left in the memory budget"
    if free is not None and free * FREE_SHARE < limit:
        limit, what = int(free * FREE_SHARE), f"{FREE_SHARE:.0%} of the {_mib(free)} of free GPU memory"
    fit = limit // per
    size = max(MIN_BATCH, min(cap, 1 << (max(1, fit).bit_length() - 1)))
    if fit >= cap:
        why = f"batch {size}: the largest for {dev.type}; one image's activations take {_mib(per)}"
    elif fit < MIN_BATCH:
        why = (f"batch {size}, the smallest: {_mib(per)} of activations per image, and {what} holds fewer "
               f"than {MIN_BATCH} images (this batch takes {_mib(size * per)}; give a larger memory budget)")
    else:
        why = f"batch {size}: {_mib(per)} of activations per image within {what}"
    return BatchPlan(size, per, why)


def _mib(n: float) -> str:
    return f"{n / 2 ** 20:.1f} MiB" if n >= 2 ** 20 else f"{n / 2 ** 10:.1f} KiB"


# ------------------------------------------------------------------------------------------ precision
@dataclass(frozen=True)
class Precision:
    """How scores are computed: ``name`` (``"exact"`` or ``"fast"``), the autocast dtype (None:
    fp32), whether the model and its inputs are channels_last, and the tolerance of the fast-path
    check (relative to the largest logit)."""

    name: str
    device_type: str
    autocast: torch.dtype | None
    channels_last: bool
    check_rtol: float

    @property
    def exact(self) -> bool:
        return self.name == "exact"

    def describe(self) -> str:
        if self.exact:
            return "exact (fp32, as a plain forward)"
        parts = ["channels_last"] + ([f"autocast {str(self.autocast).replace('torch.', '')}"] if self.autocast else [])
        return f"fast ({', '.join(parts)}; predictions may differ from fp32)"


@dataclass(frozen=True)
class PrecisionCheck:
    """Fast mode against exact fp32 on the first ``checked`` images: predictions that differ
    (``flips``) and the largest logit difference."""

    flips: int
    checked: int
    max_abs_diff: float

    def __str__(self) -> str:
        return (f"fast mode changes {self.flips} of {self.checked} predictions checked against fp32 "
                f"(largest logit difference {self.max_abs_diff:.3g})")


def precision_for(name: str, device: torch.device | str) -> Precision:
    """The :class:`Precision` called ``name`` on ``device`` (ValueError for another name)."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {name!r}; 'exact' (the default) scores "
                         "as a plain fp32 forward, 'fast' trades exactness for speed and reports its flip count")
    dev = torch.device(device)
    if name == "exact":
        return Precision("exact", dev.type, None, False, 1e-4)
    half = None
    if dev.type == "cuda":
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision("fast", dev.type, half, True, 5e-2 if half is not None else 1e-3)


@contextlib.contextmanager
def scoring(precision: Precision) -> Iterator[None]:
    """Scoring: ``torch.inference_mode``, and autocast where ``precision`` asks for it."""
    with torch.inference_mode():
        if precision.autocast is None:
            yield
        else:
            with torch.autocast(device_type=precision.device_type, dtype=precision.autocast):
                yield


def prepare_model(model: nn.Module, precision: Precision) -> nn.Module:
    """``model`` in the memory format ``precision`` asks for (in place; returned)."""
    return model.to(memory_format=torch.channels_last) if precision.channels_last else model


def prepare_input(x: torch.Tensor, precision: Precision) -> torch.Tensor:
    """``x (N, C, H, W)`` in the memory format ``precision`` asks for."""
    if precision.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x

"""The evaluator's memory budget, and where cached values go past it.

Everything the evaluator keeps per image (base logits, predictions, labels) and every cached
prefix activation is counted against one budget, in bytes of the memory the cache lives in
(RAM on the CPU, GPU memory on CUDA). A cache that does not fit what is left is either kept
in a memory-mapped file (:class:`SpillFolder`; ``spill="mmap"``, the default: reading it back
costs a disk read, far less than recomputing a deep prefix) or recomputed batch by batch
(``spill="recompute"``, also used when the spill folder lacks the room).

On the CPU a cache larger than :data:`RESIDENT_MAX` goes to the memory-mapped file even when the
budget has room for it: while RAM is free the kernel keeps its pages resident, and reading them
is as fast as reading the process's own memory (``benchmarks/streaming.py``: a score with
the cut's cache memory-mapped takes as long as with it in memory), but they are not
the process's memory: under pressure the kernel drops them instead of the process running out.
So the session's own memory stays flat in the number of images. GPU memory is not paged this way:
on CUDA a cache stays on the device while it fits the budget.

On the CPU a spill folder on a RAM disk (tmpfs, ramfs) holds its files in the same memory: there
a file saves nothing, so the evaluator neither maps large caches first nor spills past the budget
into it (it recomputes instead), and ``cache_info`` says so. On CUDA such a file still keeps a
cache out of GPU memory, so it is used.
"""
from __future__ import annotations

import ctypes
import functools
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import torch

__all__ = ["MemoryBudget", "SpillFolder", "default_budget", "filesystem_type", "mount_type", "parse_bytes", "release_heap",
           "RAM_FILESYSTEMS", "RESIDENT_MAX", "SPILL_MODES"]

SPILL_MODES = ("mmap", "recompute")
RAM_SHARE = 0.4  # of the RAM available now, when no budget is given
GPU_SHARE = 0.5  # of the free GPU memory, when no budget is given
MIN_DEFAULT = 256 * 2 ** 20
RESIDENT_MAX = 256 * 2 ** 20  # on the CPU, a larger cache goes to the memory-mapped file even within the budget
RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})  # a file there is memory
MOUNTINFO = Path("/proc/self/mountinfo")
_UNITS = {"": 1, "b": 1, "k": 10 ** 3, "kb": 10 ** 3, "m": 10 ** 6, "mb": 10 ** 6, "g": 10 ** 9, "gb": 10 ** 9,
          "t": 10 ** 12, "tb": 10 ** 12, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_bytes(value: int | str, name: str = "memory_budget") -> int:
    """``4096``, ``"512MiB"``, ``"4GiB"``, ``"1.5 GB"`` -> bytes (``int``).

    Raises:
        ValueError: not a non-negative size with a known unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB).
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a size such as '4GiB' or a number of bytes, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
        return value
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ValueError(f"{name} {value!r} is not a size: write e.g. '4GiB', '512MB' or a number of bytes")
    return int(float(m.group(1)) * _UNITS[unit])


def available_ram() -> int | None:
    """Bytes of RAM available now (psutil when installed, else /proc/meminfo), or None."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def default_budget(device: torch.device) -> int:
    """``GPU_SHARE`` of the free memory of a CUDA device, else ``RAM_SHARE`` of the available RAM
    (at least 256 MiB; 2 GiB when neither can be read)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(MIN_DEFAULT, int(free * GPU_SHARE))
    ram = available_ram()
    return max(MIN_DEFAULT, int(ram * RAM_SHARE)) if ram is not None else 2 * 2 ** 30


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    if os.name != "posix":
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the symbols already loaded in this process: its C library's
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_heap() -> bool:
    """Give the heap memory this process has freed back to the OS; returns whether it could.

    glibc keeps freed blocks below its mmap threshold (which grows up to 32 MiB as blocks are
    freed) in its arenas for reuse: batch after batch of activations cached (copied into a
    memory-mapped file and freed, or kept between freed temporaries) leaves gigabytes held by the
    process though nothing uses them (docs/scale.md: up to 3.3 GiB over the budget for ResNet-50
    at 224 px before the caches trimmed). ``malloc_trim(0)`` returns them; it is a no-op (False)
    without glibc.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class MemoryBudget:
    """Bytes granted to named holders, never more than ``total`` in all, except ``force``d ones
    (what the evaluator cannot work without: base logits, labels, predictions).

    Example:
        >>> b = MemoryBudget("1GiB"); b.reserve("cut layer3", 600 * 2**20)
        True
        >>> b.reserve("cut layer4", 600 * 2**20), b.used
        (False, 629145600)
    """

    def __init__(self, total: int | str) -> None:
        self.total = parse_bytes(total)
        self.held: dict[str, int] = {}

    @property
    def used(self) -> int:
        return sum(self.held.values())

    def reserve(self, what: str, nbytes: int, *, force: bool = False) -> bool:
        """Grant ``nbytes`` to ``what`` if they fit (or ``force``); returns whether granted."""
        if not force and self.used - self.held.get(what, 0) + nbytes > self.total:
            return False
        self.held[what] = nbytes
        return True

    def release(self, what: str) -> None:
        self.held.pop(what, None)

    def __repr__(self) -> str:
        return f"MemoryBudget({self.used / 2 ** 20:.1f} of {self.total / 2 ** 20:.1f} MiB used)"


def filesystem_type(path: str | Path, mountinfo: str | None = None) -> str | None:
    """The type of the file system that holds ``path`` (``"ext4"``, ``"tmpfs"`` ...), from
    ``/proc/self/mountinfo`` (or the given text of one); None where that is not known (not Linux).

    The mount is the one whose device is ``path``'s (``os.stat().st_dev``), else the deepest
    mount point above ``path``.
    """
    if mountinfo is None:
        try:
            mountinfo = os.fsdecode(MOUNTINFO.read_bytes())
        except (OSError, ValueError):
            return None
    try:
        st = os.stat(path)
        dev: str | None = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    except (OSError, AttributeError):
        dev = None
    return mount_type(os.path.realpath(path), mountinfo, dev)


def mount_type(target: str, mountinfo: str, dev: str | None = None) -> str | None:
    """The file system type of the absolute path ``target`` in the text of a ``mountinfo`` file:
    the last line of device ``dev`` (``"major:minor"``) when given and listed, else that of the
    deepest mount point above ``target`` (of equal ones, the later: it is mounted on top).

    Example:
        >>> mount_type("/dev/shm/x", "25 24 0:23 / /dev/shm rw - tmpfs tmpfs rw")
        'tmpfs'
    """
    by_dev, best, by_path = None, "", None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, kind = left.split(), right.split()[:1]
        if not sep or len(fields) < 5 or not kind:
            continue
        if dev is not None and fields[2] == dev:
            by_dev = kind[0]
        mount = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])  # "\040" is a space
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, by_path = mount, kind[0]
    return by_dev if by_dev is not None else by_path


class SpillFolder:
    """Tensors backed by files in a private folder under ``root`` (memory-mapped, shared): the
    kernel pages them in and out, so they do not count against the budget.

    Each file is unlinked as soon as it is mapped where the OS allows it (POSIX), so it
    disappears when its tensor is freed, even after a crash; :meth:`close` removes the folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.dir: Path | None = None
        self.bytes = 0
        self._fs: str | None = None

    @property
    def in_memory(self) -> bool:
        """Whether the folder is on a RAM disk (:data:`RAM_FILESYSTEMS`): its files are memory."""
        if self._fs is None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass
            self._fs = filesystem_type(self.root) or ""
        return self._fs in RAM_FILESYSTEMS

    def room_for(self, nbytes: int) -> bool:
        """Whether the folder can take ``nbytes`` more (with 10% and 1 GiB to spare on its disk)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.root).free
        except OSError:
            return False
        return nbytes * 1.1 + 2 ** 30 < free

    def tensor(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised ``shape`` tensor of ``dtype`` on the CPU, backed by a new file."""
        if self.dir is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix="evaluator-", dir=self.root))
        path = self.dir / f"{uuid.uuid4().hex}.bin"
        numel = 1
        for s in shape:
            numel *= int(s)
        size = max(numel, 1) * torch.empty((), dtype=dtype).element_size()
        # Take the disk space now: a sparse file that cannot grow while it is written through the
        # mapping kills the process (SIGBUS) instead of raising.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "posix_fallocate"):  # POSIX; elsewhere the file grows as it is written
                os.posix_fallocate(fd, 0, size)
        except OSError as e:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise OSError(e.errno, f"no room for a {size / 2 ** 20:.1f} MiB cache file in {self.dir} ({e.strerror}): "
                          "free disk space there, set $WORKBENCH_CACHE to a larger disk, or pass "
                          "spill='recompute'") from e
        os.close(fd)
        t = torch.from_file(str(path), shared=True, size=max(numel, 1), dtype=dtype)[:numel].view(shape)
        try:
            os.unlink(path)  # the mapping stays valid; the file goes with the tensor
        except OSError:
            pass
        self.bytes += numel * t.element_size()
        return t

    def copy(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (any device) copied into a file-backed CPU tensor."""
        out = self.tensor(tuple(t.shape), t.dtype)
        out.copy_(t)
        return out

    def close(self) -> None:
        """Remove the folder (files still mapped on non-POSIX systems go when their tensors do)."""
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

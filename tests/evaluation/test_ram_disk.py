"""On the CPU a spill folder on a RAM disk (tmpfs) is memory: the evaluator neither maps large
caches into it nor spills past the budget into it, and says why; on CUDA it still takes them."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

from workbench.evaluation import Evaluator, budget
from workbench.evaluation.budget import MemoryBudget, SpillFolder, filesystem_type, mount_type
from workbench.evaluation.cache_store import Store

MOUNTINFO = """22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683772k
30 24 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw
40 27 0:30 / /mnt/scratch\\040disk rw shared:5 - xfs /dev/vdb rw
41 27 0:31 / /mnt/scratch\\040disk/ram rw - tmpfs tmpfs rw
not a mountinfo line
"""


@pytest.fixture
def ram_rule(monkeypatch):
    monkeypatch.setattr(budget, "RAM_FILESYSTEMS", frozenset({"tmpfs", "ramfs"}))  # conftest turns it off


@pytest.fixture
def fs(monkeypatch):
    """Set the file system type every folder reports."""
    def set_type(kind: str) -> None:
        monkeypatch.setattr(budget, "filesystem_type", lambda path, mountinfo=None: kind)
    return set_type


def test_the_mount_of_a_path_is_its_device_else_the_deepest_mount_point():
    assert mount_type("/dev/shm/spill/x", MOUNTINFO) == "tmpfs"
    assert mount_type("/devices", MOUNTINFO) == "ext4"  # a name that only starts like a mount point
    assert mount_type("/mnt/scratch disk/a", MOUNTINFO) == "xfs"  # "\040" is a space; optional fields skipped
    assert mount_type("/mnt/scratch disk/ram/a", MOUNTINFO) == "tmpfs"
    assert mount_type("/mnt/scratch disk/ram/a", MOUNTINFO, dev="0:30") == "xfs"  # the device decides
    assert mount_type("/home/me", MOUNTINFO, dev="9:9") == "ext4"  # an unlisted device: the path decides
    assert mount_type("/home/me", "garbage line\n") is None


def test_on_the_cpu_a_spill_folder_on_a_ram_disk_takes_no_cache(tmp_path, monkeypatch, ram_rule, fs):
    monkeypatch.setattr(SpillFolder, "room_for", lambda self, nbytes: True)  # whatever the disk has free
    fs("tmpfs")
    folder = SpillFolder(tmp_path / "spill")
    assert folder.in_memory
    store = Store(MemoryBudget(2 ** 21), "mmap", folder, torch.device("cpu"), resident_max=2 ** 20)
    assert store.place("cut", 2 ** 20 + 1) == "memory"  # over resident_max, but a file would be memory too
    assert "RAM disk" in store.why("cut")
    assert store.place("big", 2 ** 21) == "recompute"  # over the budget: recomputed, not a file in RAM
    assert "RAM disk" in store.why("big") and "$WORKBENCH_CACHE" in store.why("big")
    gpu = Store(MemoryBudget(2 ** 21), "mmap", SpillFolder(tmp_path / "g"), torch.device("cuda"), resident_max=2 ** 20)
    assert gpu.place("big", 2 ** 22) == "mmap"  # on CUDA a file in host memory still spares the GPU's
    fs("ext4")
    disk = SpillFolder(tmp_path / "disk")
    on_disk = Store(MemoryBudget(2 ** 21), "mmap", disk, torch.device("cpu"), resident_max=2 ** 30)
    assert not disk.in_memory and on_disk.place("big", 2 ** 22) == "mmap"  # the over-budget branch
    assert on_disk.why("big") == "over the memory budget"


def test_the_evaluator_tells_why_a_cache_is_recomputed_on_a_ram_disk(tmp_path, monkeypatch, ram_rule, fs,
                                                                     tiny_model, fashion_small):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    fs("tmpfs")
    data = fashion_small.subset(test=200)
    ev = Evaluator(tiny_model, data, layers="chain2", device="cpu", batch_size=50, memory_budget=2 ** 16,
                   score_cache=None)
    [where] = ev.cache_info().values()
    assert "recomputed" in where and "RAM disk" in where and "$WORKBENCH_CACHE" in where
    plain = Evaluator(tiny_model, data, layers="chain2", device="cpu", batch_size=50, score_cache=None)
    assert torch.equal(ev.base_logits, plain.base_logits)  # the same scores, only kept elsewhere
    ev.close()
    plain.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/mountinfo") or shutil.which("stat") is None,
                    reason="Linux with coreutils")
@pytest.mark.parametrize("where", ["tmp", "/proc/self", "/dev/shm"])
def test_this_machines_ram_disks_agree_with_coreutils(tmp_path, where):
    path = str(tmp_path) if where == "tmp" else where
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    kind = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True, check=True).stdout.strip()
    got = filesystem_type(path)
    # the names differ for some disks (stat: "ext2/ext3", "overlayfs"; mountinfo: "ext4", "overlay"),
    # never for the RAM disks and proc
    if kind in {"tmpfs", "ramfs", "proc"} or got in {"tmpfs", "ramfs", "proc"}:
        assert got == kind
    else:
        assert got is not None and got not in {"tmpfs", "ramfs"}

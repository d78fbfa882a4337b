"""A spill folder on a RAM disk (tmpfs) is memory: the evaluator neither maps large caches into it
nor spills past the budget into it, and says why."""
from __future__ import annotations

import os

import pytest
import torch

from workbench.evaluation import budget
from workbench.evaluation.budget import MemoryBudget, SpillFolder, filesystem_type
from workbench.evaluation.cache_store import Store

MOUNTINFO = """22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683772k
40 27 0:30 / /mnt/scratch\\040disk rw - xfs /dev/vdb rw
41 27 0:31 / /mnt/scratch\\040disk/ram rw - tmpfs tmpfs rw
"""


@pytest.fixture
def ram_rule(monkeypatch):
    monkeypatch.setattr(budget, "RAM_FILESYSTEMS", frozenset({"tmpfs", "ramfs"}))  # conftest turns it off


def test_the_deepest_mount_names_the_file_system():
    assert filesystem_type("/dev/shm/spill/x", MOUNTINFO) == "tmpfs"
    assert filesystem_type("/devices", MOUNTINFO) == "ext4"  # a name that only starts like a mount point
    assert filesystem_type("/mnt/scratch disk/a", MOUNTINFO) == "xfs"  # "\040" is a space
    assert filesystem_type("/mnt/scratch disk/ram/a", MOUNTINFO) == "tmpfs"
    assert filesystem_type("/home/me", "garbage line\n") is None


def test_a_spill_folder_on_a_ram_disk_takes_no_cache(tmp_path, monkeypatch, ram_rule):
    folder = SpillFolder(tmp_path / "spill")
    monkeypatch.setattr(budget, "filesystem_type", lambda path, mountinfo=None: "tmpfs")
    assert folder.in_memory
    store = Store(MemoryBudget(2 ** 21), "mmap", folder, torch.device("cpu"), resident_max=2 ** 20)
    assert store.place("cut", 2 ** 20 + 1) == "memory"  # over resident_max, but a file would be memory too
    assert store.place("big", 2 ** 21) == "recompute"  # over the budget: recomputed, not a file in RAM
    assert "RAM disk" in store.why("big") and "$WORKBENCH_CACHE" in store.why("big")
    disk = SpillFolder(tmp_path / "disk")
    monkeypatch.setattr(budget, "filesystem_type", lambda path, mountinfo=None: "ext4")
    on_disk = Store(MemoryBudget(2 ** 21), "mmap", disk, torch.device("cpu"), resident_max=2 ** 20)
    assert not disk.in_memory and on_disk.place("cut", 2 ** 20 + 1) == "mmap"
    assert on_disk.place("big", 2 ** 22) == "mmap" and "RAM disk" not in on_disk.why("big")


@pytest.mark.skipif(not os.path.exists("/proc/self/mountinfo"), reason="Linux only")
def test_this_machines_mounts_are_read(tmp_path, ram_rule):
    assert filesystem_type("/proc/self") == "proc"
    assert SpillFolder(tmp_path / "spill").in_memory == (filesystem_type(tmp_path) in {"tmpfs", "ramfs"})

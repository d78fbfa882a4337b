"""Data that stays on disk, caches within a memory budget, and base scores kept for reopening.

Tiny models and tiny ImageFolders of PNG files written in tmp_path; every comparison of
scores is ``torch.equal`` on the CPU (the streamed and in-memory paths run the same batches).
"""
from __future__ import annotations

import platform
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from workbench.data import StreamedSplitError, as_bundle
from workbench.evaluation import Evaluator
from workbench.evaluation import base_scores, cache_store
from workbench.evaluation.budget import MemoryBudget, SpillFolder, parse_bytes, release_heap
from workbench.models import ModelAdapter
from workbench.session import EditSession

BS = 16


def write_folder(root: Path, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (N, C, H, W) uint8`` as PNGs under ``root/<label>/``; returns ``(x, y)`` in the order an
    ImageFolder lists them (by class folder, then file name)."""
    order = []
    for i, (img, label) in enumerate(zip(x, y.tolist())):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        a = img.permute(1, 2, 0).numpy()
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(root / str(label) / f"{i:04d}.png")
        order.append((str(label), f"{i:04d}.png", i))
    idx = torch.tensor([i for *_, i in sorted(order)])
    return x[idx], y[idx]


def small_cnn(channels: int = 3, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)).eval()


def random_folder(root: Path, n: int = 24, size: int = 64, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return write_folder(root, x, torch.arange(n) % classes)


def count_forwards(model: nn.Module) -> list[int]:
    """A counter of leaf-module calls (hooks survive the evaluator's deepcopy of the model)."""
    calls = [0]

    def hook(*_):
        calls[0] += 1
    for m in model.modules():
        if not list(m.children()):
            m.register_forward_hook(hook)
    return calls


@pytest.fixture
def fashion_folder(tmp_path, fashion_small):
    x, y = write_folder(tmp_path / "fashion", fashion_small.test_x[:60], fashion_small.test_y[:60])
    return tmp_path / "fashion", x, y


def test_streamed_and_in_memory_data_give_identical_predictions_reports_and_edits(tiny_model_dir, fashion_folder):
    from workbench.training import load_model

    root, x, y = fashion_folder
    assert set(y.tolist()) == set(range(10))  # every class has a folder: the folder's labels are y
    norm = dict(mean=(0.286,), std=(0.353,))
    in_memory = as_bundle((x, y), val_fraction=0, classes=[str(i) for i in range(10)], **norm)
    streamed = EditSession(load_model(tiny_model_dir)[0], str(root), device="cpu", **norm)
    memory = EditSession(load_model(tiny_model_dir)[0], in_memory, device="cpu")
    assert streamed.bundle.is_streamed("test") and not memory.bundle.is_streamed("test")
    assert torch.equal(streamed.labels, y) and torch.equal(streamed.evaluator.raw_images(range(60)), x)
    assert torch.equal(streamed.evaluator.base_logits, memory.evaluator.base_logits)
    assert streamed.current_errors() == memory.current_errors()

    i = int(torch.nonzero(streamed.base_preds != streamed.labels).flatten()[0])
    for s in (streamed, memory):
        s.edit_index(i, int(y[i]), method="gd", lr=0.05, layers="chain3")
    a, b = streamed.history[-1], memory.history[-1]
    assert a.result.steps == b.result.steps
    assert all(torch.equal(a.result.after[k], b.result.after[k]) for k in a.result.after)
    assert torch.equal(a.report.preds_after, b.report.preds_after) and a.report.drawdown == b.report.drawdown
    assert torch.equal(streamed.raw_images()[i], memory.raw_images()[i])  # display images too


def test_a_streamed_split_refuses_tensor_use_with_the_fix(tmp_path):
    random_folder(tmp_path, n=6)
    b = as_bundle(str(tmp_path))
    for use in (lambda: b.test_x[:2], lambda: b.split("test"), lambda: torch.cat([b.test_x]), lambda: b.test_x.float(),
                lambda: b.test_x.size(0)):
        with pytest.raises((StreamedSplitError, AttributeError), match="image_source"):
            use()
    src = b.image_source("test")
    assert len(src) == 6 and src.images([5, 0]).shape == (2, 3, 64, 64)
    assert torch.equal(torch.cat(list(src.batches(batch_size=4, workers=0))), src.images(range(6)))


def test_a_dataset_streams_when_asked_with_the_same_split_and_scores():
    from torch.utils.data import TensorDataset

    x = torch.randint(0, 256, (40, 3, 16, 16), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    y = torch.arange(40) % 3
    norm = dict(mean=(.5,) * 3, std=(.25,) * 3)
    streamed, memory = as_bundle(TensorDataset(x, y), stream=True, **norm), as_bundle((x, y), **norm)
    assert streamed.is_streamed("test") and streamed.is_streamed("val") and not memory.is_streamed("test")
    for split in ("test", "val"):
        assert torch.equal(streamed.image_source(split).images(range(len(memory.labels(split)))), memory.split(split)[0])
        assert torch.equal(streamed.labels(split), memory.labels(split))
    model = small_cnn()
    a = Evaluator(model, streamed, layers="2", device="cpu", batch_size=8, workers=0)
    b = Evaluator(model, memory, layers="2", device="cpu", batch_size=8)
    assert torch.equal(a.base_logits, b.base_logits)


def test_memory_budget_is_respected_and_results_are_identical(tmp_path, monkeypatch, tiny_model, fashion_small):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    data = fashion_small.subset(test=200)
    cases = [(tiny_model, data, "chain2", ["chain2.0.conv1.weight"])]
    x = torch.randint(0, 256, (200, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cnn = small_cnn()
    cases.append((cnn, as_bundle((x, torch.arange(200) % 3), val_fraction=0, mean=(.5,) * 3, std=(.25,) * 3), "2",
                  ["2.weight"]))
    for model, bundle, group, names in cases:
        big = Evaluator(model, bundle, layers=group, device="cpu", batch_size=BS)
        params = {n: v + 0.01 for n, v in model.named_parameters() if n in names}
        want = big.logits_for(params)
        assert "in memory" in next(iter(big.cache_info().values()))
        records = big.budget.held["per-image records"]
        budget = records + 1024  # room for the per-image records, none for the prefix
        for spill in ("mmap", "recompute"):
            ev = Evaluator(model, bundle, layers=group, device="cpu", batch_size=BS, memory_budget=budget, spill=spill)
            assert torch.equal(ev.base_logits, big.base_logits)
            assert torch.equal(ev.logits_for(params), want)
            assert torch.equal(ev.preds_on(params, [7, 3, 150]), want[[7, 3, 150]].argmax(1))
            assert ev.cached_bytes() <= budget < big.cached_bytes()
            where = next(iter(ev.cache_info().values()))
            assert ("memory-mapped" in where) == (spill == "mmap") and ("not cached" in where) == (spill == "recompute")
            ev.close()
    assert not any((tmp_path / "cache" / "spill").glob("evaluator-*"))  # spill folders removed on close
    assert parse_bytes("4GiB") == 4 * 2 ** 30 and parse_bytes("1.5MB") == 1_500_000
    with pytest.raises(ValueError, match="4GiB"):
        parse_bytes("four gigs")


def test_on_the_cpu_a_cache_over_resident_max_goes_to_the_file_even_within_the_budget(tmp_path, monkeypatch,
                                                                                     tiny_model, fashion_small):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    data = fashion_small.subset(test=200)
    params = {"chain2.0.conv1.weight": dict(tiny_model.named_parameters())["chain2.0.conv1.weight"] + 0.01}
    held = Evaluator(tiny_model, data, layers="chain2", device="cpu", batch_size=BS)  # 256 MiB: a small cache stays
    assert "in memory" in next(iter(held.cache_info().values()))
    size = held.cached_bytes() - held.budget.held["per-image records"]
    paged = Evaluator(tiny_model, data, layers="chain2", device="cpu", batch_size=BS, resident_max=size - 1)
    where = next(iter(paged.cache_info().values()))
    assert "memory-mapped" in where and f"larger than {(size - 1) / 2 ** 20:.4g} MiB" in where
    assert paged.cached_bytes() == held.budget.held["per-image records"]  # only the records count as memory
    assert torch.equal(paged.base_logits, held.base_logits) and torch.equal(paged.logits_for(params),
                                                                            held.logits_for(params))
    at_limit = Evaluator(tiny_model, data, layers="chain2", device="cpu", batch_size=BS, resident_max=size)
    assert "in memory" in next(iter(at_limit.cache_info().values()))
    for ev in (held, paged, at_limit):
        ev.close()
    with pytest.raises(ValueError, match="resident_max 'lots' is not a size"):
        Evaluator(tiny_model, data, layers="chain2", device="cpu", resident_max="lots")
    # GPU memory is not paged by the kernel: on CUDA a cache stays on the device while the budget has room
    for device, want in (("cpu", "mmap"), ("cuda", "memory")):
        store = cache_store.Store(MemoryBudget("1GiB"), "mmap", SpillFolder(tmp_path / "spill"), torch.device(device),
                                  resident_max=2 ** 20)
        assert store.place("cut", 2 ** 21) == want
        assert store.place("small", 2 ** 19) == "memory" and store.reasons["small"] == "within the memory budget"


def test_a_cache_file_takes_its_disk_space_up_front_and_a_full_disk_is_an_error(tmp_path, monkeypatch):
    import errno
    import os

    folder = SpillFolder(tmp_path / "spill")
    t = folder.tensor((1000, 256), torch.float32)
    assert t.shape == (1000, 256) and folder.bytes == 1000 * 256 * 4
    if hasattr(os, "posix_fallocate"):
        def full(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "posix_fallocate", full)
        with pytest.raises(OSError, match=r"no room for a 1\.0 MiB cache file .*spill='recompute'"):
            folder.tensor((1024, 256), torch.float32)
        assert len(list(folder.dir.iterdir())) == 0  # the failed file is gone (the first was unlinked when mapped)
    folder.close()
    assert not (tmp_path / "spill").exists() or not any((tmp_path / "spill").iterdir())


def anon_mib() -> float:
    """This process's anonymous resident memory (``RssAnon``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_heap_memory_freed_in_batches_goes_back_to_the_os():
    big = torch.ones(16 * 2 ** 20 // 4)
    del big  # a freed 16 MiB block raises glibc's mmap threshold: 2 MiB batches now come from the heap
    blocks = [torch.ones(2 * 2 ** 20 // 4) for _ in range(300)]  # 600 MiB of 2 MiB batches
    kept = blocks[1::2]  # every other one stays: the freed ones lie between blocks in use
    before = anon_mib()
    del blocks
    assert release_heap()
    after = anon_mib()
    assert before - after > 200, (before, after)  # the 300 MiB freed are back once it returns (glibc keeps
    assert len(kept) == 150                       # them until a trim unless MALLOC_* settings say otherwise)


def test_filling_a_cache_gives_the_heap_back_after_each_batch(monkeypatch, tiny_model, fashion_small):
    trims: list[int] = []
    monkeypatch.setattr(cache_store, "release_heap", lambda: trims.append(1) or True)
    ends: list[int] = []
    monkeypatch.setattr(base_scores, "release_heap", lambda: ends.append(1) or True)
    data = fashion_small.subset(test=200)
    x = torch.randint(0, 256, (200, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cases = [(tiny_model, data, "chain2", "chain2.0.conv1.weight"),  # a stage cache (the project's ResNet)
             (small_cnn(), as_bundle((x, torch.arange(200) % 3), val_fraction=0, mean=(.5,) * 3, std=(.25,) * 3),
              "2", "2.weight")]  # a graph cache
    for model, bundle, group, name in cases:
        params = {name: dict(model.named_parameters())[name] + 0.01}
        for spill in ("mmap", "recompute", None):
            trims.clear()
            ev = Evaluator(model, bundle, layers=group, device="cpu", batch_size=BS,  # the base pass fills the
                           memory_budget=None if spill is None else 1, spill=spill or "mmap")  # cache at the cut
            where = next(iter(ev.cache_info().values()))
            assert ("memory-mapped" in where) == (spill == "mmap")
            assert len(trims) >= 200 // BS if spill != "recompute" else not trims  # kept: in a file or memory
            assert len(ends) == 1  # and once at the end of the base pass
            ends.clear()
            trims.clear()
            ev.logits_for(params)  # read back: nothing copied, nothing to give back
            assert not trims
            ev.close()


def test_base_scores_are_reused_on_reopen_and_invalidated_by_a_changed_weight_or_image(tmp_path):
    _, _ = random_folder(tmp_path / "data", n=24, size=16)
    model = small_cnn()
    calls = count_forwards(model)
    cache = tmp_path / "scores"

    def open_(m: nn.Module = model) -> Evaluator:
        bundle = as_bundle(str(tmp_path / "data"), mean=(.5,) * 3, std=(.25,) * 3)
        return Evaluator(m, bundle, layers="2", device="cpu", batch_size=BS, score_cache=cache)

    first = open_()
    assert calls[0] > 0 and not first.scores_from_cache and len(list(cache.glob("*.safetensors"))) == 1
    calls[0] = 0
    again = open_()
    assert calls[0] == 0 and again.scores_from_cache  # no forward pass on reopen
    for k in ("base_logits", "base_preds", "base_margins", "base_label_quality", "labels"):
        assert torch.equal(getattr(again, k), getattr(first, k))
    params = {"2.weight": model[2].weight + 0.01}
    assert torch.equal(again.logits_for(params), first.logits_for(params))  # the fast path is checked first

    with torch.no_grad():  # one weight changed: a new model, scored again
        model[0].weight[0, 0, 0, 0] += 0.5
    calls[0] = 0
    changed = open_()
    assert calls[0] > 0 and not changed.scores_from_cache

    path = sorted((tmp_path / "data").rglob("*.png"))[5]  # one image changed: the data differ, scored again
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(path)
    calls[0] = 0
    new_image = open_()
    assert calls[0] > 0 and not new_image.scores_from_cache
    plain = model(new_image.images(range(24)))
    assert torch.equal(new_image.base_logits.argmax(1), plain.argmax(1))
    assert not torch.equal(new_image.base_logits[5], changed.base_logits[5])

    target = new_image._scores.path(new_image._score_key)  # a corrupt file: ignored with a warning, rewritten
    target.write_bytes(b"not a safetensors file")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        rescored = open_()
    assert not rescored.scores_from_cache and torch.equal(rescored.base_logits, new_image.base_logits)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_().scores_from_cache


def test_image_folder_is_read_at_the_models_size_and_browsed_whole(tmp_path):
    x, y = random_folder(tmp_path / "own", n=20, size=64)
    model = small_cnn()
    seen: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[1:])))
    s = EditSession(model, str(tmp_path / "own"), device="cpu")  # the images' own size
    assert s.num_examples == 20 and torch.equal(s.labels, y)
    assert s.evaluator.raw_image(0).shape == (3, 64, 64) and set(seen) == {(3, 64, 64)}
    assert torch.equal(s.evaluator.raw_images(range(20)), x)
    assert s.raw_images()[3].shape == (3, 64, 64) and len(s.raw_images()) == 20

    random_folder(tmp_path / "big", n=20, size=80)  # the model's input size wins over the files'
    seen.clear()
    s = EditSession(ModelAdapter(model, input_shape=(3, 64, 64)), str(tmp_path / "big"), device="cpu")
    assert s.num_examples == 20 and set(seen) == {(3, 64, 64)}
    held = as_bundle(str(tmp_path / "big"), resize=64, val_fraction=0.25)  # a split only when asked for
    assert (len(held.labels("test")), len(held.labels("val"))) == (15, 5)


def test_thumbnails_are_made_at_display_size_and_few_are_kept(tmp_path):
    random_folder(tmp_path, n=12, size=64)
    b = as_bundle(str(tmp_path))
    view = b.display_view("test", size=32)
    view.kept = 4
    first = view[0]
    assert first.shape == (3, 32, 32) and first.dtype == torch.uint8 and len(view) == 12
    for i in range(1, 8):
        view[i]
    assert len(view._cache) == 4 and 0 not in view._cache
    assert torch.equal(view[0], first)

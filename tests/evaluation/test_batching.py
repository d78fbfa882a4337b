"""The batching policy (workbench/batching.py) and how the evaluator applies it, on the CPU.

Batch sizes follow the memory budget and one batch stays inside it (measured); scoring runs
under ``torch.inference_mode``; the exact precision is the default and equals a plain fp32
forward; the fast precision is opt-in and reports its flip count; pinned memory and
``non_blocking`` copies are for CUDA only.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from workbench.batching import (BATCH_SHARE, MAX_BATCH, MIN_BATCH, Transfer, measure_peak, plan_batch, precision_for, scoring,
                                transfer_for)
from workbench.data import as_bundle
from workbench.evaluation import Evaluator
from workbench.evaluation.compute_plan import BATCH_HOLDER, WEIGHTS_HOLDER
from workbench.models import predict_logits

N = 96


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()


def data(n: int = N, size: int = 32):
    x = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return as_bundle((x, torch.arange(n) % 4), val_fraction=0, mean=(.5,) * 3, std=(.25,) * 3)


def test_measure_peak_counts_the_tensors_alive_together():
    def fn():
        a = torch.zeros(1000)  # 4000 bytes
        b = a + 1  # 4000 more while a lives
        del a, b
        return torch.ones(500)  # 2000 bytes, after both are freed

    peak = measure_peak(fn, "cpu")
    assert 8000 <= peak < 10000


def test_plan_batch_is_a_power_of_two_within_the_room_and_the_cap():
    per = 3 * 2 ** 20
    sizes = []
    for room in (2 ** 20, 64 * 2 ** 20, 512 * 2 ** 20, 2 ** 34):
        plan = plan_batch(per, room, "cpu")
        sizes.append(plan.size)
        assert plan.size & (plan.size - 1) == 0 and MIN_BATCH <= plan.size <= MAX_BATCH["cpu"]
        assert plan.size == MIN_BATCH or plan.bytes <= room * BATCH_SHARE
        assert str(plan.size) in plan.why
    assert sizes == sorted(sizes) and sizes[0] == MIN_BATCH and sizes[-1] == MAX_BATCH["cpu"]
    assert "the smallest" in plan_batch(per, 2 ** 20, "cpu").why and "larger memory budget" in \
        plan_batch(per, 2 ** 20, "cpu").why
    assert plan_batch(per, 2 ** 36, "cuda").size == MAX_BATCH["cuda"]
    assert plan_batch(per, 2 ** 36, "cuda", free=64 * 2 ** 20).size < MAX_BATCH["cuda"]  # free memory binds
    assert plan_batch(per, 2 ** 20, "cpu", given=48).size == 48


def test_a_smaller_budget_gives_a_smaller_batch_and_one_batch_stays_inside_the_budget():
    model, bundle = cnn(), data()
    plans = {}
    for budget in (64 * 2 ** 20, 12 * 2 ** 20):
        ev = Evaluator(model, bundle, layers="2", device="cpu", memory_budget=budget)
        plan = ev.batch_plan
        plans[budget] = plan
        assert ev.budget.held[BATCH_HOLDER] == plan.bytes and WEIGHTS_HOLDER in ev.budget.held
        x = ev.images(range(plan.size))
        with scoring(ev.precision):
            measured = measure_peak(lambda: ev.model(x), "cpu")  # one batch, as the evaluator runs it
        held = ev.budget.held["per-image records"] + ev.budget.held[WEIGHTS_HOLDER]
        assert measured <= plan.bytes and held + measured <= budget
        assert str(plan.size) in plan.why
        ev.close()
    assert MIN_BATCH <= plans[12 * 2 ** 20].size < plans[64 * 2 ** 20].size


def test_every_scoring_pass_runs_under_inference_mode(tiny_model, fashion_small):
    seen: list[bool] = []
    cases = [(cnn(), data(), "2"), (tiny_model, fashion_small.subset(test=64), "chain3")]
    for model, bundle, group in cases:
        hook = model.register_forward_hook(lambda m, i, o: seen.append(torch.is_inference_mode_enabled()))
        ev = Evaluator(model, bundle, layers=group, device="cpu", batch_size=16)
        params = {n: v + 0.01 for n, v in model.named_parameters() if n.startswith(group + ".")}
        ev.score(params)
        ev.preds_on(params, [0, 5, 9])
        ev.logits_for({n: v + 0.02 for n, v in params.items()})
        predict_logits(model, ev.images(range(8)))
        hook.remove()
    assert len(seen) > 10 and all(seen)


def test_exact_is_the_default_and_equals_a_plain_fp32_forward():
    model, bundle = cnn(), data()
    ev = Evaluator(model, bundle, layers="2", device="cpu")
    assert ev.precision.name == "exact" and ev.precision_check is None
    x = bundle.normalize(bundle.test_x)
    b = ev.batch_size
    with torch.no_grad():
        plain = torch.cat([model(x[i:i + b]) for i in range(0, len(x), b)])
    assert torch.equal(ev.base_logits, plain)


def test_fast_mode_is_opt_in_and_reports_its_flips_against_fp32(tmp_path):
    model, bundle = cnn(), data()
    cache = tmp_path / "scores"
    exact = Evaluator(model, bundle, layers="2", device="cpu", score_cache=cache)
    fast = Evaluator(model, bundle, layers="2", device="cpu", score_cache=cache, precision="fast")
    assert not fast.scores_from_cache  # the exact scores are never served to the fast mode
    assert fast.precision.channels_last and fast.precision.autocast is None  # CPU: channels_last only
    check = fast.precision_check
    assert check is not None and check.checked == min(N, 64)
    flips = int((fast.base_preds[:check.checked] != exact.base_preds[:check.checked]).sum())
    assert check.flips == flips and "predictions" in str(check)
    assert check.max_abs_diff == pytest.approx(float((fast.base_logits[:check.checked] -
                                                      exact.base_logits[:check.checked]).abs().max()), abs=1e-6)
    params = {"2.weight": model[2].weight + 0.01}
    assert (fast.preds_for(params) != exact.preds_for(params)).float().mean() <= 0.1
    again = Evaluator(model, bundle, layers="2", device="cpu", score_cache=cache, precision="fast")
    assert again.scores_from_cache and torch.equal(again.base_logits, fast.base_logits)
    with pytest.raises(ValueError, match="'exact'.*'fast'"):
        Evaluator(model, bundle, layers="2", device="cpu", precision="half")


def test_pinned_memory_and_non_blocking_copies_are_for_cuda_only():
    assert transfer_for("cpu") == Transfer(pin_memory=False, non_blocking=False)
    assert transfer_for(torch.device("cuda")) == Transfer(pin_memory=True, non_blocking=True)
    assert transfer_for("cuda:1") == Transfer(pin_memory=True, non_blocking=True)
    assert transfer_for("mps") == Transfer(pin_memory=False, non_blocking=False)
    assert precision_for("exact", "cuda").autocast is None  # exact never autocasts, on any device


def test_a_planned_pass_starts_with_small_batches_and_every_pass_uses_the_same_bounds(tmp_path):
    from workbench.evaluation.cache_store import LEAD_IMAGES

    model, bundle = cnn(), data(n=N + 40)
    ev = Evaluator(model, bundle, layers="2", device="cpu")  # the batch is planned (the probe measures it)
    assert ev.batch_size > MIN_BATCH
    bounds = ev._data.bounds()
    lead = [(i, i + MIN_BATCH) for i in range(0, LEAD_IMAGES, MIN_BATCH)]
    assert bounds[:len(lead)] == lead and bounds[len(lead)][0] == LEAD_IMAGES
    assert [j for _, j in bounds][-1] == N + 40 and all(j - i <= ev.batch_size for i, j in bounds[len(lead):])
    seen = [(i, j) for i, j, _ in ev._data.stream()]
    assert seen == bounds  # the images of each batch are the rows i:j (checked through the logits below)
    given = Evaluator(model, bundle, layers="2", device="cpu", batch_size=ev.batch_size)
    assert given._data.bounds()[0] == (0, min(ev.batch_size, N + 40))  # a batch size you give is kept from the start
    assert torch.equal(ev.base_preds, given.base_preds)
    assert torch.allclose(ev.base_logits, given.base_logits, atol=1e-5)


def test_a_cut_cache_reserves_the_bytes_of_every_image_whatever_the_first_batchs_size():
    model, bundle = cnn(), data(n=N + 40)
    ev = Evaluator(model, bundle, layers="2", device="cpu")  # planned batch: the first batches are smaller
    assert ev._data.bounds()[0] == (0, MIN_BATCH) and ev.batch_size > MIN_BATCH
    split = ev.adapter.split(ev.adapter.params("2"))
    with torch.no_grad():
        one = split.prefix(bundle.normalize(bundle.test_x[:1]))
    per_image = sum(c.element_size() * c.numel() for c in one if isinstance(c, torch.Tensor))
    held = {k: v for k, v in ev.budget.held.items() if k.startswith("values crossing the cut")}
    assert list(held.values()) == [per_image * (N + 40)]


def test_an_evaluator_and_its_caches_are_freed_as_soon_as_it_is_dropped():
    """No reference cycle: the cut cache (the largest memory a session holds) goes with the last
    reference to its evaluator, without waiting for Python's cycle collector."""
    import gc
    import weakref

    model, bundle = cnn(), data()
    Evaluator(model, bundle, layers="2", device="cpu")  # torch's lazy imports on a first forward leave frame
    gc.collect()  # cycles (torch.fx.wrap keeps its own frame) that hold that first caller until a collection
    gc.disable()
    try:
        ev = Evaluator(model, bundle, layers="2", device="cpu")
        ev.score({n: ev.model.get_parameter(n).detach() + 0.01 for n in ev.adapter.params("2")})
        gone = weakref.ref(ev), weakref.ref(ev.edited), weakref.ref(ev._prefix)
        del ev
        assert [r() is None for r in gone] == [True, True, True]
    finally:
        gc.enable()

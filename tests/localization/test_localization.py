"""Critical-neuron search: flips and stops, hand removal agrees, seeded, never modifies the model."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from workbench.localization import critical_neurons, find_sites, masked, neuron_masks


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    return (set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
            and all(p.grad is None for p in model.parameters()) and _no_hooks(model))


@pytest.fixture()
def example(tiny_model, fashion_small):
    b = fashion_small
    x = b.normalize(b.test_x[:8])
    with torch.no_grad():
        pred = tiny_model(x).argmax(1)
    i = int((pred == b.test_y[:8]).nonzero()[0])  # a correctly predicted test image
    ref = (b.train_x[:512], b.train_y[:512])
    return x[i], int(pred[i]), ref, b.normalize


def _zero_by_hand(model: nn.Module, neurons, x: torch.Tensor) -> int:
    """Prediction on x with ``neurons`` zeroed by plain hooks (no library code): conv channels are
    zeroed at the BatchNorm that follows the conv (every conv of the ResNet has one)."""
    mods = dict(model.named_modules())
    bn_of = {n: n.replace("conv", "bn") if "conv" in n.split(".")[-1] else
             (n[:-1] + "1" if n.endswith("shortcut.0") else n.replace("stem.0", "stem.1")) for n in mods}
    by_hook: dict[str, list[int]] = {}
    for layer, idx in neurons:
        by_hook.setdefault(bn_of[layer], []).append(idx)
    handles = []
    for name, idxs in by_hook.items():
        def fn(_m, _i, out, idxs=idxs):
            out = out.clone()
            out[:, idxs] = 0
            return out
        handles.append(mods[name].register_forward_hook(fn))
    try:
        with torch.no_grad():
            return int(model(x.unsqueeze(0)).argmax())
    finally:
        for h in handles:
            h.remove()


def test_search_flips_the_prediction_and_stops(tiny_model, example):
    x, y, ref, norm = example
    res = critical_neurons(tiny_model, x, y, reference=ref, normalize=norm, repeats=3, max_neurons=None, seed=1)
    assert res.initial_prediction == y and res.flip_rate == 1.0
    assert all(r.flipped and r.stopped == "flipped" and r.prediction != y for r in res.repeats)
    assert res.flipped_to is not None and res.flipped_to != y
    assert res.count == pytest.approx(sum(res.counts) / 3) and min(res.counts) >= 1
    assert res.neurons == res.repeats[0].neurons and len(set(res.neurons)) == len(res.neurons)
    assert sum(res.layer_counts.values()) == pytest.approx(res.count)
    assert res.top_layer is not None and res.layer_counts[res.top_layer] == max(res.layer_counts.values())
    other = critical_neurons(tiny_model, x, (y + 1) % 10, reference=ref, normalize=norm, repeats=1)
    assert other.counts == (0,) and other.repeats[0].stopped == "not_predicted" and other.flipped_to == y
    # it stops at the first flip: one neuron fewer still predicts y
    for r in res.repeats:
        assert _zero_by_hand(tiny_model, r.neurons[:-1], x) == y


def test_removing_the_neurons_by_hand_flips_it_too(tiny_model, example):
    x, y, ref, norm = example
    res = critical_neurons(tiny_model, x, y, reference=ref, normalize=norm, repeats=2, seed=0)
    for r in res.repeats:
        assert _zero_by_hand(tiny_model, r.neurons, x) == r.prediction != y
    # and the library's own masking agrees
    sites = find_sites(tiny_model, x.unsqueeze(0))
    with masked(tiny_model, sites, neuron_masks(sites, "cpu", res.neurons)), torch.no_grad():
        assert int(tiny_model(x.unsqueeze(0)).argmax()) == res.repeats[0].prediction


def test_counts_are_reproducible_with_a_seed(tiny_model, example):
    x, y, ref, norm = example
    kw = dict(reference=ref, normalize=norm, repeats=4, noise_std=1.0, batch_size=8, cost_size=64)
    a = critical_neurons(tiny_model, x, y, seed=5, **kw)
    b = critical_neurons(tiny_model, x, y, seed=5, **kw)
    assert len({r.neurons for r in a.repeats}) > 1  # the draws matter: repeats differ ...
    assert a.counts == b.counts and [r.neurons for r in a.repeats] == [r.neurons for r in b.repeats]
    assert a.accuracy_after == b.accuracy_after and a == b  # ... yet the same seed repeats them (seconds aside)


def test_accuracy_cost_is_measured_on_other_data(tiny_model, example, fashion_small):
    x, y, ref, norm = example
    other = (fashion_small.val_x[:200], fashion_small.val_y[:200])
    res = critical_neurons(tiny_model, x, y, reference=ref, other=other, normalize=norm, repeats=2,
                           cost_size=200)
    with torch.no_grad():
        acc = float((tiny_model(norm(other[0])).argmax(1) == other[1]).float().mean())
    assert res.accuracy_before == pytest.approx(acc, abs=1e-6)
    assert res.accuracy_cost == pytest.approx(res.accuracy_before - res.accuracy_after)
    assert res.accuracy_after == pytest.approx(sum(r.accuracy_after for r in res.repeats) / 2)


def test_model_is_unchanged_and_modes_restored(tiny_model, example):
    x, y, ref, norm = example
    tiny_model.train()
    tiny_model.head.eval()  # a mixed mode must come back as it was
    before = _state(tiny_model)
    critical_neurons(tiny_model, x, y, reference=ref, normalize=norm, quick=True)
    assert _unchanged(tiny_model, before)  # BN running stats untouched too (buffers are in the state)
    assert tiny_model.training and tiny_model.stem.training and not tiny_model.head.training


def test_budget_stops_the_search(tiny_model, example):
    x, y, ref, norm = example
    res = critical_neurons(tiny_model, x, y, reference=ref, normalize=norm, repeats=1, max_neurons=1,
                           layers=["chain4"])
    r = res.repeats[0]
    assert r.count == 1 and (r.stopped == "max_neurons") == (not r.flipped)
    assert set(res.layer_counts) == {"chain4.0.conv1", "chain4.0.conv2", "chain4.0.shortcut.0"}
    timed = critical_neurons(tiny_model, x, y, reference=ref, normalize=norm, repeats=1, time_limit=1e-9,
                             cost_size=0)
    assert timed.repeats[0].stopped == "time_limit" and timed.counts == (0,) and timed.accuracy_cost is None


def test_sites_default_to_every_conv_and_linear_but_the_classifier(tiny_model):
    sites = find_sites(tiny_model, torch.zeros(1, 1, 28, 28))
    names = [s.name for s in sites]
    assert "head.fc" not in names and names[0] == "stem.0" and "chain2.0.shortcut.0" in names
    by = {s.name: s for s in sites}
    assert by["stem.0"].hook == "stem.1" and by["chain1.0.conv2"].hook == "chain1.0.bn2"
    assert by["chain4.0.conv1"].size == 16
    assert [s.name for s in find_sites(tiny_model, torch.zeros(1, 1, 28, 28), "head.fc")] == ["head.fc"]


def test_any_module_an_mlp(example):
    x, _, ref, norm = example
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                        nn.Linear(16, 10))
    with torch.no_grad():
        y = int(mlp(x.unsqueeze(0)).argmax())
    res = critical_neurons(mlp, x, y, reference=ref, normalize=norm, repeats=1, max_neurons=None)
    assert set(res.layer_sizes) == {"1", "3"} and res.repeats[0].flipped
    assert all(layer in ("1", "3") for layer, _ in res.neurons)


def test_bad_input_clear_errors_model_unchanged(tiny_model, example):
    x, y, ref, norm = example
    before = _state(tiny_model)
    with pytest.raises(ValueError, match="out of range"):
        critical_neurons(tiny_model, x, 10, reference=ref, normalize=norm)
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        critical_neurons(tiny_model, x, y, layers=["nope"])
    with pytest.raises(ValueError, match="shape"):
        critical_neurons(tiny_model, x, y, reference=(torch.zeros(4, 3, 28, 28), torch.zeros(4)))
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        critical_neurons(tiny_model, x, y, repeats=0)
    with pytest.raises(TypeError, match="unknown setting"):
        critical_neurons(tiny_model, x, y, repeat=3)
    assert _unchanged(tiny_model, before)

    class NoLayers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(784, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) @ self.w

    nl = NoLayers()
    w0 = nl.w.detach().clone()
    with pytest.raises(ValueError, match="no layer that can be zeroed"):
        critical_neurons(nl, x, 0)
    assert torch.equal(nl.w, w0) and _no_hooks(nl)


def test_hooks_removed_when_the_forward_fails(tiny_model, example):
    x, y, ref, norm = example

    class Flaky(nn.Module):  # fails on the third forward (inside the search, hooks attached)
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("boom")
            return self.inner(x)

    f = Flaky(tiny_model)
    before = _state(f)
    with pytest.raises(RuntimeError, match="boom"):
        critical_neurons(f, x, y, reference=ref, normalize=norm, cost_size=0)
    assert _unchanged(f, before)


def test_torchvision_resnet_sites_and_search():
    tv = pytest.importorskip("torchvision")
    m = tv.models.resnet18(num_classes=10).eval()
    x = torch.randn(3, 32, 32)
    sites = {s.name: s for s in find_sites(m, x.unsqueeze(0))}
    assert "fc" not in sites and sites["conv1"].hook == "bn1" and sites["layer2.0.downsample.0"].hook == \
        "layer2.0.downsample.1" and sites["layer4.1.conv2"].size == 512
    with torch.no_grad():
        y = int(m(x.unsqueeze(0)).argmax())
    before = _state(m)
    res = critical_neurons(m, x, y, repeats=1, max_neurons=3, layers=["layer4"])
    assert 1 <= res.count <= 3 and all(n.startswith("layer4.") for n, _ in res.neurons)
    assert _unchanged(m, before)

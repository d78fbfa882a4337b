"""The editor on a real (tiny, trained) model: success, purity, apply/revert, gradients
through the editor, and input validation that leaves the model untouched."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from workbench.editing import EditorConfig, edit, run_editor

# Learning rates at which each method reliably edits the tiny conftest model within k = 10.
LRS = {"gd": 0.1, "scaled_gd": 1.0, "sign": 1e-2, "rmsprop": 1e-2, "rmsprop_official": 1e-2, "momentum": 0.1,
       "adam": 1e-2}


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (BN running stats included), cloned."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model: nn.Module, snap: dict[str, torch.Tensor]) -> bool:
    sd = model.state_dict()
    return sd.keys() == snap.keys() and all(torch.equal(sd[k], snap[k]) for k in snap)


@pytest.fixture()
def images(fashion_small):
    """Four normalised test images ``(4, 1, 28, 28)``."""
    return fashion_small.normalize(fashion_small.test_x[:4])


def _runner_up(model: nn.Module, x: torch.Tensor) -> list[int]:
    with torch.no_grad():
        return [int(v) for v in model(x).topk(2, dim=1).indices[:, 1]]


@pytest.mark.parametrize("method", sorted(LRS))
def test_each_method_edits_and_leaves_model_untouched(tiny_model, images, method):
    targets = _runner_up(tiny_model, images)
    tiny_model.train()  # the edit must run in eval mode and restore this flag
    snap = _snapshot(tiny_model)
    for i in range(2):
        res = edit(tiny_model, images[i], targets[i], method=method, lr=LRS[method], layers="chain3")
        assert res.success and res.finite, res.message
        assert 1 <= res.steps <= 10 and len(res.losses) == res.steps + 1
        assert res.losses[-1] == 0.0 and res.losses[0] > 0
        assert set(res.after) == set(tiny_model.groups()["chain3"])
        assert tiny_model.training and _same(tiny_model, snap)  # BN buffers included
        trial = copy.deepcopy(tiny_model).eval()
        res.apply(trial)
        with torch.no_grad():
            assert int(trial(images[i:i + 1]).argmax()) == targets[i]


def test_group_is_the_edit_group_as_layers_is(tiny_model, images):
    target = _runner_up(tiny_model, images[:1])[0]
    by_group = edit(tiny_model, images[0], target, method="rmsprop", lr=LRS["rmsprop"], group="head")
    by_layers = edit(tiny_model, images[0], target, method="rmsprop", lr=LRS["rmsprop"], layers="head")
    assert by_group.config == by_layers.config and by_group.config.layers == "head"
    assert set(by_group.after) == set(by_layers.after) == set(tiny_model.groups()["head"])


def test_batch_of_constraints(tiny_model, images):
    targets = _runner_up(tiny_model, images)
    res = edit(tiny_model, images, targets, method="rmsprop", lr=1e-2, layers=("chain3", "head"))
    assert res.success and res.y_ref == tuple(targets)
    assert set(res.after) == set(tiny_model.groups()["chain3"] + tiny_model.groups()["head"])
    res.apply(tiny_model)
    with torch.no_grad():
        assert tiny_model(images).argmax(1).tolist() == targets


def test_apply_revert_bit_exact_and_guarded(tiny_model, images):
    snap = _snapshot(tiny_model)
    target = _runner_up(tiny_model, images[:1])[0]
    res = edit(tiny_model, images[0], target, method="adam", lr=1e-2)
    assert any(not torch.equal(d, torch.zeros_like(d)) for d in res.delta.values())
    res.apply(tiny_model)
    params = dict(tiny_model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in res.after.items())
    applied = _snapshot(tiny_model)
    with pytest.raises(ValueError, match="does not hold the weights"):
        res.apply(tiny_model)  # the model now holds the edited weights, not the starting ones
    assert _same(tiny_model, applied)
    res.revert(tiny_model)
    assert _same(tiny_model, snap)
    with pytest.raises(ValueError, match="does not hold the weights"):
        res.revert(tiny_model)
    assert _same(tiny_model, snap)


def test_editor_never_deep_copies(tiny_model, images, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the editor must not deep-copy the model")

    monkeypatch.setattr(copy, "deepcopy", refuse)
    monkeypatch.setattr(nn.Module, "__deepcopy__", refuse, raising=False)
    target = _runner_up(tiny_model, images[:1])[0]
    res = edit(tiny_model, images[0], target, method="rmsprop", lr=1e-2)
    res.apply(tiny_model)
    res.revert(tiny_model)
    assert res.success


@pytest.mark.parametrize("method", sorted(LRS))
def test_differentiable_editor_gradients(tiny_model, images, fashion_small, method):
    """Editable Training's path: finite, nonzero gradients reach a tensor lr and parameters
    outside the edited group (RMSProp/Adam once gave NaN here where a gradient entry was 0)."""
    model = tiny_model.eval()
    params = dict(model.named_parameters())
    cfg = EditorConfig(method=method, lr=LRS[method], layers="chain3").resolved()
    target = torch.tensor(_runner_up(model, images[:1]))
    lr = torch.tensor(LRS[method], requires_grad=True)
    trace = run_editor(model, images[:1], target, cfg, params=params, differentiable=True, lr=lr)
    assert trace.success and trace.steps >= 1
    xb = fashion_small.normalize(fashion_small.train_x[:32])
    yb = fashion_small.train_y[:32]
    loss = F.cross_entropy(functional_call(model, {**params, **trace.params}, (xb,)), yb)
    outside = ["stem.0.weight", "head.fc.weight"]  # before and after the edited chain3
    grads = torch.autograd.grad(loss, [lr] + [params[n] for n in outside])
    for name, g in zip(["lr"] + outside, grads):
        assert torch.isfinite(g).all() and float(g.abs().sum()) > 0, f"no gradient for {name}"


def test_tensor_lr_matches_float_lr(tiny_model, images):
    cfg = EditorConfig(method="adam", lr=1e-2, layers="chain3").resolved()
    y = torch.tensor(_runner_up(tiny_model, images[:1]))
    a = run_editor(tiny_model, images[:1], y, cfg)
    b = run_editor(tiny_model, images[:1], y, cfg, lr=torch.tensor(1e-2, requires_grad=True))
    assert a.steps == b.steps >= 1
    for n in a.params:
        torch.testing.assert_close(a.params[n], b.params[n], rtol=1e-6, atol=1e-7)


def test_nonfinite_edit_fails_cleanly(tiny_model, images):
    snap = _snapshot(tiny_model)
    target = _runner_up(tiny_model, images[:1])[0]
    res = edit(tiny_model, images[0], target, method="gd", lr=1e30)
    assert not res.success and not res.finite and "non-finite" in res.message
    assert all(torch.equal(res.after[n], res.before[n]) for n in res.after)
    assert _same(tiny_model, snap)


def _bad_inputs(images):
    x1 = images[0]
    return {
        "label out of range": ((x1, 10), {}, ValueError, "out of range"),
        "negative label": ((x1, -1), {}, ValueError, "out of range"),
        "unknown editor": ((x1, 1), {"method": "lbfgs"}, ValueError, "unknown editor"),
        "unknown group": ((x1, 1), {"layers": "chain9"}, ValueError, "unknown layer group"),
        "wrong shape": ((torch.zeros(1, 32, 32), 1), {}, ValueError, "shape"),
        "uint8 image": ((torch.zeros(1, 28, 28, dtype=torch.uint8), 1), {}, TypeError, "normalize"),
        "int64 image": ((torch.zeros(1, 28, 28, dtype=torch.int64), 1), {}, TypeError, "dtype"),
        "k < 1": ((x1, 1), {"max_steps": 0}, ValueError, "max_steps"),
        "negative lr": ((x1, 1), {"lr": -1e-3}, ValueError, "learning rate"),
        "empty batch": ((images[:0], []), {}, ValueError, "empty batch"),
        "label count": ((images[:2], [1, 2, 3]), {}, ValueError, "one label per image"),
        "adam beta": ((x1, 1), {"method": "adam", "beta": 0.05}, ValueError, r"beta .*\[0\.1, 1"),
        "float label": ((x1, torch.tensor([1.0])), {}, TypeError, "integer labels"),
        "unknown option": ((x1, 1), {"learning_rate": 1e-3}, TypeError, "unknown edit option"),
        "group twice": ((x1, 1), {"group": "head", "layers": "head"}, TypeError, "name the same thing"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs(torch.zeros(4, 1, 28, 28))))
def test_bad_input_is_rejected_and_model_untouched(tiny_model, images, case):
    args, kwargs, exc, pattern = _bad_inputs(images)[case]
    snap = _snapshot(tiny_model)
    with pytest.raises(exc, match=pattern):
        edit(tiny_model, *args, **kwargs)
    assert _same(tiny_model, snap) and not tiny_model.training


def test_defaults_depend_on_the_group():
    from workbench.editing import DEFAULTS, GROUP_DEFAULTS, default_for

    for method, d in GROUP_DEFAULTS["all"].items():
        assert default_for(method, "all") == d
        cfg = EditorConfig(method=method, layers="all").resolved()
        assert (cfg.lr, cfg.beta) == (d["lr"], d["beta"])
    # groups and methods without an entry fall back to the chain3-tuned table
    assert default_for("momentum", "all") == DEFAULTS["momentum"]
    assert default_for("gd", "head") == DEFAULTS["gd"] == default_for("gd", ("chain3", "head"))
    assert EditorConfig(method="gd", layers="chain3").resolved().lr == DEFAULTS["gd"]["lr"]
    assert EditorConfig(method="gd", lr=1e-2, layers="all").resolved().lr == 1e-2  # explicit wins


def _two_rmsprop_steps(method: str) -> torch.Tensor:
    """Two steps of ``method`` on three float64 scalars, lr 0.01, beta 0.5 (the values below)."""
    from workbench.editing.optimizers import Hyper, get_method

    f64 = torch.float64
    h = Hyper(lr=torch.tensor(0.01, dtype=f64), beta=torch.tensor(0.5, dtype=f64), beta2=torch.tensor(0.999, dtype=f64))
    step = get_method(method).step
    p = {"w": torch.tensor([0.5, -0.25, 1.0], dtype=f64)}
    state: dict = {}
    for t, g in enumerate(([2.4e-3, -7.5e-4, 0.3], [3.2e-3, 7.5e-4, 0.3]), start=1):
        h.t = t
        p, state = step(p, {"w": torch.tensor(g, dtype=f64)}, state, h)
    return p["w"]


def test_rmsprop_official_two_steps_by_hand():
    """The official rule, p -= lr * g / sqrt(v + 1e-6), v_1 = g_1^2, v_2 = 0.5 v_1 + 0.5 g_2^2:

    weight a, g = 2.4e-3 then 3.2e-3:
        v_1 = 5.76e-6;  sqrt(v_1 + 1e-6) = sqrt(6.76e-6) = 2.6e-3;  step 0.01 * 2.4/2.6 = 0.01 * 12/13
        v_2 = 0.5 * 5.76e-6 + 0.5 * 10.24e-6 = 8e-6;  sqrt(9e-6) = 3e-3;  step 0.01 * 3.2/3 = 0.01 * 16/15
    weight b, |g| < 1e-3: g = -7.5e-4 then +7.5e-4:
        v_1 = v_2 = 5.625e-7;  sqrt(1.5625e-6) = 1.25e-3;  steps of 0.01 * 0.75/1.25 = 0.006, +0.006 then
        -0.006: back to -0.25 exactly. (Today's rmsprop would move it by 0.01 * 750/751 = 0.00999.)
    weight c, g = 0.3 twice: v = 0.09 both times, two steps of 0.01 * 0.3 / sqrt(0.090001).
    """
    got = _two_rmsprop_steps("rmsprop_official")
    want = torch.tensor([0.5 - 0.01 * 12 / 13 - 0.01 * 16 / 15,
                         -0.25,
                         1.0 - 2 * 0.01 * 0.3 / 0.090001 ** 0.5], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert abs(float(got[1]) + 0.25) < 1e-12  # |g| < 1e-3: a step of 0.6 lr each way


def test_rmsprop_keeps_eps_outside_the_root_by_hand():
    """Today's rule, p -= lr * g / (sqrt(v) + 1e-6), on the same scalars and gradients:

    a: 0.01 * 2.4e-3 / (2.4e-3 + 1e-6) = 0.01 * 2400/2401, then v_2 = 8e-6:
       0.01 * 3.2e-3 / (sqrt(8e-6) + 1e-6)
    b: 0.01 * 7.5e-4 / (7.5e-4 + 1e-6) = 0.01 * 750/751 each way: back to -0.25
    c: two steps of 0.01 * 0.3 / 0.300001
    """
    got = _two_rmsprop_steps("rmsprop")
    want = torch.tensor([0.5 - 0.01 * 2400 / 2401 - 0.01 * 3.2e-3 / (8e-6 ** 0.5 + 1e-6),
                         -0.25,
                         1.0 - 2 * 0.01 * 0.3 / 0.300001], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # the two rules differ most where |g| is small: weight a's first step is 0.923 lr vs 0.9996 lr
    assert float(_two_rmsprop_steps("rmsprop_official")[0]) > float(got[0]) + 1e-3


def test_rmsprop_official_is_a_method_and_an_alias():
    cfg = EditorConfig("rmsprop-official", layers="chain3").resolved()
    assert (cfg.method, cfg.lr, cfg.beta) == ("rmsprop_official", 1e-3, 0.5)
    assert EditorConfig.from_dict(cfg.to_dict()).resolved() == cfg

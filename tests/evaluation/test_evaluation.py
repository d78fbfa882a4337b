"""The fast Evaluator against the naive path (deepcopy, apply, full forward) on a real tiny model."""
from __future__ import annotations

import copy

import pytest
import torch

from workbench.editing import EditorConfig, edit
from workbench.evaluation import EditReport, Evaluator, natural_edits, random_label_edits
from workbench.models import error_rate, predict_logits

BS = 250  # the same batch size on both paths: bit-identical logits are then guaranteed


def naive_logits(model, bundle, params=None, result=None):
    """The reference path: a copy of the model with the weights written in, full forward."""
    m = copy.deepcopy(model)
    if result is not None:
        result.apply(m)
    if params:
        with torch.no_grad():
            own = dict(m.named_parameters())
            for n, v in params.items():
                own[n].copy_(v)
    return predict_logits(m, bundle.test_x, normalize=bundle.normalize, batch_size=BS)


def a_real_edit(model, ev, lr=1e-2):
    """A successful edit of a test image to a label the model does not predict."""
    for i in range(len(ev)):
        target = (int(ev.base_preds[i]) + 1) % ev.num_classes
        res = edit(model, ev.image(i), target, method="rmsprop", lr=lr, layers="chain3")
        if res.success and res.steps > 0:
            return i, res
    raise AssertionError("no successful edit found")


@pytest.fixture()
def ev(tiny_model, fashion_small):
    return Evaluator(tiny_model, fashion_small, layers="chain3", device="cpu", batch_size=BS)


def test_base_error_equals_plain_forward(ev, tiny_model, fashion_small):
    logits = naive_logits(tiny_model, fashion_small)
    assert torch.equal(ev.base_logits, logits)
    assert torch.equal(ev.base_preds, logits.argmax(1))
    assert ev.base_error == pytest.approx(error_rate(logits, fashion_small.test_y), abs=0)
    assert torch.equal(ev.labels, fashion_small.test_y)
    assert ev.cache_info().keys() == {"chain3"}


def test_score_equals_naive_apply_and_forward(ev, tiny_model, fashion_small):
    _, res = a_real_edit(tiny_model, ev)
    ref = naive_logits(tiny_model, fashion_small, result=res)
    assert torch.equal(ev.logits_for(res), ref)
    rep = ev.score(res)
    assert isinstance(rep, EditReport)
    preds, y = ref.argmax(1), fashion_small.test_y
    assert torch.equal(rep.preds_after, preds)
    assert rep.error_before == pytest.approx(ev.base_error, abs=0)
    assert rep.error_after == pytest.approx(float((preds != y).float().mean()), abs=1e-7)
    assert rep.drawdown == pytest.approx(rep.error_after - rep.error_before, abs=1e-7)
    # flipped = exactly the examples whose prediction changed
    assert torch.equal(rep.flipped, torch.nonzero(preds != ev.base_preds).flatten())
    assert rep.num_flipped > 0  # an edit that changed a prediction changed at least that one
    # per-class errors recomputed independently, class by class
    for c in range(ev.num_classes):
        sel = y == c
        assert rep.per_class_error_after[c] == pytest.approx(float((preds[sel] != c).float().mean()), abs=1e-6)
        assert rep.per_class_error_before[c] == pytest.approx(float((ev.base_preds[sel] != c).float().mean()),
                                                              abs=1e-6)
    assert torch.allclose(rep.per_class_change, rep.per_class_error_after - rep.per_class_error_before)
    # weighting the per-class errors by class counts gives back the overall error
    counts = torch.bincount(y, minlength=ev.num_classes).float()
    assert float((rep.per_class_error_after * counts).sum() / counts.sum()) == pytest.approx(rep.error_after,
                                                                                           abs=1e-6)


def test_base_params_give_exactly_base_logits(ev, tiny_model):
    _, res = a_real_edit(tiny_model, ev)
    assert torch.equal(ev.logits_for(res.before), ev.base_logits)  # names given, values = base
    assert torch.equal(ev.logits_for({}), ev.base_logits)
    chain1 = {n: p.detach() for n, p in tiny_model.named_parameters() if n.startswith("chain1.")}
    assert torch.equal(ev.logits_for(chain1), ev.base_logits)
    assert "chain1" in ev.cache_info()


def test_params_of_earlier_and_later_stages_are_rerun(ev, tiny_model, fashion_small):
    g = torch.Generator().manual_seed(1)
    own = dict(tiny_model.named_parameters())
    for names in (["chain1.0.conv1.weight", "chain3.0.conv2.weight"], ["stem.0.weight"], ["head.fc.bias"]):
        params = {n: own[n].detach() + 0.05 * torch.randn(own[n].shape, generator=g) for n in names}
        ref = naive_logits(tiny_model, fashion_small, params=params)
        got = ev.logits_for(params)
        assert torch.equal(got, ref), names
        assert not torch.equal(got, ev.base_logits)


def test_in_place_change_of_the_same_tensor_is_noticed(ev, tiny_model, fashion_small):
    w = dict(tiny_model.named_parameters())["chain3.0.conv1.weight"].detach().clone()
    params = {"chain3.0.conv1.weight": w}
    first = ev.logits_for(params)
    w.mul_(0.5)  # same tensor object, new values
    second = ev.logits_for(params)
    assert torch.equal(first, ev.base_logits)
    assert torch.equal(second, naive_logits(tiny_model, fashion_small, params=params))
    assert not torch.equal(first, second)


def test_reference_preds_and_bad_inputs(ev, tiny_model, fashion_small):
    _, res = a_real_edit(tiny_model, ev)
    rep = ev.score(res)
    step = ev.score(res, reference_preds=rep.preds_after)
    assert step.num_flipped == 0 and step.drawdown == 0 and step.error_before == rep.error_after
    with pytest.raises(ValueError, match="reference_preds has 3 entries"):
        ev.score(res, reference_preds=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown parameter name"):
        ev.logits_for({"chain9.weight": torch.zeros(1)})
    with pytest.raises(TypeError, match="mapping"):
        ev.score([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown layer group 'chain9'"):
        Evaluator(tiny_model, fashion_small, layers="chain9", device="cpu")
    with pytest.raises(ValueError, match="limit"):
        Evaluator(tiny_model, fashion_small, limit=0, device="cpu")
    with pytest.raises(ValueError, match="unknown split"):
        Evaluator(tiny_model, fashion_small, split="dev", device="cpu")


def test_misclassified_list_and_confusion(ev):
    mis = ev.misclassified()
    wrong = torch.nonzero(ev.base_preds != ev.labels).flatten().tolist()
    assert [m.index for m in mis] == wrong and len(mis) > 0
    probs = ev.base_logits.softmax(1)
    for m in mis[:20]:
        assert m.true == int(ev.labels[m.index]) and m.pred == int(ev.base_preds[m.index]) != m.true
        assert m.confidence == pytest.approx(float(probs[m.index, m.pred]), rel=1e-5)
        assert m.margin == pytest.approx(float(ev.base_logits[m.index, m.pred] - ev.base_logits[m.index, m.true]),
                                         rel=1e-5)
        assert m.margin >= 0
    by_conf = ev.misclassified(sort="confidence")
    assert [m.confidence for m in by_conf] == sorted((m.confidence for m in mis), reverse=True)
    assert sorted(m.index for m in by_conf) == wrong
    by_margin = ev.misclassified(sort="margin")
    assert [m.margin for m in by_margin] == sorted((m.margin for m in mis), reverse=True)
    assert sorted(mis, key=lambda m: m.margin)[0] == by_margin[-1]
    with pytest.raises(ValueError, match="unknown sort"):
        ev.misclassified(sort="loss")
    cm = ev.confusion()
    assert int(cm.sum()) == len(ev) and int(cm.trace()) == len(ev) - len(mis)
    assert torch.equal(cm.sum(1), torch.bincount(ev.labels, minlength=ev.num_classes))


def test_random_protocol_is_seeded(ev, fashion_small):
    a = random_label_edits(fashion_small, 50, seed=3)
    b = random_label_edits(fashion_small, 50, seed=3)
    c = random_label_edits(fashion_small, 50, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.indices, b.indices)
    assert not torch.equal(a.indices, c.indices)
    assert len(set(a.indices.tolist())) == 50 and int(a.y.min()) >= 0 and int(a.y.max()) < 10
    assert torch.equal(a.x, fashion_small.normalize(fashion_small.test_x[a.indices]))
    x, y = a  # unpacks like the (x, y) pair of the API
    assert x is a.x and y is a.y
    from_ev = random_label_edits(ev, 50, seed=3)  # same split, same draw
    assert torch.equal(from_ev.indices, a.indices) and torch.equal(from_ev.y, a.y)
    # the labels are uniform over all classes: they hit the current prediction sometimes
    big = random_label_edits(fashion_small, 1000, seed=0)
    assert len(set(big.y.tolist())) == 10
    with pytest.raises(ValueError, match="only 1000"):
        random_label_edits(fashion_small, 1001)


def test_natural_protocol_uses_mistakes_and_true_labels(ev):
    e = natural_edits(ev, 20, seed=0)
    assert all(int(ev.base_preds[i]) != int(ev.labels[i]) for i in e.indices)
    assert torch.equal(e.y, ev.labels[e.indices]) and len(set(e.indices.tolist())) == 20
    assert torch.equal(natural_edits(ev, 20, seed=0).indices, e.indices)
    assert torch.equal(e.x, ev.images(e.indices))
    n_wrong = len(ev.misclassified())
    with pytest.raises(ValueError, match=f"only {n_wrong} misclassified"):
        natural_edits(ev, n_wrong + 1)


def test_evaluate_edits_matches_a_direct_loop(ev, tiny_model, fashion_small):
    edits = random_label_edits(fashion_small, 6, seed=5)
    cfg = EditorConfig("rmsprop", lr=2e-3, max_steps=4, layers="chain3")
    seen: dict[int, torch.Tensor] = {}
    s = ev.evaluate_edits(edits.x, edits.y, cfg, protocol="random", progress=False, indices=edits.indices,
                          callback=lambda i, res, preds: seen.__setitem__(i, preds))
    y = fashion_small.test_y
    dds, oks, steps = [], [], []
    for i in range(6):
        res = edit(tiny_model, edits.x[i], int(edits.y[i]), cfg)
        preds = naive_logits(tiny_model, fashion_small, result=res).argmax(1)
        assert torch.equal(seen[i], preds)
        dds.append(float((preds != y).float().mean()) - ev.base_error)
        oks.append(res.success)
        steps.append(res.steps if res.success else cfg.max_steps)
        o = s.per_edit[i]
        assert (o.index, o.target, o.success) == (int(edits.indices[i]), int(edits.y[i]), res.success)
        assert o.flipped == int((preds != ev.base_preds).sum())
    assert s.edits == 6 and s.protocol == "random" and s.editor == "rmsprop" and s.layers == "chain3"
    assert s.success_rate == pytest.approx(sum(oks) / 6)
    assert s.mean_steps == pytest.approx(sum(steps) / 6)
    assert s.drawdown_signed == pytest.approx(sum(dds) / 6, abs=1e-7)
    assert s.drawdown_abs == pytest.approx(sum(map(abs, dds)) / 6, abs=1e-7)
    assert s.drawdown_abs >= abs(s.drawdown_signed)
    assert s.test_error == ev.base_error and (s.lr, s.beta, s.max_steps) == (2e-3, 0.5, 4)
    js = s.to_json()
    assert {"test_error", "drawdown_abs", "drawdown_signed", "success_rate", "mean_steps", "edits", "editor",
            "layers", "protocol", "seconds"} <= js.keys() and len(js["per_edit"]) == 6
    assert "| rmsprop |" in s.table()


def test_failed_edits_count_as_k_steps(ev, fashion_small):
    edits = random_label_edits(fashion_small, 5, seed=2)
    s = ev.evaluate_edits(edits.x, edits.y, EditorConfig("gd", lr=0.0, max_steps=3), progress=False)
    # lr = 0 never changes the weights: only labels equal to the prediction succeed (0 steps)
    preds = ev.base_preds[edits.indices]
    expect_ok = (preds == edits.y).tolist()
    assert [o.success for o in s.per_edit] == expect_ok
    assert [o.steps for o in s.per_edit] == [0 if ok else 3 for ok in expect_ok]
    assert s.drawdown_abs == 0 and s.drawdown_signed == 0


def test_without_layers_the_evaluator_edits_the_models_own_default_group(tiny_model, fashion_small):
    import torch.nn as nn

    from workbench.data import as_bundle
    from workbench.models import adapt

    assert Evaluator(tiny_model, fashion_small, device="cpu", limit=64).layers == "chain3"  # the project's ResNet
    torch.manual_seed(0)
    other = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 10)).eval()
    x = torch.randint(0, 256, (32, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    bundle = as_bundle((x, torch.arange(32) % 10), val_fraction=0, mean=(.5,), std=(.25,))
    ev = Evaluator(other, bundle, device="cpu")  # no chain3 here: its own middle group, not a refusal
    assert ev.layers == adapt(other).default_group() and ev.layers != "chain3"

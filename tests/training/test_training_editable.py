"""Editable Training objective: gradients, first order, BatchNorm handling, learning."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from tests.support.settings import TINY
from workbench.editing import EditorConfig, edit
from workbench.training import EditableObjective, Recipe, train
from workbench.training.run import make_objective


@pytest.fixture()
def batch(fashion_small):
    return fashion_small.normalize(fashion_small.train_x[:32]), fashion_small.train_y[:32]


# An editor lr large enough to move the predictions measurably (L_loc ~ 1e-3 on the tiny model,
# five orders above float32 round-off, ~1e-8) yet far too small to flip them in k=2 steps
# (L_edit ~ 1.3 after the edit): L_edit > 0 and both terms carry gradients.
FAILING_LR = 3e-4
LOC_MEASURABLE = 1e-5  # 100x float32 round-off of a KL between near-equal predictions; ~1/90 of L_loc here


def _failing_objective(**kw) -> EditableObjective:
    return EditableObjective(layers="chain3", editor_lr=FAILING_LR, edit_steps=2, c_edit=1.0, c_loc=1.0, **kw)


def _grads(obj: EditableObjective, model, x, y, term: str, step: int = 1):
    terms, logs = obj.terms(model, x, y, step)
    wrt = {"stem": model.stem[0].weight, "chain3": model.chain3[0].conv1.weight, "lr": obj.editor_log_lr}
    if obj.editor_beta_logit is not None:
        wrt["beta"] = obj.editor_beta_logit
    g = torch.autograd.grad(terms[term], list(wrt.values()), allow_unused=True)
    return dict(zip(wrt, g)), logs


def test_second_order_gradients_reach_the_prefix_and_the_editor_lr(tiny_model, batch):
    model = tiny_model.train()
    obj = _failing_objective()
    g, logs = _grads(obj, model, *batch, "edit")
    assert logs["edit_success"] == 0 and logs["L_edit"] > 0.1  # failed by a clear margin
    for name in ("stem", "lr", "beta"):  # stem lies before the edited group chain3
        assert g[name] is not None and torch.isfinite(g[name]).all() and float(g[name].abs().sum()) > 0, name
    gl, _ = _grads(obj, model, *batch, "loc")
    assert float(gl["lr"].abs()) > 0 and float(gl["stem"].abs().sum()) > 0


def test_first_order_differs_and_drops_beta(tiny_model, batch):
    model = tiny_model.train()
    state = copy.deepcopy(model.state_dict())
    so, _ = _grads(_failing_objective(), model, *batch, "loc")
    model.load_state_dict(state)  # the base pass moved the BN statistics: start the same
    fo, logs = _grads(_failing_objective(first_order=True), model, *batch, "loc")
    assert logs["edit_success"] == 0 and logs["L_loc"] > LOC_MEASURABLE  # the edit moved the predictions
    assert fo["beta"] is None  # no second-order path to beta
    assert float(fo["lr"].abs()) > 0  # d theta'/d lr = delta / lr is kept
    # the dropped second-order term changes the gradient as a whole (measured ~2.4e-2 relative),
    # far above what round-off alone would give (~1e-6 for float32 sums of this size)
    rel = float((so["chain3"] - fo["chain3"]).norm() / so["chain3"].norm())
    assert rel > 1e-3, rel


def test_batchnorm_stats_move_once_per_step_and_the_edit_keeps_them(tiny_model, batch):
    x, y = batch
    model = tiny_model.train()
    ref = copy.deepcopy(model)
    obj = EditableObjective(layers="chain3", editor_lr=1e-2, edit_steps=5, c_edit=1.0, c_loc=1.0)
    loss, logs = obj(model, x, y, 0)
    loss.backward()
    ref(x)  # exactly one train-mode pass over the batch
    assert logs["edit_steps"] > 0  # the editor did run forward passes
    for (k, b), (_, r) in zip(model.named_buffers(), ref.named_buffers()):
        assert torch.equal(b, r), k
    assert model.training  # the edit's eval mode was restored


def test_locality_compares_eval_mode_predictions(tiny_model, batch):
    """A vanishing edit gives L_loc ~ 0: before and after are both eval mode (no mode mismatch)."""
    model = tiny_model.train()
    obj = EditableObjective(layers="chain3", editor_lr=1e-9, edit_steps=3, c_edit=1.0, c_loc=1.0,
                            learn_editor=False)
    _, logs = obj(model, *batch, 1)
    assert logs["edit_steps"] > 0 and 0 <= logs["L_loc"] < 1e-6  # float32 round-off only, logged clamped at 0
    with torch.no_grad():  # whereas train- vs eval-mode predictions of the same weights differ clearly
        mismatch = F.kl_div(F.log_softmax(model.eval()(batch[0]), -1), F.log_softmax(model.train()(batch[0]), -1),
                            log_target=True, reduction="batchmean")
    assert float(mismatch) > 1e-3


def test_learned_editor_parameters_stay_valid():
    obj = EditableObjective(method="adam", editor_lr=3e-4, editor_beta=0.9)
    assert float(obj.editor_lr().detach()) == pytest.approx(3e-4, rel=1e-5)
    assert float(obj.editor_beta().detach()) == pytest.approx(0.9, rel=1e-5)
    with torch.no_grad():
        obj.editor_log_lr.fill_(-1e3)
        obj.editor_beta_logit.fill_(-1e3)  # type: ignore[union-attr]
    assert float(obj.editor_lr().detach()) >= 0 and 0.1 <= float(obj.editor_beta().detach()) <= 1.0  # adam's beta range
    EditorConfig.from_dict(obj.editor_card()).resolved()  # the card's editor is usable as is
    assert "editor_beta_logit" not in EditableObjective(method="gd").extra_parameters()
    assert EditableObjective(learn_editor=False).extra_parameters() == {}


def test_editable_training_learns_and_the_editor_adapts(tmp_path, fashion_small):
    recipe = Recipe(name="tiny-editable", editable=True, epochs=3, batch_size=32, lr=3e-3, warmup_epochs=0.0,
                    train_subset=256, eval_subset=100, arch_kwargs=dict(TINY), editor_lr=1e-3, edit_steps=3,
                    c_edit=0.5, c_loc=0.5)
    obj = make_objective(recipe)
    start = {"lr": float(obj.editor_lr().detach()), "beta": float(obj.editor_beta().detach())}
    res = train(recipe, tmp_path, objective=obj, bundle=fashion_small, device="cpu", progress=False)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]  # the editable objective went down
    assert rows[-1]["loss"] > rows[-1]["L_base"]  # and it is not just the base loss
    assert float(obj.editor_lr().detach()) != pytest.approx(start["lr"], rel=1e-3)
    assert float(obj.editor_beta().detach()) != pytest.approx(start["beta"], rel=1e-3)
    assert res.card["editor"]["lr"] == pytest.approx(float(obj.editor_lr().detach()))
    # the trained model can be edited with the learned editor
    x = fashion_small.normalize(fashion_small.test_x[:1])
    pred = int(res.model.eval()(x).argmax())
    cfg = EditorConfig.from_dict(res.card["editor"])
    out = edit(res.model, x, (pred + 1) % 10, cfg, max_steps=50)
    assert out.finite and out.steps >= 1

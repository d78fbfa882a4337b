"""The paper's setting (Maini et al., ICML 2023): ResNet-9, SGD with momentum, the triangle schedule."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.models import ResNet9, adapt, group_names, group_params, resnet9
from workbench.models.dropout import DropoutSpec, attach_dropout, default_sites, example_indices, memorization_mode
from workbench.training import Recipe, load_model, train
from workbench.training.grad_accounting import read_accounting
from workbench.training.loop import STATE_FILE, spec_for_recipe
from workbench.training.schedule import lr_factor
from workbench.training.recipes import get_recipe

STAGES = ["conv1", "conv2", "res1", "conv3", "res2", "conv4", "head"]


@pytest.mark.parametrize("width, channels", [(1.0, (64, 128, 256, 128)), (0.5, (32, 64, 128, 64))])
def test_resnet9_has_the_official_layout_at_each_width(width, channels):
    m = resnet9(num_classes=10, in_channels=1, input_size=28, width=width).eval()
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [channels[0], channels[1], channels[1], channels[1], channels[2],
                                               channels[2], channels[2], channels[3]]
    assert convs[0].in_channels == 1 and convs[1].kernel_size == (5, 5) and convs[1].stride == (2, 2)
    assert m.head.fc.in_features == channels[3] and m.head.fc.bias is None
    x = torch.randn(3, 1, 28, 28)
    shapes = {}
    h = x
    for stage in STAGES:
        h = getattr(m, stage)(h)
        shapes[stage] = tuple(h.shape[1:])
    assert shapes["conv2"] == (channels[1], 14, 14) and shapes["conv3"] == (channels[2], 7, 7)
    assert shapes["conv4"] == (channels[3], 5, 5) and shapes["head"] == (10,)
    torch.testing.assert_close(m(x), h)
    big = resnet9(num_classes=7, in_channels=3, input_size=32, width=width).eval()
    assert big(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_resnet9_groups_splits_and_dropout_sites_are_its_stages():
    m = resnet9(in_channels=1, input_size=28, width=0.25).eval()
    assert group_names(m) == STAGES + ["all"]
    owned = [n for g in STAGES for n in group_params(m, g)]
    assert sorted(owned) == sorted(n for n, _ in m.named_parameters())  # the stages partition the parameters
    x = torch.randn(4, 1, 28, 28)
    full = m(x)
    a = adapt(m)
    for stage in STAGES[1:]:
        split = a.split(a.params(stage))
        assert split.kind == "stages" and split.cut == stage
        torch.testing.assert_close(split(x), full, rtol=0, atol=1e-5)
    assert default_sites(m) == ["res1", "res2"]  # where the paper's ResNet-18 has layer2, layer3
    attach_dropout(m, DropoutSpec("example-tied", p_gen=0.5, p_mem=0.2), default_sites(m))
    assert set(m.state_dict()) == set(resnet9(in_channels=1, input_size=28, width=0.25).state_dict())
    m.train()
    with example_indices(m, torch.arange(4)):
        assert m(x).shape == (4, 10)
    m.eval()
    with memorization_mode(m, "drop"):
        dropped = m(x)
    assert not torch.allclose(dropped, full)  # the memorization channels are gone at every site


def test_resnet9_refuses_a_bad_width_or_image_size():
    with pytest.raises(ValueError, match="width must be"):
        ResNet9(width=0)
    with pytest.raises(ValueError, match="at least 12x12"):
        ResNet9(input_size=8)


def test_the_paper_recipe_holds_the_papers_values_and_builds_resnet9_for_fashion_mnist(fashion_small):
    r = get_recipe("fashion-noisy-r9").validate()
    assert (r.optimizer, r.momentum, r.weight_decay, r.lr, r.batch_size) == ("sgd", 0.9, 5e-4, 0.1, 512)
    assert (r.schedule, r.augment, r.grad_clip, r.val_size, r.train_subset) == ("triangle", False, None, 0, None)
    assert r.label_noise == 0.1 and r.keep_epochs and r.grad_accounting and r.record_dynamics
    m = spec_for_recipe(r, fashion_small).build()
    assert isinstance(m, ResNet9) and m.input_shape == (1, 28, 28) and m.width == 0.5


@pytest.mark.parametrize("field, value, message", [
    ("optimizer", "adam", "unknown optimizer 'adam'"),
    ("momentum", 1.0, r"momentum \(--momentum\) must lie in \[0, 1\)"),
    ("momentum", -0.1, r"momentum \(--momentum\) must be a finite number"),
    ("nesterov", True, "needs --optimizer sgd"),
    ("schedule", "onecycle", "unknown schedule 'onecycle'"),
    ("warmup_epochs", 5.0, "must come before the last epoch"),
    ("accounting_every", 0, r"accounting_every \(--accounting-every\) must be an integer >= 1"),
])
def test_bad_optimizer_and_schedule_fields_are_refused(field, value, message):
    base = Recipe(optimizer="adamw", schedule="triangle", epochs=5, warmup_epochs=1.0)
    with pytest.raises(ValueError, match=message):
        base.override(**{field: value}).validate()
    Recipe(optimizer="sgd", nesterov=True, momentum=0.9).validate()  # the valid combination passes


def test_the_triangle_schedule_rises_to_the_peak_then_falls_linearly_to_zero():
    r = Recipe(schedule="triangle", epochs=10, warmup_epochs=2.0)
    spe, total = 10, 100
    f = [lr_factor(r, s, total, spe) for s in range(total)]
    assert f[0] == pytest.approx(1 / 20) and f[19] == pytest.approx(1.0)  # linear rise over 20 steps
    assert f[20] == pytest.approx(1.0) and f[60] == pytest.approx(0.5) and f[99] == pytest.approx(1 / 80)
    assert all(a < b for a, b in zip(f[:20], f[1:20])) and all(a > b for a, b in zip(f[20:], f[21:]))


def test_sgd_training_with_accounting_every_second_epoch_on_resnet9(tmp_path, fashion_small):
    recipe = Recipe(name="tiny-r9", arch="resnet9", arch_kwargs={"width": 0.125}, epochs=3, batch_size=64,
                    optimizer="sgd", lr=0.05, momentum=0.9, schedule="triangle", warmup_epochs=1.0, augment=False,
                    grad_clip=None, train_subset=256, eval_subset=50, label_noise=0.1, grad_accounting=True,
                    accounting_every=2, keep_epochs=True)
    res = train(recipe, tmp_path, bundle=fashion_small, device="cpu", progress=False)
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    group = state["optimizer"]["param_groups"][0]
    assert group["momentum"] == 0.9 and group["weight_decay"] == 5e-4 and not group["nesterov"]
    assert all("momentum_buffer" in s for s in state["optimizer"]["state"].values())
    assert [row["epoch"] for row in read_accounting(tmp_path)] == [1, 3]  # epochs 1, 3: every 2nd
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert ["grad_noisy_share" in row for row in rows] == [True, False, True]
    model, card = load_model(tmp_path)
    assert isinstance(model, ResNet9) and card["recipe"]["optimizer"] == "sgd"
    for k, v in res.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)

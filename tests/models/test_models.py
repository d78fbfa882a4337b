"""Architectures: shapes, stage slicing (start/stop) and editable groups."""
from __future__ import annotations

import pytest
import torch

from workbench.models import (
    build_model,
    cifar_resnet18,
    first_group_stage,
    group_names,
    group_params,
    small_resnet,
)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"small": small_resnet().eval(), "resnet18": cifar_resnet18().eval()}


def _input(model, n=3):
    return torch.randn(n, *model.input_shape)


def test_forward_shapes(models):
    small, r18 = models["small"], models["resnet18"]
    assert small.input_shape == (1, 28, 28) and r18.input_shape == (3, 32, 32)
    assert small(_input(small)).shape == (3, 10)
    assert r18(_input(r18, 2)).shape == (2, 10)
    assert small_resnet(num_classes=7, in_channels=3, input_size=32)(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert build_model("small-resnet", widths=[8, 8, 16, 16]).config()["widths"] == [8, 8, 16, 16]
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg11")


@pytest.mark.parametrize("name", ["small", "resnet18"])
def test_prefix_then_suffix_equals_full_forward(models, name):
    model = models[name]
    x = _input(model, 2)
    with torch.no_grad():
        full = model(x)
        for stage in model.stage_names:
            h = model(x, stop=stage)
            out = model(h, start=stage)
            # same ops on the same tensors: equal up to float rounding (stated tolerance 1e-5)
            torch.testing.assert_close(out, full, rtol=0, atol=1e-5, msg=f"split at {stage}")
        assert model(x, stop="chain3").shape[1] == model.widths[1]  # entering chain3 = chain2's width


@pytest.mark.parametrize("name", ["small", "resnet18"])
def test_groups_partition_the_parameters(models, name):
    model = models[name]
    groups = model.groups()
    all_names = [n for n, _ in model.named_parameters()]
    assert list(groups) == [*model.stage_names, "all"] == group_names(model)
    assert groups["all"] == all_names
    parts = [p for g, names in groups.items() if g != "all" for p in names]
    assert sorted(parts) == sorted(all_names)  # every parameter in exactly one stage group
    assert len(parts) == len(set(parts))
    for g in model.stage_names:
        assert groups[g] and all(p.startswith(g + ".") for p in groups[g])


def test_group_params_and_first_stage(models):
    model = models["small"]
    assert group_params(model, "head") == ["head.fc.weight", "head.fc.bias"]
    joined = group_params(model, ["chain3", "head", "chain3"])
    assert joined == model.groups()["chain3"] + ["head.fc.weight", "head.fc.bias"]
    assert first_group_stage(model, "chain3") == "chain3"
    assert first_group_stage(model, ("head", "chain2")) == "chain2"
    assert first_group_stage(model, "all") == "stem"


def test_group_params_unknown_group_lists_valid_ones(models):
    model = models["small"]
    with pytest.raises(ValueError) as err:
        group_params(model, "chain9")
    msg = str(err.value)
    assert "chain9" in msg and all(g in msg for g in group_names(model))
    with pytest.raises(ValueError, match="no editable group"):
        group_params(model, [])
    # any nn.Module has groups now: a bare Linear's own parameters, or "all"
    assert group_params(torch.nn.Linear(2, 2), "all") == ["weight", "bias"]
    with pytest.raises(ValueError, match="unknown layer group 'head'"):
        group_params(torch.nn.Linear(2, 2), "head")

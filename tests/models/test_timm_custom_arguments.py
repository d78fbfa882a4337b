"""timm models built with arguments of their own (``img_size=32, embed_dim=48`` ...): a vision
transformer's shape arguments are read back from its modules, a model built by the workbench keeps
the spec it was built from, and anything else is refused with the exact ``builder=`` to pass."""
from __future__ import annotations

import json

import pytest
import torch

from tests.support.bad_input import refused
from workbench.models import forward_logits
from workbench.models.spec import ModelSpec
from workbench.training import load_model, save_model

timm = pytest.importorskip("timm")
DEIT = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=2, num_classes=4)


def test_a_deit_built_with_its_own_sizes_exports_and_reloads(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, **DEIT).eval()
    folder = save_model(tmp_path / "deit", model)
    card = json.loads((folder / "card.json").read_text())
    assert card["builder"] == {"kind": "timm", "name": "deit_tiny_patch16_224"}
    assert {k: card["model_config"][k] for k in DEIT} == DEIT
    back, _ = load_model(folder)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(forward_logits(back, x), forward_logits(model, x))


def test_a_timm_model_the_workbench_built_keeps_its_arguments(tmp_path):
    spec = ModelSpec.parse("timm:convnext_atto:dims=(8,16,32,64),num_classes=4")
    model = spec.build()
    folder = save_model(tmp_path / "cx", model)
    assert json.loads((folder / "card.json").read_text())["model_config"] == {"dims": [8, 16, 32, 64],
                                                                              "num_classes": 4}
    assert type(load_model(folder)[0]) is type(model)


def test_arguments_that_cannot_be_read_back_are_asked_for_by_name(tmp_path):
    model = timm.create_model("convnext_atto", pretrained=False, dims=(8, 16, 32, 64), num_classes=4)
    with refused(r"this timm convnext_atto was built with arguments that cannot be read back from it: pass the "
                 r"keyword arguments you gave timm.create_model, builder='timm:convnext_atto:num_classes=4,<the "
                 r"others as k=v", root=tmp_path):
        save_model(tmp_path / "cx", model)
    folder = save_model(tmp_path / "cx", model, builder="timm:convnext_atto:dims=(8,16,32,64),num_classes=4")
    assert type(load_model(folder)[0]) is type(model)  # the builder the message asked for works

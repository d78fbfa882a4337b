"""Model families no issue names, each as a user builds it (random init, 32 px, 4 classes):
open, one edit, undo bit for bit, export, reload with the same logits, with no trust asked.

torchvision's SqueezeNet ends in a convolution, not a Linear: its class count is read from
that convolution when the card is written.
"""
from __future__ import annotations

import pytest
import torch
import torchvision

from workbench.models.outputs import forward_logits
from workbench.session import EditSession
from workbench.training import load_model


def _timm(name: str):
    timm = pytest.importorskip("timm")
    return lambda: timm.create_model(name, pretrained=False, num_classes=4)


FAMILIES = {
    "tv-mobilenet_v3_small": lambda: torchvision.models.mobilenet_v3_small(num_classes=4),
    "tv-efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=4),
    "tv-shufflenet_v2_x0_5": lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=4),
    "tv-squeezenet1_1": lambda: torchvision.models.squeezenet1_1(num_classes=4),
    "timm-convnext_atto": "convnext_atto",
    "timm-test_efficientnet": "test_efficientnet",
    "timm-test_vit": "test_vit",
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_edits_undoes_exports_and_reloads(family, tmp_path):
    make = FAMILIES[family]
    model = (_timm(make) if isinstance(make, str) else make)()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 4, (16,), generator=g)
    s = EditSession(model, (x, y), device="cpu")
    assert s.config.layers in s.group_names() and s.config.layers != s.group_names()[-2]  # not the head
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    res = s.edit_index(0, (int(s.evaluator.base_preds[0]) + 1) % 4, lr=1e-2, max_steps=5)
    if res.accepted and res.steps:
        assert any(not torch.equal(before[k], v) for k, v in s.model.state_dict().items())
        s.undo()
    assert all(torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    folder = s.export(tmp_path / "m")
    reloaded, card = load_model(folder)  # no trust_code: a closed-set builder
    assert card["builder"]["kind"] in ("torchvision", "timm")
    xb = s.image([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(forward_logits(reloaded, xb), forward_logits(s.model.eval(), xb))

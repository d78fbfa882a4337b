"""A model whose ``forward`` returns ``{"logits": ...}``, defined in the user's own module: open,
edit, undo bit for bit, export, reload with the same logits. Its card names the user's class
(``module:Class``), so reopening asks for ``trust_code=True``; a class whose arguments cannot be
read back is exported with ``builder="module:Class:k=v"``."""
from __future__ import annotations

import json

import pytest
import torch

from tests.support.bad_input import refused
from tests.support.dict_model import DictNet
from workbench.models import forward_logits
from workbench.session import EditSession
from workbench.training import load_model, save_model


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 16, 16, generator=g), torch.randint(0, 4, (16,), generator=g)


@pytest.mark.parametrize("width, builder", [(8, None), (6, "tests.support.dict_model:DictNet:width=6")])
def test_a_dict_output_model_edits_undoes_exports_and_reloads_with_trust(tmp_path, width, builder):
    torch.manual_seed(0)
    model = DictNet(width=width)
    with torch.no_grad():  # class 0 leads class 1 by 0.1 on every image: a short edit of fc closes it
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([0.1, 0.0, -5.0, -5.0]))
    s = EditSession(model, _data(), device="cpu")
    assert s.config.layers == "features.2"  # the middle block of its Sequential
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    res = s.edit_index(0, 1, lr=1e-2, max_steps=50, layers="fc")
    assert res.accepted and res.steps > 0, res.message
    s.undo()
    assert all(torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    s.redo()
    folder = s.export(tmp_path / "m", builder=builder, trust_code=True) if builder else s.export(tmp_path / "m")
    card = json.loads((folder / "card.json").read_text())
    assert card["builder"] == {"kind": "factory", "name": "tests.support.dict_model:DictNet"}
    with refused(r"pass trust_code=True \(Python\) or --trust-code", root=tmp_path):
        load_model(folder)  # the user's own code: not run without trust
    reloaded, _ = load_model(folder, trust_code=True)
    assert type(reloaded) is DictNet
    x = s.image([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(forward_logits(reloaded, x), forward_logits(s.model.eval(), x))


def test_a_dict_output_model_whose_arguments_cannot_be_read_back_names_the_builder_to_pass(tmp_path):
    class Hidden(DictNet):  # defined in a function: no card can name it
        pass

    with refused(r"builder='mypkg.models:make_model:width=32' with trust_code=True", root=tmp_path):
        save_model(tmp_path / "m", Hidden())

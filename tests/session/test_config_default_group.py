"""``EditorConfig(lr=...)`` names no group: it edits the model's default group (the session's,
or the middle block of the trunk for ``edit()``), on any model; records keep their group."""
from __future__ import annotations

import pytest
import torch
import torchvision

from workbench.editing import DEFAULT_GROUP, EditorConfig, edit
from workbench.session import EditSession


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=4).eval()


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(12, 3, 32, 32, generator=g), torch.randint(0, 4, (12,), generator=g)


def _data() -> dict:
    x, y = _images()
    return {"test": (x[:8], y[:8]), "val": (x[8:], y[8:])}  # test image 0 is x[0]


def _close_call() -> torch.nn.Module:
    """The ResNet-18 with class 1 trailing image 0's prediction by 0.01 (a short edit closes it)."""
    model = _resnet()
    head = model.fc
    with torch.no_grad():
        logits = model(_images()[0][:1])[0]
        top = int(logits.argmax())
        head.bias[top] -= 5.0 if top == 1 else 0.0  # class 1 must not be the prediction itself
        logits = model(_images()[0][:1])[0]
        head.bias[1] += float(logits.max() - logits[1]) - 0.01
    return model


def test_a_config_with_only_an_lr_edits_the_sessions_default_group_on_a_torchvision_model(tmp_path):
    s = EditSession(_close_call(), _data(), device="cpu", config=EditorConfig(lr=1e-3))
    assert s.config.layers == "layer3" and s.config.lr == 1e-3  # the middle block, the given lr
    assert int(s.evaluator.base_preds[0]) != 1
    res = s.edit_index(0, 1, EditorConfig(lr=1e-3, max_steps=10))  # a config per edit too
    assert res.accepted and res.steps > 0, res.message
    assert res.config.layers == "layer3" and res.config.lr == 1e-3
    assert s.calibrations == {}  # lr given: nothing calibrated
    s.save(tmp_path / "h")  # the history records the group it edited
    again = EditSession(_close_call(), _data(), device="cpu")
    again.load_history(tmp_path / "h")
    assert [r.result.config.layers for r in again.history] == ["layer3"]


def test_edit_without_a_group_edits_the_models_default_group():
    model = _resnet()
    x = _images()[0][0]
    res = edit(model, x, 1, EditorConfig(lr=1e-3, max_steps=2))
    assert res.config.layers == "layer3"
    assert edit(model, x, 1, lr=1e-3, max_steps=2, layers=None).config.layers == "layer3"


def test_an_unset_group_stays_unset_until_resolved_and_records_keep_theirs():
    cfg = EditorConfig(lr=1e-3)
    assert cfg.layers is None and cfg.to_dict()["layers"] is None
    assert cfg.resolved().layers == DEFAULT_GROUP  # no model named: the project's ResNets' group
    assert cfg.resolved("blocks.2").layers == "blocks.2"
    assert EditorConfig(lr=1e-3, layers="features.3").resolved("blocks.2").layers == "features.3"
    assert EditorConfig.from_dict({"method": "rmsprop", "lr": 1e-3}).layers == DEFAULT_GROUP  # an old record
    assert EditorConfig.from_dict(EditorConfig(lr=1e-3, layers=["a", "b"]).to_dict()).layers == ("a", "b")
    with pytest.raises(TypeError, match="leave layers out \\(None\\) for the model's default group"):
        EditorConfig(layers=3)  # type: ignore[arg-type]

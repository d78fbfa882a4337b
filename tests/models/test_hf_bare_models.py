"""Hugging Face image classifiers built directly (``ViTForImageClassification(config)``, no
wrapper, no ``hf:`` builder): open, edit, undo bit for bit, export, reload as the same class with
the same logits, with no trust asked. The card names the class (``hf:<class name>``) within the
closed set, and the folder holds the config beside the weights. A hostile card is refused before
anything is built.

Tiny random-init configs (32 px, 4 classes, 1-2 blocks); nothing is downloaded.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torchvision

from tests.support.bad_input import refused
from workbench.models import forward_logits
from workbench.models.infer import infer_spec
from workbench.session import EditSession
from workbench.training import load_model, save_model

transformers = pytest.importorskip("transformers")


def vit() -> torch.nn.Module:
    return transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=4))


def convnext() -> torch.nn.Module:
    return transformers.ConvNextForImageClassification(transformers.ConvNextConfig(
        hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=4))


def resnet() -> torch.nn.Module:
    return transformers.ResNetForImageClassification(transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4))


def swin() -> torch.nn.Module:
    return transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4, num_labels=4))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 4, (16,), generator=g)


@pytest.mark.filterwarnings("ignore:Evaluator. the model could not be traced")  # the full forward is used
@pytest.mark.parametrize("make", [vit, convnext, resnet], ids=["vit", "convnext", "resnet"])
def test_a_bare_hugging_face_model_edits_undoes_exports_and_reloads_as_itself(make, tmp_path):
    torch.manual_seed(0)
    model = make().eval()
    s = EditSession(model, _data(), device="cpu")
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    res = s.edit_index(0, (int(s.evaluator.base_preds[0]) + 1) % 4, lr=5e-2, max_steps=20)
    assert res.accepted and res.steps > 0, res.message
    assert any(not torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    s.undo()
    assert all(torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    s.redo()
    folder = s.export(tmp_path / "m")
    card = json.loads((folder / "card.json").read_text())
    name = type(model).__name__
    assert card["builder"] == {"kind": "hf", "name": name}
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == [name] and config["model_type"] == model.config.model_type
    reloaded, _ = load_model(folder)  # no trust_code: a closed-set builder
    assert type(reloaded) is type(model)
    x = s.image([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(forward_logits(reloaded, x), forward_logits(s.model.eval(), x))
    assert str(infer_spec(reloaded)).startswith(f"hf:{name}:")


def test_the_exported_folder_opens_in_hugging_face_from_pretrained_too(tmp_path):
    torch.manual_seed(0)
    model = swin().eval()
    folder = save_model(tmp_path / "swin", model)
    again = transformers.SwinForImageClassification.from_pretrained(folder, local_files_only=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x).logits, model(x).logits)
    back, card = load_model(folder)
    assert type(back) is type(model) and card["builder"]["name"] == "SwinForImageClassification"


def test_exporting_another_model_over_a_hugging_face_one_removes_its_config_only(tmp_path):
    folder = save_model(tmp_path / "m", resnet())
    assert (folder / "config.json").is_file()
    save_model(folder, torchvision.models.resnet18(num_classes=4))
    assert not (folder / "config.json").exists()  # it described the model that was replaced
    (folder / "config.json").write_text("{}")  # a file of the user's own: kept
    save_model(folder, torchvision.models.resnet18(num_classes=4))
    assert (folder / "config.json").read_text() == "{}"


def test_an_export_failing_at_each_replace_keeps_the_previous_model_and_its_config(tmp_path, monkeypatch):
    torch.manual_seed(0)
    old, new = vit().eval(), vit().eval()
    folder = save_model(tmp_path / "m", old)
    files = {p: (folder / p).read_bytes() for p in ("model.safetensors", "card.json", "config.json")}
    real = os.replace
    for k in (1, 2, 3):  # the weights, the config, the card
        calls = [0]

        def fail_at_k(*args, _k=k, **kw):
            calls[0] += 1
            if calls[0] == _k:
                raise OSError(28, "No space left on device")
            return real(*args, **kw)

        monkeypatch.setattr(os, "replace", fail_at_k)
        with pytest.raises(OSError, match="No space left"):
            save_model(folder, new)
        monkeypatch.setattr(os, "replace", real)
        assert {p: (folder / p).read_bytes() for p in files} == files, f"a failure at replace #{k} changed the model"
        assert sorted(p.name for p in folder.iterdir()) == [".lock", "card.json", "config.json", "model.safetensors"]


# ---------------------------------------------------------------------------- hostile cards
def _exported(tmp_path: Path) -> Path:
    return save_model(tmp_path / "m", vit())


def _with(folder: Path, name: str | None = None, **config) -> None:
    card = json.loads((folder / "card.json").read_text())
    if name is not None:
        card["builder"]["name"] = name
    card["model_config"] = {**card["model_config"], **config}
    (folder / "card.json").write_text(json.dumps(card))


@pytest.mark.parametrize("name, config, match", [
    (None, {"auto_map": {"AutoModelForImageClassification": "evil.Model"}}, "names custom code \\('auto_map'\\)"),
    (None, {"trust_remote_code": True}, "names custom code \\('trust_remote_code'\\)"),
    ("EvilForImageClassification", {}, "'EvilForImageClassification' is not a Hugging Face image-classification"),
    ("ViTModel", {}, "'ViTModel' is not a Hugging Face image-classification"),  # in transformers, not in the set
    ("PreTrainedModel", {}, "'PreTrainedModel' is not a Hugging Face image-classification"),
    (None, {"hidden_size": 200_000, "intermediate_size": 800_000, "num_attention_heads": 1, "num_hidden_layers": 64},
     "above the 1e\\+09 that the workbench builds"),
    (None, {"id2label": {str(i): "x" * 64 for i in range(20_000)}, "num_labels": None},
     "bytes as JSON, above the 1048576 of a model config"),
    ("TimmWrapperForImageClassification", {"architecture": "hf-hub:timm/resnet18.a1_in1k"},
     "not a model of timm's registry"),
])
def test_a_hostile_hugging_face_card_is_refused_before_anything_is_built(tmp_path, name, config, match):
    folder = _exported(tmp_path)
    _with(folder, name, **{k: v for k, v in config.items() if v is not None})
    with refused(match, root=tmp_path):
        load_model(folder)


def test_save_model_refuses_a_builder_outside_the_hugging_face_closed_set(tmp_path):
    with refused("'ViTModel' is not a Hugging Face image-classification", root=tmp_path):
        save_model(tmp_path / "m", vit(), builder="hf:ViTModel")

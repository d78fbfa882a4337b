"""timm and Hugging Face models through the command line and cards, and the image size a model
was made for: ``--model timm:<name>[:k=v]`` (and ``timm:create_model:model_name=...``),
``hf:<folder>``, ``train --image-size`` on Fashion-MNIST, ``evaluate``/``localize`` at the
card's recorded size, ``--image-size`` overriding it, and a size the model cannot take refused
naming both sizes and the flag. Tiny random-init models (nothing is downloaded), few images.
"""
from __future__ import annotations

import json

import pytest
import torch

from workbench.cli import main
from workbench.models.spec import ModelSpec

timm = pytest.importorskip("timm")
TRAIN = ["--epochs", "1", "--train-subset", "64", "--eval-subset", "64", "--val-size", "32", "--batch-size", "32",
         "--no-progress", "--device", "cpu"]
EDITS = ["--edits", "2", "--limit", "32", "--lr", "1e-3", "--max-steps", "2", "--device", "cpu", "--no-progress"]
VIT32 = "timm:test_vit:img_size=32,patch_size=8"  # takes 32x32 images only (its patch embedding checks)


@pytest.fixture(scope="module")
def vit32(tmp_path_factory):
    """A model folder: a tiny timm ViT trained one short epoch on Fashion-MNIST resized to 32 px."""
    out = tmp_path_factory.mktemp("vit32") / "model"
    assert main(["train", "--recipe", "fashion-baseline", "--model", VIT32, "--image-size", "32", *TRAIN,
                 "--out", str(out)]) == 0
    return out


def test_timm_shorthand_and_create_model_name_the_same_builder():
    short = ModelSpec.parse("timm:resnet18:in_chans=1,num_classes=3")
    long = ModelSpec.parse("timm:create_model:model_name=resnet18,in_chans=1,num_classes=3")
    assert short == long == ModelSpec("timm", "resnet18", {"in_chans": 1, "num_classes": 3})
    old = {"builder": {"kind": "factory", "name": "timm:create_model"},
           "model_config": {"model_name": "resnet18", "in_chans": 1, "num_classes": 3}}
    assert ModelSpec.from_card(old) == short  # the closed-set timm builder: no trust_code needed
    with pytest.raises(ValueError, match="model_name=<a timm model>"):
        ModelSpec.parse("timm:create_model:in_chans=1")


def test_the_users_in_chans_is_kept_and_no_in_channels_is_added():
    spec = ModelSpec.parse("timm:resnet18:in_chans=3").with_defaults(num_classes=10, in_channels=1)
    assert spec.kwargs == {"in_chans": 3, "num_classes": 10}
    hf = ModelSpec("hf", "vit", {"num_channels": 3}).with_defaults(num_classes=4, in_channels=1)
    assert hf.kwargs == {"num_channels": 3, "num_classes": 4}


def test_train_at_32_then_evaluate_and_localize_use_the_cards_size(vit32, capsys):
    card = json.loads((vit32 / "card.json").read_text())
    assert card["input_shape"] == [1, 32, 32] and card["data"]["image_size"] == 32
    assert card["builder"] == {"kind": "timm", "name": "test_vit"} and card["model_config"]["in_channels"] == 1
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(vit32), *EDITS]) == 0  # data at 28 px, resized to the card's 32
    assert "base error" in capsys.readouterr().out
    assert main(["localize", "--checkpoint", str(vit32), "--index", "0", "--quick", "--layers", "blocks.0"]) == 0
    assert "critical neurons" in capsys.readouterr().out


def test_a_size_the_model_cannot_take_is_refused_naming_both_sizes(vit32, capsys):
    for cmd in (["evaluate", "--checkpoint", str(vit32), *EDITS, "--image-size", "28"],
                ["localize", "--checkpoint", str(vit32), "--index", "0", "--quick", "--image-size", "28"]):
        assert main(cmd) != 0
        err = capsys.readouterr().err
        assert "1x28x28" in err and "made for 32x32" in err and "--image-size 32" in err
    weights = str(vit32 / "model.safetensors")
    assert main(["evaluate", "--model", VIT32, "--weights", weights, *EDITS, "--image-size", "28"]) != 0
    assert "made for 32x32" in capsys.readouterr().err
    assert main(["evaluate", "--model", VIT32, "--weights", weights, *EDITS]) == 0  # img_size=32: resized to it


def test_image_size_overrides_the_card_for_a_model_that_takes_any_size(tmp_path, capsys):
    out = tmp_path / "cnn"
    assert main(["train", "--recipe", "fashion-baseline", "--model", "timm:test_resnet", "--image-size", "32",
                 *TRAIN, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), *EDITS, "--image-size", "28"]) == 0
    assert main(["evaluate", "--checkpoint", str(out), *EDITS, "--image-size", "0"]) != 0
    assert "--image-size must be a side in 1..4096" in capsys.readouterr().err


def test_train_refuses_a_model_that_cannot_take_the_data(tmp_path, capsys):
    assert main(["train", "--recipe", "fashion-baseline", "--model", VIT32, *TRAIN, "--out", str(tmp_path / "m")]) != 0
    err = capsys.readouterr().err
    assert "cannot take the data's 1x28x28 images" in err and "--image-size" in err
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_hf_config_folder_through_the_cli(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                    num_labels=10)
    cfg.save_pretrained(tmp_path / "cfg")
    out = tmp_path / "hf"
    assert main(["train", "--recipe", "fashion-baseline", "--model", f"hf:{tmp_path / 'cfg'}", *TRAIN,
                 "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["builder"] == {"kind": "hf", "name": "resnet"} and "trust" not in json.dumps(card).lower()
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), *EDITS]) == 0
    assert "base error" in capsys.readouterr().out
    torch.testing.assert_close(torch.tensor(card["input_shape"]), torch.tensor([1, 28, 28]))

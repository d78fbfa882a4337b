"""Bring your own model: save/load round trips that record how to rebuild any model, safe
weights files, and the CLI on a plain nn.Sequential CNN and on torchvision's resnet18."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torchvision

from tests.support.cnn import make_cnn
from workbench.cli import main
from workbench.models.infer import infer_spec
from workbench.models.spec import ModelSpec, parse_kwargs
from workbench.training import load_model, load_weights, save_model


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_spec_parsing():
    s = ModelSpec.parse("torchvision:resnet18:num_classes=10,in_channels=1")
    assert (s.kind, s.name, s.kwargs) == ("torchvision", "resnet18", {"num_classes": 10, "in_channels": 1})
    assert ModelSpec.parse(str(s)) == s
    f = ModelSpec.parse("pkg.mod:make:widths=(8,16),name='a',flag=True")
    assert (f.kind, f.name, f.kwargs) == ("factory", "pkg.mod:make", {"widths": [8, 16], "name": "a", "flag": True})
    assert ModelSpec.parse("small-resnet").kind == "arch"
    assert parse_kwargs("act=relu") == {"act": "relu"}
    for bad, msg in (("my-cnn", "unknown model"), ("torchvision:", "needs a model name"), ("x.y:f:k", "key=value")):
        with pytest.raises(ValueError, match=msg):
            ModelSpec.parse(bad)
    with pytest.raises(ValueError, match="torchvision has no model 'nope'"):
        ModelSpec.parse("torchvision:nope").build()
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg.models'"):
        ModelSpec.parse("no_such_pkg.models:f", trust_code=True).build()


def test_sequential_cnn_round_trip_with_an_importable_factory(tmp_path):
    net = make_cnn()
    with pytest.raises(ValueError, match="builder="):  # a bare nn.Sequential cannot be inferred
        save_model(tmp_path / "nope", net)
    assert not (tmp_path / "nope").exists()
    with pytest.raises(ValueError, match="weights differ"):  # a builder that builds something else
        save_model(tmp_path / "wrong", net, builder="tests.support.cnn:make_cnn:width=4", trust_code=True)
    folder = save_model(tmp_path / "cnn", net, {"note": "mine"}, builder="tests.support.cnn:make_cnn", trust_code=True)
    card = json.loads((folder / "card.json").read_text())
    assert card["builder"] == {"kind": "factory", "name": "tests.support.cnn:make_cnn"} and card["note"] == "mine"
    back, card2 = load_model(folder, trust_code=True)
    assert _same_state(back, net) and not back.training


def test_torchvision_resnet18_is_inferred_and_round_trips(tmp_path):
    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # as a notebook would adapt it to 1x28x28
    assert str(infer_spec(net)) == "torchvision:resnet18:num_classes=10,in_channels=1"
    folder = save_model(tmp_path / "r18", net)
    back, card = load_model(folder)
    assert card["arch"] == "torchvision:resnet18" and card["model_config"] == {"num_classes": 10, "in_channels": 1}
    assert _same_state(back, net)
    vit = torchvision.models.VisionTransformer(image_size=28, patch_size=7, num_layers=2, num_heads=2,
                                               hidden_dim=32, mlp_dim=64, num_classes=10)
    back, _ = load_model(save_model(tmp_path / "vit", vit))
    assert _same_state(back, vit)


def test_weights_files_load_safely(tmp_path):
    net = make_cnn()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    other = make_cnn()
    load_weights(other, tmp_path / "w.pt")
    assert _same_state(other, net)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match="refusing to load"):
        load_weights(other, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="does not match the model's architecture"):
        load_weights(make_cnn(width=4), tmp_path / "w.pt")
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items())


needs_adapter = pytest.mark.skipif(not __import__("importlib").util.find_spec("workbench.models.adapter"),
                                   reason="any-model groups (issue 11a) not merged yet")


@needs_adapter
def test_cli_evaluate_on_a_sequential_cnn_and_resnet18(tmp_path, fashion_small, capsys):
    cnn = make_cnn()
    weights = tmp_path / "cnn.safetensors"
    folder = save_model(tmp_path / "cnn", cnn, builder="tests.support.cnn:make_cnn", trust_code=True)
    weights = folder / "model.safetensors"
    out = tmp_path / "cnn.json"
    rc = main(["evaluate", "--trust-code", "--model", "tests.support.cnn:make_cnn", "--weights", str(weights), "--dataset",
               "fashion-mnist", "--layers", "3", "--edits", "3", "--limit", "150", "--lr", "1e-2",
               "--json", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    js = json.loads(out.read_text())
    assert js["edits"] == 3 and js["layers"] == "3" and js["editor_source"] == "given"
    assert main(["evaluate", "--trust-code", "--checkpoint", str(folder), "--layers", "3", "--edits", "2", "--limit", "150",
                 "--lr", "1e-2", "--no-progress"]) == 0
    r18 = torchvision.models.resnet18(num_classes=10)
    r18.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(r18.state_dict(), tmp_path / "r18.pt")
    out = tmp_path / "r18.json"
    rc = main(["evaluate", "--model", "torchvision:resnet18", "--weights", str(tmp_path / "r18.pt"),
               "--layers", "layer3.1", "--edits", "2", "--limit", "100", "--lr", "1e-3", "--json", str(out),
               "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    js = json.loads(out.read_text())
    assert js["layers"] == "layer3.1" and js["edits"] == 2 and "torchvision:resnet18" in js["checkpoint"]


@needs_adapter
def test_cli_evaluate_calibrates_a_model_without_tuned_defaults(tmp_path, capsys):
    folder = save_model(tmp_path / "cnn", make_cnn(), builder="tests.support.cnn:make_cnn", trust_code=True)
    out = tmp_path / "cal.json"
    rc = main(["evaluate", "--trust-code", "--checkpoint", str(folder), "--layers", "7", "--edits", "2", "--limit", "100",
               "--calibration-edits", "3", "--json", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "calibrated rmsprop" in text and "no tuned default" in text
    assert json.loads(out.read_text())["editor_source"] == "calibrated"


def _folder(root, n_per_class: int = 10):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, cls in enumerate(("circle", "square", "zigzag")):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            img = rng.integers(0, 60, (12, 12, 3), dtype=np.uint8) + 60 * k
            Image.fromarray(img).save(root / cls / f"{i}.png")
    return root


@needs_adapter
def test_train_on_an_image_folder_records_what_reopens_it(tmp_path, capsys):
    from workbench.session import EditSession

    root = _folder(tmp_path / "shapes")
    out = tmp_path / "model"
    rc = main(["train", "--recipe", "fashion-baseline", "--dataset", f"imagefolder:{root}", "--image-size", "8",
               "--grayscale", "--epochs", "1", "--batch-size", "8", "--model", "tests.support.cnn:make_cnn",
               "--trust-code", "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    card = json.loads((out / "card.json").read_text())
    assert card["builder"] == {"kind": "factory", "name": "tests.support.cnn:make_cnn"}
    assert card["model_config"] == {"num_classes": 3, "in_channels": 1}
    assert card["input_shape"] == [1, 8, 8] and card["classes"] == ["circle", "square", "zigzag"]
    assert card["data"]["image_size"] == 8 and card["data"]["grayscale"] is True
    assert card["normalization"]["mean"] == card["mean"] and len(card["std"]) == 1
    s = EditSession.from_checkpoint(out, device="cpu", trust_code=True)  # the same folder, image size, channels, split
    assert s.bundle.input_shape == (1, 8, 8) and s.bundle.classes == ("circle", "square", "zigzag")
    assert len(s.bundle.test_y) == 6 and s.evaluator.base_error == pytest.approx(card["test_error"])


@needs_adapter
def test_tune_editor_works_on_any_model(tmp_path, capsys):
    from workbench.evaluation.calibration import CALIBRATION_LRS

    folder = save_model(tmp_path / "cnn", make_cnn(), builder="tests.support.cnn:make_cnn", trust_code=True)
    out = tmp_path / "tune.json"
    rc = main(["tune-editor", "--trust-code", "--model", "tests.support.cnn:make_cnn", "--weights", str(folder / "model.safetensors"),
               "--layers", "7", "--editor", "gd", "--edits", "4", "--val-limit", "80", "--refine", "0",
               "--json", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert "no tuned default for this model and group" in capsys.readouterr().out
    js = json.loads(out.read_text())
    assert sorted(p["lr"] for p in js["points"]) == sorted(CALIBRATION_LRS) and js["layers"] == "7"


def test_timm_models_round_trip_from_the_registry(tmp_path, fashion_small, capsys):
    timm = pytest.importorskip("timm")
    from workbench.session import EditSession

    raw = timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=1)
    assert str(infer_spec(raw)) == "timm:test_resnet:num_classes=10,in_chans=1"
    back, card = load_model(save_model(tmp_path / "raw", raw, {"dataset": "fashion-mnist"}))
    assert card["builder"] == {"kind": "timm", "name": "test_resnet"} and _same_state(back, raw)
    net = ModelSpec.parse("timm:test_resnet").with_defaults(num_classes=10, in_channels=1).build()
    s = EditSession(net, fashion_small, limit=100, device="cpu")
    folder = s.export(tmp_path / "exported")
    reopened = EditSession.from_checkpoint(folder, bundle=fashion_small, limit=100, device="cpu")
    assert _same_state(reopened.model, net) and reopened.evaluator.base_error == s.evaluator.base_error
    rc = main(["evaluate", "--model", "timm:test_resnet", "--weights", str(folder / "model.safetensors"),
               "--layers", "fc", "--edits", "2", "--limit", "100", "--lr", "1e-3", "--no-progress"])
    assert rc == 0, capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Evaluator. the model could not be traced")  # the full forward is used
def test_hugging_face_configs_round_trip_without_code_or_downloads(tmp_path, fashion_small, capsys):
    pytest.importorskip("transformers")
    from workbench.models.builders import HFImageClassifier
    from workbench.session import EditSession

    cfg = tmp_path / "hf-config"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"model_type": "resnet", "num_channels": 1, "embedding_size": 8,
                                                 "hidden_sizes": [8, 16], "depths": [1, 1], "num_labels": 10,
                                                 "architectures": ["ResNetForImageClassification"]}))
    spec = ModelSpec.parse(f"hf:{cfg}")
    assert (spec.kind, spec.name, spec.kwargs["hidden_sizes"]) == ("hf", "resnet", [8, 16])
    net = spec.build()
    assert isinstance(net, HFImageClassifier) and net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    s = EditSession(net, fashion_small, limit=100, device="cpu")
    folder = s.export(tmp_path / "exported")
    card = json.loads((folder / "card.json").read_text())
    assert card["builder"] == {"kind": "hf", "name": "resnet"} and card["model_config"]["num_labels"] == 10
    back, _ = load_model(folder)
    assert _same_state(back, net)
    assert str(infer_spec(back)).startswith("hf:resnet:")  # a model built from the card rebuilds from the card
    rc = main(["evaluate", "--model", f"hf:{cfg}", "--weights", str(folder / "model.safetensors"),
               "--layers", "model.classifier", "--edits", "2", "--limit", "100", "--lr", "1e-3", "--no-progress"])
    assert rc == 0, capsys.readouterr().err


def test_an_older_card_naming_a_torchvision_model_class_opens_without_trust(tmp_path):
    vit = torchvision.models.VisionTransformer(image_size=28, patch_size=7, num_layers=1, num_heads=2,
                                               hidden_dim=16, mlp_dim=16, num_classes=10)
    folder = save_model(tmp_path / "vit", vit)
    card = json.loads((folder / "card.json").read_text())
    assert card["builder"] == {"kind": "torchvision", "name": "VisionTransformer"}
    card["builder"] = {"kind": "factory", "name": "torchvision.models.vision_transformer:VisionTransformer"}
    (folder / "card.json").write_text(json.dumps(card))  # as infer_spec wrote it before the closed set
    back, _ = load_model(folder)
    assert _same_state(back, vit)

"""Bad input: model folders. load_model refuses corrupted, tampered or absurd folders with a
message naming the problem, before it builds anything, and changes no file."""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.support.repo import ROOT
from tests.support.bad_input import refused, tree
from tests.support.weights import same_weights, weights
from tests.support.hostile_code import IDS, hostile_builders, recording_factory
from workbench.training import load_model
from workbench.training.card_checks import file_sha256



@pytest.fixture()
def folder(tiny_model_dir, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(tiny_model_dir, out)
    return out


def _card(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text())


def _set_card(folder: Path, card) -> None:
    (folder / "card.json").write_text(json.dumps(card))


def test_the_card_records_the_weights_hash(folder):
    assert _card(folder)["model_sha256"] == file_sha256(folder / "model.safetensors")


def test_a_null_card_is_refused(folder, tmp_path):
    _set_card(folder, None)
    with refused(r"card.json holds null, not a JSON object", root=tmp_path):
        load_model(folder)


@pytest.mark.parametrize("where, value", [("model_config", -1), ("model_config", "ten"), ("model_config", True),
                                          ("card", 0)])
def test_a_bad_num_classes_is_refused(folder, tmp_path, where, value):
    card = _card(folder)
    (card["model_config"] if where == "model_config" else card)["num_classes"] = value
    _set_card(folder, card)
    with refused(rf"{where} 'num_classes' must be an integer in 1\.\.", root=tmp_path):
        load_model(folder)


def test_a_non_utf8_card_is_refused(folder, tmp_path):
    (folder / "card.json").write_bytes(b'{"arch": "small-resnet\xff\xfe"}')
    with refused(r"card.json is not UTF-8 text", root=tmp_path):
        load_model(folder)


def test_a_card_that_is_a_folder_is_refused(folder, tmp_path):
    (folder / "card.json").unlink()
    (folder / "card.json").mkdir()
    with refused(r"card.json is a folder, not a card file", root=tmp_path):
        load_model(folder)


@pytest.mark.parametrize("widths", [[1000000, 1000000, 1000000, 1000000], [16, 32, 64, 300000]])
def test_absurd_widths_are_refused_before_anything_is_built(folder, tmp_path, widths):
    card = _card(folder)
    card["model_config"]["widths"] = widths
    _set_card(folder, card)
    t0 = time.perf_counter()
    with refused(r"describes a model of .* parameters and buffers, above the 1e\+09 that the workbench builds", root=tmp_path):
        load_model(folder)
    assert time.perf_counter() - t0 < 30  # counted on the meta device: nothing allocated


@pytest.mark.parametrize("widths", [[16, -3, 64, 128], [16.5, 32, 64, 128], "wide"])
def test_malformed_widths_are_named(folder, tmp_path, widths):
    card = _card(folder)
    card["model_config"]["widths"] = widths
    _set_card(folder, card)
    with refused(r"model_config 'widths' must be a non-empty list of integers >= 1", root=tmp_path):
        load_model(folder)


def test_weights_that_differ_from_the_card_hash_are_refused_unless_overridden(folder, tmp_path):
    state = load_file(str(folder / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 1e-3  # a small, silent change: still a valid file
    save_file(state, str(folder / "model.safetensors"))
    with refused(r"model.safetensors does not match its card: SHA-256 .*pass verify_sha256=False", root=tmp_path):
        load_model(folder)
    model, _ = load_model(folder, verify_sha256=False)  # the explicit override
    assert torch.equal(model.state_dict()[name], state[name])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_holding_nan_or_inf_are_refused(folder, tmp_path, bad):
    state = load_file(str(folder / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[1] = bad
    save_file(state, str(folder / "model.safetensors"))
    card = _card(folder)
    card["model_sha256"] = file_sha256(folder / "model.safetensors")  # the hash matches: only the values are bad
    _set_card(folder, card)
    with refused(rf"tensor {name!r} holds NaN or inf values", root=tmp_path):
        load_model(folder)


def test_a_path_to_another_file_of_the_folder_is_refused(folder, tmp_path):
    torch.save(load_file(str(folder / "model.safetensors")), folder / "weights.pt")
    with refused(r"load_model takes a model folder \(or its model.safetensors\), not 'weights.pt'.*load_weights",
                 root=tmp_path):
        load_model(folder / "weights.pt")
    with refused(r"not 'card.json'", root=tmp_path):
        load_model(folder / "card.json")
    model, _ = load_model(folder / "model.safetensors")  # the weights file itself still works
    assert same_weights(weights(model), weights(load_model(folder)[0]))


@pytest.mark.parametrize("case", range(len(IDS)), ids=IDS)
def test_a_card_builder_naming_code_is_refused_and_nothing_runs(folder, tmp_path, case):
    marker = tmp_path / "ran"
    builder, config, match = hostile_builders(marker)[case]
    card = _card(folder)
    card["builder"] = {"kind": "factory", "name": builder}
    card["model_config"] = config
    _set_card(folder, card)
    with refused(rf"card.json: builder {re.escape(repr(builder))} .*{re.escape(match)}", root=tmp_path):
        load_model(folder)
    assert not marker.exists()
    if match != "--trust-code":  # an attribute path or the standard library: refused even when trusted
        with refused(re.escape(match), root=tmp_path):
            load_model(folder, trust_code=True)
        assert not marker.exists()


@pytest.mark.parametrize("case", [0, 2, 3], ids=[IDS[0], IDS[2], IDS[3]])
def test_edit_session_from_checkpoint_refuses_a_card_naming_code(folder, tmp_path, case):
    from workbench.session import EditSession

    marker = tmp_path / "ran"
    builder, config, match = hostile_builders(marker)[case]
    card = _card(folder)
    card["builder"], card["model_config"] = {"kind": "factory", "name": builder}, config
    _set_card(folder, card)
    with refused(re.escape(match), root=tmp_path):
        EditSession.from_checkpoint(folder, device="cpu", limit=50)
    assert not marker.exists()


def _factory_card(folder: Path, builder: str) -> None:
    card = _card(folder)
    card["builder"] = {"kind": "factory", "name": builder}
    _set_card(folder, card)


def test_a_user_factory_is_neither_imported_nor_called_without_trust(folder, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    builder, imported, called = recording_factory(tmp_path)
    _factory_card(folder, builder)
    with refused(rf"builder '{builder}' is code that the model card or --model names.*pass trust_code=True "
                 r"\(Python\) or --trust-code", root=tmp_path):
        load_model(folder)
    assert not imported.exists() and not called.exists()
    model, _ = load_model(folder, trust_code=True)  # the caller trusts it: it is imported and called
    assert imported.exists() and called.exists()
    assert same_weights(weights(model), {k: v for k, v in load_file(str(folder / "model.safetensors")).items()})


def test_tampered_weights_are_refused_before_a_trusted_factory_runs(folder, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    builder, imported, called = recording_factory(tmp_path)
    _factory_card(folder, builder)
    state = load_file(str(folder / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] * 2
    save_file(state, str(folder / "model.safetensors"))
    with refused(r"model.safetensors does not match its card: SHA-256", root=tmp_path):
        load_model(folder, trust_code=True)
    assert not imported.exists() and not called.exists()


def test_weights_whose_values_changed_kind_are_refused(folder, tmp_path):
    state = load_file(str(folder / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].to(torch.int32)  # names and shapes kept: load_state_dict would cast silently
    save_file(state, str(folder / "model.safetensors"))
    card = _card(folder)
    card["model_sha256"] = file_sha256(folder / "model.safetensors")
    _set_card(folder, card)
    with refused(rf"dtype mismatch \[.{re.escape(name)}: file torch.int32 vs model torch.float32", root=tmp_path):
        load_model(folder)


@pytest.mark.parametrize("where, value, match", [
    ("model_config", 64, r"the model .* says images of shape \[1, 64, 64\] but the card's input_shape says "
                         r"\[1, 28, 28\].*input_size 28"),
    ("model_config, no input_shape", 32, r"the model .* says images of shape \[1, 32, 32\] but its data set "
                                         r"fashion-mnist says \[1, 28, 28\]"),
    ("input_shape", [3, 28, 28], r"says images of shape \[1, 28, 28\] but the card's input_shape says \[3, 28, 28\]"),
    ("model_config", 0, r"model_config 'input_size' must be an integer in 1\.\.16384"),
    ("input_shape", [1, 28], r"'input_shape' must be \[channels, height, width\]"),
])
def test_a_card_with_a_wrong_image_size_is_refused(folder, tmp_path, where, value, match):
    card = _card(folder)
    if where.startswith("model_config"):
        card["model_config"]["input_size"] = value
        if "no input_shape" in where:  # as the shipped cards: the data set gives the shape
            del card["input_shape"]
    else:
        card["input_shape"] = value
    _set_card(folder, card)
    with refused(match, root=tmp_path):
        load_model(folder)


def test_a_card_whose_classes_differ_from_the_model_outputs_is_refused(folder, tmp_path):
    card = _card(folder)
    card["classes"] = card["classes"][:7]
    _set_card(folder, card)
    with refused(r"the card lists 7 classes but the model gives 10 outputs", root=tmp_path):
        load_model(folder)


@pytest.mark.parametrize("builder, config, match", [
    ({"kind": "timm", "name": "resnet18"}, {"checkpoint_path": "/tmp/x.pth"}, "'checkpoint_path' loads weights"),
    ({"kind": "timm", "name": "resnet18"}, {"pretrained": True}, "'pretrained' loads weights"),
    ({"kind": "timm", "name": "hf-hub:timm/resnet18.a1_in1k"}, {}, "hub and local-file names are not opened"),
    ({"kind": "hf", "name": "resnet"}, {"auto_map": {"AutoModelForImageClassification": "evil.Model"}},
     "names custom code"),
    ({"kind": "hf", "name": "resnet"}, {"use_pretrained_backbone": True}, "pretrained backbone"),
    ({"kind": "torchvision", "name": "resnet18"}, {"weights": "IMAGENET1K_V1"}, "not downloaded here"),
])
def test_registry_builders_never_download_nor_run_named_code(folder, tmp_path, builder, config, match):
    pytest.importorskip("timm")
    pytest.importorskip("transformers")
    card = _card(folder)
    card["builder"], card["model_config"] = builder, config
    _set_card(folder, card)
    with refused(re.escape(match), root=tmp_path):
        load_model(folder)


@pytest.mark.parametrize("package, builder", [("timm", {"kind": "timm", "name": "resnet18"}),
                                              ("transformers", {"kind": "hf", "name": "resnet"})])
def test_a_missing_optional_package_is_named_with_its_install_command(folder, tmp_path, monkeypatch, package,
                                                                       builder):
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    card = _card(folder)
    card["builder"], card["model_config"] = builder, {}
    _set_card(folder, card)
    with refused(rf"needs the {package} package, which is not installed: pip install {package}", root=tmp_path):
        load_model(folder)


@pytest.mark.parametrize("name", ["fashion-baseline", "fashion-editable"])
def test_shipped_cards_record_their_hash_summaries_and_the_readme_command(name):
    folder = ROOT / "assets" / "models" / name
    card = _card(folder)
    assert card["model_sha256"] == file_sha256(folder / "model.safetensors")
    load_model(folder)  # verified
    assert (folder / "card.json").stat().st_size < 50_000
    assert card["command"].split("--out ")[1].split()[0] == f"assets/models/{name}" and "/tmp" not in json.dumps(card)
    assert card["evaluation"] and all("per_edit" not in r and (ROOT / r["per_edit_file"]).is_file()
                                      for r in card["evaluation"].values())


def _image_folder(root: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, cls in enumerate(("ant", "bee", "cat")):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray((rng.integers(0, 60, (8, 8, 3)) + 60 * k).astype(np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_an_exported_image_folder_session_reopens_on_its_folder(tmp_path):
    from workbench.models.spec import ModelSpec
    from workbench.session import EditSession

    root = _image_folder(tmp_path / "shapes")
    model = ModelSpec.parse("small-resnet:num_classes=3,in_channels=3,input_size=8,widths=[4,4,4,4]").build()
    s = EditSession(model, str(root), resize=8, device="cpu")
    out = s.export(tmp_path / "exported")
    card = _card(out)
    assert card["dataset"] == f"imagefolder:{root.resolve()}" and card["data"]["image_size"] == 8
    back = EditSession.from_checkpoint(out, device="cpu")  # not Fashion-MNIST: the folder it was made on
    assert back.bundle.classes == ("ant", "bee", "cat") and back.bundle.input_shape == (3, 8, 8)
    assert torch.equal(back.bundle.test_y, s.bundle.test_y)
    del card["dataset"]  # an older export: no data set recorded, classes that are not Fashion-MNIST's
    _set_card(out, card)
    with refused(r"the model card records no data set, and its classes \(ant, bee, cat .*--dataset imagefolder:PATH",
                 root=tmp_path):
        EditSession.from_checkpoint(out, device="cpu")

"""Bad input: model folders. load_model refuses corrupted, tampered or absurd folders with a
message naming the problem, before it builds anything, and changes no file."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from bad_input_common import refused, same_weights, tree, weights
from workbench.training import load_model
from workbench.training.card_checks import file_sha256

ROOT = Path(__file__).resolve().parents[1]


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
    with refused(r"describes a model of .* parameters and buffers, above the 1e\+09 that load_model builds", root=tmp_path):
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


def test_a_card_naming_a_standard_library_callable_is_refused_and_nothing_runs(folder, tmp_path):
    marker = tmp_path / "ran"
    card = _card(folder)
    card["builder"] = {"kind": "factory", "name": "os:system"}
    card["model_config"] = {"command": f"touch {marker}"}
    _set_card(folder, card)
    with refused(r"builder 'os:system' names a Python standard-library callable", root=tmp_path):
        load_model(folder)
    assert not marker.exists()


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

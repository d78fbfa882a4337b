"""Model folders (safetensors + JSON card) and safe loading."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.training import load_model, save_model
from workbench.training.checkpoint import safe_torch_load
from workbench.training.model_files import CARD_FILE, MODEL_FILE


def test_save_load_roundtrip_is_bit_exact(tiny_model, tmp_path):
    folder = save_model(tmp_path / "m", tiny_model, {"arch": "small-resnet", "note": "round trip"})
    assert (folder / MODEL_FILE).exists() and (folder / CARD_FILE).exists()
    model, card = load_model(folder)
    assert card["note"] == "round trip" and card["model_config"] == tiny_model.config()
    a, b = tiny_model.state_dict(), model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # BN buffers included
    assert not model.training
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        assert torch.equal(model(x), tiny_model.eval()(x))
    assert load_model(folder / MODEL_FILE)[1] == card  # a path to the weights file also works


def test_card_architecture_mismatch_names_it(tiny_model, tmp_path):
    folder = save_model(tmp_path / "m", tiny_model, {"arch": "small-resnet"})
    card = json.loads((folder / CARD_FILE).read_text())
    card["model_config"]["widths"][-1] *= 2  # weights are for 16 channels, card says 32
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ValueError, match="does not match the model's architecture") as err:
        load_model(folder)
    assert "chain4" in str(err.value) and "shape mismatch" in str(err.value)


def test_corrupted_card_and_weights(tiny_model, tmp_path):
    folder = save_model(tmp_path / "m", tiny_model, {"arch": "small-resnet"})
    good = (folder / CARD_FILE).read_text()
    (folder / CARD_FILE).write_text(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(folder)
    (folder / CARD_FILE).write_text(good)
    (folder / MODEL_FILE).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="safetensors"):
        load_model(folder)
    with pytest.raises(FileNotFoundError, match=CARD_FILE):
        load_model(tmp_path / "nowhere")


class _Payload:
    """Pickles to a call of ``open(marker, "w")``: loading it unsafely creates the file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_safe_torch_load_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(2), "evil": _Payload(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="refusing to load"):
        safe_torch_load(path)
    assert not marker.exists()  # the payload's code did not run
    # the payload is armed: an unsafe load would have run it
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.exists()


def test_safe_torch_load_accepts_plain_state(tmp_path):
    path = tmp_path / "state.pt"
    state = {"step": 3, "w": torch.arange(4.0), "nested": [torch.ones(1), {"lr": 0.1}]}
    torch.save(state, path)
    back = safe_torch_load(path)
    assert back["step"] == 3 and torch.equal(back["w"], state["w"]) and back["nested"][1] == {"lr": 0.1}

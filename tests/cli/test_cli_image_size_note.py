"""``--image-size`` other than the size a model was made for, on a model that takes any size: it
runs, with a one-line note naming both sizes (``evaluate`` and ``localize``); at the card's own
size, no note."""
from __future__ import annotations

import pytest

from workbench.cli import main
from workbench.data.datasets import FASHION_CLASSES
from workbench.training import save_model

timm = pytest.importorskip("timm")
EDITS = ["--edits", "2", "--limit", "32", "--lr", "1e-3", "--max-steps", "2", "--device", "cpu", "--no-progress"]
NOTE = ("note: --image-size 28 reads the data at 28x28; the model runs at that size, but it was made for 32x32 "
        "(its card's input_shape)")


def test_a_size_other_than_the_cards_gets_a_note_naming_both(tmp_path, capsys):
    net = timm.create_model("test_resnet", pretrained=False, in_chans=1, num_classes=10)
    folder = save_model(tmp_path / "cnn", net, {"dataset": "fashion-mnist", "classes": list(FASHION_CLASSES),
                                                "input_shape": [1, 32, 32], "data": {"image_size": 32}})
    assert main(["evaluate", "--checkpoint", str(folder), *EDITS, "--image-size", "28"]) == 0
    err = capsys.readouterr().err
    assert NOTE in err and len([line for line in err.splitlines() if line.startswith("note: --image-size")]) == 1
    assert main(["localize", "--checkpoint", str(folder), "--index", "0", "--quick", "--layers", "layer1",
                 "--image-size", "28"]) == 0
    assert NOTE in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(folder), *EDITS, "--image-size", "32"]) == 0
    assert "note: --image-size" not in capsys.readouterr().err

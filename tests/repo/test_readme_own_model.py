"""The README's own-model example and the snippets of docs/own-model.md run as written
(a torchvision model, a custom nn.Module defined in its own file, a timm ViT and a Hugging Face
ViT, both built from their configurations with random weights: no downloads)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
from tests.support.repo import ROOT



def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def _readme_block() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Your own model")
    (block,) = _python_blocks(readme[start:readme.index("\n## ", start + 5)])
    return block


def _docs_blocks() -> list[str]:
    return _python_blocks((ROOT / "docs" / "own-model.md").read_text())


def test_the_readme_and_the_page_have_their_snippets():
    block = _readme_block()
    assert "EditSession(model" in block and "session.edit(" in block and "session.export(" in block
    assert len(block.strip().splitlines()) <= 15, "the README's example should stay about 10 lines"
    blocks = _docs_blocks()
    assert len(blocks) == 5 and "torchvision.models.resnet18" in blocks[0]
    assert blocks[1].startswith("# my_models.py") and "from my_models import SmallCNN" in blocks[2]
    assert "pretrained=False" in blocks[3] and "ViTForImageClassification(config)" in blocks[4]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("workbench.models.adapter") is None,
                    reason="any-model groups (issue 11a) not merged yet")
def test_the_snippets_run_as_written(tmp_path):
    readme = _readme_block()
    tv, module, custom, timm_vit, hf_vit = _docs_blocks()
    (tmp_path / "my_models.py").write_text(module)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "MPLBACKEND": "Agg",
           "HF_HUB_OFFLINE": "1"}  # the Hugging Face snippet must not need the network
    out = {}
    for name, code in (("README", readme), ("torchvision", tv), ("custom", custom), ("timm", timm_vit),
                       ("hf", hf_vit)):
        res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, f"{name} snippet failed:\n{res.stderr[-3000:]}"
        assert "calibrated" in res.stdout, res.stdout
        out[name] = res.stdout
    assert "'blocks.2'" in out["timm"] and "\nblocks.2\n" in out["timm"]  # the middle block is the default
    assert "blocks.3" in out["timm"].splitlines()[-1]  # GradCAM: the last block
    assert "'vit.layers.2'" in out["hf"] and "'classifier'" in out["hf"]
    assert (tmp_path / "runs" / "my-model" / "card.json").exists()
    assert (tmp_path / "runs" / "my-resnet18" / "card.json").exists()
    card = (tmp_path / "runs" / "my-cnn" / "card.json").read_text()
    assert "my_models:SmallCNN" in card
    hf = json.loads((tmp_path / "runs" / "my-hf-vit" / "card.json").read_text())
    assert hf["builder"] == {"kind": "hf", "name": "ViTForImageClassification"}
    assert (tmp_path / "runs" / "my-hf-vit" / "config.json").exists()

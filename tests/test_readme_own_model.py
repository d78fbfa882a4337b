"""The README's "Your own model" snippets run verbatim (a torchvision model and a custom nn.Module)."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Your own model")
    section = readme[start:readme.index("\n## ", start + 5)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_section_has_the_three_snippets():
    blocks = _blocks()
    assert len(blocks) == 3 and "torchvision.models.resnet18" in blocks[0]
    assert blocks[1].startswith("# my_models.py") and "from my_models import SmallCNN" in blocks[2]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("workbench.models.adapter") is None,
                    reason="any-model groups (issue 11a) not merged yet")
def test_the_snippets_run_verbatim(tmp_path):
    tv, module, custom = _blocks()
    (tmp_path / "my_models.py").write_text(module)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "MPLBACKEND": "Agg"}
    for name, code in (("torchvision", tv), ("custom", custom)):
        res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, f"{name} snippet failed:\n{res.stderr[-3000:]}"
        assert "calibrated" in res.stdout, res.stdout
    assert (tmp_path / "runs" / "my-resnet18" / "card.json").exists()
    card = (tmp_path / "runs" / "my-cnn" / "card.json").read_text()
    assert "my_models:SmallCNN" in card

"""Values the tests share: the tiny architecture, the editor settings that reliably succeed on the
tiny model, and the widget tests' split size and editor step."""
from __future__ import annotations

import json

from workbench.editing import EditorConfig

TINY = {"widths": [8, 8, 16, 16], "blocks": [1, 1, 1, 1]}  # the tiny ResNet's arch_kwargs
TINY_JSON = json.dumps(TINY)  # the same, as ``--arch-kwargs`` takes it

CFG = EditorConfig(method="rmsprop", lr=2e-2, max_steps=20)  # reliably succeeds on the tiny model
FAIL = EditorConfig(method="rmsprop", lr=0.0, max_steps=2)  # cannot move: always fails

LIMIT = 300  # test images the widget tests score
LR = 1e-2  # the tiny model needs a larger editor step in the widgets than the shipped default

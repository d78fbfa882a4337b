"""Builders a hostile model card (or ``--model``) could name, and a factory module that records
whether it was imported or called: the trust tests check that nothing of it ran."""
from __future__ import annotations

import uuid
from pathlib import Path


def hostile_builders(marker: Path) -> list[tuple[str, dict, str]]:
    """``(builder, model_config, expected message)``: each would run a command or write a file
    (``marker``) if it were called with the card's arguments."""
    cmd = f"touch {marker}"
    return [
        ("torch:os.system", {"command": cmd}, "names an attribute path"),
        ("IPython.utils.process:os.system", {"command": cmd}, "names an attribute path"),
        ("workbench.training.checkpoint:subprocess.run", {"args": ["touch", str(marker)]}, "names an attribute path"),
        ("numpy:save", {"file": str(marker), "arr": [1, 2]}, "--trust-code"),
        ("torch:save", {"obj": [1], "f": str(marker)}, "--trust-code"),
        ("os:system", {"command": cmd}, "standard-library"),
    ]


IDS = ["torch-os.system", "ipython-os.system", "checkpoint-subprocess.run", "numpy-save", "torch-save", "os-system"]


def recording_factory(folder: Path) -> tuple[str, Path, Path]:
    """Write a module into ``folder`` (put it on ``sys.path``) whose ``make(**kw)`` builds the
    project's small ResNet. Importing it creates ``imported``, calling ``make`` creates ``called``.

    Returns ``(builder "module:make", imported, called)``; the module name is new each time.
    """
    name = f"wb_user_models_{uuid.uuid4().hex[:8]}"
    imported, called = folder / f"{name}.imported", folder / f"{name}.called"
    (folder / f"{name}.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(imported)!r}).touch()\n\n\n"
        "def make(**kw):\n"
        f"    Path({str(called)!r}).touch()\n"
        "    from workbench.models.resnet import small_resnet\n"
        "    return small_resnet(**kw)\n")
    return f"{name}:make", imported, called

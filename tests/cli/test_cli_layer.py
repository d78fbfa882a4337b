"""The CLI is one top-level package (workbench/cli/, one module per subcommand) that nothing imports."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from tests.support.repo import ROOT



def test_nothing_below_the_cli_imports_it():
    offenders = []
    for path in (ROOT / "workbench").rglob("*.py"):
        rel = path.relative_to(ROOT / "workbench")
        if rel.parts[0] == "cli" or rel.name == "__main__.py":
            continue
        text = path.read_text()
        if re.search(r"^\s*(from\s+(workbench|\.+)\s*\.?\s*cli\b|import\s+workbench\.cli\b|from\s+\.\.?\s+import\s+cli\b)",
                     text, re.M) or "import_module(\"workbench.cli" in text:
            offenders.append(str(rel))
    assert not offenders, f"imports of the CLI from below it: {offenders}"


def test_every_subcommand_is_one_module_with_the_documented_interface():
    from workbench.cli import commands

    cmds = commands()
    assert {"train", "evaluate", "tune-editor", "merge-results", "localize"} <= set(cmds)
    for name, mod in cmds.items():
        assert mod.__name__.startswith("workbench.cli.") and callable(mod.add_arguments) and callable(mod.run)
        assert isinstance(mod.HELP, str) and mod.HELP


def test_entry_points_still_work():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["workbench"] == "workbench.cli:main"
    res = subprocess.run([sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and "tune-editor" in res.stdout and "localize" in res.stdout
    res = subprocess.run([sys.executable, "-m", "workbench", "evaluate", "--model", "torchvision:resnet18"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and "needs --weights FILE" in res.stderr

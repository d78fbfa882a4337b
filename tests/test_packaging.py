"""Packaging: the two commands, CI entry point, dependency lists in agreement, repo hygiene."""
from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch"}
MAX_TRACKED_BYTES = 20 * 1024 * 1024
MAX_NOTEBOOK_OUTPUT_BYTES = 10 * 1024  # per cell: notebooks ship stripped (at most tiny text outputs)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_requirements() -> dict[str, SpecifierSet]:
    proj = _pyproject()["project"]
    reqs = [Requirement(r) for r in proj["dependencies"] + proj["optional-dependencies"]["test"]]
    names = [canonicalize_name(r.name) for r in reqs]
    assert len(names) == len(set(names)), f"pyproject.toml lists a package twice: {names}"
    return {canonicalize_name(r.name): r.specifier for r in reqs}


def _conda_requirements() -> dict[str, SpecifierSet]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    out: dict[str, SpecifierSet] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip section
            for line in dep["pip"]:
                if not line.startswith("-"):  # skip "--editable ." and other pip options
                    r = Requirement(line)
                    assert canonicalize_name(r.name) not in out, f"{r.name} listed twice"
                    out[canonicalize_name(r.name)] = r.specifier
            continue
        name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", dep).groups()  # type: ignore[union-attr]
        if name in ("python", "pip"):
            continue
        key = canonicalize_name(CONDA_TO_PYPI.get(name, name))
        assert key not in out, f"{name} listed twice in environment.yml"
        out[key] = SpecifierSet(spec.replace(" ", ""))
    return out


def test_environment_yml_matches_pyproject():
    py, conda = _pyproject_requirements(), _conda_requirements()
    assert sorted(conda) == sorted(py), (
        f"only in pyproject.toml: {sorted(set(py) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(py))}")
    for pinned in ("torch", "torchvision"):
        assert len(py[pinned]) == 1 and next(iter(py[pinned])).operator == "==", f"{pinned} must be pinned"
        assert py[pinned] == conda[pinned], f"{pinned}: pyproject {py[pinned]} vs environment.yml {conda[pinned]}"
    differ = {n: (str(py[n]), str(conda[n])) for n in py if py[n] != conda[n]}
    assert not differ, f"version constraints differ (pyproject, environment.yml): {differ}"


def test_install_script_pins_match_pyproject():
    py = _pyproject_requirements()
    script = (ROOT / "scripts" / "install.sh").read_text()
    for name in ("torch", "torchvision"):
        pins = re.findall(rf'"{name}==([0-9.]+)"', script)
        assert pins == [next(iter(py[name])).version], f"scripts/install.sh pins {name} {pins}"
    assert 'pip install' in script and '-e ".[test]"' in script


def test_readme_and_ci_use_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("\n## ")]  # the commands come before the first section
    assert "bash scripts/lab.sh" in head and "bash scripts/test.sh" in head
    assert "\n## Results" in readme
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert any(re.search(r"\bbash scripts/test\.sh\b", line) for line in ci), ci


@pytest.mark.parametrize("script", ["scripts/install.sh", "scripts/lab.sh", "scripts/test.sh", ".ci/run"])
def test_scripts_are_valid_bash(script):
    path = ROOT / script
    assert path.read_text().startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in path.read_text()
    res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _tracked_files() -> list[Path]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot list tracked files")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / p for p in out.stdout.split("\0") if p]


def test_no_large_tracked_files():
    files = _tracked_files()
    assert any(f.name == "pyproject.toml" for f in files)
    big = {str(f.relative_to(ROOT)): f.stat().st_size for f in files
           if f.exists() and f.stat().st_size > MAX_TRACKED_BYTES}
    assert not big, f"tracked files over 20 MB: {big}"


def test_tracked_notebooks_have_no_large_outputs():
    notebooks = [f for f in _tracked_files() if f.suffix == ".ipynb" and f.exists()]
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        for i, cell in enumerate(nb["cells"]):
            size = len(json.dumps(cell.get("outputs", [])))
            assert size <= MAX_NOTEBOOK_OUTPUT_BYTES, \
                f"{nb_path.name} cell {i} has {size} bytes of outputs; strip outputs before committing"


def test_pytest_config_runs_every_marker():
    """scripts/test.sh runs plain ``pytest``: the config must not deselect any marker (ui included)."""
    cfg = _pyproject()["tool"]["pytest"]["ini_options"]
    addopts = cfg.get("addopts", "")
    addopts = addopts.split() if isinstance(addopts, str) else list(addopts)
    assert not any(a == "-m" or a.startswith("-m") for a in addopts), addopts
    assert any(m.startswith("ui:") for m in cfg["markers"])
    assert cfg["testpaths"] == ["tests"]

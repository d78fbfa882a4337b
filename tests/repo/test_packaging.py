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
from tests.support.repo import ROOT

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


PINNED = ("torch", "torchvision")  # ranges in pyproject.toml, exact pins in scripts/install.sh and environment.yml


def _install_pins() -> dict[str, str]:
    script = (ROOT / "scripts" / "install.sh").read_text()
    out = {}
    for name in PINNED:
        pins = re.findall(rf'"{name}==([0-9.]+)"', script)
        assert len(pins) == 1, f"scripts/install.sh must pin {name} exactly once, found {pins}"
        out[name] = pins[0]
    return out


def test_environment_yml_matches_pyproject():
    py, conda = _pyproject_requirements(), _conda_requirements()
    assert sorted(conda) == sorted(py), (
        f"only in pyproject.toml: {sorted(set(py) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(py))}")
    pins = _install_pins()
    for name in PINNED:
        assert all(sp.operator != "==" for sp in py[name]), f"{name}: pyproject.toml must give a range, not a pin"
        assert py[name].contains(pins[name]), f"{name}: the pin {pins[name]} lies outside pyproject's {py[name]}"
        assert conda[name] == SpecifierSet(f"=={pins[name]}"), f"{name}: environment.yml {conda[name]} vs install.sh"
    differ = {n: (str(py[n]), str(conda[n])) for n in py if n not in PINNED and py[n] != conda[n]}
    assert not differ, f"version constraints differ (pyproject, environment.yml): {differ}"


def test_install_script_pins_match_pyproject():
    py, pins = _pyproject_requirements(), _install_pins()
    for name in PINNED:
        assert py[name].contains(pins[name])
    script = (ROOT / "scripts" / "install.sh").read_text()
    assert 'pip install' in script and '-e ".[test]"' in script


def test_every_shipped_model_is_installed_as_data_files():
    """`pip install .` outside the repository must find the shipped models (workbench.paths)."""
    data_files = _pyproject()["tool"]["setuptools"]["data-files"]
    shipped = sorted(p.parent.name for p in (ROOT / "assets" / "models").glob("*/card.json"))
    assert shipped, "no shipped model folders under assets/models"
    for name in shipped:
        files = data_files.get(f"share/editable-workbench/models/{name}")
        assert files, f"assets/models/{name} is not listed in [tool.setuptools.data-files]"
        for f in ("card.json", "model.safetensors"):
            assert f"assets/models/{name}/{f}" in files
        assert all((ROOT / f).is_file() for f in files), files


@pytest.mark.slow
def test_wheel_ships_the_package_and_its_models(tmp_path):
    """Build the wheel (no dependencies, no isolation: a few seconds) and look inside."""
    import shutil
    import sys
    import zipfile

    src = tmp_path / "src"  # a copy, so that the build leaves nothing in the checkout
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    shutil.copytree(ROOT / "workbench", src / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "assets" / "models", src / "assets" / "models",
                    ignore=shutil.ignore_patterns("train_state.pt*"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path), "-q"], capture_output=True, text=True, cwd=tmp_path)
    if res.returncode != 0 and "No module named pip" in res.stderr:
        pytest.skip("pip is not available to build a wheel")
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "workbench/paths.py" in names and "workbench/py.typed" in names
    assert "workbench/editing/editor_defaults.json" in names  # the editor defaults are package data
    assert any(n.startswith("workbench/cli") for n in names)
    data = [n for n in names if ".data/data/share/editable-workbench/models/" in n]
    for name in ("fashion-baseline", "fashion-editable"):
        assert any(n.endswith(f"models/{name}/model.safetensors") for n in data), data
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    torch_req = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist: torch") and "vision" not in ln]
    assert torch_req and "==" not in torch_req[0], torch_req
    assert not any(n.startswith(("tests/", "assets/", "notebooks/")) for n in names)


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

"""The tests mirror the package: every test file sits in a folder named after a package of
workbench/ (or tests/repo/, tests/ui/), and the helpers they share sit in tests/support/."""
from __future__ import annotations

from tests.support.repo import ROOT

REPO_WIDE = {"repo", "ui", "support"}  # repo-wide checks, the browser tests, shared helpers


def test_every_test_file_sits_in_a_folder_that_mirrors_a_package():
    packages = {p.parent.name for p in (ROOT / "workbench").glob("*/__init__.py")}
    tests = ROOT / "tests"
    flat = sorted(p.name for p in tests.glob("test_*.py"))
    assert flat == [], f"move {flat} into the tests/ folder of the package they test (tests/session/ ...)"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    strays = sorted(folders - packages - REPO_WIDE)
    assert strays == [], f"tests/{strays} match no package of workbench/; name the folder after the package it tests"
    assert not list((tests / "support").glob("test_*.py")), "tests/support/ holds helpers only"

"""The documentation and the import contracts cannot go stale.

The generated pages (docs/hooks.py) list every subcommand, flag, module and top-level folder;
README links resolve; no text narrates how the project was made; the import-linter contracts
cover every module directly under workbench/ and break on an upward import or a UI import in
the core. (``scripts/test.sh`` builds the site with ``mkdocs build --strict`` and runs ``lint-imports``.)
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from tests.support.repo import ROOT

NARRATION = re.compile(r"\bsessions? [0-9]|in (this|that|an earlier|a later) session", re.I)


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hooks():
    return _hooks()


def _sections(markdown: str) -> dict[str, str]:
    """``## `name` `` heading -> the text up to the next such heading."""
    parts = re.split(r"^## `([^`]+)`$", markdown, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_cli_reference_has_every_subcommand_and_flag(hooks):
    from workbench.cli import commands

    sections = _sections(hooks.cli_reference())
    cmds = commands()
    assert set(cmds) <= set(sections) and "python -m workbench" in sections
    for name in cmds:
        assert name in sections["python -m workbench"], f"{name} missing from the top-level help"
    for name, module in cmds.items():
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        flags = [s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings]
        assert flags, name
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", sections[name])]
        assert not missing, f"`{name}` flags missing from docs/cli.md: {missing}"


def test_layout_lists_every_module_with_its_docstring(hooks):
    text = hooks.layout()
    package = text[text.index("## The package"):text.index("## Notebooks")]
    for path in sorted((ROOT / "workbench").rglob("*.py")):
        if "__pycache__" in path.parts or path.name == "__main__.py":
            continue
        rel = path.relative_to(ROOT).as_posix()
        shown = rel[: -len("__init__.py")] if path.name == "__init__.py" else rel
        row = next((ln for ln in package.splitlines() if ln.startswith(f"| `{shown}` |")), None)
        assert row, f"{shown} missing from the layout page"
        assert hooks.docstring_summary(path).replace("|", "\\|")[:40] in row
    for folder in ("notebooks", "scripts", "benchmarks"):
        for f in (ROOT / folder).iterdir():
            if f.suffix in (".ipynb", ".sh", ".py"):
                assert f"`{folder}/{f.name}`" in text, f"{folder}/{f.name} missing from the layout page"


def test_layout_refuses_a_module_without_docstring_and_an_undescribed_folder(hooks, tmp_path, monkeypatch):
    bare = tmp_path / "bare.py"
    bare.write_text("x = 1\n")
    monkeypatch.setattr(hooks, "ROOT", tmp_path)
    with pytest.raises(ValueError, match="bare.py has no module docstring"):
        hooks.docstring_summary(bare)
    monkeypatch.setattr(hooks, "_tracked_top_level", lambda: {"workbench/", "newfolder/"})
    with pytest.raises(ValueError, match=r"newfolder/.*TOP_LEVEL in docs/hooks.py"):
        hooks.layout()


def test_layout_describes_every_tracked_top_level_entry(hooks):
    tracked = hooks._tracked_top_level()
    if tracked is None:
        pytest.skip("not a git checkout")
    assert tracked <= set(hooks.TOP_LEVEL), sorted(tracked - set(hooks.TOP_LEVEL))
    assert "mkdocs.yml" in tracked and "docs/" in tracked


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert any(link.startswith("docs/") for link in local)
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    assert len(readme.splitlines()) <= 160, "the README stays short: details go to docs/"


def test_every_docs_page_is_in_the_nav():
    import yaml

    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)  # tags as plain text

    def pages(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        return [p for value in node.values() for p in pages(value)]

    nav = set(pages(config["nav"]))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == nav, f"only on disk: {sorted(on_disk - nav)}; only in the nav: {sorted(nav - on_disk)}"


def test_no_text_narrates_how_the_project_was_made():
    texts = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
             *sorted((ROOT / "results").rglob("README.md"))]
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in texts
            for i, line in enumerate(p.read_text().splitlines(), 1) if NARRATION.search(line)]
    assert not hits, "state what holds, with its command:\n" + "\n".join(hits)



MACHINE_PATH = re.compile(r"(^|[^\w.~-])(/(work|tmp|home|root|Users|mnt|var)/|[A-Za-z]:\\)")


def test_no_shipped_card_records_a_machine_path():
    cards = sorted((ROOT / "assets" / "models").glob("*/card.json")) + sorted((ROOT / "results").rglob("card.json"))
    assert len(cards) >= 5, cards  # the shipped models and the memorization runs
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in cards for m in MACHINE_PATH.finditer(p.read_text())]
    assert not hits, "a card records its command relative to the repository root:\n" + "\n".join(hits)
    assert MACHINE_PATH.search('"command": "python -m workbench train --out /home/me/run"')  # the check bites
    assert not MACHINE_PATH.search('"command": "python -m workbench train --out runs/tmp/x"')

# ------------------------------------------------------------------------------- import contracts
def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _children() -> set[str]:
    pkg = ROOT / "workbench"
    names = {p.stem for p in pkg.glob("*.py") if p.name != "__init__.py"}
    names |= {p.name for p in pkg.iterdir() if (p / "__init__.py").exists()}
    return {f"workbench.{n}" for n in names}


def test_the_ui_contract_names_every_core_module():
    (forbidden,) = [c for c in _contracts() if c["type"] == "forbidden" and "ipywidgets" in c["forbidden_modules"]]
    assert set(forbidden["forbidden_modules"]) == {"ipywidgets", "plotly", "IPython"}
    assert set(forbidden["source_modules"]) == _children() - {"workbench.widgets"}


def test_the_layers_contract_is_exhaustive():
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    assert layers["containers"] == ["workbench"] and layers["exhaustive"] is True
    named = {f"workbench.{m.strip()}" for layer in layers["layers"] for m in re.split(r"[|:]", layer)}
    assert named == _children()


def _lint(tree: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    return subprocess.run([str(exe), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})


def test_an_upward_import_a_ui_import_or_a_circle_in_the_core_breaks_the_contracts(tmp_path):
    tree = tmp_path / "repo"
    shutil.copytree(ROOT / "workbench", tree / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    res = _lint(tree)
    n = len(_contracts())  # the layers, UI, circle and widget contracts
    assert res.returncode == 0 and f"{n} kept, 0 broken" in res.stdout, res.stdout[-3000:]
    idx = tree / "workbench" / "data" / "idx.py"
    original = idx.read_text()
    idx.write_text(original + "\nfrom ..session import EditSession  # noqa\n")
    res = _lint(tree)
    assert res.returncode != 0 and f"{n - 2} kept, 2 broken" in res.stdout, res.stdout[-3000:]  # the layers and a circle
    assert "workbench.data.idx -> workbench.session" in res.stdout
    idx.write_text(original + "\nimport plotly  # noqa\n")
    res = _lint(tree)
    assert res.returncode != 0 and f"{n - 1} kept, 1 broken" in res.stdout, res.stdout[-3000:]
    assert "workbench.data.idx -> plotly" in res.stdout
    idx.write_text(original)
    graph = tree / "workbench" / "models" / "graph.py"  # the adapter imports graph: graph -> adapter closes a circle
    graph.write_text(graph.read_text() + "\nfrom .adapter import ModelAdapter  # noqa\n")
    res = _lint(tree)
    assert res.returncode != 0 and f"{n - 1} kept, 1 broken" in res.stdout, res.stdout[-3000:]
    assert "No cycles are allowed in workbench.models" in res.stdout

"""MkDocs hook: the pages generated from the code at every build, so that they cannot go stale.

- ``docs/cli.md``: the marker ``<!-- generated: cli -->`` becomes the ``--help`` text of
  ``python -m workbench`` and of every subcommand, printed by the real parser
  (``workbench.cli.main([name, "--help"])``).
- ``docs/layout.md``: the marker ``<!-- generated: layout -->`` becomes the repository layout:
  every top-level folder, every module of ``workbench/`` with the first paragraph of its
  docstring, the notebooks (their title), the scripts (their header line) and the benchmarks
  (their docstring). A tracked top-level folder or file without a line in ``TOP_LEVEL`` below
  fails the build, and so does a module without a docstring.

``tests/repo/test_docs.py`` imports this file and checks both pages against the code.
"""
from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- generated: cli -->"
LAYOUT_MARKER = "<!-- generated: layout -->"
HELP_COLUMNS = "100"

# One line per tracked top-level entry (the layout page's first table).
TOP_LEVEL = {
    ".ci/": "CI entry point: `.ci/run` calls `bash scripts/test.sh`, then the non-ui suite at the AVX2 kernel level",
    ".gitignore": "what git ignores (the virtual environment, runs, build output, test artifacts)",
    "README.md": "what it is, the two commands, an example with your own model, links to this site",
    "assets/": "the shipped model folders (`model.safetensors` + `card.json` + `metrics.jsonl`)",
    "benchmarks/": "one script per measured table; `benchmarks/README.md` holds the tables and commands",
    "docs/": "this site (MkDocs Material, `mkdocs.yml`); `docs/hooks.py` generates this page and the CLI page",
    "environment.yml": "the conda environment (the same packages as `pyproject.toml`, checked by a test)",
    "mkdocs.yml": "the site's configuration: pages, theme, API reference options",
    "notebooks/": "the workbench and the paper's experiments as thin notebooks (listed below)",
    "pyproject.toml": "the package, its dependencies, the test extras, pytest, mypy and import-linter settings",
    "results/": "raw JSON behind the [results](results.md) tables (`eval/`, `tune/`, `sweep/`, `finetune/`) and the [scale](scale.md) benchmark (`scale/`)",
    "scripts/": "the two commands, their shared installer and the teaching page `scripts/app.sh` serves (listed below)",
    "tests/": "the pytest suite, one folder per package (`tests/session/` ...); `tests/repo/` checks docs, "
              "packaging and contracts; `tests/ui/` drives JupyterLab and Voila in chromium",
    "voila.json": "the app's Voila settings (`scripts/app.sh`): the preheated kernel pool and idle culling",
    "workbench/": "the Python package (listed below)",
}


# ---------------------------------------------------------------------------------------------- CLI
def _help(argv: list[str]) -> str:
    """What ``python -m workbench <argv>`` prints (argparse's help exits with status 0)."""
    from workbench.cli import main

    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS  # argparse wraps at the terminal width: fix it
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(argv)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    text = out.getvalue().rstrip()
    if not text:
        raise RuntimeError(f"`python -m workbench {' '.join(argv)}` printed no help")
    return text


def cli_reference() -> str:
    """Markdown: the top-level help, then one section per subcommand with its full help."""
    from workbench.cli import commands

    parts = ["## `python -m workbench`", "", "```text", _help(["--help"]), "```", ""]
    for name, module in commands().items():
        summary = getattr(module, "HELP", "") or ""
        parts += [f"## `{name}`", "", summary, "", "```text", _help([name, "--help"]), "```", ""]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------- layout
def _rst_to_md(text: str) -> str:
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`", text)
    return text.replace("``", "`")


def docstring_summary(path: Path) -> str:
    """The first paragraph of a Python file's module docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    if not doc:
        raise ValueError(f"{path.relative_to(ROOT)} has no module docstring: give it one line that says "
                         f"what it holds (the layout page shows it)")
    first = doc.strip().split("\n\n")[0]
    return _rst_to_md(" ".join(line.strip() for line in first.splitlines()))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _tracked_top_level() -> set[str] | None:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout: nothing to compare against
    names = set()
    for line in out.splitlines():
        head, sep, _ = line.partition("/")
        names.add(head + "/" if sep else head)
    return names


def _package_rows() -> list[tuple[str, str]]:
    rows = []
    pkg = ROOT / "workbench"
    for path in sorted(pkg.rglob("*.py"), key=lambda p: (p.parent.relative_to(pkg).parts, p.name != "__init__.py", p.name)):
        if "__pycache__" in path.parts or path.name == "__main__.py":
            continue
        rel = path.relative_to(ROOT).as_posix()
        shown = rel[: -len("__init__.py")] if path.name == "__init__.py" else rel
        rows.append((shown, docstring_summary(path)))
    return rows


def _notebook_title(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            first = "".join(cell["source"]).strip().splitlines()[0]
            return first.lstrip("#").strip()
    raise ValueError(f"{path.relative_to(ROOT)} has no markdown title cell")


def _script_summary(path: Path) -> str:
    """A script's first comment line after the shebang; a notebook's: the first line of its first code cell."""
    if path.suffix == ".ipynb":
        cell = next(c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code")
        return "".join(cell["source"]).splitlines()[0].lstrip("#").strip()
    lines = path.read_text(encoding="utf-8").splitlines()
    header = next((ln for ln in lines[1:] if ln.startswith("#")), "")
    return header.lstrip("#").strip()


def _table(head: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    out = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    out += [f"| `{name}` | {_cell(text)} |" for name, text in rows]
    return out + [""]


def layout() -> str:
    """Markdown: the repository layout, read from the tree."""
    tracked = _tracked_top_level()
    if tracked is not None:
        missing = sorted(tracked - set(TOP_LEVEL))
        if missing:
            raise ValueError(f"top-level entries without a line on the layout page: {missing}; "
                             f"add them to TOP_LEVEL in docs/hooks.py")
        entries = sorted(tracked)
    else:
        entries = sorted(n for n in TOP_LEVEL if (ROOT / n.rstrip("/")).exists())
    parts = ["## Top level", ""] + _table(("path", "what it holds"), [(n, TOP_LEVEL[n]) for n in entries])
    parts += ["## The package `workbench/`", "",
              "Each module with the first paragraph of its docstring. `python -m workbench` runs "
              "`workbench/__main__.py`, which calls the command line in `workbench/cli/`.", ""]
    parts += _table(("module", "what it holds"), _package_rows())
    parts += ["## Notebooks", ""]
    parts += _table(("notebook", "title"), [(p.relative_to(ROOT).as_posix(), _notebook_title(p))
                                            for p in sorted((ROOT / "notebooks").glob("*.ipynb"))])
    parts += ["## Scripts", ""]
    parts += _table(("script", "what it does"), [(p.relative_to(ROOT).as_posix(), _script_summary(p))
                                                 for p in sorted([*(ROOT / "scripts").glob("*.sh"),
                                                                  *(ROOT / "scripts").glob("*.ipynb")])])
    parts += ["## Benchmarks", "", "Their tables, with the commands and the machine, are in `benchmarks/README.md`.", ""]
    bench = sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "benchmarks").glob("*.sh")])
    parts += _table(("script", "what it measures"), [(p.relative_to(ROOT).as_posix(), docstring_summary(p)
                                                      if p.suffix == ".py" else _script_summary(p)) for p in bench])
    return "\n".join(parts)


# -------------------------------------------------------------------------------------- MkDocs hook
def on_config(config: Any, **kwargs: Any) -> Any:
    """Document the checkout this file sits in, not another installed copy."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if LAYOUT_MARKER in markdown:
        markdown = markdown.replace(LAYOUT_MARKER, layout())
    return markdown

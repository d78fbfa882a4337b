#!/usr/bin/env bash
# Install (if needed, plus Debian chromium for the browser test) and run every test and mypy.
# Then lint-imports (the import contracts in pyproject.toml) and the documentation build
# (mkdocs build --strict into build/docs-site: a broken link or anchor fails it).
#
#   bash scripts/test.sh                      # the whole suite (all markers, ui included) + mypy + contracts + docs
#   bash scripts/test.sh tests/data               # extra arguments go to pytest (a folder, a file)
#   bash scripts/test.sh -m "not ui" -x       # e.g. skip the browser test, stop at first failure
# Exits non-zero when pytest, mypy, lint-imports or the docs build fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WORKBENCH_VENV:-.venv}"
T0=$SECONDS

echo "[workbench] step 1/5: install"
bash scripts/install.sh --test

export MPLBACKEND=Agg
# One torch thread per process: the browser test runs a kernel, JupyterLab and chromium side by
# side, and oversubscribed OpenMP threads slow torch down many times over on 2 cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
echo "[workbench] step 2/5: pytest $*"
set +e
"$VENV/bin/python" -m pytest "$@"
PYTEST_RC=$?
set -e
case "$PYTEST_RC" in
    0) PYTEST_MSG="passed" ;;
    5) PYTEST_MSG="FAILED: no tests were collected (check the arguments)" ;;
    *) PYTEST_MSG="FAILED (exit code $PYTEST_RC)" ;;
esac

echo "[workbench] step 3/5: mypy (workbench package)"
set +e
"$VENV/bin/python" -m mypy
MYPY_RC=$?
set -e
if [ "$MYPY_RC" -eq 0 ]; then MYPY_MSG="passed"; else MYPY_MSG="FAILED (exit code $MYPY_RC)"; fi

echo "[workbench] step 4/5: lint-imports (import contracts in pyproject.toml)"
set +e
"$VENV/bin/lint-imports" --no-cache
LINT_RC=$?
set -e
if [ "$LINT_RC" -eq 0 ]; then LINT_MSG="passed"; else LINT_MSG="FAILED (exit code $LINT_RC): an import breaks a contract"; fi

echo "[workbench] step 5/5: documentation (mkdocs build --strict)"
set +e
NO_MKDOCS_2_WARNING=1 "$VENV/bin/python" -m mkdocs build --strict --site-dir build/docs-site
DOCS_RC=$?
set -e
if [ "$DOCS_RC" -eq 0 ]; then DOCS_MSG="passed (build/docs-site)"; else DOCS_MSG="FAILED (exit code $DOCS_RC)"; fi

echo "[workbench] ------------------------------------------------------------"
echo "[workbench] pytest: $PYTEST_MSG"
echo "[workbench] mypy:   $MYPY_MSG"
echo "[workbench] lint-imports: $LINT_MSG"
echo "[workbench] docs:   $DOCS_MSG"
echo "[workbench] total time: $((SECONDS - T0)) s"
if [ "$PYTEST_RC" -ne 0 ]; then exit "$PYTEST_RC"; fi
if [ "$MYPY_RC" -ne 0 ]; then exit "$MYPY_RC"; fi
if [ "$LINT_RC" -ne 0 ]; then exit "$LINT_RC"; fi
exit "$DOCS_RC"

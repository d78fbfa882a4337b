#!/usr/bin/env bash
# Install (if needed, plus Debian chromium for the browser test) and run every test and mypy.
#
#   bash scripts/test.sh                      # the whole suite (all markers, ui included) + mypy
#   bash scripts/test.sh tests/test_data.py   # extra arguments go to pytest
#   bash scripts/test.sh -m "not ui" -x       # e.g. skip the browser test, stop at first failure
# Exits non-zero when pytest or mypy fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WORKBENCH_VENV:-.venv}"
T0=$SECONDS

echo "[workbench] step 1/3: install"
bash scripts/install.sh --test

export MPLBACKEND=Agg
# One torch thread per process: the browser test runs a kernel, JupyterLab and chromium side by
# side, and oversubscribed OpenMP threads slow torch down many times over on 2 cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
echo "[workbench] step 2/3: pytest $*"
set +e
"$VENV/bin/python" -m pytest "$@"
PYTEST_RC=$?
set -e
case "$PYTEST_RC" in
    0) PYTEST_MSG="passed" ;;
    5) PYTEST_MSG="FAILED: no tests were collected (check the arguments)" ;;
    *) PYTEST_MSG="FAILED (exit code $PYTEST_RC)" ;;
esac

echo "[workbench] step 3/3: mypy (workbench package)"
set +e
"$VENV/bin/python" -m mypy
MYPY_RC=$?
set -e
if [ "$MYPY_RC" -eq 0 ]; then MYPY_MSG="passed"; else MYPY_MSG="FAILED (exit code $MYPY_RC)"; fi

echo "[workbench] ------------------------------------------------------------"
echo "[workbench] pytest: $PYTEST_MSG"
echo "[workbench] mypy:   $MYPY_MSG"
echo "[workbench] total time: $((SECONDS - T0)) s"
if [ "$PYTEST_RC" -ne 0 ]; then exit "$PYTEST_RC"; fi
exit "$MYPY_RC"

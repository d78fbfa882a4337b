#!/usr/bin/env bash
# The workbench as a standalone teaching page (Voila): no code cells, just the workbench.
#
#   bash scripts/app.sh                      # serve notebooks/01_workbench.ipynb on http://localhost:8866
#   bash scripts/app.sh --port=9000          # extra arguments go to `voila`
#   WORKBENCH_APP_NOTEBOOK=my.ipynb bash scripts/app.sh
#
# voila.json (read from the repository root, where this script runs Voila) holds the app's
# server settings: a pool of 2 preheated kernels that have already run the notebook, so a page
# is usable a few seconds after it is opened, and idle culling for a classroom on one server
# (docs/classroom.md). A flag given here, e.g. --pool_size=4, overrides it.
# WORKBENCH_TRACEBACKS=0: an error in the page is shown in plain words, without the Python
# traceback (server paths, the venv's layout); "show_tracebacks": false in voila.json does the same for
# Voila's own cell errors. JupyterLab keeps the traceback behind a "details" toggle.
# Installs first when needed (scripts/install.sh: seconds once the venv exists).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WORKBENCH_VENV:-.venv}"
NOTEBOOK="${WORKBENCH_APP_NOTEBOOK:-notebooks/01_workbench.ipynb}"
if [ ! -f "$NOTEBOOK" ]; then
    echo "[workbench] $NOTEBOOK not found: set WORKBENCH_APP_NOTEBOOK to a notebook that exists" >&2
    exit 1
fi
echo "[workbench] step 1/2: install"
bash scripts/install.sh
PORT=8866
GIVEN_PORT=0
prev=""
for arg in "$@"; do  # --port=9000 or --port 9000
    case "$arg" in --port=*) PORT="${arg#--port=}"; GIVEN_PORT=1 ;; esac
    if [ "$prev" = "--port" ]; then PORT="$arg"; GIVEN_PORT=1; fi
    prev="$arg"
done
args=(--no-browser)  # the rest is in voila.json
[ "$GIVEN_PORT" -eq 1 ] || args+=(--port="$PORT")
[ "$(id -u)" -eq 0 ] && args+=(--ServerApp.allow_root=True)
export WORKBENCH_TRACEBACKS=0  # inherited by the kernels Voila starts (workbench/widgets/common.py)
echo "[workbench] step 2/2: serving $NOTEBOOK with Voila on http://localhost:$PORT (stop with Ctrl-C)"
exec "$VENV/bin/python" -m voila "$NOTEBOOK" "${args[@]}" "$@"

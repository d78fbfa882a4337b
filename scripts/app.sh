#!/usr/bin/env bash
# The teaching page (Voila): a header line with the model and the data, then the workbench; lesson, comparison and presentation mode as toggles in the page.
#
#   bash scripts/app.sh                      # serve scripts/app.ipynb on http://localhost:8866
#   bash scripts/app.sh --presentation       # open in presentation mode (a projector: large text, lesson panels only)
#   bash scripts/app.sh --lesson             # open with the lesson strip (five steps, Next / Back)
#   bash scripts/app.sh --limit=2000         # score the first 2000 test images only (a faster start)
#   bash scripts/app.sh --model=PATH         # another model folder (default: assets/models/fashion-editable)
#   bash scripts/app.sh --port=9000          # other arguments go to `voila`
#   WORKBENCH_APP_NOTEBOOK=my.ipynb bash scripts/app.sh
#
# The page is scripts/app.ipynb, which reads these settings from WORKBENCH_APP_* variables
# (workbench/widgets/app.py); files the page saves go to workbench-output/ at the top of the
# repository (WORKBENCH_APP_OUTPUT), one folder per kernel's history name.
# voila.json (read from the repository root, where this script runs Voila) holds the server
# settings: a pool of 2 preheated kernels that have already run the page, so a page is usable a
# few seconds after it is opened (the model is loaded and scored in advance), and idle culling
# for a classroom on one server (docs/classroom.md). A flag given here, e.g. --pool_size=4, overrides it.
# WORKBENCH_TRACEBACKS=0: an error in the page is shown in plain words, without the Python
# traceback (server paths, the venv's layout); "show_tracebacks": false in voila.json does the same for
# Voila's own cell errors. JupyterLab keeps the traceback behind a "details" toggle.
# Installs first when needed (scripts/install.sh: seconds once the venv exists).
set -euo pipefail

CALLER="$(pwd)"  # a relative --model=PATH is read from here
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WORKBENCH_VENV:-.venv}"
NOTEBOOK="${WORKBENCH_APP_NOTEBOOK:-scripts/app.ipynb}"
if [ ! -f "$NOTEBOOK" ]; then
    echo "[workbench] $NOTEBOOK not found: set WORKBENCH_APP_NOTEBOOK to a notebook that exists" >&2
    exit 1
fi
echo "[workbench] step 1/2: install"
bash scripts/install.sh
PORT=8866
GIVEN_PORT=0
prev=""
rest=()
for arg in "$@"; do  # the page's own settings; --port=9000 or --port 9000; the rest goes to voila
    case "$arg" in
        --presentation) export WORKBENCH_APP_PRESENTATION=1; continue ;;
        --lesson) export WORKBENCH_APP_LESSON=1; continue ;;
        --limit=*) export WORKBENCH_APP_LIMIT="${arg#--limit=}"; continue ;;
        --model=*) m="${arg#--model=}"; [ "${m#/}" != "$m" ] || m="$CALLER/$m"
                   export WORKBENCH_APP_MODEL="$m"; continue ;;
        --port=*) PORT="${arg#--port=}"; GIVEN_PORT=1 ;;
    esac
    if [ "$prev" = "--port" ]; then PORT="$arg"; GIVEN_PORT=1; fi
    prev="$arg"
    rest+=("$arg")
done
export WORKBENCH_APP_OUTPUT="${WORKBENCH_APP_OUTPUT:-$ROOT/workbench-output}"
args=(--no-browser)  # the rest is in voila.json
[ "$GIVEN_PORT" -eq 1 ] || args+=(--port="$PORT")
[ "$(id -u)" -eq 0 ] && args+=(--ServerApp.allow_root=True)
export WORKBENCH_TRACEBACKS=0  # inherited by the kernels Voila starts (workbench/widgets/common.py)
echo "[workbench] step 2/2: serving $NOTEBOOK with Voila on http://localhost:$PORT (stop with Ctrl-C)"
exec "$VENV/bin/python" -m voila "$NOTEBOOK" "${args[@]}" "${rest[@]}"

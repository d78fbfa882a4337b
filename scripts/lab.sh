#!/usr/bin/env bash
# Install (if needed) and open the Editable Workbench notebook in JupyterLab.
#
#   bash scripts/lab.sh                    # install, then JupyterLab with notebooks/01_workbench.ipynb open
#   bash scripts/lab.sh --no-browser --port 8899   # extra arguments go to `jupyter lab`
#   bash scripts/lab.sh --install-only     # install and stop
#
# Saving the notebook replaces the workbench's widget output by a "run this cell to start"
# note in the file (workbench.notebook_hygiene), so a reopened notebook shows no widget error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WORKBENCH_VENV:-.venv}"
NOTEBOOK="notebooks/01_workbench.ipynb"

INSTALL_ONLY=0
args=()
for arg in "$@"; do
    if [ "$arg" = "--install-only" ]; then INSTALL_ONLY=1; else args+=("$arg"); fi
done

echo "[workbench] step 1/2: install"
bash scripts/install.sh
if [ "$INSTALL_ONLY" -eq 1 ]; then
    echo "[workbench] --install-only: not starting JupyterLab"
    exit 0
fi

echo "[workbench] step 2/2: JupyterLab"
lab_args=(--FileContentsManager.pre_save_hook=workbench.notebook_hygiene.pre_save_hook)
[ "$(id -u)" -eq 0 ] && lab_args+=(--allow-root)
if [ -f "$NOTEBOOK" ]; then
    # The URL path opens the notebook itself (a file argument would only set the root folder
    # and show the Launcher).
    echo "[workbench] opening $NOTEBOOK (stop with Ctrl-C)"
    lab_args+=(--ServerApp.root_dir="$ROOT" --LabApp.default_url="/lab/tree/$NOTEBOOK")
else
    echo "[workbench] $NOTEBOOK not found; starting JupyterLab in $ROOT (stop with Ctrl-C)"
fi
exec "$VENV/bin/python" -m jupyter lab "${lab_args[@]}" ${args[@]+"${args[@]}"}

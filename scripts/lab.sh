#!/usr/bin/env bash
# Install (if needed) and open the Editable Workbench notebook in JupyterLab.
#
#   bash scripts/lab.sh                    # install, then JupyterLab on notebooks/01_workbench.ipynb
#   bash scripts/lab.sh --no-browser --port 8899   # extra arguments go to `jupyter lab`
#   bash scripts/lab.sh --install-only     # install and stop
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
lab_args=()
[ "$(id -u)" -eq 0 ] && lab_args+=(--allow-root)
if [ -f "$NOTEBOOK" ]; then
    echo "[workbench] opening $NOTEBOOK (stop with Ctrl-C)"
    lab_args+=("$NOTEBOOK")
else
    echo "[workbench] $NOTEBOOK not found; starting JupyterLab in $ROOT (stop with Ctrl-C)"
fi
exec "$VENV/bin/python" -m jupyter lab "${lab_args[@]}" ${args[@]+"${args[@]}"}

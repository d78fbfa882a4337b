#!/usr/bin/env bash
# The workbench as a standalone teaching page (Voila): no code cells, just the workbench.
#
#   bash scripts/app.sh                      # serve notebooks/01_workbench.ipynb on http://localhost:8866
#   bash scripts/app.sh --port=9000          # extra arguments go to `voila`
#   WORKBENCH_APP_NOTEBOOK=my.ipynb bash scripts/app.sh
#
# --preheat_kernel keeps one kernel that has already run the notebook, so the page is
# usable a few seconds after it is opened (the model is loaded and scored in advance).
# Run `bash scripts/lab.sh --install-only` once first (it installs the venv, voila included).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${WORKBENCH_VENV:-.venv}"
NOTEBOOK="${WORKBENCH_APP_NOTEBOOK:-notebooks/01_workbench.ipynb}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[workbench] no venv at $VENV: run \`bash scripts/lab.sh --install-only\` first" >&2
    exit 1
fi
if ! "$VENV/bin/python" -c "import voila" 2>/dev/null; then
    echo "[workbench] voila is not installed in $VENV: run \`bash scripts/lab.sh --install-only\`" >&2
    exit 1
fi
args=(--no-browser --port=8866 --strip_sources=True --preheat_kernel=True --pool_size=1
      --theme=light --show_tracebacks=False)
echo "[workbench] serving $NOTEBOOK with Voila on http://localhost:8866 (stop with Ctrl-C)"
exec "$VENV/bin/python" -m voila "$NOTEBOOK" "${args[@]}" "$@"

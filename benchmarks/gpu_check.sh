#!/usr/bin/env bash
# The scale benchmark at GPU sizes and the GPU memory-budget check, on one GPU in about 8 minutes; output under $OUT.
#
# Run from the repository root on a GPU machine (the device tool), Fashion-MNIST's idx files carried:
#   mkdir -p .data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/   # once, here
#   run: command "bash benchmarks/gpu_check.sh", carry [".data/fashion-mnist"], timeout_s 600
# Needs python3 with torch, torchvision, pillow, numpy and safetensors (no captum, ipywidgets or plotly).
# Writes (8 files at most): $OUT/gpu_check.log, $OUT/scale/budget.json, $OUT/scale/table.md and one JSON per row.
# Rows are saved as they finish, so a run cut short returns what it did; stages start only while time is left.
set -uo pipefail
OUT=${OUT:-results/scale-gpu}
PY=${PYTHON:-python3}
FASHION=${FASHION:-.data/fashion-mnist}
DATA=${SCALE_DATA:-/tmp/wb-scale}
LIMIT=${TIME_LIMIT:-480}   # seconds; a stage starts only before this
mkdir -p "$OUT/scale"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WORKBENCH_CACHE="$DATA/cache"
start=$(date +%s)
left() { [ $(( $(date +%s) - start )) -lt "$1" ]; }
bench() { "$PY" benchmarks/scale.py --device cuda --fashion "$FASHION" --data "$DATA" --results "$OUT/scale" "$@"; }

nvidia-smi -L || true
"$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))" || exit 1
ls "$FASHION"/t10k-images-idx3-ubyte* >/dev/null || { echo "carry $FASHION (the Fashion-MNIST idx files)"; exit 1; }

# 1. the evaluator within a 2 GiB budget: peak GPU memory, exact = plain loop, fast mode's flips (~1 min)
bench --budget-check --models resnet50 --n 2000 --budget 2GiB || echo "budget check FAILED"
# 2. the scale table, shortest rows first (each row: open, reopen, click, new group, plain loop)
left "$LIMIT" && bench --models resnet50 --n 10000 --precision exact fast
left $((LIMIT - 120)) && bench --models vit_b_16 --n 10000
left $((LIMIT - 180)) && bench --models resnet50 --n 50000
left $((LIMIT - 180)) && bench --models vit_b_16 --n 50000
echo "gpu_check: $(( $(date +%s) - start )) s"
cat "$OUT/scale/table.md" 2>/dev/null

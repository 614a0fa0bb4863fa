#!/usr/bin/env bash
# Run THERE (on the accelerator machine, offline): installs the wheels fetched by
# fetch_wheels.sh into a folder (never the network), checks that JAX sees a GPU, and runs the
# benchmark suite (experiments/gpu/suite.py): SSD300 and SSD512, bf16 then fp32, the train
# step at batch 128 and 32, inference with NMS at batch 128, batch-1 latency. Figures in
# OUT_DIR/suite.json and OUT_DIR/summary.md; the log in OUT_DIR/run.log. It stops starting
# runs after BUDGET_S seconds (default 360; a run started then still takes up to ~1.5 min), so it ends within 8 minutes on one H200.
#
#   experiments/gpu/run.sh [OUT_DIR]           # default gpu_results; wheels in WHEEL_DIR
#   experiments/gpu/run.sh --test [OUT_DIR]    # CI on a CPU: the tiny smoke config at batch
#                                              # 2, no install (the current Python's packages)
# Environment: PYTHON (default python3), WHEEL_DIR (default experiments/gpu/wheels),
# ITERS (default 10), BUDGET_S (default 360).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$(pwd)"

TEST=0
if [[ "${1:-}" == "--test" ]]; then TEST=1; shift; fi
OUT_DIR="${1:-gpu_results}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-python3}"
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1  # Never the network.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$OUT_DIR/jit_cache}"

if [[ $TEST == 1 ]]; then
  SITE=""  # The current Python's packages stand for the wheel folder.
  ARGS=(--configs=configs/smoke.py --train_batches=2 --infer_batch=2 --iters=1)
  EXPECT=cpu
else
  WHEEL_DIR="${WHEEL_DIR:-experiments/gpu/wheels}"
  shopt -s nullglob
  WHEELS=("$WHEEL_DIR"/*.whl)
  if [[ ${#WHEELS[@]} == 0 ]]; then
    echo "run.sh: error: no wheels in $WHEEL_DIR; run experiments/gpu/fetch_wheels.sh where there is network and copy the folder here" >&2
    exit 1
  fi
  SITE="$OUT_DIR/site"
  "$PY" -m pip install --no-index --no-deps --quiet --target "$SITE" "${WHEELS[@]}"
  ARGS=(--iters="${ITERS:-10}")
  EXPECT=gpu
fi
export PYTHONPATH="$REPO${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"

(nvidia-smi || true) > "$OUT_DIR/nvidia_smi.txt" 2>&1
"$PY" - "$EXPECT" <<'PYEOF'
import sys
import jax
devices = jax.devices()
print('jax', jax.__version__, devices)
if jax.default_backend() != sys.argv[1]:
  sys.exit(f'run.sh: error: expected a {sys.argv[1]} backend, JAX sees {devices}')
PYEOF
"$PY" -m experiments.gpu.suite --output_dir="$OUT_DIR" --budget_s="${BUDGET_S:-360}" \
  "${ARGS[@]}" 2>&1 | tee "$OUT_DIR/run.log"
cat "$OUT_DIR/summary.md"

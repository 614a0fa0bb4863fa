#!/usr/bin/env bash
# One-call GPU benchmark: installs the requirements with the CUDA jaxlib into a fresh virtual
# environment, then runs experiments.benchmark for SSD300 and SSD512 in fp32 and bf16 at batch
# 32 and 128, writing one JSON per run and a combined summary under OUT_DIR.
#
#   experiments/gpu_benchmark.sh [OUT_DIR]              # on the GPU machine
#   experiments/gpu_benchmark.sh --cpu_test [OUT_DIR]   # no CUDA install; the smoke config
#                                                       # at batch 2 with the current python
# Environment: PYTHON (default python3), VENV (default .venv-gpu), ITERS (default 10),
# BATCHES (default "32 128"), JAX_CUDA (pip extra, default cuda12).
set -euo pipefail
cd "$(dirname "$0")/.."

CPU_TEST=0
if [[ "${1:-}" == "--cpu_test" ]]; then CPU_TEST=1; shift; fi
OUT_DIR="${1:-gpu_benchmark_results}"
mkdir -p "$OUT_DIR"

if [[ $CPU_TEST == 1 ]]; then
  PY="${PYTHON:-python3}"
  CONFIGS="configs/smoke.py"
  BATCHES="${BATCHES:-2}"
  ITERS="${ITERS:-1}"
  EXTRA=(--input_batches=2 "--config.input.data_dir=$OUT_DIR/tfds")
else
  VENV="${VENV:-.venv-gpu}"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/pip" install -q -r requirements.txt
  JAX_VERSION=$(grep -E '^jax==' requirements.txt | cut -d= -f3)
  "$VENV/bin/pip" install -q "jax[${JAX_CUDA:-cuda12}]==$JAX_VERSION"
  PY="$VENV/bin/python"
  "$PY" -c 'import jax; assert jax.default_backend() == "gpu", jax.devices(); print(jax.devices())'
  CONFIGS="configs/ssd300_voc.py configs/ssd512_voc.py"
  BATCHES="${BATCHES:-32 128}"
  ITERS="${ITERS:-10}"
  # The input figure on the shapes data (generated on first use; VOC is not on the machine).
  EXTRA=(--input_batches=20 --input_dataset=shapes "--config.input.data_dir=$OUT_DIR/tfds")
fi

(nvidia-smi || true) > "$OUT_DIR/nvidia_smi.txt" 2>&1
for config in $CONFIGS; do
  for dtype in float32 bfloat16; do
    for batch in $BATCHES; do
      name="$(basename "$config" .py)_${dtype}_b${batch}"
      echo "== $name"
      "$PY" -m experiments.benchmark "--config=$config" "--batch_size=$batch" \
        "--dtype=$dtype" "--iters=$ITERS" "${EXTRA[@]}" "--output=$OUT_DIR/$name.json" \
        || echo "FAILED: $name" | tee -a "$OUT_DIR/failures.txt"
    done
  done
done
"$PY" - "$OUT_DIR" <<'PYEOF'
import glob, json, os, sys
out = sys.argv[1]
rows = {os.path.basename(p)[:-5]: json.load(open(p))
        for p in sorted(glob.glob(os.path.join(out, '*.json'))) if not p.endswith('summary.json')}
json.dump(rows, open(os.path.join(out, 'summary.json'), 'w'), indent=2)
for name, r in rows.items():
  ips = r['images_per_s']
  print(f"{name:<28} train {ips['train_step']:9.1f}  inference {ips['inference']:9.1f}  "
        f"MFU(train) {100 * r['mfu']['train_step']:5.1f}%  images/s")
PYEOF

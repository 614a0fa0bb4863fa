#!/usr/bin/env bash
# Run HERE (with network): downloads the pure-Python wheels that a bare accelerator machine
# lacks for the compute path (training on synthetic data, checkpoints, experiments.benchmark),
# for Python 3.12, into one folder to copy there with the repository.
#
#   experiments/gpu/fetch_wheels.sh [WHEEL_DIR]     # default experiments/gpu/wheels
#
# That machine has (as last read) jax/jaxlib with the CUDA plugin, flax, optax,
# orbax-checkpoint (and its etils, PyYAML), chex, numpy, absl-py, pillow, safetensors,
# tensorboard, matplotlib; TensorFlow, tfds, clu and pycocotools are not needed there (the
# code imports them only for the tf.data pipeline, clu writers and COCO metrics). What is
# missing is ml-collections (the configs), itself pure Python, needing absl-py and PyYAML.
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEEL_DIR="${1:-experiments/gpu/wheels}"
mkdir -p "$WHEEL_DIR"
PIP="${PIP:-python3 -m pip}"
# The version of requirements.txt.
ML_COLLECTIONS=$(grep -E '^ml-collections==' requirements.txt | cut -d= -f3)
$PIP download --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
  --abi none --platform any -d "$WHEEL_DIR" "ml-collections==${ML_COLLECTIONS}"
ls -l "$WHEEL_DIR"

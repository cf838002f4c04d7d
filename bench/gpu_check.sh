#!/usr/bin/env bash
# One short run that answers whether tfminv's GPU path works and how fast it is: the main job's
# training in float32, mixed_float16, mixed_float16 + XLA, and MirroredStrategy over all GPUs
# (when there are several); prints images/s, peak GPU memory and MSE per variant.
#   bash bench/gpu_check.sh [--cpu-dry-run] [--epochs=N] [--width=W] [--variants=a,b]
# Needs TFMINV_DATA_DIR (FaceScrub and CelebA); exits 3 without a GPU unless --cpu-dry-run.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  case "$a" in
    --cpu-dry-run) args+=(--cpu_dry_run) ;;
    *) args+=("$a") ;;
  esac
done
export PYTHONPATH="${PYTHONPATH:-}:$PWD" TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
PY="${PYTHON:-python}"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PY" bench/gpu_check.py "${args[@]}"

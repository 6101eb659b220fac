#!/usr/bin/env bash
# The GPU check: every CUDA path and the GPU benchmark, in one run on a GPU machine, logged to LOG_DIR.
#
#   tools/gpu_check.sh LOG_DIR
#
# Runs with the machine's own python3 as it is (no pip, no virtual environment, no network): torch with CUDA,
# opencv-python-headless, numpy, matplotlib, pytest, pillow. The faces are looked for in face_images/ beside the
# scripts, then ../shared/face_images, or FACECOLOR_DATA_DIR. Steps, each with its own log in LOG_DIR:
#   1. gpu.txt      the GPU, driver, torch and CUDA versions;
#   2. tests.txt    tests/test_cuda.py (training eager, with CUDA graphs and bf16; checkpoints across devices;
#                   test_colorize on the GPU vs the CPU; a 4000x3000 photo; torchrun with NCCL; syncs per epoch);
#   3. bench.txt    bench.py --device cuda --precision float32 bfloat16 --variants --full-run $FULL_RUNS (default
#                   "eager graphs bf16"): matrix peaks and each loop's share of them; the
#                   whole default training run per mode, with seconds, images/s, test MSE and peak GPU memory.
# summary.txt lists each step's exit status and seconds. About 8 minutes on an H200 (2026-12-04: tests 4.3, bench 4.5).
set -uo pipefail
LOG_DIR=${1:?usage: tools/gpu_check.sh LOG_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$LOG_DIR"
PYTHON=${PYTHON:-python3}
FULL_RUNS=${FULL_RUNS:-eager graphs bf16}
for candidate in "${FACECOLOR_DATA_DIR:-}" face_images ../shared/face_images; do
    if [ -n "$candidate" ] && [ -d "$candidate" ]; then
        export FACECOLOR_DATA_DIR=$(cd "$candidate" && pwd)
        break
    fi
done
if [ ! -d "${FACECOLOR_DATA_DIR:-}" ]; then
    echo "error: no face images: put them in face_images/ or ../shared/face_images, or set FACECOLOR_DATA_DIR" >&2
    exit 1
fi

# step NAME TIMEOUT_S CMD...: run CMD with its output in LOG_DIR/NAME.txt (and on screen), its status in summary.
step() {
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    echo "== $name: $*" | tee "$LOG_DIR/$name.txt"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG_DIR/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "$name: exit $rc, $((SECONDS - start)) s" | tee -a "$LOG_DIR/summary.txt"
}

: > "$LOG_DIR/summary.txt"
step gpu 60 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; \"$PYTHON\" -c \
'import torch; print(\"torch\", torch.__version__, \"CUDA\", torch.version.cuda, torch.cuda.get_device_name())'"
step tests 330 "$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_training_loop.py
# shellcheck disable=SC2086  # FULL_RUNS is a list of modes
step bench 390 "$PYTHON" bench.py --device cuda --repeats 5 --precision float32 bfloat16 --variants --no-memory \
    --full-run $FULL_RUNS
cat "$LOG_DIR/summary.txt"
! grep -qv ": exit 0," "$LOG_DIR/summary.txt"

# Sourced by every facecolor sbatch script: environment, a fail-fast check of python and the GPU, the echoed
# command, and requeue on a time limit.
#
# Environment variables override these defaults (export them before sbatch, or sbatch --export=ALL,VAR=value):
#   FACECOLOR_DIR  repository folder (default: the folder sbatch was called from)
#   PYTHON         python command, e.g. a virtual environment's /blue/<group>/<user>/facecolor-venv/bin/python
#                  (default: python3 from MODULES)
#   MODULES        modules to load where `module` exists (default: "pytorch", HiPerGator's PyTorch module, when
#                  PYTHON is not set; nothing when it is). A version: MODULES=pytorch/2.8.0 (`module spider pytorch`)
#   DEVICE         --device of the python scripts (default: cuda, as every script asks for a GPU: a job that got
#                  no usable GPU stops at once instead of training on the CPU of a GPU node)
#   DATA_DIR       --data-dir for the scripts (default: the scripts' own: $FACECOLOR_DATA_DIR, face_images/,
#                  ../shared/face_images)
#   OUT_DIR        output folder (default per script, named after the job id so a requeued job finds it)
#   EXTRA_ARGS     more flags for the python script, e.g. "--epochs 5 --limit 100"
#   EXPERIMENTS    experiments.sbatch: the configuration list (default experiments/final.txt)
#   STAGE_ARGS     experiments.sbatch: flags before each line's own (e.g. the screening stage's)
#   CROSSVAL, LINE experiments.sbatch: CROSSVAL=1 makes array task K fold K (--fold K) of line LINE (default 0)
# Partition, GPUs, CPUs, memory, time, account and QOS are #SBATCH lines, which cannot read environment variables:
# override them on the sbatch command line, e.g.
#   sbatch --account=<course> --qos=<course> --partition=hpg-b200 --gres=gpu:b200:1 slurm/train_colorize.sbatch

cd "${FACECOLOR_DIR:-${SLURM_SUBMIT_DIR:-.}}"
if [ -z "${PYTHON:-}" ]; then
    MODULES=${MODULES-pytorch}
fi
if [ -n "${MODULES:-}" ] && command -v module >/dev/null 2>&1; then
    module load ${MODULES}
fi
PYTHON=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}  # PyTorch threads = the CPUs SLURM gave us
DATA_ARGS=()
[ -n "${DATA_DIR:-}" ] && DATA_ARGS=(--data-dir "$DATA_DIR")
read -r -a EXTRA <<< "${EXTRA_ARGS:-}"
echo "job ${SLURM_JOB_ID:-none} on $(hostname) at $(date -Is), restart ${SLURM_RESTART_COUNT:-0}"

# check_python DEVICE: stop the job at once, with one line saying what to set, when $PYTHON cannot import torch
# or (DEVICE cuda) sees no GPU: better than failing after the queue wait and the data preparation, and a GPU
# job that leaves its GPU idle is cancelled under HiPerGator's scheduler policy.
check_python() {
    local tried="PYTHON=$PYTHON${MODULES:+ after module load $MODULES}"
    if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
        echo "error: $tried cannot import torch: set MODULES to a PyTorch module (module spider pytorch) or" \
             "PYTHON to a python that has torch, e.g. a virtual environment's on /blue" >&2
        exit 1
    fi
    if [ "$1" = cuda ] && ! "$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" >/dev/null 2>&1; then
        echo "error: $tried: torch sees no CUDA GPU on $(hostname) (CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}):" \
             "request one with --gres=gpu:<type>:1 on a GPU partition, use a CUDA build of torch, or set DEVICE=cpu" >&2
        exit 1
    fi
}

# resume_args CHECKPOINT: "--resume" when the checkpoint exists (a requeued job continues by itself).
resume_args() {
    if [ -f "$1" ]; then echo "--resume"; fi
}

# run_requeueable CMD...: run CMD, passing SLURM's warning signal (USR1, from --signal=B:USR1@SECONDS) and
# TERM on to it; the training script then checkpoints and stops, and the job requeues itself to continue.
run_requeueable() {
    echo "+ $*"
    signalled=0
    "$@" &
    local pid=$!
    trap 'signalled=1; pkill -USR1 -P $pid 2>/dev/null; kill -USR1 $pid 2>/dev/null' USR1 TERM
    local rc=0
    while kill -0 "$pid" 2>/dev/null; do
        wait "$pid" && rc=0 || rc=$?
    done
    trap - USR1 TERM
    if [ "$signalled" = 1 ] && [ "$rc" != 0 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        echo "stopped before the time limit (exit $rc): requeueing job $SLURM_JOB_ID to resume"
        scontrol requeue "$SLURM_JOB_ID"
        exit 0
    fi
    echo "exit status $rc"
    return "$rc"
}

DEVICE=${DEVICE:-cuda}
check_python "$DEVICE"  # before any script's real work

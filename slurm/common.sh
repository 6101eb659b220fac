# Sourced by every facecolor sbatch script: environment, the echoed command, and requeue on a time limit.
#
# Overridable by environment variables (sbatch --export=ALL,VAR=value or export before sbatch):
#   FACECOLOR_DIR  repository folder (default: the folder sbatch was called from)
#   PYTHON         python command (default: python3)
#   MODULES        modules to load where `module` exists (default: "python")
#   DATA_DIR       --data-dir for the scripts (default: the scripts' own: face_images/, ../shared/face_images)
#   OUT_DIR        output folder (default per script, named after the job id so a requeued job finds it)
#   EXTRA_ARGS     more flags for the python script, e.g. "--epochs 5 --limit 100"
#   EXPERIMENTS    experiments.sbatch: the configuration list (default experiments/final.txt)
#   STAGE_ARGS     experiments.sbatch: flags before each line's own (e.g. the screening stage's)

cd "${FACECOLOR_DIR:-${SLURM_SUBMIT_DIR:-.}}"
if command -v module >/dev/null 2>&1; then
    module load ${MODULES:-python}
fi
PYTHON=${PYTHON:-python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}  # PyTorch threads = the CPUs SLURM gave us
DATA_ARGS=()
[ -n "${DATA_DIR:-}" ] && DATA_ARGS=(--data-dir "$DATA_DIR")
read -r -a EXTRA <<< "${EXTRA_ARGS:-}"
echo "job ${SLURM_JOB_ID:-none} on $(hostname) at $(date -Is), restart ${SLURM_RESTART_COUNT:-0}"

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

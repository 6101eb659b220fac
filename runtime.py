"""The process a script runs in: device, torchrun process group, memory tuning, signals and the error exit.

Owner of: choosing the device (with cuDNN autotuning on CUDA, and whether it runs bfloat16 natively), joining
and leaving torchrun's process group and summing over its ranks, glibc's memory settings, turning
SIGINT/SIGTERM/SIGUSR1 into a stop flag, and the one-line error exit (UserError, exit status 1; Interrupted, 75:
resumable).
"""
import ctypes
import os
import signal
import sys
import traceback

import torch
import torch.distributed as dist

import data


class UserError(Exception):
    """Something the user can fix (bad file, bad checkpoint, diverged run): printed as one line, exit status 1."""
    exit_code = 1


class Interrupted(UserError):
    """Stopped by a signal after writing a resumable checkpoint: exit status 75 (EX_TEMPFAIL), so a SLURM
    script can tell 'requeue me' from a real failure."""
    exit_code = 75


def pick_device(name):
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = name == "cuda"  # fixed input sizes: let cuDNN pick its fastest kernels
    return torch.device(name)


def default_bf16(device):
    """Whether bfloat16 autocast is the default on `device`: where it was measured faster than float32, a CPU with
    AMX tiles. AVX-512 BF16 alone does not tell: on an Intel Xeon without AMX oneDNN's bfloat16 convolutions took
    1.8x the float32 time, on an AMD EPYC bfloat16 trained 1.38x faster (EXPERIMENTS.md, Precision); one machine
    of each is too few for a rule by vendor. On a CUDA GPU these networks at batch 10 wait on kernel launches, not
    on the matrix units: on an H200 the loop ran at 3 % of the float32 peak and bfloat16 at 0.88x float32's speed
    (docs/gpu.md)."""
    return device.type == "cpu" and torch.cpu._is_amx_tile_supported()


def precision_name(bf16):
    return "bfloat16 autocast" if bf16 else "float32"


def compute_description(device, bf16):
    """What a run computes on, for its start line and summary: device, CPU threads and precision. A seed gives
    bit-identical results only with all three the same (and the same machine and PyTorch)."""
    return f"device {device}, {torch.get_num_threads()} CPU threads, {precision_name(bf16)}"


def keep_freed_memory():
    """Stop glibc from returning freed buffers to the OS after every step (Linux only; elsewhere a no-op).

    By default glibc unmaps/trims large freed blocks, so each training step page-faults its activations in
    again: measured 2-4x slower and erratic CPU training on 2-core VMs. This is the in-process equivalent of
    MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ and needs no environment set before Python starts.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold, largest = -1, -3, 2 ** 31 - 1
    libc.mallopt(m_mmap_threshold, 32 * 2 ** 20)  # glibc's maximum for this setting
    libc.mallopt(m_trim_threshold, largest)


def init_distributed(device_name):
    """The device for this process; under torchrun (which sets LOCAL_RANK), even with one process, also joins
    the process group (NCCL on GPUs, gloo on CPU) and takes GPU number LOCAL_RANK. A plain run needs neither."""
    device = pick_device(device_name)
    if "LOCAL_RANK" in os.environ:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def rank_and_world():
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def process_group_name():
    """The process group's backend ("nccl", "gloo"), or "none" for a plain single-process run."""
    return dist.get_backend() if dist.is_initialized() else "none"


def close_distributed():
    """Leave the process group after a run that ended well on every rank; the barrier first avoids gloo aborting at
    exit ('terminate called ...')."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _collective_device():
    """Where tensors for collectives must live: NCCL reduces only CUDA tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_ranks_sum(*values):
    """Sum numbers over all ranks (identity in a single process)."""
    if not dist.is_initialized():
        return values
    total = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return tuple(total.tolist())


def run_main(main):
    """Run a script's main(); user errors become one line on stderr and exit status 1 (75: interrupted,
    resumable).

    Under torchrun a rank that fails must not wait for the others at a barrier they never reach: it leaves at once
    (os._exit), which closes its connections, so the other ranks' next collective fails instead of waiting until
    the job's time limit, and torchrun stops what is left. Those ranks then exit with one line that points to the
    first error instead of repeating it or printing a traceback.
    """
    keep_freed_memory()
    try:
        main()
    except (UserError, data.DataError) as err:
        _exit(f"error: {err}", getattr(err, "exit_code", 1))
    except Exception as err:
        if not dist.is_initialized():
            raise
        rank, world = rank_and_world()
        if not _lost_other_rank(err):  # a bug: its traceback, but no waiting for the other ranks
            traceback.print_exc()
            _exit(f"rank {rank} of {world} failed", 1)
        _exit(f"rank {rank} of {world} stopped: another process of this run failed (its error is above)", 1)
    close_distributed()


def _lost_other_rank(err):
    """Whether a collective failed because another rank is gone: gloo's transport reports the closed connection,
    NCCL's watchdog a DistBackendError."""
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError) and "/gloo/transport/" in str(err))


def _exit(message, status):
    """Print `message` on stderr and exit with `status`; under torchrun without waiting for the other ranks."""
    print(message, file=sys.stderr, flush=True)
    if dist.is_initialized():
        sys.stdout.flush()
        os._exit(status)
    sys.exit(status)


class StopFlag:
    """Turns SIGINT/SIGTERM/SIGUSR1 (SLURM's warning before a time limit) into a flag, so the loop can finish
    its step and checkpoint before exiting. Under torchrun the ranks agree on it every CHECK_EVERY steps."""

    CHECK_EVERY = 20  # steps between collective checks: each one makes every rank wait for the device

    def __init__(self):
        self.signal_name = None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame):
        self.signal_name = signal.Signals(signum).name

    def __bool__(self):
        return self.signal_name is not None

    def agreed(self, step=0):
        """True once any rank was signalled. Under torchrun a collective call, made only when `step` is a multiple
        of CHECK_EVERY (0: always), so every rank must call it with the same steps."""
        if not dist.is_initialized():
            return bool(self)
        if step % self.CHECK_EVERY:
            return False
        flag = torch.tensor([float(bool(self))], device=_collective_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        signalled = bool(flag.item())
        if signalled and self.signal_name is None:
            self.signal_name = "a signal to another rank"
        return signalled

"""Training-loop pieces shared by train_mean.py and train_colorize.py (and checkpoint loading for test_colorize.py).

Owner of: CLI flag types and the common flags, device choice and the torchrun process group, the prepared
(augmented, Lab) data on the device and the held-out split it is evaluated on (test, or validation for model
selection), shuffled (and per-rank sharded) mini-batches, the loss (MSE, or cross-entropy over a*b* classes), one
training epoch, batched evaluation in eval mode, the per-epoch log (stdout + CSV) and the end-of-run summary
(JSON), atomic checkpoint save, safe checkpoint load, graceful SIGINT/SIGTERM/SIGUSR1, and the one-line error exit.
"""
import argparse
import csv
import ctypes
import json
import math
import os
import pickletools
import signal
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import data
from augment import apply_params, sample_params


class UserError(Exception):
    """Something the user can fix (bad file, bad checkpoint, diverged run): printed as one line, exit status 1."""
    exit_code = 1


class Interrupted(UserError):
    """Stopped by a signal after writing a resumable checkpoint: exit status 75 (EX_TEMPFAIL), so a SLURM
    script can tell 'requeue me' from a real failure."""
    exit_code = 75


# ---------------------------------------------------------------- CLI

def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def fraction(text):
    value = float(text)
    if not 0 <= value < 0.5:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 0.5), got {text}")
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's line breaks and shows every flag's default (except "None": such flags say in
    their help what leaving them out does)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def add_common_args(parser, epochs, lr, out_dir, lr_schedule="constant", fresh_augment=False):
    """Flags every training script has; defaults differ per script."""
    parser.add_argument("--data-dir", help="folder of face images (default: face_images/ beside the scripts, "
                                           "else ../shared/face_images)")
    parser.add_argument("--limit", type=positive_int, help="use only the first LIMIT images (quick runs)")
    parser.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the augmented training set")
    parser.add_argument("--batch-size", type=positive_int, default=10, help="images per training step")
    parser.add_argument("--lr", type=positive_float, default=lr, help="Adam learning rate")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default=lr_schedule,
                        help="learning rate per epoch: constant, or cosine decay to 0 at the last epoch")
    parser.add_argument("--augment-factor", type=positive_int, default=10,
                        help="copies of each training image (1: no augmentation)")
    parser.add_argument("--fresh-augment", action=argparse.BooleanOptionalAction, default=fresh_augment,
                        help="draw new random augmentations every epoch instead of one fixed augmented set")
    parser.add_argument("--val-fraction", type=fraction, default=0.0,
                        help="hold out this fraction of all images from training (before augmentation) and evaluate "
                             "on it instead of the test split: for choosing settings without looking at the test set")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, augmentation, init and batch order")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available, else CPU")
    parser.add_argument("--out-dir", default=out_dir,
                        help="checkpoint, log and plots go here; a run already saved there is never overwritten "
                             "(continue it with --resume). The shipped model in outputs/ is not written by default")
    parser.add_argument("--tanh", action="store_true", help="Tanh output, a*b* targets scaled to [-1, 1]")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out-dir")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the training forward pass")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model for training")


def pick_device(name):
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = name == "cuda"  # fixed input sizes: let cuDNN pick its fastest kernels
    return torch.device(name)


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
    """The device for this process; under torchrun also joins the process group (NCCL on GPUs, gloo on CPU)
    and takes GPU number LOCAL_RANK. A plain single-process run needs no torchrun and no process group."""
    device = pick_device(device_name)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
    return device


def rank_and_world():
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def close_distributed():
    """Leave the process group; the barrier first avoids gloo aborting at exit ('terminate called ...')."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _all_ranks_sum(*values):
    """Sum numbers over all ranks (identity in a single process)."""
    if not dist.is_initialized():
        return values
    total = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(total)
    return tuple(total.tolist())


def run_main(main):
    """Run a script's main(); user errors become one line on stderr and exit status 1 (75: interrupted,
    resumable)."""
    keep_freed_memory()
    try:
        main()
    except (UserError, data.DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 1))
    finally:
        close_distributed()


# ---------------------------------------------------------------- data

def augmented_network_data(rgb, factor, seed, chunk=16):
    """Augment rgb x`factor` and convert to (l_norm, ab_norm), `chunk` source images at a time.

    Same result as data.to_network(augment(rgb, factor, seed)), without holding the whole augmented RGB set;
    chunks of 16 sources (about 30 MB of temporaries) stay under glibc's mmap threshold, so their memory is
    reused instead of page-faulted in again for every chunk.
    """
    params = sample_params(len(rgb), factor, seed)
    l_norm = torch.empty((len(rgb) * factor, 1, *rgb.shape[2:]))
    ab_norm = torch.empty((len(rgb) * factor, 2, *rgb.shape[2:]))
    for start in range(0, len(rgb), chunk):
        copies = slice(start * factor, (start + chunk) * factor)
        data.to_network(apply_params(rgb[start:start + chunk], params[copies]), out=(l_norm[copies], ab_norm[copies]))
    return l_norm, ab_norm


def prepare_data(args, device):
    """Load, split 90/10 (and a validation part, with --val-fraction) before augmentation, augment the training
    part, convert to Lab; tensors on `device`.

    Returns a dict: train_l/train_ab (augmented, l_norm / ab_norm), eval_l/eval_ab (the held-out split the run
    is evaluated on), eval_split ("test", or "val" with --val-fraction), train_rgb (for --fresh-augment),
    train_names, val_names, test_names.
    """
    rgb, names = data.load_faces(args.data_dir, args.limit)
    train_idx, val_idx, test_idx = data.split_indices(len(rgb), args.seed, val_fraction=args.val_fraction)
    eval_split, eval_idx = ("val", val_idx) if args.val_fraction > 0 else ("test", test_idx)
    if len(train_idx) == 0 or len(eval_idx) == 0:
        raise UserError(f"{len(rgb)} image(s) are too few to split into training and {eval_split} images")
    train_l, train_ab = augmented_network_data(rgb[train_idx], args.augment_factor, args.seed)
    eval_l, eval_ab = data.to_network(rgb[eval_idx])
    return {"train_l": train_l.to(device), "train_ab": train_ab.to(device),
            "eval_l": eval_l.to(device), "eval_ab": eval_ab.to(device), "eval_split": eval_split,
            "train_rgb": rgb[train_idx] if args.fresh_augment else None,
            **{f"{split}_names": [names[i] for i in idx]
               for split, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))}}


def training_data(prepared, args, epoch):
    """The augmented training pair for `epoch`: the prepared one, or with --fresh-augment a new draw after epoch 1
    (seeded by seed and epoch, so a resumed run sees the same images)."""
    if not args.fresh_augment or epoch == 1:
        return prepared["train_l"], prepared["train_ab"]
    l_norm, ab_norm = augmented_network_data(prepared["train_rgb"], args.augment_factor, args.seed * 1000 + epoch)
    device = prepared["train_l"].device
    return l_norm.to(device), ab_norm.to(device)


def start_run(args, name, model_kind):
    """The common start of a training script: device (joining torchrun's group, if any), output folder, the
    checkpoint to resume (--resume), the stop flag, and the prepared data. Returns a SimpleNamespace."""
    device = init_distributed(args.device)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir}: exists and is not a folder")
    if not args.resume:
        refuse_to_replace_run(out_dir, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / f"{name}.pt"
    resume_from = load_checkpoint(checkpoint_path, device, model_kind) if args.resume else None
    stop = StopFlag()  # from here on a signal means "checkpoint and stop" (SLURM's time-limit warning too)
    return SimpleNamespace(device=device, out_dir=out_dir, checkpoint_path=checkpoint_path,
                           log_path=out_dir / f"{name}.csv", summary_path=out_dir / f"{name}_summary.json",
                           resume_from=resume_from, stop=stop,
                           prepared=prepare_data(args, device))


def refuse_to_replace_run(out_dir, name):
    """A new run must not overwrite the checkpoint, log or summary of a finished or interrupted run in `out_dir`
    (a header-only log is not a run: the run that wrote it stopped before its first epoch ended)."""
    log = out_dir / f"{name}.csv"
    found = [path.name for path in (out_dir / f"{name}.pt", out_dir / f"{name}_summary.json") if path.exists()]
    if log.exists() and len(log.read_text().splitlines()) > 1:
        found.append(log.name)
    if found:
        raise UserError(f"--out-dir {out_dir} already holds a run ({', '.join(found)}): continue it with --resume, "
                        f"or start a new one with another --out-dir (or delete {out_dir} first)")


# ---------------------------------------------------------------- loop

class StopFlag:
    """Turns SIGINT/SIGTERM/SIGUSR1 (SLURM's warning before a time limit) into a flag, so the loop can finish
    its step and checkpoint before exiting. Under torchrun all ranks agree on it at every step."""

    def __init__(self):
        self.signal_name = None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame):
        self.signal_name = signal.Signals(signum).name

    def __bool__(self):
        return self.signal_name is not None

    def agreed(self):
        """True once any rank was signalled (a collective call under torchrun: every rank must call it)."""
        if not dist.is_initialized():
            return bool(self)
        flag = torch.tensor([float(bool(self))])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.signal_name is None:
            self.signal_name = "a signal to another rank"
        return bool(flag.item())


def minibatches(n, batch_size, seed, rank=0, world=1):
    """Shuffled index tensors covering range(n), or rank's equal-sized shard of them; the order depends only
    on `seed`. With several ranks the last n % world samples of the epoch's order are left out."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:n - n % world][rank::world].split(batch_size)


class Progress:
    """A progress line inside an epoch: redrawn on a terminal, every quarter epoch otherwise."""

    def __init__(self, epoch, total):
        self.epoch, self.total, self.start = epoch, total, time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.next_report = total // 4

    def update(self, done):
        if not self.tty and done < self.next_report:
            return
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        end = "\r" if self.tty else "\n"
        print(f"  epoch {self.epoch}: {done}/{self.total} images, {rate:.0f} img/s", end=end, file=sys.stderr,
              flush=True)
        self.next_report += self.total // 4

    def close(self):
        if self.tty:
            print(" " * 60, end="\r", file=sys.stderr, flush=True)


def make_loss(model):
    """The batch loss of `model`: a function (output, ab_norm target) -> (loss to minimise, ab_norm MSE to log).

    Regression: MSE, both times; an ensemble's N x K x 2 training output is compared member by member with the
    target, so each member learns on its own and the logged MSE is the members' average. Classification
    Colorizer: cross-entropy against the a*b* bin of each output pixel (the mean a*b* of the input pixels it
    covers), and the MSE of the annealed-mean decoding at that resolution, so the log stays in the same units
    for both kinds.
    """
    bins = getattr(model, "args", {}).get("bins")
    if bins is None:
        def loss(out, y):
            mse = torch.nn.functional.mse_loss(out.float(), y.unsqueeze(1).expand_as(out) if out.dim() > y.dim() else y)
            return mse, mse
        return loss

    def loss(out, y):
        y = torch.nn.functional.avg_pool2d(y, model.logit_stride)
        target = data.ab_to_class(y, bins, model.args["bin_size"])
        with torch.no_grad():
            mse = torch.nn.functional.mse_loss(data.annealed_mean(out, model.bins_norm, model.args["temperature"]), y)
        return torch.nn.functional.cross_entropy(out.float(), target, ignore_index=-1), mse
    return loss


def train_epoch(model, optimizer, x, y, batch_size, epoch, seed, stop, skip_steps=0, bf16=False, loss_fn=None):
    """Train on (x, y) in shuffled mini-batches, starting after `skip_steps` already-done steps of this epoch.

    `loss_fn` is make_loss(model) (the default). Returns (steps done, sum of per-sample ab_norm MSE, samples seen,
    whether the epoch is complete); stops early after the current step once `stop` is set; raises UserError on a
    non-finite loss.
    """
    loss_fn = loss_fn or make_loss(model)
    model.train()
    loss_sum, seen, steps = 0.0, 0, skip_steps
    batches = minibatches(len(x), batch_size, seed * 100_003 + epoch, *rank_and_world())
    progress = Progress(epoch, sum(map(len, batches)))
    for idx in batches[skip_steps:]:
        idx = idx.to(x.device)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x[idx])
        loss, mse = loss_fn(out, y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise UserError(f"training diverged: non-finite loss at epoch {epoch}, step {steps}; "
                            f"try a smaller --lr (the last good checkpoint is kept)")
        loss_sum += mse.item() * len(idx)
        seen += len(idx)
        progress.update(seen)
        if stop.agreed():
            break
    progress.close()
    return steps, loss_sum, seen, steps == len(batches)


@torch.no_grad()
def predict(model, x, batch_size):
    """Model outputs for all of x, in eval mode and mini-batches; the model is back in train mode afterwards."""
    model.eval()
    out = torch.cat([model(part) for part in x.split(batch_size)])
    model.train()
    return out


def evaluate(model, x, y, batch_size):
    """Exact held-out MSE in raw Lab units^2: dict with mse_a, mse_b and mse (their mean), averaged over all samples."""
    per_image = data.ab_mse_raw(predict(model, x, batch_size), y)
    mse_a, mse_b = per_image.mean(0).tolist()
    return {"mse_a": mse_a, "mse_b": mse_b, "mse": (mse_a + mse_b) / 2}


class EpochLog:
    """Prints one line per epoch and appends the same figures to <out_dir>/<name>.csv; `split` ("test" or "val")
    names the held-out columns."""

    def __init__(self, path, resume, split):
        self.path, self.split = Path(path), split
        self.fields = ("epoch", "train_mse", f"{split}_mse_a", f"{split}_mse_b", f"{split}_mse", "img_per_s",
                       "elapsed_s")
        if not resume or not self.path.exists():
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.fields)

    def write(self, row):
        s = self.split
        print(f"epoch {row['epoch']:3d}  train MSE {row['train_mse']:8.2f}  {s} MSE a* {row[f'{s}_mse_a']:7.2f}"
              f"  b* {row[f'{s}_mse_b']:7.2f}  mean {row[f'{s}_mse']:7.2f}  {row['img_per_s']:6.0f} img/s"
              f"  {row['elapsed_s']:6.0f} s", flush=True)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(round(row[k], 4) if isinstance(row[k], float) else row[k] for k in self.fields)


def held_out_scores(prepared, ab_norm_pred):
    """Mean figures of colorizations of the held-out split (its L* with ab_norm_pred): MSE (raw Lab units^2),
    RGB PSNR (dB) and colorfulness of the outputs and of the originals."""
    return data.mean_scores(prepared["eval_l"], ab_norm_pred, prepared["eval_ab"])


def write_summary(run, args, model, metrics, figures):
    """<out_dir>/<name>_summary.json: the run's flags, model arguments, held-out split and final figures,
    for experiments.py to tabulate."""
    summary = {"eval_split": run.prepared["eval_split"], "epochs": metrics[-1]["epoch"],
               "train_seconds": metrics[-1]["elapsed_s"], "figures": figures, "args": vars(args),
               "model_kind": type(model).__name__, "model_args": model.args}
    tmp = run.summary_path.with_name(f".{run.summary_path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, run.summary_path)


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path, checkpoint):
    """Write atomically: a temporary file in the same folder, then rename over the old checkpoint."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, device, kind):
    """Load a checkpoint of a `kind` model safely (weights_only) onto `device`; UserError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise UserError(f"{path}: {_what_instead(path)}")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files; all mean "not usable"
        reason = "refused: it would load code, not only tensors and plain data" \
            if "unsupported global" in str(err).lower() else "not a readable PyTorch checkpoint (corrupt or truncated)"
        raise UserError(f"{path}: {reason}") from None
    found = checkpoint.get("model_kind") if isinstance(checkpoint, dict) else None
    if found != kind:
        raise UserError(f"{path}: not a {kind} checkpoint (found {found or 'no model kind'})")
    return checkpoint


def _what_instead(path):
    """What a file that is not a zip archive (so not written by torch.save) is, in the user's terms. A bare pickle
    (protocol 2 or later, so it starts with PROTO) is some other program's file: its opcodes, read and not
    executed, tell whether loading it would call code."""
    with open(path, "rb") as f:
        if f.read(1) == b"\x80":
            f.seek(0)
            try:
                opcodes = {op.name for op, _arg, _pos in pickletools.genops(f)}
            except Exception:  # genops raises ValueError, EOFError and others on garbage
                opcodes = None
            if opcodes is not None:
                calls = opcodes & {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"}
                return "not a PyTorch checkpoint file but a plain Python pickle" + \
                    (" that would run code when loaded: refused" if calls else "")
    return "not a readable PyTorch checkpoint (corrupt or truncated)"


def make_optimizer(model, args):
    """Adam, with a per-epoch cosine decay of the learning rate to zero when --lr-schedule cosine."""
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    if args.lr_schedule == "cosine":
        decay = lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))  # noqa: E731
    else:
        decay = lambda epoch: 1.0  # noqa: E731
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, decay)


def fit(model, run, args, target=None):
    """Train for args.epochs epochs with a held-out evaluation, log line and atomic checkpoint after each one.

    `run` comes from start_run: its prepared data (the training pair of each epoch from training_data, the
    held-out pair eval_l/eval_ab), paths, the checkpoint to resume (possibly stopped mid-epoch) and the StopFlag
    made before data preparation, so an early signal is not lost. `target` maps ab_norm to what the model
    predicts (default: ab_norm itself). On SIGINT/SIGTERM/SIGUSR1 the current step finishes,
    a checkpoint is written and Interrupted says how to resume. Under torchrun every rank trains on its shard
    through DistributedDataParallel and only rank 0 evaluates, logs and writes checkpoints.
    The model runs in channels_last memory format (measured 1.4x faster on CPU for the default Colorizer).
    Returns the per-epoch metrics (rank 0; an empty list elsewhere).
    """
    rank, world = rank_and_world()
    prepared, checkpoint_path, resume_from, stop = run.prepared, run.checkpoint_path, run.resume_from, run.stop
    target = target or (lambda ab_norm: ab_norm)
    held_out, split = (prepared["eval_l"], target(prepared["eval_ab"])), prepared["eval_split"]
    loss_fn = make_loss(model)
    model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(model, args)
    metrics, epoch, skip_steps, loss_sum, seen = [], 1, 0, 0.0, 0
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        scheduler.load_state_dict(resume_from["scheduler"])
        metrics, epoch = resume_from["metrics"], resume_from["epoch"] + 1
        skip_steps, loss_sum, seen = resume_from["partial"]
        loss_sum, seen = (loss_sum, seen) if rank == 0 else (0.0, 0)  # the saved sums are already global
    train_model = DistributedDataParallel(model) if world > 1 else model
    train_model = torch.compile(train_model) if args.compile else train_model
    log = EpochLog(run.log_path, resume_from is not None, split) if rank == 0 else None
    start = time.perf_counter()
    for epoch in range(epoch, args.epochs + 1):
        train_l, train_ab = training_data(prepared, args, epoch)
        epoch_start = time.perf_counter()
        steps, part_sum, part_seen, complete = train_epoch(train_model, optimizer, train_l, target(train_ab),
                                                           args.batch_size, epoch, args.seed, stop, skip_steps,
                                                           args.bf16, loss_fn)
        part_sum, part_seen = _all_ranks_sum(part_sum, part_seen)
        loss_sum, seen = loss_sum + part_sum, seen + part_seen
        if not complete:
            if rank == 0:
                save_checkpoint(checkpoint_path, checkpoint(model, optimizer, scheduler, epoch - 1,
                                                            (steps, loss_sum, seen), args, prepared, metrics))
            raise Interrupted(f"stopped by {stop.signal_name} in epoch {epoch} after step {steps}; "
                              f"{_how_to_resume(checkpoint_path)}")
        img_per_s = part_seen / (time.perf_counter() - epoch_start)
        scheduler.step()
        if rank == 0:
            row = {"epoch": epoch, "train_mse": loss_sum / seen * data.AB_SCALE ** 2,
                   **{f"{split}_{k}": v for k, v in evaluate(model, *held_out, args.batch_size).items()},
                   "img_per_s": img_per_s, "elapsed_s": time.perf_counter() - start}
            metrics.append(row)
            log.write(row)
            save_checkpoint(checkpoint_path, checkpoint(model, optimizer, scheduler, epoch, (0, 0.0, 0), args,
                                                        prepared, metrics))
        skip_steps, loss_sum, seen = 0, 0.0, 0
        if epoch < args.epochs and stop.agreed():
            raise Interrupted(f"stopped by {stop.signal_name} after epoch {epoch}; {_how_to_resume(checkpoint_path)}")
    return metrics


def _how_to_resume(checkpoint_path):
    return f"checkpoint saved to {checkpoint_path}; continue with the same command plus --resume"


def checkpoint(model, optimizer, scheduler, epoch, partial, args, prepared, metrics):
    """Everything needed to rebuild, resume and re-evaluate a run; `epoch` is the last completed one and
    `partial` = (steps, loss sum, samples) already done of the next."""
    return {"model_kind": type(model).__name__, "model_args": model.args,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
            "partial": list(partial), "args": vars(args), "metrics": metrics,
            **{f"{split}_names": prepared[f"{split}_names"] for split in ("train", "val", "test")}}

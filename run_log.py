"""What a training run reports: the progress line inside an epoch, the per-epoch log and the end-of-run summary.

Owner of: the progress line (stderr), one line per epoch on stdout plus the run's rows in <out_dir>/<name>.csv, the
held-out figures (MSE, PSNR, colorfulness) and <out_dir>/<name>_summary.json.
"""
import csv
import io
import json
import sys
import time
from pathlib import Path

import torch

import data
import runtime
from output_files import write_text


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


class EpochLog:
    """Prints one line per epoch and writes the run's rows to <out_dir>/<name>.csv; `split` ("test" or "val")
    names the held-out columns. The CSV is rewritten whole from the rows the checkpoint holds, atomically, so it
    always matches the last checkpoint, also after a write that failed or a resumed run."""

    def __init__(self, path, split):
        self.path, self.split = Path(path), split
        self.fields = ("epoch", "train_mse", f"{split}_mse_a", f"{split}_mse_b", f"{split}_mse", "img_per_s",
                       "elapsed_s")

    def write(self, rows):
        """Write all `rows` (the run's metrics so far) to the CSV."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(self.fields)
        writer.writerows([round(row[k], 4) if isinstance(row[k], float) else row[k] for k in self.fields]
                         for row in rows)
        write_text(self.path, text.getvalue())

    def print(self, row):
        s = self.split
        print(f"epoch {row['epoch']:3d}  train MSE {row['train_mse']:8.2f}  {s} MSE a* {row[f'{s}_mse_a']:7.2f}"
              f"  b* {row[f'{s}_mse_b']:7.2f}  mean {row[f'{s}_mse']:7.2f}  {row['img_per_s']:6.0f} img/s"
              f"  {row['elapsed_s']:6.0f} s", flush=True)


def held_out_scores(prepared, ab_norm_pred):
    """Mean figures of colorizations of the held-out split (its L* with ab_norm_pred): MSE (raw Lab units^2),
    RGB PSNR (dB) and colorfulness of the outputs and of the originals."""
    return data.mean_scores(prepared["eval_l"], ab_norm_pred, prepared["eval_ab"])


def finished_run_kept(run):
    """What a user still has when the end-of-run files cannot be written: the last epoch's checkpoint."""
    return (f"training is finished and its checkpoint {run.checkpoint_path} is kept (test it with test_colorize.py, "
            f"or write the end-of-run files with the same command plus --resume)")


def write_summary(run, args, model, metrics, figures):
    """<out_dir>/<name>_summary.json: the run's flags, model arguments, held-out split, final figures, device,
    CPU threads, precision, PyTorch version and (on CUDA) the peak GPU memory allocated, for experiments.py and
    bench.py to tabulate and for a user to compare a rerun with."""
    summary = {"eval_split": run.prepared["eval_split"], "epochs": metrics[-1]["epoch"],
               "train_images": len(run.prepared["train_l"]),
               "train_seconds": metrics[-1]["elapsed_s"], "figures": figures, "args": vars(args),
               "model_kind": type(model).__name__, "model_args": model.args, "device": str(run.device),
               "threads": torch.get_num_threads(), "precision": runtime.precision_name(args.bf16),
               "torch": torch.__version__,
               "peak_gpu_mb": torch.cuda.max_memory_allocated(run.device) / 2 ** 20
               if run.device.type == "cuda" else None}
    write_text(run.summary_path, json.dumps(summary, indent=1) + "\n")

"""Checkpoint files: what a checkpoint holds, writing it atomically, loading it safely, and runs not overwritten.

Owner of: the checkpoint dict (state_dicts, with --ema the averaged and the trained weights, model arguments,
flags, split names, metrics, the position inside an epoch) and its model-only form for shipping (to which
experiments.py ship adds what a colorizer's training photos lend it, "lent": test_colorize.Lent), atomic save,
weights_only load with one-line reasons for files that are not checkpoints, and the refusal to start a new run
in a folder that already holds one.
"""
import io
import pickletools
import zipfile
from pathlib import Path

import torch

from output_files import write_bytes
from runtime import UserError

SPLITS = ("train", "val", "test")  # a checkpoint names the images of each: <split>_names

UNREADABLE = "not a readable PyTorch checkpoint (corrupt or truncated)"


def checkpoint(model, optimizer, scheduler, epoch, partial, args, prepared, metrics, average=None):
    """Everything needed to rebuild, resume and re-evaluate a run; `epoch` is the last completed one and
    `partial` = (steps, loss sum, samples) already done of the next. With a weight average (--ema) "model" holds
    the averaged weights, which evaluation and colorizing use, and "train_model" the trained ones, to resume."""
    weights = {"model": _cpu_state(average.model if average else model)}
    if average:
        weights["train_model"] = _cpu_state(model)
    return {"model_kind": type(model).__name__, "model_args": model.args, **weights,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
            "partial": list(partial), "args": vars(args), "metrics": metrics,
            **{f"{split}_names": prepared[f"{split}_names"] for split in SPLITS}}


RESUME_ONLY = ("optimizer", "scheduler", "train_model")  # what only resuming a run needs


def model_only(checkpoint):
    """A finished run's checkpoint without what only resuming needs (optimiser and scheduler state, the trained
    weights beside an average): about a third of the size, for shipping a model to be tested and used."""
    return {key: value for key, value in checkpoint.items() if key not in RESUME_ONLY}


def _cpu_state(model):
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def serialised(checkpoint):
    """The bytes torch.save writes for `checkpoint`."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def save_checkpoint(path, checkpoint):
    """Write atomically (output_files.write_bytes): serialised in memory first, so a full disk is an OSError that
    names its reason, not an error from inside torch.save, and leaves the old checkpoint as it was."""
    write_bytes(path, serialised(checkpoint))


def load_checkpoint(path, device, kind):
    """Load a checkpoint of a `kind` model (a model class name, or a tuple of them) safely (weights_only) onto
    `device`; UserError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise UserError(f"{path}: {_what_instead(path)}")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files; all mean "not usable"
        reason = "refused: it would load code, not only tensors and plain data" \
            if "unsupported global" in str(err).lower() else UNREADABLE
        raise UserError(f"{path}: {reason}") from None
    found = checkpoint.get("model_kind") if isinstance(checkpoint, dict) else None
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if found not in kinds:
        raise UserError(f"{path}: not a {' or '.join(kinds)} checkpoint (found {found or 'no model kind'})")
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
    return UNREADABLE


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

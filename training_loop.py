"""The training loop shared by train_mean.py and train_colorize.py, and prediction in eval mode.

Owner of: a run's start (device, output folder and its lock, resume, stop flag, prepared data), the loss (MSE, or
cross-entropy over a*b* classes), one training epoch, batched prediction and evaluation in eval mode, the optimiser
and its schedule, and fit: epochs with evaluation, a log line and a checkpoint after each, stopping on a signal.
"""
import contextlib
import copy
import math
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.nn.parallel import DistributedDataParallel

import data
from checkpoints import checkpoint, load_checkpoint, refuse_to_replace_run, save_checkpoint
from output_files import keeping
from prepare import minibatches, prepare_data, training_data
from run_lock import RunLock
from run_log import EpochLog, Progress
from runtime import (Interrupted, StopFlag, UserError, all_ranks_sum, default_bf16, init_distributed,
                     process_group_name, rank_and_world)


@contextlib.contextmanager
def start_run(args, name, model_kind):
    """The common start of a training script, as `with start_run(...) as run:`: device (joining torchrun's group,
    if any), the precision unless a flag chose it (args.bf16), output folder and its lock (run_lock; held by rank 0
    until the block ends, however it ends), the checkpoint to resume (--resume), the stop flag, and the prepared
    data, as a SimpleNamespace."""
    device = init_distributed(args.device)
    if args.bf16 is None:  # neither --bf16 nor --no-bf16: bfloat16 where it was measured faster
        args.bf16 = default_bf16(device)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir}: exists and is not a folder")
    if data.is_data_dir(out_dir, args.data_dir):
        raise UserError(f"--out-dir {out_dir}: is the data folder; the run's files there would be read as faces")
    out_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(out_dir) if rank_and_world()[0] == 0 else contextlib.nullcontext():
        if not args.resume:
            refuse_to_replace_run(out_dir, name)
        checkpoint_path = out_dir / f"{name}.pt"
        resume_from = load_checkpoint(checkpoint_path, device, model_kind) if args.resume else None
        if resume_from is not None and "optimizer" not in resume_from:
            raise UserError(f"{checkpoint_path}: a shipped model without optimiser state; it can be tested, not "
                            f"resumed")
        if resume_from is not None:
            check_resumed_flags(resume_from, args, checkpoint_path)
        stop = StopFlag()  # from here on a signal means "checkpoint and stop" (SLURM's time-limit warning too)
        yield SimpleNamespace(device=device, out_dir=out_dir, checkpoint_path=checkpoint_path,
                              log_path=out_dir / f"{name}.csv", summary_path=out_dir / f"{name}_summary.json",
                              resume_from=resume_from, stop=stop, prepared=prepare_data(args, device))


# What a continued run may change: where and how it runs, not what it trains. --epochs may extend a per-epoch
# schedule and --batch-size shrink to fit a GPU's memory (as the out-of-memory error suggests); a one-cycle schedule
# refuses both by its length (check_schedule_length).
RESUME_MAY_CHANGE = ("data_dir", "device", "out_dir", "resume", "bf16", "compile", "compile_mode", "epochs",
                     "batch_size")
# Flags whose default has changed since they were added, with the value that trains as runs saved before the flag
# existed: such a run resumed on today's defaults would otherwise go on as another recipe, unchecked.
TRAINED_BEFORE_THE_FLAG = {"tint_weight": 1.0}


def check_resumed_flags(resume_from, args, checkpoint_path):
    """Refuse to resume a run with training flags other than it was started with (given otherwise, or a default
    changed since): it would go on as another recipe, or fail to load its weights. A flag newer than the checkpoint
    (not in its saved flags) is checked against the value runs trained as before it existed where its default has
    changed since (TRAINED_BEFORE_THE_FLAG); any other cannot be checked, and trains as before at its default. A
    run stopped mid-epoch keeps its batch size to the epoch's end: the batches it has left are drawn by it."""
    saved = dict(resume_from["args"])
    for key, value in TRAINED_BEFORE_THE_FLAG.items():
        saved.setdefault(key, value)
    changed = [key for key in saved if key not in RESUME_MAY_CHANGE and key in vars(args)
               and saved[key] != getattr(args, key)]
    if resume_from["partial"][0] and saved["batch_size"] != args.batch_size:
        changed.append("batch_size")
    if changed:
        shown = lambda values: ", ".join(flag_text(key, values[key]) for key in changed)  # noqa: E731
        raise UserError(f"--resume: {checkpoint_path} was started with {shown(saved)}, not {shown(vars(args))}; "
                        f"resume it with those flags, or start a new run in another --out-dir")


def flag_text(key, value):
    """A flag and its value as typed (a switch as on/off)."""
    if isinstance(value, bool):
        value = "on" if value else "off"
    elif isinstance(value, (list, tuple)):
        value = " ".join(map(str, value))
    return f"--{key.replace('_', '-')} {value}"


def make_loss(model, identity_weight=0.0, tint_weight=1.0):
    """The batch loss of `model`: a function (output, ab_norm target, person labels or None) -> (loss to minimise,
    ab_norm MSE to log).

    Regression: MSE, both times; an ensemble's N x K x 2 training output is compared member by member with the
    target, so each member learns on its own and the logged MSE is the members' average. With `tint_weight` below 1
    (--tint-weight) the loss counts each image's tint error (of its mean a*b*) that much: an image's MSE is its
    tint's squared error plus that of the detail around the tint, so the loss is the MSE less (1 - tint_weight)
    times the former. A FusionColorizer with classes (--identity-weight W) returns (ab_norm, person logits) while
    training: the loss is the MSE plus W times the cross-entropy of the person pictured, as in Iizuka et al.'s joint
    classification. Classification Colorizer: cross-entropy against the a*b* bin of each output pixel (the mean a*b*
    of the input pixels it covers), and the MSE of the annealed-mean decoding at that resolution, so the log stays
    in the same units for both kinds.
    """
    bins = getattr(model, "args", {}).get("bins")

    def color_loss(ab_norm, y):
        ab_norm, y = ab_norm.float(), y.unsqueeze(1).expand_as(ab_norm) if ab_norm.dim() > y.dim() else y
        mse = torch.nn.functional.mse_loss(ab_norm, y)
        if tint_weight == 1.0:
            return mse, mse
        tint = torch.nn.functional.mse_loss(ab_norm.mean((-2, -1)), y.mean((-2, -1)))
        return mse - (1 - tint_weight) * tint, mse

    if getattr(model, "args", {}).get("classes"):
        def loss(out, y, people):
            ab_norm, logits = out
            color, mse = color_loss(ab_norm, y)
            return color + identity_weight * torch.nn.functional.cross_entropy(logits.float(), people), mse
        return loss
    if bins is None:
        def loss(out, y, _people=None):
            return color_loss(out, y)
        return loss

    def loss(out, y, _people=None):
        y = torch.nn.functional.avg_pool2d(y, model.logit_stride)
        target = data.ab_to_class(y, bins, model.args["bin_size"])
        with torch.no_grad():
            mse = torch.nn.functional.mse_loss(data.annealed_mean(out, model.bins_norm, model.args["temperature"]), y)
        return torch.nn.functional.cross_entropy(out.float(), target, ignore_index=-1), mse
    return loss


def train_epoch(model, optimizer, x, y, batch_size, epoch, seed, stop, skip_steps=0, bf16=False, loss_fn=None,
                after_step=None, people=None):
    """Train on (x, y) in shuffled mini-batches, starting after `skip_steps` already-done steps of this epoch.

    `loss_fn` is make_loss(model) (the default); `people`, the person label of each sample, for a loss with an
    identity term; `after_step()`, if given, runs after every optimiser step. Returns
    (steps done, sum of per-sample ab_norm MSE, samples seen, whether the epoch is complete); stops early after the
    current step once `stop` is set; raises UserError on a non-finite loss. No step waits for the device: each
    step's losses stay there and are read once, at the end, which is also where a non-finite loss is found (and
    before the caller writes any checkpoint).
    """
    loss_fn = loss_fn or make_loss(model)
    model.train()
    batches = minibatches(len(x), batch_size, seed * 100_003 + epoch, *rank_and_world())
    todo = batches[skip_steps:]
    order = torch.cat(todo).to(x.device) if todo else torch.empty(0, dtype=torch.long, device=x.device)
    losses = torch.zeros(len(todo), 2, device=x.device)  # per step: the loss minimised, the batch's summed MSE
    progress = Progress(epoch, sum(map(len, batches)))
    done = seen = 0
    for idx in order.split(batch_size):  # the same batches: all but an epoch's last have batch_size samples
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x[idx])
        loss, mse = loss_fn(out, y[idx], None if people is None else people[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step:
            after_step()
        losses[done, 0], losses[done, 1] = loss.detach(), mse.detach() * len(idx)
        done, seen = done + 1, seen + len(idx)
        progress.update(seen)
        if stop.agreed(skip_steps + done):
            break
    progress.close()
    finite = torch.isfinite(losses[:done, 0]).tolist()
    if not all(finite):
        step = skip_steps + finite.index(False) + 1
        raise UserError(f"training diverged: non-finite loss at epoch {epoch}, step {step}; "
                        f"try a smaller --lr (the last good checkpoint is kept)")
    steps = skip_steps + done
    return steps, losses[:done, 1].sum().item(), seen, steps == len(batches)


@torch.no_grad()
def predict(model, x, batch_size):
    """Model outputs for all of x, in eval mode, without autograd and in mini-batches; the model is back in the mode
    it was in afterwards (training goes on in train mode; a colorizer being tested stays in eval mode)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(part) for part in x.split(batch_size)])
    model.train(was_training)
    return out


def evaluate(model, x, y, batch_size):
    """Exact held-out MSE in raw Lab units^2: dict with mse_a, mse_b and mse (their mean), averaged over all samples."""
    per_image = data.ab_mse_raw(predict(model, x, batch_size), y)
    mse_a, mse_b = per_image.mean(0).tolist()
    return {"mse_a": mse_a, "mse_b": mse_b, "mse": (mse_a + mse_b) / 2}


RECALIBRATION_IMAGES = 1000  # a weight average's BatchNorm statistics: forward passes, ~5 % of a default epoch


class WeightAverage:
    """Exponential moving average of a model's weights (--ema DECAY), kept in a copy of the model (`.model`) that
    evaluation and the saved checkpoint use. Updated after every optimiser step by one fused lerp on the device:
    torch.optim.swa_utils.AveragedModel would do the same arithmetic but reads its update count on the host at
    every update, a wait for the GPU at every step. Buffers are not averaged: before the average is evaluated or
    saved, `recalibrate` recomputes its BatchNorm statistics (averaged statistics do not fit averaged weights), and
    no other buffer changes in training."""

    def __init__(self, model, decay, updates=0):
        self.decay, self.updates = decay, updates  # updates so far: a resumed run's average goes on where it stopped
        self.model = copy.deepcopy(model).requires_grad_(False)
        # load_state_dict copies into these same tensors, so the pairs are listed once, not at every step
        self._averaged, self._trained = list(self.model.parameters()), list(model.parameters())

    def update(self):
        """Move the average towards the trained model's current weights. Its memory starts short: after n updates
        the decay is min(decay, (1 + n) / (10 + n)), as in TensorFlow's ExponentialMovingAverage with num_updates,
        or a short run's average would be mostly its random initial weights."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        with torch.no_grad():
            torch._foreach_lerp_(self._averaged, self._trained, 1 - decay)

    def recalibrate(self, images, batch_size):
        """BatchNorm's running statistics of the averaged weights, from about RECALIBRATION_IMAGES of `images` (the
        epoch's training inputs) spread over all of them (torch.optim.swa_utils.update_bn, as SWA does): without
        it the average's colours were far off (EXPERIMENTS.md, "The weight average, mended")."""
        stride = max(1, len(images) // RECALIBRATION_IMAGES)
        torch.optim.swa_utils.update_bn(images[::stride].split(batch_size), self.model)


def make_optimizer(model, args, steps_per_epoch=None):
    """Adam (AdamW, the decoupled decay, with --weight-decay) and its learning-rate schedule: with --lr-schedule
    cosine a per-epoch cosine decay to zero; with one-cycle torch's OneCycleLR (fast.ai's schedule: a warm-up over
    the first 30 % of the steps from lr/25 to --lr, then a cosine decay to almost zero, Adam's beta1 moving
    inversely), which steps after every optimiser step, so a short run still gets a smooth schedule. On CUDA the
    fused kernel (one for all parameters, not one per tensor); on a CPU the default, whose step is about 3 % of a
    training step there and whose results the committed runs are made of. `steps_per_epoch` is needed by one-cycle
    only."""
    fused = next(model.parameters()).device.type == "cuda"
    if args.weight_decay:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                      fused=fused or None)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, fused=fused or None)
    if args.lr_schedule == "one-cycle":
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr,
                                                              total_steps=args.epochs * steps_per_epoch)
    if args.lr_schedule == "cosine":
        decay = lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))  # noqa: E731
    else:
        decay = lambda epoch: 1.0  # noqa: E731
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, decay)


def check_schedule_length(resume_from, args, scheduler):
    """Refuse to resume a one-cycle run over another number of steps than it was laid out for (--epochs or
    --batch-size changed): its warm-up and decay are fixed by its length, and a finished cycle has no more steps."""
    saved = resume_from["scheduler"].get("total_steps")
    if saved is not None and saved != scheduler.total_steps:
        before = resume_from["args"]
        raise UserError(f"--resume: this run's one-cycle schedule spans {saved} steps (--epochs {before['epochs']} "
                        f"--batch-size {before['batch_size']}), not {scheduler.total_steps}; resume it with those "
                        f"flags, or train longer as a new run (another --out-dir)")


def fit(model, run, args, target=None, identity=None):
    """Train for args.epochs epochs with a held-out evaluation, log line and atomic checkpoint after each one.

    `identity` = (person label of each augmented training image, weight) goes with a model that has classes: the
    loss then adds weight times the cross-entropy of the person pictured (make_loss).
    `run` comes from start_run: its prepared data (the training pair of each epoch from training_data, the
    held-out pair eval_x/eval_ab), paths, the checkpoint to resume (possibly stopped mid-epoch) and the StopFlag
    made before data preparation, so an early signal is not lost. `target` maps ab_norm to what the model
    predicts (default: ab_norm itself). On SIGINT/SIGTERM/SIGUSR1 the current step finishes,
    a checkpoint is written and Interrupted says how to resume. Under torchrun every rank trains on its shard
    through DistributedDataParallel and only rank 0 evaluates, logs and writes checkpoints.
    The model runs in channels_last memory format (measured 1.4x faster on CPU for the U-Net Colorizer). With
    train_colorize.py's --low-res-epochs the first epochs' images are at half their side (training_data);
    evaluation is always at full size.
    With --ema the weight average is evaluated, saved as the checkpoint's model and left in `model` at the end.
    Returns the per-epoch metrics (rank 0; an empty list elsewhere).
    """
    rank = rank_and_world()[0]
    prepared, checkpoint_path, resume_from, stop = run.prepared, run.checkpoint_path, run.resume_from, run.stop
    target = target or (lambda ab_norm: ab_norm)
    held_out, split = (prepared["eval_x"], target(prepared["eval_ab"])), prepared["eval_split"]
    people, identity_weight = identity or (None, 0.0)
    loss_fn = make_loss(model, identity_weight, getattr(args, "tint_weight", 1.0))
    model.to(memory_format=torch.channels_last)
    steps_per_epoch = len(minibatches(len(prepared["train_l"]), args.batch_size, 0, *rank_and_world()))
    optimizer, scheduler = make_optimizer(model, args, steps_per_epoch)
    per_step = args.lr_schedule == "one-cycle"
    metrics, epoch, skip_steps, loss_sum, seen = _restored(resume_from, model, optimizer, scheduler, args, rank)
    average = WeightAverage(model, args.ema, (epoch - 1) * steps_per_epoch + skip_steps) if args.ema else None
    if average and resume_from is not None:
        average.model.load_state_dict(resume_from["model"])

    def after_step():
        if average:
            average.update()
        if per_step:
            scheduler.step()

    evaluated = average.model if average else model
    train_model = DistributedDataParallel(model) if process_group_name() != "none" else model
    train_model = torch.compile(train_model, mode=args.compile_mode) if args.compile else train_model
    log = EpochLog(run.log_path, split) if rank == 0 else None
    start = time.perf_counter()
    for epoch in range(epoch, args.epochs + 1):
        train_l, train_ab = training_data(prepared, args, epoch)
        epoch_start = time.perf_counter()
        try:
            steps, part_sum, part_seen, complete = train_epoch(train_model, optimizer, train_l, target(train_ab),
                                                               args.batch_size, epoch, args.seed, stop, skip_steps,
                                                               args.bf16, loss_fn,
                                                               after_step, people)
        except torch.OutOfMemoryError:
            raise UserError(f"--batch-size {args.batch_size}: out of GPU memory in epoch {epoch}; try --batch-size "
                            f"{max(1, args.batch_size // 2)} (the last checkpoint is kept)") from None
        part_sum, part_seen = all_ranks_sum(part_sum, part_seen)
        loss_sum, seen = loss_sum + part_sum, seen + part_seen
        if average and rank == 0:
            average.recalibrate(train_l, args.batch_size)
        if not complete:
            if rank == 0:
                with keeping(_kept(checkpoint_path, epoch - 1)):
                    save_checkpoint(checkpoint_path, checkpoint(model, optimizer, scheduler, epoch - 1,
                                                                (steps, loss_sum, seen), args, prepared, metrics,
                                                                average))
            raise Interrupted(f"stopped by {stop.signal_name} in epoch {epoch} after step {steps}; "
                              f"{_how_to_resume(checkpoint_path)}")
        img_per_s = part_seen / (time.perf_counter() - epoch_start)
        if not per_step:
            scheduler.step()
        if rank == 0:
            row = {"epoch": epoch, "train_mse": loss_sum / seen * data.AB_SCALE ** 2,
                   **{f"{split}_{k}": v for k, v in evaluate(evaluated, *held_out, args.batch_size).items()},
                   "img_per_s": img_per_s, "elapsed_s": time.perf_counter() - start}
            metrics.append(row)
            with keeping(_kept(checkpoint_path, epoch - 1)):  # the checkpoint first: the CSV is made from it
                save_checkpoint(checkpoint_path, checkpoint(model, optimizer, scheduler, epoch, (0, 0.0, 0), args,
                                                            prepared, metrics, average))
            with keeping(_kept(checkpoint_path, epoch)):
                log.write(metrics)
            log.print(row)
        skip_steps, loss_sum, seen = 0, 0.0, 0
        if epoch < args.epochs and stop.agreed():
            raise Interrupted(f"stopped by {stop.signal_name} after epoch {epoch}; {_how_to_resume(checkpoint_path)}")
    if average:  # from here on the caller's model is the averaged one, as in the checkpoint
        model.load_state_dict(average.model.state_dict())
    return metrics


def _restored(resume_from, model, optimizer, scheduler, args, rank):
    """Where the run goes on from: (metrics so far, first epoch, steps done in it, loss sum, samples seen), with the
    weights, optimiser and schedule of the checkpoint to resume loaded (nothing for a new run)."""
    if resume_from is None:
        return [], 1, 0, 0.0, 0
    model.load_state_dict(resume_from.get("train_model", resume_from["model"]))
    optimizer.load_state_dict(resume_from["optimizer"])
    for group in optimizer.param_groups:  # the saved flags are the saving machine's (fused on a GPU)
        group["fused"] = next(model.parameters()).device.type == "cuda" or None
    check_schedule_length(resume_from, args, scheduler)
    scheduler.load_state_dict(resume_from["scheduler"])
    skip_steps, loss_sum, seen = resume_from["partial"]
    if rank != 0:  # the saved sums are already global
        loss_sum, seen = 0.0, 0
    return resume_from["metrics"], resume_from["epoch"] + 1, skip_steps, loss_sum, seen


def _kept(checkpoint_path, epoch):
    """What a user still has if a write fails now, `epoch` being the last one checkpointed."""
    if epoch < 1 or not checkpoint_path.exists():
        return "no checkpoint of this run was written yet"
    return f"the checkpoint of epoch {epoch} is kept ({checkpoint_path}; continue with --resume once it can be written)"


def _how_to_resume(checkpoint_path):
    return f"checkpoint saved to {checkpoint_path}; continue with the same command plus --resume"

"""Speed benchmark: prints one table of every stage's speed (median of repeats), with machine and versions.

Owner of measuring only; it calls the same functions the scripts run, on the device --device picks. Stages:
- the hardware: this machine's measured matrix-multiply peaks in float32 and bfloat16 (GFLOP/s; the faster of what
  MKL or cuBLAS and oneDNN or cuDNN reach on a large product), its CPU's vector and matrix units, and the default
  network's GFLOP per training image (forward + backward, counted by torch.utils.flop_counter), so that every loop
  row also says what fraction of the matching peak it reaches;
- prepare: load the 750 faces, split, x10 augment, convert to L*a*b* on the device (prepare.prepare_data);
- bare loop: forward + backward + Adam step of the default network on one in-memory batch, nothing else;
- train loop: training_loop.train_epoch, the loop train_colorize.py runs (batch indexing, loss bookkeeping);
- whole run: the run's epochs x (its fresh x10 draw of an epoch + one epoch of the train loop at its batch size;
  at half side for its --low-res-epochs), so that flags changing the augmentation, schedule, batch or resolution
  are costed too;
- with --precision float32 bfloat16: both loops in each precision (bfloat16: train_colorize.py --bf16), in turns;
- colorize photo: test_colorize.colorize_file on a 4000x3000 JPEG (read, colorize, write PNG; model load excluded),
  with the network's own colours, with what the nearest faces lend (models.Borrowed) and with the default's fading too
  (models.FadedUnfamiliar);
- with --networks: the loop, whole-run and photo rows for each network, given as train_colorize.py flags (e.g.
  --networks "" "--arch unet --no-flip-average": today's default and the U-Net default before it), timed in turns
  so that a slow phase of a shared machine hits all alike;
- peak memory: maximum RSS of a one-epoch `train_colorize.py` run (default settings) in a child process;
- with --profile: the operators that take most of a training step's self time, in each --precision;
- with --variants: the bare loop under bf16 autocast, torch.compile (and its CUDA-graph mode on CUDA), the
  contiguous memory format and batch 32;
- with --full-run MODE...: the whole default training run (4 epochs of 6750 images, batch 10, evaluation after
  each epoch) in a child process per mode, side by side: seconds, images/s, test MSE, peak GPU memory.
On CUDA every timing waits for the device before reading the clock. Progress lines of the runs measured go
nowhere, so the table stays readable.
"""
import argparse
import contextlib
import io
import itertools
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
from torch.utils.flop_counter import FlopCounterMode

import data
import prepare
import runtime
import test_colorize
import train_colorize
import train_flags
import training_loop
from models import FadedUnfamiliar, build_model

HERE = Path(__file__).resolve().parent
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
FULL_RUN_MODES = {"eager": ["--no-bf16"], "bf16": ["--bf16"], "compile": ["--compile", "--no-bf16"],
                  "graphs": ["--compile", "--compile-mode", "reduce-overhead", "--no-bf16"],
                  "graphs+bf16": ["--compile", "--compile-mode", "reduce-overhead", "--bf16"]}


def wait_for(device):
    """Block until the device has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats, device=torch.device("cpu")):
    """Median seconds of `repeats` calls of fn (after one warm-up call), each until the device is done."""
    fn()
    wait_for(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        wait_for(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(model, optimizer, x, y, bf16=False, loss_of=None):
    """One bare training step: forward (in bfloat16 autocast with `bf16`), MSE (or `loss_of(output)`), backward,
    optimiser step."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    loss = loss_of(out) if loss_of else torch.nn.functional.mse_loss(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def as_convolution(a, b):
    """(input, weight) of a 1x1 convolution whose output, reshaped, is the matrix product a @ b (M x K times K x N;
    M a multiple of 64): input[0, k] holds a's column k as an image of M pixels, weight[n, k] is b[k, n]."""
    (m, k), n = a.shape, b.shape[1]
    return a.T.reshape(1, k, m // 64, 64), b.T.reshape(n, k, 1, 1)


def matmul_peak(dtype, device, size=2048, repeats=5):
    """GFLOP/s of a size x size matrix product in `dtype`: the speed this machine's matrix units reach when the
    work is large enough to keep them busy, the ceiling for a training loop in that precision. The faster of the
    product as a matrix product (MKL on a CPU, cuBLAS) and as a 1x1 convolution (oneDNN, cuDNN: the libraries the
    network's convolutions run on): on an AMD EPYC with AVX-512 the matrix product (MKL) reached half the
    convolution's speed (EXPERIMENTS.md, Speed)."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    image, weight = (t.contiguous() for t in as_convolution(a, b))
    seconds = min(timed(lambda: a @ b, repeats, device),
                  timed(lambda: torch.nn.functional.conv2d(image, weight), repeats, device))
    return 2 * size ** 3 / seconds / 1e9


def cpu_units():
    """What the CPU offers for bfloat16: oneDNN/ATen's vector level, AVX-512 BF16 instructions, AMX tiles."""
    flags = {"AVX-512 BF16": torch.cpu._is_avx512_bf16_supported(), "AMX": torch.cpu._is_amx_tile_supported()}
    return f"{torch.backends.cpu.get_cpu_capability()}, " + ", ".join(
        f"{name} {'yes' if present else 'no'}" for name, present in flags.items())


def gflop_per_image(flags, batch_size=10):
    """Forward + backward GFLOP per training image of the network `flags` builds, counted by
    torch.utils.flop_counter (convolutions and matrix products; the optimiser and element-wise work not counted)."""
    model = colorizer(flags)
    x = torch.rand(batch_size, 3 if train_args(flags).exemplar else 1, 128, 128)  # --exemplar: 2 more channels
    with FlopCounterMode(display=False) as counter:
        model(x).square().mean().backward()
    return counter.get_total_flops() / batch_size / 1e9


def of_the_peak(img_per_s, gflop, peak, precision):
    """'N GFLOP/s = P % of the <precision> peak' for a loop that trains img_per_s images of gflop each."""
    achieved = img_per_s * gflop
    return f"{achieved:.0f} GFLOP/s = {100 * achieved / peak:.0f} % of the {precision} peak"


def profile_rows(steps, batch_size, device, precisions, top=8):
    """Where a training step's time goes in each precision: the operators with the most self time over `steps`
    bare-loop steps of the default network (torch.profiler), as table rows."""
    x, y = torch.rand(batch_size, 1, 128, 128, device=device), torch.rand(batch_size, 2, 128, 128, device=device)
    rows = []
    for precision in precisions:
        torch.manual_seed(0)
        model = colorizer().to(device)
        optimizer = default_optimizer(model)

        bf16 = precision == "bfloat16"
        train_step(model, optimizer, x, y, bf16)
        activities = [torch.profiler.ProfilerActivity.CPU] + (
            [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(steps):
                train_step(model, optimizer, x, y, bf16)
            wait_for(device)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        rows += [(f"profile, {precision}: {e.key}", f"{100 * e.self_cpu_time_total / total:.0f} % of self time, "
                  f"{e.self_cpu_time_total / steps / 1e3:.1f} ms/step")
                 for e in events[:top]]
    return rows


def bench_prepare(repeats, device):
    args = train_colorize.parse_args([])
    return timed(lambda: prepare.prepare_data(args, device), repeats, device)


def bench_epoch_draws(networks, repeats, device):
    """Each network's per-epoch cost besides the loop: {flags: (median seconds of the fresh x10 draw its flags make
    (augmentation and Lab; 0 without --fresh-augment), timed in turns, images per epoch)}; and the first network's
    prepared data, which the loops reuse (preparing is the slow part, and the loops' speed does not depend on which
    augmentation made their images)."""
    draws, images, first = {}, {}, None
    for flags in networks:
        args = train_args(flags)
        prepared = prepare.prepare_data(args, device)
        first = first or prepared
        images[flags] = prepared["train_l"].shape[0]
        epochs = itertools.count(2)
        draws[flags] = lambda args=args, prepared=prepared, epochs=epochs: prepare.training_data(
            prepared, args, next(epochs))
    seconds = interleaved(draws, repeats, device)
    return {flags: (seconds[flags], images[flags]) for flags in networks}, first


def interleaved(fns, repeats, device):
    """{name: median seconds} of each function of `fns`, timed in turns (after one warm-up call each)."""
    times = {name: [] for name in fns}
    for name, fn in fns.items():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, 1, device))
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def colorizer(flags="", memory_format=torch.channels_last, people=0):
    """The network train_colorize.py builds with `flags` (a string; "" for its defaults; with --identity-weight a
    person classifier for `people` people), in the memory format training_loop.fit uses."""
    return train_colorize.build_colorizer(train_args(flags), None, people).to(
        memory_format=memory_format)


def network_to_time(flags, prepared, images, device):
    """(model, its training loss, the person in each of the first `images` prepared training images or None) of
    `flags`, as train_colorize.py trains it: with --identity-weight the person classifier of the training split's
    people and the loss's cross-entropy term."""
    args = train_args(flags)
    people, classes = None, []
    if args.identity_weight:
        # the labels follow the draw the loops reuse, whichever flags made it
        factor = len(prepared["train_l"]) // len(prepared["train_names"])
        people, classes = prepare.person_labels(prepared, args.data_dir, factor, device)
        people = people[:images]
    model = colorizer(flags, people=len(classes)).to(device)
    return model, training_loop.make_loss(model, args.identity_weight, args.tint_weight), people


def bench_loops(prepared, steps, repeats, device, networks, precisions):
    """{(flags, precision): (bare img/s, train-loop img/s, train-loop img/s at half side or None)} for each network
    and precision on the same data and optimiser, each at the batch size its flags train with, over about `steps` x
    10 images, all timed in turns; the half-side loop only for flags with --low-res-epochs."""
    loops, images = {}, {}
    for flags in networks:
        args = train_args(flags)
        batch_size = args.batch_size
        count = max(1, steps * 10 // batch_size)
        inputs = with_input_channels(prepared, args, count * batch_size)
        half = {key: torch.nn.functional.avg_pool2d(inputs[key], 2)
                for key in ("train_l", "train_ab")} if args.low_res_epochs else None
        for precision in precisions:
            torch.manual_seed(0)
            model, loss_fn, people = network_to_time(flags, prepared, count * batch_size, device)
            bf16 = precision == "bfloat16"
            loops[flags, precision, "bare"], loops[flags, precision, "real"] = loop_pair(
                model, inputs, count, batch_size, bf16, loss_fn, people)
            if half:
                loops[flags, precision, "half"] = loop_pair(model, half, count, batch_size, bf16, loss_fn, people)[1]
            images[flags, precision] = count * batch_size
    seconds = interleaved(loops, repeats, device)
    rate = lambda key, kind: images[key] / seconds[(*key, kind)] if (*key, kind) in seconds else None  # noqa: E731
    return {key: (rate(key, "bare"), rate(key, "real"), rate(key, "half")) for key in images}


def with_input_channels(prepared, args, images):
    """The first `images` training pairs as the network of `args` takes them: with --exemplar, two more input
    channels (here copies of L*: what they hold does not change a step's cost; their computation is in the draw,
    bench_epoch_draws)."""
    train_l = prepared["train_l"][:images]
    if args.exemplar:
        train_l = torch.cat([train_l, train_l.expand(-1, 2, -1, -1)], 1)
    return {"train_l": train_l, "train_ab": prepared["train_ab"][:images]}


def whole_run(epochs, low, draw, epoch_images, rate, rate_half):
    """The whole-run row's text: `low` epochs at half side and the rest at full size, each a fresh draw plus one
    epoch of the train loop."""
    parts = [(low, epoch_images / rate_half)] if low else []
    parts.append((epochs - low, epoch_images / rate))
    minutes = sum(count * (draw + loop) for count, loop in parts) / 60
    return " + ".join(f"{count} x ({draw:.1f} + {loop:.0f})" for count, loop in parts) + f" s = {minutes:.1f} min"


def default_optimizer(model):
    """The optimiser train_colorize.py trains `model` with by default (its schedule only sets the rates, which cost
    nothing to time, so it is built for one step per epoch and not stepped)."""
    return training_loop.make_optimizer(model, train_colorize.parse_args([]), steps_per_epoch=1)[0]


def train_args(flags):
    """The arguments train_colorize.py trains with under `flags` (a string; "" for its defaults)."""
    return train_colorize.parse_args(shlex.split(flags))


def loop_pair(model, prepared, steps, batch_size, bf16=False, loss_fn=None, people=None):
    """(bare loop, train_epoch) over steps x batch_size images, as functions to time; `bf16`: both in bfloat16
    autocast, as train_colorize.py --bf16 trains; `loss_fn`: train_epoch's loss (default: the plain MSE); `people`:
    the person of each image, for a network with a person classifier."""
    optimizer = default_optimizer(model)
    x, y = prepared["train_l"][:batch_size].clone(), prepared["train_ab"][:batch_size].clone()
    # a person classifier's network returns (a*b*, person logits) while training: its bare step takes its own loss
    loss_of = None if people is None else lambda out: loss_fn(out, y, people[:batch_size])[0]

    def bare():
        for _ in range(steps):
            train_step(model, optimizer, x, y, bf16, loss_of)

    images = steps * batch_size
    subset = (prepared["train_l"][:images], prepared["train_ab"][:images])
    stop = runtime.StopFlag()

    def real():
        with contextlib.redirect_stderr(io.StringIO()):  # its progress lines
            training_loop.train_epoch(model, optimizer, *subset, batch_size, 1, 0, stop, bf16=bf16, loss_fn=loss_fn,
                                      people=None if people is None else people[:images])

    return bare, real


def bench_variants(steps, batch_size, repeats, device, gflop, peaks):
    """Bare-loop rows for the alternatives to the defaults: bf16 autocast, torch.compile (its first step is the
    compile time; on CUDA also its CUDA-graph mode), contiguous instead of channels_last memory format, and batch
    32 instead of 10."""
    variants = {"bf16 autocast": {"bf16": True}, "torch.compile": {"compile": "default"},
                "contiguous memory format": {"memory_format": torch.contiguous_format}, "batch 32": {"batch": 32}}
    if device.type == "cuda":
        variants["torch.compile reduce-overhead (CUDA graphs)"] = {"compile": "reduce-overhead"}
    rows = []
    for name, options in variants.items():
        batch = options.get("batch", batch_size)
        x, y = torch.rand(batch, 1, 128, 128, device=device), torch.rand(batch, 2, 128, 128, device=device)
        torch.manual_seed(0)
        model = colorizer(memory_format=options.get("memory_format", torch.channels_last)).to(device)
        optimizer = default_optimizer(model)
        run = torch.compile(model, mode=options["compile"]) if "compile" in options else model

        def loop(count):
            for _ in range(count):
                train_step(run, optimizer, x, y, options.get("bf16", False))

        start = time.perf_counter()
        loop(3)  # CUDA graphs are recorded on the first steps
        wait_for(device)
        first = time.perf_counter() - start
        count = max(1, steps * batch_size // batch)  # about the same number of images for every variant
        rate = count * batch / timed(lambda: loop(count), repeats, device)
        precision = "bfloat16" if options.get("bf16") else "float32"
        rows.append((f"bare loop, {name} (first 3 steps {first:.1f} s)",
                     f"{rate:.0f} img/s, {of_the_peak(rate, gflop, peaks[precision], precision)}"))
    return rows


def as_tested(network):
    """An untrained copy of `network` that averages its predictions over shifted copies of the photo in eval mode, as
    test_colorize.py runs every network by default."""
    return build_model(type(network).__name__, {**network.args, "shift_average": True})


def bench_photo(repeats, device, networks):
    """{row: seconds} to colorize a 4000x3000 photo with each network (untrained weights compute the same as
    trained ones; averaged over shifted copies, as test_colorize.py runs it by default; an --exemplar network given
    the nearest faces' maps, test_colorize.exemplared), as test_colorize.py --input --tint-keep 1
    --no-borrow-errors does, and with the first network as by default, lent
    the error and tint of the nearest of all 750 faces (models.Borrowed; reading the faces and the network's pass
    over them once are excluded), and with the colour faded where the photo looks unlike every face too
    (models.FadedUnfamiliar)."""
    bank = test_colorize.photo_bank(data.load_faces()[0])
    models = {f"[{flags or 'defaults'}]": test_colorize.exemplared(
        as_tested(colorizer(flags, torch.contiguous_format)), bank.descriptors, bank.ab_norm).to(device).eval()
        for flags in networks}
    first = next(iter(models.values()))
    borrowed = test_colorize.borrowed(first, test_colorize.lent_by(first, bank)).to(device).eval()
    models[f"[{networks[0] or 'defaults'}] + borrowed error and tint"] = borrowed
    models[f"[{networks[0] or 'defaults'}] + borrowed, faded (the default)"] = FadedUnfamiliar(
        borrowed, bank.descriptors, *test_colorize.DEFAULT_FADE).to(device).eval()
    face = cv2.imread(str(data.list_images(data.resolve_data_dir())[44]))
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo_4000x3000.jpg"
        cv2.imwrite(str(photo), cv2.resize(face, (4000, 3000), interpolation=cv2.INTER_CUBIC))
        out = Path(tmp) / "photo_4000x3000.png"
        return interleaved({row: (lambda m=model: test_colorize.colorize_file(m, photo, out, 256))
                            for row, model in models.items()}, repeats, device)


def peak_training_rss_mb(device):
    """Max RSS (MB) of a default-settings train_colorize.py run of one epoch, in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "train_colorize.py", "--epochs", "1", "--device", device.type,
                        "--out-dir", tmp], check=True, capture_output=True, cwd=HERE)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def full_run(mode, device):
    """The whole default training run with `mode`'s flags, in a child process whose output is kept out of the
    table: (row name, figures) from its summary."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "train_colorize.py", "--device", device.type, "--out-dir", tmp,
                   *FULL_RUN_MODES[mode]]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return (f"whole default run, {mode}", f"failed: {done.stderr.strip().splitlines()[-1:]}")
        summary = json.loads((Path(tmp) / "colorizer_summary.json").read_text())
    trained = summary["epochs"] * summary["train_images"]
    memory = f", peak GPU memory {summary['peak_gpu_mb']:.0f} MB" if summary["peak_gpu_mb"] is not None else ""
    return (f"whole default run, {mode} ({summary['epochs']} epochs + eval; process {wall:.0f} s)",
            f"{summary['train_seconds']:.1f} s, {trained / summary['train_seconds']:.0f} img/s, "
            f"test MSE {summary['figures']['mse']:.2f}{memory}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=train_flags.HelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available, else CPU")
    parser.add_argument("--repeats", type=train_flags.positive_int, default=5,
                        help="timings per stage (the median is printed)")
    parser.add_argument("--steps", type=train_flags.positive_int, default=30,
                        help="training steps of batch 10 per loop timing (a network with another --batch-size trains "
                             "as many images)")
    parser.add_argument("--no-memory", action="store_true", help="skip the one-epoch peak-memory run (~40 s on a CPU)")
    parser.add_argument("--networks", nargs="+", default=[""], metavar="FLAGS",
                        help='networks for the loop and photo rows, each as train_colorize.py flags in one string '
                             '("": its defaults)')
    parser.add_argument("--precision", nargs="+", choices=tuple(DTYPES), default=["float32"],
                        help="train loops in each of these precisions, side by side (bfloat16: autocast, as "
                             "train_colorize.py --bf16)")
    parser.add_argument("--profile", action="store_true",
                        help="also list the operators that take most of a training step's time, per --precision")
    parser.add_argument("--variants", action="store_true",
                        help="also time bf16 autocast, torch.compile, the contiguous format and batch 32")
    parser.add_argument("--full-run", nargs="+", choices=tuple(FULL_RUN_MODES), default=[], metavar="MODE",
                        help=f"also time the whole default training run in each MODE ({', '.join(FULL_RUN_MODES)}); "
                             "about 4 minutes per mode on a 2-core CPU")
    args = parser.parse_args()
    for flags in args.networks:
        try:
            colorizer(flags)
        except SystemExit:
            parser.error(f"--networks {flags!r}: not flags train_colorize.py accepts (see above)")
    data.resolve_data_dir()  # a missing dataset is said at once, not after the peaks are timed
    runtime.keep_freed_memory()
    try:
        device = runtime.pick_device(args.device)
    except runtime.UserError as err:
        parser.error(str(err))
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else f", {cpu_units()}"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{gpu}, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, Python {platform.python_version()}")
    peaks = {precision: matmul_peak(DTYPES[precision], device) for precision in ("float32", "bfloat16")}
    gflop = {flags: gflop_per_image(flags) for flags in args.networks}
    rows = [(f"peak: {precision} matrix product 2048x2048", f"{peak:.{0 if peak >= 10 else 2}f} GFLOP/s")
            for precision, peak in peaks.items()]  # emulated bfloat16 on an AVX2 CPU is under 1 GFLOP/s
    rows += [(f"[{flags or 'defaults'}] training cost (forward + backward, counted)", f"{value:.2f} GFLOP/image")
             for flags, value in gflop.items()]
    rows.append(("prepare training data (750 faces, split, x10, Lab)", f"{bench_prepare(args.repeats, device):.2f} s"))
    per_epoch, prepared = bench_epoch_draws(args.networks, args.repeats, device)
    loops = bench_loops(prepared, args.steps, args.repeats, device, args.networks, args.precision)
    for (flags, precision), (bare, real, half) in loops.items():
        name = f"[{flags or 'defaults'}{'' if args.precision == ['float32'] else ', ' + precision}]"
        of_peak = lambda rate: of_the_peak(rate, gflop[flags], peaks[precision], precision)  # noqa: E731
        trained = train_args(flags)
        draw, epoch_images = per_epoch[flags]
        rows += [(f"{name} bare loop: fwd + bwd + Adam, batch {trained.batch_size}",
                  f"{bare:.0f} img/s, {of_peak(bare)}"),
                 (f"{name} train_colorize loop (training_loop.train_epoch)", f"{real:.0f} img/s, {of_peak(real)}"),
                 ("  train loop / bare loop", f"{100 * real / bare:.0f} %")]
        if half:
            rows.append((f"{name} train loop at half side (--low-res-epochs)", f"{half:.0f} img/s"))
        rows.append((f"{name} whole run: {trained.epochs} epochs x (fresh draw + loop)",
                     whole_run(trained.epochs, trained.low_res_epochs, draw, epoch_images, real, half)))
    for flags in args.networks if len(args.precision) > 1 else ():
        rates = {precision: loops[flags, precision][1] for precision in args.precision}
        rows.append((f"[{flags or 'defaults'}] train loop speed-up, {args.precision[-1]} over {args.precision[0]}",
                     f"{rates[args.precision[-1]] / rates[args.precision[0]]:.2f}x"))
    del prepared
    if args.profile:
        rows += profile_rows(5, 10, device, args.precision)
    if args.variants:
        rows += bench_variants(args.steps, 10, args.repeats, device, gflop.get("") or gflop_per_image(""), peaks)
    rows += [(f"{row} colorize a 4000x3000 photo (--input; model load excluded)", f"{seconds:.2f} s")
             for row, seconds in bench_photo(args.repeats, device, args.networks).items()]
    if not args.no_memory:
        rows.append(("peak RSS, default train_colorize.py run (1 epoch)", f"{peak_training_rss_mb(device):.0f} MB"))
    rows += [full_run(mode, device) for mode in args.full_run]
    width = max(len(name) for name, _ in rows)
    print(f"{'stage':<{width}}  median of {args.repeats} on {device}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    runtime.run_main(main)

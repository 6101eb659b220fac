"""Speed benchmark: prints one table of every stage's speed (median of repeats), with machine and versions.

Owner of measuring only; it calls the same functions the scripts run. Stages:
- prepare: load the 750 faces, split, x10 augment, convert to L*a*b* (train_common.prepare_data);
- bare loop: forward + backward + Adam step of the default Colorizer on one in-memory batch, nothing else;
- train loop: train_common.train_epoch, the loop train_colorize.py runs (batch indexing, loss check, progress);
- colorize photo: test_colorize.colorize_file on a 4000x3000 JPEG (read, colorize, write PNG; model load excluded);
- peak memory: maximum RSS of a one-epoch `train_colorize.py` run (default settings) in a child process;
- with --variants: the bare loop under bf16 autocast and under torch.compile (with its compile time).
"""
import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

import data
import test_colorize
import train_colorize
import train_common as tc
from models import Colorizer


def timed(fn, repeats):
    """Median seconds of `repeats` calls of fn (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_prepare(repeats):
    args = train_colorize.parse_args([])
    return timed(lambda: tc.prepare_data(args, torch.device("cpu")), repeats)


def default_colorizer(memory_format=torch.channels_last):
    """The Colorizer train_colorize.py builds with no flags, in the memory format train_common.fit uses."""
    args = train_colorize.parse_args([])
    model = Colorizer(args.levels, args.features, args.upsample, args.tanh, args.skips)
    return model.to(memory_format=memory_format)


def bench_loops(prepared, steps, batch_size, repeats):
    """(bare img/s, train-loop img/s) for the default Colorizer on the same data and batch size."""
    torch.manual_seed(0)
    model = default_colorizer()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = prepared["train_l"][:batch_size].clone(), prepared["train_ab"][:batch_size].clone()

    def bare():
        for _ in range(steps):
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    images = steps * batch_size
    subset = (prepared["train_l"][:images], prepared["train_ab"][:images])
    stop = tc.StopFlag()
    real = lambda: tc.train_epoch(model, optimizer, *subset, batch_size, 1, 0, stop)  # noqa: E731
    # interleave the two, so a slow phase of a shared machine hits both alike
    bare_times, real_times = [], []
    bare(), real()
    for _ in range(repeats):
        bare_times.append(timed(bare, 1))
        real_times.append(timed(real, 1))
    return images / statistics.median(bare_times), images / statistics.median(real_times)


def bench_variants(steps, batch_size, repeats):
    """Bare-loop rows for the alternatives to the defaults: bf16 autocast, torch.compile (its first step is the
    compile time), contiguous instead of channels_last memory format, and batch 32 instead of 10."""
    variants = {"bf16 autocast": {"bf16": True}, "torch.compile": {"compile": True},
                "contiguous memory format": {"memory_format": torch.contiguous_format}, "batch 32": {"batch": 32}}
    rows = []
    for name, options in variants.items():
        batch = options.get("batch", batch_size)
        x, y = torch.rand(batch, 1, 128, 128), torch.rand(batch, 2, 128, 128)
        torch.manual_seed(0)
        model = default_colorizer(options.get("memory_format", torch.channels_last))
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        run = torch.compile(model) if options.get("compile") else model

        def loop(count):
            for _ in range(count):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=options.get("bf16", False)):
                    out = run(x)
                loss = torch.nn.functional.mse_loss(out.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        start = time.perf_counter()
        loop(1)
        first = time.perf_counter() - start
        count = max(1, steps * batch_size // batch)  # about the same number of images for every variant
        rate = count * batch / timed(lambda: loop(count), repeats)
        rows.append((f"bare loop, {name} (first step {first:.1f} s)", f"{rate:.0f} img/s"))
    return rows


def bench_photo(repeats):
    model, _ = test_colorize.load_colorizer("outputs/colorizer.pt", torch.device("cpu"))
    face = cv2.imread(str(data.list_images(data.resolve_data_dir())[44]))
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo_4000x3000.jpg"
        cv2.imwrite(str(photo), cv2.resize(face, (4000, 3000), interpolation=cv2.INTER_CUBIC))
        return timed(lambda: test_colorize.colorize_file(model, photo, Path(tmp), 256), repeats)


def peak_training_rss_mb():
    """Max RSS (MB) of a default-settings train_colorize.py run of one epoch, in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "train_colorize.py", "--epochs", "1", "--out-dir", tmp], check=True,
                       capture_output=True, cwd=Path(__file__).resolve().parent)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=tc.HelpFormatter)
    parser.add_argument("--repeats", type=tc.positive_int, default=5, help="timings per stage (the median is printed)")
    parser.add_argument("--steps", type=tc.positive_int, default=30, help="training steps per loop timing")
    parser.add_argument("--no-memory", action="store_true", help="skip the one-epoch peak-memory run (~40 s)")
    parser.add_argument("--variants", action="store_true", help="also time bf16 autocast and torch.compile")
    args = parser.parse_args()
    tc.keep_freed_memory()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, Python {platform.python_version()}")
    rows = [("prepare training data (750 faces, split, x10, Lab)", f"{bench_prepare(args.repeats):.2f} s")]
    prepared = tc.prepare_data(train_colorize.parse_args([]), torch.device("cpu"))
    bare, real = bench_loops(prepared, args.steps, 10, args.repeats)
    rows += [("bare loop: fwd + bwd + Adam, default Colorizer, batch 10", f"{bare:.0f} img/s"),
             ("train_colorize loop (train_common.train_epoch), batch 10", f"{real:.0f} img/s"),
             ("  train loop / bare loop", f"{100 * real / bare:.0f} %")]
    del prepared
    if args.variants:
        rows += bench_variants(args.steps, 10, args.repeats)
    rows.append(("colorize a 4000x3000 photo (--input; model load excluded)", f"{bench_photo(args.repeats):.2f} s"))
    if not args.no_memory:
        rows.append(("peak RSS, default train_colorize.py run (1 epoch)", f"{peak_training_rss_mb():.0f} MB"))
    width = max(len(name) for name, _ in rows)
    print(f"{'stage':<{width}}  median of {args.repeats}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

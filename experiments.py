"""Re-run the experiment tables of EXPERIMENTS.md and print them.

Owner of the experiment protocol only; every run is a plain train_colorize.py / train_mean.py command. Two stages:
- screen: each line of experiments/screen.txt, seed 0, with 10% of the images held out as a validation split
  (taken from the training part before augmentation); the test split is never evaluated. Settings are chosen here.
- final: each line of experiments/final.txt (the chosen settings and the reference rows), seeds 0, 1, 2, trained on
  the whole 90% and evaluated on the 75 test images.
- newfaces: each line of experiments/new_faces.txt, seeds 0, 1, 2, as final but split by person (--split-by
  person): the 75 test photos are those of 5 people the network never saw.
- screen-newfaces: each line of experiments/screen_new_faces.txt, seed 0, 6 epochs, split by person with 5 of the
  training people held out as a validation split: levers for new faces are chosen here.
- screen-recipes, screen-recipes-newfaces: each training recipe of experiments/recipes.txt, seed 0, on the
  validation photos of seen people and on validation people; `frontier` then plots their validation MSE (borrowed
  tint) against each recipe's whole-run cost relative to the recipe before's in saved `bench.py --networks` tables.
- crossval: each line of experiments/crossval.txt, split by person into the 10 folds of --fold (seed 0): every
  person tested once; `people` then evaluates each fold's test people and prints the per-person table, with the
  means over the people the new-face test rows test (no choice is made on them) and over the validation people.
A run whose summary already exists is skipped and an interrupted one (a checkpoint, no summary) resumed, so an
interrupted table continues where it stopped. `table` prints both stages as markdown from the runs'
<name>_summary.json files.

    python experiments.py screen        # about 45 min on a 2-core CPU
    python experiments.py final         # about 2 h on a 2-core CPU
    python experiments.py newfaces      # about 2 h on a 2-core CPU
    python experiments.py screen-newfaces   # about 1 h on a 2-core CPU
    python experiments.py table
    python experiments.py ship runs/final/<line>_seed0   # that run becomes the shipped model in outputs/ (the
                                                         # files it replaces: outputs/replaced/<UTC time>/)
    python experiments.py frontier      # the recipes' table and outputs/speed_quality.png
    python experiments.py crossval      # 10 default runs: about 2-3 h on a 2-core CPU
    python experiments.py people        # the per-person table of the crossval runs
"""
import argparse
import datetime
import io
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib

import torch

import checkpoints
import data
import output_files
import runtime
import test_colorize
import train_colorize
from models import COLORIZERS, FadedUnfamiliar

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

HERE = Path(__file__).resolve().parent
# The training recipe every list was written against (train_colorize.py's defaults before 2026-12-04): 15 epochs,
# Adam at 1e-3 with a per-epoch cosine decay, crops from 0.7 of the side, the plain MSE (the tint error counting
# fully). It goes before each colorizer line, so that a line keeps meaning the runs it measured whatever the
# defaults are now; a line (or a stage's flags) that names one of these flags overrides it, as the new default's
# lines do.
RECIPE_BEFORE = ["--epochs", "15", "--lr", "1e-3", "--lr-schedule", "cosine", "--crop-min", "0.7", "--tint-weight", "1"]
# Flags every run of a stage gets before its line's own (which override them). Screening starts colorizer lines
# from the spec's plain network (no skips, one fixed augmented set, no mirror average) and 6 epochs, whatever the
# scripts' defaults are; a line that says --arch fusion starts from that network with the same settings.
SCREEN_COLORIZER = ["--val-fraction", "0.1", "--epochs", "6", "--no-fresh-augment", "--no-flip-average"]
STAGES = {"screen": {"list": HERE / "experiments" / "screen.txt", "seeds": (0,),
                     "extra": {("train_colorize.py", "unet"): SCREEN_COLORIZER + ["--arch", "unet", "--no-skips"],
                               ("train_colorize.py", "fusion"): SCREEN_COLORIZER,
                               ("train_mean.py", None): ["--val-fraction", "0.1"]}},
          "final": {"list": HERE / "experiments" / "final.txt", "seeds": (0, 1, 2), "extra": {}},
          "newfaces": {"list": HERE / "experiments" / "new_faces.txt", "seeds": (0, 1, 2), "extra": {}},
          "screen-newfaces": {"list": HERE / "experiments" / "screen_new_faces.txt", "seeds": (0,),
                              "extra": {("train_colorize.py", "fusion"): ["--split-by", "person", "--val-fraction",
                                                                          "0.1", "--epochs", "6"]}},
          # training recipes (their cost and quality), with the scripts' defaults on both validation splits
          "screen-recipes": {"list": HERE / "experiments" / "recipes.txt", "seeds": (0,),
                             "extra": {("train_colorize.py", "fusion"): ["--val-fraction", "0.1"]}},
          "screen-recipes-newfaces": {"list": HERE / "experiments" / "recipes.txt", "seeds": (0,),
                                      "extra": {("train_colorize.py", "fusion"): ["--split-by", "person",
                                                                                  "--val-fraction", "0.1"]}},
          "crossval": {"list": HERE / "experiments" / "crossval.txt", "folds": range(data.FOLDS),
                       "extra": {("train_colorize.py", "fusion"): ["--split-by", "person"]}}}


def read_configs(path):
    """Lines of `path` as argument lists, skipping blanks and # comments; the first word is the script. A line's
    own flags come after the stage's, so a line may override them (e.g. --epochs)."""
    configs = [shlex.split(line) for line in Path(path).read_text().splitlines()
               if line.strip() and not line.lstrip().startswith("#")]
    for words in configs:
        if words[0] not in ("train_colorize.py", "train_mean.py"):
            raise SystemExit(f"error: {path}: a line must start with train_colorize.py or train_mean.py: {words}")
    return configs


def stage_flags(stage, words):
    """The flags `stage` puts before the line `words` (script first): a colorizer line's the recipe it was written
    against (RECIPE_BEFORE), then the stage's."""
    arch = None
    if words[0] == "train_colorize.py":
        arch = words[words.index("--arch") + 1] if "--arch" in words[:-1] else "unet"
    return (RECIPE_BEFORE if arch else []) + STAGES[stage]["extra"].get((words[0], arch), [])


def slug(words):
    """A folder name for a configuration: the script's stem and its flags."""
    text = "_".join([Path(words[0]).stem.removeprefix("train_")] + [w.lstrip("-") for w in words[1:]])
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def stage_runs(spec):
    """(folder suffix, flags) of each run of a stage's line: one per seed, or one per fold (seed 0)."""
    if "folds" in spec:
        return [(f"fold{fold}", ["--fold", str(fold), "--seed", "0"]) for fold in spec["folds"]]
    return [(f"seed{seed}", ["--seed", str(seed)]) for seed in spec["seeds"]]


def run_name(words):
    return "colorizer" if words[0] == "train_colorize.py" else "mean_chroma"


def summary_path(run_dir, words):
    return run_dir / f"{run_name(words)}_summary.json"


def pending_runs(stage, runs_dir, match=""):
    """(command, run folder) of every run of `stage` (of its lines containing `match`) that has no summary yet; one
    that was interrupted (it has a checkpoint) continues with --resume, as the training scripts never overwrite a
    saved run."""
    spec = STAGES[stage]
    runs = []
    for words in read_configs(spec["list"]):
        if match not in " ".join(words):
            continue
        for suffix, flags in stage_runs(spec):
            run_dir = runs_dir / stage / f"{slug(words)}_{suffix}"
            if not summary_path(run_dir, words).exists():
                resume = ["--resume"] if (run_dir / f"{run_name(words)}.pt").exists() else []
                runs.append(([sys.executable, words[0], *stage_flags(stage, words), *words[1:], *flags,
                              "--out-dir", str(run_dir), *resume], run_dir))
    return runs


def run_one(command, run_dir, threads):
    """Run one training command, its output appended to <run_dir>/train.log (a resumed run adds to its log, and one
    refused because the run is still going elsewhere leaves that run's log whole); returns (exit status, seconds)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    start = time.perf_counter()
    with open(run_dir / "train.log", "a") as log:
        done = subprocess.run(command, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, env=env)
    return done.returncode, time.perf_counter() - start


def run_stage(stage, runs_dir, jobs, match):
    """Run the stage's missing runs (of the lines containing `match`), `jobs` at a time (each then gets cores / jobs
    threads)."""
    if not any(match in " ".join(words) for words in read_configs(STAGES[stage]["list"])):
        raise SystemExit(f"error: --match {match!r}: no line of {STAGES[stage]['list'].name} contains it")
    runs = pending_runs(stage, runs_dir, match)
    if not runs:
        print(f"every {stage} run has its summary in {runs_dir / stage}: nothing to run")
        return
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    with ThreadPoolExecutor(jobs) as pool:
        results = pool.map(lambda run: run_one(*run, threads), runs)
        for (command, run_dir), (status, seconds) in zip(runs, results):
            print(f"{' '.join(shlex.quote(w) for w in command[1:])}  ({seconds:.0f} s)", flush=True)
            if status != 0:
                raise SystemExit(f"error: the run above failed (status {status}); see {run_dir}/train.log")


def spread(values, digits):
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(stage, runs_dir):
    """Markdown rows: configuration, seeds, MSE (raw Lab units^2 over a*b* pixels), PSNR, colorfulness, minutes."""
    spec = STAGES[stage]
    split = "validation" if stage.startswith("screen") else "test"
    print(f"| {stage} configuration | {'folds' if 'folds' in spec else 'seeds'} | {split} MSE | PSNR (dB) | "
          f"colorfulness | train min |")
    print("|---|---|---|---|---|---|")
    for words in read_configs(spec["list"]):
        summaries = [json.loads(p.read_text()) for suffix, _ in stage_runs(spec)
                     if (p := summary_path(runs_dir / stage / f"{slug(words)}_{suffix}", words)).exists()]
        if not summaries:
            continue
        figures = [s["figures"] for s in summaries]
        column = lambda key, digits: spread([f[key] for f in figures], digits)  # noqa: E731
        mse = column("mse", 2)
        if "mean_mse" in figures[0]:
            mse += f" (image means: {column('mean_mse', 2)})"
        print(f"| `{' '.join(words)}` | {len(summaries)} | {mse} | {column('psnr', 2)} | "
              f"{column('colorfulness', 1)} (truth {column('colorfulness_true', 1)}) | "
              f"{spread([s['train_seconds'] / 60 for s in summaries], 1)} |")


def validation_mse(run_dir, faces, shift_average=True):
    """The validation MSE of a screening run as `test_colorize.py --split val` evaluates it by default (borrowed error
    and tint, faded: test_colorize.default_stages; the shift average as asked), in this process, so that the faces
    are read once for all runs."""
    model, checkpoint = test_colorize.load_colorizer(run_dir / "colorizer.pt", "cpu", shift_average=shift_average)
    rgb, names = faces
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, checkpoint["val_names"])])
    with torch.no_grad():
        predicted = test_colorize.default_stages(model, checkpoint, faces).default(l_norm)
    return data.mean_scores(l_norm, predicted, ab_norm)["mse"]


def trains_as(flags, words):
    """Whether train_colorize.py `flags` (on its defaults, as bench.py reads a row) train as the list line `words`
    does (on RECIPE_BEFORE, as the stages run it)."""
    line = train_colorize.parse_args([*RECIPE_BEFORE, *words[1:]])
    return vars(train_colorize.parse_args(flags.split())) == vars(line)


def is_default(words):
    """Whether a recipes.txt line (RECIPE_BEFORE, then its flags) trains as train_colorize.py does without flags."""
    return trains_as("", words)


def default_line(stage):
    """The line of a stage's list that trains as train_colorize.py does without flags (is_default), so that a tool
    finds the default recipe's runs without naming them."""
    lines = [words for words in read_configs(STAGES[stage]["list"]) if is_default(words)]
    if len(lines) != 1:
        raise SystemExit(f"error: {STAGES[stage]['list']}: {len(lines)} lines train as the defaults do, not one")
    return lines[0]


def default_screening_run(stage):
    """The folder name of the default recipe's seed-0 run of a screening stage (screen-recipes, -newfaces)."""
    return f"{slug(default_line(stage))}_seed0"


def whole_run_minutes(bench_log):
    """{train_colorize.py flags: minutes} from the whole-run rows of a saved bench.py table."""
    rows = re.findall(r"^\[(.*?)\] whole run: .* = ([\d.]+) min$", Path(bench_log).read_text(), re.M)
    return {flags: float(minutes) for flags, minutes in rows}


def recipe_costs(bench_logs, reference):
    """{train_colorize.py flags: (minutes, cost, log name)} from the whole-run rows of saved bench.py tables: each
    recipe's cost is its minutes over the reference recipe's (the list line `reference`) in the same table, so that
    only rows timed side by side in one run are compared (a VM's speed moves by 2x between days); a recipe in several
    tables takes the first one's. A table's reference row is spelled as the line, or else trains as it on today's
    defaults (spelled in full, as a table made after a default changed spells it)."""
    spelled = " ".join(reference[1:])
    costs = {}
    for log in bench_logs:
        if not Path(log).is_file():
            raise SystemExit(f"error: --bench-log {log}: no such file")
        minutes = whole_run_minutes(log)
        rows = [spelled] if spelled in minutes else [flags for flags in minutes if trains_as(flags, reference)]
        if not rows:
            raise SystemExit(f"error: {log}: no whole-run row of the reference recipe `{spelled}` to cost the "
                             f"others against")
        for flags, value in [*minutes.items(), (spelled, minutes[rows[0]])]:
            costs.setdefault(flags, (value, value / minutes[rows[0]], Path(log).name))
    return costs


def earlier_figures(path):
    """{recipe flags: (seen people, new people)} from a table `frontier` printed before (None where it says -)."""
    figures = {}
    for line in Path(path).read_text().splitlines():
        row = re.match(r"\| \d+ \| `([^`]*)`.* \| ([\d.]+|-) \| ([\d.]+|-) \|$", line)
        if row:
            figures[row[1]] = tuple(None if cell == "-" else float(cell) for cell in row.group(2, 3))
    if not figures:
        raise SystemExit(f"error: --earlier {path}: no row of a frontier table (a shell redirect into that same "
                         f"file empties it before it is read: write the new table elsewhere first)")
    return figures


def frontier(runs_dir, bench_logs, out, earlier=None, shift_average=True):
    """The time-to-quality picture of experiments/recipes.txt: each recipe's validation MSE (as test_colorize.py
    runs) on the image split's validation photos and on the validation people (where screened), against the cost of
    its whole run relative to the reference recipe's (the first line: the recipe before 2026-12-04) in the same
    saved `bench.py --networks` table (recipe_costs); prints the table and writes the PNG `out`. Where a recipe has
    no screening run in `runs_dir`, the figure of the table `earlier` stands (runs are scratch: a recipe screened
    again need not retrain every other; its figures were scored without the shift average before 2026-12-04, night:
    rescore a recipe into it with `shift_average` False)."""
    recipes = read_configs(STAGES["screen-recipes"]["list"])
    costs = recipe_costs(bench_logs, recipes[0])
    before = earlier_figures(earlier) if earlier else {}
    faces = data.load_faces()
    points = []
    for words in recipes:
        flags = " ".join(words[1:])
        dirs = [runs_dir / stage / f"{slug(words)}_seed0" for stage in ("screen-recipes", "screen-recipes-newfaces")]
        figures = [validation_mse(d, faces, shift_average) if summary_path(d, words).exists() else old
                   for d, old in zip(dirs, before.get(flags, (None, None)))]
        if flags in costs and any(figures):
            points.append((flags, costs[flags], *figures, is_default(words)))
    if not points:
        raise SystemExit(f"error: no recipe has a screening run in {runs_dir} and a whole-run row in "
                         f"{', '.join(map(str, bench_logs))}")
    shown = lambda figure: "-" if figure is None else f"{figure:.2f}"  # noqa: E731
    print("| | recipe (`train_colorize.py` flags) | whole run (min) | cost | bench table | validation MSE, seen "
          "people | new people |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for number, (flags, (minutes, cost, log), seen, new, default) in enumerate(points, 1):
        role = " (the recipe before)" if number == 1 else " (the default)" if default else ""
        print(f"| {number} | `{flags}`{role} | {minutes:.1f} | {cost:.2f} | {log} | {shown(seen)} | {shown(new)} |")
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, column, title in zip(axes, (2, 3), ("seen people (image split)", "new people (person split)")):
        # a recipe that failed outright would squash the others: it is drawn at the top edge with its figure
        top = None if points[0][column] is None else 1.6 * points[0][column]
        for number, point in enumerate(points, 1):
            if point[column] is None:
                continue
            cost, figure, default = point[1][1], point[column], point[4]
            off = top is not None and figure > top
            label = f"{number} ({figure:.0f})" if off else str(number)
            figure = top if off else figure
            marker, color = ("^", "C0") if off else ("s", "C3") if number == 1 else ("*", "C2") if default else (
                "o", "C0")
            ax.plot(cost, figure, marker, color=color, markersize=12 if default else 6)
            ax.annotate(label, (cost, figure), textcoords="offset points", xytext=(5, -12 if off else 5))
        if top is not None:
            ax.set_ylim(top=top * 1.02)
        ax.axvline(1 / 3, color="0.6", linestyle="--", linewidth=1)
        ax.set(xlabel="whole training run, relative to the recipe before's (bench.py, side by side)",
               ylabel=f"validation MSE (as test_colorize.py{'' if shift_average else ' --no-shift-average'} runs)",
               title=f"validation photos of {title}")
        ax.grid(alpha=0.3)
    fig.suptitle("Time to quality of the training recipes (experiments/recipes.txt; numbers: the rows of "
                 "`experiments.py frontier`)\n1 (square): the recipe before 2026-12-04; star: the default since; "
                 "dashed: a third of the cost; triangle: off the scale")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    output_files.write_bytes(Path(out), png.getbuffer())


def fold_predictions(run_dir, faces, shift_average=True):
    """A crossval run's test photos: their people, and per photo (a list each) its MSE for each PEOPLE_COLUMNS: the
    network's own colours; borrowed alike however far the photo is from a seen sitting, faded (the default before
    faces never seen kept half their own tint); the default (as test_colorize.py runs); the true tint (each
    prediction's tint replaced by the photo's own: the bound a perfect tint estimate would reach); the network's
    predictions averaged over shifted copies if `shift_average`, as test_colorize.py's default."""
    rgb, names = faces
    model, checkpoint = test_colorize.load_colorizer(run_dir / "colorizer.pt", "cpu", shift_average=shift_average)
    stages = test_colorize.default_stages(model, checkpoint, faces)
    before = FadedUnfamiliar(test_colorize.borrowed(stages.own, stages.lent, unfamiliar=None), stages.bank,
                             *test_colorize.DEFAULT_FADE).eval()
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, checkpoint["test_names"])])
    with torch.no_grad():
        own = stages.own(l_norm)
        predictions = (own, before(l_norm), stages.default(l_norm), data.pull_tint(own, data.tint(ab_norm), 0.0))
    people = data.people_of(checkpoint["test_names"])
    return people, [data.ab_mse_raw(p, ab_norm).mean(1).tolist() for p in predictions]


NEW_FACE_SEEDS = (0, 1, 2)  # the person splits of the new-face test rows (EXPERIMENTS.md, New faces)


def validation_people(names, data_dir=None):
    """The people that no person split of NEW_FACE_SEEDS tests: new-face choices are made on them, each by the
    crossval fold that held them out (screen_tints.py --crossval, choose_fade.py)."""
    people = data.people_of(names, data_dir)
    tested = {people[i] for seed in NEW_FACE_SEEDS for i in data.split_indices(len(names), seed, groups=people)[2]}
    return set(people) - tested


def held_out_names(checkpoint, wanted=None, data_dir=None):
    """The names of a run's held-out photos (its validation split if it has one, else its test split) whose people
    are in `wanted` (None: all of them)."""
    held_out = checkpoint["val_names"] or checkpoint["test_names"]
    if wanted is None:
        return held_out
    return [name for name, person in zip(held_out, data.people_of(held_out, data_dir)) if person in wanted]


PEOPLE_COLUMNS = ("own colours", "borrowed alike however far (the default before)", "default", "true tint (bound)")


def crossval_runs(runs_dir, match=""):
    """(the first line of experiments/crossval.txt containing `match`, [(fold, run folder) of its finished runs]);
    a line left out is named, and none finished is refused in one line."""
    lines = [words for words in read_configs(STAGES["crossval"]["list"]) if match in " ".join(words)]
    if not lines:
        raise SystemExit(f"error: --match {match!r}: no line of {STAGES['crossval']['list'].name} contains it")
    words, runs = lines[0], []
    for suffix, flags in stage_runs(STAGES["crossval"]):
        run_dir = runs_dir / "crossval" / f"{slug(words)}_{suffix}"
        if summary_path(run_dir, words).exists():
            runs.append((flags[1], run_dir))
        else:
            print(f"({run_dir}: not finished, left out)")
    if not runs:
        raise SystemExit(f"error: no finished crossval run of `{' '.join(words)}` in {runs_dir / 'crossval'}")
    return words, runs


def people_table(runs_dir, match="", shift_average=True):
    """The per-person table of the first line of experiments/crossval.txt containing `match`: each person's mean test
    MSE (raw Lab units^2) in the fold that tested them, for each PEOPLE_COLUMNS, then the mean +- sd over the folds
    and over the people, and over the people the new-face test rows test apart from the validation people: new-face
    choices are made on the second, so only the first are as unseen by every choice as by the network."""
    words, runs = crossval_runs(runs_dir, match)
    faces = data.load_faces()
    rows, fold_means = [], []
    for fold, run_dir in runs:
        people, columns = fold_predictions(run_dir, faces, shift_average)
        fold_means.append([statistics.mean(column) for column in columns])
        for person in sorted(set(people)):
            mine = [i for i, p in enumerate(people) if p == person]
            rows.append((person, fold, [statistics.mean(column[i] for i in mine) for column in columns]))
    print(f"`{' '.join(words)}`, {len(fold_means)} folds: test MSE per person (their 15 photos)\n")
    print("| person | fold | " + " | ".join(PEOPLE_COLUMNS) + " |\n|" + " --- |" * (2 + len(PEOPLE_COLUMNS)))
    for person, fold, figures in sorted(rows, key=lambda row: (int(row[0].lstrip("p")), row[1])):
        print(f"| {person} | {fold} | " + " | ".join(f"{f:.2f}" for f in figures) + " |")
    chosen_on = validation_people(faces[1])
    groups = {f"mean ± sd over {len(fold_means)} folds": fold_means,
              f"mean ± sd over {len(rows)} people": [figures for _, _, figures in rows]}
    for what, wanted in ((f"the people the person splits of seeds {', '.join(map(str, NEW_FACE_SEEDS))} test "
                          "(no choice was made on them)", False), ("the validation people", True)):
        group = [figures for person, _, figures in rows if (person in chosen_on) == wanted]
        if group:
            groups[f"mean ± sd over {len(group)} people: {what}"] = group
    for what, values in groups.items():
        print(f"| {what} | | " + " | ".join(spread(list(column), 2) for column in zip(*values)) + " |")


# for `ship`, each kind of run: its model kinds and the name its training log gets (the script's)
SHIPPED = {"colorizer": (COLORIZERS, "train_colorize.log"), "mean_chroma": ("MeanChromaNet", "train_mean.log")}


def ship(run_dir, to_dir):
    """Make a finished run the shipped model: <to_dir>/<name>.pt without the state only resuming needs, a colorizer
    with what its training photos lend (test_colorize.Lent, so that it borrows and fades without the faces), its CSV
    log, loss curve and summary, and its train.log without the progress lines. Files of those names already in
    `to_dir` with other contents are moved into <to_dir>/replaced/<UTC time>/ first (kept_aside), never lost; each
    file is written atomically."""
    name = next((name for name in SHIPPED if (run_dir / f"{name}_summary.json").exists()), None)
    if name is None:
        raise SystemExit(f"error: {run_dir}: no finished run (no colorizer_summary.json or mean_chroma_summary.json)")
    kinds, log_name = SHIPPED[name]
    if name == "colorizer":
        model, full = test_colorize.load_colorizer(run_dir / f"{name}.pt", "cpu")
    else:
        model, full = None, checkpoints.load_checkpoint(run_dir / f"{name}.pt", "cpu", kinds)
    checkpoint = checkpoints.model_only(full)
    if model is not None and not test_colorize.needs_exemplar(model):  # an exemplar network needs the photos' maps
        # the Lent is the network's as test_colorize.py runs it by default, and says with which averaging
        checkpoint["model_args"] = {**checkpoint["model_args"],
                                    **{key: model.args[key] for key in test_colorize.AVERAGING}}
        faces = data.load_faces(checkpoint["args"].get("data_dir"))
        checkpoint["lent"] = test_colorize.lent_by(model, test_colorize.training_bank(checkpoint, faces))._asdict()
    payloads = {f"{name}.pt": checkpoints.serialised(checkpoint)}
    for extra in (f"{name}.csv", f"{name}_loss.png", f"{name}_summary.json"):
        if (run_dir / extra).exists():
            payloads[extra] = (run_dir / extra).read_bytes()
    log = (run_dir / "train.log").read_text().splitlines() if (run_dir / "train.log").exists() else []
    payloads[log_name] = "".join(f"{line}\n" for line in log if not line.startswith("  epoch")).encode()
    to_dir.mkdir(parents=True, exist_ok=True)
    aside = kept_aside(to_dir, payloads)
    with output_files.keeping(f"the files it was to replace are in {aside}" if aside else "nothing was replaced"):
        for file_name, payload in payloads.items():
            output_files.write_bytes(to_dir / file_name, payload)
    print(f"{run_dir} -> {to_dir}/{name}.pt ({len(payloads[f'{name}.pt']) / 2 ** 20:.1f} MB) and its logs"
          + (f"; the files it replaced are in {aside}" if aside else ""))


def kept_aside(to_dir, payloads):
    """Move each file of `to_dir` named in `payloads` (file name: the bytes about to be written) whose contents
    differ into a new <to_dir>/replaced/<UTC time>/ folder; returns that folder, None if nothing differed."""
    replaced = [file_name for file_name, payload in payloads.items()
                if (to_dir / file_name).exists() and (to_dir / file_name).read_bytes() != payload]
    if not replaced:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    aside, again = to_dir / "replaced" / stamp, 1
    while aside.exists():  # shipped twice within a second
        aside, again = to_dir / "replaced" / f"{stamp}-{again}", again + 1
    try:
        aside.mkdir(parents=True)
        for file_name in replaced:
            (to_dir / file_name).rename(aside / file_name)
    except OSError as err:
        raise output_files.WriteError(f"could not move {to_dir}'s earlier files into {aside}: "
                                      f"{err.strerror or err}; nothing was shipped") from None
    return aside


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's line breaks and shows every flag's default."""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("stage", choices=(*STAGES, "table", "ship", "frontier", "people"),
                        help="what to do (see above)")
    parser.add_argument("run_dir", nargs="?", type=Path, help="ship: the finished run to ship")
    parser.add_argument("--to", type=Path, default=HERE / "outputs", help="ship: where the shipped model goes")
    parser.add_argument("--bench-log", type=Path, nargs="+",
                        default=[str(HERE / "outputs" / name) for name in ("bench_recipes.log", "bench_exemplar.log",
                                                                           "bench_recipes2.log", "bench_recipes3.log",
                                                                           "bench_recipes4.log", "bench_recipes5.log",
                                                                           "bench_recipes6.log")],
                        help="frontier: saved bench.py tables whose whole-run rows cost the recipes, each holding "
                             "the reference recipe's row too (the first line of experiments/recipes.txt, the recipe "
                             "before)")
    parser.add_argument("--out", type=Path, default=HERE / "outputs" / "speed_quality.png",
                        help="frontier: the picture to write")
    parser.add_argument("--earlier", type=Path, metavar="TABLE",
                        help="frontier: a table it printed before (e.g. outputs/speed_quality.log), whose figures "
                             "stand for the recipes without a screening run in --runs-dir")
    parser.add_argument("--runs-dir", default="runs", help="where each run's folder goes")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each with CPU cores / jobs threads)")
    parser.add_argument("--match", default="", metavar="TEXT",
                        help="a training stage: only the lines containing TEXT (e.g. --match='--arch fusion'); "
                             "people: the first crossval line containing it (default: the first line)")
    parser.add_argument("--shift-average", action=argparse.BooleanOptionalAction, default=True,
                        help="people, frontier: the networks' predictions averaged over shifted copies, as "
                             "test_colorize.py's flag (outputs/speed_quality.log was scored without)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs: must be a positive integer, got {args.jobs}")
    if (args.stage == "ship") != (args.run_dir is not None):
        parser.error("a run folder goes with ship, and only with ship")
    runs_dir = Path(args.runs_dir)
    if args.stage == "ship":
        ship(args.run_dir, args.to)
    elif args.stage == "people":
        people_table(runs_dir, args.match, args.shift_average)
    elif args.stage == "frontier":
        frontier(runs_dir, args.bench_log, args.out, args.earlier, args.shift_average)
    elif args.stage == "table":
        for stage in STAGES:
            table(stage, runs_dir)
            print()
    else:
        run_stage(args.stage, runs_dir, args.jobs, args.match)


if __name__ == "__main__":
    runtime.run_main(main)

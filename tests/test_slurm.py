"""The project's sbatch scripts on a real one-node SLURM (localhost), and DDP training under torchrun.

The SLURM tests need root and Debian's slurm-wlm and munge; without them they skip and say why, except in CI
(CI=true), where .ci/run installs them and a skip would hide a broken cluster setup: there they fail.
"""
import csv
import os
import re
import subprocess
import sys

import pytest
import torch

import data
import experiments
from conftest import DATA_DIR, HANG_GUARD_S, ROOT
from slurm_cluster import Cluster, missing_requirements

TINY = "--limit 20 --epochs 1 --features 8"  # train_mean.py
TINY_COLORIZE = "--limit 20 --epochs 1 --width 4"  # the default network, narrower
SMALL_JOB = ["--cpus-per-task=1", "--mem=2gb"]  # the scripts ask for a real GPU node's share


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = missing_requirements()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the SLURM tests: {reason}")
        pytest.skip(reason)
    cluster = Cluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def _submit(cluster, tmp_path, script, extra_args, *options, **env):
    """sbatch one of the project's scripts as it is, with its own #SBATCH lines (CPU and memory made to fit the
    test node); DEVICE=cpu, as the test node's GPUs are fake. Its log goes to tmp_path."""
    job_env = {"PYTHON": sys.executable, "DATA_DIR": str(DATA_DIR), "EXTRA_ARGS": extra_args, "DEVICE": "cpu", **env}
    return cluster.submit(ROOT / "slurm" / script, f"--output={tmp_path}/%x-%j.out", *SMALL_JOB, *options,
                          env={k: v for k, v in job_env.items() if v is not None}, cwd=ROOT)


def _log(tmp_path, name, job_id):
    return (tmp_path / f"{name}-{job_id}.out").read_text()


def test_train_mean_then_train_and_test_colorize_jobs(cluster, tmp_path):
    mean = _submit(cluster, tmp_path, "train_mean.sbatch", TINY, OUT_DIR=str(tmp_path / "mean"))
    colorize = _submit(cluster, tmp_path, "train_colorize.sbatch", TINY_COLORIZE, OUT_DIR=str(tmp_path / "col"))
    for job_id, name in ((mean, "train_mean"), (colorize, "train_colorize")):
        assert cluster.wait(job_id, watch=[tmp_path])["JobState"] == "COMPLETED", _log(tmp_path, name, job_id)
    assert (tmp_path / "mean" / "mean_chroma.pt").is_file()
    log = _log(tmp_path, "train_colorize", colorize)
    assert f"+ {sys.executable} train_colorize.py" in log and "--device cpu" in log and "final test MSE" in log
    test = _submit(cluster, tmp_path, "test_colorize.sbatch", "--pngs 2", OUT_DIR=str(tmp_path / "png"),
                   CHECKPOINT=str(tmp_path / "col" / "colorizer.pt"))
    assert cluster.wait(test, watch=[tmp_path])["JobState"] == "COMPLETED", _log(tmp_path, "test_colorize", test)
    assert "test: 2 images, MSE" in _log(tmp_path, "test_colorize", test)
    assert (tmp_path / "png" / "test_grid.png").is_file()


def test_a_job_stops_at_once_naming_what_to_set_without_torch_or_gpu(cluster, tmp_path):
    no_torch = tmp_path / "blocked"  # a python that lacks torch: a `torch` package that fails to import
    (no_torch / "torch").mkdir(parents=True)
    (no_torch / "torch" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\")\n")
    python = tmp_path / "python-without-torch"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={no_torch} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    settings = {"no torch": {"PYTHON": str(python)}, "no GPU": {"DEVICE": None}}  # DEVICE: the script's default
    jobs = {case: _submit(cluster, tmp_path, "train_colorize.sbatch", TINY_COLORIZE, OUT_DIR=str(tmp_path / case),
                          **env)
            for case, env in settings.items()}
    logs = {}
    for case, job in jobs.items():
        assert cluster.wait(job, watch=[tmp_path])["JobState"] == "FAILED"
        logs[case] = _log(tmp_path, "train_colorize", job)
        assert "+ " not in logs[case] and not (tmp_path / case).exists()  # stopped before the real work
    errors = [line for line in logs["no torch"].splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"PYTHON={python} cannot import torch" in errors[0]
    assert "set MODULES" in errors[0] and "PYTHON to a python that has torch" in errors[0]
    assert "torch sees no CUDA GPU" in logs["no GPU"] and "DEVICE=cpu" in logs["no GPU"]


def test_experiment_array_runs_each_configuration(cluster, tmp_path):
    configs = tmp_path / "experiments.txt"
    configs.write_text("# three tiny rows\ntrain_colorize.py --arch unet --levels 3 --features 4 --no-skips\n\n"
                       "train_colorize.py --arch unet --levels 4 --features 4 --skips\ntrain_mean.py --features 4 --split-by person\n")
    job = _submit(cluster, tmp_path, "experiments.sbatch", "--limit 20 --epochs 1", "--array=0-2",
                  OUT_DIR=str(tmp_path / "exp"), EXPERIMENTS=str(configs), SEEDS="0",
                  STAGE_ARGS="--val-fraction 0.2")
    for task in (0, 1, 2):
        assert cluster.wait(f"{job}_{task}", watch=[tmp_path])["JobState"] == "COMPLETED"
    runs = [torch.load(tmp_path / "exp" / f"{task}-seed0" / name, weights_only=True)
            for task, name in ((0, "colorizer.pt"), (1, "colorizer.pt"), (2, "mean_chroma.pt"))]
    assert [(r["model_args"]["levels"], r["model_args"]["skips"]) for r in runs[:2]] == [(3, False), (4, True)]
    assert runs[2]["model_args"]["features"] == 4 and runs[2]["args"]["split_by"] == "person"
    assert all(r["args"]["val_fraction"] == 0.2 and r["args"]["epochs"] == 1 for r in runs)
    # a colorizer line trains on the recipe the lists were written against, whatever the defaults are now
    assert all((r["args"]["lr"], r["args"]["lr_schedule"], r["args"]["crop_min"]) == (1e-3, "cosine", 0.7)
               for r in runs[:2])


def test_crossval_array_task_k_trains_fold_k_of_the_line(cluster, tmp_path):
    configs = tmp_path / "crossval.txt"
    configs.write_text("# one tiny line\ntrain_colorize.py --arch fusion --width 2 --augment-factor 1\n")
    job = _submit(cluster, tmp_path, "experiments.sbatch", "--limit 60 --epochs 1", "--array=3-4",
                  OUT_DIR=str(tmp_path / "cv"), EXPERIMENTS=str(configs), CROSSVAL="1", STAGE_ARGS="--split-by person")
    names = [path.name for path in data.list_images(DATA_DIR)[:60]]
    people = data.people_of(names, DATA_DIR)
    for fold in (3, 4):
        assert cluster.wait(f"{job}_{fold}", watch=[tmp_path])["JobState"] == "COMPLETED"
        run = torch.load(tmp_path / "cv" / f"0-fold{fold}" / "colorizer.pt", weights_only=True)
        assert (run["args"]["fold"], run["args"]["seed"], run["args"]["split_by"]) == (fold, 0, "person")
        test = data.split_indices(60, 0, groups=people, fold=fold)[2].tolist()
        assert run["test_names"] == [names[i] for i in test]


def test_experiment_arrays_named_in_the_script_cover_each_lists_lines_exactly():
    """The script's default --array and its new-faces hint must track the lists' lengths, or a submitted table
    silently skips its last rows (or starts tasks with no line)."""
    script = (ROOT / "slurm" / "experiments.sbatch").read_text()
    default = re.search(r"^#SBATCH --array=0-(\d+)$", script, re.M)
    new_faces = re.search(r"EXPERIMENTS=experiments/new_faces.txt sbatch --array=0-(\d+)", script)
    for found, listing in ((default, "final.txt"), (new_faces, "new_faces.txt")):
        lines = experiments.read_configs(ROOT / "experiments" / listing)
        assert found and int(found.group(1)) == len(lines) - 1, listing
    folds = re.search(r"CROSSVAL=1 .*sbatch --array=0-(\d+)", script)
    assert folds and int(folds.group(1)) == data.FOLDS - 1
    before = re.search(r"train_colorize.py\) NAME=colorizer; BEFORE=\((.*?)\) ;;", script)
    assert before and before.group(1).split() == experiments.RECIPE_BEFORE  # the same recipe as experiments.py


def test_multigpu_script_starts_one_process_per_allocated_gpu(cluster, tmp_path):
    job = _submit(cluster, tmp_path, "train_colorize_multigpu.sbatch", TINY_COLORIZE + " --limit 40",
                  OUT_DIR=str(tmp_path / "ddp"), OMP_NUM_THREADS="1")
    info = cluster.wait(job, watch=[tmp_path])
    log = _log(tmp_path, "train_colorize_multigpu", job)
    assert info["JobState"] == "COMPLETED", log
    assert "gres/gpu:l4=2" in info.get("AllocTRES", "") or "gpu:l4:2" in info.get("TresPerNode", "")
    assert "--nproc_per_node=2" in log and "2 process(es)" in log and log.count("final test MSE") == 1


def _epochs_logged(out):
    log = out / "colorizer.csv"
    return len(log.read_text().splitlines()) - 1 if log.exists() else 0


def test_time_limit_checkpoints_requeues_and_finishes(cluster, tmp_path):
    out, epochs = tmp_path / "col", 6
    job = _submit(cluster, tmp_path, "train_colorize.sbatch", f"--limit 40 --width 4 --epochs {epochs}",
                  OUT_DIR=str(out))
    running = cluster.wait_until(job, lambda info: _epochs_logged(out) >= 1 or info["JobState"] != "RUNNING"
                                 and info["JobState"] != "PENDING", watch=[tmp_path])
    assert running["JobState"] == "RUNNING", _log(tmp_path, "train_colorize", job)
    # send what --signal=B:USR1@120 sends before a time limit, once the first epoch is logged (SLURM's own timing
    # is up to a minute off on a busy machine, too coarse for a short test)
    cluster.run("scancel", "--batch", "--signal=USR1", job)
    cluster.wait_until(job, lambda info: int(info.get("Restarts", 0)) >= 1, watch=[tmp_path])
    interrupted = torch.load(out / "colorizer.pt", weights_only=True)
    assert 0 < interrupted["epoch"] < epochs
    info = cluster.wait(job, watch=[tmp_path])  # held for the credential lifetime (20 s here), then resumed
    log = _log(tmp_path, "train_colorize", job)
    assert info["JobState"] == "COMPLETED", log + cluster.daemon_logs()
    assert "stopped by SIGUSR1" in log and "requeueing job" in log and "--resume" in log
    assert torch.load(out / "colorizer.pt", weights_only=True)["epoch"] == epochs
    logged = [int(row["epoch"]) for row in csv.DictReader(open(out / "colorizer.csv"))]
    assert logged == list(range(1, epochs + 1))  # each epoch logged once: at most the current one was lost


def test_torchrun_two_processes_gloo(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "train_colorize.py"), "--data-dir", str(DATA_DIR), *TINY_COLORIZE.split(), "--limit", "40",
               "--out-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_S, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "2 process(es)" in result.stdout and result.stdout.count("final test MSE") == 1
    assert "terminate called" not in result.stderr
    checkpoint = torch.load(tmp_path / "colorizer.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and not any(k.startswith("module.") for k in checkpoint["model"])


# Loaded by every rank at start-up (PYTHONPATH): rank 1's training epoch raises a user error, as a bad file or a
# full disk seen by one rank would.
FAIL_ON_RANK_1 = """
import os, sys
if os.environ.get("RANK") == "1":
    sys.path.insert(0, {root!r})
    import runtime, training_loop
    def fail(*args, **kwargs):
        raise runtime.UserError("rank 1 fails on purpose")
    training_loop.train_epoch = fail
"""


def test_a_failing_rank_ends_every_rank_promptly_with_its_error_printed_once(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(FAIL_ON_RANK_1.format(root=str(ROOT)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "train_colorize.py"), "--data-dir", str(DATA_DIR), *TINY_COLORIZE.split(),
               "--augment-factor", "1", "--out-dir", str(tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                          env=env) as job:
        stderr = []
        for line in job.stderr:  # progress, not the clock: wait for rank 1's error...
            stderr.append(line)
            if "rank 1 fails on purpose" in line:
                break
        try:  # ...after which rank 0 must not wait at a barrier (it used to, until gloo's 30-minute timeout)
            job.wait(timeout=120)
        except subprocess.TimeoutExpired:
            job.kill()
            pytest.fail("rank 0 still runs two minutes after rank 1 failed")
        stderr = "".join(stderr) + job.stderr.read()
    assert job.returncode != 0
    assert stderr.count("rank 1 fails on purpose") == 1
    assert "rank 0 of 2 stopped: another process of this run failed" in stderr
    assert "[rank0]: Traceback" not in stderr and "terminate called" not in stderr


def test_shards_are_disjoint_equal_and_cover_the_epoch():
    from prepare import minibatches
    shards = [torch.cat(minibatches(101, 7, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 50
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    single = torch.cat(minibatches(101, 7, seed=3))
    assert torch.equal(single, torch.randperm(101, generator=torch.Generator().manual_seed(3)))

"""The project's sbatch scripts on a real one-node SLURM (localhost), and DDP training under torchrun.

The SLURM tests need root and Debian's slurm-wlm and munge; without them they skip and say why, except in CI
(CI=true), where .ci/run installs them and a skip would hide a broken cluster setup: there they fail.
"""
import csv
import os
import subprocess
import sys
import time

import pytest
import torch

from conftest import DATA_DIR, ROOT
from slurm_cluster import Cluster, missing_requirements

TINY = "--limit 20 --epochs 1 --features 8"
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
    job_env = {"PYTHON": sys.executable, "DATA_DIR": str(DATA_DIR), "EXTRA_ARGS": extra_args, **env}
    return cluster.submit(ROOT / "slurm" / script, f"--output={tmp_path}/%x-%j.out", *SMALL_JOB, *options,
                          env=job_env, cwd=ROOT)


def _log(tmp_path, name, job_id):
    return (tmp_path / f"{name}-{job_id}.out").read_text()


def test_train_mean_then_train_and_test_colorize_jobs(cluster, tmp_path):
    mean = _submit(cluster, tmp_path, "train_mean.sbatch", TINY, OUT_DIR=str(tmp_path / "mean"))
    colorize = _submit(cluster, tmp_path, "train_colorize.sbatch", TINY, OUT_DIR=str(tmp_path / "col"))
    for job_id in (mean, colorize):
        assert cluster.wait(job_id)["JobState"] == "COMPLETED", _log(tmp_path, "train_mean", mean)
    assert (tmp_path / "mean" / "mean_chroma.pt").is_file()
    log = _log(tmp_path, "train_colorize", colorize)
    assert "+ " + sys.executable + " train_colorize.py" in log and "final test MSE" in log
    test = _submit(cluster, tmp_path, "test_colorize.sbatch", "--pngs 2", OUT_DIR=str(tmp_path / "png"),
                   CHECKPOINT=str(tmp_path / "col" / "colorizer.pt"))
    assert cluster.wait(test)["JobState"] == "COMPLETED", _log(tmp_path, "test_colorize", test)
    assert "test: 2 images, MSE" in _log(tmp_path, "test_colorize", test)
    assert (tmp_path / "png" / "test_grid.png").is_file()


def test_experiment_array_runs_each_configuration(cluster, tmp_path):
    configs = tmp_path / "experiments.txt"
    configs.write_text("# three tiny rows\ntrain_colorize.py --levels 3 --features 4 --no-skips\n\n"
                       "train_colorize.py --levels 4 --features 4 --skips\ntrain_mean.py --features 4\n")
    job = _submit(cluster, tmp_path, "experiments.sbatch", "--limit 20 --epochs 1", "--array=0-2",
                  OUT_DIR=str(tmp_path / "exp"), EXPERIMENTS=str(configs), SEEDS="0",
                  STAGE_ARGS="--val-fraction 0.2")
    for task in (0, 1, 2):
        assert cluster.wait(f"{job}_{task}")["JobState"] == "COMPLETED"
    runs = [torch.load(tmp_path / "exp" / f"{task}-seed0" / name, weights_only=True)
            for task, name in ((0, "colorizer.pt"), (1, "colorizer.pt"), (2, "mean_chroma.pt"))]
    assert [(r["model_args"]["levels"], r["model_args"]["skips"]) for r in runs[:2]] == [(3, False), (4, True)]
    assert runs[2]["model_args"]["features"] == 4
    assert all(r["args"]["val_fraction"] == 0.2 and r["args"]["epochs"] == 1 for r in runs)


def test_time_limit_checkpoints_requeues_and_finishes(cluster, tmp_path):
    out = tmp_path / "col"
    job = _submit(cluster, tmp_path, "train_colorize.sbatch", "--limit 100 --features 8 --epochs 80",
                  OUT_DIR=str(out))
    # send what --signal=B:USR1@120 sends before a time limit, once training is under way (SLURM's own timing
    # is up to a minute off on a busy machine, too coarse for a short test)
    deadline = time.monotonic() + 120
    while not (out / "colorizer.csv").exists() or len((out / "colorizer.csv").read_text().splitlines()) < 3:
        assert time.monotonic() < deadline, _log(tmp_path, "train_colorize", job)
        time.sleep(0.5)
    cluster.run("scancel", "--batch", "--signal=USR1", job)
    cluster.wait_until(job, lambda info: int(info.get("Restarts", 0)) >= 1, timeout=180)
    interrupted = torch.load(out / "colorizer.pt", weights_only=True)
    assert 0 < interrupted["epoch"] < 80
    # SLURM holds a requeued job for about two minutes before it may start again: start it now
    cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
    info = cluster.wait(job, timeout=300)
    log = _log(tmp_path, "train_colorize", job)
    assert info["JobState"] == "COMPLETED", log
    assert "stopped by SIGUSR1" in log and "requeueing job" in log and "--resume" in log
    assert torch.load(out / "colorizer.pt", weights_only=True)["epoch"] == 80
    epochs = [int(row["epoch"]) for row in csv.DictReader(open(out / "colorizer.csv"))]
    assert epochs == list(range(1, 81))  # each epoch logged once: at most the current one was lost


def test_torchrun_two_processes_gloo(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "train_colorize.py"), "--data-dir", str(DATA_DIR), *TINY.split(), "--limit", "40",
               "--out-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "2 process(es)" in result.stdout and result.stdout.count("final test MSE") == 1
    assert "terminate called" not in result.stderr
    checkpoint = torch.load(tmp_path / "colorizer.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and not any(k.startswith("module.") for k in checkpoint["model"])


def test_shards_are_disjoint_equal_and_cover_the_epoch():
    from train_common import minibatches
    shards = [torch.cat(minibatches(101, 7, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 50
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    single = torch.cat(minibatches(101, 7, seed=3))
    assert torch.equal(single, torch.randperm(101, generator=torch.Generator().manual_seed(3)))

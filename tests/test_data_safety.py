"""Nothing a user has is ever lost: inputs are never overwritten, one run per output folder at a time (a dead run's
lock taken over), a write that fails (full disk, read-only) is one line and leaves nothing behind."""
import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import pytest
import torch

import output_files
import run_lock
import test_colorize
import train_colorize
from conftest import DATA_DIR, HANG_GUARD_S, ROOT, run_script, write_faces

# a per-epoch schedule: these runs are resumed with other --epochs (a one-cycle run refuses that)
TINY = ["--data-dir", DATA_DIR, "--limit", 20, "--epochs", 1, "--width", 4, "--augment-factor", 1, "--lr-schedule",
        "cosine"]


def _digests(folder):
    """{file name: sha256} of every file in `folder`, hidden ones included."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("safety")
    result = run_script("train_colorize.py", *TINY, "--out-dir", out)
    assert result.returncode == 0, result.stderr
    return out / "colorizer.pt"


# ---------------------------------------------------------------- inputs

def test_colorizing_a_folder_into_itself_keeps_every_input(checkpoint, tmp_path):
    photos = write_faces(tmp_path / "photos", 3)  # image00000.png .. image00002.png
    cv2.imwrite(str(photos / "image00000.jpg"), cv2.imread(str(DATA_DIR / "image00005.jpg")))  # same stem
    before = _digests(photos)
    result = run_script("test_colorize.py", "--checkpoint", checkpoint, "--input", photos, "--out-dir", photos)
    assert result.returncode == 0, result.stderr
    after = _digests(photos)
    assert {name: after[name] for name in before} == before  # every input byte-identical
    assert set(after) - set(before) == {"image00000_jpg.png", "image00000_png.png", "image00001_colorized.png",
                                        "image00002_colorized.png"}
    assert f"{photos / 'image00001.png'} -> {photos / 'image00001_colorized.png'}" in result.stdout


def test_output_names_never_meet_an_input_or_each_other(tmp_path):
    out = tmp_path / "out"
    files = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", out / "y.png", out / "y_colorized.png",
             tmp_path / "z.jpg"]
    names = [p.name for p in test_colorize.output_paths(files, out)]
    assert names == ["x.png", "x_2.png", "y_colorized_colorized.png", "y_colorized_colorized_2.png", "z.png"]


def test_pngs_0_writes_no_folder_and_does_not_say_it_did(checkpoint, tmp_path):
    result = run_script("test_colorize.py", "--checkpoint", checkpoint, "--data-dir", DATA_DIR, "--pngs", 0,
                        "--out-dir", tmp_path / "pngs")
    assert result.returncode == 0, result.stderr
    assert "test: " in result.stdout and "PNGs in" not in result.stdout
    assert not (tmp_path / "pngs").exists()


def test_pngs_are_not_written_into_the_data_folder(checkpoint, tmp_path):
    faces = write_faces(tmp_path / "faces", 20)
    result = run_script("test_colorize.py", "--checkpoint", checkpoint, "--data-dir", faces, "--out-dir", faces)
    assert result.returncode == 1 and result.stderr == f"error: --out-dir {faces}: is the data folder; PNGs " \
                                                       "written there would be read as faces by the next run\n"


# ---------------------------------------------------------------- one run per folder

def _start_training(out_dir, *extra):
    """A training run in the background that is training once this returns (it printed its first progress line)
    and goes on until the test stops it: more epochs than it could finish (50 tiny epochs once ended while the
    runs it was to block were still starting, and a finished run no longer holds its folder)."""
    command = [sys.executable, str(ROOT / "train_colorize.py"), *map(str, TINY), "--epochs", 10**6, "--out-dir",
               str(out_dir), *map(str, extra)]
    job = subprocess.Popen(list(map(str, command)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           cwd=ROOT)
    for line in job.stderr:
        if line.startswith("  epoch 1:"):
            threading.Thread(target=job.stderr.read, daemon=True).start()  # a full pipe would stall the run
            return job
    pytest.fail(f"the background run ended before training (status {job.wait()})")


def test_a_second_run_into_a_busy_folder_stops_naming_the_holder_and_the_first_run_goes_on(tmp_path):
    first = _start_training(tmp_path / "run")
    try:
        second = run_script("train_colorize.py", *TINY, "--out-dir", tmp_path / "run")
        resumed = run_script("train_colorize.py", *TINY, "--out-dir", tmp_path / "run", "--resume")
    finally:
        first.send_signal(signal.SIGTERM)  # checkpoint and stop
        status = first.wait(HANG_GUARD_S)
    for refused in (second, resumed):
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"error: --out-dir {tmp_path / 'run'}: another run is using this folder "
                                         f"(process {first.pid} on {socket.gethostname()}, started ")
        assert refused.stderr.count("\n") == 1
    assert status == 75 and not (tmp_path / "run" / ".run.lock").exists()  # released by the interrupted run
    again = run_script("train_colorize.py", *TINY, "--out-dir", tmp_path / "run", "--resume")
    assert again.returncode == 0, again.stderr


def test_a_run_resumed_with_other_training_flags_is_refused_in_one_line_and_kept(tmp_path):
    """A flag given otherwise, or a default changed since the run started, would continue it as another recipe or
    fail deep in load_state_dict; where it runs (--device) and how long (--epochs, per-epoch schedule) may change."""
    run = tmp_path / "run"
    assert run_script("train_colorize.py", *TINY, "--out-dir", run).returncode == 0
    before = _digests(run)
    for flags, message in ((["--width", 8], "--width 4, not --width 8"),
                           (["--tint-weight", 1, "--no-flip-average"],
                            "--flip-average on, --tint-weight 0.5, not --flip-average off, --tint-weight 1.0")):
        refused = run_script("train_colorize.py", *TINY, *flags, "--out-dir", run, "--resume")
        assert refused.returncode == 1 and refused.stderr == (
            f"error: --resume: {run / 'colorizer.pt'} was started with {message}; resume it with those flags, or "
            f"start a new run in another --out-dir\n")
        assert _digests(run) == before
    resumed = run_script("train_colorize.py", *TINY, "--epochs", 2, "--device", "cpu", "--out-dir", run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(run / "colorizer.pt", weights_only=True)["epoch"] == 2


def test_the_lock_of_a_killed_run_is_taken_over_with_a_note(tmp_path):
    first = _start_training(tmp_path / "run")
    first.kill()
    first.wait(HANG_GUARD_S)
    assert (tmp_path / "run" / ".run.lock").exists()
    result = run_script("train_colorize.py", *TINY, "--out-dir", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert f"note: {tmp_path / 'run' / '.run.lock'} was left by process {first.pid} on {socket.gethostname()}" \
           in result.stderr and "which no longer runs: taking it over" in result.stderr
    assert not (tmp_path / "run" / ".run.lock").exists()


def test_another_hosts_lock_blocks_while_it_is_touched_and_is_taken_over_once_stale(tmp_path):
    lock = tmp_path / ".run.lock"
    lock.write_text(json.dumps({"host": "node-that-failed", "pid": 4242, "started": "2026-12-01 10:00:00"}))
    with pytest.raises(run_lock.UserError, match="process 4242 on node-that-failed, started 2026-12-01 10:00:00"):
        with run_lock.RunLock(tmp_path):
            pass
    stale = time.time() - run_lock.STALE_S - 60
    os.utime(lock, (stale, stale))
    with run_lock.RunLock(tmp_path) as held:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(run_lock.UserError, match=f"process {os.getpid()} on"):
            with run_lock.RunLock(tmp_path):
                pass
        assert held.path.exists()  # the refused second lock did not remove ours
    assert not lock.exists()


# ---------------------------------------------------------------- write failures

@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs mounted for the test (root only; skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def _fill(disk, leave):
    """Fill `disk` until about `leave` bytes are free."""
    stats = os.statvfs(disk)
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))


def test_a_full_disk_is_one_line_keeps_the_earlier_run_and_leaves_no_temporary_file(small_disk):
    run = small_disk / "run"
    first = run_script("train_colorize.py", *TINY, "--out-dir", run)
    assert first.returncode == 0, first.stderr
    before = _digests(run)
    _fill(small_disk, leave=64 * 1024)  # room for the lock and the log, not for a checkpoint
    result = run_script("train_colorize.py", *TINY, "--epochs", 2, "--resume", "--out-dir", run)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: could not write {run / 'colorizer.pt'}: No space left on device; the checkpoint of epoch 1 is kept "
        f"({run / 'colorizer.pt'}; continue with --resume once it can be written)")
    assert "Traceback" not in result.stderr
    assert _digests(run) == before  # nothing changed, nothing left behind

    photos = write_faces(small_disk / "photos", 2)
    (small_disk / "filler").unlink()
    _fill(small_disk, leave=0)
    colorized = run_script("test_colorize.py", "--checkpoint", run / "colorizer.pt", "--input", photos,
                           "--out-dir", small_disk / "out")
    assert colorized.returncode == 1
    assert colorized.stderr == f"error: could not write {small_disk / 'out' / 'image00000.png'}: No space left on " \
                               f"device; the 0 output(s) written before it are kept in {small_disk / 'out'}\n"
    assert list((small_disk / "out").iterdir()) == []


def test_a_write_error_at_the_end_of_training_names_the_file_and_resume_finishes_the_run(tmp_path, monkeypatch):
    replace = os.replace

    def read_only(src, dst):
        if str(dst).endswith("colorizer_summary.json"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        replace(src, dst)

    monkeypatch.setattr(output_files.os, "replace", read_only)
    out = tmp_path / "run"
    with pytest.raises(output_files.WriteError) as failure:
        train_colorize.main([*map(str, TINY), "--out-dir", str(out)])
    assert str(failure.value) == (
        f"could not write {out / 'colorizer_summary.json'}: Read-only file system; training is finished and its "
        f"checkpoint {out / 'colorizer.pt'} is kept (test it with test_colorize.py, or write the end-of-run files "
        f"with the same command plus --resume)")
    assert sorted(p.name for p in out.iterdir()) == ["colorizer.csv", "colorizer.pt", "colorizer_loss.png"]
    monkeypatch.setattr(output_files.os, "replace", replace)
    train_colorize.main([*map(str, TINY), "--out-dir", str(out), "--resume"])
    assert (out / "colorizer_summary.json").is_file() and not (out / ".run.lock").exists()

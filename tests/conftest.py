"""Shared fixtures: the real dataset beside the project, and small image folders made on the fly."""
import os
import subprocess
import sys
from pathlib import Path

# Under pytest-xdist (the README's test command: one worker per core) each worker and the scripts it starts get
# their share of the cores, unless OMP_NUM_THREADS says otherwise: two workers of two threads each on a 2-core
# machine ran the suite slower than one worker (503 against 297 s; 192 s with one thread each: EXPERIMENTS.md, The
# test suite), their OpenMP threads waiting on each other.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# FACECOLOR_DATA_DIR: where a machine keeps the faces elsewhere, as for the scripts (data.DATA_DIR_VARIABLE)
DATA_DIR = Path(os.environ.get("FACECOLOR_DATA_DIR", ROOT.parent / "shared" / "face_images"))
sys.path.insert(0, str(ROOT))

import data  # noqa: E402


@pytest.fixture(scope="session")
def faces():
    """(rgb, names) of the whole dataset, loaded once."""
    return data.load_faces(DATA_DIR)


def write_faces(folder, count, start=0):
    """Copy `count` real faces (as PNG, so nothing is re-encoded lossily) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in data.list_images(DATA_DIR)[start:start + count]:
        cv2.imwrite(str(folder / f"{path.stem}.png"), cv2.imread(str(path)))
    return folder


# Only a guard against a child that hangs, not a time budget: each test's work takes seconds, and a machine
# several times slower than the author's still finishes far inside it.
HANG_GUARD_S = 900


def run_script(script, *args):
    """Run one of the project's scripts as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          timeout=HANG_GUARD_S, cwd=ROOT)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)

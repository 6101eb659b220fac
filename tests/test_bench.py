"""bench.py's arithmetic: what it times must be the work it counts (its speeds are printed, never asserted)."""
import os
import subprocess
import sys

import torch

import bench
import data
import prepare
from conftest import DATA_DIR, HANG_GUARD_S, ROOT


def test_the_peak_times_one_product_two_ways_the_convolution_computing_the_same_product():
    a, b = torch.randn(128, 48, dtype=torch.float64), torch.randn(48, 80, dtype=torch.float64)
    image, weight = bench.as_convolution(a, b)
    assert image.shape == (1, 48, 2, 64) and weight.shape == (80, 48, 1, 1)
    product = torch.nn.functional.conv2d(image, weight).reshape(80, 128).T
    assert torch.allclose(product, a @ b)


def test_a_missing_data_folder_ends_the_bench_in_one_line(tmp_path):
    env = {**os.environ, "FACECOLOR_DATA_DIR": str(tmp_path / "gone")}
    result = subprocess.run([sys.executable, str(ROOT / "bench.py")], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=HANG_GUARD_S)
    assert result.returncode == 1
    assert result.stderr == f"error: FACECOLOR_DATA_DIR {tmp_path / 'gone'}: no such folder\n"


def test_a_network_with_a_person_classifier_is_timed_with_it_and_its_cross_entropy_in_both_loops():
    flags = f"--data-dir {DATA_DIR} --limit 20 --augment-factor 2 --identity-weight 0.5"
    prepared = prepare.prepare_data(bench.train_args(flags), torch.device("cpu"))
    model, loss_fn, people = bench.network_to_time(flags, prepared, 20, torch.device("cpu"))
    names = data.people_of(prepared["train_names"], DATA_DIR)
    classes = sorted(set(names))
    assert model.args["classes"] == len(classes)
    assert people.tolist() == [classes.index(name) for name in names for _ in range(2)][:20]
    bare, real = bench.loop_pair(model, prepared, 1, 10, loss_fn=loss_fn, people=people)
    for loop in (bare, real):  # the classifier learns only from the cross-entropy term
        before = [weight.clone() for weight in model.classify.parameters()]
        loop()
        assert all(not torch.equal(a, b) for a, b in zip(before, model.classify.parameters()))

"""train_mean.py end to end on a few images: loss goes down, checkpoint reloads, printed MSE is recomputable."""
import csv
import re

import pytest
import torch

import data
import checkpoints
import training_loop
import train_mean
from conftest import DATA_DIR, run_script
from models import build_model


@pytest.fixture(scope="module")
def mean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mean")
    result = run_script("train_mean.py", "--data-dir", DATA_DIR, "--limit", 20, "--epochs", 3, "--features", 8,
                        "--out-dir", out)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_training_error_goes_down(mean_run):
    out, _ = mean_run
    rows = list(csv.DictReader(open(out / "mean_chroma.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["train_mse"]) < float(rows[0]["train_mse"])


def test_checkpoint_reloads_and_printed_mse_is_recomputed(mean_run):
    out, stdout = mean_run
    checkpoint = checkpoints.load_checkpoint(out / "mean_chroma.pt", torch.device("cpu"), "MeanChromaNet")
    model = build_model(checkpoint["model_kind"], checkpoint["model_args"])
    model.load_state_dict(checkpoint["model"])
    rgb, names = data.load_faces(DATA_DIR)
    rgb = rgb[data.select_by_name(names, checkpoint["test_names"])]
    l_norm, ab_norm = data.to_network(rgb)
    mse = data.ab_mse_raw(training_loop.predict(model, l_norm, 7), train_mean.mean_targets(ab_norm)).mean().item()
    printed = float(re.search(r"final test MSE ([\d.]+)", stdout).group(1))
    assert printed == pytest.approx(mse, abs=0.01)
    assert checkpoint["metrics"][-1]["test_mse"] == pytest.approx(mse, rel=1e-4)
    assert len(checkpoint["test_names"]) == 2 and len(checkpoint["train_names"]) == 18
    assert "constant baseline" in stdout and "true mean (a*, b*)" in stdout


def test_tanh_target_scaling_round_trips():
    ab_raw = torch.tensor([[12.5, -30.0], [0.0, 95.0]])
    scaled = data.normalize_ab(ab_raw)
    assert scaled.abs().max() <= 1.0
    assert torch.allclose(data.denormalize_ab(scaled), ab_raw)


def test_tanh_run_prints_raw_units(tmp_path):
    result = run_script("train_mean.py", "--data-dir", DATA_DIR, "--limit", 20, "--epochs", 1, "--tanh",
                        "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    checkpoint = torch.load(tmp_path / "mean_chroma.pt", weights_only=True)
    assert checkpoint["model_args"]["tanh"] is True
    baseline = float(re.search(r"test MSE ([\d.]+)", result.stdout).group(1))
    assert baseline > 0.1  # raw Lab units^2: in [-1, 1] units it would be below 0.01


@pytest.mark.parametrize("flags, message", [(["--epochs", "0"], "--epochs"), (["--batch-size", "-1"], "--batch-size"),
                                            (["--features", "0"], "--features"), (["--lr", "nan"], "--lr"),
                                            (["--features", "8", "16"], "--features: give 1 or 6 values"),
                                            (["--bogus"], "unrecognized")])
def test_bad_flags_are_argparse_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_mean.parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_features_one_width_or_six():
    assert train_mean.parse_args([]).features == 3
    assert train_mean.parse_args(["--features", "1", "2", "3", "4", "5", "6"]).features == [1, 2, 3, 4, 5, 6]


def test_diverging_run_stops_with_message_and_writes_no_checkpoint(tmp_path):
    bad = run_script("train_mean.py", "--data-dir", DATA_DIR, "--limit", 20, "--epochs", 1, "--lr", "1e30",
                     "--features", "16", "--out-dir", tmp_path)
    assert bad.returncode == 1
    assert re.search(r"error: training diverged: non-finite loss at epoch 1, step \d+", bad.stderr)
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "mean_chroma.pt").exists() and not list(tmp_path.glob(".*tmp*"))
    # its log holds only a header (no epoch ended): not a run to protect, so the folder can be used again
    again = run_script("train_mean.py", "--data-dir", DATA_DIR, "--limit", 20, "--epochs", 1, "--out-dir", tmp_path)
    assert again.returncode == 0, again.stderr


def test_a_second_run_never_replaces_a_saved_one(mean_run):
    out, _ = mean_run
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    again = run_script("train_mean.py", "--data-dir", DATA_DIR, "--limit", 20, "--epochs", 1, "--out-dir", out)
    assert again.returncode == 1
    assert re.fullmatch(rf"error: --out-dir {re.escape(str(out))} already holds a run \(mean_chroma.pt, "
                        r"mean_chroma_summary.json, mean_chroma.csv\): continue it with --resume, or start a new one "
                        r"with another --out-dir .*\n", again.stderr)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_training_writes_nothing_into_the_shipped_outputs_by_default():
    assert train_mean.parse_args([]).out_dir == "runs/mean_chroma"

"""Every CUDA path on a real GPU: training eager and with CUDA graphs, bf16, checkpoints crossing between GPU and
CPU, test_colorize on the GPU, a large photo, torchrun with NCCL, and no per-step wait for the device.

They skip on a machine without CUDA (CI's); tools/gpu_check.sh runs them on a GPU machine.
"""
import json
import re
import subprocess
import sys
import warnings

import cv2
import pytest
import torch

import training_loop
from conftest import DATA_DIR, HANG_GUARD_S, ROOT, run_script
from models import Colorizer
from runtime import StopFlag

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (tools/gpu_check.sh)")
TINY = ["--data-dir", DATA_DIR, "--limit", 40, "--width", 8, "--epochs", 1]  # the default network, narrower
GRAPHS = ["--compile", "--compile-mode", "reduce-overhead"]


def _train(out, *flags):
    result = run_script("train_colorize.py", *TINY, *flags, "--out-dir", out)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _test_mse(checkpoint, device, out):
    result = run_script("test_colorize.py", "--checkpoint", checkpoint, "--data-dir", DATA_DIR, "--device", device,
                        "--pngs", 0, "--out-dir", out)
    assert result.returncode == 0, result.stderr
    return float(re.search(r"test: \d+ images, MSE a\* [\d.]+  b\* [\d.]+  mean ([\d.]+)", result.stdout).group(1))


@pytest.mark.parametrize("flags", [["--no-bf16"], [*GRAPHS, "--no-bf16"], ["--bf16"]],
                         ids=["eager", "cuda-graphs", "bf16"])
def test_one_epoch_trains_on_the_gpu(flags, tmp_path):
    stdout = _train(tmp_path, "--device", "cuda", *flags)
    assert "device cuda" in stdout
    summary = json.loads((tmp_path / "colorizer_summary.json").read_text())
    assert summary["device"].startswith("cuda") and summary["peak_gpu_mb"] > 0
    assert 0 < summary["figures"]["mse"] < 1000
    checkpoint = torch.load(tmp_path / "colorizer.pt", map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())


def test_checkpoints_cross_between_gpu_and_cpu(tmp_path):
    """Written on the GPU: evaluated and resumed on the CPU; and the reverse. Same test MSE on both devices."""
    for trained_on, other in (("cuda", "cpu"), ("cpu", "cuda")):
        out = tmp_path / trained_on
        _train(out, "--device", trained_on, "--lr-schedule", "cosine")  # a one-cycle run cannot be extended
        checkpoint = out / "colorizer.pt"
        on_cpu, on_gpu = (_test_mse(checkpoint, device, tmp_path / "pngs") for device in ("cpu", "cuda"))
        assert on_cpu == pytest.approx(on_gpu, abs=0.05)
        resumed = run_script("train_colorize.py", *TINY[:-1], 2, "--device", other, "--lr-schedule", "cosine",
                             "--resume", "--out-dir", out)
        assert resumed.returncode == 0, resumed.stderr
        assert torch.load(checkpoint, weights_only=True)["epoch"] == 2


def test_committed_model_gives_the_same_test_mse_on_the_gpu_as_on_the_cpu(tmp_path):
    shipped = ROOT / "outputs" / "colorizer.pt"
    assert _test_mse(shipped, "cuda", tmp_path / "g") == pytest.approx(_test_mse(shipped, "cpu", tmp_path / "c"),
                                                                      abs=0.05)


def test_a_4000x3000_photo_is_colorized_on_the_gpu(tmp_path):
    face = cv2.imread(str(DATA_DIR / "image00044.jpg"))
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.resize(face, (4000, 3000), interpolation=cv2.INTER_CUBIC))
    result = run_script("test_colorize.py", "--checkpoint", ROOT / "outputs" / "colorizer.pt", "--device", "cuda",
                        "--input", tmp_path / "photo.jpg", "--out-dir", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    colorized = cv2.imread(str(tmp_path / "out" / "photo.png"))
    assert colorized.shape == (3000, 4000, 3)
    assert cv2.cvtColor(colorized, cv2.COLOR_BGR2Lab)[..., 1:].astype(int).std() > 1  # it has color


def test_torchrun_one_process_with_nccl(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
               str(ROOT / "train_colorize.py"), *map(str, TINY), "--device", "cuda", "--out-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_S, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "device cuda:0, " in result.stdout and "1 process(es), process group nccl" in result.stdout
    checkpoint = torch.load(tmp_path / "colorizer.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and not any(k.startswith("module.") for k in checkpoint["model"])


@pytest.mark.parametrize("steps", [5, 25])
def test_an_epoch_waits_for_the_gpu_only_at_its_end(steps, capsys):
    device = torch.device("cuda")
    model = Colorizer(5, [8] * 5, "transpose", False, True).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x, y = torch.rand(steps * 10, 1, 128, 128, device=device), torch.rand(steps * 10, 2, 128, 128, device=device)
    training_loop.train_epoch(model, optimizer, x, y, 10, 1, 0, StopFlag())  # warm-up: cuDNN, allocator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            training_loop.train_epoch(model, optimizer, x, y, 10, 1, 0, StopFlag())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    # the first use in a process also warns that the debug mode is a prototype: not a sync
    syncs = [w for w in caught if "called a synchronizing" in str(w.message)]
    assert len(syncs) <= 3, [str(w.message) for w in syncs]  # reading the losses at the end, whatever `steps` is

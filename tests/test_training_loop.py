"""The shared training loop: no per-step wait for the device, divergence found and named, out-of-memory as one line."""
import json
from types import SimpleNamespace

import pytest
import torch

import data
import models
import runtime
import train_colorize
import train_mean
import training_loop
from conftest import DATA_DIR
from runtime import Interrupted, StopFlag, UserError


def _tiny_problem(n=40):
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1))
    model.args = {}
    x, y = torch.rand(n, 1, 8, 8), torch.rand(n, 2, 8, 8)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), x, y


def _count_reads(monkeypatch):
    """Count the calls that copy a tensor's values to Python (each one waits for the device)."""
    reads = []
    for name in ("item", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, _f=original, _n=name: reads.append(_n) or _f(self))
    return reads


@pytest.mark.parametrize("steps", [4, 20])
def test_an_epoch_reads_the_device_a_fixed_number_of_times_whatever_its_length(steps, monkeypatch):
    model, _, x, y = _tiny_problem(steps * 5)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)  # CPU Adam reads its step counts (no device there)
    reads = _count_reads(monkeypatch)
    done, mse_sum, seen, complete = training_loop.train_epoch(model, optimizer, x, y, 5, 1, 0, StopFlag())
    assert (done, seen, complete) == (steps, steps * 5, True)
    assert len(reads) == 2  # the finiteness check and the loss sum, once per epoch
    assert mse_sum > 0


def test_a_non_finite_loss_is_found_at_the_end_and_named_by_its_step():
    model, optimizer, x, y = _tiny_problem()
    calls = []

    def loss_fn(out, target, _people):
        calls.append(1)
        mse = torch.nn.functional.mse_loss(out, target)
        return (mse * float("nan") if len(calls) == 3 else mse), mse

    with pytest.raises(UserError, match=r"non-finite loss at epoch 2, step 5;"):
        training_loop.train_epoch(model, optimizer, x, y, 5, 2, 0, StopFlag(), skip_steps=2, loss_fn=loss_fn)
    assert len(calls) == 6  # the epoch ran to its end: 8 batches, 2 already done


def test_out_of_gpu_memory_is_one_line_suggesting_a_smaller_batch_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    flags = ["--data-dir", str(DATA_DIR), "--limit", "20", "--features", "4", "--out-dir", str(tmp_path)]
    train_mean.main([*flags, "--epochs", "1"])
    before = (tmp_path / "mean_chroma.pt").read_bytes()

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training_loop, "train_epoch", out_of_memory)
    with pytest.raises(UserError) as error:
        train_mean.main([*flags, "--epochs", "2", "--resume", "--batch-size", "64"])
    assert str(error.value) == ("--batch-size 64: out of GPU memory in epoch 2; try --batch-size 32 "
                                "(the last checkpoint is kept)")
    assert (tmp_path / "mean_chroma.pt").read_bytes() == before


def test_a_run_stopped_mid_epoch_resumes_only_with_its_batch_size():
    """Between epochs --batch-size may shrink (to fit memory); mid-epoch the batches left are drawn by the saved one."""
    saved = {"args": {"batch_size": 10, "width": 16}, "partial": (0, 0.0, 0)}
    training_loop.check_resumed_flags(saved, SimpleNamespace(batch_size=5, width=16), "run/colorizer.pt")
    saved["partial"] = (3, 1.5, 30)
    with pytest.raises(UserError, match=r"^--resume: run/colorizer.pt was started with --batch-size 10, not "
                                        r"--batch-size 5; resume it with those flags"):
        training_loop.check_resumed_flags(saved, SimpleNamespace(batch_size=5, width=16), "run/colorizer.pt")
    training_loop.check_resumed_flags(saved, SimpleNamespace(batch_size=10, width=16), "run/colorizer.pt")


def test_a_run_saved_before_a_flag_whose_default_changed_resumes_only_as_it_trained():
    """A run saved before --tint-weight existed trained with the whole tint error (1), not today's default."""
    saved = {"args": {"batch_size": 10, "width": 16}, "partial": (0, 0.0, 0)}
    with pytest.raises(UserError, match=r"^--resume: run/colorizer.pt was started with --tint-weight 1.0, not "
                                        r"--tint-weight 0.5; resume it with those flags"):
        training_loop.check_resumed_flags(saved, SimpleNamespace(batch_size=10, width=16, tint_weight=0.5),
                                          "run/colorizer.pt")
    training_loop.check_resumed_flags(saved, SimpleNamespace(batch_size=10, width=16, tint_weight=1.0),
                                      "run/colorizer.pt")
    training_loop.check_resumed_flags(saved, SimpleNamespace(batch_size=10, width=16), "run/colorizer.pt")


@pytest.mark.parametrize("updates_before", [0, 20])
def test_weight_average_is_an_exponential_moving_average_of_every_step_whose_memory_starts_short(updates_before):
    model, optimizer, x, y = _tiny_problem(20)
    average = training_loop.WeightAverage(model, 0.5, updates_before)  # 20: a resumed run, past the short start
    expected = [p.detach().clone() for p in model.parameters()]
    decays = iter([0.1, 2 / 11, 3 / 12, 4 / 13] if updates_before == 0 else [0.5] * 4)

    def after_step():
        average.update()
        decay = next(decays)
        for mean, p in zip(expected, model.parameters()):
            mean.mul_(decay).add_(p.detach(), alpha=1 - decay)

    training_loop.train_epoch(model, optimizer, x, y, 5, 1, 0, StopFlag(), after_step=after_step)
    for mean, averaged, trained in zip(expected, average.model.parameters(), model.parameters()):
        assert torch.allclose(averaged, mean, atol=1e-6) and not torch.allclose(averaged, trained)


def test_recalibration_gives_the_average_the_batchnorm_statistics_of_its_own_weights(monkeypatch):
    model = models.Colorizer(2, [4]).train()
    average = training_loop.WeightAverage(model, 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # trained weights far from the averaged ones, as mid-way through a one-cycle schedule
    average.update()
    images = torch.rand(30, 1, 16, 16)
    monkeypatch.setattr(training_loop, "RECALIBRATION_IMAGES", 10)  # every third image: 0, 3, ..., 27
    first_norm = next(m for m in average.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    first_norm.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    average.model.eval()
    average.recalibrate(images, 5)
    assert not average.model.training  # the mode it was in
    assert len(seen) == 2 and sum(len(batch) for batch in seen) == 10
    expected = torch.cat(seen).mean((0, 2, 3))  # the mean of its input over the images used, with averaged weights
    assert torch.allclose(first_norm.running_mean, expected, atol=1e-5)
    trained_norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(trained_norm.running_mean, expected, atol=1e-3)  # the trained model's are its own


def test_the_average_leaves_batchnorm_statistics_to_recalibration():
    model = models.Colorizer(2, [4]).train()
    average = training_loop.WeightAverage(model, 0.5)
    norm, averaged_norm = (next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
                           for net in (model, average.model))
    before = averaged_norm.running_mean.clone()
    model(torch.rand(4, 1, 16, 16))  # the trained model's statistics move in training
    average.update()
    assert not torch.equal(norm.running_mean, before)
    assert torch.equal(averaged_norm.running_mean, before)  # an update's lerp would only be overwritten


def test_ema_run_evaluates_and_saves_the_average_and_resumes_from_the_trained_weights(tmp_path):
    flags = ["--data-dir", str(DATA_DIR), "--limit", "20", "--features", "4", "--ema", "0.9", "--out-dir",
             str(tmp_path)]
    train_mean.main([*flags, "--epochs", "1"])
    first = torch.load(tmp_path / "mean_chroma.pt", weights_only=True)
    assert any(not torch.equal(first["model"][k], first["train_model"][k]) for k in first["model"])
    model = models.build_model(first["model_kind"], first["model_args"])
    model.load_state_dict(first["model"])
    rgb, names = data.load_faces(DATA_DIR)
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, first["test_names"])])
    mse = data.ab_mse_raw(training_loop.predict(model, l_norm, 7), train_mean.mean_targets(ab_norm)).mean().item()
    assert first["metrics"][-1]["test_mse"] == pytest.approx(mse, rel=1e-4)  # the logged figure is the average's
    train_mean.main([*flags, "--epochs", "2", "--resume"])
    assert torch.load(tmp_path / "mean_chroma.pt", weights_only=True)["epoch"] == 2


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bfloat16"])
def test_same_seed_and_settings_give_bit_identical_runs_whose_start_line_and_summary_name_threads_and_precision(
        bf16, tmp_path, capsys):
    flags = ["--data-dir", str(DATA_DIR), "--limit", "20", "--epochs", "1", "--width", "4", "--augment-factor", "2",
             "--bf16" if bf16 else "--no-bf16", "--device", "cpu"]  # bit-identical on a CPU, not across GPU kernels
    for run in ("a", "b"):
        train_colorize.main([*flags, "--out-dir", str(tmp_path / run)])
    precision = "bfloat16 autocast" if bf16 else "float32"
    assert f"device cpu, {torch.get_num_threads()} CPU threads, {precision}" in capsys.readouterr().out
    weights = [torch.load(tmp_path / run / "colorizer.pt", weights_only=True)["model"] for run in ("a", "b")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    summaries = [json.loads((tmp_path / run / "colorizer_summary.json").read_text()) for run in ("a", "b")]
    assert summaries[0]["figures"] == summaries[1]["figures"]
    assert (summaries[0]["threads"], summaries[0]["precision"]) == (torch.get_num_threads(), precision)


@pytest.mark.parametrize("native, flags, precision", [(False, [], "float32"), (True, [], "bfloat16 autocast"),
                                                      (True, ["--no-bf16"], "float32")])
def test_precision_defaults_to_bfloat16_only_where_it_was_measured_faster_and_a_flag_overrides_it(
        native, flags, precision, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(training_loop, "default_bf16", lambda device: native)
    train_colorize.main(["--data-dir", str(DATA_DIR), "--limit", "20", "--epochs", "1", "--width", "4",
                         "--augment-factor", "2", "--out-dir", str(tmp_path), *flags])
    assert f"CPU threads, {precision}," in capsys.readouterr().out
    summary = json.loads((tmp_path / "colorizer_summary.json").read_text())
    assert summary["precision"] == precision and summary["args"]["bf16"] == (precision != "float32")


def test_bfloat16_is_the_default_on_a_cpu_with_amx_alone_not_on_a_gpu():
    assert not runtime.default_bf16(torch.device("cuda"))  # measured slower on an H200 (docs/gpu.md)
    assert runtime.default_bf16(torch.device("cpu")) == torch.cpu._is_amx_tile_supported()


@pytest.mark.parametrize("training", [True, False])
def test_predict_runs_in_eval_mode_and_leaves_the_model_in_the_mode_it_found(training):
    model = models.Colorizer(2, [4]).train(training)
    x = torch.rand(6, 1, 16, 16)
    out = training_loop.predict(model, x, 4)
    assert model.training == training
    with torch.no_grad():  # the same batches: a many-core CPU may pick another kernel for another batch size
        expected = torch.cat([model.eval()(part) for part in x.split(4)])
    assert torch.equal(out, expected) and not out.requires_grad  # BatchNorm's running statistics, no autograd


def test_weight_decay_shrinks_weights_that_get_no_gradient_and_plain_adam_does_not():
    shrunk = {}
    for weight_decay in (0.0, 0.1):
        model = torch.nn.Linear(3, 2)
        before = model.weight.detach().clone()
        args = train_colorize.parse_args(["--lr", "0.01", "--lr-schedule", "constant", "--weight-decay",
                                          str(weight_decay)])
        optimizer, _ = training_loop.make_optimizer(model, args)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        shrunk[weight_decay] = model.weight.detach() / before
    assert torch.equal(shrunk[0.0], torch.ones(2, 3))
    assert torch.allclose(shrunk[0.1], torch.full((2, 3), 1 - 0.01 * 0.1))


@pytest.mark.parametrize("flag, inside, outside", [
    ("--val-fraction", ["0", "0.49"], ["0.5", "-0.01", "nan"]),
    ("--ema", ["0", "0.999"], ["1", "-0.1", "nan"]),
    ("--crop-min", ["0.1", "1"], ["0.09", "1.01", "nan"]),
    ("--rotate", ["0", "90"], ["90.5", "-1", "nan", "ten"]),
    ("--weight-decay", ["0", "0.05"], ["-1", "inf", "nan"])])
def test_bounded_float_flags_keep_their_edges_and_refuse_the_rest_naming_the_flag(flag, inside, outside, capsys):
    dest = flag.lstrip("-").replace("-", "_")
    for text in inside:
        assert getattr(train_colorize.parse_args([flag, text]), dest) == float(text)
    for text in outside:
        with pytest.raises(SystemExit):
            train_colorize.parse_args([flag, text])
        assert f"argument {flag}" in capsys.readouterr().err


def test_a_network_the_images_cannot_train_is_refused_in_one_line_naming_the_flag(tmp_path, capsys):
    """Each was a ValueError from inside the model, with its traceback, before the run started."""
    assert train_colorize.parse_args(["--width", "2"]).width == 2
    assert train_colorize.parse_args(["--arch", "unet", "--levels", "7", "--features", "4"]).levels == 7
    for flags, message in ((["--width", "1"], "--width 1: must be at least 2"),
                           (["--arch", "unet", "--levels", "8", "--features", "4"],
                            "--levels 8: a U-Net of 8 levels needs sides divisible by 2^8 = 256; the images are "
                            "128x128"),
                           (["--arch", "unet", "--levels", "7", "--features", "4", "--low-res-epochs", "1",
                             "--epochs", "2"],
                            "--levels 7: a U-Net of 7 levels needs sides divisible by 2^7 = 128; the half-side images "
                            "(--low-res-epochs) are 64x64")):
        with pytest.raises(SystemExit):
            train_colorize.parse_args(flags)
        assert capsys.readouterr().err.endswith(f"error: {message}\n")
    flags = ["--data-dir", str(DATA_DIR), "--limit", "20", "--epochs", "1", "--arch", "unet", "--features", "4",
             "--classify", "--out-dir", str(tmp_path)]
    with pytest.raises(UserError, match="--bin-size 300: the training images' a\\*b\\* all fall in one bin"):
        train_colorize.main([*flags, "--bin-size", "300"])
    assert not list(tmp_path.iterdir())
    train_colorize.main([*flags, "--bin-size", "60"])  # a few bins: trains
    assert (tmp_path / "colorizer_summary.json").exists()


def test_one_cycle_steps_after_every_optimiser_step_and_an_interrupted_run_resumes_to_the_same_weights(
        tmp_path, monkeypatch):
    """--lr-schedule one-cycle is torch's OneCycleLR over all the run's steps: it ends at its smallest rate after
    exactly epochs x steps-per-epoch steps, and a run stopped mid-epoch resumes onto the same schedule."""
    flags = ["--data-dir", str(DATA_DIR), "--limit", "20", "--epochs", "2", "--width", "4", "--augment-factor", "2",
             "--batch-size", "5", "--lr", "0.01", "--lr-schedule", "one-cycle", "--device", "cpu"]
    train_colorize.main([*flags, "--out-dir", str(tmp_path / "whole")])
    whole = torch.load(tmp_path / "whole" / "colorizer.pt", weights_only=True)
    steps = 2 * (18 * 2 // 5 + 1)  # 18 training images x 2 copies in batches of 5, for 2 epochs
    assert whole["scheduler"]["last_epoch"] == steps == whole["scheduler"]["total_steps"]
    assert whole["optimizer"]["param_groups"][0]["lr"] < 0.01 / 25  # annealed below the warm-up's start

    class StopAtStep3(StopFlag):
        def agreed(self, step=0):
            if step == 3:
                self.signal_name = "SIGTERM"
            return bool(self)

    monkeypatch.setattr(training_loop, "StopFlag", StopAtStep3)
    with pytest.raises(Interrupted):
        train_colorize.main([*flags, "--out-dir", str(tmp_path / "split")])
    assert torch.load(tmp_path / "split" / "colorizer.pt", weights_only=True)["scheduler"]["last_epoch"] == 3
    monkeypatch.setattr(training_loop, "StopFlag", StopFlag)
    train_colorize.main([*flags, "--out-dir", str(tmp_path / "split"), "--resume"])
    resumed = torch.load(tmp_path / "split" / "colorizer.pt", weights_only=True)
    assert all(torch.equal(whole["model"][key], resumed["model"][key]) for key in whole["model"])

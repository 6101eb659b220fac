"""The experiment protocol: every configuration of the table trains, validation runs never touch the test split,
fresh augmentation, the summaries and the table built from them."""
import csv
import json
import re
import statistics
import sys
from pathlib import Path

import pytest
import torch

import augment
import choose_fade
import data
import experiments
import neighbours
import train_colorize
import checkpoints
import prepare
import runtime
import screen_tints
import test_colorize
import train_mean
from conftest import DATA_DIR, run_script
from run_lock import RunLock

# every line of every stage, with the flags its stage puts before it (as experiments.py runs it)
CONFIGS = sorted({" ".join([words[0], *experiments.stage_flags(stage, words), *words[1:]])
                  for stage, spec in experiments.STAGES.items() for words in experiments.read_configs(spec["list"])})
PARSERS = {"train_colorize.py": train_colorize.parse_args, "train_mean.py": train_mean.parse_args}
CHOICES = ("--arch", "--lr-schedule", "--split-by", "--upsample")  # flags whose value picks a code path


def code_path(config):
    """A configuration's script, flag names and the values of the flags in CHOICES (the last one given wins, as in
    argparse): lines that differ only in numbers train through the same code."""
    script, *words = config.split()
    flags = {}
    for word in words:
        if word.startswith("--"):
            flag = flags[word] = []
        else:
            flag.append(word)
    return script, tuple(sorted((name, tuple(values) if name in CHOICES else ()) for name, values in flags.items()))


# one configuration per code path trains (the first in sorted order); every configuration is parsed
TRAINED = sorted({code_path(config): config for config in reversed(CONFIGS)}.values())


@pytest.mark.parametrize("config", CONFIGS)
def test_every_configuration_is_accepted_by_its_script(config):
    script, *flags = config.split()
    PARSERS[script](flags)  # argparse exits, failing the test, on a flag or value the script refuses


@pytest.mark.parametrize("config", TRAINED)
def test_every_configuration_of_the_table_trains(config, tmp_path):
    script, *flags = config.split()
    main = {"train_colorize.py": train_colorize.main, "train_mean.py": train_mean.main}[script]
    # x2 augmentation, not x10: every flag of the line still runs, on a fifth of the images; a line with
    # --low-res-epochs trains one epoch at half side, then one at full size
    low_res = script == "train_colorize.py" and train_colorize.parse_args(flags).low_res_epochs > 0
    epochs = ["--epochs", "2", "--low-res-epochs", "1"] if low_res else ["--epochs", "1"]
    if script == "train_colorize.py" and not low_res:
        epochs += ["--low-res-epochs", "0"]
    main([*flags, "--data-dir", str(DATA_DIR), "--limit", "20", *epochs, "--augment-factor", "2",
          "--out-dir", str(tmp_path)])
    name = "colorizer" if script == "train_colorize.py" else "mean_chroma"
    summary = json.loads((tmp_path / f"{name}_summary.json").read_text())
    assert summary["eval_split"] == ("val" if "--val-fraction" in flags else "test")
    assert summary["epochs"] == int(epochs[1])
    assert 0 < summary["figures"]["mse"] < 1000 and summary["figures"]["psnr"] > 10


def test_validation_run_holds_out_images_and_never_evaluates_the_test_split(tmp_path):
    train_colorize.main(["--data-dir", str(DATA_DIR), "--limit", "40", "--val-fraction", "0.2", "--epochs", "1",
                         "--arch", "unet", "--features", "4", "--out-dir", str(tmp_path)])
    checkpoint = checkpoints.load_checkpoint(tmp_path / "colorizer.pt", torch.device("cpu"), "Colorizer")
    train, val, test = (set(checkpoint[f"{split}_names"]) for split in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (28, 8, 4)
    assert not (train & val or train & test or val & test)
    rows = list(csv.DictReader(open(tmp_path / "colorizer.csv")))
    assert "val_mse" in rows[0] and not any(key.startswith("test") for key in rows[0])
    summary = json.loads((tmp_path / "colorizer_summary.json").read_text())
    assert summary["eval_split"] == "val"
    assert summary["figures"]["mse"] == pytest.approx(float(rows[-1]["val_mse"]), abs=1e-3)


def test_fresh_augmentation_differs_per_epoch_is_reproducible_and_held_once():
    args = train_colorize.parse_args(["--data-dir", str(DATA_DIR), "--limit", "10", "--fresh-augment",
                                      "--augment-factor", "3"])
    prepared = prepare.prepare_data(args, torch.device("cpu"))
    first = [t.clone() for t in prepare.training_data(prepared, args, 1)]
    second = [t.clone() for t in prepare.training_data(prepared, args, 2)]
    prepare.training_data(prepared, args, 3)
    again = prepare.training_data(prepared, args, 2)
    assert first[0].shape == second[0].shape == (27, 1, 128, 128)
    assert not torch.equal(first[0], second[0]) and torch.equal(second[1], again[1])
    assert torch.equal(first[0][::3], second[0][::3])  # copy 0 of each image is the original
    assert again[0] is prepared["train_l"] and again[1] is prepared["train_ab"]  # each draw overwrites the last
    assert all(torch.equal(a, b) for a, b in zip(first, prepare.training_data(prepared, args, 1)))


def test_split_seed_keeps_a_split_while_seed_draws_the_training_anew():
    flags = ["--data-dir", str(DATA_DIR), "--limit", "40", "--augment-factor", "2", "--split-by", "person"]
    plain, again, other = (prepare.prepare_data(train_colorize.parse_args(flags + extra), torch.device("cpu"))
                           for extra in (["--seed", "1"], ["--split-seed", "1", "--seed", "3"], ["--seed", "3"]))
    assert again["test_names"] == plain["test_names"] != other["test_names"]
    assert again["train_names"] == plain["train_names"]
    assert torch.equal(again["train_l"][::2], plain["train_l"][::2])  # copy 0: the photos themselves, in order
    assert not torch.equal(again["train_l"][1::2], plain["train_l"][1::2])  # the augmented copies: seed 3's
    with pytest.raises(SystemExit):
        train_colorize.parse_args(flags + ["--split-seed", "1", "--fold", "2"])


def test_exemplar_channels_never_borrow_from_the_excluded_photos_follow_the_crop_and_drop_a_share():
    flags = ["--data-dir", str(DATA_DIR), "--limit", "40", "--augment-factor", "3", "--exemplar", "3",
             "--exemplar-dropout", "0.25"]
    for exclude in ("photo", "person"):
        args = train_colorize.parse_args(flags + ["--exemplar-from", exclude])
        prepared = prepare.prepare_data(args, torch.device("cpu"))
        x, _ = prepare.training_data(prepared, args, 2)  # a fresh draw
        assert x.shape == (len(prepared["train_l"]), 3, 128, 128) and torch.equal(x[:, :1], prepared["train_l"])
        bank, bank_ab = prepared["exemplar"]["bank"]
        people = data.people_of(prepared["train_names"], DATA_DIR)
        rgb, names = data.load_faces(DATA_DIR, 40)
        train_l, _ = data.to_network(rgb[data.select_by_name(names, prepared["train_names"])])
        distance = torch.cdist(neighbours.describe(train_l), bank)
        for i, person in enumerate(people):  # by brute force: the 3 nearest it may borrow from
            allowed = [j for j in distance[i].argsort().tolist()
                       if (j != i if exclude == "photo" else people[j] != person)][:3]
            assert torch.allclose(prepared["exemplar"]["own"][i], bank_ab[allowed].mean(0), atol=1e-6)
        dropped = x[:, 1:].flatten(1).abs().amax(1) == 0
        assert 0.1 < dropped.float().mean() < 0.45  # a quarter, drawn
        originals = torch.arange(0, len(x), 3)  # copy 0 of each photo is the photo itself, its exemplar its own
        kept = originals[~dropped[originals]]
        assert torch.allclose(x[kept, 1:], prepared["exemplar"]["own"][kept // 3], atol=1e-5)
        copies = torch.arange(len(x))[(torch.arange(len(x)) % 3 != 0) & ~dropped]
        assert not torch.allclose(x[copies, 1:], prepared["exemplar"]["own"][copies // 3], atol=1e-3)  # cropped
        assert prepared["eval_x"].shape[1] == 3  # evaluated with exemplars from every training photo
    assert torch.equal(prepared["eval_x"][:, 1:], neighbours.exemplar(prepared["eval_l"], bank, bank_ab, 3))


def test_low_res_epochs_train_on_the_same_draw_at_half_side_then_full_size():
    flags = ["--data-dir", str(DATA_DIR), "--limit", "10", "--augment-factor", "2", "--epochs", "4"]
    args, full = (train_colorize.parse_args(flags + extra) for extra in (["--low-res-epochs", "2"], []))
    prepared, plain = (prepare.prepare_data(a, torch.device("cpu")) for a in (args, full))
    for epoch in (1, 2, 3):
        pair, full_pair = prepare.training_data(prepared, args, epoch), prepare.training_data(plain, full, epoch)
        if epoch <= 2:  # each pixel the mean of a 2x2 block of the epoch's full-size draw
            assert pair[0].shape == (18, 1, 64, 64) and pair[1].shape == (18, 2, 64, 64)
            assert torch.allclose(pair[1][:, :, 3, 5], full_pair[1][:, :, 6:8, 10:12].mean((-2, -1)), atol=1e-6)
        else:
            assert all(torch.equal(a, b) for a, b in zip(pair, full_pair))


def test_augmented_network_data_is_augment_then_lab_and_fills_given_buffers(faces):
    rgb = faces[0][:20]
    expected = data.to_network(augment.augment(rgb, 3, seed=5))
    buffers = (torch.full((60, 1, 128, 128), float("nan")), torch.full((60, 2, 128, 128), float("nan")))
    result = prepare.augmented_network_data(rgb, 3, 5, out=buffers)
    assert result[0] is buffers[0] and result[1] is buffers[1]
    assert all(torch.allclose(r, e, atol=1e-6) for r, e in zip(result, expected))


def test_table_gives_mean_and_spread_over_seeds(tmp_path, monkeypatch, capsys):
    listing = tmp_path / "final.txt"
    listing.write_text("# comment\ntrain_colorize.py --skips\n")
    monkeypatch.setitem(experiments.STAGES, "final", {"list": listing, "seeds": (0, 1, 2), "extra": {}})
    for seed, mse in zip((0, 1, 2), (10.0, 12.0, 14.0)):
        folder = tmp_path / "runs" / "final" / f"colorize_skips_seed{seed}"
        folder.mkdir(parents=True)
        figures = {"mse": mse, "psnr": 30.0, "colorfulness": 20.0 + seed, "colorfulness_true": 31.0}
        (folder / "colorizer_summary.json").write_text(json.dumps({"figures": figures, "train_seconds": 600}))
    experiments.table("final", tmp_path / "runs")
    row = capsys.readouterr().out.splitlines()[-1]
    assert row == ("| `train_colorize.py --skips` | 3 | 12.00 ± 2.00 | 30.00 ± 0.00 | 21.0 ± 1.0 "
                   "(truth 31.0 ± 0.0) | 10.0 ± 0.0 |")


def test_pending_runs_skip_finished_resume_interrupted_and_start_new(tmp_path, monkeypatch):
    listing = tmp_path / "final.txt"
    listing.write_text("train_colorize.py --skips\n")
    monkeypatch.setitem(experiments.STAGES, "final", {"list": listing, "seeds": (0, 1, 2), "extra": {}})
    runs = tmp_path / "runs" / "final"
    for seed, name in ((0, "colorizer_summary.json"), (1, "colorizer.pt")):
        (runs / f"colorize_skips_seed{seed}").mkdir(parents=True)
        (runs / f"colorize_skips_seed{seed}" / name).write_text("")
    pending = {run_dir.name: command[2:] for command, run_dir in experiments.pending_runs("final", tmp_path / "runs")}
    before = experiments.RECIPE_BEFORE  # the recipe the lists were written against, whatever the defaults are now
    assert pending == {
        "colorize_skips_seed1": [*before, "--skips", "--seed", "1", "--out-dir", str(runs / "colorize_skips_seed1"),
                                 "--resume"],
        "colorize_skips_seed2": [*before, "--skips", "--seed", "2", "--out-dir", str(runs / "colorize_skips_seed2")]}
    old = train_colorize.parse_args(pending["colorize_skips_seed2"])
    assert (old.epochs, old.lr, old.lr_schedule, old.crop_min) == (15, 1e-3, "cosine", 0.7)
    listing.write_text("train_colorize.py --arch fusion --epochs 4 --lr 3e-3 --lr-schedule one-cycle\n")
    (command, _), = experiments.pending_runs("final", tmp_path / "runs")[:1]
    new = train_colorize.parse_args(command[2:])  # a line's own flags override the recipe before
    assert (new.epochs, new.lr, new.lr_schedule, new.crop_min) == (4, 3e-3, "one-cycle", 0.7)


def test_crossval_runs_one_fold_each_and_its_table_gives_each_person_once(tmp_path, monkeypatch, capsys):
    folds = experiments.pending_runs("crossval", tmp_path / "runs")
    lines = experiments.read_configs(experiments.STAGES["crossval"]["list"])
    assert [run_dir.name[-6:] for _, run_dir in folds] == [f"_fold{k}" for k in range(10)] * len(lines)
    command = folds[3][0][1:]
    assert command[command.index("--fold") + 1] == "3" and command[command.index("--seed") + 1] == "0"
    assert command[command.index("--split-by") + 1] == "person"
    # two trained folds of a tiny network on 150 faces (one epoch, one copy each): the table has their people
    listing = tmp_path / "crossval.txt"
    listing.write_text("train_colorize.py --arch fusion --width 2 --epochs 1 --augment-factor 1 --limit 150\n")
    monkeypatch.setitem(experiments.STAGES, "crossval", {**experiments.STAGES["crossval"], "list": listing,
                                                         "folds": (0, 7)})
    for command, run_dir in experiments.pending_runs("crossval", tmp_path / "runs"):
        train_colorize.main([*command[2:], "--data-dir", str(DATA_DIR)])
    listing.write_text(listing.read_text() + "train_colorize.py --arch fusion --width 3\n")
    with pytest.raises(SystemExit, match="no finished crossval run of `train_colorize.py --arch fusion --width 3`"):
        experiments.people_table(tmp_path / "runs", "--width 3")  # --match picks the line
    with pytest.raises(SystemExit, match="--match '--width 4': no line"):
        experiments.people_table(tmp_path / "runs", "--width 4")
    experiments.people_table(tmp_path / "runs")
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if re.match(r"\| p\d", line)]
    names = [path.name for path in data.list_images(DATA_DIR)[:150]]
    people = data.people_of(names, DATA_DIR)
    for fold in (0, 7):
        tested = {people[i] for i in data.split_indices(150, 0, groups=people, fold=fold)[2].tolist()}
        assert {row[0].lstrip("| ") for row in rows if row[1] == str(fold)} == tested
    assert len({row[0] for row in rows}) == len(rows)  # no person in two folds
    own, borrowed, default, bound = (float(x.strip(" |")) for x in rows[0][2:6])
    assert bound < own  # the true tint can only help: each photo's tint error is removed
    # the people the new-face test splits test, apart from those new-face choices are made on
    everyone = data.people_of([path.name for path in data.list_images(DATA_DIR)], DATA_DIR)
    test_people = {everyone[i] for seed in (0, 1, 2)
                   for i in data.split_indices(len(everyone), seed, groups=everyone)[2].tolist()}
    groups = {False: [row for row in rows if row[0].lstrip("| ") in test_people]}
    groups[True] = [row for row in rows if row not in groups[False]]
    assert groups[False] and groups[True]
    for chosen_on, label in ((False, "the person splits of seeds 0, 1, 2 test"), (True, "the validation people")):
        line = next(line for line in out.splitlines() if label in line)
        assert f"over {len(groups[chosen_on])} people" in line
        means = [statistics.mean(float(row[col].strip(" |")) for row in groups[chosen_on]) for col in range(2, 6)]
        cells = [cell.strip() for cell in line.strip(" |").split("|")][2:]
        assert [float(cell.split(" ± ")[0]) for cell in cells] == pytest.approx(means, abs=0.006)


def test_match_runs_only_the_lines_containing_it_and_names_a_match_of_none(tmp_path, monkeypatch):
    listing = tmp_path / "final.txt"
    listing.write_text("train_colorize.py --skips\ntrain_colorize.py --arch fusion\n")
    monkeypatch.setitem(experiments.STAGES, "final", {"list": listing, "seeds": (0,), "extra": {}})
    pending = experiments.pending_runs("final", tmp_path / "runs", "--arch fusion")
    assert [run_dir.name for _, run_dir in pending] == ["colorize_arch_fusion_seed0"]
    with pytest.raises(SystemExit, match="--match 'classify': no line of final.txt contains it"):
        experiments.main(["final", "--runs-dir", str(tmp_path / "runs"), "--match=classify"])


def test_ship_makes_a_finished_run_the_shipped_model_without_what_only_resuming_needs(tmp_path):
    run, shipped_dir = tmp_path / "run", tmp_path / "outputs"
    flags = ["--data-dir", str(DATA_DIR), "--limit", "20", "--width", "4", "--epochs", "1"]
    train_colorize.main([*flags, "--out-dir", str(run)])
    (run / "train.log").write_text("header\n  epoch 1: 90/180 images, 9 img/s\nepoch   1  train MSE 9\n")
    experiments.main(["ship", str(run), "--to", str(shipped_dir)])
    full = torch.load(run / "colorizer.pt", weights_only=True)
    shipped = torch.load(shipped_dir / "colorizer.pt", weights_only=True)
    assert set(full) - set(shipped) == {"optimizer", "scheduler"} and set(shipped) - set(full) == {"lent"}
    assert all(torch.equal(shipped["model"][k], full["model"][k]) for k in full["model"])
    model, checkpoint = test_colorize.load_colorizer(run / "colorizer.pt", "cpu")
    bank = test_colorize.training_bank(checkpoint, data.load_faces(DATA_DIR))
    assert len(shipped["lent"]["descriptors"]) == len(checkpoint["train_names"]) == 18
    for key, value in test_colorize.lent_by(model, bank)._asdict().items():
        assert torch.equal(shipped["lent"][key], value), key
    assert (shipped_dir / "colorizer.pt").stat().st_size < 0.5 * (run / "colorizer.pt").stat().st_size
    assert (shipped_dir / "train_colorize.log").read_text() == "header\nepoch   1  train MSE 9\n"
    assert (shipped_dir / "colorizer.csv").read_bytes() == (run / "colorizer.csv").read_bytes()
    with pytest.raises(runtime.UserError, match="a shipped model without optimiser state"):
        train_colorize.main([*flags, "--epochs", "2", "--resume", "--out-dir", str(shipped_dir)])
    with pytest.raises(SystemExit, match="no finished run"):
        experiments.main(["ship", str(tmp_path), "--to", str(shipped_dir)])


def test_ship_keeps_the_files_it_replaces_and_replaces_none_with_the_same(tmp_path, capsys):
    run, shipped_dir = tmp_path / "run", tmp_path / "outputs"
    train_colorize.main(["--data-dir", str(DATA_DIR), "--limit", "20", "--width", "4", "--epochs", "1",
                         "--augment-factor", "1", "--out-dir", str(run)])
    shipped_dir.mkdir()
    earlier = {"colorizer.pt": b"an earlier model", "colorizer.csv": b"epoch,loss\n", "notes.txt": b"mine"}
    for name, payload in earlier.items():
        (shipped_dir / name).write_bytes(payload)
    experiments.main(["ship", str(run), "--to", str(shipped_dir)])
    (aside,) = (shipped_dir / "replaced").iterdir()
    assert f"the files it replaced are in {aside}" in capsys.readouterr().out
    assert {path.name: path.read_bytes() for path in aside.iterdir()} == {
        name: earlier[name] for name in ("colorizer.pt", "colorizer.csv")}
    assert (shipped_dir / "notes.txt").read_bytes() == b"mine"
    assert (shipped_dir / "colorizer.csv").read_bytes() == (run / "colorizer.csv").read_bytes()
    shipped = (shipped_dir / "colorizer.pt").read_bytes()
    experiments.main(["ship", str(run), "--to", str(shipped_dir)])
    assert "replaced" not in capsys.readouterr().out and len(list((shipped_dir / "replaced").iterdir())) == 1
    assert (shipped_dir / "colorizer.pt").read_bytes() == shipped
    other = tmp_path / "other"
    other.mkdir()
    (other / "colorizer.pt").write_bytes(b"an earlier model")
    (other / "replaced").write_text("not a folder")
    refused = run_script("experiments.py", "ship", run, "--to", other)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert re.fullmatch(f"error: could not move {other}'s earlier files into {other}/replaced/[0-9-]+: .*; nothing "
                        "was shipped\n", refused.stderr)
    assert (other / "colorizer.pt").read_bytes() == b"an earlier model"


def test_person_split_run_tests_people_it_never_trained_on_and_test_script_reads_it(tmp_path, capsys):
    train_colorize.main(["--data-dir", str(DATA_DIR), "--limit", "200", "--split-by", "person", "--val-fraction",
                         "0.1", "--epochs", "1", "--width", "4", "--augment-factor", "1", "--out-dir", str(tmp_path)])
    checkpoint = checkpoints.load_checkpoint(tmp_path / "colorizer.pt", torch.device("cpu"), "FusionColorizer")
    people = data.read_identities()
    present = len({people[path.name] for path in data.list_images(DATA_DIR)[:200]})
    train, val, test = ({people[name] for name in checkpoint[f"{split}_names"]} for split in ("train", "val", "test"))
    assert (len(val), len(test)) == (round(present * 0.1),) * 2 and len(train) + len(val) + len(test) == present
    assert not (train & val or train & test or val & test)
    assert checkpoint["args"]["split_by"] == "person"
    test_colorize.main(["--checkpoint", str(tmp_path / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--pngs", "0"])
    assert f"test: {len(checkpoint['test_names'])} images" in capsys.readouterr().out


def test_identity_loss_run_classifies_the_training_splits_people_and_tests_like_any_run(tmp_path, capsys):
    train_colorize.main(["--data-dir", str(DATA_DIR), "--limit", "60", "--split-by", "person", "--identity-weight",
                         "0.1", "--epochs", "1", "--width", "4", "--augment-factor", "2", "--out-dir", str(tmp_path)])
    checkpoint = checkpoints.load_checkpoint(tmp_path / "colorizer.pt", torch.device("cpu"), "FusionColorizer")
    people = data.read_identities()
    assert checkpoint["model_args"]["classes"] == len({people[name] for name in checkpoint["train_names"]})
    assert "identity loss: color MSE + 0.1 x cross-entropy" in capsys.readouterr().out
    labels, classes = prepare.person_labels({"train_names": checkpoint["train_names"]}, DATA_DIR, 10, "cpu")
    assert len(labels) == 10 * len(checkpoint["train_names"])  # one label per augmented copy, in copy order
    assert [classes[i] for i in labels[::10].tolist()] == [people[name] for name in checkpoint["train_names"]]
    test_colorize.main(["--checkpoint", str(tmp_path / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--pngs", "0"])
    assert "test: " in capsys.readouterr().out


def test_a_run_refused_because_it_is_still_going_elsewhere_keeps_that_runs_log(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train.log").write_text("epoch   1  train MSE    28.70\n")
    command = [sys.executable, "train_colorize.py", "--data-dir", str(DATA_DIR), "--limit", "20", "--epochs", "1",
               "--out-dir", str(run_dir)]
    with RunLock(run_dir):  # the run, still going in this process
        status, _ = experiments.run_one(command, run_dir, threads=1)
    log = (run_dir / "train.log").read_text()
    assert status == 1 and log.startswith("epoch   1  train MSE    28.70\n")
    assert "another run is using this folder" in log


def test_frontier_pairs_each_recipe_with_its_bench_minutes_and_both_validation_figures(tmp_path, monkeypatch,
                                                                                       capsys):
    """`experiments.py frontier`: a recipe is plotted when a screening run is finished and a saved bench table has
    its whole-run row; its cost is read relative to the first line's (the recipe before) in the same table."""
    lines = experiments.read_configs(experiments.STAGES["screen-recipes"]["list"])
    first, second, third = lines[:3]
    both = ("screen-recipes", "screen-recipes-newfaces")
    for words, stages in ((first, both), (second, both), (third, both[:1])):
        for stage in stages:
            run = tmp_path / stage / f"{experiments.slug(words)}_seed0"
            run.mkdir(parents=True)
            (run / "colorizer_summary.json").write_text("{}")
    figures = {tmp_path / stage / f"{experiments.slug(words)}_seed0": value
               for stage, words, value in (("screen-recipes", first, 8.0), ("screen-recipes-newfaces", first, 30.0),
                                           ("screen-recipes", second, 10.0),
                                           ("screen-recipes-newfaces", second, 33.0), ("screen-recipes", third, 9.0))}
    monkeypatch.setattr(experiments, "validation_mse", lambda run_dir, faces, shift_average: figures[run_dir])
    rows = lambda table: "".join(f"[{' '.join(words[1:])}] whole run: {n} epochs x (fresh draw + loop)   "  # noqa: E731
                                 f"{n} x (6.0 + 100) s = {minutes} min\n" for words, n, minutes in table)
    first_log, second_log = tmp_path / "bench.log", tmp_path / "bench_later.log"
    first_log.write_text(rows(((first, 15, 26.5), (second, 4, 7.1), (lines[3], 4, 6.0))))
    # a later, faster day: the third recipe is costed against that day's default, the second keeps the first log's
    second_log.write_text(rows(((first, 15, 13.0), (second, 4, 1.0), (third, 4, 3.9))))
    experiments.frontier(tmp_path, [first_log, second_log], tmp_path / "frontier.png")
    printed = capsys.readouterr().out
    assert f"| 1 | `{' '.join(first[1:])}` (the recipe before) | 26.5 | 1.00 | bench.log | 8.00 | 30.00 |" in printed
    assert f"| 2 | `{' '.join(second[1:])}` | 7.1 | 0.27 | bench.log | 10.00 | 33.00 |" in printed
    assert f"| 3 | `{' '.join(third[1:])}` | 3.9 | 0.30 | bench_later.log | 9.00 | - |" in printed  # one split
    assert " ".join(lines[3][1:]) not in printed  # benched but not screened
    assert (tmp_path / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_frontier_takes_an_earlier_tables_figures_only_for_recipes_without_a_run(tmp_path, monkeypatch,
                                                                                     capsys):
    lines = experiments.read_configs(experiments.STAGES["screen-recipes"]["list"])
    first, second = lines[:2]
    run = tmp_path / "screen-recipes" / f"{experiments.slug(second)}_seed0"  # screened again, the image split only
    run.mkdir(parents=True)
    (run / "colorizer_summary.json").write_text("{}")
    # rescored as the earlier table was scored, without the shift average
    monkeypatch.setattr(experiments, "validation_mse", lambda run_dir, faces, shift_average: 7.5 + shift_average)
    earlier = tmp_path / "speed_quality.log"
    earlier.write_text(f"| 1 | `{' '.join(first[1:])}` (the recipe before) | 13.0 | 1.00 | a.log | 5.74 | 29.88 |\n"
                       f"| 2 | `{' '.join(second[1:])}` | 3.6 | 0.28 | a.log | 12.01 | 31.00 |\n")
    log = tmp_path / "bench.log"
    log.write_text("".join(f"[{' '.join(words[1:])}] whole run: 4 epochs x (fresh draw + loop)   4 x (6.0 + 100) s = "
                           f"{minutes} min\n" for words, minutes in ((first, 13.0), (second, 3.6))))
    experiments.frontier(tmp_path, [log], tmp_path / "frontier.png", earlier, shift_average=False)
    printed = capsys.readouterr().out
    assert f"| 1 | `{' '.join(first[1:])}` (the recipe before) | 13.0 | 1.00 | bench.log | 5.74 | 29.88 |" in printed
    assert f"| 2 | `{' '.join(second[1:])}` | 3.6 | 0.28 | bench.log | 7.50 | 31.00 |" in printed
    earlier.write_text("")  # as `frontier --earlier T > T` leaves it
    with pytest.raises(SystemExit, match="no row of a frontier table"):
        experiments.frontier(tmp_path, [log], tmp_path / "frontier.png", earlier)


def test_the_frontier_finds_the_one_recipe_that_trains_as_the_defaults_do():
    lines = experiments.read_configs(experiments.STAGES["screen-recipes"]["list"])
    defaults = [" ".join(words[1:]) for words in lines if experiments.is_default(words)]
    assert defaults == ["--arch fusion --epochs 4 --lr 3e-3 --lr-schedule one-cycle --crop-min 0.9 --tint-weight 0.5"]
    assert not experiments.is_default(lines[0])  # the recipe before


def test_the_tools_find_the_default_recipes_runs_by_the_line_that_trains_as_the_defaults(tmp_path, monkeypatch):
    """choose_fade.py and screen_tints.py screen the default's runs without naming them: a default changed is a line
    added, not a folder name edited in two tools; two lines (or none) that train as the defaults are refused."""
    image_run = choose_fade.parse_args([]).image_run
    assert image_run == Path("runs/screen-recipes") / experiments.default_screening_run("screen-recipes")
    assert image_run.name == ("colorize_arch_fusion_epochs_4_lr_3e-3_lr-schedule_one-cycle_crop-min_0.9_tint-weight_0.5"
                              "_seed0")
    assert screen_tints.parse_args([]).people_run.parent.name == "screen-recipes-newfaces"
    match = choose_fade.parse_args([]).crossval
    first = next(words for words in experiments.read_configs(experiments.STAGES["crossval"]["list"])
                 if match in " ".join(words))  # as experiments.validation_people picks it
    assert experiments.is_default(first)
    listing = tmp_path / "recipes.txt"
    monkeypatch.setitem(experiments.STAGES["screen-recipes"], "list", listing)
    listing.write_text("train_colorize.py --arch fusion\n")  # the recipe before
    with pytest.raises(SystemExit, match="0 lines train as the defaults do, not one"):
        experiments.default_line("screen-recipes")
    listing.write_text(f"{' '.join(first)}\n{' '.join(first)} --augment-factor 10\n")
    with pytest.raises(SystemExit, match="2 lines train as the defaults do, not one"):
        experiments.default_line("screen-recipes")


def test_validation_mse_is_what_test_colorize_prints_for_the_validation_split(tmp_path, faces, capsys):
    run = tmp_path / "run"
    train_colorize.main(["--data-dir", str(DATA_DIR), "--limit", "60", "--width", "4", "--epochs", "1",
                         "--augment-factor", "2", "--val-fraction", "0.2", "--out-dir", str(run)])
    for shift in (True, False):
        test_colorize.main(["--checkpoint", str(run / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--split", "val",
                            "--pngs", "0", "--out-dir", str(tmp_path / "pngs"),
                            "--shift-average" if shift else "--no-shift-average"])
        shown = float(re.search(r"^val: \d+ images, .* mean ([\d.]+) ", capsys.readouterr().out, re.M).group(1))
        assert experiments.validation_mse(run, faces, shift) == pytest.approx(shown, abs=0.005)


def test_a_bench_table_made_after_a_default_changed_costs_against_the_reference_spelled_in_full(tmp_path):
    """The first line of recipes.txt is spelled on RECIPE_BEFORE; bench.py reads its rows on today's defaults, so a
    table made after a default changed spells the reference in full, and is costed against that row."""
    lines = experiments.read_configs(experiments.STAGES["screen-recipes"]["list"])
    first, default = lines[0], " ".join(next(words for words in lines if experiments.is_default(words))[1:])
    short, in_full = " ".join(first[1:]), " ".join([*first[1:], *experiments.RECIPE_BEFORE])
    log = tmp_path / "bench.log"
    rows = lambda table: "".join(f"[{flags}] whole run: 4 epochs x (fresh draw + loop)   "  # noqa: E731
                                 f"4 x (6.0 + 100) s = {minutes} min\n" for flags, minutes in table)
    log.write_text(rows(((short, 4.0), (in_full, 8.0), (default, 2.0))))
    assert experiments.recipe_costs([log], first)[default] == (2.0, 0.5, "bench.log")  # spelled as the line first
    log.write_text(rows(((in_full, 8.0), (default, 2.0))))
    costs = experiments.recipe_costs([log], first)
    assert costs[default] == (2.0, 0.25, "bench.log") and costs[short] == (8.0, 1.0, "bench.log")
    log.write_text(rows(((f"{in_full} --epochs 14", 8.0), (default, 2.0))))  # trains otherwise
    with pytest.raises(SystemExit, match="no whole-run row of the reference recipe"):
        experiments.recipe_costs([log], first)


def test_frontier_refuses_a_bench_table_without_the_default_recipe(tmp_path):
    """Costs compare rows of one bench run only, so a table without the reference's row cannot cost anything; a
    missing table is one line."""
    log = tmp_path / "bench.log"
    log.write_text("[--epochs 4] whole run: 4 epochs x (fresh draw + loop)   4 x (6.0 + 100) s = 7.1 min\n")
    with pytest.raises(SystemExit, match="bench.log: no whole-run row of the reference recipe"):
        experiments.frontier(tmp_path, [log], tmp_path / "frontier.png")
    with pytest.raises(SystemExit, match="^error: --bench-log .*missing.log: no such file$"):
        experiments.frontier(tmp_path, [tmp_path / "missing.log"], tmp_path / "frontier.png")

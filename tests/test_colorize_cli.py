"""train_colorize.py and test_colorize.py end to end: train, test, PNGs, interrupt/resume, any photo, bad input."""
import csv
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import compare
import data
import experiments
import neighbours
import test_colorize
from models import Exemplared, FadedUnfamiliar
import checkpoints
import runtime
from conftest import DATA_DIR, HANG_GUARD_S, ROOT, run_script

# x2 augmentation: what these tests check does not depend on the number of augmented copies
TINY = ["--data-dir", DATA_DIR, "--limit", 20, "--arch", "unet", "--no-flip-average", "--features", 8,
        "--augment-factor", 2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("colorize")
    result = run_script("train_colorize.py", *TINY, "--epochs", 1, "--out-dir", out)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def test_a_runs_own_checkpoint_keeps_its_errors_on_the_training_photos_for_the_next_run(trained, tmp_path,
                                                                                        monkeypatch, capsys):
    """They are most of a run's time (a shipped model carries them): kept beside the checkpoint, they are used only
    for the same checkpoint bytes and test-time averaging, and someone else's file of that name is left alone."""
    checkpoint = tmp_path / "run" / "colorizer.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes((trained[0] / "colorizer.pt").read_bytes())
    kept = tmp_path / "run" / "colorizer_errors.pt"
    computed = []
    compute = test_colorize.bank_errors
    monkeypatch.setattr(test_colorize, "bank_errors", lambda model, bank: computed.append(1) or compute(model, bank))

    def test_mse(*flags):
        test_colorize.main(["--checkpoint", str(checkpoint), "--data-dir", str(DATA_DIR), "--pngs", "0", *flags])
        return re.search(r"^test: .* mean ([\d.]+) ", capsys.readouterr().out, re.M).group(1)

    first = test_mse()
    assert len(computed) == 1 and kept.is_file()
    assert test_mse() == first and len(computed) == 1  # kept, and the same figure
    test_mse("--no-shift-average")
    assert len(computed) == 2  # another averaging
    saved = torch.load(checkpoint, weights_only=True)
    name = next(iter(saved["model"]))
    saved["model"][name] += 0.01  # a resumed or retrained run
    torch.save(saved, checkpoint)
    test_mse("--no-shift-average")
    assert len(computed) == 3
    kept.write_text("my notes")
    test_mse()
    assert len(computed) == 4 and kept.read_text() == "my notes"


def test_training_writes_checkpoint_log_and_curve(trained):
    out, stdout = trained
    assert (out / "colorizer.pt").is_file() and (out / "colorizer_loss.png").is_file()
    rows = list(csv.DictReader(open(out / "colorizer.csv")))
    assert len(rows) == 1 and float(rows[0]["test_mse"]) > 0
    assert re.search(r"epoch +1 +train MSE", stdout)


def test_test_script_mse_matches_recomputation_and_writes_pngs(trained, tmp_path):
    out, train_stdout = trained
    result = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--data-dir", DATA_DIR,
                        "--out-dir", tmp_path, "--train", "--pngs", 3, "--tint-keep", 1, "--no-borrow-errors",
                        "--no-fade-unfamiliar", "--no-shift-average")  # the network as training evaluates it
    assert result.returncode == 0, result.stderr
    printed = float(re.search(r"test: 2 images, MSE a\* [\d.]+  b\* [\d.]+  mean ([\d.]+)", result.stdout).group(1))
    model, checkpoint = test_colorize.load_colorizer(out / "colorizer.pt", torch.device("cpu"), shift_average=False)
    rgb, names = data.load_faces(DATA_DIR)
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, checkpoint["test_names"])])
    with torch.no_grad():
        recomputed = data.ab_mse_raw(model(l_norm), ab_norm).mean().item()
    assert printed == pytest.approx(recomputed, abs=0.01)
    trained_mse = float(re.search(r"final test MSE ([\d.]+)", train_stdout).group(1))
    assert printed == pytest.approx(trained_mse, abs=0.01)
    assert "train: 18 images" in result.stdout
    for name in checkpoint["test_names"]:
        panel = cv2.imread(str(tmp_path / f"test_{name.rsplit('.', 1)[0]}.png"))
        assert panel.shape == (128, 384, 3)
        truth = cv2.imread(str(DATA_DIR / name))
        assert np.abs(panel[:, 256:].astype(int) - truth).mean() < 1.0  # the third panel is the ground truth
    assert cv2.imread(str(tmp_path / "test_grid.png")).shape == (128, 3 * 384, 3)
    assert cv2.imread(str(tmp_path / "train_grid.png")).shape == (128, 3 * 384, 3)
    assert len(list(tmp_path.glob("train_image*.png"))) == 3


def test_sigterm_mid_epoch_then_resume_finishes(tmp_path):
    command = [sys.executable, str(ROOT / "train_colorize.py"), *map(str, TINY), "--limit", "60",
               "--augment-factor", "10", "--epochs", "2", "--out-dir", str(tmp_path)]  # long epochs to stop in
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in process.stderr:
        if line.startswith("  epoch 1:"):
            process.send_signal(signal.SIGTERM)
            break
    stdout, stderr = process.communicate(timeout=HANG_GUARD_S)
    assert process.returncode == 75  # "resumable", for SLURM scripts
    assert "stopped by SIGTERM in epoch 1" in stderr and "--resume" in stderr
    stopped = torch.load(tmp_path / "colorizer.pt", weights_only=True)
    assert stopped["epoch"] == 0 and stopped["partial"][0] > 0
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, cwd=ROOT, timeout=HANG_GUARD_S)
    assert resumed.returncode == 0, resumed.stderr
    final = torch.load(tmp_path / "colorizer.pt", weights_only=True)
    assert final["epoch"] == 2 and [m["epoch"] for m in final["metrics"]] == [1, 2]
    rows = list(csv.DictReader(open(tmp_path / "colorizer.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert not list(tmp_path.glob(".*tmp*"))


def _lab_l(bgr_or_gray):
    rgb = torch.from_numpy(bgr_or_gray).float() / 255
    rgb = rgb.unsqueeze(-1).repeat(1, 1, 3) if rgb.ndim == 2 else rgb[..., [2, 1, 0]]
    return data.rgb_to_lab(rgb.permute(2, 0, 1).unsqueeze(0))[0, 0]


def test_colorize_any_photo_keeps_size_and_lightness(trained, tmp_path):
    out, _ = trained
    gray = cv2.resize(cv2.imread(str(DATA_DIR / "image00100.jpg"), cv2.IMREAD_GRAYSCALE), (517, 333))
    rgba = cv2.cvtColor(cv2.resize(cv2.imread(str(DATA_DIR / "image00200.jpg")), (96, 64)), cv2.COLOR_BGR2BGRA)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    result = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--out-dir", tmp_path / "out",
                        "--input", tmp_path / "gray.png", tmp_path / "rgba.png")
    assert result.returncode == 0, result.stderr
    for name, source in [("gray", gray), ("rgba", rgba[..., :3])]:
        colorized = cv2.imread(str(tmp_path / "out" / f"{name}.png"))
        assert colorized.shape[:2] == source.shape[:2]
        l_in, l_out = _lab_l(source), _lab_l(colorized)
        # where the merged color was clipped to the sRGB gamut, L* moves; everywhere else it is the input's
        unclipped = torch.from_numpy(((colorized > 0) & (colorized < 255)).all(axis=2))
        assert unclipped.float().mean() > 0.5
        assert (l_in - l_out)[unclipped].abs().max() < 1.0


def lent(model, l_norm, train_l_norm, train_ab_norm, k, temperature, errors,
         unseen_distance=test_colorize.DEFAULT_UNSEEN_DISTANCE):
    """What the nearest training photos lend each prediction, computed here from the definitions: (the weighted
    error map upsampled or zeros, the weighted true tint N x 2 x 1 x 1, how unfamiliar each photo is N x 1 x 1 x 1:
    0 within unseen_distance[0] of its nearest training photo, 1 beyond unseen_distance[1])."""
    distance = torch.cdist(neighbours.describe(l_norm), neighbours.describe(train_l_norm))
    nearest, index = distance.topk(min(k, len(train_l_norm)), largest=False)
    weights = torch.softmax(-nearest / nearest[:, :1] / temperature, 1)[..., None, None, None]
    tint = (weights * train_ab_norm.mean((2, 3), keepdim=True)[index]).sum(1)
    near, far = unseen_distance
    unseen = ((nearest[:, :1] - near) / (far - near)).clamp(0, 1)[..., None, None]
    if not errors:
        return torch.zeros(1), tint, unseen
    with torch.no_grad():
        grid = F.adaptive_avg_pool2d(train_ab_norm - model(train_l_norm), test_colorize.ERROR_GRID)
    error = F.interpolate((weights * grid[index]).sum(1), size=l_norm.shape[-2:], mode="bilinear", align_corners=False)
    return error, tint, unseen


def pulled(ab_pred, error, tint, unseen, keep, unfamiliar_keep):
    """The prediction with the error added and its tint pulled toward `tint`, as the definitions say: a photo
    unfamiliar by `unseen` borrows that share less of the error and keeps at least unfamiliar_keep x unseen of its
    own tint (unfamiliar_keep None: every photo alike)."""
    if unfamiliar_keep is not None:
        error, keep = (1 - unseen) * error, (unfamiliar_keep * unseen).clamp(min=keep)
    corrected = ab_pred + error
    own_tint = corrected.mean((2, 3), keepdim=True)
    return corrected - own_tint + tint + keep * (own_tint - tint)


def test_each_prediction_borrows_the_error_and_tint_of_its_nearest_training_photos(trained, tmp_path, capsys):
    out, _ = trained
    model, checkpoint = test_colorize.load_colorizer(out / "colorizer.pt", torch.device("cpu"))
    rgb, names = data.load_faces(DATA_DIR)
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, checkpoint["test_names"])])
    train_l_norm, train_ab_norm = data.to_network(rgb[data.select_by_name(names, checkpoint["train_names"])])
    with torch.no_grad():
        ab_pred = model(l_norm)
    figures, default_keep = {}, test_colorize.DEFAULT_UNFAMILIAR_KEEP
    for flags, k, temperature, keep, errors, unfamiliar_keep in (
            ([], 10, 0.1, 0.0, True, default_keep),
            (["--no-unfamiliar-keep"], 10, 0.1, 0.0, True, None),
            (["--unfamiliar-keep", "0.8", "--tint-keep", "0.25", "--unseen-distance", "0.2", "0.9"], 10, 0.1, 0.25,
             True, 0.8),
            (["--tint-neighbours", "5", "--neighbour-temperature", "1000", "--no-borrow-errors"], 5, 1000, 0.0, False,
             default_keep),
            (["--tint-neighbours", "2", "--neighbour-temperature", "0.5", "--tint-keep", "0.25",
              "--no-unfamiliar-keep"], 2, 0.5, 0.25, True, None),
            (["--tint-neighbours", "1000", "--no-borrow-errors", "--no-unfamiliar-keep"], 18, 0.1, 0.0, False, None),
            (["--tint-keep", "1", "--no-unfamiliar-keep"], 10, 0.1, 1.0, True, None),
            (["--tint-keep", "1", "--no-borrow-errors"], 10, 0.1, 1.0, False, default_keep)):
        test_colorize.main(["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--pngs", "0",
                            "--no-fade-unfamiliar", *flags])
        printed = float(re.search(r"test: 2 images, MSE .* mean ([\d.]+)", capsys.readouterr().out).group(1))
        unseen_distance = (0.2, 0.9) if "--unseen-distance" in flags else test_colorize.DEFAULT_UNSEEN_DISTANCE
        error, borrowed, unseen = lent(model, l_norm, train_l_norm, train_ab_norm, k, temperature, errors,
                                       unseen_distance)
        expected = pulled(ab_pred, error, borrowed, unseen, keep, unfamiliar_keep)
        assert printed == pytest.approx(data.ab_mse_raw(expected, ab_norm).mean().item(), abs=0.01), flags
        figures[" ".join(flags)] = printed
    # the test can tell them apart: the errors change the prediction, and the test photos look partly unseen
    assert figures["--tint-keep 1 --no-unfamiliar-keep"] != pytest.approx(
        data.ab_mse_raw(ab_pred, ab_norm).mean().item(), abs=0.01)
    assert 0 < unseen.max() and figures[""] != pytest.approx(figures["--no-unfamiliar-keep"], abs=0.01)
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), cv2.imread(str(DATA_DIR / checkpoint["test_names"][0])))
    test_colorize.main(["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--input", str(face),
                        "--out-dir", str(tmp_path / "out")])
    face_rgb = torch.from_numpy(data.read_rgb(face)).permute(2, 0, 1)
    _, l_work = test_colorize.work_input(face_rgb, model.side_multiple, 256)
    error, borrowed, unseen = lent(model, l_work, train_l_norm, train_ab_norm, 10, 0.1, True)
    with torch.no_grad():
        ab_work = data.fade(pulled(model(l_work), error, borrowed, unseen, 0.0, test_colorize.DEFAULT_UNFAMILIAR_KEEP),
                            neighbours.kept_fraction(l_work, neighbours.describe(train_l_norm),
                                                     *test_colorize.DEFAULT_FADE))
    l_raw = data.rgb_to_lab(face_rgb[None])[:, :1]
    expected = test_colorize.merge_rows(l_raw, test_colorize.upsample(ab_work, l_raw))
    colorized = torch.from_numpy(cv2.imread(str(tmp_path / "out" / "face.png"))[..., ::-1].copy()).permute(2, 0, 1)
    assert (colorized.float() - expected * 255).abs().max() <= 1.0
    with pytest.raises(data.DataError, match="^--tint-neighbours needs the faces .*--data-dir .*: no such folder"):
        test_colorize.main(["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(tmp_path / "missing"),
                            "--input", str(face), "--out-dir", str(tmp_path / "out2"), "--tint-neighbours", "3"])
    assert not (tmp_path / "out2").exists()
    with pytest.raises(data.DataError, match="^--borrow-errors needs the faces .*--data-dir .*: no such folder"):
        test_colorize.main(["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(tmp_path / "missing"),
                            "--input", str(face), "--out-dir", str(tmp_path / "out2"), "--borrow-errors"])
    assert not (tmp_path / "out2").exists()
    capsys.readouterr()
    test_colorize.main(["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(tmp_path / "missing"),
                        "--input", str(face), "--out-dir", str(tmp_path / "out3")])  # the default, without the faces
    assert re.search(r"^note: each prediction keeps the network's own colours .*: no such folder$",
                     capsys.readouterr().err)
    with torch.no_grad():
        own = test_colorize.colorize(model, face_rgb, 256)
    colorized = torch.from_numpy(cv2.imread(str(tmp_path / "out3" / "face.png"))[..., ::-1].copy()).permute(2, 0, 1)
    assert (colorized.float() - own * 255).abs().max() <= 1.0


def test_a_shipped_model_borrows_and_fades_without_the_faces_as_with_them(trained, tmp_path, capsys):
    """experiments.py ship stores what the training photos lend (test_colorize.Lent) in the checkpoint: an --input
    photo then comes out the same without the faces as the run's own checkpoint gives with them; with the mirror
    or shift averaging switched the stored errors are not the network's, so the faces are needed again."""
    out, _ = trained
    experiments.ship(out, tmp_path / "shipped")
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), cv2.imread(str(DATA_DIR / "image00044.jpg")))
    colorized = {}
    for name, checkpoint, data_dir in (("with", out, DATA_DIR), ("without", tmp_path / "shipped", tmp_path / "none")):
        test_colorize.main(["--checkpoint", str(checkpoint / "colorizer.pt"), "--data-dir", str(data_dir),
                            "--input", str(face), "--out-dir", str(tmp_path / name)])
        colorized[name] = cv2.imread(str(tmp_path / name / "face.png")).astype(int)
    assert "what the training photos lend: carried by the checkpoint" in capsys.readouterr().out
    assert (colorized["with"] != cv2.imread(str(face)).astype(int)).any()  # coloured, not the input copied
    assert abs(colorized["with"] - colorized["without"]).max() <= 1
    for switch in ("--flip-average", "--no-shift-average"):  # shipped without the first, with the second
        test_colorize.main(["--checkpoint", str(tmp_path / "shipped" / "colorizer.pt"), "--data-dir",
                            str(tmp_path / "none"), switch, "--input", str(face), "--out-dir",
                            str(tmp_path / switch)])
        assert re.search(r"^note: each prediction keeps the network's own colours .*: no such folder$",
                         capsys.readouterr().err, re.M)


def test_default_stages_are_what_test_colorize_runs_stage_by_stage(trained, capsys):
    """The stages the scoring scripts (experiments.py people, choose_fade.py) compare side by side are the models
    test_colorize.py runs with --tint-keep 1 --no-fade-unfamiliar, with --no-fade-unfamiliar, and without flags."""
    out, _ = trained
    model, checkpoint = test_colorize.load_colorizer(out / "colorizer.pt", torch.device("cpu"))
    faces = data.load_faces(DATA_DIR)
    stages = test_colorize.default_stages(model, checkpoint, faces)
    rgb, names = faces
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, checkpoint["test_names"])])
    for stage, flags in ((stages.own, ["--tint-keep", "1", "--no-borrow-errors", "--no-fade-unfamiliar"]),
                         (stages.borrowed, ["--no-fade-unfamiliar"]), (stages.default, [])):
        test_colorize.main(["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--pngs", "0",
                            *flags])
        printed = float(re.search(r"test: 2 images, MSE .* mean ([\d.]+)", capsys.readouterr().out).group(1))
        with torch.no_grad():
            assert printed == pytest.approx(data.ab_mse_raw(stage(l_norm), ab_norm).mean().item(), abs=0.01), flags
    with torch.no_grad():  # each stage changes the prediction: the test could tell them apart
        assert not torch.allclose(stages.own(l_norm), stages.borrowed(l_norm))
    train_l_norm, _ = data.to_network(rgb[data.select_by_name(names, checkpoint["train_names"])])
    assert torch.equal(stages.bank, neighbours.describe(train_l_norm))


def test_score_measures_colour_originals_against_themselves_and_the_fade_is_evaluated_too(trained, tmp_path, capsys):
    out, _ = trained
    model, checkpoint = test_colorize.load_colorizer(out / "colorizer.pt", torch.device("cpu"))
    photo = cv2.resize(cv2.imread(str(DATA_DIR / "image00300.jpg")), (150, 200))
    cv2.imwrite(str(tmp_path / "colour.png"), photo)
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    common = ["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--score", "--input",
              str(tmp_path / "colour.png"), str(tmp_path / "gray.png")]
    rgb = torch.from_numpy(data.read_rgb(tmp_path / "colour.png")).permute(2, 0, 1)
    ab_true = data.normalize_ab(data.rgb_to_lab(rgb[None])[:, 1:])
    rgb_all, names = data.load_faces(DATA_DIR)
    bank = neighbours.describe(data.to_network(rgb_all[data.select_by_name(names, checkpoint["train_names"])])[0])
    scores = []
    for flags, wrapped in ((["--tint-keep", "1", "--no-borrow-errors", "--no-fade-unfamiliar"], model),
                           (["--tint-keep", "1", "--no-borrow-errors", "--fade-unfamiliar", "0.1", "0.3"],
                            FadedUnfamiliar(model, bank, 0.1, 0.3))):
        test_colorize.main([*common, "--out-dir", str(tmp_path / flags[-1]), *flags])
        printed = capsys.readouterr().out
        mse, none = map(float, re.search(r"colour\.png -> .*colour\.png  MSE a\*b\* ([\d.]+), no colour ([\d.]+)",
                                         printed).groups())
        _, ab_pred = test_colorize.predict_lab(wrapped.eval(), rgb, 256)
        assert mse == pytest.approx(data.ab_mse_raw(ab_pred, ab_true).mean().item(), abs=0.01), flags
        assert none == pytest.approx(ab_true.mul(data.AB_SCALE).pow(2).mean().item(), abs=0.01)
        assert re.search(r"gray\.png -> .*gray\.png  \(no colour to score against: a gray photo\)", printed)
        assert f"1 colour photo(s) scored: mean MSE a*b* {mse:.2f}, no colour {none:.2f}" in printed
        scores.append(mse)
    assert scores[0] != scores[1]  # this photo is partly unlike the 18 training faces: the fade changes it
    for bad, message in ((["--fade-unfamiliar", "0.7", "0.5"], "--fade-unfamiliar 0.7 0.5: FULL must be below NONE"),
                         (["--score"], "--score: scores --input photos; give --input")):
        result = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", *bad)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_unseen_distance_is_checked_where_it_is_read(capsys):
    for bad, message in ((["--unseen-distance", "1.3", "1.3"], "--unseen-distance 1.3 1.3: NEAR must be below FAR"),
                         (["--no-unfamiliar-keep", "--unseen-distance", "1", "1.2"],
                          "--unseen-distance: has no use with --no-unfamiliar-keep")):
        with pytest.raises(SystemExit) as exit_:
            test_colorize.parse_args(bad)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert test_colorize.parse_args(["--unseen-distance", "1", "1.2"]).unseen_distance == [1.0, 1.2]


def test_input_errors_name_the_file_and_others_still_run(trained, tmp_path):
    out, _ = trained
    cv2.imwrite(str(tmp_path / "ok.png"), cv2.imread(str(DATA_DIR / "image00000.jpg")))
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((16, 40, 3), np.uint8))
    (tmp_path / "junk.jpg").write_text("junk")
    result = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--out-dir", tmp_path / "out",
                        "--input", tmp_path / "ok.png", tmp_path / "tiny.png", tmp_path / "junk.jpg")
    assert result.returncode == 1
    assert (tmp_path / "out" / "ok.png").is_file()
    assert re.search(r"error: .*tiny\.png: 16x40 is smaller than 32 pixels", result.stderr)
    assert re.search(r"error: .*junk\.jpg: not a readable image", result.stderr)
    assert "Traceback" not in result.stderr
    missing = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--out-dir", tmp_path / "o2",
                         "--input", tmp_path / "nope.png")
    assert missing.returncode == 1 and "nope.png: no such file or folder" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--out-dir", tmp_path / "o3",
                       "--input", tmp_path / "ok.png", tmp_path / "empty")
    assert empty.returncode == 1 and empty.stderr == f"error: --input {tmp_path / 'empty'}: no .jpg/.jpeg/.png " \
                                                     "images in this folder\n"
    assert not (tmp_path / "o3").exists()  # refused before colorizing anything
    (tmp_path / "afile").write_text("x")
    blocked = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--out-dir", tmp_path / "afile",
                         "--input", tmp_path / "ok.png")
    assert blocked.returncode == 1 and "afile: exists and is not a folder" in blocked.stderr


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned_marker",))


def test_bad_checkpoints_give_one_line_errors(trained, tmp_path):
    out, _ = trained
    mean = run_script("train_mean.py", "--data-dir", DATA_DIR, "--limit", 20, "--epochs", 1, "--out-dir", tmp_path)
    assert mean.returncode == 0
    (tmp_path / "random.pt").write_bytes(os.urandom(1000))
    (tmp_path / "cut.pt").write_bytes((out / "colorizer.pt").read_bytes()[:5000])
    torch.save({"model_kind": "Colorizer", "x": _Exploit()}, tmp_path / "evil.pt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"model_kind": "Colorizer", "x": _Exploit()}))
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"model_kind": "Colorizer", "model": {"w": [1.0]}}))
    cases = {"mean_chroma.pt": "not a Colorizer or FusionColorizer checkpoint (found MeanChromaNet)",
             "random.pt": "not a readable PyTorch checkpoint",
             "cut.pt": "not a readable PyTorch checkpoint", "missing.pt": "no such checkpoint",
             "evil.pt": "refused: it would load code",
             "evil.pkl": "not a PyTorch checkpoint file but a plain Python pickle that would run code when loaded",
             "plain.pkl": "not a PyTorch checkpoint file but a plain Python pickle\n"}
    for name, message in cases.items():
        result = run_script("test_colorize.py", "--checkpoint", tmp_path / name, "--out-dir", tmp_path / "o")
        assert result.returncode == 1, name
        assert message in result.stderr + "\n" and name in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (ROOT / "pwned_marker").exists() and not (tmp_path / "pwned_marker").exists()


def test_default_checkpoint_is_the_users_trained_model_if_any_and_pngs_go_beside_it(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    shipped = test_colorize.parse_args([])
    assert (shipped.checkpoint, shipped.out_dir) == ([Path("outputs/colorizer.pt")], Path("outputs/colorized"))
    monkeypatch.chdir(tmp_path)  # elsewhere, the shipped model is still the one beside the scripts
    shipped = test_colorize.parse_args([])
    assert (shipped.checkpoint, shipped.out_dir) == ([ROOT / "outputs/colorizer.pt"], ROOT / "outputs/colorized")
    (tmp_path / "runs" / "colorizer").mkdir(parents=True)
    (tmp_path / "runs" / "colorizer" / "colorizer.pt").write_bytes(b"")
    trained = test_colorize.parse_args([])
    assert (trained.checkpoint, trained.out_dir) == ([Path("runs/colorizer/colorizer.pt")],
                                                     Path("runs/colorizer/colorized"))
    assert test_colorize.parse_args(["--out-dir", "x"]).out_dir == Path("x")


def test_a_photo_is_colorized_by_the_shipped_model_from_any_folder(tmp_path):
    photo = ROOT / "examples" / "image00044_gray_400x300.png"
    result = subprocess.run([sys.executable, str(ROOT / "test_colorize.py"), "--input", str(photo), "--out-dir", "out"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr
    assert f"checkpoint {ROOT / 'outputs' / 'colorizer.pt'}:" in result.stdout
    assert cv2.imread(str(tmp_path / "out" / photo.name)).shape == cv2.imread(str(photo)).shape


def test_work_shape_rounds_to_levels_and_caps_size():
    assert test_colorize.work_shape(64, 96, 32, 256) == (64, 96)
    assert test_colorize.work_shape(3000, 4000, 32, 256) == (192, 256)
    assert test_colorize.work_shape(3000, 4000, 8, 256) == (192, 256)
    assert test_colorize.work_shape(300, 410, 8, 256) == (184, 256)
    with pytest.raises(data.DataError, match="smaller than 32"):
        test_colorize.work_shape(31, 500, 32, 256)


def test_grid_tiles_images():
    images = torch.rand(4, 3, 8, 24)
    tiled = test_colorize.grid(images, columns=3)
    assert tiled.shape == (3, 16, 72)
    assert torch.equal(tiled[:, 8:, :24], images[3]) and torch.equal(tiled[:, 8:, 24:], torch.ones(3, 8, 48))


def test_cpu_device_and_checkpoint_map_location(trained):
    out, _ = trained
    checkpoint = checkpoints.load_checkpoint(out / "colorizer.pt", torch.device("cpu"), "Colorizer")
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())
    assert runtime.pick_device("cpu") == torch.device("cpu")


def test_baselines_are_printed_in_raw_units(trained, tmp_path):
    out, _ = trained
    result = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--data-dir", DATA_DIR,
                        "--out-dir", tmp_path, "--pngs", 0, "--baselines")
    assert result.returncode == 0, result.stderr
    printed = {m[0]: float(m[1]) for m in re.findall(r"baseline (.+): test MSE ([\d.]+)", result.stdout)}
    checkpoint = torch.load(out / "colorizer.pt", weights_only=True)
    rgb, names = data.load_faces(DATA_DIR)
    ab_raw = data.rgb_to_lab(rgb[data.select_by_name(names, checkpoint["test_names"])])[:, 1:]
    assert printed["a*=b*=0"] == pytest.approx(ab_raw.pow(2).mean().item(), abs=0.01)
    own = (ab_raw - ab_raw.mean((2, 3), keepdim=True)).pow(2).mean().item()
    assert printed["each image's own mean color"] == pytest.approx(own, abs=0.01)
    assert printed["each image's own mean color"] < printed["training images' mean color"] < printed["a*=b*=0"]


def test_validation_split_and_the_test_time_averaging_switches(trained, tmp_path):
    out = tmp_path / "screen"
    trained_val = run_script("train_colorize.py", *TINY, "--epochs", 1, "--val-fraction", 0.2, "--out-dir", out)
    assert trained_val.returncode == 0, trained_val.stderr
    final_val = float(re.search(r"final val MSE ([\d.]+)", trained_val.stdout).group(1))
    scores = {}
    for flip, shift in (("no-", "no-"), ("", "no-"), ("no-", "")):
        result = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--data-dir", DATA_DIR,
                            "--split", "val", f"--{flip}flip-average", f"--{shift}shift-average", "--pngs", 0,
                            "--out-dir", tmp_path / "pngs", "--tint-keep", 1, "--no-borrow-errors",
                            "--no-fade-unfamiliar")
        assert result.returncode == 0, result.stderr
        on = {"": "on", "no-": "off"}
        assert f"mirror average {on[flip]}, shift average {on[shift]}" in result.stdout
        scores[flip, shift] = float(re.search(r"val: \d+ images, MSE .* mean ([\d.]+)", result.stdout).group(1))
    # trained without test-time averaging: the training run's own figure without either, another with either
    assert scores["no-", "no-"] == pytest.approx(final_val, abs=0.01)
    assert scores["", "no-"] != pytest.approx(final_val, abs=0.01)
    assert scores["no-", ""] != pytest.approx(final_val, abs=0.01)
    no_val = run_script("test_colorize.py", "--checkpoint", trained[0] / "colorizer.pt", "--data-dir", DATA_DIR,
                        "--split", "val", "--out-dir", tmp_path / "none")
    assert no_val.returncode == 1 and "--split val:" in no_val.stderr and "--val-fraction" in no_val.stderr
    assert not (tmp_path / "none").exists()


def test_comparison_image_has_labelled_columns_from_gray_to_truth(trained, tmp_path):
    out, _ = trained
    classify = tmp_path / "classify"
    result = run_script("train_colorize.py", *TINY, "--epochs", 1, "--classify", "--out-dir", classify)
    assert result.returncode == 0, result.stderr
    png = tmp_path / "cmp" / "comparison.png"
    result = run_script("compare.py", out / "colorizer.pt", classify / "colorizer.pt", "--labels", "regression",
                        "classification", "--data-dir", DATA_DIR, "--out", png)
    assert result.returncode == 0, result.stderr
    image = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).astype(int)
    header = 24
    assert image.shape == (header + 2 * 128, 4 * 128, 3)  # the tiny split has 2 test faces
    body = image[header:]
    gray = body[:, :128]
    assert np.abs(gray[..., 0] - gray[..., 2]).mean() < 2  # first column: no color
    names = torch.load(out / "colorizer.pt", weights_only=True)["test_names"]
    truth = cv2.cvtColor(cv2.imread(str(DATA_DIR / names[0])), cv2.COLOR_BGR2RGB)
    assert np.abs(body[:128, 384:] - truth).mean() < 1.0  # last column: ground truth
    assert (image[:header] < 128).any()  # the labels are drawn


def test_comparison_shows_each_network_as_test_colorize_runs_it_or_its_own_colours(trained, tmp_path):
    out, _ = trained
    model, checkpoint = test_colorize.load_colorizer(out / "colorizer.pt", torch.device("cpu"))
    faces = data.load_faces(DATA_DIR)
    l_norm, _ = data.to_network(faces[0][data.select_by_name(faces[1], checkpoint["test_names"])])
    stages = test_colorize.default_stages(model, checkpoint, faces)
    columns = {}
    for stage, flags in (("default", []), ("own", ["--own-colours"])):
        compare.main([str(out / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--out", str(tmp_path / "c.png"),
                      *flags])
        columns[stage] = cv2.cvtColor(cv2.imread(str(tmp_path / "c.png")), cv2.COLOR_BGR2RGB)[24:, 128:256]
        with torch.no_grad():
            rgb = data.merge_lab(l_norm * data.L_SCALE, data.denormalize_ab(getattr(stages, stage)(l_norm)))
        expected = rgb.permute(0, 2, 3, 1).reshape(-1, 128, 3).numpy() * 255  # the faces one below the other
        assert np.abs(columns[stage] - expected).max() <= 1, stage
    assert (columns["default"] != columns["own"]).any()


def test_comparison_refuses_checkpoints_with_different_splits(trained, tmp_path):
    out, _ = trained
    other = tmp_path / "seed1"
    assert run_script("train_colorize.py", *TINY, "--epochs", 1, "--seed", 1, "--out-dir", other).returncode == 0
    result = run_script("compare.py", out / "colorizer.pt", other / "colorizer.pt", "--data-dir", DATA_DIR,
                        "--out", tmp_path / "c.png")
    assert result.returncode == 1 and "test split differs" in result.stderr
    assert not (tmp_path / "c.png").exists()


def test_fusion_network_trains_resumes_and_colorizes_any_photo(tmp_path):
    out = tmp_path / "fusion"
    flags = ["--data-dir", DATA_DIR, "--limit", 20, "--arch", "fusion", "--width", 4, "--flip-average",
             "--augment-factor", 2, "--out-dir", out]
    # a one-cycle run (the default schedule) is laid out over its --epochs: extending it is refused in one line,
    # and the run is kept as it was
    cycled = tmp_path / "cycled"
    assert run_script("train_colorize.py", *flags[:-1], cycled, "--epochs", 1).returncode == 0
    before = (cycled / "colorizer.pt").read_bytes()
    extended = run_script("train_colorize.py", *flags[:-1], cycled, "--epochs", 2, "--resume")
    assert extended.returncode == 1 and re.fullmatch(
        r"error: --resume: this run's one-cycle schedule spans 4 steps \(--epochs 1 --batch-size 10\), not 8; .*\n",
        extended.stderr)
    assert (cycled / "colorizer.pt").read_bytes() == before
    flags += ["--lr-schedule", "cosine", "--lr", "1e-3"]  # a per-epoch schedule can be extended
    trained = run_script("train_colorize.py", *flags, "--epochs", 1)
    assert trained.returncode == 0, trained.stderr
    assert "FusionColorizer {'width': 4, 'global_dim': 16" in trained.stdout
    resumed = run_script("train_colorize.py", *flags, "--epochs", 2, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    final = float(re.search(r"final test MSE ([\d.]+)", resumed.stdout).group(1))
    tested = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--data-dir", DATA_DIR,
                        "--pngs", 0, "--out-dir", tmp_path / "pngs", "--tint-keep", 1, "--no-borrow-errors",
                        "--no-fade-unfamiliar", "--no-shift-average")  # the network as training evaluates it
    assert tested.returncode == 0, tested.stderr
    assert float(re.search(r"test: 2 images, MSE .* mean ([\d.]+)", tested.stdout).group(1)) == \
        pytest.approx(final, abs=0.01)
    cv2.imwrite(str(tmp_path / "odd.png"), cv2.resize(cv2.imread(str(DATA_DIR / "image00100.jpg")), (333, 517)))
    photo = run_script("test_colorize.py", "--checkpoint", out / "colorizer.pt", "--input", tmp_path / "odd.png",
                       "--out-dir", tmp_path / "photo")
    assert photo.returncode == 0, photo.stderr
    assert cv2.imread(str(tmp_path / "photo" / "odd.png")).shape == (517, 333, 3)
    plain = run_script("train_colorize.py", "--data-dir", DATA_DIR, "--limit", 20, "--arch", "unet", "--epochs", 2,
                       "--resume", "--out-dir", out)  # not this checkpoint's kind
    assert plain.returncode == 1 and "not a Colorizer checkpoint (found FusionColorizer)" in plain.stderr


def test_several_checkpoints_are_averaged_and_must_share_their_split_except_for_photos(trained, tmp_path):
    out, _ = trained
    fusion, other_seed = tmp_path / "fusion", tmp_path / "seed1"
    for folder, flags in ((fusion, ["--arch", "fusion", "--width", 4, "--augment-factor", 2]),
                          (other_seed, [*TINY[4:], "--seed", 1])):
        result = run_script("train_colorize.py", "--data-dir", DATA_DIR, "--limit", 20, *flags, "--epochs", 1,
                            "--out-dir", folder)
        assert result.returncode == 0, result.stderr
    paths = [out / "colorizer.pt", fusion / "colorizer.pt"]
    result = run_script("test_colorize.py", "--checkpoint", *paths, "--data-dir", DATA_DIR, "--pngs", 0,
                        "--tint-keep", 1, "--no-borrow-errors", "--no-fade-unfamiliar")
    assert result.returncode == 0, result.stderr
    printed = float(re.search(r"test: 2 images, MSE .* mean ([\d.]+)", result.stdout).group(1))
    models = [test_colorize.load_colorizer(path, torch.device("cpu"))[0] for path in paths]
    rgb, names = data.load_faces(DATA_DIR)
    names_of_test = torch.load(paths[0], weights_only=True)["test_names"]
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, names_of_test)])
    with torch.no_grad():
        predictions = [model(l_norm) for model in models]
    singles = [data.ab_mse_raw(prediction, ab_norm).mean().item() for prediction in predictions]
    averaged = data.ab_mse_raw((predictions[0] + predictions[1]) / 2, ab_norm).mean().item()
    assert printed == pytest.approx(averaged, abs=0.01)
    assert averaged < sum(singles) / 2 and min(abs(averaged - single) for single in singles) > 0.01
    refused = run_script("test_colorize.py", "--checkpoint", paths[0], other_seed / "colorizer.pt", "--data-dir",
                         DATA_DIR, "--out-dir", tmp_path / "refused")
    assert refused.returncode == 1 and "split differs from" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "refused").exists()
    photo = run_script("test_colorize.py", "--checkpoint", paths[0], other_seed / "colorizer.pt", "--input",
                       DATA_DIR / names[0], "--out-dir", tmp_path / "photo")
    assert photo.returncode == 0, photo.stderr
    assert (tmp_path / "photo" / f"{Path(names[0]).stem}.png").is_file()


def test_exemplar_network_trains_evaluates_as_trained_and_colorizes_without_the_faces(tmp_path, capsys):
    out = tmp_path / "exemplar"
    trained = run_script("train_colorize.py", "--data-dir", DATA_DIR, "--limit", 30, "--arch", "fusion", "--width", 4,
                         "--augment-factor", 2, "--epochs", 1, "--exemplar", 2, "--exemplar-from", "person",
                         "--out-dir", out)
    assert trained.returncode == 0, trained.stderr
    assert "'exemplar': 2" in trained.stdout
    final = float(re.search(r"final test MSE ([\d.]+)", trained.stdout).group(1))
    # test_colorize.py gives the network the same exemplar as training's evaluation did: the same figure
    test_colorize.main(["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(DATA_DIR), "--pngs", "0",
                        "--tint-keep", "1", "--no-borrow-errors", "--no-fade-unfamiliar", "--no-shift-average"])
    printed = float(re.search(r"test: 3 images, MSE .* mean ([\d.]+)", capsys.readouterr().out).group(1))
    assert printed == pytest.approx(final, abs=0.01)
    # by hand: the mean a*b* map of the 2 nearest training photos as two more input channels
    model, checkpoint = test_colorize.load_colorizer(out / "colorizer.pt", torch.device("cpu"), shift_average=False)
    rgb, names = data.load_faces(DATA_DIR)
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, checkpoint["test_names"])])
    bank_l, bank_ab = data.to_network(rgb[data.select_by_name(names, checkpoint["train_names"])])
    nearest = torch.cdist(neighbours.describe(l_norm), neighbours.describe(bank_l)).topk(2, largest=False).indices
    with torch.no_grad():
        by_hand = model(torch.cat([l_norm, bank_ab[nearest].mean(1)], 1))
    assert printed == pytest.approx(data.ab_mse_raw(by_hand, ab_norm).mean().item(), abs=0.01)
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), cv2.imread(str(DATA_DIR / checkpoint["test_names"][0])))
    test_colorize.main(["--checkpoint", str(out / "colorizer.pt"), "--data-dir", str(tmp_path / "missing"),
                        "--input", str(face), "--out-dir", str(tmp_path / "blind")])
    assert re.search(r"^note: .* and has no exemplar input \(zeros\): .*: no such folder$", capsys.readouterr().err)
    shifted = test_colorize.load_colorizer(out / "colorizer.pt", torch.device("cpu"))[0]  # as colorizing runs it
    with torch.no_grad():
        blind = test_colorize.colorize(Exemplared(shifted),  # zero exemplar channels (tests/test_neighbours.py)
                                       torch.from_numpy(data.read_rgb(face)).permute(2, 0, 1), 256)
    colorized = torch.from_numpy(cv2.imread(str(tmp_path / "blind" / "face.png"))[..., ::-1].copy()).permute(2, 0, 1)
    assert (colorized.float() - blind * 255).abs().max() <= 1.0

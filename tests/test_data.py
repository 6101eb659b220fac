"""data.py: loading, split and color math, checked against independent readers and the CIE formula."""
import re
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import data
from conftest import DATA_DIR, write_faces


def test_dataset_loads_as_rgb_float_tensor(faces):
    rgb, names = faces
    assert rgb.shape == (750, 3, 128, 128) and rgb.dtype == torch.float32
    assert names == sorted(names) and names[0] == "image00000.jpg"
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0


def test_channel_order_is_rgb_against_pil(faces):
    rgb, names = faces
    for i in (0, 123, 749):
        pil = np.asarray(Image.open(DATA_DIR / names[i]).convert("RGB"), dtype=np.float32) / 255
        ours = rgb[i].permute(1, 2, 0).numpy()
        # different JPEG decoders differ by a few levels; swapped R and B would differ by far more
        assert np.abs(ours - pil).mean() < 0.01
        assert np.abs(ours[..., ::-1] - pil).mean() > 0.02


def test_split_is_90_10_disjoint_and_seeded():
    train, val, test = data.split_indices(750, seed=0)
    assert (len(train), len(val), len(test)) == (675, 0, 75)
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(750))
    again = data.split_indices(750, seed=0)
    assert torch.equal(test, again[2]) and torch.equal(train, again[0])
    assert not torch.equal(test, data.split_indices(750, seed=1)[2])


def test_split_with_validation_part():
    train, val, test = data.split_indices(750, seed=0, val_fraction=0.1)
    assert (len(train), len(val), len(test)) == (600, 75, 75)
    assert len(set(train.tolist()) | set(val.tolist()) | set(test.tolist())) == 750
    assert torch.equal(test, data.split_indices(750, seed=0)[2])


def _cie_lab(rgb):
    """Textbook sRGB (D65) -> CIE Lab for one color, in plain Python (independent of data.py)."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    m = [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    xyz = [sum(m[r][k] * lin[k] for k in range(3)) for r in range(3)]
    white = (0.95047, 1.0, 1.08883)

    def f(t):
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = (f(v / w) for v, w in zip(xyz, white))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


@pytest.mark.parametrize("rgb, expected", [
    ((1, 1, 1), (100, 0, 0)), ((0, 0, 0), (0, 0, 0)), ((1, 0, 0), (53.24, 80.09, 67.20)),
    ((0, 1, 0), (87.73, -86.18, 83.18)), ((0.5, 0.5, 0.5), (53.39, 0, 0)), ((0.2, 0.4, 0.7), None)])
def test_lab_matches_cie_formula(rgb, expected):
    lab = data.rgb_to_lab(torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)).flatten().tolist()
    reference = _cie_lab(rgb)
    assert lab == pytest.approx(reference, abs=0.5)
    if expected is not None:
        assert lab == pytest.approx(expected, abs=0.5)


def test_lab_round_trip(faces):
    rgb = torch.cat([faces[0][:20], torch.rand(4, 3, 32, 32).repeat(1, 1, 4, 4)])
    assert (data.lab_to_rgb(data.rgb_to_lab(rgb)) - rgb).abs().max() < 1e-3


def test_lab_is_float_lab_not_opencv_8bit(faces):
    lab = data.rgb_to_lab(faces[0][:50])
    assert 0 <= lab[:, 0].min() and lab[:, 0].max() <= 100
    assert lab[:, 1:].min() < 0  # 8-bit encoding would carry a +128 offset


def test_normalisation_round_trips():
    ab_raw = torch.randn(3, 2, 8, 8) * 40
    assert torch.allclose(data.denormalize_ab(data.normalize_ab(ab_raw)), ab_raw, atol=1e-5)
    assert data.normalize_l(torch.tensor([0.0, 100.0])).tolist() == [0.0, 1.0]
    corners = torch.tensor([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], dtype=torch.float32)
    extremes = data.rgb_to_lab(corners.view(8, 3, 1, 1))
    assert data.normalize_ab(extremes[:, 1:]).abs().max() <= 1.0


def test_ab_mse_raw_is_in_lab_units():
    pred, true = torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4, 4)
    pred[:, 0] = data.normalize_ab(torch.tensor(3.0))
    assert torch.allclose(data.ab_mse_raw(pred, true), torch.tensor([[9.0, 0.0], [9.0, 0.0]]))


# ---------------------------------------------------------------- bad input

def test_missing_folder_is_named():
    with pytest.raises(data.DataError, match="nowhere.*no such folder"):
        data.load_faces("nowhere")


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(data.DataError, match="no loadable"):
        data.load_faces(tmp_path)


def test_bad_files_are_skipped_with_a_warning(tmp_path):
    good = cv2.imread(str(DATA_DIR / "image00000.jpg"))
    cv2.imwrite(str(tmp_path / "a_good.png"), good)
    (tmp_path / "b_text.jpg").write_text("not an image")
    raw = (DATA_DIR / "image00001.jpg").read_bytes()
    (tmp_path / "c_truncated.jpg").write_bytes(raw[:len(raw) // 2])
    (tmp_path / "d_empty.png").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb, names = data.load_faces(tmp_path)
    assert names == ["a_good.png"] and rgb.shape == (1, 3, 128, 128)
    messages = " ".join(str(w.message) for w in caught)
    for bad in ("b_text.jpg", "c_truncated.jpg", "d_empty.png"):
        assert bad in messages


def test_gray_rgba_16bit_and_other_sizes_become_rgb_128(tmp_path):
    gray = np.full((128, 128), 200, np.uint8)
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., 2] = 255  # BGRA: pure red
    rgba[..., 3] = 10
    deep = np.full((256, 256, 3), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    rgb, names = data.load_faces(tmp_path)
    assert rgb.shape == (3, 3, 128, 128)
    by_name = dict(zip(names, rgb))
    assert torch.allclose(by_name["gray.png"], torch.full((3, 128, 128), 200 / 255))
    assert torch.allclose(by_name["rgba.png"][:, 64, 64], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(by_name["deep.png"], torch.ones(3, 128, 128))


def test_default_data_dir_falls_back_to_shared(monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_VARIABLE, raising=False)
    assert data.resolve_data_dir().resolve() in [p.resolve() for p in data.DEFAULT_DATA_DIRS]


def test_the_environment_names_the_data_dir_below_the_flag_and_a_missing_one_is_an_error_not_a_fallback(
        monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(tmp_path))
    assert data.resolve_data_dir() == tmp_path
    assert data.resolve_data_dir(DATA_DIR) == DATA_DIR
    monkeypatch.setenv(data.DATA_DIR_VARIABLE, str(tmp_path / "gone"))
    gone = re.escape(str(tmp_path / "gone"))
    with pytest.raises(data.DataError, match=f"^FACECOLOR_DATA_DIR {gone}: no such folder$"):
        data.resolve_data_dir()


def test_scale_detail_scales_what_is_around_each_tint_and_keeps_the_tint():
    ab_norm = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    for keep in (0.5, torch.tensor([1.0, 0.25, 0.0])):
        out = data.scale_detail(ab_norm, keep)
        assert torch.allclose(data.tint(out), data.tint(ab_norm), atol=1e-6)
        scale = keep.reshape(-1, 1, 1, 1) if torch.is_tensor(keep) else keep
        assert torch.allclose(out - data.tint(out), scale * (ab_norm - data.tint(ab_norm)), atol=1e-6)
    assert torch.allclose(data.scale_detail(ab_norm, torch.tensor([1.0, 1.0, 1.0])), ab_norm, atol=1e-6)


def test_select_by_name_reports_missing_names():
    assert data.select_by_name(["a", "b", "c"], ["c", "a"]).tolist() == [2, 0]
    with pytest.raises(data.DataError, match="zzz"):
        data.select_by_name(["a"], ["zzz"])


def test_pull_tint_moves_each_images_mean_color_toward_the_target_and_keeps_the_detail():
    ab_norm = torch.randn(3, 2, 8, 8) * 0.2 + torch.tensor([[0.1, -0.3], [0.0, 0.2], [-0.2, 0.1]])[..., None, None]
    toward = torch.tensor([0.05, 0.2])
    assert torch.equal(data.pull_tint(ab_norm, toward, 1.0), ab_norm)
    tint = ab_norm.mean((2, 3))
    for keep in (0.0, 0.25):
        pulled = data.pull_tint(ab_norm, toward, keep)
        assert torch.allclose(pulled.mean((2, 3)) - toward, keep * (tint - toward), atol=1e-6)
        assert torch.allclose(pulled - pulled.mean((2, 3), keepdim=True), ab_norm - tint[..., None, None],
                              atol=1e-6)


def test_psnr_matches_its_definition():
    truth = torch.full((2, 3, 8, 8), 0.5)
    noisy = truth.clone()
    noisy[0] += 0.1  # MSE 0.01 -> 20 dB
    noisy[1, :, :4] += 0.2  # half the pixels off by 0.2: MSE 0.02
    assert data.psnr(noisy, truth).tolist() == pytest.approx([20.0, 10 * np.log10(1 / 0.02)], abs=1e-4)


def test_colorfulness_matches_hasler_susstrunk():
    rng = np.random.default_rng(0)
    rgb = rng.random((2, 3, 16, 16)).astype(np.float32)
    rgb[1] = [[[0.8]], [[0.2]], [[0.1]]]  # one flat color: no spread, only the mean term
    for image, ours in zip(rgb, data.colorfulness(torch.from_numpy(rgb)).tolist()):
        r, g, b = image * 255
        rg, yb = r - g, 0.5 * (r + g) - b
        expected = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
        assert ours == pytest.approx(expected, rel=1e-4)
    assert data.colorfulness(torch.full((1, 3, 4, 4), 0.3)).item() == pytest.approx(0.0, abs=1e-4)


def test_image_scores_of_a_perfect_prediction(faces):
    l_norm, ab_norm = data.to_network(faces[0][:4])
    scores = data.image_scores(l_norm, ab_norm, ab_norm)
    assert scores["mse_a"].max() == 0 and scores["psnr"].min() > 60
    assert torch.equal(scores["colorfulness"], scores["colorfulness_true"])
    gray = data.image_scores(l_norm, torch.zeros_like(ab_norm), ab_norm)
    assert gray["colorfulness"].max() < 1.5 and gray["psnr"].max() < 40


def test_ab_bins_cover_every_pixel_and_classes_point_to_the_nearest_centre(faces):
    _, ab_norm = data.to_network(faces[0][:20])
    bins = data.ab_bins(ab_norm, 10)
    assert len(bins) == len({tuple(b) for b in bins}) and all(a % 10 == 0 and b % 10 == 0 for a, b in bins)
    classes = data.ab_to_class(ab_norm, bins, 10)
    assert classes.shape == (20, 128, 128) and classes.min() >= 0
    centres = torch.tensor(bins, dtype=torch.float32)[classes].permute(0, 3, 1, 2)
    assert (centres - data.denormalize_ab(ab_norm)).abs().max() <= 5 + 1e-4
    outside = data.ab_to_class(data.normalize_ab(torch.full((1, 2, 1, 1), 100.0)), bins, 10)
    assert outside.item() == -1


def test_annealed_mean_between_mode_and_mean():
    bins_norm = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, -0.5]])
    logits = torch.log(torch.tensor([0.2, 0.5, 0.3])).view(1, 3, 1, 1)
    mean = data.annealed_mean(logits, bins_norm, 1.0).flatten()
    assert mean.tolist() == pytest.approx([0.25, -0.15])
    sharp = data.annealed_mean(logits, bins_norm, 0.01).flatten()
    assert sharp.tolist() == pytest.approx([0.5, 0.0], abs=1e-3)
    middle = data.annealed_mean(logits, bins_norm, 0.38).flatten()
    assert 0.25 < middle[0] < 0.5


def test_identity_table_holds_50_people_of_15_photos_covering_the_dataset(faces):
    identities = data.read_identities()
    assert sorted(identities) == faces[1]
    counts = {}
    for person in identities.values():
        counts[person] = counts.get(person, 0) + 1
    assert len(counts) == 50 and set(counts.values()) == {15}


@pytest.mark.parametrize("val_fraction", [0.0, 0.1])
def test_split_by_person_keeps_each_person_in_one_part(faces, val_fraction):
    people = data.people_of(faces[1], DATA_DIR)
    train, val, test = data.split_indices(750, 0, val_fraction=val_fraction, groups=people)
    parts = [{people[i] for i in part.tolist()} for part in (train, val, test)]
    assert (len(parts[2]), len(test)) == (5, 75)
    assert (len(parts[1]), len(val)) == ((5, 75) if val_fraction else (0, 0))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(train.tolist() + val.tolist() + test.tolist()) == list(range(750))
    # the tested people depend on the seed only, not on the validation part
    assert torch.equal(test, data.split_indices(750, 0, groups=people)[2])
    assert parts[2] != {people[i] for i in data.split_indices(750, 1, groups=people)[2].tolist()}


def test_person_folds_test_every_person_once_and_validate_the_next_fold(faces):
    people = data.people_of(faces[1], DATA_DIR)
    tested = []
    for fold in range(data.FOLDS):
        train, val, test = data.split_indices(750, 3, val_fraction=0.1, groups=people, fold=fold)
        parts = [{people[i] for i in part.tolist()} for part in (train, val, test)]
        assert [len(part) for part in parts] == [40, 5, 5]
        assert sorted(train.tolist() + val.tolist() + test.tolist()) == list(range(750))
        # --seed does not move a fold; validation is the next fold's people
        assert torch.equal(test, data.split_indices(750, 0, groups=people, fold=fold)[2])
        assert parts[1] == {people[i] for i in data.split_indices(750, 0, groups=people,
                                                                   fold=(fold + 1) % data.FOLDS)[2].tolist()}
        tested.append(parts[2])
    assert set().union(*tested) == set(people) and sum(map(len, tested)) == 50  # each person tested exactly once
    assert torch.equal(data.split_indices(750, 0, groups=people, fold=0)[2],
                       data.split_indices(750, 0, groups=people)[2])  # fold 0 is seed 0's person split
    image_folds = [set(data.split_indices(750, 1, fold=fold)[2].tolist()) for fold in range(data.FOLDS)]
    assert sorted(i for fold in image_folds for i in fold) == list(range(750))


def test_identity_table_and_data_folder_must_list_the_same_photos(tmp_path):
    folder = write_faces(tmp_path / "faces", 3)
    names = [p.name for p in data.list_images(folder)]
    table = tmp_path / "table.csv"
    table.write_text("file,person\n" + "".join(f"{name},p{i}\n" for i, name in enumerate(names)))
    assert data.people_of(names, folder, table) == ["p0", "p1", "p2"]
    table.write_text("file,person\n" + f"{names[0]},p0\n{names[1]},p1\nelsewhere.jpg,p9\n")
    with pytest.raises(data.DataError, match=f"1 photo\\(s\\) of {folder} missing from {table}: {names[2]}$"):
        data.people_of(names, folder, table)
    table.write_text("file,person\n" + "".join(f"{name},p{i}\n" for i, name in enumerate(names)) + "gone.jpg,p9\n")
    with pytest.raises(data.DataError, match=f"1 photo\\(s\\) named in {table} missing from {folder}: gone.jpg$"):
        data.people_of(names, folder, table)
    table.write_text("name;who\n")
    with pytest.raises(data.DataError, match="not an identity table"):
        data.people_of(names, folder, table)

"""choose_fade.py: its figures are those of the path test_colorize.py runs, and its check of the test splits."""
import pytest
import torch

import choose_fade
import data
import neighbours
import test_colorize
from conftest import DATA_DIR
from models import FadedUnfamiliar, FusionColorizer


def test_scored_fading_is_the_one_test_colorize_runs_on_a_photo(faces, tmp_path):
    model = FusionColorizer(width=2).eval()
    bank = neighbours.describe(data.to_network(faces[0][:30])[0])
    photo = torch.nn.functional.interpolate(faces[0][40:41], size=(200, 150), mode="bilinear")[0]
    photo[:, :60] = torch.tensor([0.2, 0.4, 0.9])[:, None, None]  # a blue sky, unlike every face
    test_colorize.write_png(tmp_path / "photo.png", photo)
    parts, _ = choose_fade.outside_photos(tmp_path, model.side_multiple)
    scored = choose_fade.Scored.of(model, bank, parts)
    rgb = torch.from_numpy(data.read_rgb(tmp_path / "photo.png")).permute(2, 0, 1)
    for fade in (None, (0.2, 0.5), (0.5, 0.7)):
        wrapped = model if fade is None else FadedUnfamiliar(model, bank, *fade).eval()
        _, ab_norm = test_colorize.predict_lab(wrapped, rgb, 256)
        assert torch.allclose(scored.faded(fade)[0], ab_norm, atol=1e-6), fade
        assert scored.mse(fade)[0][0] == pytest.approx(test_colorize.score_photo(rgb, ab_norm)[0], abs=1e-3)
    assert scored.mse((0.2, 0.5)) != scored.mse(None)  # the sky fades


def test_faded_test_photos_counts_the_test_photos_that_fade_per_split_and_seed(faces):
    rgb, names = faces
    rows = choose_fade.faded_test_photos(rgb, names, (50.0, 60.0), DATA_DIR, seeds=(0,))
    assert rows == ["| image | 0 | 0 of 75 | 0.0000 |", "| person | 0 | 0 of 75 | 0.0000 |"]
    rows = choose_fade.faded_test_photos(rgb, names, (0.0, 0.01), DATA_DIR, seeds=(1,))
    assert [row.split(" | ")[2] for row in rows] == ["75 of 75", "75 of 75"]


def test_pooled_photos_keep_their_own_networks_and_training_photos(faces):
    l_norm, ab_norm = data.to_network(faces[0][:40])
    scored = [choose_fade.Scored.of(FusionColorizer(width=2).eval(), neighbours.describe(l_norm[bank]),
                                    [(l_norm[photos], ab_norm[photos])])
              for bank, photos in ((slice(0, 10), slice(30, 35)), (slice(10, 20), slice(35, 40)))]
    pooled = choose_fade.Scored.pooled(scored)
    for fade in (None, (0.3, 0.5)):
        assert pooled.mse(fade) == scored[0].mse(fade) + scored[1].mse(fade)
    # the fade is measured against each network's own training photos: the same photos against one bank differ
    swapped = choose_fade.Scored([(*part[:3], scored[0].parts[0][3]) for part in pooled.parts])
    assert swapped.mse((0.3, 0.5))[1] != pooled.mse((0.3, 0.5))[1]

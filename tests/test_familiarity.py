"""familiarity.py: the descriptor, its fit on training photos, and the gate that TintPulled applies with it."""
import pytest
import torch
import torch.nn.functional as F

import data
import familiarity
from models import FusionColorizer, TintPulled


def scenes(count, seed):
    """`count` smooth random scenes (1 x 32 x 32, l_norm): each stands for one person's sitting."""
    coarse = torch.rand(count, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(32, 32), mode="bilinear")


def photos(scenes, each, seed, noise=0.03):
    """`each` photos of every scene (pixel noise on it, seeded), and the person of each photo."""
    l_norm = scenes.repeat_interleave(each, 0)
    l_norm = (l_norm + noise * torch.randn(l_norm.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)
    return l_norm, [f"p{i // each}" for i in range(len(l_norm))]


def test_descriptor_is_the_square_root_of_each_cells_level_histogram():
    l_norm = torch.rand(3, 1, 12, 18, generator=torch.Generator().manual_seed(0))
    described = familiarity.describe(l_norm).view(3, familiarity.CELLS ** 2, familiarity.LEVELS)
    assert torch.allclose(described.pow(2).sum(2), torch.ones(3, familiarity.CELLS ** 2))
    top_left = (l_norm[0, 0, :4, :6] * familiarity.LEVELS).long().flatten()
    assert torch.allclose(described[0, 0].pow(2), torch.bincount(top_left, minlength=familiarity.LEVELS) / 24)
    flat = familiarity.describe(torch.full((1, 1, 9, 9), 0.5)).view(familiarity.CELLS ** 2, familiarity.LEVELS)
    assert torch.equal(flat[:, familiarity.LEVELS // 2], torch.ones(familiarity.CELLS ** 2))
    assert torch.allclose(familiarity.describe(F.interpolate(l_norm, scale_factor=2, mode="nearest")),
                          familiarity.describe(l_norm))


def test_the_fit_tells_a_new_photo_of_a_sitting_seen_from_a_sitting_never_seen():
    seen_scenes = scenes(8, seed=1)
    train_l, people = photos(seen_scenes, 5, seed=10)
    gate = familiarity.fit(train_l, people)
    assert gate["logistic"][1] < 0  # farther from every training photo: less likely seen
    again, _ = photos(seen_scenes, 1, seed=11)
    strangers, _ = photos(scenes(8, seed=2), 1, seed=12)
    assert familiarity.seen_probability(again, **gate).min() > 0.8
    assert familiarity.seen_probability(strangers, **gate).max() < 0.2
    with pytest.raises(ValueError, match="at least two people"):
        familiarity.fit(train_l[:5], people[:5])


def test_gated_pull_keeps_each_photos_tint_in_proportion_to_how_seen_it_looks():
    torch.manual_seed(0)
    seen_scenes = scenes(6, seed=3)
    train_l, people = photos(seen_scenes, 4, seed=30)
    gate = familiarity.fit(train_l, people)
    model = FusionColorizer(width=2, global_size=32).eval()
    l_norm = torch.cat([photos(seen_scenes[:2], 1, seed=31)[0], photos(scenes(2, seed=4), 1, seed=32)[0]])
    toward, keep = torch.tensor([0.05, 0.2]), 0.1
    with torch.no_grad():
        ab_norm = model(l_norm)
        gated = TintPulled(model, toward, keep, gate).eval()(l_norm)
    seen = familiarity.seen_probability(l_norm, **gate)
    assert seen[:2].min() > 0.8 and seen[2:].max() < 0.2
    for i, p in enumerate(seen):
        expected = data.pull_tint(ab_norm[i:i + 1], toward, keep + (1 - keep) * p.item())
        assert torch.allclose(gated[i:i + 1], expected, atol=1e-6)

"""neighbours.py: the descriptor and the nearest training photos, whose true tint TintPulled borrows."""
import torch
import torch.nn.functional as F

import neighbours
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
    described = neighbours.describe(l_norm).view(3, neighbours.CELLS ** 2, neighbours.LEVELS)
    assert torch.allclose(described.pow(2).sum(2), torch.ones(3, neighbours.CELLS ** 2))
    top_left = (l_norm[0, 0, :4, :6] * neighbours.LEVELS).long().flatten()
    assert torch.allclose(described[0, 0].pow(2), torch.bincount(top_left, minlength=neighbours.LEVELS) / 24)
    flat = neighbours.describe(torch.full((1, 1, 9, 9), 0.5)).view(neighbours.CELLS ** 2, neighbours.LEVELS)
    assert torch.equal(flat[:, neighbours.LEVELS // 2], torch.ones(neighbours.CELLS ** 2))
    assert torch.allclose(neighbours.describe(F.interpolate(l_norm, scale_factor=2, mode="nearest")),
                          neighbours.describe(l_norm))


def test_a_new_photo_of_a_sitting_finds_that_sittings_photos_first():
    seen_scenes = scenes(8, seed=1)
    train_l, people = photos(seen_scenes, 5, seed=10)
    bank = neighbours.describe(train_l)
    again, again_people = photos(seen_scenes, 1, seed=11)
    found = neighbours.nearest(again, bank, 5)
    assert found.shape == (8, 5)
    assert all(people[j] == person for row, person in zip(found.tolist(), again_people) for j in row)
    distance = torch.cdist(neighbours.describe(again), bank).gather(1, found)
    assert (distance[:, 1:] >= distance[:, :-1]).all()  # nearest first
    assert neighbours.nearest(again, bank, 100).shape == (8, 40)  # at most the whole bank


def test_tint_pulled_borrows_the_mean_true_tint_of_the_nearest_training_photos():
    torch.manual_seed(0)
    train_l, _ = photos(scenes(6, seed=3), 4, seed=30)
    bank, bank_tints = neighbours.describe(train_l), torch.randn(24, 2) / 4
    model = FusionColorizer(width=2, global_size=32).eval()
    l_norm = torch.cat([photos(scenes(6, seed=3)[:2], 1, seed=31)[0], photos(scenes(2, seed=4), 1, seed=32)[0]])
    with torch.no_grad():
        ab_norm = model(l_norm)
        pulled = {(k, keep): TintPulled(model, bank, bank_tints, k, keep).eval()(l_norm)
                  for k in (1, 3, 24) for keep in (0.0, 0.25, 1.0)}
    order = torch.cdist(neighbours.describe(l_norm), bank).argsort(1)
    for (k, keep), out in pulled.items():
        borrowed = bank_tints[order[:, :k]].mean(1)
        assert torch.allclose(out.mean((2, 3)), borrowed + keep * (ab_norm.mean((2, 3)) - borrowed), atol=1e-5)
        assert torch.allclose(out - out.mean((2, 3), keepdim=True), ab_norm - ab_norm.mean((2, 3), keepdim=True),
                              atol=1e-5)  # the detail is the network's
    assert torch.allclose(pulled[24, 0.0].mean((2, 3)), bank_tints.mean(0).expand(4, 2), atol=1e-5)

"""neighbours.py: the descriptor, the nearest training photos and how much each counts, whose true tint and the
network's error on them Borrowed lends a prediction, and whose colour maps an exemplar network is given
(Exemplared, and bench.py's count of its cost), and each region's distance to them, by which FadedUnfamiliar fades
its colour."""
import pytest
import torch
import torch.nn.functional as F

import neighbours
from models import Borrowed, FadedUnfamiliar, FusionColorizer


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


def test_weights_favour_the_nearest_relative_to_the_nearest_and_flatten_with_temperature():
    bank_l, people = photos(scenes(4, seed=3), each=3, seed=4)
    bank = neighbours.describe(bank_l)
    query = bank_l[:2] + 0.01 * torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(9))
    index, weights = neighbours.weighted(query, bank, 5, 0.1)
    distance = torch.cdist(neighbours.describe(query), bank)
    assert torch.equal(index, distance.topk(5, largest=False).indices)
    nearest = distance.gather(1, index)
    assert torch.allclose(weights, torch.softmax(-(nearest / nearest[:, :1]) / 0.1, 1), atol=1e-6)
    assert torch.allclose(weights.sum(1), torch.ones(2)) and (weights[:, 1:] <= weights[:, :-1]).all()
    assert torch.allclose(neighbours.weighted(query, bank, 5, 1e6)[1], torch.full((2, 5), 0.2), atol=1e-4)
    # a training photo itself (distance 0) takes all the weight, without dividing by zero
    own_index, own_weights = neighbours.weighted(bank_l[:1], bank, 3, 0.1)
    assert own_index[0, 0] == 0 and own_weights[0, 0] == pytest.approx(1.0)
    assert neighbours.weighted(query, bank, 100, 0.1)[0].shape == (2, len(bank))  # at most the whole bank


def test_borrowed_lends_the_weighted_error_and_true_tint_of_the_nearest_training_photos():
    torch.manual_seed(0)
    train_l, _ = photos(scenes(6, seed=3), 4, seed=30)
    bank, bank_tints = neighbours.describe(train_l), torch.randn(24, 2) / 4
    bank_errors = torch.randn(24, 2, 4, 4) / 4
    model = FusionColorizer(width=2, global_size=32).eval()
    l_norm = torch.cat([photos(scenes(6, seed=3)[:2], 1, seed=31)[0], photos(scenes(2, seed=4), 1, seed=32)[0]])
    with torch.no_grad():
        ab_norm = model(l_norm)
        for k, keep, temperature in ((1, 0.0, 0.1), (3, 0.25, 0.1), (24, 0.0, 1e6), (5, 1.0, 0.5)):
            index, weights = neighbours.weighted(l_norm, bank, k, temperature)
            borrowed = (weights[..., None] * bank_tints[index]).sum(1)
            out = Borrowed(model, bank, bank_tints, k, keep, temperature).eval()(l_norm)
            assert torch.allclose(out.mean((2, 3)), borrowed + keep * (ab_norm.mean((2, 3)) - borrowed), atol=1e-5)
            assert torch.allclose(out - out.mean((2, 3), keepdim=True), ab_norm - ab_norm.mean((2, 3), keepdim=True),
                                  atol=1e-5)  # without errors the detail is the network's
            error = F.interpolate((weights[..., None, None, None] * bank_errors[index]).sum(1), size=(32, 32),
                                  mode="bilinear", align_corners=False)
            corrected = Borrowed(model, bank, bank_tints, k, keep, temperature, bank_errors).eval()(l_norm)
            expected = ab_norm + error
            tint = expected.mean((2, 3), keepdim=True)
            assert torch.allclose(corrected, expected - (1 - keep) * (tint - borrowed[..., None, None]), atol=1e-5)
        plain = Borrowed(model, bank, bank_tints, 24, 0.0, 1e6).eval()(l_norm)
    assert torch.allclose(plain.mean((2, 3)), bank_tints.mean(0).expand(4, 2), atol=1e-4)  # all, alike: the mean


def test_unfamiliar_is_the_linear_share_between_a_seen_sitting_and_none():
    dark, light = torch.full((1, 1, 32, 32), 0.2), torch.full((1, 1, 32, 32), 0.8)
    bank = neighbours.describe(dark)
    far = 18 ** 0.5  # each of the 9 cells' one-level histograms is sqrt(2) from the other's
    nearest = {photo: neighbours.nearest_distances(l_norm, bank, 1)[0][:, 0] for photo, l_norm in (("dark", dark),
                                                                                                    ("light", light))}
    assert neighbours.unfamiliar(nearest["dark"], 0.5, 1).item() == 0  # a training photo itself
    assert neighbours.unfamiliar(nearest["light"], 0.5, 1).item() == 1
    assert neighbours.unfamiliar(nearest["light"], far - 1, far + 1).item() == pytest.approx(0.5, abs=1e-5)
    assert neighbours.unfamiliar(nearest["light"], far - 3, far + 1).item() == pytest.approx(0.75, abs=1e-5)
    assert neighbours.unfamiliar(nearest["light"], far + 0.1, far + 1).item() == 0


def test_a_face_never_seen_keeps_its_share_of_its_own_tint_and_borrows_no_errors():
    model = FusionColorizer(width=2, global_size=32).eval()
    dark, light = torch.full((1, 1, 32, 32), 0.2), torch.full((1, 1, 32, 32), 0.8)
    both = torch.cat([dark, light])  # a photo of the bank's one sitting, and one far from it
    bank, bank_tints = neighbours.describe(dark), torch.tensor([[0.3, -0.2]])
    bank_errors = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(7)) / 4
    alike = Borrowed(model, bank, bank_tints, 1, 0.0, 0.1, bank_errors).eval()
    gated = Borrowed(model, bank, bank_tints, 1, 0.0, 0.1, bank_errors, unfamiliar=(1, 1.2, 0.75)).eval()
    with torch.no_grad():
        own, out = model(both), gated(both)
        assert torch.allclose(out[:1], alike(dark), atol=1e-6)  # the seen sitting borrows as before
        assert not torch.allclose(out[1:], alike(light), atol=1e-3)
        tint = own[1:].mean((2, 3), keepdim=True)
        expected = own[1:] + 0.25 * (bank_tints.reshape(1, 2, 1, 1) - tint)  # the detail is its own: no errors
        assert torch.allclose(out[1:], expected, atol=1e-5)
        own_tint = Borrowed(model, bank, bank_tints, 1, 1.0, 0.1, bank_errors, unfamiliar=(1, 1.2, 0.75)).eval()
        assert torch.allclose(own_tint(light), own[1:], atol=1e-6)  # --tint-keep 1 keeps more: its own colours


def test_each_cell_finds_the_nearest_same_cell_of_any_training_photo():
    bank_l = scenes(5, seed=5)
    bank = neighbours.describe(bank_l)
    mixed = bank_l[:1].clone()
    mixed[..., 11:, :] = bank_l[1, :, 11:, :]  # the top row of cells from photo 0, the rest from photo 1
    assert torch.allclose(neighbours.cell_distances(mixed, bank), torch.zeros(1, 3, 3), atol=1e-6)
    query = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(6))
    cells = neighbours.describe(query).view(4, 9, neighbours.LEVELS)
    brute = torch.stack([torch.stack([(cells[i, c] - bank.view(5, 9, -1)[:, c]).norm(dim=1).min() for c in range(9)])
                         for i in range(4)]).view(4, 3, 3)
    assert torch.allclose(neighbours.cell_distances(query, bank), brute, atol=1e-5)


def test_unfamiliar_regions_fade_toward_no_colour_by_their_distance():
    model = FusionColorizer(width=2, global_size=32).eval()
    dark, light = torch.full((1, 1, 32, 32), 0.2), torch.full((1, 1, 32, 32), 0.8)
    bank = neighbours.describe(dark)  # every cell of `light` is sqrt(2) from it: two disjoint one-level histograms
    half_lit = torch.cat([light[..., :16], dark[..., 16:]], dim=3)
    with torch.no_grad():
        assert torch.allclose(FadedUnfamiliar(model, bank, 1.5, 2)(light), model(light), atol=1e-6)  # within FULL
        assert torch.allclose(FadedUnfamiliar(model, bank, 1, 2)(light), model(light) * (2 - 2 ** 0.5), atol=1e-5)
        assert torch.equal(FadedUnfamiliar(model, bank, 0.5, 1)(light), torch.zeros_like(model(light)))
        assert torch.allclose(FadedUnfamiliar(model, bank, 0.5, 1)(dark), model(dark), atol=1e-6)  # a training photo
        kept = neighbours.kept_fraction(half_lit, bank, 0.5, 1)
        assert (kept[..., :5] == 0).all() and (kept[..., -5:] == 1).all()  # the lit third fades, the dark keeps
        assert (kept[..., 1:] >= kept[..., :-1]).all()  # and smoothly between


def test_exemplar_is_the_mean_map_of_the_nearest_allowed_photos():
    bank_l, people = photos(scenes(4, seed=3), each=3, seed=4)
    bank_ab = torch.randn(len(bank_l), 2, 16, 16, generator=torch.Generator().manual_seed(5))
    bank = neighbours.describe(bank_l)
    # a photo of the bank finds itself and its sitting first: without exclusion its own map is part of the mean
    own = neighbours.exemplar(bank_l[:1], bank, bank_ab, 3)
    assert own.shape == (1, 2, 32, 32)  # resized to the photo's side
    resize = lambda maps: F.interpolate(maps, size=(32, 32), mode="bilinear", align_corners=False)  # noqa: E731
    assert torch.allclose(own, resize(bank_ab[:3].mean(0, keepdim=True)), atol=1e-6)
    # never its own person: the 3 nearest of the other people, as a brute-force search finds them
    same_person = torch.tensor([[p == q for q in people] for p in people])
    others = neighbours.exemplar(bank_l, bank, bank_ab, 3, excluded=same_person, chunk=5)
    distance = torch.cdist(bank, bank)
    for i in range(len(bank_l)):
        allowed = [j for j in distance[i].argsort().tolist() if people[j] != people[i]][:3]
        assert torch.allclose(others[i], resize(bank_ab[allowed].mean(0, keepdim=True))[0], atol=1e-6)


def test_exemplared_network_gets_the_maps_or_zeros_without_the_faces():
    from models import Exemplared
    torch.manual_seed(0)
    net = FusionColorizer(width=2, exemplar=2)  # batch statistics: an untrained network's eval mode hides its input
    bank_l, _ = photos(scenes(3, seed=6), each=2, seed=7)
    bank_ab = torch.randn(len(bank_l), 2, 32, 32, generator=torch.Generator().manual_seed(8))
    l_norm = bank_l[:2]
    with torch.no_grad():
        given = Exemplared(net, neighbours.describe(bank_l), bank_ab)(l_norm)
        expected = net(torch.cat([l_norm, neighbours.exemplar(l_norm, neighbours.describe(bank_l), bank_ab, 2)], 1))
        blind = Exemplared(net)(l_norm)
        zeros = net(torch.cat([l_norm, torch.zeros(2, 2, 32, 32)], 1))
    assert torch.equal(given, expected) and torch.equal(blind, zeros)
    assert not torch.allclose(given, blind)  # the maps reach the output


def test_bench_counts_and_feeds_the_exemplar_networks_two_more_input_channels():
    import bench
    import train_colorize
    # forward and backward of the first convolution (3x3, 16 maps at 64x64) on 2 more channels; no input gradient
    extra = 2 * (2 * 64 * 64 * 16 * 9 * 2) / 1e9
    assert bench.gflop_per_image("--exemplar 5") - bench.gflop_per_image("") == pytest.approx(extra, rel=1e-6)
    prepared = {"train_l": torch.rand(4, 1, 8, 8), "train_ab": torch.rand(4, 2, 8, 8)}
    given = bench.with_input_channels(prepared, train_colorize.parse_args(["--exemplar", "5"]), 3)
    assert given["train_l"].shape == (3, 3, 8, 8) and given["train_ab"].shape == (3, 2, 8, 8)
    assert bench.with_input_channels(prepared, train_colorize.parse_args([]), 3)["train_l"].shape == (3, 1, 8, 8)

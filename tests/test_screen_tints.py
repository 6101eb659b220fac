"""screen_tints.py: its estimators compute what they say."""
import torch

import data
import experiments
import models
import neighbours
import screen_tints
import test_colorize


def test_ridge_recovers_a_linear_map_and_regions_move_to_their_targets():
    x = torch.rand(200, 6, generator=torch.Generator().manual_seed(0))
    w = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(screen_tints.ridge_tints(x, x @ w + 0.5, x[:5], 1e-6), x[:5] @ w + 0.5, atol=1e-4)
    ab_norm = torch.randn(2, 2, 30, 30, generator=torch.Generator().manual_seed(2))
    same = torch.nn.functional.adaptive_avg_pool2d(ab_norm, neighbours.CELLS)
    assert torch.allclose(screen_tints.region_shift(ab_norm, same), ab_norm, atol=1e-6)
    shifted = screen_tints.region_shift(ab_norm, same + 0.25)  # one shift everywhere: the detail is kept
    assert torch.allclose(shifted, ab_norm + 0.25, atol=1e-6)


class Fixed(torch.nn.Module):
    """A "network" whose predictions are given: the screening's own predictions, for models.Borrowed."""
    side_multiple = 1

    def __init__(self, ab_norm):
        super().__init__()
        self.ab_norm = ab_norm

    def forward(self, l_norm):
        return self.ab_norm


def test_estimates_replace_the_tint_as_named(faces):
    rgb = faces[0][:40]
    train_l, train_ab = data.to_network(rgb[:30])
    val_l, val_ab = data.to_network(rgb[30:])
    own = torch.randn(10, 2, 128, 128, generator=torch.Generator().manual_seed(3)) / 10
    train_own = torch.randn(30, 2, 128, 128, generator=torch.Generator().manual_seed(4)) / 10
    out = screen_tints.estimates(own, val_ab, train_l, train_ab, val_l, 0.1, train_own)
    assert torch.equal(out["the network's own tint"], own)
    assert torch.allclose(data.tint(out["the true tint (bound)"]), data.tint(val_ab), atol=1e-6)
    nearest = neighbours.nearest(val_l, neighbours.describe(train_l), 5)
    assert torch.allclose(data.tint(out["mean of the 5 nearest (the default before)"]).flatten(1),
                          data.tint(train_ab).flatten(1)[nearest].mean(1), atol=1e-6)
    index, weights = neighbours.weighted(val_l, neighbours.describe(train_l), 10, 0.1)
    borrowed = (weights[..., None] * data.tint(train_ab).flatten(1)[index]).sum(1)
    name = "the 10 nearest, weighted relative to the nearest, T = 0.1 (the default's tint)"
    assert torch.allclose(data.tint(out[name]).flatten(1), borrowed, atol=1e-6)
    # the default itself: what models.Borrowed computes from the same bank, with the network's errors on it
    bank_errors = torch.nn.functional.adaptive_avg_pool2d(train_ab - train_own, 8)
    lent = models.Borrowed(Fixed(own), neighbours.describe(train_l), data.tint(train_ab), 10, 0.0, 0.1, bank_errors)
    before = "the default's tint + the network's error on them, 8x8 (the default for a seen sitting)"
    assert torch.allclose(out[before], lent(val_l), atol=1e-5)
    for name, pred in out.items():  # each whole-photo estimate keeps the network's detail around its tint
        if not name.startswith("per region") and "error" not in name:
            assert torch.allclose(pred - data.tint(pred), own - data.tint(own), atol=1e-5), name


def test_crossval_screen_borrows_around_the_networks_predictions_on_people_no_test_split_holds(faces):
    rgb, names = faces
    people = data.people_of(names)
    wanted = experiments.validation_people(names)
    tested = [{people[i] for i in data.split_indices(len(names), seed, groups=people)[2]} for seed in (0, 1, 2)]
    assert all(len(t) == 5 and not t & wanted for t in tested) and wanted | set().union(*tested) == set(people)
    # each row of the grid borrows around the predictions made once, as around the network itself
    l_norm, ab_norm = data.to_network(rgb[:24])
    model = models.FusionColorizer(width=2).eval()
    bank = neighbours.describe(l_norm[:20])
    with torch.no_grad():
        given = screen_tints.Predicted(model(l_norm[20:]), model.side_multiple)
        for unfamiliar in (None, (0.85, 1.2, 0.5), (0.2, 0.3, 1.0)):
            lend = [models.Borrowed(m, bank, data.tint(ab_norm[:20]), 10, 0.0, 0.1, ab_norm[:20, :, ::16, ::16],
                                    unfamiliar) for m in (model, given)]
            assert torch.allclose(lend[0](l_norm[20:]), lend[1](l_norm[20:]), atol=1e-6)
    # the rows with the training mean's tint keep the default's detail (its errors borrowed as far as a sitting looks
    # seen: photos 20 and 21 are in this bank) and differ from it only in the tint
    lent = test_colorize.Lent(neighbours.describe(l_norm[:22]), data.tint(ab_norm[:22]).flatten(1),
                              ab_norm[:22, :, ::16, ::16])
    with torch.no_grad():
        default = test_colorize.borrowed(given, lent)(l_norm[20:])
        rows = screen_tints.mean_tint_rows(given, lent, screen_tints.default_lent(given, lent, l_norm[20:]))
    assert len(rows) == len(screen_tints.MEAN_ROWS)
    assert not torch.allclose(default, given.ab_norm, atol=1e-3)  # errors were borrowed
    for pred in rows.values():
        assert torch.allclose(pred - data.tint(pred), default - data.tint(default), atol=1e-5)
    # the rows where a face never seen keeps a share of its detail: the default's tint, the detail scaled as far as
    # a photo counts unseen (photos 20 and 21 are in the bank: none of theirs is scaled)
    with torch.no_grad():
        details = screen_tints.detail_rows(screen_tints.default_lent(given, lent, l_norm[20:]))
        lending = test_colorize.borrowed(given, lent)
        unseen = lending.unseen(lending.lenders(l_norm[20:])[2])
    assert unseen[:2].eq(0).all() and unseen[2:].gt(0).all()
    assert len(details) == len(screen_tints.DETAIL_KEEPS)
    for keep, pred in zip(screen_tints.DETAIL_KEEPS, details.values()):
        assert torch.allclose(data.tint(pred), data.tint(default), atol=1e-6)
        scale = (1 - (1 - keep) * unseen).reshape(-1, 1, 1, 1)
        assert torch.allclose(pred - data.tint(pred), scale * (default - data.tint(default)), atol=1e-5)


def test_mean_tinted_gives_a_face_never_seen_the_training_mean_for_its_share_and_keeps_the_detail():
    lent_pred = torch.randn(3, 2, 16, 16, generator=torch.Generator().manual_seed(5))
    own_tint, toward = torch.tensor([[0.2, 0.1]] * 3), torch.tensor([[-0.1, 0.3]] * 3)
    mean_tint, unseen = torch.tensor([0.05, 0.15]), torch.tensor([0.0, 1.0, 0.5])
    tints = lambda pred: data.tint(pred).flatten(1)  # noqa: E731
    out = screen_tints.mean_tinted(lent_pred, own_tint, toward, mean_tint, unseen, keep=0.5, share=1.0,
                                   mean_unseen=unseen)
    assert torch.allclose(tints(out)[0], toward[0], atol=1e-6)  # a seen sitting: its neighbours' tint, as lent
    assert torch.allclose(tints(out)[1], (own_tint[1] + mean_tint) / 2, atol=1e-6)  # never seen: no neighbours' tint
    halfway = toward[2] + 0.5 * (mean_tint - toward[2])
    assert torch.allclose(tints(out)[2], halfway + 0.25 * (own_tint[2] - halfway), atol=1e-6)
    assert torch.allclose(out - data.tint(out), lent_pred - data.tint(lent_pred), atol=1e-6)
    none = screen_tints.mean_tinted(lent_pred, own_tint, toward, mean_tint, unseen, keep=0.5, share=0.0,
                                    mean_unseen=unseen)
    assert torch.allclose(tints(none)[1], (own_tint[1] + toward[1]) / 2, atol=1e-6)  # share 0: the default's rule
    # the mean's own, later ramp: a face never seen by the rule but not by it keeps the default's rule
    later = screen_tints.mean_tinted(lent_pred, own_tint, toward, mean_tint, unseen, keep=0.5, share=1.0,
                                     mean_unseen=torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(tints(later)[1], (own_tint[1] + toward[1]) / 2, atol=1e-6)
    assert torch.allclose(tints(later)[2], mean_tint + 0.25 * (own_tint[2] - mean_tint), atol=1e-6)

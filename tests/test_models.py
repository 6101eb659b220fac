"""models.py: shapes, level sizes, eval-mode batch independence, rebuild from arguments."""
import pytest
import torch

import models
from models import Colorizer, FusionColorizer, MeanChromaNet, build_model
from training_loop import make_loss


def test_mean_chroma_net_halves_seven_times_to_two_scalars():
    model = MeanChromaNet()
    sizes = []
    for module in model.net:
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    out = model(torch.rand(4, 1, 128, 128))
    assert out.shape == (4, 2)
    assert [s[1] for s in sizes] == [64, 32, 16, 8, 4, 2, 1]
    assert [s[0] for s in sizes] == [3] * 6 + [2]


def test_mean_chroma_net_takes_one_width_per_hidden_layer():
    model = MeanChromaNet(features=[2, 3, 4, 5, 6, 7], batchnorm=True)
    convs = [m for m in model.net if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [2, 3, 4, 5, 6, 7, 2]
    assert model(torch.rand(2, 1, 128, 128)).shape == (2, 2)
    with pytest.raises(ValueError, match="1 or 6"):
        MeanChromaNet(features=[4, 4])


def test_mean_chroma_tanh_bounds_output():
    model = MeanChromaNet(features=8, tanh=True)
    with torch.no_grad():
        model.net[-2].bias.fill_(50.0)
    assert model(torch.rand(2, 1, 128, 128)).abs().max() <= 1.0


def test_mean_chroma_flip_average_is_mirror_invariant_in_eval_mode_only():
    torch.manual_seed(0)
    model = MeanChromaNet(features=8, flip_average=True)
    plain = MeanChromaNet(features=8)
    plain.load_state_dict(model.state_dict())
    x = torch.rand(3, 1, 128, 128)
    assert torch.equal(model(x), plain(x))  # training mode: the plain network
    model.eval()
    plain.eval()
    with torch.no_grad():
        expected = (plain(x) + plain(x.flip(-1))) / 2
        assert torch.allclose(model(x), expected, atol=1e-6)
        assert torch.allclose(model(x.flip(-1)), model(x), atol=1e-6)
        assert not torch.allclose(plain(x.flip(-1)), plain(x), atol=1e-6)


def test_mean_chroma_members_learn_apart_and_predict_their_average():
    torch.manual_seed(0)
    ensemble = MeanChromaNet(features=4, batchnorm=True, members=2)
    x, y = torch.rand(6, 1, 128, 128), torch.rand(6, 2) - 0.5
    out = ensemble(x)
    assert out.shape == (6, 2, 2)
    assert not torch.allclose(out[:, 0], out[:, 1])  # own initial weights
    loss, _ = make_loss(ensemble)(out, y)
    loss.backward()
    alone = MeanChromaNet(features=4, batchnorm=True)
    alone.net.load_state_dict(ensemble.net[0].state_dict())
    torch.nn.functional.mse_loss(alone(x), y).backward()
    for mine, own in zip(ensemble.net[0].parameters(), alone.net.parameters()):
        assert torch.allclose(2 * mine.grad, own.grad, atol=1e-6)  # member 0's gradient ignores member 1
    members = [MeanChromaNet(features=4, batchnorm=True).eval() for _ in range(2)]
    for single, net in zip(members, ensemble.net):
        single.net.load_state_dict(net.state_dict())  # with the BatchNorm statistics of that training step
    ensemble.eval()
    with torch.no_grad():
        assert torch.allclose(ensemble(x), (members[0](x) + members[1](x)) / 2, atol=1e-6)


@pytest.mark.parametrize("levels", [3, 4, 5])
@pytest.mark.parametrize("upsample", ["transpose", "nearest"])
def test_colorizer_levels_and_output_size(levels, upsample):
    model = Colorizer(levels=levels, features=[4], upsample=upsample)
    sizes = []
    for module in list(model.down) + list(model.up):
        module.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    out = model(torch.rand(2, 1, 128, 64))
    assert out.shape == (2, 2, 128, 64)
    down = [64 // 2 ** k for k in range(1, levels + 1)]
    up = [64 // 2 ** k for k in range(levels - 1, -1, -1)]
    assert sizes == down + up


def test_colorizer_skips_and_tanh_variant():
    model = Colorizer(levels=4, features=[4, 8, 16, 16], tanh=True, skips=True)
    out = model(torch.rand(2, 1, 64, 96))
    assert out.shape == (2, 2, 64, 96) and out.abs().max() <= 1.0


def test_colorizer_rejects_sides_not_divisible():
    with pytest.raises(ValueError, match="divisible by 32"):
        Colorizer(features=[4])(torch.rand(1, 1, 100, 128))


def test_colorizer_rejects_wrong_feature_count():
    with pytest.raises(ValueError, match="5 positive widths"):
        Colorizer(levels=5, features=[4, 8])


def test_eval_mode_output_does_not_depend_on_batch_mates():
    model = Colorizer(features=[8])
    model.train()
    model(torch.rand(8, 1, 128, 128))  # move BatchNorm running statistics away from their initial values
    model.eval()
    x = torch.rand(4, 1, 128, 128)
    with torch.no_grad():
        single = model(x[:1])
        batched = model(x)
    assert torch.allclose(single[0], batched[0], atol=1e-5)


@pytest.mark.parametrize("model", [MeanChromaNet(features=5, tanh=True, flip_average=True),
                                   MeanChromaNet(features=[2, 3, 4, 5, 6, 7], batchnorm=True, members=2),
                                   Colorizer(levels=3, features=[4, 8, 8], upsample="nearest", skips=True),
                                   FusionColorizer(width=4, global_dim=6, tanh=True)])
def test_rebuild_from_stored_arguments(model):
    rebuilt = build_model(type(model).__name__, model.args)
    rebuilt.load_state_dict(model.state_dict())
    model.eval()
    rebuilt.eval()
    x = torch.rand(2, 1, 128, 128)
    assert torch.equal(model(x), rebuilt(x))


def test_every_variant_trains_one_step():
    x, y = torch.rand(4, 1, 128, 128), torch.rand(4, 2, 128, 128) - 0.5
    for model in [Colorizer(features=[4]), Colorizer(features=[4], upsample="nearest", tanh=True),
                  Colorizer(levels=4, features=[4], skips=True), FusionColorizer(width=4)]:
        optimizer = torch.optim.Adam(model.parameters(), 1e-2)
        losses = []
        for _ in range(5):
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0]


def test_classifier_logits_in_training_and_annealed_ab_in_eval():
    bins = [[0, 0], [10, 0], [0, 10], [10, 10]]
    model = Colorizer(levels=3, features=[4, 8, 8], bins=bins, skips=True)
    x = torch.rand(2, 1, 64, 64)
    assert model(x).shape == (2, 4, 32, 32)  # logits at half resolution
    model.eval()
    with torch.no_grad():
        ab_norm = model(x)
    assert ab_norm.shape == (2, 2, 64, 64)
    assert ab_norm.min() >= 0 and ab_norm.max() <= 10 / 110 + 1e-6  # a convex mix of the bin centres
    rebuilt = build_model("Colorizer", model.args)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), ab_norm)


def test_classifier_rejects_tanh():
    with pytest.raises(ValueError, match="classification"):
        Colorizer(bins=[[0, 0], [10, 0]], tanh=True)


def test_fusion_network_sizes_follow_the_paper_scaled_to_128():
    model = FusionColorizer(width=4)
    sizes = {}
    for name in ("low", "mid", "global_conv", "global_fc", "fusion", "color"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: sizes.setdefault(name, o.shape[1:])
                                                   and None)
    assert model(torch.rand(2, 1, 128, 128)).shape == (2, 2, 128, 128)
    assert sizes["low"] == (32, 16, 16) and sizes["mid"] == (16, 16, 16)  # 8K maps at 1/8, then 4K
    assert sizes["global_conv"] == (32, 4, 4) and sizes["global_fc"] == (16,)  # one 4K vector per image
    assert sizes["fusion"] == (16, 16, 16) and sizes["color"] == (2, 64, 64)  # a*b* at half size, then upsampled


def test_fusion_global_branch_sees_a_fixed_view_so_any_size_works():
    model = FusionColorizer(width=4).eval()
    views = []
    model.global_conv.register_forward_hook(lambda m, i, o: views.append(i[0].shape[-2:]))
    with torch.no_grad():
        assert model(torch.rand(1, 1, 200, 312)).shape == (1, 2, 200, 312)
    assert views == [(16, 16)]  # the low-level features of the 128x128 view
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.rand(1, 1, 100, 128))


def test_fusion_training_batches_of_half_side_share_their_low_level_pass_and_full_size_is_unchanged():
    """--low-res-epochs: a 64x64 training batch feeds its own low-level features to the global branch (no 128x128
    view), whose 2x2 map is stretched to the 4x4 the fully connected layers take; at 128x128 that stretch is the
    identity, so full-size training and every saved model compute what they did before it."""
    torch.manual_seed(0)
    model = FusionColorizer(width=4)
    views = []
    model.global_conv.register_forward_hook(lambda m, i, o: views.append((i[0].shape[-2:], o)))
    assert model(torch.rand(3, 1, 64, 64)).shape == (3, 2, 64, 64)
    assert [shape for shape, _ in views] == [(8, 8)]  # one low-level pass, the batch's own
    full = torch.rand(3, 1, 128, 128)
    views.clear()
    with torch.no_grad():
        model.eval()
        predicted = model._parts(full)[1]
    (_, global_map), = views
    assert torch.equal(predicted, model.global_fc(global_map.flatten(1)))


def test_fusion_global_features_reach_every_pixel():
    """A change in one corner moves the prediction in the opposite corner (through the global vector), far beyond
    what the convolutions alone could reach."""
    torch.manual_seed(0)
    model = FusionColorizer(width=4)
    with torch.no_grad():  # BatchNorm statistics of real activations, or the signal fades layer by layer
        for _ in range(30):
            model(torch.rand(4, 1, 128, 128))
    model.eval()
    x = torch.rand(1, 1, 128, 128)
    changed = x.clone()
    changed[..., :16, :16] = 1 - changed[..., :16, :16]
    with torch.no_grad():
        far = (model(x) - model(changed))[..., -16:, -16:].abs().max()
        model.global_fc[-2].weight.zero_()  # cut the global vector: the far corner no longer moves
        model.global_fc[-2].bias.zero_()
        cut = (model(x) - model(changed))[..., -16:, -16:].abs().max()
    assert far > 1e-3 and cut == 0


def twins_in_eval_mode(make, x):
    """make(False) and make(True) with the same weights, in eval mode, after checking that in training mode, where
    no test-time averaging applies, they compute the same on x."""
    torch.manual_seed(0)
    plain, averaged = make(False), make(True)
    averaged.load_state_dict(plain.state_dict())
    assert torch.equal(plain(x), averaged(x))
    return plain.eval(), averaged.eval()


@pytest.mark.parametrize("make", [lambda flip: Colorizer(levels=3, features=[4], skips=True, flip_average=flip),
                                  lambda flip: FusionColorizer(width=4, flip_average=flip)],
                         ids=["unet", "fusion"])
def test_flip_average_mirrors_in_eval_mode_only(make):
    x = torch.rand(2, 1, 128, 128)
    plain, averaged = twins_in_eval_mode(make, x)
    with torch.no_grad():
        out = averaged(x)
        assert torch.allclose(averaged(x.flip(-1)), out.flip(-1), atol=1e-6)  # mirror in, mirror out
        assert torch.allclose(out, (plain(x) + plain(x.flip(-1)).flip(-1)) / 2, atol=1e-6)
        assert not torch.allclose(plain(x.flip(-1)), plain(x).flip(-1), atol=1e-4)


def test_shift_averaged_moves_each_prediction_back_and_averages_the_border_over_the_copies_that_reach_it():
    x = torch.rand(2, 1, 16, 24)
    # a prediction that moves with its input comes back unchanged: each copy is moved back where it came from
    same = models.shift_averaged(lambda l_norm: l_norm.repeat(1, 2, 1, 1), x, 4)
    assert torch.allclose(same, x.repeat(1, 2, 1, 1), atol=1e-6)
    # one that sees only where it is (its column in the copy): 3 copies each give j, j + 4 and j - 4
    column = lambda l_norm: torch.arange(l_norm.shape[-1]).float().expand(len(l_norm), 2, *l_norm.shape[-2:])  # noqa
    out = models.shift_averaged(column, x, 4)[0, 0, 8]
    j = torch.arange(24).float()
    assert torch.allclose(out[4:-4], j[4:-4])  # all nine copies reach the middle
    assert torch.allclose(out[-4:], j[-4:] - 2)  # (3j + 3(j - 4)) / 6: the three giving j + 4 do not reach
    assert torch.allclose(out[:4], j[:4] + 2)


@pytest.mark.parametrize("make", [lambda shift: Colorizer(levels=3, features=[4], skips=True, shift_average=shift),
                                  lambda shift: FusionColorizer(width=4, flip_average=True, shift_average=shift)],
                         ids=["unet", "fusion"])
def test_shift_average_averages_the_mirror_averaged_predictions_in_eval_mode_only(make):
    x = torch.rand(2, 1, 64, 64)
    plain, averaged = twins_in_eval_mode(make, x)
    with torch.no_grad():
        assert torch.allclose(averaged(x), models.shift_averaged(plain, x, models.SHIFT), atol=1e-6)
        assert not torch.allclose(averaged(x), plain(x), atol=1e-4)
    old = {key: value for key, value in plain.args.items() if key != "shift_average"}  # a checkpoint from before
    assert models.build_model(type(plain).__name__, old).args["shift_average"] is False


def test_fusion_identity_head_adds_weighted_person_cross_entropy_while_training_only():
    model = FusionColorizer(width=4, classes=7)
    l_norm, ab_norm = torch.rand(3, 1, 64, 64), torch.rand(3, 2, 64, 64) - 0.5
    people = torch.tensor([0, 6, 2])
    ab_pred, logits = model(l_norm)
    assert ab_pred.shape == (3, 2, 64, 64) and logits.shape == (3, 7)
    loss, mse = make_loss(model, identity_weight=0.25)((ab_pred, logits), ab_norm, people)
    expected_mse = ((ab_pred - ab_norm) ** 2).mean()
    expected_ce = -torch.log_softmax(logits, 1)[torch.arange(3), people].mean()
    assert torch.allclose(mse, expected_mse) and torch.allclose(loss, expected_mse + 0.25 * expected_ce)
    model.eval()
    assert model(l_norm).shape == (3, 2, 64, 64)  # testing and --input never see the classifier
    rebuilt = build_model("FusionColorizer", model.args)
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.args["classes"] == 7


def test_tint_weight_counts_each_images_tint_error_that_much_and_logs_the_plain_mse():
    model = FusionColorizer(width=4)
    ab_true = torch.rand(3, 2, 16, 16) - 0.5
    detail = 0.1 * torch.randn(3, 2, 16, 16)
    shift = torch.tensor([[0.3, -0.2], [0.0, 0.1], [-0.4, 0.25]])[..., None, None]  # each image's tint error
    ab_pred = ab_true + detail - detail.mean((-2, -1), keepdim=True) + shift
    plain_loss, plain_mse = make_loss(model)(ab_pred, ab_true)
    assert torch.allclose(plain_loss, plain_mse)
    for weight in (0.0, 0.5):
        loss, mse = make_loss(model, tint_weight=weight)(ab_pred, ab_true)
        assert torch.allclose(mse, plain_mse)  # the log stays the MSE
        tint_error = (shift ** 2).mean()
        assert torch.allclose(loss, plain_mse - (1 - weight) * tint_error, atol=1e-6)
    untinted, _ = make_loss(model, tint_weight=0.0)(ab_pred - shift, ab_true)  # no tint error: nothing to discount
    assert torch.allclose(make_loss(model, tint_weight=0.0)(ab_pred, ab_true)[0], untinted, atol=1e-6)

"""models.py: shapes, level sizes, eval-mode batch independence, rebuild from arguments."""
import pytest
import torch

from models import Colorizer, MeanChromaNet, build_model


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


def test_mean_chroma_tanh_bounds_output():
    model = MeanChromaNet(features=8, tanh=True)
    with torch.no_grad():
        model.net[-2].bias.fill_(50.0)
    assert model(torch.rand(2, 1, 128, 128)).abs().max() <= 1.0


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


@pytest.mark.parametrize("model", [MeanChromaNet(features=5, tanh=True),
                                   Colorizer(levels=3, features=[4, 8, 8], upsample="nearest", skips=True)])
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
                  Colorizer(levels=4, features=[4], skips=True)]:
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

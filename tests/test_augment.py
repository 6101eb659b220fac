"""augment.py: size, flip, crop, brightness and seeding, checked on the images themselves."""
import math

import torch

import augment


def test_factor_copies_same_image_shape(faces):
    rgb = faces[0][:7]
    out = augment.augment(rgb, factor=10, seed=0)
    assert out.shape == (70, 3, 128, 128) and out.dtype == torch.float32


def test_copy_zero_is_the_original(faces):
    rgb = faces[0][:4]
    out = augment.augment(rgb, factor=10, seed=0)
    assert torch.allclose(out[::10], rgb, atol=1e-5)


def _only(n, **fields):
    """Params for n copies of one image that change nothing except `fields`."""
    params = augment.AugmentParams(torch.zeros(n, dtype=torch.bool), torch.ones(n), torch.zeros(n, 2), torch.ones(n))
    for name, value in fields.items():
        setattr(params, name, value)
    return params


def test_flip_really_mirrors(faces):
    rgb = faces[0][:1]
    out = augment.apply_params(rgb, _only(1, flip=torch.tensor([True])))
    assert torch.allclose(out[0], rgb[0].flip(-1), atol=1e-5)


def test_scale_multiplies_all_channels_by_one_scalar(faces):
    rgb = faces[0][:1]
    out = augment.apply_params(rgb, _only(1, scale=torch.tensor([0.7])))
    assert torch.allclose(out[0], rgb[0] * 0.7, atol=1e-5)


def test_every_copy_scale_within_range_measured_on_pixels(faces):
    rgb = faces[0][:20]
    params = augment.sample_params(20, 10, seed=3)
    assert params.scale.min() >= 0.6 and params.scale.max() <= 1.0
    assert params.scale.std() > 0.05  # really random, not constant
    # brightness ratio measured on the pixels, with the geometry undone (no crop, no flip)
    geometry_free = augment.AugmentParams(torch.zeros(200, dtype=torch.bool), torch.ones(200),
                                          torch.zeros(200, 2), params.scale)
    out = augment.apply_params(rgb, geometry_free)
    ratio = out.sum((1, 2, 3)) / rgb.repeat_interleave(10, 0).sum((1, 2, 3))
    assert torch.allclose(ratio, params.scale, atol=1e-4)


def test_crop_zooms_in_and_keeps_size(faces):
    rgb = torch.zeros(1, 3, 128, 128)
    rgb[..., 32:96, 32:96] = 1.0  # a white square filling the central half
    out = augment.apply_params(rgb, _only(1, side=torch.tensor([0.5])))
    assert out.shape == (1, 3, 128, 128)
    assert out[..., 4:124, 4:124].min() > 0.99  # the central half now fills the frame


def test_params_cover_all_three_kinds_and_their_ranges():
    params = augment.sample_params(100, 10, seed=0)
    copies = torch.arange(1000) % 10 != 0
    assert 0.4 < params.flip[copies].float().mean() < 0.6
    assert params.side.min() >= 0.7 and params.side.max() <= 1.0
    assert ((1 - params.side).unsqueeze(1) >= params.center.abs() - 1e-6).all()  # crop stays inside the image
    all_three = params.flip & (params.side < 0.95) & (params.scale < 0.95)
    assert all_three.any()


def test_same_seed_same_result_other_seed_other_result(faces):
    rgb = faces[0][:3]
    assert torch.equal(augment.augment(rgb, seed=5), augment.augment(rgb, seed=5))
    assert not torch.equal(augment.augment(rgb, seed=5), augment.augment(rgb, seed=6))


def test_rotation_by_90_degrees_turns_the_image_a_quarter(faces):
    rgb = faces[0][:1]
    out = augment.apply_params(rgb, _only(1, angle=torch.tensor([math.pi / 2])))
    quarter_turns = [torch.rot90(rgb[0], k, dims=(-2, -1)) for k in (1, -1)]
    matches = [torch.allclose(out[0], turned, atol=1e-5) for turned in quarter_turns]
    assert sorted(matches) == [False, True]


def test_rotate_and_crop_min_widen_the_draws_and_leave_the_others_alone():
    plain = augment.sample_params(100, 10, seed=0)
    strong = augment.sample_params(100, 10, seed=0, crop_min=0.5, rotate=15)
    assert plain.angle is None  # the default augmentation is exactly the one without rotation
    copies = torch.arange(1000) % 10 != 0
    degrees = strong.angle * 180 / math.pi
    assert degrees.abs().max() <= 15 and degrees[copies].abs().max() > 12 and (degrees[~copies] == 0).all()
    assert strong.side.min() >= 0.5 and strong.side[copies].min() < 0.6
    assert torch.equal(strong.flip, plain.flip) and torch.equal(strong.scale, plain.scale)

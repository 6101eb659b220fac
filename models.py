"""The networks: MeanChromaNet (image-mean a*b* regressor), Colorizer (per-pixel a*b*, U-Net style) and
FusionColorizer (per-pixel a*b*, Iizuka et al.'s global-feature fusion network).

Owner of network architecture only. Both take l_norm (L* / 100, N x 1 x H x W) and return ab_norm (a*b* / AB_SCALE
from data.py); data.py turns that back into raw Lab. The classification Colorizer returns per-pixel class logits
while training and decodes them (data.annealed_mean) in eval mode; a MeanChromaNet ensemble returns each member's
prediction while training and their average in eval mode. Every constructor argument is stored in `model.args`,
so a checkpoint holding {"model_kind", "model_args", "model"} rebuilds the network with `build_model`.
AveragedColorizers makes several trained colorizers one that predicts their average (test_colorize.py with
several checkpoints); Borrowed lends a trained colorizer's predictions the tint of the nearest training photos and
its own error on them (--tint-keep, --borrow-errors);
FadedUnfamiliar fades its colour where a photo looks unlike every training photo (--fade-unfamiliar); Exemplared
gives a network trained with exemplar input (--exemplar) the colours of the training photos nearest to each photo.
"""
import math

import torch
from torch import nn

import data
import neighbours

UPSAMPLE_KINDS = ("transpose", "nearest")


class MeanChromaNet(nn.Module):
    """Predicts each image's mean a* and mean b* from its L* channel: 128x128 in, 2 scalars out.

    Seven Conv2d modules, kernel 3, stride 2, padding 1, each halving the side: 128, 64, 32, 16, 8, 4, 2, 1.
    The first six have `features` maps (one number, or six: one per module) and ReLU. The seventh maps them to
    2 channels at 1x1: those two values are (mean a*, mean b*) / AB_SCALE. It ends in identity (or Tanh with
    `tanh=True`) instead of ReLU, because mean chroma is signed. `batchnorm=True` (beyond the spec) puts
    BatchNorm between each hidden Conv2d and its ReLU.
    `flip_average=True` (beyond the spec) returns, in eval mode, the average of the predictions for the image and
    its mirror image: a face's mean color does not change when mirrored, but the network's guess does, and the
    two guesses' errors partly cancel. Training is unchanged (random flips are already part of augmentation).
    `members=K` (beyond the spec) holds K such networks with their own initial weights: in training mode forward
    returns each one's prediction (N x K x 2) so that each learns on its own; in eval mode their average (N x 2).
    """

    def __init__(self, features=3, tanh=False, batchnorm=False, flip_average=False, members=1):
        super().__init__()
        self.args = {"features": features, "tanh": tanh, "batchnorm": batchnorm, "flip_average": flip_average,
                     "members": members}
        widths = [features] * 6 if isinstance(features, int) else list(features)
        if len(widths) != 6:
            raise ValueError(f"MeanChromaNet needs 1 or 6 feature counts, got {len(widths)}")
        nets = [self._one_net(widths, tanh, batchnorm) for _ in range(members)]
        # A single network stays at `self.net`, so the spec net's state_dict keys do not change.
        self.net = nets[0] if members == 1 else nn.ModuleList(nets)

    @staticmethod
    def _one_net(widths, tanh, batchnorm):
        layers, channels = [], 1
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=not batchnorm)]
            layers += [nn.BatchNorm2d(width)] if batchnorm else []
            layers += [nn.ReLU(inplace=True)]
            channels = width
        layers += [nn.Conv2d(channels, 2, 3, stride=2, padding=1), nn.Tanh() if tanh else nn.Identity()]
        return nn.Sequential(*layers)

    def _members(self, l_norm):
        nets = self.net if self.args["members"] > 1 else [self.net]
        return torch.stack([net(l_norm).flatten(1) for net in nets], 1)

    def forward(self, l_norm):
        if l_norm.shape[-2:] != (128, 128):
            raise ValueError(f"MeanChromaNet needs 128x128 input, got {tuple(l_norm.shape[-2:])}")
        ab_norm = self._members(l_norm)
        if self.training:
            return ab_norm if self.args["members"] > 1 else ab_norm[:, 0]
        if self.args["flip_average"]:
            ab_norm = (ab_norm + self._members(l_norm.flip(-1))) / 2
        return ab_norm.mean(1)


# test-time shift averaging moves the image by this many pixels: half the stride of the fusion network's deepest
# per-pixel map (8), so that each copy is sampled on another grid (EXPERIMENTS.md, "Test-time shift averaging")
SHIFT = 4
# the copies, as (down, right) multiples of SHIFT: the photo and its 8 neighbours, so that each of the 4 phases of a
# half-stride shift (0 or SHIFT down x 0 or SHIFT right) is sampled (the diagonal one too)
SHIFTS = tuple((down, right) for down in (-1, 0, 1) for right in (-1, 0, 1))


class _PixelColorizer(nn.Module):
    """What the per-pixel colorizers share: the check that input sides are multiples of `side_multiple`, and
    test-time averaging in eval mode. Mirror (`flip_average` in their args): the mean of the image's prediction and
    its mirror image's, mirrored back; a face's colors mirror with it, the network's errors do not all do so. Shift
    (`shift_average`): the mean over the image and its 8 copies moved SHIFT pixels along either axis or both
    (shift_averaged); the strided convolutions sample each copy on another grid, and their errors partly cancel.
    Training is unchanged. Subclasses define `side_multiple` and `_predict`."""

    def forward(self, l_norm):
        self._check_sides(l_norm)
        if self.training:
            return self._predict(l_norm)
        if self.args["shift_average"]:
            return shift_averaged(self._mirror_averaged, l_norm, SHIFT)
        return self._mirror_averaged(l_norm)

    def _mirror_averaged(self, l_norm):
        ab_norm = self._predict(l_norm)
        if not self.args["flip_average"]:
            return ab_norm
        return (ab_norm + self._predict(l_norm.flip(-1)).flip(-1)) / 2

    def _check_sides(self, l_norm):
        side = self.side_multiple
        if l_norm.shape[-1] % side or l_norm.shape[-2] % side:
            raise ValueError(f"{type(self).__name__} needs sides divisible by {side}, got {tuple(l_norm.shape[-2:])}")


def shift_averaged(predict, l_norm, shift):
    """The mean of `predict`'s a*b* (N x 2 x H x W) over l_norm and its copies moved by SHIFTS x `shift` pixels, each
    prediction moved back: a copy is a window of the reflect-padded image, and the pixels of the border strip one
    copy does not reach are the mean of the others'."""
    n, _, height, width = l_norm.shape
    padded = nn.functional.pad(l_norm, (shift,) * 4, mode="reflect")
    total = l_norm.new_zeros(n, 2, height + 2 * shift, width + 2 * shift, dtype=torch.float32)
    count = torch.zeros_like(total[:1, :1])
    for down, right in SHIFTS:
        top, left = shift * (1 + down), shift * (1 + right)
        window = (..., slice(top, top + height), slice(left, left + width))
        total[window] += predict(padded[window]).float()
        count[window] += 1
    return (total / count)[..., shift:shift + height, shift:shift + width]


def _down(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _up(c_in, c_out, kind):
    if kind == "transpose":
        resize = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)
    else:
        resize = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                               nn.Conv2d(c_in, c_out, 3, padding=1, bias=False))
    return nn.Sequential(resize, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Colorizer(_PixelColorizer):
    """Encoder-decoder from l_norm (N x 1 x H x W) to ab_norm (N x 2 x H x W); H and W must divide by 2^levels.

    Down module i (Conv2d stride 2 + BatchNorm + ReLU) halves the side and has features[i] maps; up modules
    (ConvTranspose2d, or nearest upsampling + Conv2d, + BatchNorm + ReLU) double it back, mirroring the widths.
    With the default 5 levels a 128 input goes 128, 64, 32, 16, 8, 4 and back to 128. A 3x3 convolution then gives
    the 2 a*b* channels: linear, or Tanh with `tanh=True`. `skips=True` (beyond the spec) concatenates each down
    module's output, and the input L*, to the up path at the same size (U-Net style).

    Classification variant (Zhang et al. 2016), when `bins` lists the K centres (raw a*, b*) of bin_size-wide a*b*
    squares (data.ab_bins): the last up module is left out and a 1x1 convolution gives K logits per pixel at half
    the input's side (Zhang et al. predict at a quarter; a K-way softmax per full-size pixel made training 4x
    slower here). In training mode forward returns those logits, for a cross-entropy against the a*b* of 2x2
    pooled pixels; in eval mode it returns their annealed mean at `temperature`, upsampled bilinearly to the
    input's size, as ab_norm like the regressor.
    `flip_average=True`, `shift_average=True` (beyond the spec): test-time mirror and shift averaging
    (_PixelColorizer).
    """

    def __init__(self, levels=5, features=(16, 32, 64, 128, 128), upsample="transpose", tanh=False, skips=False,
                 bins=None, bin_size=10, temperature=0.38, flip_average=False, shift_average=False):
        super().__init__()
        features = tuple(features) if len(features) > 1 else tuple(features) * levels
        if levels < 1 or len(features) != levels or min(features) < 1:
            raise ValueError(f"features needs {levels} positive widths (or one for all levels), got {features}")
        if upsample not in UPSAMPLE_KINDS:
            raise ValueError(f"upsample must be one of {UPSAMPLE_KINDS}, got {upsample!r}")
        if bins is not None and (tanh or len(bins) < 2 or temperature <= 0):
            raise ValueError("classification needs at least 2 bins, a temperature > 0 and no Tanh")
        self.args = {"levels": levels, "features": list(features), "upsample": upsample, "tanh": tanh,
                     "skips": skips, "bins": bins, "bin_size": bin_size,
                     "temperature": temperature, "flip_average": flip_average, "shift_average": shift_average}
        widths = (1,) + features
        self.down = nn.ModuleList(_down(widths[i], widths[i + 1]) for i in range(levels))
        self.logit_stride = 1 if bins is None else 2  # output side = input side / logit_stride
        first = self.logit_stride.bit_length() - 1
        # up[i - first] brings level i+1 (side / 2^(i+1)) to level i; its output width is that of level i
        out_widths = (features[0],) + features[:-1]
        self.up = nn.ModuleList(
            _up(features[i] + (features[i] if skips and i < levels - 1 else 0), out_widths[i], upsample)
            for i in range(first, levels))
        head_in = out_widths[first] + (widths[first] if skips else 0)
        if bins is None:
            self.head = nn.Conv2d(head_in, 2, 3, padding=1)
        else:  # 1x1: a 3x3 kernel to K maps would cost 9x more for little gain
            self.head = nn.Conv2d(head_in, len(bins), 1)
            self.register_buffer("bins_norm", data.normalize_ab(torch.tensor(bins, dtype=torch.float32)),
                                 persistent=False)
        self.out = nn.Tanh() if tanh else nn.Identity()

    @property
    def side_multiple(self):
        """Input sides must be multiples of this: each level halves them."""
        return 2 ** self.args["levels"]

    def _predict(self, l_norm):
        skips = [l_norm]
        x = l_norm
        for module in self.down:
            x = module(x)
            skips.append(x)
        levels, first = self.args["levels"], self.logit_stride.bit_length() - 1
        for i in reversed(range(first, levels)):
            if self.args["skips"] and i < levels - 1:
                x = torch.cat([x, skips[i + 1]], dim=1)
            x = self.up[i - first](x)
        if self.args["skips"]:
            x = torch.cat([x, skips[first]], dim=1)
        out = self.out(self.head(x))
        if self.args["bins"] is None or self.training:
            return out
        ab_norm = data.annealed_mean(out, self.bins_norm, self.args["temperature"])
        return nn.functional.interpolate(ab_norm, size=l_norm.shape[-2:], mode="bilinear", align_corners=False)


def _conv(c_in, c_out, stride=1, kernel=3):
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FusionColorizer(_PixelColorizer):
    """Iizuka, Simo-Serra and Ishikawa's global-feature fusion network ("Let there be color!", SIGGRAPH 2016),
    scaled to 128x128 faces: l_norm (N x 1 x H x W, sides divisible by 8) to ab_norm (N x 2 x H x W).

    With base width K (`width`; the paper's widths are K = 64):
    - low-level features, shared by both branches: six 3x3 Conv+BatchNorm+ReLU, widths K, 2K, 2K, 4K, 4K, 8K,
      strides 2, 1, 2, 1, 2, 1: the input at 1/8 of its side;
    - mid-level features: two 3x3 convolutions, 8K and 4K maps, at 1/8 of the side;
    - global features: the low-level features of a fixed-size view of the image (resized to `global_size`, 128:
      the training faces themselves, so they share one low-level pass; the paper's view is 224x224; a training
      batch of another side, as in train_colorize.py's --low-res-epochs, shares its own pass), then four
      3x3 convolutions of 8K maps (strides 2, 1, 2, 1: 4x4 for 128), flattened, and three fully connected layers
      of 16K, 8K and `global_dim` (4K) units, all ReLU: one vector per image, whatever the photo's size;
    - fusion: that vector concatenated to the mid-level features at every position, mixed by a 1x1 convolution
      to 4K maps + BatchNorm + ReLU;
    - colorization: 3x3 convolutions of 2K, (upsample x2) K, K, (upsample x2) K/2 maps and a 3x3 convolution to
      a*b* at half the input's side (nearest upsampling, as in the paper), bilinearly upsampled to full size.
    The output is linear (ab_norm is signed), or Tanh with `tanh=True`; the paper's Sigmoid fits its [0, 1] a*b*.
    `flip_average=True`, `shift_average=True`: test-time mirror and shift averaging (_PixelColorizer).
    `exemplar=K` (> 0): the input is l_norm and two more channels, the mean ab_norm map of the K training photos the
    photo looks most like (neighbours.exemplar; Welsh et al. 2002 and He et al. 2018 colour from reference photos):
    the network learns how far to trust the colours of the nearest sittings. Such a network is given its input by
    `Exemplared`.
    `classes=C` (> 0): the paper's joint classification, with the person pictured as the class: two fully
    connected layers (global_dim, then C logits) on the global feature vector. In training mode forward then
    returns (ab_norm, logits); in eval mode, and so for testing and colorizing, only ab_norm.
    """

    side_multiple = 8

    def __init__(self, width=16, global_dim=None, global_size=128, tanh=False, flip_average=False, classes=0,
                 exemplar=0, shift_average=False):
        super().__init__()
        global_dim = global_dim or 4 * width
        if width < 2 or global_dim < 1 or global_size % 32:
            raise ValueError(f"FusionColorizer needs width >= 2, global_dim >= 1 and global_size divisible by 32, "
                             f"got {width}, {global_dim}, {global_size}")
        self.args = {"width": width, "global_dim": global_dim, "global_size": global_size, "tanh": tanh,
                     "flip_average": flip_average, "classes": classes, "exemplar": exemplar,
                     "shift_average": shift_average}
        k = width
        inputs = 3 if exemplar else 1  # L*, and the exemplar's a*b*
        low = [(inputs, k, 2), (k, 2 * k, 1), (2 * k, 2 * k, 2), (2 * k, 4 * k, 1), (4 * k, 4 * k, 2),
               (4 * k, 8 * k, 1)]
        self.low = nn.Sequential(*(_conv(c_in, c_out, stride) for c_in, c_out, stride in low))
        self.mid = nn.Sequential(_conv(8 * k, 8 * k), _conv(8 * k, 4 * k))
        self.global_conv = nn.Sequential(_conv(8 * k, 8 * k, 2), _conv(8 * k, 8 * k), _conv(8 * k, 8 * k, 2),
                                         _conv(8 * k, 8 * k))
        flat = 8 * k * (global_size // 32) ** 2
        self.global_fc = nn.Sequential(nn.Linear(flat, 16 * k), nn.ReLU(inplace=True), nn.Linear(16 * k, 8 * k),
                                       nn.ReLU(inplace=True), nn.Linear(8 * k, global_dim), nn.ReLU(inplace=True))
        self.fusion = _conv(4 * k + global_dim, 4 * k, kernel=1)
        half = max(1, k // 2)
        self.color = nn.Sequential(_conv(4 * k, 2 * k), nn.Upsample(scale_factor=2, mode="nearest"),
                                   _conv(2 * k, k), _conv(k, k), nn.Upsample(scale_factor=2, mode="nearest"),
                                   _conv(k, half), nn.Conv2d(half, 2, 3, padding=1))
        self.out = nn.Tanh() if tanh else nn.Identity()
        self.classify = nn.Sequential(nn.Linear(global_dim, global_dim), nn.ReLU(inplace=True),
                                      nn.Linear(global_dim, classes)) if classes else None

    def forward(self, l_norm):
        if self.training and self.classify is not None:
            self._check_sides(l_norm)
            ab_norm, global_vector = self._parts(l_norm)
            return ab_norm, self.classify(global_vector)
        return super().forward(l_norm)

    def _predict(self, l_norm):
        return self._parts(l_norm)[0]

    def _parts(self, l_norm):
        """(ab_norm, the global feature vector) of l_norm."""
        low = self.low(l_norm)
        size = self.args["global_size"]
        if l_norm.shape[-2:] != (size, size) and not self.training:
            # any photo: the global branch sees a fixed-size view of it
            view = nn.functional.interpolate(l_norm, size=(size, size), mode="bilinear", align_corners=False,
                                             antialias=True)
            global_low = self.low(view)
        else:  # a training batch, whatever its side (smaller in --low-res-epochs), shares the low-level pass
            global_low = low
        # the identity at global_size; a smaller training side's map is stretched to the fully connected input
        pooled = nn.functional.adaptive_avg_pool2d(self.global_conv(global_low), size // 32)
        global_vector = self.global_fc(pooled.flatten(1))
        mid = self.mid(low)
        tiled = global_vector[:, :, None, None].expand(-1, -1, *mid.shape[-2:])
        ab_half = self.out(self.color(self.fusion(torch.cat([mid, tiled], dim=1))))
        return (nn.functional.interpolate(ab_half, size=l_norm.shape[-2:], mode="bilinear", align_corners=False),
                global_vector)


class AveragedColorizers(nn.Module):
    """Trained per-pixel colorizers as one, for evaluation and colorizing: the average of their ab_norm
    predictions (two averaged members). Members trained apart partly err apart; as the squared error is convex, the
    average's MSE is never above the members' mean MSE, and lower the more they disagree. Each member keeps its own
    mirror averaging; inputs need sides that every member accepts."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.side_multiple = math.lcm(*(member.side_multiple for member in members))

    def forward(self, l_norm):
        return torch.stack([member(l_norm).float() for member in self.members]).mean(0)


class Exemplared(nn.Module):
    """A FusionColorizer trained with exemplar input (its args' `exemplar` = K), as a colorizer of l_norm alone: the
    input's two more channels are the mean ab_norm map of the K photos of the bank (`bank`: descriptors, `bank_ab`:
    ab_norm maps of the training photos) each photo looks most like. Without a bank (the training faces are
    missing) those channels are zero, as in the share of training images whose exemplar was dropped
    (train_colorize.py --exemplar-dropout), so the network still colorizes from L* alone."""

    def __init__(self, model, bank=None, bank_ab=None):
        super().__init__()
        self.model, self.k = model, model.args["exemplar"]
        self.register_buffer("bank", bank, persistent=False)
        self.register_buffer("bank_ab", bank_ab, persistent=False)
        self.side_multiple = model.side_multiple

    def forward(self, l_norm):
        if self.bank is None:
            colours = l_norm.new_zeros((len(l_norm), 2, *l_norm.shape[-2:]))
        else:
            colours = neighbours.exemplar(l_norm, self.bank, self.bank_ab, self.k).to(l_norm.dtype)
        return self.model(torch.cat([l_norm, colours], 1))


class Borrowed(nn.Module):
    """A trained per-pixel colorizer with what the training photos the photo looks most like lend each prediction
    (neighbours.weighted: the `k` nearest, each counting the more the nearer it is relative to the nearest, by
    `temperature`; `bank`: the training photos' descriptors):
    - with `bank_errors` (N x 2 x G x G, ab_norm: the network's error on each training photo, true minus predicted,
      averaged over a G x G grid), their weighted error, spread smoothly over the photo, is added: where the network
      errs on a sitting's photos (a shirt it paints the wrong colour) it errs alike on that sitting's other photos;
    - then the tint (mean a*b*) keeps only the fraction `keep` of its distance to their weighted true tint
      (`bank_tints`, ab_norm, one row each). Most of the error is the photo's tint (the light and background of its
      sitting), which the network guesses from L* alone; a photo of a sitting seen in training finds it among the
      neighbours, and a face never seen the most alike ones.
    With `unfamiliar` = (near, far, fraction), a photo that looks like no seen sitting (neighbours.unfamiliar: its
    nearest training photo beyond `far`; a linear share from `near`) borrows no errors and keeps at least `fraction`
    of its own tint: a face never seen has no sitting of its own among the training photos, and the most alike
    sittings' tint and errors are other people's, as often wrong as right (EXPERIMENTS.md, New faces).
    For evaluation and colorizing only."""

    def __init__(self, model, bank, bank_tints, k, keep, temperature, bank_errors=None, unfamiliar=None):
        super().__init__()
        self.model, self.k, self.keep, self.temperature = model, k, keep, temperature
        self.unfamiliar = unfamiliar
        self.register_buffer("bank", bank)
        self.register_buffer("bank_tints", bank_tints.reshape(-1, 2).float())
        self.register_buffer("bank_errors", None if bank_errors is None else bank_errors.float())
        self.side_multiple = model.side_multiple

    def lenders(self, l_norm):
        """(indices N x k, weights N x k) of each photo's nearest bank photos, and its distance to the nearest (N)."""
        distance, index = neighbours.nearest_distances(l_norm, self.bank, self.k)
        return index, neighbours.weights_of(distance, self.temperature), distance[:, 0]

    def unseen(self, nearest):
        """Each photo's unseen share (N values) from its distance to its nearest bank photo; None without
        `unfamiliar`."""
        return None if self.unfamiliar is None else neighbours.unfamiliar(nearest, *self.unfamiliar[:2])

    def lent_tint(self, index, weights):
        """The weighted true tint (N x 2) of the bank photos `lenders` names."""
        return torch.einsum("nk,nkc->nc", weights, self.bank_tints[index])

    def forward(self, l_norm):
        return self.lend(l_norm, *self.lenders(l_norm))

    def lend(self, l_norm, index, weights, nearest):
        """forward, given what `lenders(l_norm)` returns, so that a caller that also needs the lenders searches
        the bank once."""
        ab_norm = self.model(l_norm).float()
        keep, seen, unseen = self.keep, 1.0, self.unseen(nearest)
        if unseen is not None:
            keep, seen = (self.unfamiliar[2] * unseen).clamp(min=self.keep), (1 - unseen).reshape(-1, 1, 1, 1)
        if self.bank_errors is not None:
            error = torch.einsum("nk,nkcij->ncij", weights, self.bank_errors[index])
            ab_norm = ab_norm + seen * nn.functional.interpolate(error, size=l_norm.shape[-2:], mode="bilinear",
                                                                 align_corners=False)
        return data.pull_tint(ab_norm, self.lent_tint(index, weights), keep)


class FadedUnfamiliar(nn.Module):
    """A trained per-pixel colorizer whose colour fades where the photo looks unlike every training photo: each of the
    photo's 3x3 regions keeps all of its predicted a*b* where its distance to the nearest training photo's same
    region (neighbours.cell_distances; `bank`: their descriptors) is at most `full`, none beyond `none`, a linear
    share between; the kept fractions are spread smoothly over the photo (bilinear between the cells' centres).
    Why: the network has learned one photo studio; on a sky, a uniform or a flag it paints that studio's warm cast,
    which is worse than no colour (EXPERIMENTS.md, Photos from outside the dataset). For evaluation and colorizing
    only."""

    def __init__(self, model, bank, full, none):
        super().__init__()
        if not 0 <= full < none:
            raise ValueError(f"FadedUnfamiliar needs 0 <= full < none, got {full}, {none}")
        self.model, self.full, self.none = model, full, none
        self.register_buffer("bank", bank)
        self.side_multiple = model.side_multiple

    def forward(self, l_norm):
        return data.fade(self.model(l_norm).float(), neighbours.kept_fraction(l_norm, self.bank, self.full, self.none))


MODELS = {"MeanChromaNet": MeanChromaNet, "Colorizer": Colorizer, "FusionColorizer": FusionColorizer}
COLORIZERS = ("Colorizer", "FusionColorizer")


def build_model(kind, args):
    """Rebuild a network from the `model_kind` and `model_args` stored in a checkpoint."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}")
    return MODELS[kind](**args)

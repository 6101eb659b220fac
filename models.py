"""The two networks: MeanChromaNet (image-mean a*b* regressor) and Colorizer (per-pixel a*b*).

Owner of network architecture only. Both take l_norm (L* / 100, N x 1 x H x W) and return ab_norm (a*b* / AB_SCALE
from data.py); data.py turns that back into raw Lab. Every constructor argument is stored in `model.args`, so a
checkpoint holding {"model_kind", "model_args", "model"} rebuilds the network with `build_model`.
"""
import torch
from torch import nn

UPSAMPLE_KINDS = ("transpose", "nearest")


class MeanChromaNet(nn.Module):
    """Predicts each image's mean a* and mean b* from its L* channel: 128x128 in, 2 scalars out.

    Seven Conv2d modules, kernel 3, stride 2, padding 1, each halving the side: 128, 64, 32, 16, 8, 4, 2, 1.
    The first six have `features` maps and ReLU. The seventh maps them to 2 channels at 1x1: those two values are
    (mean a*, mean b*) / AB_SCALE. It ends in identity (or Tanh with `tanh=True`) instead of ReLU, because mean
    chroma is signed.
    """

    def __init__(self, features=3, tanh=False):
        super().__init__()
        self.args = {"features": features, "tanh": tanh}
        layers, channels = [], 1
        for _ in range(6):
            layers += [nn.Conv2d(channels, features, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = features
        layers += [nn.Conv2d(channels, 2, 3, stride=2, padding=1), nn.Tanh() if tanh else nn.Identity()]
        self.net = nn.Sequential(*layers)

    def forward(self, l_norm):
        if l_norm.shape[-2:] != (128, 128):
            raise ValueError(f"MeanChromaNet needs 128x128 input, got {tuple(l_norm.shape[-2:])}")
        return self.net(l_norm).flatten(1)


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


class Colorizer(nn.Module):
    """Encoder-decoder from l_norm (N x 1 x H x W) to ab_norm (N x 2 x H x W); H and W must divide by 2^levels.

    Down module i (Conv2d stride 2 + BatchNorm + ReLU) halves the side and has features[i] maps; up modules
    (ConvTranspose2d, or nearest upsampling + Conv2d, + BatchNorm + ReLU) double it back, mirroring the widths.
    With the default 5 levels a 128 input goes 128, 64, 32, 16, 8, 4 and back to 128. A 3x3 convolution then gives
    the 2 a*b* channels: linear, or Tanh with `tanh=True`. `skips=True` (beyond the spec) concatenates each down
    module's output, and the input L*, to the up path at the same size (U-Net style).
    """

    def __init__(self, levels=5, features=(16, 32, 64, 128, 128), upsample="transpose", tanh=False, skips=False):
        super().__init__()
        features = tuple(features) if len(features) > 1 else tuple(features) * levels
        if levels < 1 or len(features) != levels or min(features) < 1:
            raise ValueError(f"features needs {levels} positive widths (or one for all levels), got {features}")
        if upsample not in UPSAMPLE_KINDS:
            raise ValueError(f"upsample must be one of {UPSAMPLE_KINDS}, got {upsample!r}")
        self.args = {"levels": levels, "features": list(features), "upsample": upsample, "tanh": tanh,
                     "skips": skips}
        widths = (1,) + features
        self.down = nn.ModuleList(_down(widths[i], widths[i + 1]) for i in range(levels))
        # up[i] brings level i+1 (side / 2^(i+1)) to level i; its output width is that of level i (input: features[0])
        out_widths = (features[0],) + features[:-1]
        self.up = nn.ModuleList(
            _up(features[i] + (features[i] if skips and i < levels - 1 else 0), out_widths[i], upsample)
            for i in range(levels))
        self.head = nn.Conv2d(out_widths[0] + int(skips), 2, 3, padding=1)
        self.out = nn.Tanh() if tanh else nn.Identity()

    def forward(self, l_norm):
        side = 2 ** self.args["levels"]
        if l_norm.shape[-1] % side or l_norm.shape[-2] % side:
            raise ValueError(f"Colorizer with {self.args['levels']} levels needs sides divisible by {side}, "
                             f"got {tuple(l_norm.shape[-2:])}")
        skips = [l_norm]
        x = l_norm
        for module in self.down:
            x = module(x)
            skips.append(x)
        for i in reversed(range(len(self.up))):
            if self.args["skips"] and i < len(self.up) - 1:
                x = torch.cat([x, skips[i + 1]], dim=1)
            x = self.up[i](x)
        if self.args["skips"]:
            x = torch.cat([x, l_norm], dim=1)
        return self.out(self.head(x))


MODELS = {"MeanChromaNet": MeanChromaNet, "Colorizer": Colorizer}


def build_model(kind, args):
    """Rebuild a network from the `model_kind` and `model_args` stored in a checkpoint."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}")
    return MODELS[kind](**args)

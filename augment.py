"""RGB-space augmentation of the training set: `factor` copies of every image (flip, crop-resize, brightness,
optionally rotation).

Owner of augmentation only; it knows nothing of Lab. Test images never come here.

Every copy independently gets a horizontal flip (p=0.5), a random crop (side 70-100% of the image, random
position) resized back to the full size with bilinear interpolation, and all of R, G, B multiplied by one scalar
drawn from [0.6, 1.0]. For stronger geometric augmentation (beyond the spec; --crop-min, --rotate) the smallest
crop side can be lowered and the crop rotated about its centre, uniformly in +-`rotate` degrees (0, the default:
none); corners a rotation brings in from outside repeat the border. Copy 0 of every image is the unmodified
original, so the network always also sees the true images (our choice; the spec leaves it open). Flip, crop and
rotation are one bilinear resampling (`grid_sample`) over the whole batch, so there is no per-image Python loop.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FACTOR = 10
CROP_RANGE = (0.7, 1.0)
SCALE_RANGE = (0.6, 1.0)
_CHUNK = 512  # images per grid_sample call: bounds the temporary sampling grid


@dataclass
class AugmentParams:
    """Per-copy random draws, tensors of length N * factor: copies of image i at i*factor ... i*factor+factor-1."""
    flip: torch.Tensor      # bool
    side: torch.Tensor      # crop side as a fraction of the image side
    center: torch.Tensor    # crop centre, N x 2 (x, y), in [-1, 1] image coordinates
    scale: torch.Tensor     # RGB multiplier
    angle: torch.Tensor | None = None  # rotation in radians; None: no rotation (the default augmentation)

    def __getitem__(self, part):
        """The params of a slice of the copies."""
        return AugmentParams(self.flip[part], self.side[part], self.center[part], self.scale[part],
                             None if self.angle is None else self.angle[part])

    def to(self, device):
        return AugmentParams(self.flip.to(device), self.side.to(device), self.center.to(device), self.scale.to(device),
                             None if self.angle is None else self.angle.to(device))


def _uniform(n, low, high, generator):
    return low + (high - low) * torch.rand(n, generator=generator)


def sample_params(n_images, factor=FACTOR, seed=0, keep_original=True, crop_min=CROP_RANGE[0], rotate=0.0):
    """Draw the augmentation of `factor` copies of each of `n_images` images, reproducibly from `seed`: crop sides
    in [crop_min, 1], rotations in +-`rotate` degrees (drawn last, so the other draws do not depend on it).

    Drawn on the CPU from a seeded generator whatever device the images are on (move them with .to(device)),
    so one seed gives the same augmentation on a CPU and on a GPU.
    """
    generator = torch.Generator().manual_seed(seed)
    n = n_images * factor
    flip = torch.rand(n, generator=generator) < 0.5
    side = _uniform(n, crop_min, CROP_RANGE[1], generator)
    center = (1 - side).unsqueeze(1) * _uniform(2 * n, -1.0, 1.0, generator).view(n, 2)
    scale = _uniform(n, *SCALE_RANGE, generator)
    angle = _uniform(n, -rotate, rotate, generator) * (math.pi / 180) if rotate else None
    if keep_original:
        original = torch.arange(0, n, factor)
        flip[original] = False
        side[original] = 1.0
        center[original] = 0.0
        scale[original] = 1.0
        if angle is not None:
            angle[original] = 0.0
    return AugmentParams(flip, side, center, scale, angle)


def _sampling_grid(params, height, width):
    """grid_sample coordinates of each copy's (flipped, rotated) crop: an affine map of the pixel centres.

    Built directly rather than with affine_grid, whose general 2x3 matrix product was half the augmentation time;
    without rotation the map is axis-aligned and costs two products fewer.
    """
    n, device = len(params.scale), params.scale.device
    x_centres = (torch.arange(width, device=device) * 2 + 1) / width - 1  # align_corners=False convention
    y_centres = (torch.arange(height, device=device) * 2 + 1) / height - 1
    x_scale = torch.where(params.flip, -params.side, params.side)
    x = x_scale.view(n, 1, 1) * x_centres.view(1, 1, width)
    y = params.side.view(n, 1, 1) * y_centres.view(1, height, 1)
    grid = torch.empty(n, height, width, 2, device=device)
    if params.angle is None:
        grid[..., 0] = x + params.center[:, 0].view(n, 1, 1)
        grid[..., 1] = y + params.center[:, 1].view(n, 1, 1)
        return grid
    cos, sin = params.angle.cos().view(n, 1, 1), params.angle.sin().view(n, 1, 1)
    grid[..., 0] = cos * x - sin * y + params.center[:, 0].view(n, 1, 1)
    grid[..., 1] = sin * x + cos * y + params.center[:, 1].view(n, 1, 1)
    return grid


def apply_params(rgb, params):
    """Apply `params` (on rgb's device) to rgb (N x 3 x H x W in [0, 1]); returns len(params.scale) images of the
    same size, on the same device.

    Each source image's copies are sampled in one grid_sample call as if stacked vertically (grid of
    factor*H rows), which avoids gathering factor copies of every source image first.
    """
    n_src, (channels, height, width) = len(rgb), rgb.shape[1:]
    factor = len(params.scale) // n_src
    out = rgb.new_empty((n_src * factor, channels, height, width))
    step = max(1, _CHUNK // factor)
    for start in range(0, n_src, step):
        sources = rgb[start:start + step]
        copies = slice(start * factor, (start + len(sources)) * factor)
        grid = _sampling_grid(params[copies], height, width).view(len(sources), factor * height, width, 2)
        stacked = F.grid_sample(sources, grid, mode="bilinear", padding_mode="border", align_corners=False)
        torch.mul(stacked.view(len(sources), channels, factor, height, width).transpose(1, 2),
                  params.scale[copies].view(len(sources), factor, 1, 1, 1),
                  out=out[copies].view(len(sources), factor, channels, height, width))
    return out


def augment(rgb, factor=FACTOR, seed=0, keep_original=True, crop_min=CROP_RANGE[0], rotate=0.0):
    """`factor` augmented copies of every image of rgb (N x 3 x H x W, [0, 1]): a (N * factor) x 3 x H x W tensor."""
    params = sample_params(len(rgb), factor, seed, keep_original, crop_min, rotate)
    return apply_params(rgb, params.to(rgb.device))

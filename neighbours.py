"""The training photos a photo looks most like: the nearest sittings, whose true tint a prediction borrows.

Owner of the photo descriptor and the nearest-neighbour search only (the tint itself is `data.tint`, its use
`models.TintPulled`). Why: most of the error is a photo's overall tint (its mean a*b*: the light and background of
the sitting), which its L* does not tell the network; the training photos of the same sitting, or of the most alike
one for a face never seen, do (EXPERIMENTS.md, New faces).

The descriptor: the histogram of L* (64 levels) in each cell of a 3x3 grid, each count divided by its cell's pixels
and square-rooted, so that the Euclidean distance between two descriptors is the Hellinger distance of their
histograms. It describes a sitting's light and background more than a face's shape (the 15 photos of a person in
this dataset share them), is the same at any resolution, and needs no network, so it serves any checkpoint.
"""
import torch

CELLS = 3
LEVELS = 64


def describe(l_norm):
    """N x (CELLS^2 * LEVELS) descriptors of l_norm (N x 1 x H x W, L* / 100)."""
    n, _, height, width = l_norm.shape
    device = l_norm.device
    level = (l_norm[:, 0].float() * LEVELS).long().clamp_(0, LEVELS - 1)
    rows = torch.arange(height, device=device) * CELLS // height
    cols = torch.arange(width, device=device) * CELLS // width
    cell = rows[:, None] * CELLS + cols[None, :]
    index = (cell * LEVELS + level).flatten(1)
    counts = torch.zeros(n, CELLS * CELLS * LEVELS, device=device).scatter_add_(
        1, index, torch.ones(index.shape, device=device))
    pixels = torch.bincount(cell.flatten(), minlength=CELLS * CELLS).repeat_interleave(LEVELS)
    return (counts / pixels).sqrt()


def nearest(l_norm, bank, k):
    """Indices (N x k) of the k descriptors of `bank` nearest to each photo of l_norm, nearest first."""
    return torch.cdist(describe(l_norm), bank).topk(min(k, len(bank)), largest=False).indices

"""The training photos a photo looks most like: the nearest sittings, whose true tint a prediction borrows.

Owner of the photo descriptor and the nearest-neighbour searches only: whole photos (`nearest`; `weighted`, how much
each counts: `models.Borrowed` lends a prediction their true tint and the network's error on them; `exemplar`, their
colour maps, an input of a network trained with them) and each region of a photo (`cell_distances`: how unlike every
training photo it looks, used by `models.FadedUnfamiliar`). Why: most of the error is a photo's overall tint (its
mean a*b*: the light and background of the sitting), which its L* does not tell the network; the training photos of
the same sitting, or of the most alike one for a face never seen, do (EXPERIMENTS.md, New faces). And where the
network errs on a sitting's training photos (a shirt it paints the wrong colour), it errs alike on that sitting's
other photos.

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


def nearest(l_norm, bank, k, excluded=None):
    """Indices (N x k) of the k descriptors of `bank` nearest to each photo of l_norm, nearest first; never those
    `excluded` (N x len(bank), bool) marks for a photo."""
    distance = torch.cdist(describe(l_norm), bank)
    if excluded is not None:
        distance = distance.masked_fill(excluded, float("inf"))
    return distance.topk(min(k, len(bank)), largest=False).indices


def nearest_distances(l_norm, bank, k):
    """(distances, indices), each N x k: the k descriptors of `bank` nearest to each photo of l_norm, nearest first."""
    return torch.cdist(describe(l_norm), bank).topk(min(k, len(bank)), largest=False)


def weights_of(distance, temperature):
    """The weights of `weighted` from its nearest_distances `distance` (N x k, nearest first)."""
    return torch.softmax(-(distance / distance[:, :1].clamp_min(1e-6)) / temperature, 1)


def weighted(l_norm, bank, k, temperature):
    """(indices N x k, weights N x k summing to 1) of the k descriptors of `bank` nearest to each photo of l_norm:
    softmax(-(d / d_nearest) / temperature) over their distances d. Relative to the nearest, so that a photo whose
    own sitting is in the bank (its nearest far nearer than the rest) takes mostly that sitting's colours, and a face
    never seen (all of them about as far) their mean; a large temperature gives the plain mean."""
    distance, index = nearest_distances(l_norm, bank, k)
    return index, weights_of(distance, temperature)


def unfamiliar(nearest, near, far):
    """N values in [0, 1]: how unlike every photo of a bank each photo looks, by `nearest`, its distance to its nearest
    one (nearest_distances): 0 within `near`, 1 beyond `far`, linearly between. A face never seen has no sitting of
    its own in the bank, so what the bank lends it comes from other people."""
    return ((nearest - near) / (far - near)).clamp(0, 1)


def exemplar(l_norm, bank, bank_ab, k, excluded=None, chunk=256):
    """N x 2 x H x W: for each photo of l_norm, the mean ab_norm map of the k photos of `bank` (their descriptors;
    `bank_ab`: their ab_norm maps) it looks most like, resized to its side. `excluded` (N x len(bank), bool) marks
    the bank photos a photo may not borrow from: in training itself, or every photo of its person, so that a
    training photo meets its neighbours as a test photo will. In chunks of photos, so that the k maps of each are
    never all held at once."""
    maps = []
    for start in range(0, len(l_norm), chunk):
        part = l_norm[start:start + chunk]
        index = nearest(part, bank, k, None if excluded is None else excluded[start:start + chunk])
        mean = bank_ab[index].mean(1)
        if mean.shape[-2:] != part.shape[-2:]:
            mean = torch.nn.functional.interpolate(mean, size=part.shape[-2:], mode="bilinear", align_corners=False)
        maps.append(mean)
    return torch.cat(maps)


def cell_distances(l_norm, bank):
    """N x CELLS x CELLS: each cell's distance (Hellinger, of its L* histogram) to the same cell of the training photo
    of `bank` whose cell is nearest; each cell may find another photo. Regions unlike any training photo's (a blue
    sky, a uniform) are far, a face's and a studio background's near."""
    n = len(l_norm)
    cells = describe(l_norm).view(n, CELLS * CELLS, LEVELS).transpose(0, 1)
    bank_cells = bank.view(len(bank), CELLS * CELLS, LEVELS).transpose(0, 1)
    return torch.cdist(cells, bank_cells).amin(2).T.reshape(n, CELLS, CELLS)


def kept_fraction(l_norm, bank, full, none):
    """N x 1 x H x W: the share of its colour each pixel keeps (models.FadedUnfamiliar): all in a cell within `full`
    of the nearest training photo's same cell (cell_distances), none beyond `none`, linearly between; spread
    smoothly over the photo (bilinear between the cells' centres, so no cell's edge shows)."""
    distance = cell_distances(l_norm, bank)[:, None]
    kept = ((none - distance) / (none - full)).clamp(0, 1)
    return torch.nn.functional.interpolate(kept, size=l_norm.shape[-2:], mode="bilinear", align_corners=False)

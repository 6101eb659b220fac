"""How familiar a photo is to a trained colorizer: a new photo of a sitting it was trained on, or a face never seen.

Owner of the familiarity gate only: the descriptor, its fit on the training photos and the probability it gives.
Why: on a face never seen most of the network's error is the photo's overall tint, and pulling the tint toward the
training images' mean color (`data.pull_tint`) lowers it there but raises it on new photos of people seen; the gate
pulls each photo only as far as it looks new.

- The descriptor: the histogram of L* (64 levels) in each cell of a 3x3 grid, each count divided by its cell's
  pixels and square-rooted, so that the Euclidean distance between two descriptors is the Hellinger distance of
  their histograms. It is a sitting's light and background more than a face's shape: the 15 photos of a person in
  this dataset share them, and it needs no network (any checkpoint, any architecture).
- The fit: on the training photos alone, each one's distance to the nearest *other* training photo (as a new photo
  of a person seen would be) and to the nearest photo of *another person* (as a face never seen would be); a
  logistic regression on the log distance between these two sets, equal in size, gives P(seen | distance).
- At use: a photo's distance to the nearest training photo, through that regression.
"""
import torch
import torch.nn.functional as F

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


def _log_distance(distance):
    return distance.clamp(min=1e-6).log()


def fit(l_norm, people):
    """The gate of a colorizer trained on l_norm (its un-augmented training photos) picturing `people` (a label
    each): {"bank": their descriptors, "logistic": (intercept, slope) of P(seen) on the log distance}."""
    bank = describe(l_norm)
    distance = torch.cdist(bank, bank)
    labels = {person: i for i, person in enumerate(sorted(set(people)))}
    person = torch.tensor([labels[p] for p in people], device=bank.device)
    same_person = person[:, None] == person[None, :]
    other_photo = distance.fill_diagonal_(float("inf")).min(1).values
    other_person = distance.masked_fill(same_person, float("inf")).min(1).values
    if not torch.isfinite(other_person).all():
        raise ValueError("the familiarity gate needs training photos of at least two people")
    x = _log_distance(torch.cat([other_photo, other_person]))
    seen = torch.cat([torch.ones_like(other_photo), torch.zeros_like(other_person)])
    logistic = torch.zeros(2, device=bank.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([logistic], max_iter=100, line_search_fn="strong_wolfe")

    def loss():
        optimizer.zero_grad()
        value = F.binary_cross_entropy_with_logits(logistic[0] + logistic[1] * x, seen)
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)
    return {"bank": bank, "logistic": logistic.detach()}


def seen_probability(l_norm, bank, logistic):
    """P(the photo is of a sitting seen in training), one per image of l_norm (N x 1 x H x W)."""
    nearest = torch.cdist(describe(l_norm), bank).min(1).values
    return torch.sigmoid(logistic[0] + logistic[1] * _log_distance(nearest))

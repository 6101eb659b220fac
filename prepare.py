"""The data a training run sees, on its device: the split, the augmented Lab training set and the held-out split.

Owner of: load + split before augmentation (and a validation part with --val-fraction), the x`factor`
augmentation converted to (l_norm, ab_norm) chunk by chunk, a fresh draw per epoch (--fresh-augment) and its
half-side form (--low-res-epochs), the exemplar channels of a network trained with the nearest photos' colours
(--exemplar), the person in each training image (for the identity loss) and the shuffled (per-rank) mini-batch
indices.
"""
import torch

import data
import neighbours
from augment import CROP_RANGE, apply_params, sample_params
from runtime import UserError


def augmented_network_data(rgb, factor, seed, out=None, crop_min=CROP_RANGE[0], rotate=0.0):
    """Augment rgb x`factor` (crop sides from crop_min, rotations within +-rotate degrees) and convert to (l_norm,
    ab_norm) on rgb's device, a chunk of source images at a time; `out` = (l_norm, ab_norm) tensors to overwrite
    instead of new ones.

    Same result as data.to_network(augment(rgb, factor, seed, ...)), without holding the whole augmented RGB set. On a
    CPU, chunks of 16 sources (about 30 MB of temporaries) stay under glibc's mmap threshold, so their memory is
    reused instead of page-faulted in again for every chunk; a GPU takes bigger chunks (fewer kernel launches).
    """
    params = sample_params(len(rgb), factor, seed, crop_min=crop_min, rotate=rotate).to(rgb.device)
    count = len(rgb) * factor
    l_norm, ab_norm = out if out is not None else (rgb.new_empty((count, 1, *rgb.shape[2:])),
                                                   rgb.new_empty((count, 2, *rgb.shape[2:])))
    chunk, convert_chunk = (16, 16) if rgb.device.type == "cpu" else (128, 128 * factor)
    for start in range(0, len(rgb), chunk):
        copies = slice(start * factor, (start + chunk) * factor)
        data.to_network(apply_params(rgb[start:start + chunk], params[copies]), chunk=convert_chunk,
                        out=(l_norm[copies], ab_norm[copies]))
    return l_norm, ab_norm


def prepare_data(args, device):
    """Load, split 90/10 by image or by person (--split-by; and a validation part, with --val-fraction) before
    augmentation, then augment the training part and convert both parts to Lab on `device` (only the decoded
    faces cross from the CPU).

    Returns a dict: train_l/train_ab (augmented, l_norm / ab_norm), eval_l/eval_ab (the held-out split the run
    is evaluated on), eval_x (the network's input for eval_l: eval_l itself, or with --exemplar its exemplar channels
    too), eval_split ("test", or "val" with --val-fraction), train_rgb (the training faces on the
    device, for --fresh-augment), train_draw (which epoch's draw train_l/train_ab hold), train_names, val_names,
    test_names.
    """
    rgb, names = data.load_faces(args.data_dir, args.limit)
    groups = data.people_of(names, args.data_dir) if args.split_by == "person" else None
    split_seed = args.seed if args.split_seed is None else args.split_seed
    train_idx, val_idx, test_idx = data.split_indices(len(rgb), split_seed, val_fraction=args.val_fraction,
                                                      groups=groups, fold=args.fold)
    eval_split, eval_idx = ("val", val_idx) if args.val_fraction > 0 else ("test", test_idx)
    if len(train_idx) == 0 or len(eval_idx) == 0:
        raise UserError(f"{len(rgb)} image(s) are too few to split into training and {eval_split} images")
    train_rgb = rgb[train_idx].to(device)
    train_l, train_ab = augmented_network_data(train_rgb, args.augment_factor, _draw_seed(args.seed, 1),
                                               crop_min=args.crop_min, rotate=args.rotate)
    eval_l, eval_ab = data.to_network(rgb[eval_idx].to(device))
    prepared = {"train_l": train_l, "train_ab": train_ab, "train_draw": 1,
                "eval_l": eval_l, "eval_x": eval_l, "eval_ab": eval_ab, "eval_split": eval_split,
                "train_rgb": train_rgb if args.fresh_augment else None,
                **{f"{split}_names": [names[i] for i in idx]
                   for split, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))}}
    if getattr(args, "exemplar", 0):  # train_mean.py has no such flag
        prepared["exemplar"] = _exemplar_bank(train_rgb, prepared["train_names"], args)
        prepared["eval_x"] = torch.cat([eval_l, neighbours.exemplar(eval_l, *prepared["exemplar"]["bank"],
                                                                    args.exemplar)], 1)
    return prepared


def _exemplar_bank(train_rgb, train_names, args):
    """What --exemplar needs: the training photos' descriptors and ab_norm maps (the bank test photos borrow from),
    and each training photo's own exemplar, from the K nearest of the photos --exemplar-from lets it borrow from
    (not itself, or not its person's), in its own frame."""
    bank_l, bank_ab = data.to_network(train_rgb)
    if args.exemplar_from == "photo":
        owner = torch.arange(len(train_rgb), device=train_rgb.device)
    else:
        people = data.people_of(train_names, args.data_dir)
        owner = torch.tensor([sorted(set(people)).index(person) for person in people], device=train_rgb.device)
    bank = neighbours.describe(bank_l)
    return {"bank": (bank, bank_ab),
            "own": neighbours.exemplar(bank_l, bank, bank_ab, args.exemplar, owner[:, None] == owner[None, :])}


def person_labels(prepared, data_dir, augment_factor, device):
    """For the identity loss (--identity-weight): the person in each of the `augment_factor` augmented copies of each
    training image, as an index into the sorted list of the training split's people (on `device`), and that list."""
    people = data.people_of(prepared["train_names"], data_dir)
    classes = sorted(set(people))
    index = torch.tensor([classes.index(person) for person in people])
    return index.repeat_interleave(augment_factor).to(device), classes  # copies of image i are i*factor...


def training_data(prepared, args, epoch):
    """The augmented training pair for `epoch`: the prepared one, or with --fresh-augment a new draw for every
    epoch after the first (seeded by seed and epoch, so a resumed run sees the same images), written over the
    previous draw where it lies, so the augmented set is held once. In the first --low-res-epochs epochs
    (train_colorize.py) the pair is at half its side, each pixel the mean of 2x2 (progressive resizing: a quarter
    of the pixels to train on). With --exemplar the first of the pair has two more channels, the exemplar
    (exemplar_channels)."""
    pair = _augmented(prepared, args, epoch)
    if "exemplar" in prepared:
        pair = (torch.cat([pair[0], exemplar_channels(prepared, args)], 1), pair[1])
    if epoch <= getattr(args, "low_res_epochs", 0):  # train_mean.py has no such flag
        return tuple(torch.nn.functional.avg_pool2d(images, 2) for images in pair)
    return pair


def exemplar_channels(prepared, args):
    """The exemplar of each augmented training image of the draw held: its photo's own exemplar (_exemplar_bank),
    flipped and cropped as the photo was (the neighbours are found from the photo itself, as a test photo's are: a
    darkened copy would find darker sittings), zero for a share --exemplar-dropout of them (drawn per draw), so that
    the network also learns to colorize without one, as it must where the training faces are missing."""
    own = prepared["exemplar"]["own"]
    seed = _draw_seed(args.seed, prepared["train_draw"])
    params = sample_params(len(own), args.augment_factor, seed, crop_min=args.crop_min, rotate=args.rotate)
    params.scale = torch.ones_like(params.scale)  # the brightness is the photo's, not its colours'
    colours = apply_params(own, params.to(own.device))
    dropped = torch.rand(len(colours), generator=torch.Generator().manual_seed(seed)) < args.exemplar_dropout
    return colours.masked_fill_(dropped.to(colours.device)[:, None, None, None], 0.0)


def _augmented(prepared, args, epoch):
    if not args.fresh_augment:
        return prepared["train_l"], prepared["train_ab"]
    if prepared["train_draw"] != epoch:
        augmented_network_data(prepared["train_rgb"], args.augment_factor, _draw_seed(args.seed, epoch),
                               out=(prepared["train_l"], prepared["train_ab"]), crop_min=args.crop_min,
                               rotate=args.rotate)
        prepared["train_draw"] = epoch
    return prepared["train_l"], prepared["train_ab"]


def _draw_seed(seed, epoch):
    """The augmentation seed of `epoch`'s draw: the run's own seed for the first (the one fixed set without
    --fresh-augment), a distinct one for each later epoch."""
    return seed if epoch == 1 else seed * 1000 + epoch


def minibatches(n, batch_size, seed, rank=0, world=1):
    """Shuffled index tensors covering range(n), or rank's equal-sized shard of them; the order depends only
    on `seed`. With several ranks the last n % world samples of the epoch's order are left out."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:n - n % world][rank::world].split(batch_size)

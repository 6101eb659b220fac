"""Command-line flags shared by the training scripts, the flag types every script uses, and the --help format.

Owner of: the common training flags (data, epochs, batch, learning rate, weight decay, augmentation, seed, device,
cross-validation fold or split seed, output folder, resume, bf16, compile) and their defaults per script;
positive_int and the other argparse types; HelpFormatter.
"""
import argparse
import math

from data import DATA_DIR_HELP, FOLDS


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def nonnegative_float(text):
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _float_in(name, low, high, what, open_high=False):
    """An argparse type accepting floats in [low, high] ([low, high) if open_high); argparse names it `name` in its
    "invalid ... value" message for text that is not a number."""
    def parse(text):
        value = float(text)
        if not (low <= value < high if open_high else low <= value <= high):  # NaN fails both
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    parse.__name__ = name
    return parse


def fold_index(text):
    value = int(text)
    if not 0 <= value < FOLDS:
        raise argparse.ArgumentTypeError(f"must be a fold from 0 to {FOLDS - 1}, got {text}")
    return value


fraction = _float_in("fraction", 0, 0.5, "a fraction in [0, 0.5)", open_high=True)
decay = _float_in("decay", 0, 1, "a number in [0, 1)", open_high=True)
crop_side = _float_in("crop_side", 0.1, 1, "a fraction in [0.1, 1]")
degrees = _float_in("degrees", 0, 90, "an angle in [0, 90] degrees")
unit_fraction = _float_in("unit_fraction", 0, 1, "a fraction in [0, 1]")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's line breaks and shows every flag's default (except "None": such flags say in
    their help what leaving them out does)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def add_common_args(parser, epochs, lr, out_dir, lr_schedule="constant", fresh_augment=False, crop_min=0.7):
    """Flags every training script has; defaults differ per script."""
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--limit", type=positive_int, help="use only the first LIMIT images (quick runs)")
    parser.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the augmented training set")
    parser.add_argument("--batch-size", type=positive_int, default=10, help="images per training step")
    parser.add_argument("--lr", type=positive_float, default=lr, help="Adam learning rate")
    parser.add_argument("--weight-decay", type=nonnegative_float, default=0.0,
                        help="AdamW's decoupled weight decay, e.g. 0.05 (0: plain Adam; beyond the spec)")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine", "one-cycle"), default=lr_schedule,
                        help="learning rate: constant; cosine: per epoch, decaying to 0 at the last epoch; "
                             "one-cycle: per step, a warm-up to --lr over the first 30%% of the steps, then a cosine "
                             "decay (torch's OneCycleLR)")
    parser.add_argument("--augment-factor", type=positive_int, default=10,
                        help="copies of each training image (1: no augmentation)")
    parser.add_argument("--fresh-augment", action=argparse.BooleanOptionalAction, default=fresh_augment,
                        help="draw new random augmentations every epoch instead of one fixed augmented set")
    parser.add_argument("--crop-min", type=crop_side, default=crop_min,
                        help="smallest side of an augmented copy's random crop, as a fraction of the image side")
    parser.add_argument("--rotate", type=degrees, default=0.0, metavar="DEG",
                        help="rotate each augmented copy by a random angle in [-DEG, DEG] degrees (0: no rotation)")
    parser.add_argument("--val-fraction", type=fraction, default=0.0,
                        help="hold out this fraction of all images from training (before augmentation) and evaluate "
                             "on it instead of the test split: for choosing settings without looking at the test set")
    parser.add_argument("--split-by", choices=("image", "person"), default="image",
                        help="image: any 10%% of the photos are tested (the course's split; their people are also "
                             "in training); person: 10%% of the people, all their photos, are tested (and "
                             "--val-fraction holds out people too), for faces never seen in training; who is who "
                             "comes from identities/face_identities.csv")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--fold", type=fold_index, metavar="K",
                       help=f"k-fold cross-validation: test fold K of {FOLDS} (0-{FOLDS - 1}) of one fixed shuffle, "
                            f"and validate (--val-fraction) the folds after it; --seed then seeds only the "
                            f"augmentation, init and batch order. Fold 0 is --seed 0's split")
    split.add_argument("--split-seed", type=int, metavar="S",
                       help="seed the split with S instead of --seed, which then seeds only the augmentation, init "
                            "and batch order: the same split trained again with other draws, to measure how far "
                            "training alone moves a figure")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the split (unless --fold or --split-seed), augmentation, init and batch order")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available, else CPU")
    parser.add_argument("--out-dir", default=out_dir,
                        help="checkpoint, log and plots go here; a run already saved there is never overwritten "
                             "(continue it with --resume). The shipped model in outputs/ is not written by default")
    parser.add_argument("--tanh", action="store_true", help="Tanh output, a*b* targets scaled to [-1, 1]")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out-dir")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="train in bfloat16 autocast (forward pass; weights and optimiser stay float32), or "
                             "force float32 with --no-bf16. Default: bfloat16 on a CPU with AMX (bench.py's first "
                             "lines say which), float32 elsewhere: on a CPU without AMX and on a CUDA GPU bfloat16 "
                             "was slower (docs/speed.md, docs/gpu.md); the start line says which runs")
    parser.add_argument("--ema", type=decay, default=0.0, metavar="DECAY",
                        help="evaluate and save an exponential moving average of the weights, updated after every "
                             "step with this decay, e.g. 0.999, its BatchNorm statistics recomputed on training "
                             "images each epoch (0: off; beyond the spec; within the noise of the trained weights)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    parser.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune"), default="default",
                        help="--compile: torch.compile's mode; reduce-overhead replays each step as a CUDA graph")

"""Evaluate a trained colorizer (or the average of several, given several --checkpoint paths) on its test split (or
validation split) and save PNGs; or colorize any photos with --input.

Owner of this script's CLI, of writing images, and of the network's errors on its training photos kept
beside a run's checkpoint between runs (kept_errors). The split is rebuilt from the file names stored in the
checkpoint. For --input, the photo's own full-resolution L* is kept: the network runs on a resized L*, its a*b*
is upsampled back to full size and merged with the original L* (as in richzhang/colorization). By default the
network's prediction is averaged over the photo moved a few pixels each way (models.shift_averaged), and each
prediction borrows from its 10 nearest training photos (neighbours.py, models.Borrowed), each counting the more the
nearer it is: the network's error on them (true minus predicted a*b*, on an 8x8 grid) is added and its tint (mean
a*b*) replaced by their true tint, except in a photo that looks like no seen sitting (a face never seen: it borrows
no errors and keeps half its own tint); then its colour fades in the regions that look unlike every training photo
(models.FadedUnfamiliar); both need the faces the checkpoint was trained on. --score measures --input photos that
are colour originals against their own colours.
"""
import argparse
import contextlib
import hashlib
import sys
from pathlib import Path
from typing import NamedTuple

import cv2
import torch
import torch.nn.functional as F
from torch import nn

import checkpoints
import data
import neighbours
import output_files
import runtime
import train_flags
import training_loop
from models import COLORIZERS, SHIFT, AveragedColorizers, Borrowed, Exemplared, FadedUnfamiliar, build_model

HERE = Path(__file__).resolve().parent
TRAINED = Path("runs/colorizer/colorizer.pt")
SHIPPED = Path("outputs/colorizer.pt")  # beside the scripts, wherever they are run from
AVERAGING = ("flip_average", "shift_average")  # the test-time averaging a shipped Lent was computed with
# chosen on validation photos and people (EXPERIMENTS.md, New faces: "Borrowing from the nearest photos")
DEFAULT_TINT_NEIGHBOURS = 10
DEFAULT_NEIGHBOUR_TEMPERATURE = 0.1
# a photo counts as a seen sitting within 0.85 of its nearest training photo, as a face never seen beyond 1.2: about
# the median distance of a training photo to its nearest photo of the same person (0.80-0.84) and of another person
# (1.20-1.22; screen_tints.py prints both). A face never seen keeps half its own tint: chosen with these distances on
# the validation people of the 10-fold cross-validation and the validation photos of seen people (screen_tints.py
# --crossval; EXPERIMENTS.md, New faces: "A face never seen: half its own tint")
DEFAULT_UNSEEN_DISTANCE = (0.85, 1.2)
DEFAULT_UNFAMILIAR_KEEP = 0.5
ERROR_GRID = 8  # the network's errors are borrowed as their means over an 8x8 grid: sittings, not pixels, align
# chosen on validation photos, validation people and the four outside photos (choose_fade.py; EXPERIMENTS.md,
# Photos from outside the dataset; 0.5 0.7 until the unfamiliar faces kept half their own tint, then 0.6 0.7 until
# the validation people were the 37 of the cross-validation's folds)
DEFAULT_FADE = (0.4, 0.8)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=train_flags.HelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", type=Path, metavar="PATH",
                        help=f"trained colorizer checkpoint (default: {TRAINED}, what train_colorize.py writes by "
                             f"default, if it exists, else the shipped model {SHIPPED} beside the scripts); several: "
                             f"their predictions are averaged (for the dataset they must share one split: the same "
                             f"--seed and --split-by)")
    parser.add_argument("--data-dir", help=data.DATA_DIR_HELP)
    parser.add_argument("--out-dir", help="where PNGs are written (default: colorized/ beside the checkpoint)")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="held-out split to evaluate: val needs a checkpoint trained with --val-fraction "
                             "(a screening run)")
    parser.add_argument("--train", action="store_true", help="also evaluate the (un-augmented) training images")
    parser.add_argument("--baselines", action="store_true",
                        help="also print the reference points on the --split images: a*=b*=0, the training images' "
                             "mean color, each image's own mean color")
    parser.add_argument("--pngs", type=train_flags.nonnegative_int, default=12,
                        help="images per split saved as [input | prediction | truth] PNGs and in the grid")
    parser.add_argument("--batch-size", type=train_flags.positive_int, default=50, help="images per evaluation batch")
    parser.add_argument("--input", nargs="+", metavar="PATH", help="colorize these images or folders instead")
    parser.add_argument("--work-size", type=train_flags.positive_int, default=256,
                        help="--input: longest side the network sees (rounded to what the network needs: 8 for "
                             "the fusion network, 2^levels for the U-Net)")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction,
                        help="average each prediction with that of the mirror image, mirrored back (default: as "
                             "the checkpoint was trained)")
    parser.add_argument("--shift-average", action=argparse.BooleanOptionalAction, default=True,
                        help=f"average the network's prediction over the photo and its 8 copies moved {SHIFT} pixels "
                             f"along either axis or both, each moved back (9x the network's work)")
    parser.add_argument("--tint-neighbours", type=train_flags.positive_int, metavar="K",
                        help=f"each prediction borrows from the K training photos whose L* looks most like the "
                             f"photo's (neighbours.py: a sitting's light and background): their true tint (mean "
                             f"a*b*) and, with --borrow-errors, the network's error on them (default: "
                             f"{DEFAULT_TINT_NEIGHBOURS}); needs the faces the checkpoint was trained on")
    parser.add_argument("--neighbour-temperature", type=train_flags.positive_float, metavar="T",
                        help=f"each of the K nearest counts softmax(-(d / d_nearest) / T) of its distance d: a photo "
                             f"whose own sitting was trained on takes mostly its colours, a face never seen about the "
                             f"mean of the K; a large T (1000) gives their plain mean (default: "
                             f"{DEFAULT_NEIGHBOUR_TEMPERATURE:g}); needs the faces the checkpoint was trained on")
    parser.add_argument("--borrow-errors", action=argparse.BooleanOptionalAction,
                        help=f"add to each prediction the network's error on its nearest training photos (true minus "
                             f"predicted a*b*, their means over a grid of {ERROR_GRID}x{ERROR_GRID} cells, weighted as "
                             f"the tint): where it errs on a sitting's photos it errs alike on the sitting's others; "
                             f"costs a pass over the training photos (default: on; needs the faces the checkpoint was "
                             f"trained on)")
    parser.add_argument("--tint-keep", type=train_flags.unit_fraction, metavar="FRACTION",
                        help="keep this fraction of the distance from the borrowed tint to the network's own (1: the "
                             "network's own tint; with --no-borrow-errors and --no-fade-unfamiliar the network's own "
                             "colours, which need no faces) (default: 0; 1 and a note where the faces are not found "
                             "for --input)")
    parser.add_argument("--unfamiliar-keep", type=train_flags.unit_fraction, metavar="FRACTION",
                        help=f"a photo that looks like no seen sitting (a face never seen: --unseen-distance) borrows "
                             f"no errors and keeps at least this fraction of its own tint: what the nearest photos "
                             f"lend it is other people's (default: {DEFAULT_UNFAMILIAR_KEEP:g}); needs the faces the "
                             f"checkpoint was trained on")
    parser.add_argument("--unseen-distance", nargs=2, type=train_flags.nonnegative_float, metavar=("NEAR", "FAR"),
                        help=f"a photo looks like no seen sitting where its L* histograms are beyond FAR of the "
                             f"nearest training photo's (neighbours.describe), like one within NEAR, a linear share "
                             f"between (default: {DEFAULT_UNSEEN_DISTANCE[0]:g} {DEFAULT_UNSEEN_DISTANCE[1]:g})")
    parser.add_argument("--no-unfamiliar-keep", dest="unfamiliar_keep", action="store_const", const=False,
                        help="every photo borrows alike, however far its nearest training photo (the default "
                             "before faces never seen kept half their own tint)")
    parser.add_argument("--fade-unfamiliar", nargs=2, type=train_flags.nonnegative_float, metavar=("FULL", "NONE"),
                        help=f"each of a photo's 3x3 regions keeps all its predicted a*b* where its L* histogram is "
                             f"within FULL of the nearest training photo's same region (Hellinger distance, "
                             f"neighbours.cell_distances), none beyond NONE, linearly between (default: "
                             f"{DEFAULT_FADE[0]:g} {DEFAULT_FADE[1]:g}); needs the faces the checkpoint was trained on")
    parser.add_argument("--no-fade-unfamiliar", dest="fade_unfamiliar", action="store_const", const=(),
                        help="keep all the predicted colour everywhere")
    parser.add_argument("--score", action="store_true",
                        help="--input: the photos are colour originals; print each one's MSE over a*b* (raw Lab "
                             "units^2) against its own colours, and that of no colour (a*=b*=0)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available, else CPU")
    args = parser.parse_args(argv)
    if args.fade_unfamiliar and args.fade_unfamiliar[0] >= args.fade_unfamiliar[1]:
        parser.error(f"--fade-unfamiliar {args.fade_unfamiliar[0]:g} {args.fade_unfamiliar[1]:g}: FULL must be "
                     f"below NONE")
    if args.unseen_distance and args.unseen_distance[0] >= args.unseen_distance[1]:
        parser.error(f"--unseen-distance {args.unseen_distance[0]:g} {args.unseen_distance[1]:g}: NEAR must be below "
                     f"FAR")
    if args.unseen_distance and args.unfamiliar_keep is False:
        parser.error("--unseen-distance: has no use with --no-unfamiliar-keep")
    if args.score and not args.input:
        parser.error("--score: scores --input photos; give --input")
    args.checkpoint = args.checkpoint or [default_checkpoint()]
    args.out_dir = Path(args.out_dir or args.checkpoint[0].parent / "colorized")
    return args


def default_checkpoint():
    """Your run in this folder (TRAINED) if there is one, else the shipped model beside the scripts, named from this
    folder when it lies below it."""
    if TRAINED.is_file():
        return TRAINED
    shipped, here = HERE / SHIPPED, Path.cwd().resolve()
    return shipped.relative_to(here) if shipped.is_relative_to(here) else shipped


def load_colorizer(path, device, flip_average=None, shift_average=True):
    """The checkpoint's model in eval mode on `device` (mirror averaging switched as asked, unless None; shift
    averaging as asked: on, as test_colorize.py runs by default, whatever the checkpoint says), and the
    checkpoint."""
    checkpoint = checkpoints.load_checkpoint(path, device, COLORIZERS)
    model_args = {**checkpoint["model_args"], "shift_average": shift_average}
    if flip_average is not None:
        model_args["flip_average"] = flip_average
    model = build_model(checkpoint["model_kind"], model_args).to(device)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    return model, checkpoint


def check_same_split(paths, loaded, splits=checkpoints.SPLITS):
    """Refuse checkpoints (`loaded`, read from `paths`) whose `splits` hold different images (trained with another
    --seed or --split-by)."""
    for path, checkpoint in zip(paths[1:], loaded[1:]):
        for split in splits:
            if checkpoint.get(f"{split}_names") != loaded[0].get(f"{split}_names"):
                raise runtime.UserError(f"{path}: its {split} split differs from {paths[0]}'s (another --seed or "
                                        f"--split-by?)")


def load_colorizers(paths, device, flip_average=None, shift_average=True, splits=checkpoints.SPLITS):
    """The model to run, and the first checkpoint (for its split): one checkpoint's model, or several as
    AveragedColorizers, which must share `splits` (none for --input). Prints a line per checkpoint."""
    loaded = [load_colorizer(path, device, flip_average, shift_average) for path in paths]
    on = {True: "on", False: "off"}
    for path, (model, checkpoint) in zip(paths, loaded):
        print(f"checkpoint {path}: {checkpoint['model_kind']}, {checkpoint['epoch']} epochs, "
              f"seed {checkpoint['args']['seed']}, mirror average {on[model.args['flip_average']]}, shift average "
              f"{on[model.args['shift_average']]}")
    check_same_split(paths, [checkpoint for _, checkpoint in loaded], splits)
    if len(loaded) == 1:
        return loaded[0]
    print(f"averaging the predictions of these {len(loaded)} colorizers")
    return AveragedColorizers([model for model, _ in loaded]), loaded[0][1]


def out_folder(path):
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise runtime.UserError(f"--out-dir {path}: exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_png(path, rgb):
    """Write rgb (3 x H x W in [0, 1]) as an 8-bit PNG, atomically (output_files.write_bytes)."""
    bgr = cv2.cvtColor(rgb.mul(255).round_().to(torch.uint8).permute(1, 2, 0).numpy(), cv2.COLOR_RGB2BGR)
    encoded, png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not encoded:
        raise runtime.UserError(f"{path}: PNG encoding failed")
    output_files.write_bytes(path, png.tobytes())


# ---------------------------------------------------------------- evaluation on the dataset

def triptychs(rgb, ab_norm_pred):
    """[grayscale input | prediction | ground truth] side by side for each image, N x 3 x H x 3W."""
    lab = data.rgb_to_lab(rgb)
    gray = data.merge_lab(lab[:, :1], torch.zeros_like(lab[:, 1:]))
    pred = data.merge_lab(lab[:, :1], data.denormalize_ab(ab_norm_pred))
    return torch.cat([gray, pred, rgb], dim=3)


def grid(images, columns=3):
    """Tile N x 3 x H x W images into one 3 x rows*H x columns*W image (blank where the last row is short)."""
    rows = -(-len(images) // columns)
    padded = torch.ones(rows * columns, *images.shape[1:])
    padded[:len(images)] = images
    c, h, w = images.shape[1:]
    return padded.view(rows, columns, c, h, w).permute(2, 0, 3, 1, 4).reshape(c, rows * h, columns * w)


def evaluate_split(model, split, rgb, names, args, out_dir):
    l_norm, ab_norm = data.to_network(rgb)
    device = next(model.parameters()).device
    ab_pred = training_loop.predict(model, l_norm.to(device), args.batch_size).cpu()
    figures = data.mean_scores(l_norm, ab_pred, ab_norm)
    print(f"{split}: {len(rgb)} images, MSE a* {figures['mse_a']:.2f}  b* {figures['mse_b']:.2f}  "
          f"mean {figures['mse']:.2f} "
          f"(raw Lab units^2); PSNR {figures['psnr']:.2f} dB; colorfulness {figures['colorfulness']:.1f} "
          f"(originals {figures['colorfulness_true']:.1f})")
    if args.pngs > 0:
        panels = triptychs(rgb[:args.pngs], ab_pred[:args.pngs])
        for name, panel in zip(names, panels):
            write_png(out_dir / f"{split}_{Path(name).stem}.png", panel)
        write_png(out_dir / f"{split}_grid.png", grid(panels))
    return figures["mse"]


def print_baselines(train_rgb, held_out_rgb, split):
    """Held-out MSE (raw Lab units^2), PSNR and colorfulness of three predictions that need no network."""
    held_out_l, held_out_ab = data.to_network(held_out_rgb)
    _, train_ab = data.to_network(train_rgb)
    guesses = {"a*=b*=0": torch.zeros_like(held_out_ab),
               "training images' mean color": train_ab.mean((0, 2, 3), keepdim=True).expand_as(held_out_ab),
               "each image's own mean color": held_out_ab.mean((2, 3), keepdim=True).expand_as(held_out_ab)}
    for name, guess in guesses.items():
        scores = data.mean_scores(held_out_l, guess, held_out_ab)
        print(f"baseline {name}: {split} MSE {scores['mse']:.2f}, "
              f"PSNR {scores['psnr']:.2f} dB, colorfulness {scores['colorfulness']:.1f}")


class PhotoBank(NamedTuple):
    """Photos converted once: what Borrowed borrows from, FadedUnfamiliar compares with and Exemplared takes its maps
    from."""
    descriptors: torch.Tensor  # neighbours.describe
    l_norm: torch.Tensor
    ab_norm: torch.Tensor


def photo_bank(rgb):
    """The PhotoBank of the images rgb."""
    l_norm, ab_norm = data.to_network(rgb)
    return PhotoBank(neighbours.describe(l_norm), l_norm, ab_norm)


def bank_tints(bank_ab):
    """The true tints (N x 2) of a photo_bank's ab_norm maps, for Borrowed."""
    return data.tint(bank_ab).flatten(1)


@torch.no_grad()
def bank_errors(model, bank, batch_size=50):
    """The error of `model` (in eval mode) on each photo of a PhotoBank, true minus predicted ab_norm, averaged over an
    ERROR_GRID x ERROR_GRID grid (N x 2 x G x G), for Borrowed."""
    device = next(model.parameters()).device
    predicted = torch.cat([model(part.to(device)).float().cpu() for part in bank.l_norm.split(batch_size)])
    return F.adaptive_avg_pool2d(bank.ab_norm - predicted, ERROR_GRID)


class Lent(NamedTuple):
    """What the training photos lend a prediction: their descriptors (neighbours.describe; FadedUnfamiliar compares
    with them too), true tints (N x 2) and the network's error on them (bank_errors; None when not borrowed)."""
    descriptors: torch.Tensor
    tints: torch.Tensor
    errors: torch.Tensor | None


def lent_by(model, bank, errors=True):
    """The Lent of a PhotoBank to `model` (in eval mode), with the model's errors on its photos if `errors`."""
    return Lent(bank.descriptors, bank_tints(bank.ab_norm), bank_errors(model, bank) if errors else None)


def borrowed(model, lent, k=DEFAULT_TINT_NEIGHBOURS, keep=0.0, temperature=DEFAULT_NEIGHBOUR_TEMPERATURE,
             unfamiliar=(*DEFAULT_UNSEEN_DISTANCE, DEFAULT_UNFAMILIAR_KEEP)):
    """`model` (in eval mode) lent what the training photos tell (models.Borrowed, from a Lent): their weighted tint,
    and the model's weighted error on them unless the Lent has none; a face never seen (`unfamiliar` = (near, far,
    fraction); None: every photo alike) borrows no errors and keeps at least `fraction` of its own tint."""
    return Borrowed(model, lent.descriptors, lent.tints, k, keep, temperature, lent.errors, unfamiliar).eval()


def carried(model, checkpoint):
    """The Lent a shipped checkpoint carries ("lent": experiments.py ship), so that it borrows and fades without the
    faces and without a pass over them, or None: also where `model` is not the network it was computed with (several
    checkpoints averaged, the mirror or shift averaging switched) or needs the photos' maps (exemplar input)."""
    lent = checkpoint.get("lent")
    if lent is None or isinstance(model, AveragedColorizers) or needs_exemplar(model) or \
            any(model.args[key] != checkpoint["model_args"].get(key, False) for key in AVERAGING):
        return None
    return Lent(lent["descriptors"], lent["tints"], lent["errors"])


def training_bank(checkpoint, faces):
    """photo_bank of the un-augmented images `checkpoint` was trained on."""
    rgb, names = faces
    return photo_bank(rgb[data.select_by_name(names, checkpoint["train_names"])])


def needs_exemplar(model):
    """Whether `model` (or a member of it) is a network trained with exemplar input (models.Exemplared)."""
    return any(getattr(part, "args", {}).get("exemplar") for part in model.modules())


def exemplared(model, bank=None, bank_ab=None):
    """`model` given its exemplar input where it was trained with one (models.Exemplared): the mean a*b* maps of the
    photos of a photo_bank nearest to each photo (zeros without a bank: the faces are missing); else `model`."""
    if isinstance(model, AveragedColorizers):
        return AveragedColorizers([exemplared(member, bank, bank_ab) for member in model.members])
    if not needs_exemplar(model):
        return model
    if bank is None:
        return Exemplared(model).eval()
    device = next(model.parameters()).device
    return Exemplared(model, bank.to(device), bank_ab.to(device)).eval()


class DefaultStages(NamedTuple):
    """A trained colorizer as the default runs it, stage by stage (default_stages)."""
    own: nn.Module       # the network, given its exemplar input if it takes one: its own tint
    borrowed: nn.Module  # lent the nearest training photos' tint and its error on them (models.Borrowed)
    default: nn.Module   # that, faded where a photo looks unfamiliar (models.FadedUnfamiliar): test_colorize.py's
    bank: torch.Tensor   # the training photos' descriptors (neighbours.describe)
    lent: Lent           # what the training photos lend `own` (lent_by)


def default_stages(model, checkpoint, faces):
    """`model` (in eval mode, trained as `checkpoint` says) with each default stage of what its training photos tell,
    as with_training_photos builds it without flags; for the scripts that score the stages side by side."""
    bank = training_bank(checkpoint, faces)
    own = exemplared(model, bank.descriptors, bank.ab_norm)
    lent = lent_by(own, bank)
    lending = borrowed(own, lent)
    faded = FadedUnfamiliar(lending, bank.descriptors, *DEFAULT_FADE).eval()
    return DefaultStages(own, lending, faded, bank.descriptors, lent)


def evaluate_dataset(model, checkpoint, faces, args, out_dir):
    rgb, names = faces
    needed = (args.split, "train") if args.train or args.baselines else (args.split,)
    split_rgb = {split: rgb[data.select_by_name(names, checkpoint[f"{split}_names"])] for split in needed}
    if args.baselines:
        print_baselines(split_rgb["train"], split_rgb[args.split], args.split)
    for split in [args.split] + (["train"] if args.train else []):
        evaluate_split(model, split, split_rgb[split], checkpoint[f"{split}_names"], args, out_dir)
    if args.pngs > 0:
        print(f"PNGs in {out_dir}")


def lent_by_faces(model, checkpoint, faces, args, errors):
    """(`model` given its exemplar input if it takes one, the Lent of its training photos, with its errors on them if
    `errors`), from the faces (read here if `faces` is None). Where they are missing: a DataError if a flag asked
    for what they lend, else a note and (`model`, None)."""
    try:
        faces = faces or data.load_faces(args.data_dir)
    except data.DataError as err:
        given = [flag for flag, value in (("--tint-neighbours", args.tint_neighbours), ("--tint-keep", args.tint_keep),
                                          ("--neighbour-temperature", args.neighbour_temperature),
                                          ("--borrow-errors", args.borrow_errors),
                                          ("--unfamiliar-keep", isinstance(args.unfamiliar_keep, float)),
                                          ("--unseen-distance", args.unseen_distance),
                                          ("--fade-unfamiliar", args.fade_unfamiliar)) if value]
        if given:
            raise data.DataError(f"{given[0]} needs the faces the model was trained on: {err}") from None
        blind = needs_exemplar(model)
        print(f"note: each prediction keeps the network's own colours (--tint-keep 1 --no-borrow-errors "
              f"--no-fade-unfamiliar){' and has no exemplar input (zeros)' if blind else ''}: borrowing from the "
              f"nearest training photos{', the exemplar' if blind else ''} and fading unfamiliar regions need the "
              f"faces the model was trained on: {err}", file=sys.stderr)
        return exemplared(model), None
    bank = training_bank(checkpoint, faces)
    model = exemplared(model, bank.descriptors, bank.ab_norm)
    lent = lent_by(model, bank, errors=False)
    return model, lent._replace(errors=kept_errors(model, bank, args.checkpoint)) if errors else lent


def kept_errors(model, bank, checkpoint_paths):
    """bank_errors of `model` on its training photos, kept between runs beside a single checkpoint in
    <stem>_errors.pt: a run's own checkpoint does not carry them (a shipped one does) and they are most of a run's
    time. A kept record is used only for the same checkpoint bytes, test-time averaging and training photos
    (errors_key); a file of that name that is not such a record is left alone, and a folder that cannot be written
    only means computing them again next time."""
    if len(checkpoint_paths) != 1:
        return bank_errors(model, bank)
    path = Path(checkpoint_paths[0])
    kept, key = path.with_name(f"{path.stem}_errors.pt"), errors_key(path, model, bank)
    record = read_errors_record(kept) if kept.exists() else {}
    if record is None:  # someone else's file
        return bank_errors(model, bank)
    if record.get("key") == key:
        return record["errors"]
    errors = bank_errors(model, bank)
    with contextlib.suppress(output_files.WriteError):
        checkpoints.save_checkpoint(kept, {"key": key, "errors": errors})
    return errors


def errors_key(checkpoint_path, model, bank):
    """What the network's errors on its training photos depend on: the checkpoint's bytes, the test-time averaging
    and the device it runs with (another device rounds otherwise) and the photos, as one SHA-256 hex digest."""
    digest = hashlib.sha256(Path(checkpoint_path).read_bytes())
    network = next(part for part in model.modules() if hasattr(part, "args"))
    running = [network.args.get(key) for key in AVERAGING] + [next(model.parameters()).device.type]
    digest.update(repr(running).encode())
    for photos in (bank.l_norm, bank.ab_norm):
        digest.update(photos.contiguous().numpy().tobytes())
    return digest.hexdigest()


def read_errors_record(path):
    """A record kept_errors wrote ({"key", "errors"}), or None for any other file."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for files it did not write; all mean "not ours"
        return None
    return record if isinstance(record, dict) and set(record) == {"key", "errors"} else None


def with_training_photos(model, checkpoint, faces, args):
    """`model` with what its training photos tell: each prediction lent its nearest training photos' weighted error
    and tint (Borrowed: --tint-neighbours, --neighbour-temperature, --borrow-errors, --tint-keep, --unfamiliar-keep,
    --unseen-distance), then its colour faded in the regions that look unlike every training photo (FadedUnfamiliar:
    --fade-unfamiliar). --tint-keep 1, --no-borrow-errors and --no-fade-unfamiliar leave each out. What they need
    comes from the checkpoint where it carries it (a shipped one: carried), else from the faces (lent_by_faces;
    without them all are left out, which a note says). A network trained with exemplar input gets it first
    (exemplared; zeros without the faces)."""
    keep = 0.0 if args.tint_keep is None else args.tint_keep
    errors = args.borrow_errors is not False
    k = args.tint_neighbours or DEFAULT_TINT_NEIGHBOURS
    temperature = args.neighbour_temperature or DEFAULT_NEIGHBOUR_TEMPERATURE
    fade = DEFAULT_FADE if args.fade_unfamiliar is None else args.fade_unfamiliar
    unfamiliar = None  # --no-unfamiliar-keep (False; 0 is a fraction)
    if args.unfamiliar_keep is not False:
        unfamiliar = (*(args.unseen_distance or DEFAULT_UNSEEN_DISTANCE),
                      DEFAULT_UNFAMILIAR_KEEP if args.unfamiliar_keep is None else args.unfamiliar_keep)
    if keep == 1 and not errors and not fade and not needs_exemplar(model):
        return model
    lent = carried(model, checkpoint)
    if lent is not None:
        print("what the training photos lend: carried by the checkpoint")
    else:
        model, lent = lent_by_faces(model, checkpoint, faces, args, errors)
        if lent is None:
            return model
    device = next(model.parameters()).device
    if keep < 1 or errors:
        nearest = f"its {min(k, len(lent.descriptors))} nearest training photos (temperature {temperature:g})"
        if errors:
            print(f"each prediction: plus the network's error on {nearest}, on a grid of "
                  f"{ERROR_GRID}x{ERROR_GRID} cells")
        if keep < 1:
            print(f"each prediction's tint: {f'{keep:g} of the way from ' if keep else ''}the weighted true tint of "
                  f"{nearest}{' to its own' if keep else ''}")
        if unfamiliar is not None:
            print(f"a photo that looks like no seen sitting (nearest training photo beyond {unfamiliar[0]:g}, wholly "
                  f"beyond {unfamiliar[1]:g}): no errors borrowed, at least {unfamiliar[2]:g} of its own tint kept")
        model = borrowed(model, lent if errors else lent._replace(errors=None), k, keep, temperature, unfamiliar)
    if fade:
        print(f"each region's colour fades where it looks unlike every training photo's (all kept within "
              f"{fade[0]:g} of the nearest, none beyond {fade[1]:g})")
        model = FadedUnfamiliar(model, lent.descriptors, *fade)
    return model.to(device).eval()


# ---------------------------------------------------------------- any photo

def expand_inputs(paths):
    """Files as given, folders as their image files in name order; a missing path is a UserError."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            images = data.list_images(path)
            if not images:
                raise runtime.UserError(f"--input {path}: no {'/'.join(data.IMAGE_SUFFIXES)} images in this folder")
            files += images
        elif path.exists():
            files.append(path)
        else:
            raise runtime.UserError(f"--input {path}: no such file or folder")
    return files


def work_shape(height, width, multiple, work_size):
    """Network input size: the image scaled so its longest side is at most work_size, sides multiples of
    `multiple` (what the network needs: 2^levels for the Colorizer, 8 for the FusionColorizer)."""
    if min(height, width) < multiple:
        raise data.DataError(f"{height}x{width} is smaller than {multiple} pixels on a side")
    scale = min(1.0, work_size / max(height, width))
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (height, width))


@torch.no_grad()
def predict_lab(model, rgb, work_size, rows=128):
    """One image's (rgb 3 x H x W in [0, 1]) own L* (l_raw) and predicted a*b* (ab_norm), both at full resolution.

    The full-size color conversions run on blocks of `rows` rows: a 4000x3000 photo's temporaries then stay
    small enough to be reused instead of page-faulted in for every operation (2x faster here).
    """
    l_raw, l_norm = work_input(rgb, model.side_multiple, work_size, rows)
    device = next(model.parameters()).device
    return l_raw, upsample(model(l_norm.to(device)).float().cpu(), l_raw)


def work_input(rgb, multiple, work_size, rows=128):
    """One image's own L* at full resolution (l_raw, 1 x 1 x H x W) and what the network sees: l_norm at
    work_shape."""
    height, width = rgb.shape[1:]
    l_raw = torch.empty(1, 1, height, width)
    for top in range(0, height, rows):
        l_raw[..., top:top + rows, :] = data.rgb_to_lab(rgb[None, :, top:top + rows])[:, :1]
    shape = work_shape(height, width, multiple, work_size)
    return l_raw, data.normalize_l(F.interpolate(l_raw, size=shape, mode="area"))


def upsample(ab_norm, like):
    """a*b* predicted at the work size, bilinearly upsampled to the full size of `like`."""
    return F.interpolate(ab_norm, size=like.shape[-2:], mode="bilinear", align_corners=False)


def colorize(model, rgb, work_size, rows=128):
    """Colorize one image (rgb 3 x H x W in [0, 1]) at full resolution: its own L*, predicted a*b*."""
    return merge_rows(*predict_lab(model, rgb, work_size, rows), rows)


def merge_rows(l_raw, ab_norm, rows=128):
    """data.merge_lab of full-size L* and a*b* (1 x C x H x W) to one 3 x H x W image, `rows` rows at a time."""
    height, width = l_raw.shape[-2:]
    out = torch.empty(3, height, width)
    for top in range(0, height, rows):
        block = slice(top, top + rows)
        out[:, block] = data.merge_lab(l_raw[..., block, :], data.denormalize_ab(ab_norm[..., block, :]))[0]
    return out


def score_photo(rgb, ab_norm, rows=128):
    """(MSE over a*b* of the prediction ab_norm, of no colour), raw Lab units^2, against the photo's own a*b*
    (rgb 3 x H x W), both at full resolution."""
    height = rgb.shape[1]
    errors = torch.zeros(2, dtype=torch.float64)
    for top in range(0, height, rows):
        block = slice(top, top + rows)
        ab_true = data.normalize_ab(data.rgb_to_lab(rgb[None, :, block])[:, 1:])
        for i, guess in enumerate((ab_norm[..., block, :], torch.zeros_like(ab_true))):
            errors[i] += data.ab_mse_raw(guess, ab_true).mean().item() * ab_true.shape[-2]
    return tuple((errors / height).tolist())


def output_paths(files, out_dir):
    """Where each input's colorized PNG goes, never onto an input and never two onto one name:
    <out_dir>/<stem>.png; <stem>_<suffix>.png where inputs differ only in their suffix (a.jpg and a.png: a_jpg.png,
    a_png.png); _colorized added while the name is one of the inputs (colorizing a folder of PNGs into itself); _2,
    _3, ... while it is still taken (the same file name in two folders)."""
    inputs = {path.resolve() for path in files}
    suffixes = {}
    for path in files:
        suffixes.setdefault(path.stem, set()).add(path.suffix.lower())
    outputs, taken = [], set()
    for path in files:
        name = f"{path.stem}_{path.suffix.lstrip('.')}" if len(suffixes[path.stem]) > 1 else path.stem
        while (out_dir / f"{name}.png").resolve() in inputs:
            name += "_colorized"
        candidate, number = out_dir / f"{name}.png", 1
        while candidate.resolve() in taken | inputs:
            number += 1
            candidate = out_dir / f"{name}_{number}.png"
        taken.add(candidate.resolve())
        outputs.append(candidate)
    return outputs


def colorize_file(model, path, out_path, work_size, score=False):
    """Read one photo, colorize it and write it to out_path (a PNG); with `score`, return score_photo's figures."""
    rgb = torch.from_numpy(data.read_rgb(path)).permute(2, 0, 1)
    l_raw, ab_norm = predict_lab(model, rgb, work_size)
    write_png(out_path, merge_rows(l_raw, ab_norm))
    return score_photo(rgb, ab_norm) if score else None


GRAY = 0.1  # a photo whose a*b* MSE from no colour is below this (raw Lab units^2) is not a colour original


def colorize_inputs(model, files, out_dir, work_size, score=False):
    """Colorize every file to its output_paths PNG; bad ones are reported and skipped. With `score`, print each
    colour original's figures and their mean. Returns failures."""
    failures = written = 0
    scores = []
    for path, out_path in zip(files, output_paths(files, out_dir)):
        try:
            with output_files.keeping(f"the {written} output(s) written before it are kept in {out_dir}"):
                figures = colorize_file(model, path, out_path, work_size, score)
        except data.DataError as err:
            message = str(err) if str(err).startswith(str(path)) else f"{path}: {err}"
            print(f"error: {message}", file=sys.stderr)
            failures += 1
            continue
        written += 1
        if figures is None:
            print(f"{path} -> {out_path}")
        elif figures[1] < GRAY:
            print(f"{path} -> {out_path}  (no colour to score against: a gray photo)")
        else:
            scores.append(figures)
            print(f"{path} -> {out_path}  MSE a*b* {figures[0]:.2f}, no colour {figures[1]:.2f} "
                  f"({figures[0] / figures[1]:.2f}x)")
    if scores:
        mse, none = (sum(values) / len(scores) for values in zip(*scores))
        better = sum(mine < nothing for mine, nothing in scores)
        print(f"{len(scores)} colour photo(s) scored: mean MSE a*b* {mse:.2f}, no colour {none:.2f} "
              f"({mse / none:.2f}x); better than no colour on {better} of {len(scores)}")
    return failures


def main(argv=None):
    args = parse_args(argv)
    device = runtime.pick_device(args.device)
    splits = () if args.input else checkpoints.SPLITS  # photos need no shared split
    model, checkpoint = load_colorizers(args.checkpoint, device, args.flip_average, args.shift_average, splits)
    if args.input:
        files = expand_inputs(args.input)  # every path checked before anything is written
        model = with_training_photos(model, checkpoint, None, args)
        failures = colorize_inputs(model, files, out_folder(args.out_dir), args.work_size, args.score)
        if failures:
            raise runtime.UserError(f"{failures} input(s) could not be colorized")
    else:
        if not checkpoint.get(f"{args.split}_names"):
            raise runtime.UserError(f"--split {args.split}: {args.checkpoint[0]} has no {args.split} images "
                                    f"(a validation split needs a run trained with --val-fraction)")
        if args.pngs > 0 and data.is_data_dir(args.out_dir, args.data_dir):
            raise runtime.UserError(f"--out-dir {args.out_dir}: is the data folder; PNGs written there would be "
                                    f"read as faces by the next run")
        faces = data.load_faces(args.data_dir)
        model = with_training_photos(model, checkpoint, faces, args)
        out_dir = out_folder(args.out_dir) if args.pngs > 0 else args.out_dir
        evaluate_dataset(model, checkpoint, faces, args, out_dir)


if __name__ == "__main__":
    runtime.run_main(main)

"""Screen what the nearest training photos can lend a prediction, with no training, on validation photos: a tint
estimate, and the network's own error on those photos.

Owner of that screening only (the default is models.Borrowed: the 10 nearest, weighted relative to the nearest,
neighbours.weighted, lend their true tint and the network's error on them on an 8x8 grid).
On the validation photos of seen people and the validation people (two screening runs of one recipe, by default the
default recipe's: experiments.default_screening_run), each estimator replaces every prediction's tint (its
mean a*b*; the detail stays the network's unless errors are added), and the table gives the validation MSE (raw Lab
units^2). The estimators:
- the mean true tint of the K nearest training photos (neighbours.describe), K = 3, 5 (the default before), 10;
- their distance-weighted mean: weights softmax(-distance / T) over all training photos;
- the K nearest weighted relative to the nearest (neighbours.weighted): softmax(-(d / d_nearest) / T), K = 5, 10;
- per region: each of the 3x3 regions' mean a*b* borrowed from the same region of the 5 nearest, spread smoothly;
- a ridge regression from the descriptor to the tint, fitted on the training photos, and its mean with the 5 nearest;
- the network's own tint, and the true tint (the bound a perfect estimate would reach);
- the tint of the default, or the mean of the 5 nearest, plus the network's error on those photos (true minus
  predicted a*b*, averaged over a G x G grid, weighted as the tint), G = 4, 8 (the default's), 16;
- the default with the errors borrowed only from a sitting that looks seen: all of them where the nearest training
  photo is within test_colorize.DEFAULT_UNSEEN_DISTANCE[0], none beyond [1], a linear share between (a face never
  seen has no sitting of its own in the bank, so the errors it borrows are other people's).

With --crossval, what a face never seen is lent (models.Borrowed's `unfamiliar`: test_colorize.py's
--unseen-distance and --unfamiliar-keep; and --tint-keep for every photo) is screened instead on the validation
people of the 10-fold cross-validation (experiments.py crossval): the people that no person split of seeds 0-2 (the
new-face test rows) tests, each by the fold that held them out, 37 of the 50 against the 5 of one screening run;
beside them, the validation photos of seen people (--image-run). Its rows also give a face never seen, for a
share of the tint it does not keep of its own, the training photos' mean tint instead of its neighbours', counted
unseen by the rule's distances or later ones (not a flag: the screen found it not worth its cost to seen people),
and a face never seen keeping only a share of the detail around its tint (not a flag: it costs both kinds of face).
All rows are faded as the default (models.FadedUnfamiliar) but the network's own colours.

    python screen_tints.py      # about a minute on a 2-core CPU
    python screen_tints.py --crossval "--crop-min 0.9"    # the default recipe's 10 folds: about a minute
"""
import argparse
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

import data
import experiments
import neighbours
import runtime
import test_colorize
import train_flags
from models import FadedUnfamiliar


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=train_flags.HelpFormatter)
    default_run = experiments.default_screening_run("screen-recipes")  # both screening stages read recipes.txt
    parser.add_argument("--image-run", type=Path, default=Path("runs/screen-recipes") / default_run,
                        help="screening run of the image split (experiments.py screen-recipes)")
    parser.add_argument("--people-run", type=Path, default=Path("runs/screen-recipes-newfaces") / default_run,
                        help="screening run of the person split (experiments.py screen-recipes-newfaces)")
    parser.add_argument("--ridge", type=train_flags.positive_float, default=0.1,
                        help="the ridge regression's penalty")
    parser.add_argument("--crossval", metavar="MATCH",
                        help="instead, screen what a face never seen is lent on the validation people of the "
                             "crossval runs of the first line of experiments/crossval.txt that contains MATCH")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where experiments.py keeps its runs")
    parser.add_argument("--data-dir", help="folder of face images (default: as test_colorize.py)")
    parser.add_argument("--shift-average", action=argparse.BooleanOptionalAction, default=True,
                        help="the networks' predictions averaged over shifted copies, as test_colorize.py's flag")
    return parser.parse_args(argv)


def ridge_tints(bank, bank_tints, described, penalty):
    """Tints (N x 2) predicted for the descriptors `described` by a ridge regression fitted on (bank, bank_tints)."""
    x, y = bank.double(), bank_tints.double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    centred = x - x_mean
    weights = torch.linalg.solve(centred.T @ centred + penalty * torch.eye(x.shape[1], dtype=x.dtype),
                                 centred.T @ (y - y_mean))
    return ((described.double() - x_mean) @ weights + y_mean).float()


def region_shift(ab_norm, targets):
    """ab_norm with each 3x3 region's mean moved to `targets` (N x 2 x 3 x 3), the shifts spread smoothly."""
    shift = targets - F.adaptive_avg_pool2d(ab_norm, neighbours.CELLS)
    return ab_norm + F.interpolate(shift, size=ab_norm.shape[-2:], mode="bilinear", align_corners=False)


def relative(val_l, bank, k, temperature, values):
    """The weighted mean of `values` (one per bank photo) over the k nearest, weighted as neighbours.weighted."""
    index, weights = neighbours.weighted(val_l, bank, k, temperature)
    return torch.einsum("nk,nk...->n...", weights, values[index])


def estimates(own, ab_true, train_l, train_ab, val_l, penalty, train_own=None):
    """{estimator: validation predictions} for one screening run; the error rows need `train_own`, the network's
    predictions for its training photos."""
    bank, bank_tints = neighbours.describe(train_l), data.tint(train_ab).flatten(1)
    described = neighbours.describe(val_l)
    distance = torch.cdist(described, bank)
    order = distance.argsort(1)
    pulled = lambda tints, pred=own: data.pull_tint(pred, tints, 0.0)  # noqa: E731
    out = {"the network's own tint": own}
    for k in (3, 5, 10):
        out[f"mean of the {k} nearest{' (the default before)' if k == 5 else ''}"] = pulled(
            bank_tints[order[:, :k]].mean(1))
    for temperature in (0.03, 0.05, 0.1):
        out[f"distance-weighted, T = {temperature:g}"] = pulled(torch.softmax(-distance / temperature, 1) @ bank_tints)
    default = (test_colorize.DEFAULT_TINT_NEIGHBOURS, test_colorize.DEFAULT_NEIGHBOUR_TEMPERATURE)
    default_tint = relative(val_l, bank, *default, bank_tints)
    for k, temperature in ((5, 0.1), (10, 0.05), default, (10, 0.2)):
        name = f"the {k} nearest, weighted relative to the nearest, T = {temperature:g}"
        if (k, temperature) == default:
            out[name + " (the default's tint)"] = pulled(default_tint)
        else:
            out[name] = pulled(relative(val_l, bank, k, temperature, bank_tints))
    regions = F.adaptive_avg_pool2d(train_ab, neighbours.CELLS)
    out["per region, the 5 nearest"] = region_shift(own, regions[order[:, :5]].mean(1))
    ridge = ridge_tints(bank, bank_tints, described, penalty)
    out[f"ridge regression (penalty {penalty:g})"] = pulled(ridge)
    out["mean of the ridge and the 5 nearest"] = pulled((ridge + bank_tints[order[:, :5]].mean(1)) / 2)
    out["the true tint (bound)"] = pulled(data.tint(ab_true).flatten(1))
    if train_own is not None:
        spread = lambda errors: F.interpolate(errors, size=own.shape[-2:], mode="bilinear",  # noqa: E731
                                              align_corners=False)
        for grid in (4, test_colorize.ERROR_GRID, 16):
            grid_errors = F.adaptive_avg_pool2d(train_ab - train_own, grid)
            corrected = own + spread(relative(val_l, bank, *default, grid_errors))
            if grid != test_colorize.ERROR_GRID:
                out[f"the default's tint + the network's error on them, {grid}x{grid}"] = pulled(default_tint,
                                                                                                   corrected)
                continue
            out[f"the default's tint + the network's error on them, {grid}x{grid} (the default for a seen sitting)"] = \
                pulled(default_tint, corrected)
            near, far = test_colorize.DEFAULT_UNSEEN_DISTANCE
            seen = 1 - neighbours.unfamiliar(distance.amin(1), near, far)[:, None, None, None]
            out[f"the same, errors only from a seen sitting (nearest within {near:g}, none beyond {far:g})"] = pulled(
                default_tint, own + seen * (corrected - own))
            out[f"mean of the 5 nearest + their errors, {grid}x{grid}"] = pulled(
                bank_tints[order[:, :5]].mean(1), own + spread(grid_errors[order[:, :5]].mean(1)))
    return out


def nearest_medians(bank, people):
    """The median distance of a bank photo to its nearest other photo of the same person, and to its nearest photo of
    another person."""
    distance = torch.cdist(bank, bank).fill_diagonal_(float("inf"))
    same = torch.tensor([[a == b for b in people] for a in people])
    return [distance.masked_fill(mask, float("inf")).amin(1).median().item() for mask in (~same, same)]


# the --crossval grid: where a photo starts to count as a face never seen and where it counts wholly (NEAR, FAR), and
# how much of its own tint it then keeps
UNSEEN_DISTANCES = ((0.85, 1.2), (0.95, 1.2), (1.0, 1.2), (1.05, 1.2), (1.0, 1.3), (1.05, 1.35), (1.1, 1.3))
UNFAMILIAR_KEEPS = (0.0, 0.5, 0.75, 1.0)


class Predicted(nn.Module):
    """The network's predictions for the photos screened, made once: every row of the grid borrows around them."""

    def __init__(self, ab_norm, side_multiple):
        super().__init__()
        self.ab_norm, self.side_multiple = ab_norm, side_multiple

    def forward(self, l_norm):
        return self.ab_norm


def lending_rows():
    """{row name: models.Borrowed's (keep, unfamiliar)} of the --crossval screen: every photo alike (the default
    before; with --tint-keep), then the grid (a face never seen, by UNSEEN_DISTANCES x UNFAMILIAR_KEEPS)."""
    rows = {"borrowed alike however far (the default before)": (0.0, None)}
    for fraction in (0.5, 0.75):
        rows[f"every photo keeps {fraction:g} of its own tint, borrows errors (--tint-keep {fraction:g} "
             f"--no-unfamiliar-keep)"] = (fraction, None)
    for near, far in UNSEEN_DISTANCES:
        for fraction in UNFAMILIAR_KEEPS:
            rows[(near, far, fraction)] = (0.0, (near, far, fraction))
    return rows


# the --crossval rows where a face never seen takes, for a share of the tint it does not keep of its own, the
# training photos' mean tint instead of its neighbours': (how much of its own it keeps, that share, and the NEAR FAR
# of the mean's own ramp, None: the rule's). The later ramps spare the seen people's far photos (EXPERIMENTS.md, New
# faces, "The training mean's tint")
MEAN_ROWS = ((0.4, 0.5, None), (0.5, 0.5, None), (0.4, 1.0, None), (0.5, 1.0, None),
             *((0.5, share, ramp) for ramp in ((1.0, 1.3), (1.05, 1.35), (1.1, 1.4), (1.2, 1.5))
               for share in (0.5, 1.0)))


def mean_tinted(lent_pred, own_tint, toward, mean_tint, unseen, keep, share, mean_unseen):
    """`lent_pred` (models.Borrowed's prediction, ab_norm) with its tint set as if the neighbours' tint `toward` (N x 2)
    had moved `share` x `mean_unseen` of the way to `mean_tint` (2 values) before keeping `keep` x `unseen` of the
    network's `own_tint` (N x 2); `unseen`, `mean_unseen`: neighbours.unfamiliar of each photo on two ramps. Its detail
    stays as lent."""
    toward = toward + share * mean_unseen[:, None] * (mean_tint - toward)
    return data.pull_tint(lent_pred, toward + keep * unseen[:, None] * (own_tint - toward), 0.0)


class DefaultLent(NamedTuple):
    """What the default lends each photo around a prediction (default_lent): the bank searched once for every row
    built on it."""
    prediction: torch.Tensor  # ab_norm, lent the tint and the errors as the default lends them
    unseen: torch.Tensor      # each photo's unseen share (models.Borrowed.unseen)
    toward: torch.Tensor      # N x 2: its lenders' weighted true tint
    nearest: torch.Tensor     # N: its distance to the nearest training photo


def default_lent(own, lent, l_norm):
    """The DefaultLent of the photos l_norm around `own` (Predicted), lent by a Lent as the default lends."""
    lending = test_colorize.borrowed(own, lent)
    index, weights, nearest = lending.lenders(l_norm)
    return DefaultLent(lending.lend(l_norm, index, weights, nearest), lending.unseen(nearest),
                       lending.lent_tint(index, weights), nearest)


def mean_tint_rows(own, lent, lent_default):
    """{MEAN_ROWS row name: unfaded prediction} around `own` (Predicted) lent by a Lent, as the default would lend it
    (`lent_default`: its DefaultLent) but for the tint a face never seen takes (mean_tinted)."""
    own_tint = data.tint(own.ab_norm).flatten(1)
    rows = {}
    for keep, share, ramp in MEAN_ROWS:
        mean_unseen = lent_default.unseen if ramp is None else neighbours.unfamiliar(lent_default.nearest, *ramp)
        later = "" if ramp is None else f", counted unseen from {ramp[0]:g} to {ramp[1]:g} for the mean"
        name = (f"a face never seen keeps {keep:g} of its own tint, takes the training photos' mean tint for "
                f"{share:g} of the rest{later} (not a flag)")
        rows[name] = mean_tinted(lent_default.prediction, own_tint, lent_default.toward, lent.tints.mean(0),
                                 lent_default.unseen, keep, share, mean_unseen)
    return rows


# the --crossval rows where a face never seen (models.Borrowed.unseen) keeps only this share of the detail around its
# tint: on a face never seen the network's detail may be other people's shirts and backgrounds
DETAIL_KEEPS = (0.9, 0.75, 0.5)


def detail_rows(lent_default):
    """{DETAIL_KEEPS row name: unfaded prediction}: the default's lent prediction (`lent_default`: its DefaultLent),
    a face never seen keeping only a share of its detail (data.scale_detail), as far as it counts unseen."""
    return {f"a face never seen keeps {keep:g} of the detail around its tint (not a flag)":
            data.scale_detail(lent_default.prediction, 1 - (1 - keep) * lent_default.unseen) for keep in DETAIL_KEEPS}


@torch.no_grad()
def lent_predictions(run_dir, faces, wanted, shift_average=True):
    """{lending_rows row, and "the network's own colours": predictions, faded as the default but the network's own}
    the true ab_norm and each photo's distance to its nearest training photo, for the photos of `run_dir`'s held-out
    split (its validation split if it has one, else its test split) whose people are in `wanted` (None: all), the
    network's own predictions averaged over shifted copies if `shift_average`; ({}, None, None) if none are."""
    rgb, names = faces
    model, checkpoint = test_colorize.load_colorizer(run_dir / "colorizer.pt", "cpu", shift_average=shift_average)
    held_out = experiments.held_out_names(checkpoint, wanted)
    if not held_out:
        return {}, None, None
    l_norm, ab_norm = data.to_network(rgb[data.select_by_name(names, held_out)])
    stages = test_colorize.default_stages(model, checkpoint, faces)
    own = Predicted(stages.own(l_norm), model.side_multiple)
    out = {"the network's own colours": own.ab_norm}
    for name, (keep, unfamiliar) in lending_rows().items():
        lending = test_colorize.borrowed(own, stages.lent, keep=keep, unfamiliar=unfamiliar)
        out[name] = FadedUnfamiliar(lending, stages.bank, *test_colorize.DEFAULT_FADE)(l_norm)
    lent_default = default_lent(own, stages.lent, l_norm)
    for name, pred in {**mean_tint_rows(own, stages.lent, lent_default), **detail_rows(lent_default)}.items():
        faded = FadedUnfamiliar(Predicted(pred, own.side_multiple), stages.bank, *test_colorize.DEFAULT_FADE)
        out[name] = faded(l_norm)
    return out, ab_norm, neighbours.nearest_distances(l_norm, stages.bank, 1)[0][:, 0]


def crossval_screen(args, faces):
    """Print the --crossval tables: each lending_rows row's validation MSE (seen people, validation people) and its
    score."""
    words, runs = experiments.crossval_runs(args.runs_dir, args.crossval)
    wanted = experiments.validation_people(faces[1], args.data_dir)
    errors, distances = {}, []
    for _, run_dir in runs:
        predictions, ab_norm, nearest = lent_predictions(run_dir, faces, wanted, args.shift_average)
        distances += [] if nearest is None else [nearest]
        for name, pred in predictions.items():
            errors.setdefault(name, []).append(data.ab_mse_raw(pred, ab_norm).mean(1))
    seen, seen_ab, seen_nearest = lent_predictions(args.image_run, faces, None, args.shift_average)
    figures = {name: (data.ab_mse_raw(seen[name], seen_ab).mean().item(), torch.cat(parts).mean().item())
               for name, parts in errors.items()}
    photos = len(torch.cat(errors["the network's own colours"]))
    print(f"`{' '.join(words)}`: {len(runs)} folds, their validation people ({len(wanted)} people, no person split of "
          f"seeds {', '.join(map(str, experiments.NEW_FACE_SEEDS))} tests them; {photos} photos); seen people: "
          f"{args.image_run.name}'s validation photos. Validation MSE, seen people / validation people:\n")
    before = figures["borrowed alike however far (the default before)"]
    score = {name: seen_mse / before[0] + new_mse / before[1] for name, (seen_mse, new_mse) in figures.items()}
    print("| what each photo is lent | seen / validation people | score |\n| --- | --- | --- |")
    for name, (seen_mse, new_mse) in figures.items():
        if isinstance(name, str):
            print(f"| {name} | {seen_mse:.2f} / {new_mse:.2f} | {score[name]:.3f} |")
    print("\na face never seen (its nearest training photo beyond FAR, a linear share from NEAR) borrows no errors and "
          "keeps at least a fraction of its own tint (--unseen-distance NEAR FAR --unfamiliar-keep FRACTION):\n")
    for what, cell in (("seen / validation people", lambda key: "{:.2f} / {:.2f}".format(*figures[key])),
                       ("score", lambda key: f"{score[key]:.3f}")):
        print(f"| NEAR FAR: {what} | " + " | ".join(f"keeps {f:g}" for f in UNFAMILIAR_KEEPS) + " |\n|" +
              " --- |" * (1 + len(UNFAMILIAR_KEEPS)))
        for near, far in UNSEEN_DISTANCES:
            print(f"| {near:g} {far:g} | " + " | ".join(cell((near, far, f)) for f in UNFAMILIAR_KEEPS) + " |")
        print()
    print("score: each validation MSE over the borrowing before's, seen people's plus validation people's (lower is "
          "better; both kinds of face weigh alike)\n")
    for who, nearest in (("seen people", seen_nearest), ("validation people", torch.cat(distances))):
        low, median, high = torch.quantile(nearest, torch.tensor([0.05, 0.5, 0.95])).tolist()
        print(f"{who}: distance to the nearest training photo, median {median:.2f}, 5-95 % {low:.2f}-{high:.2f}; "
              f"beyond " + ", ".join(f"{d:g}: {(nearest > d).float().mean():.0%}" for d in (0.85, 1.2)))


def main(argv=None):
    args = parse_args(argv)
    rgb, names = data.load_faces(args.data_dir)
    if args.crossval is not None:
        crossval_screen(args, (rgb, names))
        return
    columns, medians = [], []
    for path in (args.image_run, args.people_run):
        model, checkpoint = test_colorize.load_colorizer(path / "colorizer.pt", "cpu", shift_average=args.shift_average)
        if not checkpoint.get("val_names"):
            raise runtime.UserError(f"{path}: a screening run with validation photos (--val-fraction) is needed")
        train_l, train_ab = data.to_network(rgb[data.select_by_name(names, checkpoint["train_names"])])
        val_l, val_ab = data.to_network(rgb[data.select_by_name(names, checkpoint["val_names"])])
        with torch.no_grad():
            train_own = torch.cat([model(part) for part in train_l.split(50)])
            predictions = estimates(model(val_l), val_ab, train_l, train_ab, val_l, args.ridge, train_own)
        columns.append({name: data.ab_mse_raw(pred, val_ab).mean().item() for name, pred in predictions.items()})
        people = data.people_of(checkpoint["train_names"], args.data_dir)
        medians.append(nearest_medians(neighbours.describe(train_l), people))
    print("| what the nearest photos lend | validation MSE, seen people | validation people |\n| --- | --- | --- |")
    for name in columns[0]:
        print(f"| {name} | {columns[0][name]:.2f} | {columns[1][name]:.2f} |")
    for split, (own_person, other_person) in zip(("image", "person"), medians):
        print(f"\nthe {split} split's training photos: median distance to the nearest other photo of the same person "
              f"{own_person:.2f}, to the nearest of another person {other_person:.2f}")


if __name__ == "__main__":
    runtime.run_main(main)

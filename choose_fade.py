"""Choose the two distances of test_colorize.py's --fade-unfamiliar, and show what they do.

Owner of that choice only (the rule itself is models.FadedUnfamiliar). It scores, for every (FULL, NONE) of a grid:
- the validation photos of seen people (a screening run of the image split, --val-fraction 0.1) and the validation
  people (the 37 people no new-face test split holds, each by the crossval fold that held them out, as
  screen_tints.py --crossval scores them), each against the same networks without fading: the dataset's photos
  should keep their colour;
- colour photos from outside the dataset (default ../shared/outside_photos, scored as colour originals at full
  resolution, as test_colorize.py --input --score does) with the shipped model, against no colour at all.
The chosen setting has the lowest mean of three ratios: the outside photos' mean MSE over no colour's, and each
validation set's MSE over its MSE without fading. It is then checked on versions of the validation photos that no
choice saw: cropped, rescaled and re-lit; and on the test photos of the 3 seeds' image and person splits, how many
would fade at all (their training photos are the bank; no network needed). Prints markdown tables; `--out` gets one
picture of the outside photos (gray | without fading | with the chosen fading | original). Every prediction borrows
its tint (the default).

    python choose_fade.py     # about a minute on a 2-core CPU
"""
import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

import data
import experiments
import neighbours
import runtime
import test_colorize
import train_flags

FULL = [round(0.1 * i, 1) for i in range(2, 9)]
WIDTH = [0.1, 0.2, 0.3, 0.4, 0.6, 0.8]  # NONE - FULL
# versions of the validation photos that no choice saw (rgb N x 3 x 128 x 128 in [0, 1] to the same)
VERSIONS = {
    "cropped to the middle 70%": lambda rgb: F.interpolate(rgb[..., 19:109, 19:109], size=128, mode="bilinear",
                                                           antialias=True),
    "cropped to the middle 50%": lambda rgb: F.interpolate(rgb[..., 32:96, 32:96], size=128, mode="bilinear",
                                                           antialias=True),
    "rescaled: half the side, back up": lambda rgb: F.interpolate(F.interpolate(rgb, size=64, mode="area"),
                                                                  size=128, mode="bilinear"),
    "darker (x 0.7)": lambda rgb: rgb * 0.7,
    "brighter (x 1.3, clipped)": lambda rgb: (rgb * 1.3).clamp(0, 1),
    "more contrast (gamma 1.5)": lambda rgb: rgb ** 1.5,
    "less contrast (gamma 0.67)": lambda rgb: rgb ** (1 / 1.5),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=train_flags.HelpFormatter)
    parser.add_argument("--image-run", type=Path,
                        default=Path("runs/screen-recipes") / experiments.default_screening_run("screen-recipes"),
                        help="screening run of the image split (experiments.py screen-recipes)")
    parser.add_argument("--crossval", metavar="MATCH", default=" ".join(experiments.default_line("crossval")[1:]),
                        help="the validation people's networks: the crossval runs of the first line of "
                             "experiments/crossval.txt that contains MATCH (experiments.py crossval)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where experiments.py keeps its runs")
    parser.add_argument("--checkpoint", type=Path, default=test_colorize.SHIPPED,
                        help="the model that colorizes the outside photos")
    parser.add_argument("--photos", type=Path, default=data.SCRIPT_DIR.parent / "shared" / "outside_photos",
                        help="folder of colour photos from outside the dataset")
    parser.add_argument("--data-dir", help="folder of face images (default: as test_colorize.py)")
    parser.add_argument("--out", type=Path, help="write the picture of the outside photos here (a PNG)")
    parser.add_argument("--picture-height", type=train_flags.positive_int, default=240,
                        help="height of each photo in the picture")
    return parser.parse_args(argv)


def borrowing(path, faces):
    """The checkpoint at `path` lent the default borrowed error and tint (and its exemplar input, if it takes one), its
    training photos' descriptors, the checkpoint."""
    model, checkpoint = test_colorize.load_colorizer(path, "cpu")
    stages = test_colorize.default_stages(model, checkpoint, faces)
    return stages.borrowed, stages.bank, checkpoint


class Scored:
    """Photos whose unfaded prediction is made once: `mse(fade)` is their mean MSE over a*b* with the fading
    (FULL, NONE), or without it for None, exactly as FadedUnfamiliar computes at the network's input size and
    test_colorize.py then upsamples."""

    def __init__(self, parts):
        """parts: (l_norm the network sees, its unfaded ab_norm, ab_norm of the original at its own size, the
        descriptors of the network's training photos) of each batch of photos."""
        self.parts = parts

    @classmethod
    def of(cls, model, bank, photos):
        """photos: (l_norm the network sees, ab_norm of the original at its own size) pairs; bank: the descriptors
        of the model's training photos."""
        with torch.no_grad():
            return cls([(l_norm, model(l_norm).float(), ab_true, bank) for l_norm, ab_true in photos])

    @classmethod
    def pooled(cls, scored):
        """The photos of several Scored (each keeps its own network's prediction and training photos)."""
        return cls([part for one in scored for part in one.parts])

    def faded(self, fade):
        """The predictions at the originals' size with the fading (FULL, NONE) or None."""
        out = []
        for l_norm, ab_norm, ab_true, bank in self.parts:
            if fade is not None:
                ab_norm = data.fade(ab_norm, neighbours.kept_fraction(l_norm, bank, *fade))
            out.append(test_colorize.upsample(ab_norm, ab_true))
        return out

    def none(self):
        """Each photo's MSE with no colour at all."""
        return [data.ab_mse_raw(torch.zeros_like(part[2]), part[2]).mean(1).tolist() for part in self.parts]

    def mse(self, fade):
        """Each photo's MSE (raw Lab units^2): a list, one value per photo."""
        return [data.ab_mse_raw(pred, part[2]).mean(1).tolist() for pred, part in zip(self.faded(fade), self.parts)]


def dataset_photos(rgb):
    """(l_norm, ab_norm) of each dataset image, one batch: the network sees them at their own size."""
    l_norm, ab_norm = data.to_network(rgb)
    return [(l_norm, ab_norm)]


def outside_photos(folder, multiple, work_size=256):
    """(l_norm at the work size, ab_norm at full size) of each photo in `folder`, and the photos (rgb)."""
    rgbs = [torch.from_numpy(data.read_rgb(path)).permute(2, 0, 1) for path in data.list_images(folder)]
    if not rgbs:
        raise runtime.UserError(f"--photos {folder}: no {'/'.join(data.IMAGE_SUFFIXES)} images")
    parts = [(test_colorize.work_input(rgb, multiple, work_size)[1],
              data.normalize_ab(data.rgb_to_lab(rgb[None])[:, 1:])) for rgb in rgbs]
    return parts, rgbs


def mean(values):
    flat = [v for part in values for v in part]
    return sum(flat) / len(flat)


def grid_rows(sets, none_mse):
    """(fade, outside ratio, worst outside photo's ratio, image-split ratio, people ratio, their mean) per setting."""
    unfaded = {name: mean(scored.mse(None)) for name, scored in sets.items() if name != "outside"}
    rows = []
    for full in FULL:
        for width in WIDTH:
            fade = (full, round(full + width, 1))
            outside = [m[0] for m in sets["outside"].mse(fade)]
            outside_ratio = sum(outside) / sum(none_mse)
            worst = max(m / n for m, n in zip(outside, none_mse))
            dataset = [mean(sets[name].mse(fade)) / unfaded[name] for name in ("image", "people")]
            rows.append((fade, outside_ratio, worst, *dataset, (outside_ratio + sum(dataset)) / 3))
    return rows


def picture(rgbs, sets, fade, height):
    """Rows of [gray | without fading | with it | original], each photo scaled to `height`."""
    rows = []
    for rgb, plain, faded in zip(rgbs, sets["outside"].faded(None), sets["outside"].faded(fade)):
        lab = data.rgb_to_lab(rgb[None])
        panels = [data.merge_lab(lab[:, :1], torch.zeros_like(lab[:, 1:])), data.merge_lab(lab[:, :1],
                  data.denormalize_ab(plain)), data.merge_lab(lab[:, :1], data.denormalize_ab(faded)), rgb[None]]
        width = round(rgb.shape[2] * height / rgb.shape[1])
        rows.append(torch.cat([F.interpolate(p, size=(height, width), mode="area") for p in panels], dim=3)[0])
    widest = max(row.shape[2] for row in rows)
    return torch.cat([F.pad(row, (0, widest - row.shape[2]), value=1.0) for row in rows], dim=1)


def faded_test_photos(rgb, names, fade, data_dir, seeds=(0, 1, 2)):
    """Markdown rows: for each split (--split-by) and seed as train_colorize.py makes it, how many test photos keep
    less than all of their colour anywhere, and the share of all their pixels' colour that fades."""
    l_norm = data.to_network(rgb)[0]
    rows = []
    for split_by, groups in (("image", None), ("person", data.people_of(names, data_dir))):
        for seed in seeds:
            train, _, test = data.split_indices(len(rgb), seed, groups=groups)
            kept = neighbours.kept_fraction(l_norm[test], neighbours.describe(l_norm[train]), *fade)
            touched = int((kept.flatten(1).amin(1) < 1).sum())
            rows.append(f"| {split_by} | {seed} | {touched} of {len(test)} | {1 - kept.mean().item():.4f} |")
    return rows


def scored_versions(model, bank, rgb):
    """Scored photos (rgb) as they are, and {version: Scored} of each of VERSIONS."""
    return Scored.of(model, bank, dataset_photos(rgb)), {version: Scored.of(model, bank, dataset_photos(make(rgb)))
                                                          for version, make in VERSIONS.items()}


def scored_seen_people(args, faces):
    """scored_versions of the validation photos of the image-split screening run."""
    rgb, names = faces
    model, bank, checkpoint = borrowing(args.image_run / "colorizer.pt", faces)
    if not checkpoint.get("val_names"):
        raise runtime.UserError(f"{args.image_run}: a screening run with validation photos (--val-fraction) is needed")
    return scored_versions(model, bank, rgb[data.select_by_name(names, checkpoint["val_names"])])


def scored_validation_people(args, faces):
    """scored_versions of the validation people's photos, pooled over the crossval folds that held them out."""
    rgb, names = faces
    words, runs = experiments.crossval_runs(args.runs_dir, args.crossval)
    wanted = experiments.validation_people(names, args.data_dir)
    folds = []
    for _, run_dir in runs:
        model, bank, checkpoint = borrowing(run_dir / "colorizer.pt", faces)
        held_out = experiments.held_out_names(checkpoint, wanted, args.data_dir)
        if held_out:
            folds.append(scored_versions(model, bank, rgb[data.select_by_name(names, held_out)]))
    people = Scored.pooled([fold[0] for fold in folds])
    print(f"validation people: the {len(wanted)} people no new-face test split holds "
          f"({sum(len(part[0]) for part in people.parts)} photos), each by the fold of `{' '.join(words)}` that held "
          f"them out (experiments.py crossval)\n")
    return people, {version: Scored.pooled([fold[1][version] for fold in folds]) for version in VERSIONS}


def validation_sets(args, faces):
    """{"image": scored_seen_people's Scored photos, "people": scored_validation_people's}, and {the same:
    {version: Scored}}."""
    image, people = scored_seen_people(args, faces), scored_validation_people(args, faces)
    return {"image": image[0], "people": people[0]}, {"image": image[1], "people": people[1]}


def print_grid(rows, chosen):
    print("| FULL | NONE | outside photos / no colour | worst outside photo | image split (val) / unfaded | "
          "validation people / unfaded | mean of the three |\n| --- | --- | --- | --- | --- | --- | --- |")
    for fade, *ratios, score in rows:
        mark = " **chosen**" if fade == chosen else ""
        # the score to four decimals: neighbouring settings often tie at three
        print(f"| {fade[0]:g} | {fade[1]:g} | " + " | ".join(f"{r:.3f}" for r in ratios) + f" | {score:.4f} |{mark}")
    print(f"\nchosen: --fade-unfamiliar {chosen[0]:g} {chosen[1]:g}\n")


def print_outside(paths, outside, none_mse, fade):
    print("| outside photo | no colour | without fading | with fading |\n| --- | --- | --- | --- |")
    for path, nothing, plain, faded in zip(paths, none_mse, outside.mse(None), outside.mse(fade)):
        print(f"| {path.name} | {nothing:.2f} | {plain[0]:.2f} ({plain[0] / nothing:.2f}x) | "
              f"{faded[0]:.2f} ({faded[0] / nothing:.2f}x) |")
    print(f"| mean | {sum(none_mse) / len(none_mse):.2f} | {mean(outside.mse(None)):.2f} | "
          f"{mean(outside.mse(fade)):.2f} |")


def print_versions(sets, versions, fade):
    print("\n| validation photos | seen people: no colour | without fading | with | new people: no colour | "
          "without fading | with |\n| --- | --- | --- | --- | --- | --- | --- |")
    for version in ("as they are", *VERSIONS):
        cells = []
        for name in ("image", "people"):
            scored = sets[name] if version == "as they are" else versions[name][version]
            cells += [f"{mean(scored.none()):.2f}", f"{mean(scored.mse(None)):.2f}", f"{mean(scored.mse(fade)):.2f}"]
        print(f"| {version} | " + " | ".join(cells) + " |")


def main(argv=None):
    args = parse_args(argv)
    faces = data.load_faces(args.data_dir)
    sets, versions = validation_sets(args, faces)
    model, bank, _ = borrowing(args.checkpoint, faces)
    parts, rgbs = outside_photos(args.photos, model.side_multiple)
    sets["outside"] = Scored.of(model, bank, parts)
    none_mse = [m[0] for m in sets["outside"].none()]
    rows = grid_rows(sets, none_mse)
    fade = min(rows, key=lambda row: row[-1])[0]
    print_grid(rows, fade)
    print_outside(data.list_images(args.photos), sets["outside"], none_mse, fade)
    print_versions(sets, versions, fade)
    print("\n| test split (--split-by) | seed | test photos that fade anywhere | share of their colour faded |\n"
          "| --- | --- | --- | --- |")
    print("\n".join(faded_test_photos(*faces, fade, args.data_dir)))
    if args.out:
        test_colorize.write_png(args.out, picture(rgbs, sets, fade, args.picture_height))
        print(f"\npicture: {args.out}")


if __name__ == "__main__":
    runtime.run_main(main)

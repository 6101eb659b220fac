"""Train MeanChromaNet: predict each face's mean a* and mean b* from its L* channel; print and save the results.

Owner of this script's CLI and report lines; the loop, data preparation and checkpoints come from
training_loop, prepare and checkpoints.
Every printed error is MSE in raw Lab units^2 over (mean a*, mean b*).
"""
import argparse

import torch

import data
import output_files
import run_log
import runtime
import train_flags
import training_loop
from models import MeanChromaNet

NAME = "mean_chroma"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=train_flags.HelpFormatter)
    train_flags.add_common_args(parser, epochs=30, lr=1e-3, out_dir="runs/mean_chroma")
    parser.add_argument("--features", type=train_flags.positive_int, nargs="+", default=[3],
                        help="feature maps of the six hidden layers: one number for all, or six")
    parser.add_argument("--batchnorm", action="store_true", help="BatchNorm in the hidden layers (beyond the spec)")
    parser.add_argument("--flip-average", action="store_true",
                        help="evaluate as the average of the predictions for each image and its mirror image")
    parser.add_argument("--members", type=train_flags.positive_int, default=1,
                        help="train this many networks side by side (own initial weights) and predict their average")
    args = parser.parse_args(argv)
    if len(args.features) not in (1, 6):
        parser.error(f"--features: give 1 or 6 values, got {len(args.features)}")
    args.features = args.features[0] if len(args.features) == 1 else args.features
    return args


def mean_targets(ab_norm):
    """Per-image mean a*b* (ab_norm units), N x 2."""
    return ab_norm.mean((2, 3))


def main(argv=None):
    args = parse_args(argv)
    with training_loop.start_run(args, NAME, "MeanChromaNet") as run:
        train(args, run)


def train(args, run):
    """Print the baseline, fit the network, print example predictions and the final MSE, write the summary."""
    prepared, split = run.prepared, run.prepared["eval_split"]
    train_targets, held_out = mean_targets(prepared["train_ab"]), mean_targets(prepared["eval_ab"])
    baseline = data.ab_mse_raw(train_targets.mean(0).expand_as(held_out), held_out).mean().item()
    print(f"{len(train_targets)} training images (x{args.augment_factor} augmented), {len(held_out)} {split} "
          f"images, {runtime.compute_description(run.device, args.bf16)}")
    print(f"constant baseline (training images' average mean color) {split} MSE {baseline:.2f}")

    torch.manual_seed(args.seed)
    model = MeanChromaNet(args.features, args.tanh, args.batchnorm, args.flip_average, args.members).to(run.device)
    metrics = training_loop.fit(model, run, args, mean_targets)

    predicted = data.denormalize_ab(training_loop.predict(model, prepared["eval_l"][:5], args.batch_size))
    for name, true, pred in zip(prepared[f"{split}_names"], data.denormalize_ab(held_out[:5]), predicted):
        print(f"  {name}: true mean (a*, b*) = ({true[0]:6.2f}, {true[1]:6.2f})  "
              f"predicted ({pred[0]:6.2f}, {pred[1]:6.2f})")
    final = metrics[-1]
    figures = {"mean_mse": final[f"{split}_mse"], "mean_mse_baseline": baseline,
               **flat_colorization_scores(model, prepared, args.batch_size)}
    with output_files.keeping(run_log.finished_run_kept(run)):
        run_log.write_summary(run, args, model, metrics, figures)
    print(f"final {split} MSE {final[f'{split}_mse']:.2f} (constant baseline {baseline:.2f}); "
          f"checkpoint {run.checkpoint_path}")


def flat_colorization_scores(model, prepared, batch_size):
    """The figures of the colorizer tables (per-pixel MSE, PSNR, colorfulness) for this net used as a colorizer
    that paints each image's L* with one predicted a*b*."""
    mean_ab = training_loop.predict(model, prepared["eval_l"], batch_size)
    return run_log.held_out_scores(prepared, mean_ab[:, :, None, None].expand_as(prepared["eval_ab"]))


if __name__ == "__main__":
    runtime.run_main(main)

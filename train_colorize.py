"""Train a colorizer: L* in, a*b* out, on the x10-augmented 90% of the faces, tested on the untouched 10%. The
default network is Iizuka et al.'s global-feature fusion network with test-time mirror averaging; --arch unet is
the spec's Colorizer (N down and up modules; U-Net skips by default).

Owner of this script's CLI, the model flags and the loss-curve plot; the loop (training_loop), data preparation
(prepare), logging and the summary (run_log) and checkpoints (checkpoints) are shared. Errors are MSE over a* and
b* in raw Lab units^2; the run ends with the held-out MSE, RGB PSNR and colorfulness. --classify trains Zhang et
al.'s classification variant.
"""
import argparse
import io

import matplotlib
import torch

import data
import output_files
import prepare
import run_log
import runtime
import train_flags
import training_loop
from models import UPSAMPLE_KINDS, Colorizer, FusionColorizer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

NAME = "colorizer"
# flags (argparse dest names) that only one architecture uses; giving one to the other is an error, not ignored
UNET_FLAGS = ("levels", "features", "upsample", "skips", "classify", "bin_size", "temperature")
FUSION_FLAGS = ("width", "global_dim", "identity_weight", "exemplar", "exemplar_from", "exemplar_dropout")
TINT_WEIGHT = 0.5  # --tint-weight's default since 2026-12-05 (EXPERIMENTS.md, The training recipe)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=train_flags.HelpFormatter)
    # defaults: the configuration chosen on the validation split and confirmed on 3 seeds (EXPERIMENTS.md); the
    # recipe (4 epochs, one-cycle at 3e-3, crops from 0.9) since 2026-12-04, at a quarter of the cost of the one
    # before: --epochs 15 --lr 1e-3 --lr-schedule cosine --crop-min 0.7 --tint-weight 1 (EXPERIMENTS.md, The
    # training recipe); the tint error counting half since 2026-12-05
    train_flags.add_common_args(parser, epochs=4, lr=3e-3, out_dir="runs/colorizer", lr_schedule="one-cycle",
                                fresh_augment=True, crop_min=0.9)
    parser.add_argument("--arch", choices=("fusion", "unet"), default="fusion",
                        help="fusion: Iizuka et al.'s global-feature fusion network (--width, --global-dim); unet: "
                             "the spec's Colorizer of N down and up modules, with optional skips (--levels up to "
                             "--temperature)")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=True,
                        help="evaluate (and colorize) as the average of the predictions for each image and its "
                             "mirror image, mirrored back (beyond the spec; training is unchanged)")
    parser.add_argument("--low-res-epochs", type=train_flags.nonnegative_int, default=0, metavar="N",
                        help="train the first N epochs on the images at half their side (progressive resizing: a "
                             "quarter of the pixels per image), the rest at full size; evaluation is at full size")
    parser.add_argument("--width", type=train_flags.positive_int, default=16,
                        help="--arch fusion: base width K (low-level K..8K maps, fusion 4K; the paper's K is 64)")
    parser.add_argument("--global-dim", type=train_flags.positive_int,
                        help="--arch fusion: length of the global feature vector (default: 4 x --width)")
    parser.add_argument("--identity-weight", type=train_flags.nonnegative_float, default=0.0, metavar="W",
                        help="--arch fusion: also train the global features to tell which person is pictured (the "
                             "paper's joint classification; people from identities/face_identities.csv): loss = "
                             "color MSE + W x cross-entropy (the paper's W is 1/300); 0: off")
    parser.add_argument("--exemplar", type=train_flags.nonnegative_int, default=0, metavar="K",
                        help="--arch fusion: also give the network the mean a*b* map of the K training photos each "
                             "photo looks most like (exemplar input; the borrowed tint's neighbours); 0: off")
    parser.add_argument("--exemplar-from", choices=("photo", "person"), default="photo",
                        help="--exemplar: what a training image may not borrow from: its own photo (as a test photo "
                             "of a seen person meets the others of its sitting) or every photo of its person (as a "
                             "face never seen meets the most alike people)")
    parser.add_argument("--exemplar-dropout", type=train_flags.fraction, default=0.1, metavar="P",
                        help="--exemplar: the share of training images per epoch given no exemplar (zeros), so the "
                             "network also colorizes where the training faces are missing")
    parser.add_argument("--tint-weight", type=train_flags.unit_fraction, metavar="W",
                        help="how much each image's tint error (of its mean a*b*) counts in the loss against the "
                             "error of the detail around it (their sum is the MSE): below 1 the network learns "
                             "less of each sitting's tint, which a prediction borrows from its nearest training "
                             f"photos (default: {TINT_WEIGHT}; 1: the plain MSE, the default before 2026-12-05; "
                             "--classify trains with cross-entropy, which it does not weigh)")
    parser.add_argument("--levels", type=train_flags.positive_int, default=5, help="--arch unet: down (and up) "
                                                                                   "modules, N")
    parser.add_argument("--features", type=train_flags.positive_int, nargs="+", default=[16, 32, 64, 128, 128],
                        help="--arch unet: feature maps per level, one per level or one for all")
    parser.add_argument("--upsample", choices=UPSAMPLE_KINDS, default="transpose",
                        help="--arch unet: up modules: transposed convolution, or nearest upsampling + convolution")
    parser.add_argument("--skips", action=argparse.BooleanOptionalAction, default=True,
                        help="--arch unet: U-Net skip connections (beyond the spec; --no-skips: the spec's plain "
                             "network)")
    parser.add_argument("--classify", action="store_true",
                        help="--arch unet: predict a distribution over a*b* bins per pixel (cross-entropy; Zhang "
                             "et al. 2016)")
    parser.add_argument("--bin-size", type=train_flags.positive_int, default=10, help="--classify: a*b* bin width")
    parser.add_argument("--temperature", type=train_flags.positive_float, default=0.38,
                        help="--classify: annealed-mean temperature (1: plain mean)")
    args = parser.parse_args(argv)
    other_arch = UNET_FLAGS if args.arch == "fusion" else FUSION_FLAGS
    given = [flag for flag in other_arch if getattr(args, flag) != parser.get_default(flag)]
    if given:
        other = "unet" if args.arch == "fusion" else "fusion"
        parser.error(f"--{given[0].replace('_', '-')} is a flag of --arch {other}, not of --arch {args.arch} "
                     f"(the default arch is fusion)")
    if args.classify and args.tanh:
        parser.error("--classify and --tanh exclude each other (the classifier outputs logits)")
    if args.classify and args.tint_weight not in (None, 1.0):
        parser.error("--tint-weight weighs a regression loss; --classify trains with cross-entropy")
    if args.tint_weight is None:
        args.tint_weight = 1.0 if args.classify else TINT_WEIGHT
    if args.low_res_epochs >= args.epochs:
        parser.error(f"--low-res-epochs {args.low_res_epochs}: must be below --epochs ({args.epochs}), so that the "
                     f"last epochs train at full size")
    if args.width < 2:
        parser.error(f"--width {args.width}: must be at least 2")
    side = data.IMAGE_SIZE // 2 if args.low_res_epochs else data.IMAGE_SIZE  # the smallest side it trains at
    if args.arch == "unet" and 2 ** args.levels > side:
        images = "the half-side images (--low-res-epochs)" if args.low_res_epochs else "the images"
        parser.error(f"--levels {args.levels}: a U-Net of {args.levels} levels needs sides divisible by "
                     f"2^{args.levels} = {2 ** args.levels}; {images} are {side}x{side}")
    if len(args.features) not in (1, args.levels):
        parser.error(f"--features: give 1 or {args.levels} (= --levels) values, got {len(args.features)}")
    return args


def plot_losses(metrics, split, path):
    epochs = [row["epoch"] for row in metrics]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [row["train_mse"] for row in metrics], "o-", label="train (augmented)")
    ax.plot(epochs, [row[f"{split}_mse"] for row in metrics], "o-", label=split)
    ax.set(xlabel="epoch", ylabel="MSE over a*, b* (raw Lab units²)", title="Colorizer loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    output_files.write_bytes(path, png.getbuffer())


def main(argv=None):
    args = parse_args(argv)
    kind = "FusionColorizer" if args.arch == "fusion" else "Colorizer"
    with training_loop.start_run(args, NAME, kind) as run:
        train(args, run, kind)


def train(args, run, kind):
    """Build the network, fit it, and write the loss curve and summary (rank 0)."""
    prepared, (rank, world) = run.prepared, runtime.rank_and_world()
    split = prepared["eval_split"]
    people, classes = (prepare.person_labels(prepared, args.data_dir, args.augment_factor, run.device)
                       if args.identity_weight else (None, []))
    torch.manual_seed(args.seed)
    model = build_colorizer(args, prepared, len(classes)).to(run.device)
    if rank == 0:
        print(f"{len(prepared['train_l'])} training images (x{args.augment_factor} augmented), "
              f"{len(prepared['eval_l'])} {split} images, {runtime.compute_description(run.device, args.bf16)}, "
              f"{world} process(es), process group {runtime.process_group_name()}")
        print(f"{kind} {summary_args(model.args)}: {sum(p.numel() for p in model.parameters()):,} parameters")
        if classes:
            print(f"identity loss: color MSE + {args.identity_weight:g} x cross-entropy over the {len(classes)} "
                  f"people of the training split")
    metrics = training_loop.fit(model, run, args, identity=(people, args.identity_weight) if classes else None)
    if rank == 0:
        figures = run_log.held_out_scores(prepared, training_loop.predict(model, prepared["eval_x"], args.batch_size))
        with output_files.keeping(run_log.finished_run_kept(run)):
            plot_losses(metrics, split, run.out_dir / f"{NAME}_loss.png")
            run_log.write_summary(run, args, model, metrics, figures)
        print(f"final {split} MSE {figures['mse']:.2f} (a* {figures['mse_a']:.2f}, b* {figures['mse_b']:.2f}), "
              f"PSNR {figures['psnr']:.2f} dB, colorfulness {figures['colorfulness']:.1f} "
              f"(originals {figures['colorfulness_true']:.1f}) after {metrics[-1]['epoch']} epochs; "
              f"checkpoint {run.checkpoint_path}")


def build_colorizer(args, prepared, people=0):
    """The network the flags ask for (its classification bins, if any, from the prepared training set; with
    --identity-weight a person classifier for `people` people)."""
    if args.arch == "fusion":
        return FusionColorizer(args.width, args.global_dim, tanh=args.tanh, flip_average=args.flip_average,
                               classes=people, exemplar=args.exemplar)
    bins = data.ab_bins(prepared["train_ab"], args.bin_size) if args.classify else None
    if bins is not None and len(bins) < 2:
        raise runtime.UserError(f"--bin-size {args.bin_size}: the training images' a*b* all fall in one bin; "
                                f"classes need at least 2 (the default is 10)")
    return Colorizer(args.levels, args.features, args.upsample, args.tanh, args.skips, bins, args.bin_size,
                     args.temperature, args.flip_average)


def summary_args(model_args):
    """The model arguments for printing: a bin list shortened to its length."""
    bins = model_args.get("bins")
    return {**model_args, "bins": f"{len(bins)} bins"} if bins else model_args


if __name__ == "__main__":
    runtime.run_main(main)

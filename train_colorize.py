"""Train the Colorizer: L* in, a*b* out, on the x10-augmented 90% of the faces, tested on the untouched 10%.

Owner of this script's CLI, the model flags and the loss-curve plot; the loop, data preparation, logging and
checkpoints come from train_common. Errors are MSE over a* and b* in raw Lab units^2.
"""
import argparse

import matplotlib
import torch

import train_common as tc
from models import UPSAMPLE_KINDS, Colorizer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

NAME = "colorizer"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tc.add_common_args(parser, epochs=25, lr=1e-3, out_dir="outputs", lr_schedule="cosine")
    parser.add_argument("--levels", type=tc.positive_int, default=5, help="down (and up) modules, N")
    parser.add_argument("--features", type=tc.positive_int, nargs="+", default=[16, 32, 64, 128, 128],
                        help="feature maps per level, one per level or one for all")
    parser.add_argument("--upsample", choices=UPSAMPLE_KINDS, default="transpose")
    parser.add_argument("--skips", action="store_true", help="U-Net skip connections (beyond the spec)")
    args = parser.parse_args(argv)
    if len(args.features) not in (1, args.levels):
        parser.error(f"--features: give 1 or {args.levels} (= --levels) values, got {len(args.features)}")
    return args


def plot_losses(metrics, path):
    epochs = [row["epoch"] for row in metrics]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [row["train_mse"] for row in metrics], "o-", label="train (augmented)")
    ax.plot(epochs, [row["test_mse"] for row in metrics], "o-", label="test")
    ax.set(xlabel="epoch", ylabel="MSE over a*, b* (raw Lab units²)", title="Colorizer loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    run = tc.start_run(args, NAME, "Colorizer")
    prepared, (rank, world) = run.prepared, tc.rank_and_world()
    torch.manual_seed(args.seed)
    model = Colorizer(args.levels, args.features, args.upsample, args.tanh, args.skips).to(run.device)
    if rank == 0:
        print(f"{len(prepared['train_l'])} training images (x{args.augment_factor} augmented), "
              f"{len(prepared['test_l'])} test images, device {run.device}, {world} process(es)")
        print(f"Colorizer {model.args}: {sum(p.numel() for p in model.parameters()):,} parameters")
    metrics = tc.fit(model, (prepared["train_l"], prepared["train_ab"]), (prepared["test_l"], prepared["test_ab"]),
                     args, prepared, run.checkpoint_path, run.log_path, run.resume_from, run.stop)
    if rank == 0:
        plot_losses(metrics, run.out_dir / f"{NAME}_loss.png")
        final = metrics[-1]
        print(f"final test MSE {final['test_mse']:.2f} (a* {final['test_mse_a']:.2f}, b* {final['test_mse_b']:.2f}) "
              f"after {final['epoch']} epochs; checkpoint {run.checkpoint_path}")


if __name__ == "__main__":
    tc.run_main(main)

"""Train MeanChromaNet: predict each face's mean a* and mean b* from its L* channel; print and save the results.

Owner of this script's CLI and report lines; the loop, data preparation and checkpoints come from train_common.
Every printed error is MSE in raw Lab units^2 over (mean a*, mean b*).
"""
import argparse

import torch

import data
import train_common as tc
from models import MeanChromaNet

NAME = "mean_chroma"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tc.add_common_args(parser, epochs=30, lr=1e-3, out_dir="outputs")
    parser.add_argument("--features", type=tc.positive_int, default=3, help="feature maps of the hidden layers")
    return parser.parse_args(argv)


def mean_targets(ab_norm):
    """Per-image mean a*b* (ab_norm units), N x 2."""
    return ab_norm.mean((2, 3))


def main(argv=None):
    args = parse_args(argv)
    run = tc.start_run(args, NAME, "MeanChromaNet")
    prepared = run.prepared
    train = (prepared["train_l"], mean_targets(prepared["train_ab"]))
    test = (prepared["test_l"], mean_targets(prepared["test_ab"]))
    baseline = data.ab_mse_raw(train[1].mean(0).expand_as(test[1]), test[1]).mean().item()
    print(f"{len(train[0])} training images (x{args.augment_factor} augmented), {len(test[0])} test images, "
          f"device {run.device}")
    print(f"constant baseline (training images' average mean color) test MSE {baseline:.2f}")

    torch.manual_seed(args.seed)
    model = MeanChromaNet(args.features, args.tanh).to(run.device)
    metrics = tc.fit(model, train, test, args, prepared, run.checkpoint_path, run.log_path, run.resume_from, run.stop)

    predicted = data.denormalize_ab(tc.predict(model, test[0][:5], args.batch_size))
    for name, true, pred in zip(prepared["test_names"], data.denormalize_ab(test[1][:5]), predicted):
        print(f"  {name}: true mean (a*, b*) = ({true[0]:6.2f}, {true[1]:6.2f})  "
              f"predicted ({pred[0]:6.2f}, {pred[1]:6.2f})")
    print(f"final test MSE {metrics[-1]['test_mse']:.2f} (constant baseline {baseline:.2f}); "
          f"checkpoint {run.checkpoint_path}")


if __name__ == "__main__":
    tc.run_main(main)

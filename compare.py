"""Side-by-side comparison of colorizers on the same test faces: one row per face, columns grayscale input, each
checkpoint's colorization, ground truth, under a labelled header. Each checkpoint colorizes as test_colorize.py
runs it by default (what its nearest training photos lend, faded where a face looks unfamiliar:
test_colorize.default_stages), or with --own-colours as its network alone.

Owner of the comparison figure only; models are loaded and images written with test_colorize's helpers. The
checkpoints must share a test split (trained with the same --seed and --split-by).

    python compare.py runs/final/colorize_features_3_seed0/colorizer.pt runs/final/colorize_seed0/colorizer.pt \\
        --labels "spec net, 3 maps" "regression" --out outputs/comparison.png
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

import data
import test_colorize
import runtime
import train_flags
import training_loop

HEADER = 24  # pixels


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=train_flags.HelpFormatter)
    parser.add_argument("checkpoints", nargs="+",
                        help="colorizer checkpoints (Colorizer or FusionColorizer), one column each")
    parser.add_argument("--labels", nargs="+", help="column titles (default: the checkpoint folder names)")
    parser.add_argument("--faces", type=train_flags.positive_int, default=8,
                        help="test faces (rows), from the split's start")
    parser.add_argument("--data-dir", help=data.DATA_DIR_HELP)
    parser.add_argument("--own-colours", action="store_true",
                        help="each network's own colours, without what its training photos lend")
    parser.add_argument("--out", default="outputs/comparison.png", help="PNG to write")
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.checkpoints):
        parser.error(f"--labels: give one per checkpoint ({len(args.checkpoints)}), got {len(args.labels)}")
    return args


def header(labels, width):
    """A white strip with each label centred over its column, 3 x HEADER x (len(labels) * width)."""
    strip = np.full((HEADER, len(labels) * width, 3), 255, np.uint8)
    for i, label in enumerate(labels):
        (text_w, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        cv2.putText(strip, label, (i * width + max(0, (width - text_w) // 2), 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return torch.from_numpy(strip).permute(2, 0, 1).float() / 255


def main(argv=None):
    args = parse_args(argv)
    device = runtime.pick_device("auto")
    models = [test_colorize.load_colorizer(path, device) for path in args.checkpoints]
    test_colorize.check_same_split(args.checkpoints, [checkpoint for _, checkpoint in models], ("test",))
    test_names = models[0][1]["test_names"][:args.faces]
    faces = data.load_faces(args.data_dir)
    rgb = faces[0][data.select_by_name(faces[1], test_names)]
    l_norm, _ = data.to_network(rgb)
    l_raw = l_norm * data.L_SCALE
    columns = [data.merge_lab(l_raw, torch.zeros_like(l_raw).expand(-1, 2, -1, -1))]
    for model, checkpoint in models:
        if not args.own_colours:
            model = test_colorize.default_stages(model, checkpoint, faces).default.to(device)
        ab_norm = training_loop.predict(model, l_norm.to(device), len(l_norm)).float().cpu()
        columns.append(data.merge_lab(l_raw, data.denormalize_ab(ab_norm)))
    columns.append(rgb)
    rows = torch.cat(columns, dim=3)  # N x 3 x H x (columns * W)
    labels = ["grayscale"] + (args.labels or [Path(p).parent.name for p in args.checkpoints]) + ["ground truth"]
    image = torch.cat([header(labels, rgb.shape[3])] + list(rows), dim=1)
    out = Path(args.out)
    test_colorize.out_folder(out.parent)
    test_colorize.write_png(out, image)
    print(f"{len(test_names)} test faces x {len(labels)} columns -> {out}")


if __name__ == "__main__":
    runtime.run_main(main)

"""Face images in, L*a*b* tensors out: loading, the train/test split and all color math.

This module is the only owner of:
- finding and reading the dataset (OpenCV reads BGR; it is converted to RGB once, in `read_rgb`);
- the seeded 90/10 split, made before any augmentation, by image or by person (the identity table), and
  the 10 folds of k-fold cross-validation;
- RGB <-> CIE L*a*b* conversion (sRGB, D65) and the normalisation the networks see;
- a prediction's tint (its mean a*b*), pulling it toward another, and fading its colour toward none;
- the a*b* bins of the classification variant (quantisation and annealed-mean decoding);
- the image-quality figures: MSE over a*b*, RGB PSNR and colorfulness (Hasler and Susstrunk 2003).

Units used across the project:
- `rgb`: float32 in [0, 1], shape N x 3 x H x W.
- `lab` / `l_raw` / `ab_raw`: float CIE Lab, L in [0, 100], a and b signed (about -110..110 in sRGB).
- `l_norm` = L / 100 in [0, 1] (network input); `ab_norm` = ab / AB_SCALE, in [-1, 1] for sRGB colors
  (network output, linear or Tanh). Errors are always reported in raw Lab units (`ab_raw`).
"""
import csv
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

IMAGE_SIZE = 128
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SCRIPT_DIR = Path(__file__).resolve().parent
DEFAULT_DATA_DIRS = (SCRIPT_DIR / "face_images", SCRIPT_DIR.parent / "shared" / "face_images")
# a machine that keeps the faces elsewhere (a cluster's storage, the GPU machine of tools/gpu_check.sh) names them here
DATA_DIR_VARIABLE = "FACECOLOR_DATA_DIR"
DATA_DIR_HELP = (f"folder of face images (default: ${DATA_DIR_VARIABLE} if set, else face_images/ beside the scripts, "
                 f"else ../shared/face_images)")
# who is pictured in each photo (tools/identify_faces.py): --split-by person keeps each person in one split
IDENTITY_TABLE = SCRIPT_DIR / "identities" / "face_identities.csv"

L_SCALE = 100.0
AB_SCALE = 110.0  # every sRGB color has |a|, |b| < 110, so ab / 110 fits a Tanh output

# Linear sRGB (D65) to CIE XYZ (IEC 61966-2-1), with each row divided by the D65 white point's X, Y, Z,
# so the product is XYZ relative to white (X/Xn, Y/Yn, Z/Zn); and its inverse.
_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                            [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_WHITE_D65 = _RGB_TO_XYZ.sum(1)  # XYZ of RGB white: 0.950456, 1.0, 1.088754
_RGB_TO_XYZ_REL = _RGB_TO_XYZ / _WHITE_D65.view(3, 1)
_XYZ_REL_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ_REL)
_EPS = 216.0 / 24389.0
_KAPPA = 24389.0 / 27.0


class DataError(Exception):
    """A problem with the dataset or an input image, worded for the user (one line)."""


# ---------------------------------------------------------------- loading

def resolve_data_dir(data_dir=None):
    """The folder to load: `data_dir` if given, else $FACECOLOR_DATA_DIR if set, else face_images/ beside the
    scripts, else ../shared/face_images. A folder named but missing is an error, never a silent fallback."""
    if data_dir is not None:
        return _named_dir("--data-dir", data_dir)
    if os.environ.get(DATA_DIR_VARIABLE):
        return _named_dir(DATA_DIR_VARIABLE, os.environ[DATA_DIR_VARIABLE])
    for path in DEFAULT_DATA_DIRS:
        if path.is_dir():
            return path
    raise DataError(f"no face images found: unzip face_images.zip into {SCRIPT_DIR} "
                    f"(giving {DEFAULT_DATA_DIRS[0]}), pass --data-dir or set {DATA_DIR_VARIABLE}")


def _named_dir(name, value):
    """`value` as a Path, if it is a folder; `name`: the flag or variable that named it, for the error."""
    if not Path(value).is_dir():
        raise DataError(f"{name} {value}: no such folder")
    return Path(value)


def is_data_dir(path, data_dir=None):
    """Whether `path` is the folder the faces are loaded from: files written there would be read as faces."""
    return Path(path).resolve() == resolve_data_dir(data_dir).resolve()


def _is_truncated_jpeg(raw):
    """OpenCV silently decodes a cut-off JPEG with a grey bottom; the missing end-of-image marker gives it away."""
    return raw[:2] == b"\xff\xd8" and not raw.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def read_rgb(path):
    """One image file as float32 RGB in [0, 1], H x W x 3. Raises DataError naming the file if it cannot be used.

    Grayscale, RGBA (alpha dropped) and 8- or 16-bit files all become 3-channel RGB.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None
    if image is None or image.size == 0:
        raise DataError(f"{path}: not a readable image")
    if _is_truncated_jpeg(raw):
        raise DataError(f"{path}: truncated JPEG")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0 if image.dtype == np.uint8 else 1.0
    if image.ndim == 2 or image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return np.multiply(image, 1 / scale, dtype=np.float32)  # channel order fixed before the 4x larger float copy


def list_images(folder):
    """Image files of `folder` in sorted name order."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_or_error(path):
    try:
        return read_rgb(path)
    except DataError as err:
        return err


def load_faces(data_dir=None, limit=None):
    """Load the dataset as (rgb N x 3 x 128 x 128 float32 in [0,1], file names).

    Files that cannot be used are skipped with a warning naming them; images of another size are resized
    (INTER_AREA). `limit` keeps only the first files, for quick runs and tests. Files are decoded on a few
    threads (OpenCV releases the GIL).
    """
    folder = resolve_data_dir(data_dir)
    paths = list_images(folder)[:limit]
    images, names = [], []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for path, rgb in zip(paths, pool.map(_read_or_error, paths)):
            if isinstance(rgb, DataError):
                warnings.warn(f"skipping {rgb}", stacklevel=2)
                continue
            if rgb.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
                rgb = cv2.resize(rgb, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
            images.append(rgb)
            names.append(path.name)
    if not images:
        raise DataError(f"{folder}: no loadable .jpg/.jpeg/.png image")
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), names


# ---------------------------------------------------------------- split

FOLD_SEED = 0  # --fold: the one fixed shuffle the folds are cut from (fold 0 is then --seed 0's split)
FOLDS = 10  # each tests the default test fraction, 10%


def split_indices(n, seed, test_fraction=0.1, val_fraction=0.0, groups=None, fold=None):
    """Seeded shuffle with torch.randperm, then (train, val, test) index tensors; test is the first part.

    The test part depends only on n, seed and test_fraction, so holding out a validation part (taken from the
    training part) never changes which images are tested. With `groups` (a label per image: the person pictured,
    for --split-by person) the shuffle is over the groups and whole groups go to each part: test takes
    round(groups x test_fraction) of them, validation round(groups x val_fraction), each group's images in index
    order. With `fold` K (k-fold cross-validation, K < 1 / test_fraction) the shuffle is the fixed one of FOLD_SEED,
    turned so that its K-th slice of test_fraction is tested and the slices after it are validated: the folds'
    test parts cover every image (or group) exactly once, whatever `seed`.
    """
    if groups is None:
        n_test, n_val = round(n * test_fraction), round(n * val_fraction)
        if fold is None:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(FOLD_SEED)).roll(-fold * n_test)
        return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]
    labels = sorted(set(groups))
    train, val, test = split_indices(len(labels), seed, test_fraction, val_fraction, fold=fold)
    members = {label: [i for i, g in enumerate(groups) if g == label] for label in labels}
    return tuple(torch.tensor([i for g in part.tolist() for i in members[labels[g]]], dtype=torch.long)
                 for part in (train, val, test))


def read_identities(path=IDENTITY_TABLE):
    """{file name: person} from the identity table (CSV with columns file, person) of tools/identify_faces.py."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise DataError(f"{path}: cannot read the identity table ({err.strerror})") from None
    if not rows or not {"file", "person"} <= set(rows[0]):
        raise DataError(f"{path}: not an identity table (CSV with the columns file and person)")
    return {row["file"]: row["person"] for row in rows}


def people_of(names, data_dir=None, path=IDENTITY_TABLE):
    """The person pictured in each of `names` (files of the data folder), from the identity table. The table and
    the folder must list the same photos: a DataError names those only one of them has."""
    identities = read_identities(path)
    folder = resolve_data_dir(data_dir)
    on_disk = {p.name for p in list_images(folder)}
    for what, extra in ((f"photo(s) of {folder} missing from {path}", on_disk - identities.keys()),
                        (f"photo(s) named in {path} missing from {folder}", identities.keys() - on_disk)):
        if extra:
            shown = sorted(extra)
            raise DataError(f"--split-by person: {len(shown)} {what}: {', '.join(shown[:5])}"
                            f"{f' and {len(shown) - 5} more' if len(shown) > 5 else ''}")
    return [identities[name] for name in names]


def select_by_name(names, wanted):
    """Indices of `wanted` file names in `names`; a DataError names any that are missing."""
    position = {name: i for i, name in enumerate(names)}
    missing = [name for name in wanted if name not in position]
    if missing:
        raise DataError(f"{len(missing)} image(s) of the checkpoint's split are not in the data folder, "
                        f"e.g. {missing[0]}")
    return torch.tensor([position[name] for name in wanted], dtype=torch.long)


# ---------------------------------------------------------------- color math

def _srgb_to_linear(rgb):
    return torch.where(rgb > 0.04045, (rgb + 0.055).mul_(1 / 1.055).pow_(2.4), rgb * (1 / 12.92))


def _linear_to_srgb(linear):
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp(min=0) ** (1 / 2.4) - 0.055)


def _mix(matrix, x):
    """Apply a 3x3 matrix to the channel dimension (dim 1) of N x 3 x H x W, as one batched matmul."""
    return torch.matmul(matrix.to(x), x.reshape(len(x), 3, -1)).view_as(x)


def _lab_f(rgb):
    """The CIE f() of X/Xn, Y/Yn, Z/Zn for sRGB in [0, 1], N x 3 x H x W."""
    xyz = _mix(_RGB_TO_XYZ_REL, _srgb_to_linear(rgb))
    return torch.where(xyz > _EPS, xyz.pow(1 / 3), (xyz * (_KAPPA / 116)).add_(16 / 116))


def _write_lab(f, l_out, ab_out, l_scale=1.0, ab_scale=1.0):
    """L* / l_scale into l_out (N x 1 x H x W) and a*b* / ab_scale into ab_out (N x 2 x H x W), from _lab_f."""
    fx, fy, fz = f.unbind(1)
    torch.mul(fy, 116 / l_scale, out=l_out[:, 0]).sub_(16 / l_scale)
    torch.sub(fx, fy, out=ab_out[:, 0]).mul_(500 / ab_scale)
    torch.sub(fy, fz, out=ab_out[:, 1]).mul_(200 / ab_scale)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (N x 3 x H x W) to float CIE Lab (L in [0, 100], a and b signed), same shape."""
    f = _lab_f(rgb)
    lab = torch.empty_like(f)
    _write_lab(f, lab[:, :1], lab[:, 1:])
    return lab


def lab_to_rgb(lab):
    """Float CIE Lab (N x 3 x H x W) back to sRGB, clipped to [0, 1]."""
    fy = (lab[:, 0:1] + 16) / 116
    f = torch.cat([fy + lab[:, 1:2] / 500, fy, fy - lab[:, 2:3] / 200], dim=1)
    xyz = torch.where(f > 6 / 29, f ** 3, (116 * f - 16) / _KAPPA)  # f > 6/29 is XYZ > _EPS
    return _linear_to_srgb(_mix(_XYZ_REL_TO_RGB, xyz)).clamp(0, 1)


def normalize_l(l_raw):
    return l_raw / L_SCALE


def normalize_ab(ab_raw):
    return ab_raw / AB_SCALE


def denormalize_ab(ab_norm):
    return ab_norm * AB_SCALE


def to_network(rgb, chunk=16, out=None):
    """RGB batch to the pair the colorizer trains on: (l_norm N x 1 x H x W, ab_norm N x 2 x H x W).

    Converts `chunk` images at a time: the temporaries stay in cache, which is faster and bounds peak memory.
    `out` = (l_norm, ab_norm) tensors to fill instead of new ones.
    """
    shape = (len(rgb), *rgb.shape[2:])
    l_norm, ab_norm = out if out is not None else (rgb.new_empty((shape[0], 1, *shape[1:])),
                                                   rgb.new_empty((shape[0], 2, *shape[1:])))
    for start in range(0, len(rgb), chunk):
        part = slice(start, start + chunk)
        _write_lab(_lab_f(rgb[part]), l_norm[part], ab_norm[part], L_SCALE, AB_SCALE)  # normalize_l/_ab in place
    return l_norm, ab_norm


def tint(ab_norm):
    """Each image's mean color, its tint: N x 2 x 1 x 1 (a*, b*), in the units of `ab_norm`."""
    return ab_norm.mean((2, 3), keepdim=True)


def pull_tint(ab_norm, toward, keep):
    """`ab_norm` (N x 2 x H x W) with each image's tint moved toward `toward` (2 values, or N x 2: one each; same
    units), keeping the fraction `keep` of the distance (a number, or N: one each): 1 changes nothing, 0 gives each
    image the tint `toward`. The detail around each image's tint is untouched."""
    if torch.is_tensor(keep):
        keep = keep.reshape(-1, 1, 1, 1)
    return ab_norm + (1 - keep) * (toward.reshape(-1, 2, 1, 1) - tint(ab_norm))


def scale_detail(ab_norm, keep):
    """`ab_norm` (N x 2 x H x W) with the detail around each image's tint scaled by `keep` (a number, or N: one
    each): 1 changes nothing, 0 leaves each image its tint alone. The tint is untouched."""
    if torch.is_tensor(keep):
        keep = keep.reshape(-1, 1, 1, 1)
    image_tint = tint(ab_norm)
    return image_tint + keep * (ab_norm - image_tint)


def fade(ab_norm, kept):
    """`ab_norm` with each pixel's a*b* scaled toward no colour (a* = b* = 0), keeping the fraction `kept` (a map that
    broadcasts to it, in [0, 1]). Hue is kept; only the colour's strength fades."""
    return ab_norm * kept


def merge_lab(l_raw, ab_raw):
    """Input L* and predicted a*b* (raw units) to RGB in [0, 1]."""
    return lab_to_rgb(torch.cat([l_raw, ab_raw], dim=1))


def ab_mse_raw(ab_norm_pred, ab_norm_true):
    """Per-image MSE over a* and b* in raw Lab units^2, shape N x 2 (a*, b*); inputs N x 2 [x H x W]."""
    err = (ab_norm_pred - ab_norm_true) * AB_SCALE
    return err.pow(2).reshape(len(err), 2, -1).mean(2)


def psnr(rgb_pred, rgb_true):
    """Per-image PSNR in dB of rgb_pred against rgb_true (both in [0, 1], N x 3 x H x W)."""
    mse = (rgb_pred - rgb_true).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp(min=1e-10))


def colorfulness(rgb):
    """Per-image colorfulness of Hasler and Susstrunk (2003) on the 0-255 scale: about 31 for these faces.

    rg = R - G, yb = (R + G) / 2 - B; colorfulness = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2).
    """
    r, g, b = (rgb * 255).flatten(2).unbind(1)
    rg, yb = r - g, (r + g) / 2 - b
    spread = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    return spread + 0.3 * (rg.mean(1).pow(2) + yb.mean(1).pow(2)).sqrt()


def image_scores(l_norm, ab_norm_pred, ab_norm_true):
    """Per-image figures of a colorization (the input L* merged with predicted a*b*) against the original:
    dict of N-vectors mse_a, mse_b (raw Lab units^2), psnr (dB, RGB), colorfulness and colorfulness_true."""
    l_raw = l_norm * L_SCALE
    rgb_pred = merge_lab(l_raw, denormalize_ab(ab_norm_pred))
    rgb_true = merge_lab(l_raw, denormalize_ab(ab_norm_true))
    mse = ab_mse_raw(ab_norm_pred, ab_norm_true)
    return {"mse_a": mse[:, 0], "mse_b": mse[:, 1], "psnr": psnr(rgb_pred, rgb_true),
            "colorfulness": colorfulness(rgb_pred), "colorfulness_true": colorfulness(rgb_true)}


def mean_scores(l_norm, ab_norm_pred, ab_norm_true):
    """image_scores averaged over the images, plus mse: the mean of mse_a and mse_b (floats)."""
    scores = image_scores(l_norm, ab_norm_pred, ab_norm_true)
    figures = {name: values.mean().item() for name, values in scores.items()}
    return {"mse": (figures["mse_a"] + figures["mse_b"]) / 2, **figures}


# ---------------------------------------------------------------- a*b* classes (Zhang et al. 2016)

def _bin_cells(ab_norm, bin_size):
    """Integer grid cell of each pixel's a*b* on a bin_size grid, as one key per pixel, and the key range."""
    half = int(AB_SCALE // bin_size) + 2
    cell = torch.round(denormalize_ab(ab_norm) / bin_size).long().clamp_(-half, half) + half
    return cell[:, 0] * (2 * half + 1) + cell[:, 1], (2 * half + 1) ** 2, half


def ab_bins(ab_norm, bin_size):
    """Centres (raw a*, b*) of the bin_size x bin_size a*b* bins that pixels of ab_norm fall in: a K x 2 list."""
    keys, count, half = _bin_cells(ab_norm, bin_size)
    used = torch.bincount(keys.flatten(), minlength=count).nonzero().flatten()
    cells = torch.stack([used // (2 * half + 1), used % (2 * half + 1)], 1) - half
    return (cells * bin_size).tolist()


def ab_to_class(ab_norm, bins, bin_size):
    """Class index (N x H x W, long) of each pixel's a*b* bin among `bins` (from ab_bins); -1 if not one of them."""
    keys, count, half = _bin_cells(ab_norm, bin_size)
    table = torch.full((count,), -1, dtype=torch.long, device=ab_norm.device)
    centres = torch.tensor(bins, device=ab_norm.device).div(bin_size).round().long() + half
    table[centres[:, 0] * (2 * half + 1) + centres[:, 1]] = torch.arange(len(bins), device=ab_norm.device)
    return table[keys]


def annealed_mean(logits, bins_norm, temperature):
    """Zhang et al.'s decoding: the mean of the bin centres (K x 2, ab_norm units) under softmax(logits / T).

    T = 1 is the plain mean (lowest MSE, washed out); T -> 0 the most likely bin (vivid, patchy); 0.38 is theirs.
    logits: N x K x H x W; returns ab_norm N x 2 x H x W.
    """
    probs = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("nkhw,kc->nchw", probs, bins_norm.to(probs))

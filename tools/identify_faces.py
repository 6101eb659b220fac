"""Who is who among the face photos: writes the identity table (file name -> person) and a contact sheet.

Owner of recovering identities, offline, with dlib's face-descriptor network from the `face_recognition_models`
package (nothing is downloaded at run time). Its dependencies are its own (tools/requirements-identify.txt); the
training and test scripts only read the table it writes (data.read_identities).

1. Find the face in each photo: dlib's frontal detector on the image upsampled once; where it finds none, the same
   on the photo padded by mirrored edges (a face cut off at the crop's border); then the CNN detector of the same
   package. The whole crop as the face box is the last resort (and is counted).
2. A 128-d descriptor per face (68-point landmarks, then dlib's ResNet).
3. Groups of equal size: the Georgia Tech set has 15 photos of each of 50 people by construction, and a plain
   distance cut merges look-alike people. Average-linkage agglomeration whose merges may not exceed the group
   size, then a balanced assignment of photos to the groups' centroids (Hungarian algorithm, every group gets the
   same number of photos), repeated until nothing moves.
4. Prints the group sizes, how many photos have their nearest neighbour in their own group, and within/between
   group distances; writes the table (CSV: file,person) and the contact sheet (one row per person).

    python3 -m venv .venv-identify && .venv-identify/bin/pip install -r tools/requirements-identify.txt
    .venv-identify/bin/python tools/identify_faces.py      # about 2 minutes on one core
"""
import argparse
import collections
import csv
import importlib.util
import os
import sys
from pathlib import Path

import cv2
import dlib
import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIRS = (ROOT / "face_images", ROOT.parent / "shared" / "face_images")
SUFFIXES = (".jpg", ".jpeg", ".png")
PAD = 32  # pixels of mirrored border for faces the crop cuts off
SAME_PERSON = 0.6  # dlib's usual descriptor distance threshold, printed for reference only


def model_file(name):
    """A model file of face_recognition_models, found by path: the package's own helper imports pkg_resources,
    which current setuptools no longer has."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise SystemExit("error: face_recognition_models is not installed: pip install -r "
                         "tools/requirements-identify.txt")
    return str(Path(spec.submodule_search_locations[0]) / "models" / name)


class FaceDescriber:
    """dlib's detectors, landmark model and descriptor network, loaded once."""

    def __init__(self):
        self.frontal = dlib.get_frontal_face_detector()
        self.cnn = dlib.cnn_face_detection_model_v1(model_file("mmod_human_face_detector.dat"))
        self.landmarks = dlib.shape_predictor(model_file("shape_predictor_68_face_landmarks.dat"))
        self.network = dlib.face_recognition_model_v1(model_file("dlib_face_recognition_resnet_model_v1.dat"))

    def find_face(self, rgb):
        """(image, face box, how it was found): the largest face the first detector that finds one returns."""
        padded = cv2.copyMakeBorder(rgb, PAD, PAD, PAD, PAD, cv2.BORDER_REFLECT)
        for how, image, detect in (("frontal", rgb, self.frontal), ("frontal, padded", padded, self.frontal),
                                   ("cnn", rgb, lambda img, up: [d.rect for d in self.cnn(img, up)])):
            boxes = list(detect(image, 1))
            if boxes:
                return image, max(boxes, key=lambda box: box.area()), how
        return rgb, dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1), "whole crop"

    def describe(self, rgb):
        """(128-d descriptor, how the face was found) of one RGB uint8 photo."""
        image, box, how = self.find_face(rgb)
        shape = self.landmarks(image, box)
        return np.array(self.network.compute_face_descriptor(image, shape)), how


def read_rgb(path):
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise SystemExit(f"error: {path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def capped_agglomeration(dist, cap, groups):
    """Average-linkage agglomerative clustering that never makes a cluster larger than `cap`, stopped at `groups`
    clusters (or when no allowed merge is left). Returns a list of index lists."""
    d = dist.astype(np.float64).copy()
    np.fill_diagonal(d, np.inf)
    members = {i: [i] for i in range(len(d))}
    sizes = np.ones(len(d))
    while len(members) > groups:
        allowed = np.where(sizes[:, None] + sizes[None, :] <= cap, d, np.inf)
        i, j = np.unravel_index(np.argmin(allowed), allowed.shape)
        if not np.isfinite(allowed[i, j]):
            break
        row = (sizes[i] * d[i] + sizes[j] * d[j]) / (sizes[i] + sizes[j])
        d[i], d[:, i] = row, row
        d[i, i] = np.inf
        d[j], d[:, j] = np.inf, np.inf
        sizes[i], sizes[j] = sizes[i] + sizes[j], 0
        members[i] += members.pop(j)
    return list(members.values())


def balanced_assignment(descriptors, clusters, groups):
    """Labels 0..groups-1 giving every group len(descriptors) / groups photos: starting from the centroids of the
    `groups` largest clusters, assign photos to group slots by least total distance to the centroids, recompute
    the centroids, and repeat until the labels no longer change."""
    size = len(descriptors) // groups
    seeds = sorted(clusters, key=len, reverse=True)[:groups]
    centroids = np.stack([descriptors[c].mean(0) for c in seeds])
    labels = None
    for _ in range(50):
        cost = np.linalg.norm(descriptors[:, None] - centroids[None], axis=2)
        _, slots = linear_sum_assignment(np.repeat(cost, size, axis=1))
        new = slots // size
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centroids = np.stack([descriptors[labels == g].mean(0) for g in range(groups)])
    return labels


def person_names(labels, names):
    """Group labels renamed p01, p02, ... in the order of each group's first file name."""
    first = {}
    for label, name in sorted(zip(labels, names), key=lambda pair: pair[1]):
        first.setdefault(label, len(first) + 1)
    width = len(str(len(first)))
    return [f"p{first[label]:0{width}d}" for label in labels]


def report(dist, people):
    """Print group sizes, nearest-neighbour agreement and within/between-group distances."""
    people = np.array(people)
    sizes = collections.Counter(collections.Counter(people).values())
    print("group sizes: " + ", ".join(f"{count} groups of {size}" for size, count in sorted(sizes.items())))
    d = dist.copy()
    np.fill_diagonal(d, np.inf)
    same_nn = int((people[d.argmin(1)] == people).sum())
    print(f"nearest neighbour in its own group: {same_nn} of {len(people)} photos")
    same = people[:, None] == people[None, :]
    upper = np.triu(np.ones_like(same), 1)
    within, between = dist[same & upper], dist[~same & upper]
    for label, values in (("within a group", within), ("between groups", between)):
        print(f"distance {label}: mean {values.mean():.3f}, min {values.min():.3f}, max {values.max():.3f} "
              f"({len(values)} pairs)")
    print(f"pairs on the wrong side of dlib's {SAME_PERSON}: {(within > SAME_PERSON).sum()} within-group pairs "
          f"above, {(between <= SAME_PERSON).sum()} between-group pairs at or below")
    print(f"each photo's farthest own-group photo vs nearest other-group photo: "
          f"{int((np.where(same, dist, -np.inf).max(1) < np.where(same, np.inf, dist).min(1)).sum())} of "
          f"{len(people)} photos closer to all of their own group")


def write_table(path, names, people):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("file", "person"))
        writer.writerows(sorted(zip(names, people)))
    os.replace(tmp, path)


def write_contact_sheet(path, images, names, people, thumb):
    """One row per person: its label, then its photos in file-name order."""
    rows = collections.defaultdict(list)
    for image, name, person in sorted(zip(images, names, people), key=lambda t: (t[2], t[1])):
        rows[person].append(cv2.resize(image, (thumb, thumb), interpolation=cv2.INTER_AREA))
    label_width, columns = thumb + 8, max(map(len, rows.values()))
    sheet = np.full((len(rows) * thumb, label_width + columns * thumb, 3), 255, np.uint8)
    for r, (person, thumbs) in enumerate(sorted(rows.items())):
        top = r * thumb
        cv2.putText(sheet, person, (2, top + thumb // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        for c, image in enumerate(thumbs):
            sheet[top:top + thumb, label_width + c * thumb:label_width + (c + 1) * thumb] = image
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path,
                        help="folder of face photos (default: face_images/ beside the scripts, else "
                             "../shared/face_images)")
    parser.add_argument("--people", type=int, default=50, help="number of people (groups of equal size)")
    parser.add_argument("--table", type=Path, default=ROOT / "identities" / "face_identities.csv",
                        help="where the table goes (default: %(default)s)")
    parser.add_argument("--sheet", type=Path, default=ROOT / "identities" / "contact_sheet.png",
                        help="where the contact sheet goes (default: %(default)s)")
    parser.add_argument("--thumb", type=int, default=40, help="contact sheet: pixels per photo (default: 40)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or next((d for d in DEFAULT_DATA_DIRS if d.is_dir()), None)
    if data_dir is None or not data_dir.is_dir():
        parser.error(f"--data-dir {data_dir}: no such folder")
    paths = sorted(p for p in data_dir.iterdir() if p.suffix.lower() in SUFFIXES)
    if not paths or len(paths) % args.people:
        parser.error(f"{data_dir}: {len(paths)} photos cannot form {args.people} groups of equal size")
    describer = FaceDescriber()
    images = [read_rgb(p) for p in paths]
    described = [describer.describe(image) for image in images]
    descriptors = np.stack([d for d, _ in described])
    found = collections.Counter(how for _, how in described)
    print(f"{len(paths)} photos in {data_dir}; face found by: "
          + ", ".join(f"{how} {count}" for how, count in found.items()))
    dist = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=2)
    clusters = capped_agglomeration(dist, len(paths) // args.people, args.people)
    print(f"capped agglomeration: {len(clusters)} clusters, sizes {sorted(map(len, clusters), reverse=True)}")
    names = [p.name for p in paths]
    people = person_names(balanced_assignment(descriptors, clusters, args.people), names)
    report(dist, people)
    write_table(args.table, names, people)
    write_contact_sheet(args.sheet, images, names, people, args.thumb)
    print(f"wrote {args.table} and {args.sheet}")


if __name__ == "__main__":
    sys.exit(main())

"""Measure the CelebA-HQ frame: where MTCNN puts the five landmarks on aligned faces.

Runs the detector (``celebseg_utils.face.detect``) on the first ``--count`` faces of the
train split of a prepared real-face folder (``celebseg prepare --images mini/images --labels
mini/labels --out P``: the default seeded, stratified 3,200 / 400 / 400 split), keeps the
most confident face per photo, normalises its landmarks by the photo's size and writes their
mean (the template) and standard deviation, the ids of the faces used (tests keep other faces
for the near-identity check) and the command, to ``celebseg_utils/face/align_template.json``.

    python scripts/measure_align_template.py --prepared /tmp/realprep --count 50 --dry-run
    python scripts/measure_align_template.py --prepared /tmp/realprep --count 800
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from celebseg_utils.data import layout  # noqa: E402
from celebseg_utils.face.detect import LANDMARKS, FaceDetector  # noqa: E402
from celebseg_utils.engine.predict import read_image  # noqa: E402

OUT = REPO / "celebseg_utils" / "engine" / "align_template.json"


def train_photos(prepared: Path) -> list[tuple[int, Path]]:
    """(id, photo path) of the train split, in the order of ``splits/train.txt``."""
    names = {}
    for line in (prepared / "names.tsv").read_text().splitlines()[1:]:
        k, photo, _ = line.split("\t")
        names[int(k)] = Path(photo)
    ids = layout.read_split(prepared, "train")
    return [(k, names[k]) for k in ids]


def dump(doc: dict) -> str:
    """JSON with one key a line (the point lists stay readable, the id list one line)."""
    lines = (f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items())
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", required=True, type=Path)
    ap.add_argument("--count", type=int, default=800, help="train faces to detect")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--dry-run", action="store_true", help="print the rate, write nothing")
    args = ap.parse_args(argv)

    photos = train_photos(args.prepared)[: args.count]
    # every detection counts here: an aligned photo holds one face, the most confident
    detector = FaceDetector(min_confidence=0.0)
    points, used, missed, sizes, confidences = [], [], [], set(), []
    start = time.perf_counter()
    for i, (k, path) in enumerate(photos, 1):
        image = read_image(path)
        faces = detector(image)
        if not faces:
            missed.append(k)
            continue
        face = max(faces, key=lambda f: f.confidence)
        h, w = image.shape[:2]
        sizes.add((h, w))
        confidences.append(face.confidence)
        # pixel centres: a landmark at column x lies at (x + 0.5) / w of the width
        points.append((face.landmarks + 0.5) / np.array([w, h], float))
        used.append(k)
        if i % 50 == 0:
            rate = i / (time.perf_counter() - start)
            print(f"{i}/{len(photos)} photos, {rate:.2f} photos/s", file=sys.stderr)
    seconds = time.perf_counter() - start
    pts = np.stack(points)
    print(f"{len(photos)} photos in {seconds:.0f} s ({len(photos) / seconds:.2f} photos/s, "
          f"{1000 * seconds / len(photos):.0f} ms each); no face in {len(missed)}; "
          f"confidence min {min(confidences):.3f}, below 0.9 in "
          f"{sum(c < 0.9 for c in confidences)}")
    mean, std = pts.mean(axis=0), pts.std(axis=0)
    for name, m, s in zip(LANDMARKS, mean, std):
        print(f"  {name:12s} x {m[0]:.4f} ± {s[0]:.4f}   y {m[1]:.4f} ± {s[1]:.4f}")
    if args.dry_run:
        return 0
    doc = {
        "about": "Mean MTCNN landmark positions on aligned CelebA-HQ faces, as fractions of "
                 "the photo's width (x) and height (y), pixel i spanning [i, i + 1): the frame "
                 "--align maps faces into.",
        "landmarks": list(LANDMARKS),
        "points": np.round(mean, 5).tolist(),
        "std": np.round(std, 5).tolist(),
        "faces_detected": len(used),
        "faces_without_detection": missed,
        "confidence_min": round(min(confidences), 4),
        "photo_sizes": sorted(list(s) for s in sizes),
        "source": "train split of `celebseg prepare --images "
                  "../shared/data/celebamask_hq_mini/images --labels ...labels` (seed 0), "
                  f"its first {len(photos)} ids",
        "face_ids": used,
        "command": "python scripts/measure_align_template.py "
                   + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "seconds": round(seconds, 1),
    }
    args.out.write_text(dump(doc))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

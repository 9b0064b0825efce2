"""How visible the rare classes stay when the label maps are downscaled for training.

For each rare class (eyeglasses ``eye_g``, hat, earring ``ear_r``, necklace ``neck_l``) and
each image size, over the real faces whose 512 px label holds the class: the median pixel
count per face after a nearest-neighbour downscale (what ``make_dataset`` does to labels),
and how many of those faces keep at least 1 pixel and at least 16 pixels of it (16 = one 4x4
cell of DeepLabV3+'s stride-4 decoder, the finest grid the model predicts on before its
final upsampling).

Usage::

    python scripts/measure_rare_visibility.py --labels ../shared/data/celebamask_hq_mini/labels \
        [--sizes 512 256 192 128] [--limit 4000]

>>> # python scripts/measure_rare_visibility.py --labels mini/labels --limit 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

RARE = {"eye_g": 3, "hat": 14, "ear_r": 15, "neck_l": 16}


def downscale_nearest(label: np.ndarray, size: int) -> np.ndarray:
    """A label map resized with nearest neighbour (PIL), as the pipeline resizes labels."""
    if label.shape[0] == size:
        return label
    return np.asarray(Image.fromarray(label).resize((size, size), Image.NEAREST))


def measure(paths, sizes) -> dict:
    """{class: {"faces": n, size: {"median_px", "keep_1", "keep_16"}}}."""
    counts = {name: {s: [] for s in sizes} for name in RARE}
    for path in paths:
        label = np.asarray(Image.open(path))
        present = [n for n, c in RARE.items() if (label == c).any()]
        if not present:
            continue
        for s in sizes:
            small = downscale_nearest(label, s)
            for name in present:
                counts[name][s].append(int((small == RARE[name]).sum()))
    out = {}
    for name, per in counts.items():
        row = {"faces": len(per[sizes[0]])}
        for s in sizes:
            px = np.array(per[s]) if per[s] else np.zeros(0)
            row[s] = {"median_px": float(np.median(px)) if px.size else 0.0,
                      "keep_1": int((px >= 1).sum()), "keep_16": int((px >= 16).sum())}
        out[name] = row
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", required=True, help="folder of fused 512 px label PNGs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 256, 192, 128])
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    paths = sorted(Path(args.labels).glob("*.png"), key=lambda p: int(p.stem))[: args.limit]
    result = measure(paths, args.sizes)
    print(f"{len(paths)} label maps from {args.labels}\n")
    print("| class | faces with it | " + " | ".join(
        f"{s} px: median px / faces >=1 px / >=16 px" for s in args.sizes) + " |")
    print("|---|---:|" + "---:|" * len(args.sizes))
    for name, row in result.items():
        cells = [f"{row[s]['median_px']:.0f} / {row[s]['keep_1']} / {row[s]['keep_16']}"
                 for s in args.sizes]
        print(f"| {name} | {row['faces']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

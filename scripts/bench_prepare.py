"""Time `celebseg prepare` against a single-process, file-by-file baseline of g_mask.py.

Usage::

    .venv/bin/python scripts/bench_prepare.py [--count 400] [--image-size 512] [--repeats 3]
                                              [--workers N] [--data DIR] [--pillow-only]

Builds (or reuses) a synthetic CelebAMask-HQ folder of ``--count`` faces with
``celebseg_utils.data.synthetic.generator.write_synthetic_dataset``, then, alternating in one run and with
a fresh output folder each repeat, times

* **prepare**: ``prepare_dataset(..., workers=all cores)`` in this process (pool start-up,
  directory scan, photo checks and label writing included), and
* **baseline**: the published algorithm (``g_mask.py``) one file at a time in one process:
  for each image, ``np.zeros`` label, for each attribute in order, if the mask exists read
  it with Pillow, take channel 0, ``label[mask != 0] = id``, write the PNG (zlib level 1,
  as cv2.imwrite's default). Reading a grey mask as grey (rather than converting it to
  three channels as cv2.imread does) makes this baseline a little *faster* than a literal
  port, so the ratio is conservative.

It prints the medians over the repeats (images/s), the ratio, the load average, and checks
that both produce identical label maps (decoded arrays) for every image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celebseg_utils.data import layout  # noqa: E402
from celebseg_utils.labels import ATTRIBUTES  # noqa: E402
from celebseg_utils.data.prepare import prepare_dataset  # noqa: E402
from celebseg_utils.data.splits import read_mapping  # noqa: E402


def baseline(root: Path, out: Path) -> int:
    """g_mask.py, file by file with Pillow; returns the number of images written."""
    out.mkdir(parents=True, exist_ok=True)
    ids = [idx for idx, _, _ in read_mapping(layout.mapping_path(root))]
    for k in ids:
        im_base = np.zeros((0, 0), dtype=np.uint8)
        for idx, attribute in enumerate(ATTRIBUTES):
            path = layout.mask_path(root, k, attribute)
            if os.path.exists(path):
                im = np.asarray(Image.open(path))
                if im.ndim == 3:
                    im = im[:, :, 0]
                if im_base.size == 0:
                    im_base = np.zeros(im.shape, dtype=np.uint8)
                im_base[im != 0] = idx + 1
        Image.fromarray(im_base).save(out / f"{k}.png", compress_level=1)
    return len(ids)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="prepare's workers (default all cores)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "celebseg_bench",
                        help="where the synthetic folder is built or reused")
    parser.add_argument("--pillow-only", action="store_true",
                        help="decode masks with Pillow in prepare too (as without the deflate package)")
    args = parser.parse_args(argv)
    if args.pillow_only:
        from celebseg_utils.data import png

        png._libdeflate = None  # the workers are forked, so they inherit this

    raw = args.data / f"raw-{args.count}-{args.image_size}-s0"
    if not layout.mapping_path(raw).exists():  # the mapping is written last: present = complete
        from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

        print(f"building {args.count} synthetic faces at {args.image_size} px in {raw} ...")
        write_synthetic_dataset(raw, args.count, image_size=args.image_size, progress=True)
    n_masks = sum(1 for _ in (raw / layout.MASK_DIR).rglob("*.png"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from celebseg_utils.data import png

    decoder = "Pillow" if png._libdeflate is None else "libdeflate + numpy"
    print(f"data: {raw} ({args.count} images, {n_masks / args.count:.1f} masks/image); prepare decodes with {decoder}; "
          f"{cores} cores; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    work = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    rates = {"prepare": [], "baseline": []}
    cpu = {"prepare": [], "baseline": []}  # CPU ms per image, children included: load-robust
    try:
        for rep in range(args.repeats):
            for name in ("baseline", "prepare") if rep % 2 else ("prepare", "baseline"):
                dest = work / f"{name}-{rep}"
                start, t0 = time.perf_counter(), os.times()
                if name == "prepare":
                    n = prepare_dataset(raw, dest, workers=args.workers, progress=False)["num_images"]
                else:
                    n = baseline(raw, dest)
                seconds, t1 = time.perf_counter() - start, os.times()
                used = (t1.user - t0.user + t1.system - t0.system + t1.children_user - t0.children_user
                        + t1.children_system - t0.children_system)
                rates[name].append(n / seconds)
                cpu[name].append(1000 * used / n)
                print(f"  repeat {rep + 1}: {name:8s} {n / seconds:8.1f} images/s ({seconds:.2f} s, "
                      f"{1000 * used / n:.2f} CPU ms/image)")
        ours = work / f"prepare-{args.repeats - 1}" / "labels"
        ref = work / f"baseline-{args.repeats - 1}"
        ids = [idx for idx, _, _ in read_mapping(layout.mapping_path(raw))]
        same = all(np.array_equal(np.asarray(Image.open(ours / f"{k}.png")),
                                  np.asarray(Image.open(ref / f"{k}.png"))) for k in ids)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p, b = statistics.median(rates["prepare"]), statistics.median(rates["baseline"])
    pc, bc = statistics.median(cpu["prepare"]), statistics.median(cpu["baseline"])
    print(f"prepare : {p:8.1f} images/s (median of {args.repeats}); {pc:.2f} CPU ms/image")
    print(f"baseline: {b:8.1f} images/s (median of {args.repeats}); {bc:.2f} CPU ms/image")
    print(f"CPU per image, baseline/prepare: {bc / pc:.2f}x (what {cores} idle cores would multiply)")
    print(f"ratio   : {p / b:.2f}x   identical label maps: {'yes' if same else 'NO'} ({len(ids)} images)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

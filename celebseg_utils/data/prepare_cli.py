"""``celebseg prepare``: the command over both sources of labels.

``--data-root RAW`` prepares a raw per-attribute CelebAMask-HQ folder
(:mod:`celebseg_utils.data.prepare`); ``--images DIR --labels DIR`` prepares fused label
maps matched to photos by stem (:mod:`celebseg_utils.data.fused`). Both write the same
prepared layout.

Example: ``celebseg prepare --images mini/images --labels mini/labels --out prepared``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from celebseg_utils.data import layout
from celebseg_utils.data.fused import prepare_fused
from celebseg_utils.data.prepare import prepare_dataset
from celebseg_utils.errors import CelebsegError


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``celebseg prepare``.

    >>> parser = argparse.ArgumentParser()
    >>> add_prepare_arguments(parser)
    >>> args = parser.parse_args(["--data-root", "raw", "--out", "prep", "--skip-bad"])
    >>> args.workers, args.tfrecords, args.skip_bad, args.images
    (None, False, True, None)
    """
    parser.add_argument("--data-root", type=Path, metavar="DIR",
                        help="raw CelebAMask-HQ folder (from `celebseg download` or `celebseg synth`)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="instead of --data-root: a folder of photos, with --labels (fused labels)")
    parser.add_argument("--labels", type=Path, metavar="DIR",
                        help="fused label maps matched to --images by file stem: 8-bit ids (L), "
                             "palette PNGs (P, indices = ids) or official-palette colours")
    parser.add_argument("--split", default=None, metavar="NAME=F,...",
                        help="with --images/--labels: split fractions summing to 1 "
                             "(default train=0.8,val=0.1,test=0.1; test=1 for a test-only folder)")
    parser.add_argument("--split-seed", type=int, default=0, metavar="N",
                        help="seed of the stratified split of --images/--labels (default 0)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="prepared folder to write")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: all cores, os.cpu_count())")
    parser.add_argument("--tfrecords", action="store_true", help="also write TFRecord shards to OUT/tfrecords/")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave bad images out of the splits (listed in OUT/problems.txt) instead of stopping")


def run_prepare(args: argparse.Namespace) -> int:
    """Run ``celebseg prepare`` and print a one-line summary; returns the exit status 0.

    Example: ``celebseg prepare --data-root /data/CelebAMask-HQ --out /data/prepared``.
    """
    fused = args.images is not None or args.labels is not None
    if fused and args.data_root is not None:
        raise CelebsegError("give either --data-root RAW (per-attribute masks) or --images DIR "
                            "--labels DIR (fused labels), not both")
    if fused and (args.images is None or args.labels is None):
        raise CelebsegError(f"--{'labels' if args.images is not None else 'images'} is missing: "
                            f"fused labels need both --images DIR and --labels DIR")
    if not fused and args.data_root is None:
        raise CelebsegError("the following arguments are required: --data-root (or --images "
                            "DIR and --labels DIR for fused labels)")
    if not fused and (args.split is not None or args.split_seed != 0):
        raise CelebsegError("--split and --split-seed apply to --images/--labels; the raw layout "
                            "uses the official split of its mapping file")
    if fused:
        info = prepare_fused(args.images, args.labels, args.out, split=args.split,
                             split_seed=args.split_seed, workers=args.workers,
                             tfrecords=args.tfrecords, skip_bad=args.skip_bad, progress=True)
    else:
        info = prepare_dataset(args.data_root, args.out, workers=args.workers,
                               tfrecords=args.tfrecords, skip_bad=args.skip_bad, progress=True)
    splits = "/".join(str(info["splits"][s]) for s in layout.SPLITS)
    problems = (f"; {info['problems']} bad images left out, listed in {Path(args.out) / 'problems.txt'}"
                if info["problems"] else "; no problems")
    print(f"prepared {info['num_images']} images (train/val/test {splits}) in {args.out}: "
          f"{info['written']} labels written, {info['existing']} kept from an earlier run, "
          f"{info['label_size']} px, {info['seconds']:.1f} s{problems}")
    return 0

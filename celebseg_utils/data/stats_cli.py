"""``celebseg stats``: class statistics of a split as a table, a json and a bar chart.

>>> import argparse
>>> p = argparse.ArgumentParser(); add_stats_arguments(p)
>>> p.parse_args(["--prepared", "prep"]).split
'train'
"""

from __future__ import annotations

import argparse

from celebseg_utils.data import layout
from celebseg_utils.data.stats import SCHEMES, compute_stats, stats_file
from celebseg_utils.visualization.plots import CLASS_FREQUENCY_FIGURE as DEFAULT_FIGURE


def stats_table(stats: dict) -> str:
    """A plain-text table: class, % of pixels, images with it, the three class weights."""
    rows = [f"{'id':>2} {'class':<10} {'pixels %':>9} {'images':>7} "
            + " ".join(f"{s:>11}" for s in SCHEMES)]
    w = stats["class_weights"]
    for i, name in enumerate(stats["class_names"]):
        rows.append(f"{i:>2} {name:<10} {100 * stats['frequency'][i]:>9.4f} "
                    f"{stats['image_counts'][i]:>7} " + " ".join(f"{w[s][i]:>11.3f}" for s in SCHEMES))
    return "\n".join(rows)


def add_stats_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``celebseg stats``: ``--prepared DIR [--split S] [--figure PATH]``."""
    parser.add_argument("--prepared", required=True, metavar="DIR",
                        help="folder written by `celebseg prepare`")
    parser.add_argument("--split", default="train", choices=layout.SPLITS,
                        help="split to count (default train, what training weights use)")
    parser.add_argument("--figure", default=str(DEFAULT_FIGURE), metavar="PATH",
                        help=f"bar chart to write (default {DEFAULT_FIGURE})")


def run_stats(args: argparse.Namespace) -> int:
    """Run ``celebseg stats``: compute, write the json and the figure, print a table."""
    from celebseg_utils.visualization.plots import plot_class_frequency  # matplotlib: on demand

    stats = compute_stats(args.prepared, args.split, progress=True)
    plot_class_frequency(stats, args.figure)
    print(stats_table(stats))
    absent = ", ".join(stats["absent_classes"]) or "none"
    print(f"\n{stats['num_images']} images, {stats['num_pixels']:,} pixels; absent classes "
          f"(weight 0): {absent}\nwrote {stats_file(args.prepared, args.split)} and {args.figure}")
    return 0

"""Measure how each loss scheme's logit gradient splits over the true classes.

Writes ``OUT/gradient_shares.json`` (``{"zeros": table, "model": table}``, see
:func:`celebseg_utils.study_gradients.gradient_share_table`) and ``OUT/gradient_shares.png``
(one row per logit case), and prints a compact table per case.

Usage::

    python scripts/measure_gradient_shares.py --prepared /tmp/realprep \
        --model runs/sparse_ce/seed0/best.keras --out figures/study [--batches 16]

Without ``--model`` (or when the file does not exist yet) only the zero-logit case is run.
``--redraw`` measures nothing: it draws ``OUT/gradient_shares.png`` again from the committed
``OUT/gradient_shares.json`` (after a change to the figure's code)::

    python scripts/measure_gradient_shares.py --redraw --out figures/study
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from celebseg_utils.study import gradients as G
from celebseg_utils.fileio import atomic_write_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", help="prepared folder (its train split)")
    parser.add_argument("--redraw", action="store_true",
                        help="measure nothing: redraw OUT/gradient_shares.png from its JSON")
    parser.add_argument("--model", help=".keras model whose logits to use (besides zero logits)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.redraw:
        import json

        saved = out / "gradient_shares.json"
        if not saved.is_file():
            print(f"error: {saved} not found: measure first (without --redraw)", file=sys.stderr)
            return 2
        G.plot_gradient_shares(list(json.loads(saved.read_text()).values()),
                               out / "gradient_shares.png")
        print(f"redrew {out / 'gradient_shares.png'} from {saved}")
        return 0
    if not args.prepared:
        parser.error("--prepared is required (unless --redraw)")
    out.mkdir(parents=True, exist_ok=True)
    common = dict(batches=args.batches, batch_size=args.batch_size, image_size=args.image_size,
                  seed=args.seed)
    tables = {"zeros": G.gradient_share_table(args.prepared, None, **common)}
    if args.model and Path(args.model).is_file():
        tables["model"] = G.gradient_share_table(args.prepared, args.model, **common)
    elif args.model:
        print(f"model {args.model} not found: zero logits only", file=sys.stderr)
    for table in tables.values():
        print(G.format_table(table), end="\n\n")
    atomic_write_json(out / "gradient_shares.json", G._finite(tables))
    G.plot_gradient_shares(list(tables.values()), out / "gradient_shares.png")
    print(f"wrote {out / 'gradient_shares.json'} and {out / 'gradient_shares.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``celebseg evaluate`` and ``celebseg compare``: their options and their runs.

>>> import argparse
>>> p = argparse.ArgumentParser(); add_compare_arguments(p)
>>> p.parse_args(["runs/a"]).names is None
True
"""

from __future__ import annotations

from pathlib import Path

from celebseg_utils.data import layout
from celebseg_utils.engine import evaluate
from celebseg_utils.engine.results import results_table


def add_evaluate_arguments(parser) -> None:
    """Options of ``celebseg evaluate``.

    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_evaluate_arguments(p)
    >>> p.parse_args(["--model", "m.keras", "--prepared", "prep"]).split
    'test'
    """
    parser.add_argument("--model", required=True, help=".keras model (or a run directory)")
    parser.add_argument("--prepared", required=True, help="prepared folder (celebseg prepare)")
    parser.add_argument("--split", default="test", choices=layout.SPLITS)
    parser.add_argument("--out", default=None,
                        help="results.json path, or a folder to write it in (default: beside "
                             "the model, eval_<split>/)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--protocol", default="model_size", choices=("model_size", "label_size"),
                        help="model_size: argmax at the model's input size, labels resized to it "
                             "(default); label_size: logits upsampled to the labels' own size "
                             "first, as published face-parsing tables score")


def run_evaluate(args) -> int:
    """``celebseg evaluate``: writes the report and prints its table.

    >>> run_evaluate(argparse.Namespace(model="m.keras", prepared="prep", split="test",
    ...                                 out=None, batch_size=8))  # doctest: +SKIP
    0
    """
    if args.out is not None:
        evaluate.check_results_out(args.out)
    results = evaluate.evaluate_model(args.model, args.prepared, split=args.split, out=args.out,
                             batch_size=args.batch_size,
                             protocol=getattr(args, "protocol", "model_size"))
    print(results_table(results))
    print(f"results: {evaluate.results_path(results['model'], args.split, args.out)}")
    return 0


def add_compare_arguments(parser) -> None:
    """Options of ``celebseg compare``.

    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_compare_arguments(p)
    >>> p.parse_args(["runs/a", "runs/b", "--names", "ce", "dice"]).names
    ['ce', 'dice']
    """
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders with results.json")
    parser.add_argument("--out", default=None, help="folder for comparison.md/.json/.png")
    parser.add_argument("--names", nargs="+", default=None, help="column names, one per run")


def run_compare(args) -> int:
    """``celebseg compare``: prints the side-by-side table (and writes it with ``--out``).

    >>> run_compare(argparse.Namespace(runs=["runs/a", "runs/b"], out="study", names=None))  # doctest: +SKIP
    0
    """
    from celebseg_utils.engine.compare import compare_runs

    result = compare_runs(args.runs, out=args.out, names=args.names)
    print(result["table"])
    if args.out:
        print(f"comparison: {Path(args.out) / 'comparison.md'}")
    return 0

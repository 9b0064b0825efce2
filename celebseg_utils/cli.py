"""The ``celebseg`` command (also ``python -m celebseg_utils``).

:data:`COMMANDS` is the table: command name -> :class:`Command` (its help line, its parser
builder, its handler). Every command follows one pattern: its options and its run live in
the module that owns it, as ``add_<command>_arguments(parser)`` and ``run_<command>(args) ->
int``, and the builder and handler here import that module inside themselves, when that
command is asked for, so ``celebseg --help`` stays fast (no TensorFlow import). A command
whose work spans modules has its own ``*_cli.py``: ``train`` (``engine/train_cli.py``;
importing ``engine.train`` loads Keras), ``prepare`` (``prepare`` and ``fused``), ``stats``
(the counts and the figure), ``evaluate`` and ``compare`` (``engine/evaluate_cli.py``).

A :class:`~celebseg_utils.errors.CelebsegError` (bad user input) becomes a one-line
``error: ...`` on stderr and exit status 2; argparse usage errors also exit 2.

Example::

    celebseg synth --out /tmp/faces --count 20 --image-size 128
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from typing import Callable, NamedTuple, Sequence

from celebseg_utils.errors import CelebsegError

#: When this process started (near enough): a time budget counts from here.
STARTED = time.time()


class Command(NamedTuple):
    """One row of :data:`COMMANDS`: what ``celebseg NAME --help`` says, the function that adds
    the command's options to its parser, and the one that runs it (returns the exit status).

    A NamedTuple, not a dataclass: ``dataclasses`` imports ``inspect``, 8 ms of every start.
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- builders, handlers
# Two functions per command, in the order of the table; each imports its module itself.

def synth_parser(parser):
    from celebseg_utils.data.synthetic.generator import add_synth_arguments
    add_synth_arguments(parser)


def synth_handler(args):
    from celebseg_utils.data.synthetic.generator import run_synth
    return run_synth(args)


def download_parser(parser):
    from celebseg_utils.data.download import add_download_arguments
    add_download_arguments(parser)


def download_handler(args):
    from celebseg_utils.data.download import run_download
    return run_download(args)


def prepare_parser(parser):
    from celebseg_utils.data.prepare_cli import add_prepare_arguments
    add_prepare_arguments(parser)


def prepare_handler(args):
    from celebseg_utils.data.prepare_cli import run_prepare
    return run_prepare(args)


def stats_parser(parser):
    from celebseg_utils.data.stats_cli import add_stats_arguments
    add_stats_arguments(parser)


def stats_handler(args):
    from celebseg_utils.data.stats_cli import run_stats
    return run_stats(args)


def train_parser(parser):
    from celebseg_utils.engine.train_cli import add_train_arguments
    add_train_arguments(parser)


def train_handler(args):
    from celebseg_utils.engine.train_cli import run_train
    return run_train(args)


def evaluate_parser(parser):
    from celebseg_utils.engine.evaluate_cli import add_evaluate_arguments
    add_evaluate_arguments(parser)


def evaluate_handler(args):
    from celebseg_utils.engine.evaluate_cli import run_evaluate
    return run_evaluate(args)


def study_parser(parser):
    from celebseg_utils.study.runner import add_study_arguments
    add_study_arguments(parser)


def study_handler(args):
    from celebseg_utils.study.runner import run_study
    return run_study(args)


def compare_parser(parser):
    from celebseg_utils.engine.evaluate_cli import add_compare_arguments
    add_compare_arguments(parser)


def compare_handler(args):
    from celebseg_utils.engine.evaluate_cli import run_compare
    return run_compare(args)


def predict_parser(parser):
    from celebseg_utils.engine.predict import add_predict_arguments
    add_predict_arguments(parser)


def predict_handler(args):
    from celebseg_utils.engine.predict import run_predict
    return run_predict(args)


def export_parser(parser):
    from celebseg_utils.engine.export import add_export_arguments
    add_export_arguments(parser)


def export_handler(args):
    from celebseg_utils.engine.export import run_export
    return run_export(args)


def demo_parser(parser):
    from celebseg_utils.demo import add_demo_arguments
    add_demo_arguments(parser)


def demo_handler(args):
    from celebseg_utils.demo import run_demo
    return run_demo(args)


#: The table: ``celebseg NAME`` -> its help line, parser builder and handler (in help order).
COMMANDS: dict[str, Command] = {
    "synth": Command("write a CelebAMask-HQ-shaped folder of drawn faces",
                     synth_parser, synth_handler),
    "download": Command("fetch, verify and unpack CelebAMask-HQ",
                        download_parser, download_handler),
    "prepare": Command("fuse masks into label maps, write splits (and shards)",
                       prepare_parser, prepare_handler),
    "stats": Command("class frequencies and class weights of the train split",
                     stats_parser, stats_handler),
    "train": Command("train a DeepLabV3+ model (resumable)", train_parser, train_handler),
    "evaluate": Command("per-class IoU/F1 of a model on a split",
                        evaluate_parser, evaluate_handler),
    "study": Command("the loss study: every loss arm x seed, trained and tested alike",
                     study_parser, study_handler),
    "compare": Command("put several runs' per-class scores side by side",
                       compare_parser, compare_handler),
    "predict": Command("label map and colour overlay for images",
                       predict_parser, predict_handler),
    "export": Command("export a model to SavedModel, TFLite or ONNX",
                      export_parser, export_handler),
    "demo": Command("the whole pipeline on synthetic faces, on CPU, in minutes",
                    demo_parser, demo_handler),
}


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error format."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")

    def parse_known_args(self, args=None, namespace=None):
        """Report unknown arguments before missing required ones.

        argparse checks required options first, so ``prepare --bogus`` would complain about
        ``--data-root`` and never name the typo. A first pass with nothing required finds
        the unknown arguments; only then does the real parse run.
        """
        args = list(sys.argv[1:] if args is None else args)
        if any(a in ("-h", "--help") for a in args):
            # Help prints the usage: it must show the required options as required.
            return super().parse_known_args(args, namespace)
        required = [(item, item.required) for item in (*self._actions,
                                                        *self._mutually_exclusive_groups)]
        try:
            for item, _ in required:
                item.required = False
            _, extras = super().parse_known_args(args, copy.copy(namespace))
        finally:
            for item, flag in required:
                item.required = flag
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return super().parse_known_args(args, namespace)


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; only the modules of ``commands`` (default: all) are imported.

    >>> build_parser(["synth"]).parse_args(["synth", "--out", "o", "--count", "2"]).count
    2
    """
    parser = _Parser(prog="celebseg", description="Face parsing on CelebAMask-HQ with DeepLabV3+.")
    from celebseg_utils import __version__

    parser.add_argument("--version", action="version", version=f"celebseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        if commands is None or name in commands:
            command.add_arguments(p)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    parser = build_parser([command] if command else [])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.started = STARTED
    try:
        return int(COMMANDS[args.command].run(args) or 0)
    except CelebsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; outputs written so far are complete, re-run to continue",
              file=sys.stderr)
        return 130
    except OSError as exc:
        # A full disk or a vanished folder is the user's environment, not a bug.
        if exc.errno is not None and os.environ.get("CELEBSEG_DEBUG") != "1":
            # Libraries may put a multi-line report in strerror: the first line is the reason.
            reason = ((exc.strerror or os.strerror(exc.errno)).splitlines() or ["I/O error"])[0]
            names = [str(n) for n in (exc.filename, exc.filename2) if n]
            print(f"error: {reason}" + (f": {' -> '.join(names)}" if names else ""), file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``celebseg`` command (also ``python -m celebseg_utils``).

Each sub-command lives in the module that owns its concern; this file only maps command
names to ``module:add_arguments`` / ``module:run`` pairs and imports a module when its
command runs, so ``celebseg --help`` stays fast (no TensorFlow import).

A :class:`~celebseg_utils.errors.CelebsegError` (bad user input) becomes a one-line
``error: ...`` on stderr and exit status 2; argparse usage errors also exit 2.

Example::

    celebseg synth --out /tmp/faces --count 20 --image-size 128
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
import time
from typing import Sequence

from celebseg_utils.errors import CelebsegError

#: When this process started (near enough): a time budget counts from here.
STARTED = time.time()

#: command -> (module, help). The module defines ``add_<cmd>_arguments(parser)`` and
#: ``run_<cmd>(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("celebseg_utils.data.synthetic.generator",
              "write a CelebAMask-HQ-shaped folder of drawn faces"),
    "download": ("celebseg_utils.data.download", "fetch, verify and unpack CelebAMask-HQ"),
    "prepare": ("celebseg_utils.data.prepare_cli",
                "fuse masks into label maps, write splits (and shards)"),
    "stats": ("celebseg_utils.data.stats",
              "class frequencies and class weights of the train split"),
    "train": ("celebseg_utils.engine.train_cli", "train a DeepLabV3+ model (resumable)"),
    "evaluate": ("celebseg_utils.engine.evaluate", "per-class IoU/F1 of a model on a split"),
    "study": ("celebseg_utils.study.runner",
              "the loss study: every loss arm x seed, trained and tested alike"),
    "compare": ("celebseg_utils.engine.evaluate",
                "put several runs' per-class scores side by side"),
    "predict": ("celebseg_utils.engine.predict", "label map and colour overlay for images"),
    "export": ("celebseg_utils.engine.export", "export a model to SavedModel, TFLite or ONNX"),
    "demo": ("celebseg_utils.demo", "the whole pipeline on synthetic faces, on CPU, in minutes"),
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


def _load(command: str):
    return importlib.import_module(COMMANDS[command][0])


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; only the modules of ``commands`` (default: all) are imported."""
    parser = _Parser(prog="celebseg", description="Face parsing on CelebAMask-HQ with DeepLabV3+.")
    from celebseg_utils import __version__

    parser.add_argument("--version", action="version", version=f"celebseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if commands is None or name in commands:
            getattr(_load(name), f"add_{name}_arguments")(p)
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
        return int(getattr(_load(args.command), f"run_{args.command}")(args) or 0)
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

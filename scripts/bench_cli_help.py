"""How long ``import celebseg_utils``, ``celebseg --help`` and ``celebseg COMMAND --help`` take,
here and in another checkout, side by side.

    git worktree add --detach /tmp/base 56d5d70
    python scripts/bench_cli_help.py --baseline /tmp/base --command train --repeats 9

Runs alternate between the checkouts (each a fresh interpreter with that checkout first on
``sys.path``: ``python -c "import celebseg_utils"``, ``python -m celebseg_utils.cli [COMMAND]
--help``), so both see the same machine load; prints the median wall time of each, their
ratio, and how many lines each printed to stderr. On a shared machine the fastest run is the
steadier figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def probes(command: str) -> dict[str, tuple[list[str], str]]:
    """What is timed: name -> (interpreter arguments, what stdout must start with)."""
    cli = ["-m", "celebseg_utils.cli"]
    return {"import celebseg_utils": (["-c", "import celebseg_utils"], ""),
            "celebseg --help": ([*cli, "--help"], "usage: celebseg"),
            f"celebseg {command} --help": ([*cli, command, "--help"],
                                           f"usage: celebseg {command}")}


def one_run(checkout: Path, argv: list[str], expect: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=checkout, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not done.stdout.startswith(expect):
        raise SystemExit(f"{checkout}: {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--command", default="train")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    checkouts = {"baseline": args.baseline, "this": REPO_ROOT}
    timed = probes(args.command)
    times = {(probe, name): [] for probe in timed for name in checkouts}
    stderr = {}
    for _ in range(args.repeats):
        for probe, (probe_argv, expect) in timed.items():
            for name, checkout in checkouts.items():
                seconds, err = one_run(checkout, probe_argv, expect)
                times[probe, name].append(seconds)
                stderr[probe, name] = err
    for probe in timed:
        medians = {name: statistics.median(times[probe, name]) for name in checkouts}
        for name in checkouts:
            print(f"{name:8s} {probe:28s} median {medians[name]:.3f} s (fastest "
                  f"{min(times[probe, name]):.3f} s) over {args.repeats} runs; "
                  f"{len(stderr[probe, name].splitlines())} stderr lines")
        print(f"{'':8s} {probe:28s} ratio baseline/this: "
              f"{medians['baseline'] / medians['this']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

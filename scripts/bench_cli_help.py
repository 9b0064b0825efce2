"""How long ``celebseg COMMAND --help`` takes, here and in another checkout, side by side.

    git worktree add --detach /tmp/base 56d5d70
    python scripts/bench_cli_help.py --baseline /tmp/base --command train --repeats 9

Runs alternate between the checkouts (``python -m celebseg_utils.cli COMMAND --help`` with
each checkout first on ``sys.path``), so both see the same machine load; prints the median
wall time of each, their ratio, and the lines each printed to stderr.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def one_run(checkout: Path, command: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "celebseg_utils.cli", command, "--help"],
                          cwd=checkout, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if not done.stdout.startswith(f"usage: celebseg {command}"):
        raise SystemExit(f"{checkout}: no usage printed:\n{done.stderr[-2000:]}")
    return seconds, done.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--command", default="train")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    times = {"baseline": [], "this": []}
    stderr = {}
    for _ in range(args.repeats):
        for name, checkout in (("baseline", args.baseline), ("this", REPO_ROOT)):
            seconds, err = one_run(checkout, args.command)
            times[name].append(seconds)
            stderr[name] = err
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name in times:
        print(f"{name:8s} celebseg {args.command} --help: median {medians[name]:.3f} s "
              f"over {args.repeats} runs; {len(stderr[name].splitlines())} stderr lines")
    print(f"ratio baseline/this: {medians['baseline'] / medians['this']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

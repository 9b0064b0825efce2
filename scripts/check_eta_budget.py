"""Check, end to end, that the ETA and the time budget of ``celebseg train`` hold.

1. ETA: a run of a few minutes (``--eta-epochs`` x ``--eta-steps``, validation and a test
   evaluation included) through the CLI; each output line is time-stamped as it arrives.
   The first ``ETA`` line (said once the step rate is measured after compilation) is
   compared with the time the run really took from that line to the process's exit.
2. Budget: ``--set time_budget_minutes=M`` (default 3) on a configuration whose full run
   would take far longer; the process's whole wall time (start to exit, TensorFlow's
   import included) is compared with M, and its test evaluation must be written.

Both pass within ``--tolerance`` (default 15%). On a shared machine the CPU share a run gets
can change during the run, which moves both figures: the load averages are printed.

Usage::

    python scripts/check_eta_budget.py [--prepared DIR] [--budget-minutes 3] [--out check.json]

>>> # python scripts/check_eta_budget.py --eta-epochs 2 --eta-steps 20 --budget-minutes 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ETA = re.compile(r"ETA (?:(\d+) h (\d+) min|(\d+) min (\d+) s|(\d+(?:\.\d)?) s)")


def parse_eta(line: str) -> float | None:
    """Seconds of the first ``ETA ...`` in ``line`` (``format_duration``'s forms).

    >>> parse_eta("2 epochs x 20 steps: ETA 3 min 05 s at 9.1 img/s"), parse_eta("ETA 1 h 02 min")
    (185.0, 3720.0)
    >>> parse_eta("ETA 4.5 s at 2.0 img/s")
    4.5
    """
    m = ETA.search(line)
    if not m:
        return None
    h, hm, m_, s_, s = m.groups()
    if h is not None:
        return 3600.0 * int(h) + 60.0 * int(hm)
    if m_ is not None:
        return 60.0 * int(m_) + int(s_)
    return float(s)


def cpu_steal_s() -> float | None:
    """Seconds of CPU the hypervisor gave to others (``steal`` of /proc/stat, all CPUs);
    None where the kernel does not say. On a shared VM it explains a run that slowed down."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


#: Keras's per-epoch line with --quiet: "60/60 - 68s - 1s/step - loss: ..."
EPOCH_LINE = re.compile(r"^\s*(\d+)/\1 - (\d+)s - ")


def epoch_seconds(lines) -> list[int]:
    """Each epoch's seconds from Keras's per-epoch lines.

    >>> epoch_seconds([(1.0, "60/60 - 68s - 1s/step - loss: 2.1"), (2.0, "Epoch 2/3")])
    [68]
    """
    return [int(m.group(2)) for _, ln in lines for m in [EPOCH_LINE.match(ln)] if m]


def run_timed(argv: list[str], log: Path) -> tuple[list[tuple[float, str]], float, int]:
    """Run ``python -m celebseg_utils ARGV``; [(seconds since start, line)], wall, status."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(REPO)}
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "celebseg_utils", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    with log.open("w") as f:
        for line in proc.stdout:
            lines.append((time.monotonic() - began, line.rstrip("\n")))
            f.write(f"{lines[-1][0]:8.1f}  {line}")
    code = proc.wait()
    return lines, time.monotonic() - began, code


def _prepared(root: Path, count: int) -> Path:
    from celebseg_utils.data.prepare import prepare_dataset
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    prepared = root / "prepared"
    if not (prepared / "prepare.json").exists():
        write_synthetic_dataset(root / "raw", count=count, image_size=128, seed=0, progress=False)
        prepare_dataset(root / "raw", prepared, workers=1, progress=False)
    return prepared


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepared", default=None, help="default: 160 synthetic faces")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--eta-epochs", type=int, default=3)
    parser.add_argument("--eta-steps", type=int, default=60)
    parser.add_argument("--budget-minutes", type=float, default=3.0)
    parser.add_argument("--tolerance", type=float, default=0.15)
    parser.add_argument("--work", default=None, help="folder for runs and logs (default: temp)")
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="check-eta-"))
    work.mkdir(parents=True, exist_ok=True)
    prepared = Path(args.prepared) if args.prepared else _prepared(work / "data", 160)
    common = ["--preset", "cpu-demo", "--quiet",
              "--set", f"data.prepared={prepared}", "--set", f"image_size={args.image_size}",
              "--set", f"batch_size={args.batch_size}", "--set", "tensorboard=false",
              "--set", "data.test_split=test", "--set", "validation_steps=4"]
    result = {"load_before": os.getloadavg()}
    steal = [cpu_steal_s()]

    lines, wall, code = run_timed(["train", "--run-dir", str(work / "eta"), *common,
                                   "--set", f"epochs={args.eta_epochs}",
                                   "--set", f"steps_per_epoch={args.eta_steps}"],
                                  work / "eta.log")
    first = next(((t, ln) for t, ln in lines if parse_eta(ln) is not None), None)
    if code != 0 or first is None:
        print(f"the ETA run failed (exit {code}); see {work / 'eta.log'}")
        return 1
    said, real = parse_eta(first[1]), wall - first[0]
    result["eta"] = {"line": first[1], "said_at_s": round(first[0], 1), "eta_s": said,
                     "real_s": round(real, 1), "error": round(said / real - 1, 3),
                     "wall_s": round(wall, 1), "epoch_s": epoch_seconds(lines)}
    result["load_middle"] = os.getloadavg()
    steal.append(cpu_steal_s())

    budget_s = 60 * args.budget_minutes
    lines, wall, code = run_timed(["train", "--run-dir", str(work / "budget"), *common,
                                   "--set", "epochs=30", "--set", f"time_budget_minutes="
                                   f"{args.budget_minutes}"], work / "budget.log")
    plan = next((ln for _, ln in lines if ln.startswith("time budget")), "")
    tested = (work / "budget" / "test" / "results.json").is_file()
    result["budget"] = {"budget_s": budget_s, "wall_s": round(wall, 1), "exit": code,
                        "plan": plan, "test_written": tested,
                        "error": round(wall / budget_s - 1, 3)}
    result["load_after"] = os.getloadavg()
    steal.append(cpu_steal_s())
    if None not in steal:
        result["eta"]["cpu_steal_s"] = round(steal[1] - steal[0], 1)
        result["budget"]["cpu_steal_s"] = round(steal[2] - steal[1], 1)
    ok = (abs(result["eta"]["error"]) <= args.tolerance and code == 0 and tested
          and abs(result["budget"]["error"]) <= args.tolerance)
    result["pass"] = ok
    e, b = result["eta"], result["budget"]
    print(f"ETA: said {e['eta_s']:.0f} s at {e['said_at_s']:.0f} s ({e['line'].strip()}); the run "
          f"ended {e['real_s']:.0f} s later: error {e['error']:+.1%}")
    print(f"budget: {args.budget_minutes} min = {budget_s:.0f} s; the whole process took "
          f"{b['wall_s']:.0f} s: error {b['error']:+.1%}; test evaluation written: {tested}; "
          f"{plan}")
    print(f"ETA run's epochs took {e['epoch_s']} s; CPU time stolen by the host during the "
          f"ETA run {e.get('cpu_steal_s', 'n/a')} s, the budget run {b.get('cpu_steal_s', 'n/a')} s")
    print(f"load average (1, 5, 15 min): before {result['load_before']}, between "
          f"{result['load_middle']}, after {result['load_after']}; logs in {work}")
    print("PASS" if ok else "FAIL", f"(tolerance {args.tolerance:.0%})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())

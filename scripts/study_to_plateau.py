"""The loss study to the plateau, resumable from the repository: the ladder, then the study.

1. **The ladder** (``celebseg_utils.study.plateau``): baseline runs (``sparse_ce``, seed 0)
   of B = ``--first``, 2B, 4B, ... steps, each with its own full schedule and learning curve,
   until a run of 2B steps gains less than 0.01 test mean F1 over the run of B. Results:
   ``figures/study/plateau/steps<B>/`` and ``figures/study/plateau/plateau.json``.
2. **The study** at the plateau budget: the six arms of the seed experiment and ``ce_dice``,
   ``--seeds`` seeds, every run the same number of steps, one run at a time. Results:
   ``figures/study/arms/<arm>/seed<k>/`` and the report ``figures/study/study.{json,md}``
   with its figures. The ladder's own baseline run at the plateau budget is the study's
   ``sparse_ce`` seed 0 (the same config and seed), so it is not trained twice.

Each finished run's small result files (scores, per-image counts, the learning curve: no
models) are committed with ``--commit`` as soon as the run ends, so a stopped session loses
at most the run in progress, and the next one, on any machine, continues from the
repository: finished runs are found in ``figures/study/`` and skipped. Models and backups
live in ``--work`` (not committed); a run interrupted mid-way resumes from its backup when
``--work`` survived, else it starts again.

Usage (from the repository root, the real faces prepared into P)::

    python scripts/study_to_plateau.py --prepared P --work /tmp/study-work --commit

``--dry-run`` prints the commands it would run next.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from celebseg_utils.study import plateau  # noqa: E402

ARMS = "sparse_ce,ce_onehot,pixel_weighted_ce,weighted_ce,dice,jaccard,ce_dice"
#: The --set lines every run shares (ladder and study alike: the ladder's run is reused).
SHARED = ["--preset", "cpu-real", "--set", "validation_steps=10",
          "--set", "time_budget_minutes=none"]  # fixed steps, whatever the preset's budget


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def git_commit(paths, message: str) -> None:
    """Commit ``paths``, the README and the notebooks: the README's study blocks and the
    numbers the notebooks quote (``study.quotes``: the ladder's longest run) are rewritten
    from them first."""
    import update_readme_study

    update_readme_study.main([])
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_notebooks.py")], cwd=REPO,
                   check=False, capture_output=True)
    paths = [*paths, REPO / "README.md", REPO / "docs" / "study.md", REPO / "notebooks"]
    subprocess.run(["git", "add", "--", *map(str, paths)], cwd=REPO, check=False)
    done = subprocess.run(["git", "commit", "-q", "-m", message, "--", *map(str, paths)],
                          cwd=REPO, check=False, capture_output=True, text=True)
    log(f"commit: {message}" if done.returncode == 0 else
        f"commit skipped: {(done.stdout + done.stderr).strip()[:200]}")


def study(prepared, out, results, arms, seeds, steps, max_runs=None, dry=False) -> int:
    cmd = [sys.executable, "-m", "celebseg_utils", "study", "--prepared", str(prepared),
           "--out", str(out), "--results", str(results), "--arms", arms, "--seeds", str(seeds),
           "--steps", str(steps), *SHARED]
    if max_runs:
        cmd += ["--max-runs", str(max_runs)]
    log(" ".join(cmd))
    if dry:
        return 0
    return subprocess.run(cmd, cwd=REPO).returncode


def write_ladder(ladder_root: Path) -> dict:
    """plateau.json and plateau.png from the finished rungs."""
    import matplotlib.pyplot as plt

    report = plateau.ladder_report(ladder_root)
    (ladder_root / "plateau.json").write_text(json.dumps(report, indent=2) + "\n")
    if report["rungs"]:
        plt.close(plateau.plot_ladder(report, ladder_root / "plateau.png"))
    return report


def finished_runs(results: Path) -> int:
    return len(list(results.glob("arms/*/seed*/test.json")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepared", required=True)
    parser.add_argument("--work", required=True, help="models and backups (not committed)")
    parser.add_argument("--first", type=int, default=1000, help="the ladder's first budget")
    parser.add_argument("--max-steps", type=int, default=64000, help="the ladder's last rung")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", default=ARMS)
    parser.add_argument("--results", default=str(REPO / "figures" / "study"))
    parser.add_argument("--commit", action="store_true", help="git commit each finished run")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite plateau.json/png and the study report, train nothing")
    args = parser.parse_args(argv)
    results, work = Path(args.results), Path(args.work)
    ladder_root = results / "plateau"
    if args.report_only:
        write_ladder(ladder_root)
        if finished_runs(results):
            from celebseg_utils.study.report import write_study_report

            write_study_report(results, args.arms.split(","), args.seeds, runs_root=results)
        return 0

    while True:  # 1. the ladder
        scores = {int(f.name[5:]): plateau.rung_score(f) for f in ladder_root.glob("steps*")}
        scores = {b: s for b, s in scores.items() if s is not None}
        rung = plateau.next_rung(scores, args.first)
        if rung is None:
            break
        if rung > args.max_steps:
            log(f"no plateau up to {args.max_steps} steps: {scores}")
            return 1
        log(f"ladder: {scores or 'no rung yet'}; next rung {rung} steps")
        code = study(args.prepared, work / "plateau" / f"steps{rung}",
                     ladder_root / f"steps{rung}", "sparse_ce", 1, rung, dry=args.dry_run)
        if args.dry_run:
            return 0
        if code != 0:
            log(f"the ladder's run of {rung} steps failed ({code})")
            return code
        report = write_ladder(ladder_root)
        if args.commit:
            git_commit([ladder_root], f"study ladder: sparse_ce seed 0, {rung} steps "
                                      f"(test mean F1 {report['rungs'][str(rung)]['model_size']:.3f})")
    budget = plateau.plateau_budget(scores)
    log(f"plateau: {budget} steps ({scores})")

    reused = results / "arms" / "sparse_ce" / "seed0"
    source = ladder_root / f"steps{budget}" / "arms" / "sparse_ce" / "seed0"
    if not (reused / "test.json").exists() and (source / "test.json").exists() and not args.dry_run:
        shutil.copytree(source, reused, dirs_exist_ok=True)
        log(f"the ladder's {budget}-step run is the study's sparse_ce seed 0")
    total = len(args.arms.split(",")) * args.seeds
    while finished_runs(results) < total:  # 2. the study, one run a commit
        before = finished_runs(results)
        code = study(args.prepared, work / "study", results, args.arms, args.seeds, budget,
                     max_runs=1, dry=args.dry_run)
        if args.dry_run:
            return 0
        if code != 0 or finished_runs(results) == before:
            log(f"the study's run failed ({code})")
            return code or 1
        if args.commit:
            git_commit([results], f"study at {budget} steps: {finished_runs(results)}/{total} runs")
    log("the study is complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())

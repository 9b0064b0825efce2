"""The plateau budget: how many steps the baseline needs before more training stops paying.

The loss study compares arms at one number of training steps. Its verdicts answer the
question the study was asked ("which loss helps which class once the models have learnt")
only where the baseline has stopped improving. The budget is measured, not assumed: a
*ladder* of baseline runs, each with its own full learning-rate schedule, at B, 2B, 4B, ...
steps; the plateau is the first B whose run of 2B steps gains less than ``min_gain`` test
mean F1 over it.

The ladder's rungs are ordinary study runs (``celebseg study --arms sparse_ce --seeds 1
--steps B``), so each keeps its learning curve too: a checkpoint at step B inside the 2B run
can be set beside the full run of B steps (the learning rate has not decayed there yet).

>>> plateau_budget({1000: 0.52, 2000: 0.61, 4000: 0.66, 8000: 0.665})
4000
>>> plateau_budget({1000: 0.52, 2000: 0.61}) is None
True
>>> next_rung({1000: 0.52, 2000: 0.61}, first=1000)
4000
"""

from __future__ import annotations

import json
from pathlib import Path

#: The least gain in test mean F1 from doubling the steps that still counts as learning.
MIN_GAIN = 0.01


def plateau_budget(scores: dict, min_gain: float = MIN_GAIN):
    """The first B with a 2B rung whose score gains less than ``min_gain``; None if none yet."""
    for b in sorted(scores):
        if 2 * b in scores and scores[2 * b] - scores[b] < min_gain:
            return b
    return None


def next_rung(scores: dict, first: int, min_gain: float = MIN_GAIN):
    """The next budget to run: ``first``, then double the largest, until the plateau is found
    (None then)."""
    if plateau_budget(scores, min_gain) is not None:
        return None
    if not scores:
        return int(first)
    return 2 * max(scores)


def rung_score(results_root, protocol: str = "model_size", key: str = "mean_f1"):
    """The baseline's test score of one finished rung (None when unfinished)."""
    suffix = "" if protocol == "model_size" else f"_{protocol}"
    found = sorted(Path(results_root).glob(f"arms/*/seed0/test{suffix}.json"))
    if not found:
        return None
    return json.loads(found[0].read_text())[key]


def ladder_report(root, min_gain: float = MIN_GAIN) -> dict:
    """``{"rungs": {B: {protocol: mean F1, "train_seconds"}}, "plateau_steps", ...}`` of the
    rungs under ``root/steps<B>/``; the inside-the-run checkpoints at each smaller rung's B
    come from the larger runs' learning curves."""
    rungs = {}
    for folder in sorted(Path(root).glob("steps*")):
        b = int(folder.name[5:])
        score = rung_score(folder)
        if score is None:
            continue
        test = json.loads(next(folder.glob("arms/*/seed0/test.json")).read_text())
        curve = {}
        for point in sorted(folder.glob("arms/*/seed0/curve/step*.json")):
            data = json.loads(point.read_text())
            curve[int(data["steps"])] = {p: r["mean_f1"] for p, r in data["protocols"].items()}
        rungs[b] = {"model_size": score, "label_size": rung_score(folder, "label_size"),
                    "train_seconds": test.get("train_seconds"), "curve": curve}
    scores = {b: r["model_size"] for b, r in rungs.items()}
    return {"min_gain": min_gain, "protocol": "model_size", "score": "test mean F1",
            "rule": f"the first B whose run of 2B steps gains less than {min_gain} test mean F1 "
                    f"over the run of B steps, each run with its own full schedule",
            "rungs": {str(b): rungs[b] for b in sorted(rungs)},
            "plateau_steps": plateau_budget(scores, min_gain)}


def plot_ladder(report: dict, path=None):
    """Test mean F1 of the baseline against training steps: each rung's full run (its
    schedule ended) as a point, and each run's learning curve (checkpoints inside it, the
    learning rate not yet decayed) as a thin line; the plateau budget marked."""
    from celebseg_utils.visualization.viz import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    rungs = {int(b): r for b, r in report["rungs"].items()}
    for b, r in sorted(rungs.items()):
        curve = sorted((int(s), v["model_size"]) for s, v in r["curve"].items())
        if curve:
            ax.plot(*zip(*curve), color="#999", lw=0.8, marker=".", ms=4, zorder=1)
    xs = sorted(rungs)
    ax.plot(xs, [rungs[b]["model_size"] for b in xs], "o-", color="#1f77b4", zorder=2,
            label="full run of that many steps (model size)")
    if any(rungs[b].get("label_size") is not None for b in xs):
        ax.plot(xs, [rungs[b]["label_size"] for b in xs], "s--", color="#d62728", ms=4,
                zorder=2, label="the same runs at the labels' 512 px")
    ax.plot([], [], color="#999", lw=0.8, marker=".", label="checkpoints inside each run")
    if report.get("plateau_steps"):
        ax.axvline(report["plateau_steps"], color="#2ca02c", ls=":",
                   label=f"plateau: {report['plateau_steps']:,} steps")
    ax.set_xscale("log", base=2)
    ticks = sorted(set(xs) | {int(s) for r in rungs.values() for s in r["curve"]})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{b:,}" for b in ticks], fontsize=8)
    ax.set_xlabel("training steps (batch 8, 128 px)")
    ax.set_ylabel("test mean F1 (18 facial classes)")
    ax.set_title("sparse_ce on real faces, seed 0: where more steps stop paying")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def ladder_markdown(report: dict) -> str:
    """The ladder as a Markdown table (the README's generated block).

    >>> print(ladder_markdown({"rungs": {"1000": {"model_size": 0.5, "label_size": 0.51,
    ...     "train_seconds": 600, "curve": {}}}, "plateau_steps": None, "min_gain": 0.01}))
    | steps | test mean F1 (128 px) | at 512 px labels | gain over half the steps | training* |
    |---:|---:|---:|---:|---:|
    | 1,000 | 0.500 | 0.510 | – | 10 min |
    <BLANKLINE>
    \\* wall time on a shared 2-core CPU, from the run's last start when it was resumed.
    <BLANKLINE>
    Plateau: not reached yet (a doubling still gains 0.01 or more, or its run is not finished).
    """
    rungs = {int(b): r for b, r in report["rungs"].items()}
    lines = ["| steps | test mean F1 (128 px) | at 512 px labels | gain over half the steps "
             "| training* |", "|---:|---:|---:|---:|---:|"]
    for b in sorted(rungs):
        r = rungs[b]
        half = rungs.get(b // 2) if b % 2 == 0 else None
        gain = f"{r['model_size'] - half['model_size']:+.3f}" if half else "–"
        label = "n/a" if r.get("label_size") is None else f"{r['label_size']:.3f}"
        minutes = "n/a" if r.get("train_seconds") is None else f"{r['train_seconds'] / 60:.0f} min"
        lines.append(f"| {b:,} | {r['model_size']:.3f} | {label} | {gain} | {minutes} |")
    curves = {b: {int(k): v for k, v in r.get("curve", {}).items()} for b, r in rungs.items()}
    inside = [(b, big, curves[big][b]["model_size"])
              for b in sorted(rungs) for big in sorted(rungs) if big > b and b in curves[big]]
    if inside:
        lines += ["", "A checkpoint inside a longer run is not a run of that length (its learning "
                      "rate has not decayed): " + "; ".join(
                          f"at {b:,} steps inside the {big:,}-step run {v:.3f} against the "
                          f"{b:,}-step run's {rungs[b]['model_size']:.3f} ({v - rungs[b]['model_size']:+.3f})"
                          for b, big, v in inside) + "."]
    lines += ["", "\\* wall time on a shared 2-core CPU, from the run's last start when it was "
                  "resumed."]
    plateau = report.get("plateau_steps")
    lines += ["", (f"Plateau: **{plateau:,} steps** (doubling them gained less than "
                   f"{report['min_gain']} test mean F1)." if plateau else
                   f"Plateau: not reached yet (a doubling still gains {report['min_gain']} or "
                   f"more, or its run is not finished).")]
    return "\n".join(lines)

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

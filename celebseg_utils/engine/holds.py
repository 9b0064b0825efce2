"""When a difference between two losses *holds*: the one definition the study's report
(``celebseg study``), the notebooks and the README's generated blocks all use.

A loss arm is compared with the baseline run by run, paired by seed: run ``s`` of both shares
its initial weights and batches, so ``d_s = score(arm, s) - score(baseline, s)`` isolates the
loss. The difference **holds** when all three checks pass:

1. **sign**: every per-seed difference has the same sign, over at least :data:`MIN_SEEDS`
   seeds (with 3 seeds this alone happens by chance 1 time in 4 when the loss changes
   nothing, so it is a consistency check, not a significance test);
2. **bootstrap**: the 95% paired-bootstrap interval over the test faces excludes 0 (how much
   the difference depends on which faces the test split happened to hold);
3. **noise**: the mean difference exceeds :data:`NOISE_FACTOR` times the seed noise, the larger
   of the two arms' standard deviations over seeds (the bootstrap sees the test faces, not the
   training noise: ``ce_onehot``, the baseline's own loss, passed the first two checks).

With one seed nothing can hold: there is no second seed to agree and no seed noise to
exceed, so :func:`judge` says "no difference can be judged to hold".

>>> judge([0.047, 0.025, 0.070], ci95=(0.041, 0.054), seed_noise=0.021).holds
True
>>> print(judge([0.028, 0.008, 0.065], ci95=(0.028, 0.041), seed_noise=0.021).reason)
does not hold: all 3 seeds agree in sign and the 95% interval [+0.028, +0.041] excludes 0, but +0.034 is within twice the seed noise (2 x 0.0210 = 0.042)
>>> print(judge([0.31]).reason)
does not hold: one seed, so no difference can be judged to hold (the three checks need 2 seeds or more)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

#: Seeds a difference needs before it can hold.
MIN_SEEDS = 2
#: How many times the seed noise a difference must exceed.
NOISE_FACTOR = 2.0
#: The rule in one sentence, as tables and notebooks print it.
RULE = ("**holds** when every seed agrees in sign, the interval excludes 0 and the difference "
        "exceeds twice the seed noise")


def paired_sign(diffs) -> float:
    """1.0 when every paired difference is positive, 0.0 when signs differ, -1.0 when all
    are negative (a zero or missing difference counts as a differing sign).

    >>> paired_sign([0.1, 0.2, 0.05]), paired_sign([0.1, -0.2, 0.05]), paired_sign([])
    (1.0, 0.0, 0.0)
    """
    values = [float("nan") if d is None else float(d) for d in diffs]
    if values and all(d > 0 for d in values):
        return 1.0
    if values and all(d < 0 for d in values):
        return -1.0
    return 0.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`judge`: ``holds``, the sentence that says why, and each check
    (None where it could not be made)."""

    holds: bool
    reason: str
    checks: dict = field(default_factory=dict)


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def judge(diff_per_seed: Sequence[float], ci95: Sequence[float] | None = None,
          seed_noise: float | None = None) -> Verdict:
    """Does the difference whose per-seed values are ``diff_per_seed`` hold? ``ci95``: the
    paired bootstrap's 95% interval of the seed-averaged difference; ``seed_noise``: the
    larger standard deviation over seeds of the two arms (module docstring).

    >>> judge([0.1, -0.05, 0.2], ci95=(0.01, 0.2), seed_noise=0.01).checks["sign"]
    False
    """
    diffs = [float("nan") if d is None else float(d) for d in diff_per_seed]
    seeds = len(diffs)
    if seeds < MIN_SEEDS:
        what = "no seed" if seeds == 0 else "one seed"
        return Verdict(False, f"does not hold: {what}, so no difference can be judged to hold "
                              f"(the three checks need {MIN_SEEDS} seeds or more)",
                       {"seeds": seeds, "sign": None, "bootstrap": None, "noise": None})
    finite = [d for d in diffs if math.isfinite(d)]
    mean = sum(finite) / len(finite) if finite else float("nan")
    sign = paired_sign(diffs) != 0
    bootstrap = None
    if ci95 is not None and all(_finite(v) for v in ci95):
        lo, hi = float(ci95[0]), float(ci95[1])
        bootstrap = lo > 0 or hi < 0
    noise = None
    if _finite(seed_noise) and math.isfinite(mean):
        noise = abs(mean) > NOISE_FACTOR * float(seed_noise)
    checks = {"seeds": seeds, "sign": sign, "bootstrap": bootstrap, "noise": noise}
    passed, failed = [], []
    (passed if sign else failed).append(
        f"all {seeds} seeds agree in sign" if sign else
        "the seeds disagree in sign (" + ", ".join(f"{d:+.3f}" for d in diffs) + ")")
    if bootstrap is None:
        failed.append("no bootstrap interval was measured")
    else:
        interval = f"the 95% interval [{float(ci95[0]):+.3f}, {float(ci95[1]):+.3f}]"
        (passed if bootstrap else failed).append(
            f"{interval} {'excludes' if bootstrap else 'includes'} 0")
    if noise is None:
        failed.append("no seed noise was measured")
    else:
        size = f"{mean:+.3f}"
        bar = (f"twice the seed noise (2 x {float(seed_noise):.4f} = "
               f"{NOISE_FACTOR * float(seed_noise):.3f})")
        (passed if noise else failed).append(
            f"{size} exceeds {bar}" if noise else f"{size} is within {bar}")
    holds = not failed
    if holds:
        reason = "holds: " + _join(passed)
    elif passed:
        reason = f"does not hold: {_join(passed)}, but {_join(failed)}"
    else:
        reason = "does not hold: " + _join(failed)
    return Verdict(holds, reason, checks)


def judge_entry(entry: dict) -> Verdict:
    """:func:`judge` of one comparison as ``study.json`` stores it (``versus_baseline[arm][score]``:
    ``diff_per_seed``, ``ci95``, ``seed_noise``).

    >>> judge_entry({"diff_per_seed": [0.2, 0.3], "ci95": [0.1, 0.4], "seed_noise": 0.05}).holds
    True
    """
    return judge(entry.get("diff_per_seed", []), entry.get("ci95"), entry.get("seed_noise"))


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

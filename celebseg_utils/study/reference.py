"""The committed reference: the loss study as measured on real faces, shipped with the package.

``reference/study.json`` is a copy of ``figures/study/budget250/study.json``, the report
``celebseg study`` wrote for the README's "The loss study on real faces" (4,000 real
CelebAMask-HQ faces, preset ``cpu-real``, 250 steps), and ``reference/gradient_shares.json`` the gradient-share measurement of
``scripts/measure_gradient_shares.py``. Notebooks show them beside a user's own runs, and
:func:`conclusions` turns a study report into sentences, so the text always says what the
numbers say.

>>> report = reference_study()
>>> report["baseline"], len(report["arms"]) >= 6
('sparse_ce', True)
>>> conclusions(report).startswith("- ")
True
"""

from __future__ import annotations

import json
from pathlib import Path

from celebseg_utils import labels as L

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


def reference_study() -> dict:
    """The committed real-face study report (the schema of ``study.json``)."""
    return json.loads((REFERENCE_DIR / "study.json").read_text(encoding="utf-8"))


def reference_gradient_shares() -> dict:
    """The committed gradient-share measurement (``gradient_shares.json``)."""
    return json.loads((REFERENCE_DIR / "gradient_shares.json").read_text(encoding="utf-8"))


def reference_markdown() -> str:
    """The reference study's tables (``study.md``), headed as the reference they are."""
    from celebseg_utils.study.report import budget_title, study_markdown

    report = reference_study()
    body = study_markdown(report).split("\n", 1)[1]
    return (f"**Reference (committed measurement, not your run)**: {len(report['arms'])} arms on "
            f"real faces, {budget_title(report)}, preset "
            f"`{report.get('settings', {}).get('preset', '?')}`.\n" + body)


def _arm_line(arm: str, comp: dict, summary: dict, baseline: str) -> str:
    from celebseg_utils.engine.holds import judge_entry

    mean = comp["mean_f1"]
    verdict = judge_entry(mean).reason  # says which of the three checks failed, if any
    held = [(L.DISPLAY_NAMES[c], comp[c]["diff_mean"]) for c in L.RARE_CLASSES
            if c in comp and judge_entry(comp[c]).holds]
    rare = ("; rare classes where the change holds: "
            + ", ".join(f"{n} {d:+.3f}" for n, d in held)) if held else "; no rare-class change holds"
    return (f"- `{arm}`: mean F1 {summary[arm]['mean_f1']['mean']:.3f} vs "
            f"{summary[baseline]['mean_f1']['mean']:.3f} for `{baseline}` "
            f"({mean['diff_mean']:+.3f}, per seed {', '.join(f'{x:+.3f}' for x in mean['diff_per_seed'])}): "
            f"{verdict}{rare}.")


def conclusions(report: dict) -> str:
    """Markdown bullets: each arm against the baseline, from the report's own statistics."""
    baseline, summary = report["baseline"], report["summary"]
    lines = []
    for arm, comp in report["versus_baseline"].items():
        if comp:
            lines.append(_arm_line(arm, comp, summary, baseline))
    if "ce_onehot" in summary and baseline in summary:
        diffs = report["versus_baseline"].get("ce_onehot", {}).get("mean_f1", {}).get("diff_per_seed", [])
        spread = summary[baseline]["mean_f1"]["std"] or 0.0
        if len(diffs) < 2:
            lines.append("- one-hot against integer labels: two seeds or more are needed to "
                         "tell a difference from seed-to-seed noise.")
        elif diffs:
            same = max(abs(d) for d in diffs) <= 2 * spread
            lines.append(f"- one-hot labels with Keras's categorical CE against integer labels with "
                         f"sparse CE: largest per-seed difference {max(abs(d) for d in diffs):.3f} "
                         f"in mean F1, {'within' if same else 'beyond'} twice the seed-to-seed "
                         f"spread of `{baseline}` ({spread:.3f}): "
                         f"{'the same loss, as it should be' if same else 'larger than noise: look for a bug'}.")
    return "\n".join(lines)

"""The numbers the notebooks and ``docs/study.md`` quote, computed from the committed result files.

A sentence in a notebook that states a measurement takes its number from here, formatted
when the notebook is generated (``scripts/make_notebooks.py``): ``"{pixel_accuracy_sparse_ce}"``
becomes ``0.757``, read from the reference study. ``tests/test_quoted_numbers.py`` checks that
every decimal number and percentage the notebooks' Markdown and ``docs/study.md`` quote is
one of these values, so a number typed by hand, or left behind when a result file changes,
fails the test.

Sources (all committed): the reference study (``study/reference/study.json``, the 250-step
study of ``figures/study/budget250/``), the gradient shares
(``study/reference/gradient_shares.json`` = ``figures/study/gradient_shares.json``) and the
ladder (``figures/study/plateau/steps*/study.json``).

>>> f = facts()
>>> f["gradient_batches"], f["gradient_batch_size"], f["pixel_accuracy_pixel_weighted_ce"]
('16', '8', '0.620')
"""

from __future__ import annotations

import json
from pathlib import Path

from celebseg_utils import labels as L

#: The repository's committed study folder (present in a checkout, not in an installed wheel).
STUDY_FIGURES = Path(__file__).resolve().parents[2] / "figures" / "study"
#: The measurements of the model that notebook 04 teaches with (``scripts/make_model_figures.py``).
MODEL_FIGURES = Path(__file__).resolve().parents[2] / "figures" / "model" / "model_figures.json"
#: The 8 small parts every face has, in the gradient-share sentences.
SMALL_PARTS = ("nose", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip")


def pct(x: float, digits: int = 1) -> str:
    """A share as a percentage: ``0.0293`` -> ``"2.9%"``."""
    return f"{100 * float(x):.{digits}f}%"


def num(x, digits: int = 3) -> str:
    """A score as quoted: ``0.6201`` -> ``"0.620"``; None -> ``"n/a"``."""
    return "n/a" if x is None else f"{float(x):.{digits}f}"


def gradient_facts(shares: dict | None = None) -> dict[str, str]:
    """Quoted numbers of the gradient-share measurement (its zero-logit table: the start of
    training, where the question is what each loss asks of the model)."""
    import numpy as np

    if shares is None:
        from celebseg_utils.study.reference import reference_gradient_shares

        shares = reference_gradient_shares()
    t = shares["zeros"]
    s = {k: np.asarray(v) for k, v in t["shares"].items()}
    big = [L.BACKGROUND_ID, L.class_id("skin"), L.class_id("hair")]
    rare = [L.class_id(c) for c in L.RARE_CLASSES]
    small = [L.class_id(c) for c in SMALL_PARTS]
    hat = L.class_id("hat")
    images = np.asarray(t["image_fraction"])
    out = {"gradient_batches": str(t["batches"]), "gradient_batch_size": str(t["batch_size"]),
           "gradient_images": str(t["images"]), "gradient_image_size": str(t["image_size"])}
    for scheme in ("ce", "per_image", "median_freq", "dice"):
        out[f"big3_{scheme}"] = pct(s[scheme][big].sum())
        out[f"small8_{scheme}"] = pct(s[scheme][small].sum())
        out[f"rare4_{scheme}"] = pct(s[scheme][rare].sum())
        out[f"hat_{scheme}"] = pct(s[scheme][hat], 2)
    # "about 7% each": the median of the 8 small parts' shares, rounded to a whole percent
    out["small_each_per_image"] = pct(round(float(np.median(s["per_image"][small])), 2), 0)
    small_in = images[small]
    out["small_images_low"] = pct(np.sort(small_in)[1], 0)  # mouth, open in 59%, left out
    out["small_images_high"] = pct(small_in.max(), 0)
    rare_in = images[[L.class_id(c) for c in ("eye_g", "hat", "neck_l")]]
    out["rare_images"] = pct(round(float(rare_in.mean()), 2), 0)
    out["raw_vs_normalised_points"] = f"{100 * np.abs(s['per_image'] - s['per_image_raw']).max():.2f}"
    out["median_freq_vs_per_image_points"] = (
        f"{100 * np.abs(s['median_freq'] - s['per_image']).max():.1f}")
    return out


def reference_report() -> dict:
    """The reference study as ``figures/study/budget250/study.json`` holds it in a checkout
    (with its ``steps`` and ``image_size``), else the package's copy
    (:func:`celebseg_utils.study.reference.reference_study`, the same scores)."""
    committed = STUDY_FIGURES / "budget250" / "study.json"
    if committed.is_file():
        return json.loads(committed.read_text())
    from celebseg_utils.study.reference import reference_study

    return reference_study()


def study_facts(report: dict | None = None) -> dict[str, str]:
    """Quoted numbers of the reference study: each arm's pixel accuracy, mean F1 and the rare
    classes' F1, precision and recall (mean over seeds), and its budget."""
    from celebseg_utils.study.report import budget_title

    if report is None:
        report = reference_report()
    out = {"study_budget": budget_title(report), "study_seeds": str(report["seeds_complete"])}
    for arm, summary in report["summary"].items():
        for score in ("pixel_accuracy", "mean_f1", "miou"):
            out[f"{score}_{arm}"] = num(summary[score]["mean"])
        for name in L.RARE_CLASSES:
            pc = summary["per_class"][name]
            out[f"f1_{name}_{arm}"] = num(pc["f1"]["mean"])
            for key in ("precision", "recall"):
                out[f"{key}_{name}_{arm}"] = num(pc[key]["mean"], 2)
    for arm, comp in report.get("versus_baseline", {}).items():
        if "mean_f1" in comp:  # each arm's mean-F1 difference from the baseline
            out[f"diff_mean_f1_{arm}"] = f"{comp['mean_f1']['diff_mean']:+.3f}"
    for name in L.RARE_CLASSES:  # the best any arm did: "F1 0.000 under every loss"
        best = [s["per_class"][name]["f1"]["mean"] for s in report["summary"].values()]
        out[f"f1_{name}_best"] = num(max((b for b in best if b is not None), default=None))
    return out


def ladder_facts(root: Path = STUDY_FIGURES / "plateau") -> dict[str, str]:
    """Quoted numbers of the ladder (``sparse_ce``, seed 0, one run per step budget): its
    mean F1 and rare-class F1 at the shortest and the longest run finished."""
    out = {}
    rungs = sorted(int(p.name[5:]) for p in root.glob("steps*") if (p / "study.json").exists())
    if not rungs:
        return out
    for label, steps in (("short", rungs[0]), ("long", rungs[-1])):
        report = json.loads((root / f"steps{steps}" / "study.json").read_text())
        summary = report["summary"]["sparse_ce"]
        out[f"ladder_{label}_steps"] = f"{steps:,}"
        out[f"ladder_{label}_mean_f1"] = num(summary["mean_f1"]["mean"])
        for name in L.RARE_CLASSES:
            out[f"ladder_{label}_f1_{name}"] = num(summary["per_class"][name]["f1"]["mean"])
    return out


def model_facts(path: Path = MODEL_FIGURES) -> dict[str, str]:
    """Quoted numbers of the model's measurements (``figures/model/model_figures.json``,
    written by ``scripts/make_model_figures.py``): every score, share and cost in it, named
    by its place in the file, in the forms notebook 04 quotes them (2 and 3 decimals,
    shares as percentages, parameters in millions). Absent outside a checkout."""
    if not path.exists():
        return {}
    out = {}

    def walk(value, name):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{name}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{name}[{i}]")
        elif isinstance(value, float):
            out[f"{name}:2"], out[f"{name}:3"] = num(value, 2), num(value, 3)
            out[f"{name}:1"] = num(value, 1)
            if 0.0 <= value <= 1.0:
                out[f"{name}:pct"], out[f"{name}:pct0"] = pct(value), pct(value, 0)
        elif isinstance(value, int) and name.endswith(".params"):
            out[f"{name}:millions"] = num(value / 1e6, 2)

    walk(json.loads(path.read_text(encoding="utf-8")), "model")
    return out


def facts() -> dict[str, str]:
    """Every quoted number by name: :func:`gradient_facts`, :func:`study_facts` and, in a
    checkout, :func:`ladder_facts` and :func:`model_facts`."""
    return {**gradient_facts(), **study_facts(), **ladder_facts(), **model_facts()}

"""The loss study's report: ``study.json``, ``study.md`` and figures from the finished runs.

Per arm, over the seeds it finished: mean and standard deviation (``ddof=1``) of the mean F1
over the 18 facial classes, the mIoU over 19 classes and the pixel accuracy, and of each
class's F1, precision and recall on the test split.

Against the baseline (``sparse_ce``), for the mean F1 and each rare class's F1: the per-seed
differences (run ``s`` of an arm and of the baseline share their initial weights and batches,
so their difference isolates the loss), a paired bootstrap over test faces (2,000 resamples)
and the seed noise. Whether a difference *holds* is decided by the three checks of
:mod:`celebseg_utils.engine.holds` (sign over seeds, bootstrap interval, twice the seed
noise), the one definition the notebooks and the README use too.

A class's F1 pools its pixels over the faces (``2 TP / (2 TP + FP + FN)``), as ``celebseg
evaluate`` does; a class absent from truth and prediction has no F1 and is left out of the
mean, and the report says how many classes each mean covers.

>>> round(paired_sign([0.1, 0.2, 0.05]), 2), paired_sign([0.1, -0.2, 0.05])
(1.0, 0.0)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.engine.holds import RULE, judge, judge_entry, paired_sign  # noqa: F401 (paired_sign: the report's API)
from celebseg_utils.fileio import atomic_write_json, atomic_write_text
from celebseg_utils.visualization.viz import pyplot

FACIAL = list(L.FACIAL_CLASS_IDS)
RARE = [L.class_id(c) for c in L.RARE_CLASSES]
BOOTSTRAP_SAMPLES = 2000


def run_dir(out, arm: str, seed: int) -> Path:
    """The folder of one run of a study: ``OUT/runs/<arm>/seed<k>``."""
    return Path(out) / "runs" / arm / f"seed{seed}"


def result_dir(out, arm: str, seed: int, results_root=None) -> Path:
    """Where one run's result files are: ``RESULTS/arms/<arm>/seed<k>`` when the study keeps
    them apart (``--results``), else its run folder."""
    if results_root is not None:
        return Path(results_root) / "arms" / arm / f"seed{seed}"
    return run_dir(out, arm, seed)


def _name(class_id: int) -> str:
    return L.DISPLAY_NAMES[L.CLASS_NAMES[class_id]]


def f1_from_counts(tp, fp, fn) -> np.ndarray:
    """Per-class F1 (NaN where a class has no pixel in truth nor prediction), last axis C."""
    tp, fp, fn = (np.asarray(a, np.float64) for a in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def load_runs(out, arms, seeds: int, runs_root=None, budget: int | None = None,
              protocol: str = "model_size") -> dict:
    """``{arm: {seed: {"results": scores, "counts": npz arrays}}}`` of the finished runs: their
    final scores, or with ``budget`` their learning curve's point at that many steps."""
    runs: dict = {}
    for arm in arms:
        for seed in range(seeds):
            folder = result_dir(out, arm, seed, runs_root)
            if not (folder / "test.json").exists():
                continue
            if budget is None:
                suffix = "" if protocol == "model_size" else f"_{protocol}"
                scores, counts = folder / f"test{suffix}.json", folder / f"test_counts{suffix}.npz"
                if not (scores.exists() and counts.exists()):
                    continue
                results = json.loads(scores.read_text())
            else:
                point = folder / "curve" / f"step{int(budget)}.json"
                counts = folder / "curve" / f"step{int(budget)}_{protocol}.npz"
                if not (point.exists() and counts.exists()):
                    continue
                results = json.loads(point.read_text())["protocols"][protocol]
            with np.load(counts) as z:
                arrays = {k: z[k].astype(np.int64) if k != "ids" else z[k] for k in z.files}
            runs.setdefault(arm, {})[seed] = {"results": results, "counts": arrays}
    return runs


def run_budgets(out, arms, seeds: int, runs_root=None) -> list[int]:
    """The step budgets of the learning curve that every finished run scored."""
    found = None
    for arm in arms:
        for seed in range(seeds):
            folder = result_dir(out, arm, seed, runs_root)
            if not (folder / "test.json").exists():
                continue
            steps = {int(p.stem[4:]) for p in (folder / "curve").glob("step*.json")}
            found = steps if found is None else found & steps
    return sorted(found or ())


def _mean_std(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if not v.size:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size), "values": [None if x is None else float(x) for x in values]}


def summarise_arm(seed_runs: dict) -> dict:
    results = [seed_runs[s]["results"] for s in sorted(seed_runs)]
    per_class = {}
    for c in range(L.NUM_CLASSES):
        name = L.CLASS_NAMES[c]
        per_class[name] = {k: _mean_std([r["per_class"][name][k] for r in results])
                           for k in ("f1", "precision", "recall", "iou")}
    covered = [sum(r["per_class"][L.CLASS_NAMES[c]]["f1"] is not None for c in FACIAL)
               for r in results]
    return {"seeds": sorted(seed_runs), "mean_f1": _mean_std([r["mean_f1"] for r in results]),
            "miou": _mean_std([r["miou"] for r in results]),
            "pixel_accuracy": _mean_std([r["pixel_accuracy"] for r in results]),
            "facial_classes_averaged": min(covered), "per_class": per_class,
            "train_minutes": _mean_std([r.get("train_seconds", 0) / 60 for r in results])}


def paired_comparison(base: dict, arm: dict, rng) -> dict:
    """Arm minus baseline on the seeds both finished: per-seed differences, their sign, and a
    paired bootstrap interval over test faces, for the mean F1 and each rare class's F1."""
    seeds = sorted(set(base) & set(arm))
    if not seeds:
        return {}
    n = len(base[seeds[0]]["counts"]["ids"])
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=BOOTSTRAP_SAMPLES).astype(np.float64)

    def f1s(run, weights=None):
        c = run["counts"]
        if weights is None:
            return f1_from_counts(c["tp"].sum(0), c["fp"].sum(0), c["fn"].sum(0))
        return f1_from_counts(weights @ c["tp"], weights @ c["fp"], weights @ c["fn"])

    boot = np.mean([f1s(arm[s], draws) - f1s(base[s], draws) for s in seeds], axis=0)
    point = [f1s(arm[s]) - f1s(base[s]) for s in seeds]
    arm_f1 = np.array([f1s(arm[s]) for s in seeds])
    base_f1 = np.array([f1s(base[s]) for s in seeds])
    out = {"seeds": seeds}
    # the mean F1 difference, from each side's own mean over its defined classes
    boot_mean = np.mean([np.nanmean(f1s(arm[s], draws)[:, FACIAL], axis=1)
                         - np.nanmean(f1s(base[s], draws)[:, FACIAL], axis=1) for s in seeds], axis=0)
    per_seed = [float(np.nanmean(f1s(arm[s])[FACIAL]) - np.nanmean(f1s(base[s])[FACIAL])) for s in seeds]
    def seed_std(values):
        values = np.asarray(values, np.float64)
        values = values[np.isfinite(values)]
        return float(values.std(ddof=1)) if values.size > 1 else float("nan")

    mean_arm = np.nanmean(arm_f1[:, FACIAL], axis=1)
    mean_base = np.nanmean(base_f1[:, FACIAL], axis=1)
    targets = [("mean_f1", per_seed, boot_mean, max(seed_std(mean_arm), seed_std(mean_base)))]
    targets += [(L.CLASS_NAMES[c], [float(p[c]) for p in point], boot[:, c],
                 max(seed_std(arm_f1[:, c]), seed_std(base_f1[:, c]))) for c in RARE]
    for key, diffs, samples, noise in targets:
        samples = samples[np.isfinite(samples)]
        lo, hi = (np.percentile(samples, [2.5, 97.5]) if samples.size else (np.nan, np.nan))
        sign = paired_sign(diffs)
        diff = float(np.nanmean(diffs))
        out[key] = {"diff_mean": diff, "diff_per_seed": diffs, "sign_over_seeds": sign,
                    "ci95": [float(lo), float(hi)], "seed_noise": noise,
                    "holds": judge(diffs, (lo, hi), noise).holds}
    return out


#: Scores kept per budget in the learning curves of ``study.json``.
CURVE_SCORES = ("mean_f1", "miou", "pixel_accuracy")


def _compare_all(runs: dict, arms, baseline: str) -> dict:
    rng = np.random.default_rng(0)
    return {arm: paired_comparison(runs[baseline], runs[arm], rng)
            for arm in arms if arm != baseline and arm in runs and baseline in runs}


def _curve_summary(runs: dict) -> dict:
    """Per arm at one budget: the headline scores and the rare classes' F1 over seeds."""
    out = {}
    for arm, seed_runs in runs.items():
        results = [seed_runs[s]["results"] for s in sorted(seed_runs)]
        out[arm] = {"seeds": sorted(seed_runs),
                    **{k: _mean_std([r[k] for r in results]) for k in CURVE_SCORES},
                    "rare_f1": {L.CLASS_NAMES[c]: _mean_std(
                        [r["per_class"][L.CLASS_NAMES[c]]["f1"] for r in results]) for c in RARE}}
    return out


def build_report(out, arms, seeds: int, baseline: str = "sparse_ce", runs_root=None) -> dict:
    """The study's report. Its top level is the final budget under the model-size protocol
    (``summary``, ``versus_baseline``); ``protocols`` holds both protocols' final tables,
    ``budgets`` the learning curve's step budgets and ``curves`` every budget's scores and
    verdicts; ``runs`` each run's ``steps`` and training time."""
    from celebseg_utils.engine.scoring import PROTOCOL_TEXT, PROTOCOLS

    runs = load_runs(out, arms, seeds, runs_root)
    complete = [s for s in range(seeds) if all(s in runs.get(a, {}) for a in arms)]
    report = {"arms": [a for a in arms if a in runs], "seeds_requested": seeds,
              "seeds_complete": len(complete), "baseline": baseline,
              "rare_classes": list(L.RARE_CLASSES),
              "method": {"spread": "mean and standard deviation (ddof=1) over seeds",
                         "comparison": "paired by seed: sign of every per-seed difference, and a "
                                       f"{BOOTSTRAP_SAMPLES}-resample paired bootstrap over test "
                                       "faces of the seed-averaged difference (95% interval), "
                                       "and a difference beyond twice the larger seed-to-seed "
                                       "standard deviation; a difference holds when all three agree",
                         "model": "the model at the run's step budget (final.keras), not the "
                                  "best validation checkpoint",
                         "protocols": dict(PROTOCOL_TEXT)},
              "summary": {a: summarise_arm(runs[a]) for a in arms if a in runs},
              "versus_baseline": {}, "protocols": {}, "runs": {}}
    report["versus_baseline"] = _compare_all(runs, report["arms"], baseline)
    for protocol in PROTOCOLS:
        p_runs = load_runs(out, arms, seeds, runs_root, protocol=protocol)
        report["protocols"][protocol] = {
            "summary": {a: summarise_arm(p_runs[a]) for a in arms if a in p_runs},
            "versus_baseline": _compare_all(p_runs, report["arms"], baseline)}
    for arm, seed_runs in runs.items():
        report["runs"][arm] = {str(s): {"steps": r["results"].get("steps"),
                                        "train_seconds": r["results"].get("train_seconds"),
                                        "image_size": r["results"].get("image_size")}
                               for s, r in sorted(seed_runs.items())}
    report["budgets"] = run_budgets(out, arms, seeds, runs_root)
    report["curves"] = {}
    for budget in report["budgets"]:
        entry = {}
        for protocol in PROTOCOLS:
            b_runs = load_runs(out, arms, seeds, runs_root, budget=budget, protocol=protocol)
            entry[protocol] = {"summary": _curve_summary(b_runs),
                               "versus_baseline": _compare_all(b_runs, report["arms"], baseline)}
        report["curves"][str(budget)] = entry
    steps = sorted({r["steps"] for a in report["runs"].values() for r in a.values()
                    if r["steps"] is not None})
    sizes = sorted({r["image_size"] for a in report["runs"].values() for r in a.values()
                    if r["image_size"] is not None})
    report["steps"] = steps[0] if len(steps) == 1 else steps
    report["image_size"] = sizes[0] if len(sizes) == 1 else sizes
    args = Path(runs_root or out) / "study_args.json"
    if args.exists():
        report["settings"] = json.loads(args.read_text())
        report["settings"].pop("config", None)
    return report


def budget_title(report: dict) -> str:
    """What trained the models of a report: steps, image size, seeds.

    >>> budget_title({"steps": 4000, "image_size": 128, "seeds_complete": 3, "arms": ["a"]})
    '4,000 steps, 128 px, 3 complete seeds'
    >>> budget_title({"arms": [], "seeds_complete": 0})
    'steps not recorded, size not recorded, 0 complete seeds'
    """
    steps = report.get("steps")
    size = report.get("image_size")
    steps_text = (f"{steps:,} steps" if isinstance(steps, int) else
                  "steps " + "/".join(f"{s:,}" for s in steps) if steps else "steps not recorded")
    size_text = f"{size} px" if isinstance(size, int) else (
        "/".join(map(str, size)) + " px" if size else "size not recorded")
    seeds = report.get("seeds_complete", 0)
    return f"{steps_text}, {size_text}, {seeds} complete seed{'' if seeds == 1 else 's'}"


def _pm(stat: dict, digits: int = 3) -> str:
    if stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def study_markdown(report: dict, budget_in_headings: bool = True) -> str:
    """``study.md``: the tables of a report, each heading with the budget that trained the
    models (:func:`budget_title`). ``budget_in_headings=False`` states it in the first
    heading only, for a page that heads the whole block with it (the README's)."""
    arms, summary = report["arms"], report["summary"]
    n_facial = min((summary[a]["facial_classes_averaged"] for a in arms), default=0)
    lines = [f"# The loss study: {len(arms)} arms, {report['seeds_complete']} complete seeds "
             f"({budget_title(report)})", "",
             f"Test split, scored at the model's input size; mean ± standard deviation over "
             f"seeds. Mean F1 over the facial classes present (at least {n_facial} of 18), mIoU "
             f"over 19 classes.", "",
             "| arm | seeds | mean F1 | mIoU | pixel accuracy | " + " | ".join(
                 f"F1 {_name(c)}" for c in RARE) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(RARE)]
    for a in arms:
        s = summary[a]
        cells = [_pm(s["per_class"][L.CLASS_NAMES[c]]["f1"]) for c in RARE]
        lines.append(f"| {a} | {len(s['seeds'])} | {_pm(s['mean_f1'])} | {_pm(s['miou'])} | "
                     f"{_pm(s['pixel_accuracy'])} | " + " | ".join(cells) + " |")
    budget = f" ({budget_title(report)})" if budget_in_headings else ""
    lines += ["", f"## Rare classes: precision and recall{budget}", "",
              "| arm | " + " | ".join(f"{_name(c)} P / R" for c in RARE) + " |",
              "|---|" + "---:|" * len(RARE)]
    for a in arms:
        pc = summary[a]["per_class"]
        cells = [f"{_pm(pc[L.CLASS_NAMES[c]]['precision'], 2)} / {_pm(pc[L.CLASS_NAMES[c]]['recall'], 2)}"
                 for c in RARE]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    label = (report.get("protocols") or {}).get("label_size")
    if label and label["summary"]:
        lines += ["", f"## At the labels' own size (the published tables' protocol){budget}", "",
                  "Logits upsampled to the 512 px label maps before the argmax; one confusion "
                  "matrix over the test split.", "",
                  "| arm | seeds | mean F1 | mIoU | pixel accuracy | " + " | ".join(
                      f"F1 {_name(c)}" for c in RARE) + " |",
                  "|---|---:|---:|---:|---:|" + "---:|" * len(RARE)]
        for a in arms:
            if a not in label["summary"]:
                continue
            s_ = label["summary"][a]
            cells = [_pm(s_["per_class"][L.CLASS_NAMES[c]]["f1"]) for c in RARE]
            lines.append(f"| {a} | {len(s_['seeds'])} | {_pm(s_['mean_f1'])} | {_pm(s_['miou'])} "
                         f"| {_pm(s_['pixel_accuracy'])} | " + " | ".join(cells) + " |")
    lines += curve_markdown(report, budget_in_heading=budget_in_headings)
    if report["versus_baseline"]:
        lines += ["", f"## Against {report['baseline']}, paired by seed{budget}", "",
                  "Difference of the arm minus the baseline (mean over seeds); the per-seed "
                  "differences; the 95% paired-bootstrap interval over test faces; the seed noise "
                  f"(the larger standard deviation over seeds of the two arms); {RULE}.", "",
                  "| arm | score | difference | per seed | 95% interval | seed noise | holds |",
                  "|---|---|---:|---|---|---:|---|"]
        for a, comp in report["versus_baseline"].items():
            for key in ["mean_f1"] + [L.CLASS_NAMES[c] for c in RARE]:
                if key not in comp:
                    continue
                d = comp[key]
                label = "mean F1" if key == "mean_f1" else f"F1 {L.DISPLAY_NAMES[key]}"
                per_seed = ", ".join(f"{x:+.3f}" for x in d["diff_per_seed"])
                lines.append(f"| {a} | {label} | {d['diff_mean']:+.3f} | {per_seed} | "
                             f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] | {d['seed_noise']:.3f} | "
                             f"{'**yes**' if judge_entry(d).holds else 'no'} |")
    lines += ["", f"## Every class: F1{budget}", "",
              "| class | " + " | ".join(arms) + " |", "|---|" + "---:|" * len(arms)]
    for c in FACIAL:
        name = L.CLASS_NAMES[c]
        label = f"**{_name(c)}**" if c in RARE else _name(c)
        lines.append(f"| {label} | " + " | ".join(_pm(summary[a]["per_class"][name]["f1"], 3)
                                                 for a in arms) + " |")
    settings = report.get("settings")
    if settings:
        lines += ["", f"Settings: preset `{settings['preset']}`, overrides "
                      f"`{' '.join(settings['overrides']) or 'none'}`, prepared folder "
                      f"`{Path(settings['prepared']).name}`."]
    return "\n".join(lines) + "\n"


def curve_markdown(report: dict, protocol: str = "model_size",
                   budget_in_heading: bool = True) -> list[str]:
    """The learning curve as a table: each arm's mean-F1 difference from the baseline at each
    step budget, in bold where it holds (the same three checks)."""
    budgets = report.get("budgets") or []
    if not budgets or not report.get("versus_baseline"):
        return []
    budget = f" ({budget_title(report)})" if budget_in_heading else ""
    lines = ["", f"## Learning curve: mean F1 minus {report['baseline']} at each step budget"
                 f"{budget}", "",
             "The same runs scored on the test split after each number of training steps (the "
             "learning rate still decaying towards the run's end); **bold** where the difference "
             "holds by the three checks.", "",
             "| arm | " + " | ".join(f"{b:,} steps" for b in budgets) + " |",
             "|---|" + "---:|" * len(budgets)]
    for arm in report["versus_baseline"]:
        cells = []
        for b in budgets:
            comp = report["curves"][str(b)][protocol]["versus_baseline"].get(arm, {}).get("mean_f1")
            if comp is None:
                cells.append("n/a")
                continue
            text = f"{comp['diff_mean']:+.3f}"
            cells.append(f"**{text}**" if judge_entry(comp).holds else text)
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def plot_learning_curves(report: dict, path=None, protocol: str = "model_size"):
    """Each arm's difference from the baseline against training steps: mean F1 and the rare
    classes' F1; the line is the mean over seeds, the band the seeds' range."""
    from celebseg_utils.visualization.viz import save_figure

    plt = pyplot()
    budgets = report.get("budgets") or []
    keys = ["mean_f1"] + [L.CLASS_NAMES[c] for c in RARE]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.8), sharex=True)
    colour = _arm_colours(plt, report["arms"])  # each arm's colour as in the other figures
    arms = [a for a in report["arms"] if a != report["baseline"]]
    for ax, key in zip(axes, keys):
        for j, arm in enumerate(arms):
            xs, mean, lo, hi = [], [], [], []
            for b in budgets:
                comp = report["curves"][str(b)][protocol]["versus_baseline"].get(arm, {}).get(key)
                if comp is None or not np.isfinite(comp["diff_mean"]):
                    continue
                per_seed = [d for d in comp["diff_per_seed"] if d is not None and np.isfinite(d)]
                xs.append(b)
                mean.append(comp["diff_mean"])
                lo.append(min(per_seed))
                hi.append(max(per_seed))
            ax.plot(xs, mean, marker="o", ms=3, color=colour[arm], label=arm)
            ax.fill_between(xs, lo, hi, color=colour[arm], alpha=0.15, lw=0)
        ax.axhline(0, color="#888", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets)
        ax.set_xticklabels([f"{b:,}" for b in budgets], rotation=45, fontsize=7)
        ax.set_xlabel("training steps")
        ax.set_title("mean F1" if key == "mean_f1" else f"F1 {L.DISPLAY_NAMES[key]}")
    axes[0].set_ylabel(f"difference from {report['baseline']}")
    from matplotlib.lines import Line2D

    # one legend for the figure, every arm in it, even one a panel has no value for
    fig.legend([Line2D([], [], marker="o", ms=3, color=colour[a]) for a in arms], arms,
               loc="lower center", ncol=min(len(arms), 7), fontsize=8, frameon=False)
    fig.suptitle(figure_title(report, f"Learning curves: each loss minus {report['baseline']}; "
                                      f"band: range over seeds"))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    if path is not None:
        save_figure(fig, path)
    return fig


def faces_kind(report: dict) -> str:
    """"synthetic faces" for a study of ``celebseg_utils.demo.smoke_workspace`` data (its
    ``smoke.json`` beside the prepared folder), else "real faces" (CelebAMask-HQ).

    >>> faces_kind({"settings": {"prepared": "/nonexistent/prepared"}})
    'real faces'
    """
    prepared = (report.get("settings") or {}).get("prepared")
    if prepared and (Path(prepared).parent / "smoke.json").exists():
        return "synthetic faces"
    return "real faces"


def figure_title(report: dict, what: str) -> str:
    """A study figure's title: what it shows, then the faces, the budget and the split.

    >>> figure_title({"steps": 250, "image_size": 128, "seeds_complete": 3}, "Per-class F1")
    'Per-class F1\\nreal faces, 250 steps, 128 px, 3 complete seeds; test split'
    """
    return f"{what}\n{faces_kind(report)}, {budget_title(report)}; test split"


def _arm_colours(plt, arms) -> dict:
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {a: colours[j % len(colours)] for j, a in enumerate(arms)}


def plot_per_class_f1(report: dict, path=None):
    """Grouped bars: per-class F1 of every arm, error bars = std over seeds, rare classes
    shaded. A class an arm has no F1 for (absent from its truth and its prediction on every
    seed) gets an "x" at the bottom instead of a bar, and the legend says so."""
    from matplotlib.lines import Line2D

    from celebseg_utils.visualization.viz import save_figure

    plt = pyplot()
    arms, summary = report["arms"], report["summary"]
    colour = _arm_colours(plt, arms)
    fig, ax = plt.subplots(figsize=(14, 5.2))
    width = 0.8 / max(1, len(arms))
    x = np.arange(len(FACIAL))
    for i, c in enumerate(FACIAL):
        if c in RARE:
            ax.axvspan(i - 0.45, i + 0.45, color="#fde2c8", zorder=0)
    missing_any = False
    for j, a in enumerate(arms):
        pc = summary[a]["per_class"]
        means = np.array([np.nan if pc[L.CLASS_NAMES[c]]["f1"]["mean"] is None
                          else pc[L.CLASS_NAMES[c]]["f1"]["mean"] for c in FACIAL])
        stds = np.array([pc[L.CLASS_NAMES[c]]["f1"]["std"] or 0.0 for c in FACIAL])
        where = x - 0.4 + width * (j + 0.5)
        ax.bar(where, np.nan_to_num(means), width, yerr=stds, capsize=1.5, label=a,
               color=colour[a], error_kw={"elinewidth": 0.8})
        gone = np.isnan(means)
        if gone.any():
            missing_any = True
            ax.plot(where[gone], np.full(gone.sum(), 0.02), "x", color=colour[a], ms=6, mew=1.5)
    ax.set_xticks(x)
    ax.set_xticklabels([_name(c) for c in FACIAL], rotation=40, ha="right")
    for tick, c in zip(ax.get_xticklabels(), FACIAL):
        if c in RARE:
            tick.set_fontweight("bold")
    ax.set_ylabel("test F1 (mean ± std over seeds)")
    ax.set_ylim(0, 1)
    ax.set_title(figure_title(report, "Per-class F1 by loss; rare classes shaded and bold"))
    handles, labels = ax.get_legend_handles_labels()
    if missing_any:
        handles.append(Line2D([], [], ls="", marker="x", color="0.3", mew=1.5))
        labels.append("x: no F1 (class neither in truth nor predicted)")
    ax.legend(handles, labels, ncol=min(len(labels), 4), fontsize=8, loc="upper right")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_rare_precision_recall(report: dict, path=None):
    """One panel per rare class: each arm's precision against recall (± std over seeds).

    Every arm is in the legend. An arm that never predicted the class has a recall but no
    precision (no predicted pixel to be right or wrong): it is drawn as a hollow marker on
    the "no precision" line below the axis instead of vanishing."""
    from matplotlib.lines import Line2D

    from celebseg_utils.visualization.viz import save_figure

    plt = pyplot()
    arms, summary = report["arms"], report["summary"]
    colour = _arm_colours(plt, arms)
    fig, axes = plt.subplots(1, len(RARE), figsize=(4 * len(RARE), 4.6), sharex=True, sharey=True)
    floor = -0.08  # where an arm without precision is drawn
    for ax, c in zip(np.atleast_1d(axes), RARE):
        unmeasured = 0
        for j, a in enumerate(arms):
            s = summary[a]["per_class"][L.CLASS_NAMES[c]]
            r, p = s["recall"], s["precision"]
            if r["mean"] is None:
                continue
            if p["mean"] is None:
                # side by side, so that several arms at the same recall stay visible
                ax.plot(r["mean"] + 0.025 * unmeasured, floor, "o", mfc="none", mec=colour[a],
                        mew=1.5, ms=7, clip_on=False)
                unmeasured += 1
                continue
            ax.errorbar(r["mean"], p["mean"], xerr=r["std"], yerr=p["std"], fmt="o", capsize=2,
                        color=colour[a])
        ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8, zorder=0)
        ax.axhline(floor, color="#999", lw=0.6, ls=":")
        ax.set_title(_name(c))
        ax.set_xlabel("recall")
        ax.set_xlim(-0.02, 1)
        ax.set_ylim(floor - 0.04, 1)
    first = np.atleast_1d(axes)[0]
    first.set_ylabel("precision")
    first.text(0.98, floor, "no precision", ha="right", va="bottom", fontsize=7, color="#666")
    handles = [Line2D([], [], ls="", marker="o", color=colour[a]) for a in arms]
    labels = list(arms)
    handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", mew=1.5))
    labels.append("hollow: never predicted (no precision)")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8,
               frameon=False)
    fig.suptitle(figure_title(report, "Rare classes: precision vs recall by loss "
                                      "(mean ± std over seeds)"))
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_test_faces(out, report: dict, seed: int = 0, path=None, runs_root=None):
    """Rows: test faces; columns: photo, ground truth, then each arm's prediction (one seed).
    None when the prepared folder the study read is not on this machine."""
    from celebseg_utils.data import layout
    from celebseg_utils.visualization.viz import plot_grid, resize_label, save_figure

    prepared = Path(report["settings"]["prepared"])
    if not (prepared / "prepare.json").exists():
        return None
    arms = [a for a in report["arms"]
            if (result_dir(out, a, seed, runs_root) / "test_faces.npz").exists()]
    preds = {}
    for a in arms:
        with np.load(result_dir(out, a, seed, runs_root) / "test_faces.npz") as z:
            preds[a] = {int(k): z[k] for k in z.files}
    ids = sorted(set.intersection(*(set(p) for p in preds.values()))) if preds else []
    from PIL import Image

    rows = []
    for k in ids:
        size = next(iter(preds.values()))[k].shape[0]
        with Image.open(layout.photo_path(prepared, k)) as im:
            photo = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
        with Image.open(layout.label_path(prepared, k)) as im:
            truth = resize_label(np.asarray(im), (size, size))
        rows.append([photo, truth] + [preds[a][k] for a in arms])
    if not rows:
        return None
    fig = plot_grid(rows, ["photo", "ground truth"] + arms,
                    row_labels=[f"test face {k}" for k in ids])
    fig.suptitle(figure_title(report, f"The same test faces through each loss (seed {seed}; "
                                      f"overlay palette)"), fontsize=10)
    fig.tight_layout(w_pad=1.2, h_pad=0.6)
    if path is not None:
        save_figure(fig, path)
    return fig


def redraw_study_figures(folder, seed: int = 0) -> list[Path]:
    """Draw a written study's figures again from its ``study.json`` (after a change to the
    figures' code), where they are: ``FOLDER/figures/`` or, without it, ``FOLDER``. The
    test-face grid is redrawn only where the runs' predictions (``FOLDER/arms/``) and the
    prepared folder the study read are on this machine. Returns the files written.

    >>> redraw_study_figures("figures/study/budget250")  # doctest: +SKIP
    [PosixPath('figures/study/budget250/per_class_f1.png'), ...]
    """
    import matplotlib.pyplot as plt

    from celebseg_utils.errors import CelebsegError

    folder = Path(folder)
    if not (folder / "study.json").is_file():
        raise CelebsegError(f"{folder} has no study.json: give a folder `celebseg study` wrote")
    report = json.loads((folder / "study.json").read_text())
    figures = folder / "figures" if (folder / "figures").is_dir() else folder
    written = []
    drawn = [("per_class_f1.png", plot_per_class_f1),
             ("rare_precision_recall.png", plot_rare_precision_recall)]
    if report.get("budgets") and report.get("versus_baseline"):
        drawn.append(("learning_curves.png", plot_learning_curves))
    for name, plot in drawn:
        plt.close(plot(report, figures / name))
        written.append(figures / name)
    if (folder / "arms").is_dir():
        fig = plot_test_faces(folder, report, seed=seed, path=figures / "test_faces.png",
                              runs_root=folder)
        if fig is not None:
            plt.close(fig)
            written.append(figures / "test_faces.png")
    return written


def write_study_report(out, arms, seeds: int, runs_root=None) -> dict:
    """Write ``study.json``, ``study.md`` and ``figures/`` into ``out``; returns the report.
    ``runs_root``: where the runs' result files are (default ``out/runs``)."""
    out = Path(out)
    report = build_report(out, arms, seeds, runs_root=runs_root)
    atomic_write_json(out / "study.json", report)
    atomic_write_text(out / "study.md", study_markdown(report))
    if report["arms"]:
        import matplotlib.pyplot as plt

        figures = [plot_per_class_f1(report, out / "figures" / "per_class_f1.png"),
                   plot_rare_precision_recall(report, out / "figures" / "rare_precision_recall.png"),
                   plot_test_faces(out, report, path=out / "figures" / "test_faces.png",
                                   runs_root=runs_root)]
        if report["budgets"] and report["versus_baseline"]:
            figures.append(plot_learning_curves(report, out / "figures" / "learning_curves.png"))
        for fig in figures:
            if fig is not None:
                plt.close(fig)
    return report

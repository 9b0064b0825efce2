"""Several runs side by side: ``celebseg compare`` and notebook 07's tables.

:func:`compare_runs` reads each run's ``results.json``
(:func:`~celebseg_utils.engine.results.read_results`) and lays their per-class IoU/F1 side
by side as Markdown (:func:`comparison_table`), a grouped bar chart and JSON.

>>> print(compare_runs(["runs/ce", "runs/dice"], out="study")["table"])  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from celebseg_utils import labels as L
from celebseg_utils.engine.results import averaged_label, find_results, format_score, read_results
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_json, atomic_write_text


def run_name(run_dir) -> str:
    """The loss of a run's config.yaml when it has one (the study's column name), else its folder.

    >>> run_name("/tmp/no-such-run")
    'no-such-run'
    """
    run_dir = Path(run_dir)
    config = run_dir / "config.yaml"
    if config.exists():
        import yaml

        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError):
            data = None  # a damaged config only costs the column its nicer name
        loss = data.get("loss") if isinstance(data, dict) else None
        if isinstance(loss, dict) and loss.get("name"):
            return str(loss["name"])
    return run_dir.name


def compare_runs(run_dirs, out=None, names=None) -> dict:
    """Several runs' per-class IoU/F1 side by side: Markdown, a grouped bar chart, JSON.

    Returns ``{"runs": {name: results}, "table": markdown}``; with ``out`` (a folder) it
    writes ``comparison.md``, ``comparison.json`` and ``comparison.png`` there.

    >>> print(compare_runs(["runs/ce", "runs/dice"], out="study")["table"])  # doctest: +SKIP
    """
    from celebseg_utils.visualization import plots as report_plots

    run_dirs = [Path(r) for r in run_dirs]
    if not run_dirs:
        raise CelebsegError("compare needs at least one run directory")
    if names is not None and len(names) != len(run_dirs):
        raise CelebsegError(f"--names has {len(names)} names for {len(run_dirs)} runs")
    names = list(names) if names else [run_name(r) for r in run_dirs]
    names = [n if names.count(n) == 1 else f"{n} ({r.name})" for n, r in zip(names, run_dirs)]
    runs = {n: read_results(find_results(r)) for n, r in zip(names, run_dirs)}
    table = comparison_table(runs)
    if out is not None:
        out = Path(out)
        atomic_write_text(out / "comparison.md", table + "\n")
        atomic_write_json(out / "comparison.json", {n: {k: r[k] for k in ("miou", "mean_f1",
                          "pixel_accuracy", "per_class")} for n, r in runs.items()})
        report_plots.plot_per_class(runs, out / "comparison.png")
    return {"runs": runs, "table": table}


def _bold_best(values) -> list[str]:
    """The values formatted, the best in bold only where it beats at least one other value:
    a row where all tie (the SMOKE runs' zeros) has no bold, and neither has a single run."""
    present = [v for v in values if v is not None]
    best = max(present, default=None)
    beats = best is not None and any(v < best for v in present)
    return [("**" + format_score(v) + "**") if beats and v == best else format_score(v) for v in values]


def _class_label(name: str) -> str:
    mark = " *(rare)*" if name in L.RARE_CLASSES else ""
    return f"{L.DISPLAY_NAMES.get(name, name)}{mark}"


def comparison_table(runs: dict) -> str:
    """Classes as rows (display names, rare ones marked), runs as columns: Markdown.

    The main table has ``IoU / F1`` per run, then mIoU, mean F1 and pixel accuracy, each
    mean labelled with how many classes it averaged (see :func:`averaged_label`; when the
    runs differ, the row says it per run). The best of a row is in bold only when it beats
    at least one other run: no bold where all runs tie. A second table follows with the
    rare classes' precision / recall per run (not bolded: the two trade off).

    >>> comparison_table({"ce": ce_results, "dice": dice_results})  # doctest: +SKIP
    """
    names = list(runs)
    rows = ["| class | " + " | ".join(f"{n} IoU / F1" for n in names) + " |",
            "|---|" + "---:|" * len(names)]

    def score(run, name, key):
        return (runs[run]["per_class"].get(name) or {}).get(key)

    for name in L.CLASS_NAMES:
        iou = _bold_best([score(n, name, "iou") for n in names])
        f1 = _bold_best([score(n, name, "f1") for n in names])
        rows.append(f"| {_class_label(name)} | " + " | ".join(f"{a} / {b}" for a, b in zip(iou, f1))
                    + " |")
    for key in ("miou", "mean_f1", "pixel_accuracy"):
        cells = _bold_best([runs[n].get(key) for n in names])
        if key == "pixel_accuracy":
            label = "pixel accuracy"
        else:
            labels = [averaged_label(runs[n], key) for n in names]
            if len(set(labels)) == 1:
                label = labels[0]
            else:  # the runs averaged different classes: say it in each cell
                label = labels[0].split(" (")[0]
                cells = [f"{c} ({lab.split(' (', 1)[1]}" for c, lab in zip(cells, labels)]
        rows.append(f"| **{label}** | " + " | ".join(cells) + " |")
    rows += ["", "**Rare classes: precision / recall**", "",
             "| class | " + " | ".join(f"{n} P / R" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for name in L.RARE_CLASSES:
        rows.append(f"| {L.DISPLAY_NAMES.get(name, name)} | " + " | ".join(
            f"{format_score(score(n, name, 'precision'))} / {format_score(score(n, name, 'recall'))}"
            for n in names) + " |")
    return "\n".join(rows)

"""The files of an evaluation: ``results.json`` and its report, read back and shown.

``evaluate`` (:mod:`~celebseg_utils.engine.evaluate`) writes beside ``out``:

- ``results.json``: ``miou``, ``mean_f1``, ``pixel_accuracy``, ``per_class`` ({class name:
  {iou, f1, precision, recall, support}}), ``split``, ``num_images``, ``image_size``,
  ``model``, ``confusion_matrix``. Scores that do not exist (a class absent from both truth
  and prediction) are ``null``: strict JSON has no NaN;
- ``results.md``: the same as a Markdown table; ``confusion_matrix.png`` (row-normalised)
  and ``per_class.png`` (IoU and F1 per class, rare classes highlighted).

:func:`find_results` and :func:`read_results` read one back (``compare``, the notebooks),
:func:`results_table` and :func:`averaged_label` show it.

>>> import numpy as np
>>> from celebseg_utils.fileio import json_safe
>>> from celebseg_utils.models.metrics import scores_from_confusion
>>> results = json_safe(scores_from_confusion(np.eye(19, dtype=int)))
>>> averaged_label(results, "miou")
'mIoU (19 classes)'
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_json, atomic_write_text

#: What ``compare`` reads from each results.json.
RESULT_KEYS = ("miou", "mean_f1", "pixel_accuracy", "per_class")


def write_report(results: dict, out) -> None:
    """results.json, results.md, confusion_matrix.png and per_class.png beside ``out``.

    >>> write_report(evaluate_model(model, "prep"), "eval/results.json")  # doctest: +SKIP
    """
    from celebseg_utils.visualization import plots as report_plots

    out = Path(out)
    atomic_write_json(out, results)
    atomic_write_text(out.with_name("results.md"), results_table(results) + "\n")
    report_plots.plot_confusion_matrix(np.array(results["confusion_matrix"]),
                                       out.with_name("confusion_matrix.png"))
    report_plots.plot_per_class({"this model": results}, out.with_name("per_class.png"))


def format_score(value) -> str:
    """A score as the tables show it: three decimals, a dash for a score that does not exist.

    >>> format_score(0.61234), format_score(None)
    ('0.612', '–')
    """
    return "–" if value is None else f"{value:.3f}"


def results_table(results: dict) -> str:
    """Per-class IoU, F1, precision and recall, then the headline scores, as Markdown.

    >>> import numpy as np
    >>> from celebseg_utils.fileio import json_safe
    >>> from celebseg_utils.models.metrics import scores_from_confusion
    >>> r = json_safe(scores_from_confusion(np.eye(19, dtype=int)))
    >>> results_table(r).splitlines()[4]
    '| nose | 1.000 | 1.000 | 1.000 | 1.000 |'
    """
    rows = ["| class | IoU | F1 | precision | recall |", "|---|---:|---:|---:|---:|"]
    for name, s in results["per_class"].items():
        mark = " *(rare)*" if name in L.RARE_CLASSES else ""
        rows.append(f"| {name}{mark} | {format_score(s['iou'])} | {format_score(s['f1'])} | "
                    f"{format_score(s['precision'])} | {format_score(s['recall'])} |")
    rows += ["", f"mIoU (19 classes) **{format_score(results['miou'])}** · mean F1 (18 facial classes) "
                 f"**{format_score(results['mean_f1'])}** · pixel accuracy {format_score(results['pixel_accuracy'])}"
                 f" · {results.get('num_images', '?')} {results.get('split', '')} images"]
    return "\n".join(rows)


def find_results(run_dir) -> Path:
    """A run's ``results.json``: in the folder itself, or in ``eval_test``/``evaluation``.

    >>> find_results("runs/sparse_ce")  # doctest: +SKIP
    PosixPath('runs/sparse_ce/eval_test/results.json')
    """
    run_dir = Path(run_dir)
    if run_dir.is_file() and run_dir.suffix == ".json":
        return run_dir
    for candidate in (run_dir / "results.json", run_dir / "eval_test" / "results.json",
                      run_dir / "evaluation" / "results.json"):
        if candidate.exists():
            return candidate
    raise CelebsegError(f"no results.json in {run_dir}: run `celebseg evaluate --model "
                        f"{run_dir / 'final.keras'} --prepared DIR` first")


def read_results(path) -> dict:
    """A results.json written by ``evaluate``, checked to hold :data:`RESULT_KEYS`.

    >>> read_results("runs/sparse_ce/eval_test/results.json")["miou"]  # doctest: +SKIP
    0.61
    """
    path = Path(path)
    redo = "re-run `celebseg evaluate` to write it again"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CelebsegError(f"{path} is not valid JSON ({exc}): {redo}") from None
    missing = [k for k in RESULT_KEYS if not isinstance(data, dict) or k not in data]
    if missing or not isinstance(data["per_class"], dict):
        raise CelebsegError(f"{path} is not a celebseg results file (missing "
                            f"{', '.join(missing) or 'per_class scores'}): {redo}")
    return data


def averaged_label(results: dict, key: str) -> str:
    """The name of a headline mean with how many classes it averaged: ``"mIoU (19 classes)"``,
    ``"mIoU (17 of 19 classes)"``, ``"mean F1 (18 facial classes)"``, ``"mean F1 (16 of 18
    facial classes)"``.

    A class absent from both truth and prediction has no score (None) and is left out of the
    mean: the count is that of the classes whose ``iou`` (mIoU, all 19 classes) or ``f1``
    (mean F1, the 18 facial classes: all but background) is not None.

    >>> scores = {n: {"iou": 0.5, "f1": 0.6} for n in L.CLASS_NAMES}
    >>> averaged_label({"per_class": scores}, "miou")
    'mIoU (19 classes)'
    >>> scores["hat"] = scores["ear_r"] = {"iou": None, "f1": None}
    >>> averaged_label({"per_class": scores}, "miou"), averaged_label({"per_class": scores}, "mean_f1")
    ('mIoU (17 of 19 classes)', 'mean F1 (16 of 18 facial classes)')
    """
    per_class = results.get("per_class") or {}
    if key == "miou":
        label, score, classes, kind = "mIoU", "iou", L.CLASS_NAMES, "classes"
    elif key == "mean_f1":
        label, score, kind = "mean F1", "f1", "facial classes"
        classes = [L.CLASS_NAMES[i] for i in L.FACIAL_CLASS_IDS]
    else:
        raise ValueError(f"no class count for {key!r}: only 'miou' and 'mean_f1'")
    count = sum((per_class.get(n) or {}).get(score) is not None for n in classes)
    total = len(classes)
    return f"{label} ({total} {kind})" if count == total else f"{label} ({count} of {total} {kind})"

"""Evaluate a model on a split and compare runs: the numbers of the loss study.

``evaluate_model`` makes one pass over a split and accumulates **one** confusion matrix
(never a per-batch average), then derives the scores with
:func:`celebseg_utils.models.metrics.scores_from_confusion`. It writes beside ``out``:

- ``results.json``: ``miou``, ``mean_f1``, ``pixel_accuracy``, ``per_class`` ({class name:
  {iou, f1, precision, recall, support}}), ``split``, ``num_images``, ``image_size``,
  ``model``, ``confusion_matrix``. Scores that do not exist (a class absent from both truth
  and prediction) are ``null``: strict JSON has no NaN;
- ``results.md``: the same as a Markdown table; ``confusion_matrix.png`` (row-normalised)
  and ``per_class.png`` (IoU and F1 per class, rare classes highlighted).

For a model file it also writes ``per_image_<split>.json`` beside the model (its run): each
test image's per-class counts and scores, which the viewer sorts worst-first
(:meth:`~celebseg_utils.engine.scoring.SplitScores.save_per_image`).

The model is evaluated at its own input size (labels resized with nearest neighbour); for
the published protocol train and evaluate at 512, the label maps' own size.

>>> from celebseg_utils.engine.evaluate import evaluate_model
>>> results = evaluate_model("runs/demo/run/final.keras", "runs/demo/data/prepared")  # doctest: +SKIP
>>> sorted(results)[:3]  # doctest: +SKIP
['confusion_matrix', 'image_size', 'mean_f1']
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.engine import inference
# the one loader and input size, under the names evaluate's callers know
from celebseg_utils.engine.inference import input_size as model_image_size  # noqa: F401
from celebseg_utils.engine.inference import load_model as load_model_checked  # noqa: F401
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_json, atomic_write_text, json_safe


def evaluate_model(model, prepared_dir, split: str = "test", out=None, batch_size: int = 8,
                   progress: bool = True, protocol: str = "model_size") -> dict:
    """Scores of ``model`` (a keras.Model or a ``.keras`` path) on one split; see module doc.

    ``protocol``: "model_size" (argmax at the model's input size) or "label_size" (logits
    upsampled to the labels' own size first: the published tables' protocol); see
    :mod:`~celebseg_utils.engine.scoring`.

    ``out`` is the ``results.json`` path or the folder to write it in (default
    ``<model dir>/eval_<split>/results.json`` for a path, no files for an in-memory model).

    >>> evaluate_model(model, "prep", split="val", out="eval/results.json")["miou"]  # doctest: +SKIP
    0.61
    """
    from celebseg_utils.engine.scoring import save_run_per_image, score_split

    if batch_size < 1:
        raise CelebsegError(f"--batch-size must be at least 1 (got {batch_size})")
    model_path = inference.model_file(model) if isinstance(model, (str, Path)) else None
    out = results_path(model_path, split, out)
    model = inference.load_model(model_path or model)
    info = layout.read_prepare_info(Path(prepared_dir))
    ids = layout.read_split(Path(prepared_dir), split)
    if not ids:
        raise CelebsegError(f"the {split} split of {prepared_dir} is empty: nothing to evaluate")
    size = inference.input_size(model, default=info.get("label_size"))
    scored = score_split(model, prepared_dir, split, batch_size=batch_size, protocols=(protocol,),
                         progress=progress, ids=ids, image_size=size)[protocol]
    results = scored.results(model=str(model_path) if model_path else model.name)
    if model_path is not None and "://" not in str(prepared_dir):
        # the counts are at hand: the viewer's worst-first order needs no second pass
        save_run_per_image(scored, model_path, prepared_dir)
    if out is not None:
        write_report(results, out)
    return results


def results_path(model_file, split: str, out=None):
    """Where ``evaluate`` writes results.json: ``out`` itself when it names a ``.json`` file,
    else ``out/results.json`` (a folder), else ``eval_<split>/`` beside the model file, else
    nowhere (None).

    >>> results_path(Path("runs/a/final.keras"), "val").as_posix()
    'runs/a/eval_val/results.json'
    >>> results_path(None, "test", "my eval").as_posix()
    'my eval/results.json'
    """
    if out is not None:
        out = Path(out)
        is_file = out.suffix.lower() == ".json" and not out.is_dir()
        return out if is_file else out / "results.json"
    if model_file is not None:
        return Path(model_file).parent / f"eval_{split}" / "results.json"
    return None


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


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def results_table(results: dict) -> str:
    """Per-class IoU, F1, precision and recall, then the headline scores, as Markdown.

    >>> import numpy as np
    >>> from celebseg_utils.models.metrics import scores_from_confusion
    >>> r = json_safe(scores_from_confusion(np.eye(19, dtype=int)))
    >>> results_table(r).splitlines()[4]
    '| nose | 1.000 | 1.000 | 1.000 | 1.000 |'
    """
    rows = ["| class | IoU | F1 | precision | recall |", "|---|---:|---:|---:|---:|"]
    for name, s in results["per_class"].items():
        mark = " *(rare)*" if name in L.RARE_CLASSES else ""
        rows.append(f"| {name}{mark} | {_fmt(s['iou'])} | {_fmt(s['f1'])} | "
                    f"{_fmt(s['precision'])} | {_fmt(s['recall'])} |")
    rows += ["", f"mIoU (19 classes) **{_fmt(results['miou'])}** · mean F1 (18 facial classes) "
                 f"**{_fmt(results['mean_f1'])}** · pixel accuracy {_fmt(results['pixel_accuracy'])}"
                 f" · {results.get('num_images', '?')} {results.get('split', '')} images"]
    return "\n".join(rows)


# --------------------------------------------------------------------------- compare

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


#: What ``compare`` reads from each results.json.
RESULT_KEYS = ("miou", "mean_f1", "pixel_accuracy", "per_class")


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


def _bold_best(values) -> list[str]:
    """The values formatted, the best in bold only where it beats at least one other value:
    a row where all tie (the SMOKE runs' zeros) has no bold, and neither has a single run."""
    present = [v for v in values if v is not None]
    best = max(present, default=None)
    beats = best is not None and any(v < best for v in present)
    return [("**" + _fmt(v) + "**") if beats and v == best else _fmt(v) for v in values]


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
            f"{_fmt(score(n, name, 'precision'))} / {_fmt(score(n, name, 'recall'))}"
            for n in names) + " |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- CLI

def add_evaluate_arguments(parser) -> None:
    """Options of ``celebseg evaluate``.

    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_evaluate_arguments(p)
    >>> p.parse_args(["--model", "m.keras", "--prepared", "prep"]).split
    'test'
    """
    parser.add_argument("--model", required=True, help=".keras model (or a run directory)")
    parser.add_argument("--prepared", required=True, help="prepared folder (celebseg prepare)")
    parser.add_argument("--split", default="test", choices=layout.SPLITS)
    parser.add_argument("--out", default=None,
                        help="results.json path, or a folder to write it in (default: beside "
                             "the model, eval_<split>/)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--protocol", default="model_size", choices=("model_size", "label_size"),
                        help="model_size: argmax at the model's input size, labels resized to it "
                             "(default); label_size: logits upsampled to the labels' own size "
                             "first, as published face-parsing tables score")


def check_results_out(out) -> None:
    """Refuse, before any work, an ``--out`` where the report cannot be written: a file in
    place of its folder (``--out notes.txt`` names the folder ``notes.txt/``), or a folder
    in place of ``results.json``.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"; _ = f.write_text("x")
    >>> check_results_out(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    celebseg_utils.errors.CelebsegError: --out .../notes.txt: .../notes.txt is a file, not a folder; ...
    """
    path = results_path(None, "test", out)
    if path.is_dir():
        raise CelebsegError(f"--out {out}: {path} is a folder, not a file; choose another --out")
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise CelebsegError(f"--out {out}: {folder} is a file, not a folder; evaluate writes "
                                    f"results.json, results.md and two figures into the folder "
                                    f"--out names (or next to --out NAME.json); choose another "
                                    f"--out")
            break


def run_evaluate(args) -> int:
    """``celebseg evaluate``: writes the report and prints its table.

    >>> run_evaluate(argparse.Namespace(model="m.keras", prepared="prep", split="test",
    ...                                 out=None, batch_size=8))  # doctest: +SKIP
    0
    """
    if args.out is not None:
        check_results_out(args.out)
    results = evaluate_model(args.model, args.prepared, split=args.split, out=args.out,
                             batch_size=args.batch_size,
                             protocol=getattr(args, "protocol", "model_size"))
    print(results_table(results))
    print(f"results: {results_path(results['model'], args.split, args.out)}")
    return 0


def add_compare_arguments(parser) -> None:
    """Options of ``celebseg compare``.

    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_compare_arguments(p)
    >>> p.parse_args(["runs/a", "runs/b", "--names", "ce", "dice"]).names
    ['ce', 'dice']
    """
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders with results.json")
    parser.add_argument("--out", default=None, help="folder for comparison.md/.json/.png")
    parser.add_argument("--names", nargs="+", default=None, help="column names, one per run")


def run_compare(args) -> int:
    """``celebseg compare``: prints the side-by-side table (and writes it with ``--out``).

    >>> run_compare(argparse.Namespace(runs=["runs/a", "runs/b"], out="study", names=None))  # doctest: +SKIP
    0
    """
    result = compare_runs(args.runs, out=args.out, names=args.names)
    print(result["table"])
    if args.out:
        print(f"comparison: {Path(args.out) / 'comparison.md'}")
    return 0

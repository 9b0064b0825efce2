"""Evaluate a model on a split: the numbers of the loss study.

``evaluate_model`` makes one pass over a split through the one evaluation loop
(:func:`~celebseg_utils.engine.scoring.score_split`), which accumulates **one** confusion
matrix (never a per-batch average); the scores come from
:func:`celebseg_utils.models.metrics.scores_from_confusion`. With ``out`` it writes the
report that :mod:`~celebseg_utils.engine.results` describes (``results.json``,
``results.md``, two figures). Comparing runs is :mod:`~celebseg_utils.engine.compare`, the
command line :mod:`~celebseg_utils.engine.evaluate_cli`.

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

from pathlib import Path

from celebseg_utils.data import layout
from celebseg_utils.engine import inference
from celebseg_utils.engine.results import write_report
from celebseg_utils.errors import CelebsegError


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

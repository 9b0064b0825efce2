"""The viewer's per-image scores: read from a run's cache, or scored once and cached.

A model's per-image, per-class scores over a split come from the one evaluation loop
(:func:`celebseg_utils.engine.scoring.score_split`): ``celebseg evaluate`` and train's test
pass write them to ``RUN/per_image_<split>.json``; a viewer that finds none (or one made for
another model file or other ids) scores the split once, with a progress bar, and writes the
file for next time (:func:`model_scores`). Orders over a split (:func:`worst_first`,
:func:`largest_gain`) and the class filter (:func:`with_classes`) work on these arrays.

>>> import numpy as np
>>> from celebseg_utils.interface.viewer_scores import worst_first
>>> worst_first([10, 11, 12], np.array([0.5, np.nan, 0.2]))  # NaN (nothing to score) last
[12, 10, 11]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.errors import CelebsegError

#: The per-image scores the viewer sorts by: key -> words.
SCORE_KEYS = {"mean_f1": "mean F1", "miou": "mean IoU"}


def face_scores(truth: np.ndarray, prediction: np.ndarray) -> dict:
    """Per-class ``f1`` and ``iou`` (C,) of one face (NaN: class in neither map), and its
    ``mean_f1``/``miou`` over the classes in either: the numbers of
    :func:`celebseg_utils.engine.scoring.per_image_scores` for one pair of maps.

    >>> s = face_scores(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 1]]))
    >>> round(float(s["iou"][0]), 3), round(float(s["f1"][1]), 3), round(float(s["miou"]), 4)
    (0.5, 0.8, 0.5833)
    """
    from celebseg_utils.engine.scoring import per_image_scores

    # numpy only (bincount), not models.metrics: drawing a face must not import TensorFlow
    t = np.asarray(truth).ravel().astype(np.intp)
    p = np.asarray(prediction).ravel().astype(np.intp)
    if t.shape != p.shape:
        raise ValueError(f"truth and prediction differ in size: {t.size} vs {p.size}")
    c = L.NUM_CLASSES
    tp = np.bincount(t[t == p], minlength=c)[:c]
    area_t, area_p = np.bincount(t, minlength=c)[:c], np.bincount(p, minlength=c)[:c]
    got = per_image_scores(tp[None], (area_p - tp)[None], (area_t - tp)[None])
    return {k: v[0] for k, v in got.items()}


def worst_first(ids, values) -> list[int]:
    """``ids`` from the lowest ``values`` up; NaN (an image with nothing to score) last,
    ties in the given order.

    >>> worst_first([1, 2, 3], [0.9, 0.1, 0.9])
    [2, 1, 3]
    """
    values = np.asarray(values, dtype=np.float64)
    key = np.where(np.isnan(values), np.inf, values)
    return [int(ids[i]) for i in np.argsort(key, kind="stable")]


def largest_gain(ids, ahead, behind) -> list[int]:
    """``ids`` where ``ahead`` beats ``behind`` most first (``ahead - behind`` descending);
    NaN differences last.

    >>> largest_gain([1, 2, 3], [0.5, 0.9, 0.4], [0.5, 0.3, 0.6])
    [2, 1, 3]
    """
    gain = np.asarray(ahead, np.float64) - np.asarray(behind, np.float64)
    return worst_first(ids, -gain)


def with_classes(ids, present: dict, classes) -> list[int]:
    """The ``ids`` whose truth holds every class in ``classes``; ``present``: id -> (C,) bool.

    >>> with_classes([1, 2], {1: np.eye(19, dtype=bool)[3], 2: np.eye(19, dtype=bool)[4]}, [4])
    [2]
    """
    classes = list(classes)
    return [int(k) for k in ids if all(present[int(k)][c] for c in classes)]


def truth_presence(prepared: Path, ids, progress: bool = False) -> dict:
    """id -> (C,) bool: the classes in each image's label map (read from its PNG)."""
    from PIL import Image
    from tqdm.auto import tqdm

    from celebseg_utils.data import layout

    found = {}
    for k in tqdm(ids, desc="classes per face", unit="img", disable=not progress):
        with Image.open(layout.label_path(prepared, k)) as im:
            counts = np.bincount(np.asarray(im).ravel(), minlength=L.NUM_CLASSES)
        found[int(k)] = counts[:L.NUM_CLASSES] > 0
    return found


def _fits(cached: dict, stamp: dict, ids) -> bool:
    """Whether a cache file was made for this model file and these ids."""
    same_model = all(cached.get(k) == v for k, v in stamp.items())
    return same_model and [int(k) for k in cached["ids"]] == [int(k) for k in ids]


def model_scores(model, model_file, prepared, split: str, ids, cache_dir=None,
                 progress: bool = True, batch_size: int = 8) -> dict:
    """Per-image scores of one model over ``split`` (:func:`~celebseg_utils.engine.scoring.read_per_image`'s
    keys, rows in the order of ``ids``), from ``per_image_<split>.json`` in ``cache_dir``
    (default: beside ``model_file``, the run) when it was made for this model file and these
    ids; else scored once through the evaluation loop and written there (a folder that cannot
    be written gives a warning line). ``model_file`` None (an in-memory model): scored, not
    cached.

    >>> model_scores(model, "runs/ce/best.keras", "prep", "test", ids)["mean_f1"].shape  # doctest: +SKIP
    (400,)
    """
    import sys

    from celebseg_utils.engine import scoring

    stamp = scoring.model_stamp(model_file) if model_file is not None else None
    path = None
    if model_file is not None:
        folder = Path(cache_dir) if cache_dir is not None else Path(model_file).parent
        path = scoring.per_image_path(folder, split)
        if path.is_file():
            try:
                cached = scoring.read_per_image(path)
            except CelebsegError as exc:
                print(f"warning: {exc}; scoring again", file=sys.stderr)
            else:
                if _fits(cached, stamp, ids):
                    return cached
    scored = scoring.score_split(model, prepared, split, batch_size=batch_size, ids=list(ids),
                                 progress=progress)["model_size"]
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            scored.save_per_image(path, **stamp, prepared=str(Path(prepared).resolve()))
        except OSError as exc:
            print(f"warning: per-image scores not cached at {path}: {exc}", file=sys.stderr)
    return {"ids": np.asarray(scored.ids), "tp": scored.tp, "fp": scored.fp, "fn": scored.fn,
            "protocol": scored.protocol, "image_size": scored.image_size, **scored.per_image()}

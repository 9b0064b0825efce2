"""The one evaluation loop: a split streamed through a model into confusion counts.

``train``'s test pass, ``celebseg evaluate``, the loss study and its learning curves all
score through :func:`score_split`, so their numbers agree by construction. One forward pass
gives, for each requested *protocol*:

- ``"model_size"``: argmax at the model's input size, against the label map resized to it
  with nearest neighbour (what ``evaluate`` has always reported);
- ``"label_size"``: the logits upsampled bilinearly to the label map's own size (512 px for
  CelebAMask-HQ) before the argmax, against the label as stored. This is how the published
  face-parsing tables score (one confusion matrix summed over the test set at the labels'
  resolution, e.g. SegFace, FaRL), so only this protocol's numbers compare with them.

Each protocol's :class:`SplitScores` holds the summed confusion matrix and per-image
``tp``/``fp``/``fn`` per class (what the study's bootstrap resamples), and writes the
``results.json`` schema (:meth:`SplitScores.results`) and the per-image scores
``RUN/per_image_<split>.json`` (:meth:`SplitScores.save_per_image`, read by
:func:`read_per_image`): ``celebseg evaluate`` and train's test pass write that file from
the counts they already hold, so the viewer sorts faces worst-first with no second pass.

>>> import numpy as np, keras
>>> from celebseg_utils.models.deeplab import build_model
>>> scored = score_split(build_model(backbone="mobilenet_v3_large", image_size=64),
...                      "prep", "test", protocols=("model_size", "label_size"))  # doctest: +SKIP
>>> scored["label_size"].results()["mean_f1"]  # doctest: +SKIP
0.41
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import json_safe

PROTOCOLS = ("model_size", "label_size")
#: What each protocol means, for reports.
PROTOCOL_TEXT = {
    "model_size": "argmax at the model's input size, labels resized to it (nearest)",
    "label_size": "logits upsampled (bilinear) to the labels' own size before the argmax, "
                  "one confusion matrix over the split (the published tables' protocol)",
}


@dataclass
class SplitScores:
    """One protocol's counts over a split: ``confusion`` (C, C) and per-image ``tp``, ``fp``,
    ``fn`` (N, C), in the split's order (``ids``), at ``image_size``."""

    protocol: str
    split: str
    ids: np.ndarray
    confusion: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    image_size: int
    predictions: dict = field(default_factory=dict)

    def results(self, **extra) -> dict:
        """The ``results.json`` schema (strict JSON: NaN -> null) plus ``extra`` keys.

        >>> c = np.eye(19, dtype=np.int64)
        >>> s = SplitScores("model_size", "test", np.array([0]), c, np.ones((1, 19), np.int64),
        ...                 np.zeros((1, 19), np.int64), np.zeros((1, 19), np.int64), 64)
        >>> r = s.results(); r["mean_f1"], r["num_images"], r["protocol"]
        (1.0, 1, 'model_size')
        """
        from celebseg_utils.models.metrics import scores_from_confusion

        return json_safe({**scores_from_confusion(self.confusion, class_names=L.CLASS_NAMES),
                          "split": self.split, "num_images": int(len(self.ids)),
                          "image_size": int(self.image_size), "protocol": self.protocol,
                          **extra, "confusion_matrix": self.confusion.tolist()})

    def counts(self) -> dict:
        """``ids``, ``tp``, ``fp``, ``fn`` as arrays (the study's ``*.npz`` keys)."""
        return {"ids": np.asarray(self.ids), "tp": self.tp, "fp": self.fp, "fn": self.fn}

    def save_counts(self, path) -> Path:
        """The per-image counts as a compressed ``.npz`` (int32: a 512 px map has 262,144
        pixels), written atomically."""
        from celebseg_utils.fileio import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, ids=np.asarray(self.ids), tp=self.tp.astype(np.int32),
                                    fp=self.fp.astype(np.int32), fn=self.fn.astype(np.int32))
        return path


    def per_image(self) -> dict:
        """Per-image, per-class F1 and IoU (N, C), NaN where a class is in neither the truth
        nor the prediction, and each image's ``mean_f1`` / ``miou`` over the classes present
        in either (N,); ``present`` (N, C) bool: the class is in the image's truth.

        >>> tp = np.zeros((1, 19), np.int64); fp = tp.copy(); fn = tp.copy()
        >>> tp[0, :2], fp[0, 1], fn[0, 2] = (3, 1), 2, 4  # F1 = 2tp / (2tp + fp + fn)
        >>> s = SplitScores("model_size", "test", np.array([5]), np.eye(19), tp, fp, fn, 64)
        >>> d = s.per_image(); [round(float(x), 3) for x in d["f1"][0, :3]], round(float(d["mean_f1"][0]), 3)
        ([1.0, 0.5, 0.0], 0.5)
        """
        return per_image_scores(self.tp, self.fp, self.fn)

    def save_per_image(self, path, **extra) -> Path:
        """``per_image_<split>.json``: ids, per-image tp/fp/fn per class and each image's
        mean F1 and mIoU (strict JSON, atomic), plus ``extra`` keys (the model file, its
        size and time, so a reader can tell a stale file).

        >>> scored["model_size"].save_per_image("runs/ce/per_image_test.json")  # doctest: +SKIP
        PosixPath('runs/ce/per_image_test.json')
        """
        from celebseg_utils.fileio import atomic_write_json

        scores = self.per_image()
        path = Path(path)
        atomic_write_json(path, json_safe({
            "format": PER_IMAGE_FORMAT, "split": self.split, "protocol": self.protocol,
            "image_size": int(self.image_size), "classes": list(L.CLASS_NAMES), **extra,
            "ids": [int(k) for k in self.ids],
            "mean_f1": scores["mean_f1"].tolist(), "miou": scores["miou"].tolist(),
            "tp": self.tp.tolist(), "fp": self.fp.tolist(), "fn": self.fn.tolist()}))
        return path


#: Version of the ``per_image_<split>.json`` layout (:meth:`SplitScores.save_per_image`).
PER_IMAGE_FORMAT = 1


def per_image_path(run_dir, split: str) -> Path:
    """Where a run keeps its per-image scores of ``split``.

    >>> per_image_path("runs/ce", "test")
    PosixPath('runs/ce/per_image_test.json')
    """
    return Path(run_dir) / f"per_image_{split}.json"


def model_stamp(model_file) -> dict:
    """What identifies a model file for a cache of its scores: its resolved path, size and
    modification time (a SavedModel folder: its ``saved_model.pb``'s).

    >>> sorted(model_stamp(__file__))
    ['model', 'model_bytes', 'model_mtime_ns']
    """
    path = Path(model_file).resolve()
    stat = (path / "saved_model.pb" if path.is_dir() else path).stat()
    return {"model": str(path), "model_bytes": int(stat.st_size),
            "model_mtime_ns": int(stat.st_mtime_ns)}


def save_run_per_image(scores: "SplitScores", model_file, prepared) -> Path | None:
    """Write ``per_image_<split>.json`` beside ``model_file`` (its run), stamped with the
    model (:func:`model_stamp`) and the prepared folder; a folder that cannot be written
    gives a ``warning:`` line and None, since the scores themselves are already reported.

    >>> save_run_per_image(scored["model_size"], "runs/ce/best.keras", "prep")  # doctest: +SKIP
    PosixPath('runs/ce/per_image_test.json')
    """
    import sys

    path = per_image_path(Path(model_file).parent, scores.split)
    try:
        return scores.save_per_image(path, **model_stamp(model_file),
                                     prepared=str(Path(prepared).resolve()))
    except (OSError, CelebsegError) as exc:
        print(f"warning: per-image scores not saved to {path}: {exc}", file=sys.stderr)
        return None


def per_image_scores(tp, fp, fn) -> dict:
    """Per-image, per-class ``f1`` and ``iou`` (N, C) from counts (NaN: class in neither
    map), ``mean_f1`` and ``miou`` (N,) over the classes present in either, and
    ``present`` (N, C): the class is in the truth (tp + fn > 0).

    >>> d = per_image_scores([[2, 0]], [[1, 0]], [[1, 0]])
    >>> d["f1"].tolist(), float(d["iou"][0, 0]), d["mean_f1"].tolist()
    ([[0.6666666666666666, nan]], 0.5, [0.6666666666666666])
    """
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(union > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(union > 0, tp / union, np.nan)
    with warnings.catch_warnings():  # an image with no class at all: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_f1, miou = np.nanmean(f1, axis=1), np.nanmean(iou, axis=1)
    return {"f1": f1, "iou": iou, "mean_f1": mean_f1, "miou": miou, "present": (tp + fn) > 0}


def read_per_image(path) -> dict:
    """A ``per_image_<split>.json`` as arrays: ``ids`` (N,), ``tp``/``fp``/``fn`` (N, C),
    the scores of :func:`per_image_scores`, and the file's other keys as they are.
    CelebsegError naming the file when it is not one.

    >>> read_per_image("runs/ce/per_image_test.json")["mean_f1"].shape  # doctest: +SKIP
    (400,)
    """
    import json

    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        ids = np.asarray(raw["ids"], dtype=np.int64)
        counts = {k: np.asarray(raw[k], dtype=np.int64).reshape(len(ids), L.NUM_CLASSES)
                  for k in ("tp", "fp", "fn")}
        if raw.get("format") != PER_IMAGE_FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, not {PER_IMAGE_FORMAT}")
    except FileNotFoundError:
        raise CelebsegError(f"no per-image scores at {path}: run `celebseg evaluate` on the "
                            f"run, or let the viewer compute them") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CelebsegError(f"{path} is not a per-image score file ({exc}): delete it and "
                            f"run `celebseg evaluate` again") from None
    return {**raw, "ids": ids, **counts, **per_image_scores(**counts)}


def _read_label(prepared: Path, k: int) -> np.ndarray:
    from PIL import Image

    from celebseg_utils.data import layout

    with Image.open(layout.label_path(prepared, k)) as im:
        return np.asarray(im)


def score_split(model, prepared, split: str = "test", batch_size: int = 8,
                protocols=("model_size",), keep_ids=(), progress: bool = False,
                ids=None, image_size: int | None = None) -> dict:
    """``{protocol: SplitScores}`` of ``model`` (a keras.Model) over ``split``, one pass.

    ``keep_ids``: image ids whose predicted label maps (uint8, at each protocol's size) are
    kept in ``SplitScores.predictions``. ``ids``: the split's ids when the caller has read
    them (else read here). ``image_size``: the input size for a model built without one
    (default: the model's own). The label-size protocol reads the prepared label PNGs.
    """
    from tqdm.auto import tqdm

    from celebseg_utils.data.pipeline import make_dataset
    from celebseg_utils.engine.inference import input_size

    ids = _ids_to_score(prepared, split, protocols, batch_size, ids)
    size = input_size(model) if image_size is None else int(image_size)
    dataset = make_dataset(str(prepared), split, image_size=size, batch_size=batch_size)
    n = len(ids)
    state = {p: _no_counts(n, size) for p in protocols}
    keep = set(int(k) for k in keep_ids)
    bar = tqdm(total=n, desc=f"evaluate {split}", unit="img", disable=not progress)
    i = 0
    for images, truth in dataset:
        logits = model.predict_on_batch(images)
        pred_small = np.argmax(logits, axis=-1)
        truth_small = truth.numpy()[..., 0]
        for j in range(pred_small.shape[0]):
            if i + j >= n:
                raise CelebsegError(f"the {split} split's dataset gave more images than its "
                                    f"{n} ids: prepare the folder again")
            k = int(ids[i + j])
            for p in protocols:
                _add_image(state[p], i + j, k, p, prepared, logits[j], truth_small[j],
                           pred_small[j], k in keep)
        i += pred_small.shape[0]
        bar.update(pred_small.shape[0])
    bar.close()
    if i != n:
        raise CelebsegError(f"the {split} split lists {n} images but its dataset gave {i}: "
                            f"prepare the folder again")
    return {p: SplitScores(p, split, np.asarray(ids), s["cm"], s["tp"], s["fp"], s["fn"],
                           s["size"], s["kept"]) for p, s in state.items()}


def _ids_to_score(prepared, split: str, protocols, batch_size: int, ids) -> list:
    """The ids :func:`score_split` scores (``ids`` when the caller read them, else the
    split file's), once its arguments are checked: known protocols, a batch size, a local
    folder for the label-size protocol, and a split that is not empty."""
    from celebseg_utils.data import layout

    for p in protocols:
        if p not in PROTOCOLS:
            raise CelebsegError(f"unknown scoring protocol {p!r}; use one of {', '.join(PROTOCOLS)}")
    if batch_size < 1:
        raise CelebsegError(f"--batch-size must be at least 1 (got {batch_size})")
    prepared_text = str(prepared)
    if "label_size" in protocols and "://" in prepared_text:
        raise CelebsegError(f"{prepared}: the label-size protocol reads label PNGs from a local "
                            f"prepared folder")
    if ids is None:
        ids = layout.read_split(prepared, split)
    ids = list(ids)
    if not ids:
        raise CelebsegError(f"the {split} split of {prepared} is empty: nothing to evaluate")
    return ids


def _no_counts(n: int, size: int) -> dict:
    """One protocol's running counts before any of the split's ``n`` images."""
    c = L.NUM_CLASSES
    return {"cm": np.zeros((c, c), np.int64), "tp": np.zeros((n, c), np.int64),
            "fp": np.zeros((n, c), np.int64), "fn": np.zeros((n, c), np.int64),
            "kept": {}, "size": size}


def _add_image(counts: dict, row: int, k: int, protocol: str, prepared, logits, truth_small,
               pred_small, keep: bool) -> None:
    """Add image ``k`` (row ``row`` of the split) to one protocol's running ``counts``:
    its confusion matrix, its per-class tp/fp/fn and, when ``keep``, its predicted map.
    The label-size protocol scores against the label PNG at its own size."""
    from celebseg_utils.models.metrics import confusion_matrix_np

    if protocol == "model_size":
        t, pred = truth_small, pred_small
    else:
        t = _read_label(Path(prepared), k)
        pred = _upsampled_argmax(logits, t.shape[:2])
        counts["size"] = int(t.shape[0])
    m = confusion_matrix_np(t, pred)
    counts["cm"] += m
    diag = np.diag(m)
    counts["tp"][row], counts["fp"][row], counts["fn"][row] = (
        diag, m.sum(axis=0) - diag, m.sum(axis=1) - diag)
    if keep:
        counts["kept"][k] = pred.astype(np.uint8)


def _upsampled_argmax(logits: np.ndarray, shape) -> np.ndarray:
    import tensorflow as tf

    if tuple(logits.shape[:2]) == tuple(shape):
        return np.argmax(logits, axis=-1)
    up = tf.image.resize(logits[None].astype(np.float32), shape, method="bilinear")
    return np.argmax(up[0].numpy(), axis=-1)

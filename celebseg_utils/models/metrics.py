"""Face-parsing metrics from one confusion matrix accumulated over a whole split.

The matrix ``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p`` (rows: ground
truth, columns: prediction, as scikit-learn). From it, per class ``c`` (TP = cm[c, c],
FP = column sum - TP, FN = row sum - TP):

- IoU = TP / (TP + FP + FN); F1 = 2TP / (2TP + FP + FN); precision = TP / (TP + FP);
  recall = TP / (TP + FN);
- **a class absent from both the ground truth and the prediction has no score: NaN**, and
  it is left out of every mean (it was neither found nor missed). A class absent from the
  ground truth but predicted scores IoU = F1 = 0 (all false positives); precision and
  recall are NaN where their own denominator is 0;
- ``miou``: mean IoU over the 19 classes; ``mean_f1``: mean F1 over the 18 facial classes
  (background left out, the face-parsing convention); ``pixel_accuracy``: trace / total.

``ConfusionMatrix`` is the streaming Keras metric (on logits; works in ``fit``/``evaluate``
and under ``tf.distribute``: its float64 variable sums across replicas); ``MeanIoU`` its
scalar view for ``val_miou``; ``confusion_matrix_np`` the numpy twin.

>>> import numpy as np
>>> from celebseg_utils.models.metrics import confusion_matrix_np, scores_from_confusion
>>> cm = confusion_matrix_np(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), num_classes=3)
>>> cm.tolist()
[[1, 1, 0], [0, 2, 0], [0, 0, 0]]
>>> s = scores_from_confusion(cm)
>>> round(s["miou"], 4), s["per_class"]["class_2"]["iou"]  # (1/2 + 2/3) / 2; class 2 absent
(0.5833, nan)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from celebseg_utils.labels import BACKGROUND_ID, CLASS_NAMES, NUM_CLASSES

_register = keras.saving.register_keras_serializable(package="celebseg")


def confusion_matrix_np(y_true, y_pred_labels, num_classes: int = NUM_CLASSES,
                        sample_weight=None) -> np.ndarray:
    """(C, C) confusion matrix (rows truth, columns prediction) of integer label arrays.

    Any shapes with the same number of elements (a trailing axis of 1 is fine). Labels
    outside [0, C) in ``y_true`` (e.g. 255 = ignore) are skipped. Returns int64 counts, or
    float64 sums of ``sample_weight`` when given.

    >>> confusion_matrix_np([1, 1, 255], [1, 0, 0], num_classes=2).tolist()
    [[0, 0], [1, 1]]
    """
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred_labels).reshape(-1).astype(np.int64)
    if t.size != p.size:
        raise ValueError(f"y_true has {t.size} labels, y_pred_labels {p.size}")
    keep = (t >= 0) & (t < num_classes)
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)[keep]
    counts = np.bincount(t[keep] * num_classes + np.clip(p[keep], 0, num_classes - 1),
                         weights=w, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64 if w is None else np.float64)


def scores_from_confusion(cm, class_names=None) -> dict:
    """Per-class IoU/F1/precision/recall and the summary scores of a confusion matrix.

    Returns ``{"miou", "mean_f1", "pixel_accuracy", "num_pixels", "per_class": {name:
    {"iou", "f1", "precision", "recall", "support"}}}``; see the module docstring for the
    definitions and for NaN (a class absent from truth and prediction). ``class_names``
    default to the 19 CelebAMask-HQ names (``class_<i>`` for other sizes).

    >>> s = scores_from_confusion(np.array([[3, 1], [0, 4]]), ["background", "skin"])
    >>> s["pixel_accuracy"], s["mean_f1"], s["per_class"]["skin"]["precision"]
    (0.875, 0.8888888888888888, 0.8)
    """
    cm = np.asarray(cm, dtype=np.float64)
    n = cm.shape[0]
    if class_names is None:
        class_names = CLASS_NAMES if n == NUM_CLASSES else [f"class_{i}" for i in range(n)]
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        f1 = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
    facial = [i for i in range(n) if i != BACKGROUND_ID]
    total = cm.sum()
    return {
        "miou": _nanmean(iou),
        "mean_f1": _nanmean(f1[facial]),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "num_pixels": float(total),
        "per_class": {
            name: {"iou": float(iou[i]), "f1": float(f1[i]), "precision": float(precision[i]),
                   "recall": float(recall[i]), "support": float(tp[i] + fn[i])}
            for i, name in enumerate(class_names)
        },
    }


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _to_labels(y_true, num_classes):
    """Integer labels from int (B,H,W[,1]) or one-hot (B,H,W,C) ground truth."""
    y_true = tf.convert_to_tensor(y_true)
    if y_true.shape.rank == 4 and y_true.shape[-1] == num_classes and num_classes > 1:
        return tf.argmax(y_true, axis=-1, output_type=tf.int64)
    if y_true.shape.rank == 4:
        y_true = tf.squeeze(y_true, axis=-1)
    return tf.cast(tf.round(tf.cast(y_true, tf.float32)), tf.int64)


@_register
class ConfusionMatrix(keras.metrics.Metric):
    """Streaming (C, C) confusion matrix of logits vs labels; ``result()`` is the matrix.

    Counts are float64 (exact to 2^53 pixels: a whole split at 512x512 is ~10^9), summed
    across replicas (a Keras metric variable: ON_READ, aggregation SUM). ``sample_weight``
    (B, H, W) weights pixels; ground-truth labels outside [0, C) are ignored.

    >>> import numpy as np
    >>> m = ConfusionMatrix(num_classes=2)
    >>> m.update_state(np.array([[[[1], [0]]]]), np.array([[[[0.0, 1.0], [0.0, 1.0]]]]))
    >>> m.result().numpy().tolist()
    [[0.0, 1.0], [0.0, 1.0]]
    """

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "confusion_matrix",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.total_cm = self.add_variable(shape=(self.num_classes, self.num_classes),
                                          initializer="zeros", dtype="float64",
                                          aggregation="sum", name="total_cm")

    def update_state(self, y_true, y_pred, sample_weight=None):
        c = self.num_classes
        labels = tf.reshape(_to_labels(y_true, c), [-1])
        preds = tf.reshape(tf.argmax(y_pred, axis=-1, output_type=tf.int64), [-1])
        weights = (tf.ones_like(labels, tf.float64) if sample_weight is None
                   else tf.reshape(tf.cast(sample_weight, tf.float64), [-1]))
        keep = (labels >= 0) & (labels < c)
        weights = tf.where(keep, weights, tf.zeros_like(weights))
        index = tf.where(keep, labels, tf.zeros_like(labels)) * c + preds
        counts = tf.math.unsorted_segment_sum(weights, index, c * c)
        self.total_cm.assign_add(tf.reshape(counts, (c, c)))

    def result(self):
        return tf.convert_to_tensor(self.total_cm)

    def reset_state(self):
        self.total_cm.assign(tf.zeros_like(self.total_cm))

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


@_register
class MeanIoU(ConfusionMatrix):
    """Mean IoU over the classes seen (in truth or prediction), from logits: for ``val_miou``.

    Same definition as :func:`scores_from_confusion` (absent classes left out) and as
    ``keras.metrics.MeanIoU``, but on logits and one-hot or int labels.

    >>> import numpy as np
    >>> m = MeanIoU(num_classes=3)
    >>> m.update_state(np.array([[[[0], [1]]]]), np.array([[[[1.0, 0, 0], [1.0, 0, 0]]]]))
    >>> float(m.result())  # class 0: 1/2, class 1: 0/1, class 2 unseen
    0.25
    """

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "miou", dtype=None):
        super().__init__(num_classes=num_classes, name=name, dtype=dtype)

    def result(self):
        cm = tf.convert_to_tensor(self.total_cm)
        tp = tf.linalg.diag_part(cm)
        union = tf.reduce_sum(cm, 0) + tf.reduce_sum(cm, 1) - tp
        seen = tf.cast(union > 0, tf.float64)
        iou = tf.math.divide_no_nan(tp, union)
        return tf.cast(tf.math.divide_no_nan(tf.reduce_sum(iou * seen), tf.reduce_sum(seen)),
                       tf.float32)

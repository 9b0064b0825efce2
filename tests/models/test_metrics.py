"""Confusion matrix (numpy twin and streaming Keras metric) and the scores derived from it."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from celebseg_utils.models import metrics as M
from celebseg_utils.labels import CLASS_NAMES


def random_batch(seed=0, shape=(3, 8, 8), c=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=shape)
    logits = rng.normal(size=shape + (c,)).astype(np.float32)
    weights = rng.uniform(0, 2, size=shape).astype(np.float32)
    return labels, logits, weights


def test_numpy_twin_counts_by_hand():
    y = np.array([[0, 0, 1], [2, 2, 255]])  # 255: ignored
    p = np.array([[0, 1, 1], [2, 0, 1]])
    cm = M.confusion_matrix_np(y, p, num_classes=3)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    w = np.array([[0.5, 2.0, 1.0], [1.0, 3.0, 9.0]])
    assert M.confusion_matrix_np(y, p, 3, sample_weight=w).tolist() == \
        [[0.5, 2.0, 0.0], [0.0, 1.0, 0.0], [3.0, 0.0, 1.0]]


def test_scores_by_hand_including_an_absent_class():
    # rows = truth, cols = prediction; class 3 never occurs in truth or prediction,
    # class 2 is predicted once but never true.
    cm = np.array([[5, 1, 0, 0],
                   [2, 6, 1, 0],
                   [0, 0, 0, 0],
                   [0, 0, 0, 0]])
    names = ["background", "skin", "nose", "eye_g"]
    s = M.scores_from_confusion(cm, names)
    pc = s["per_class"]
    assert pc["background"]["iou"] == pytest.approx(5 / 8)          # 5 / (5 + 2 + 1)
    assert pc["skin"]["iou"] == pytest.approx(6 / 10)               # 6 / (6 + 1 + 3)
    assert pc["skin"]["precision"] == pytest.approx(6 / 7)
    assert pc["skin"]["recall"] == pytest.approx(6 / 9)
    assert pc["skin"]["f1"] == pytest.approx(12 / 16)
    assert pc["skin"]["support"] == 9
    assert pc["nose"]["iou"] == 0 and pc["nose"]["f1"] == 0        # false positives only
    assert pc["nose"]["precision"] == 0 and math.isnan(pc["nose"]["recall"])
    assert all(math.isnan(v) for k, v in pc["eye_g"].items() if k != "support")
    assert s["miou"] == pytest.approx((5 / 8 + 6 / 10 + 0) / 3)    # eye_g left out
    assert s["mean_f1"] == pytest.approx((12 / 16 + 0) / 2)        # no background, no eye_g
    assert s["pixel_accuracy"] == pytest.approx(11 / 15)
    assert s["num_pixels"] == 15


def test_scores_use_the_19_class_names_by_default():
    s = M.scores_from_confusion(np.eye(19, dtype=np.int64))
    assert list(s["per_class"]) == list(CLASS_NAMES)
    assert s["miou"] == 1.0 and s["mean_f1"] == 1.0 and s["pixel_accuracy"] == 1.0


@pytest.mark.parametrize("encoding", ["int", "onehot"])
@pytest.mark.parametrize("weighted", [False, True])
def test_streaming_metric_equals_numpy_twin_on_random_data(encoding, weighted):
    metric = M.ConfusionMatrix(num_classes=5)
    expected = np.zeros((5, 5))
    for seed in range(3):  # several updates accumulate
        labels, logits, weights = random_batch(seed)
        y = labels[..., None] if encoding == "int" else np.eye(5, dtype=np.float32)[labels]
        w = weights if weighted else None
        metric.update_state(y, logits, sample_weight=w)
        expected += M.confusion_matrix_np(labels, logits.argmax(-1), 5, sample_weight=w)
    result = metric.result().numpy()
    assert result.dtype == np.float64
    np.testing.assert_allclose(result, expected, rtol=1e-12)
    metric.reset_state()
    assert metric.result().numpy().sum() == 0


def test_streaming_metric_ignores_out_of_range_labels():
    labels, logits, _ = random_batch(4)
    labels[0, :2] = 255
    metric = M.ConfusionMatrix(num_classes=5)
    metric.update_state(labels[..., None], logits)
    np.testing.assert_array_equal(metric.result().numpy(),
                                  M.confusion_matrix_np(labels, logits.argmax(-1), 5))
    assert metric.result().numpy().sum() == labels.size - 16


def test_mean_iou_equals_keras_mean_iou_and_the_scores():
    labels, logits, _ = random_batch(5, c=6)
    logits[..., 5] = -9  # class 5: in truth, never predicted
    labels[labels == 4] = 0  # class 4: predicted, never true
    ours = M.MeanIoU(num_classes=6)
    ours.update_state(labels[..., None], logits)
    ref = keras.metrics.MeanIoU(num_classes=6)
    ref.update_state(labels, logits.argmax(-1))
    assert float(ours.result()) == pytest.approx(float(ref.result()), rel=1e-6)
    cm = M.confusion_matrix_np(labels, logits.argmax(-1), 6)
    assert float(ours.result()) == pytest.approx(M.scores_from_confusion(cm)["miou"], rel=1e-6)
    assert ours.name == "miou"


def test_metrics_serialise():
    for metric in (M.ConfusionMatrix(7), M.MeanIoU(7, name="val_thing")):
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
        assert type(again) is type(metric) and again.num_classes == 7
        assert again.name == metric.name


def tiny_model(c=4):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(c, 1)])


def test_works_in_fit_and_evaluate_with_val_miou():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (6, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, (6, 8, 8, 1))
    model = tiny_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[M.MeanIoU(4), M.ConfusionMatrix(4)])
    history = model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, verbose=0)
    assert "val_miou" in history.history
    scores = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    cm = M.confusion_matrix_np(y, model.predict(x, verbose=0).argmax(-1), 4)
    np.testing.assert_array_equal(np.asarray(scores["confusion_matrix"]), cm)
    assert scores["miou"] == pytest.approx(M.scores_from_confusion(cm)["miou"], rel=1e-6)

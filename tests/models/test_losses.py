"""Losses: hand-computed values, Keras cross-checks, ~0 when perfect, gradients, overfitting."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from celebseg_utils.models import losses as L
from celebseg_utils.errors import CelebsegError

# A 2x3 image, 3 classes; pixel (1, 2) has equal logits. Labels cover classes 0 and 1 only,
# so class 2 is absent from the ground truth (the region losses must leave it out).
LOGITS = np.array([[[[2.0, 0.5, -1.0], [0.1, 1.0, 0.3], [-0.5, 0.2, 1.5]],
                    [[1.0, 1.0, 1.0], [0.0, 3.0, 0.0], [1.2, -0.3, 0.4]]]], np.float32)
LABELS = np.array([[[0, 1, 0], [0, 1, 1]]])            # (1, 2, 3)
WEIGHTS = np.array([[[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]]], np.float32)
C = 3


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def pixels():
    """(label, probs, weight) per pixel, flattened: what the hand computations loop over."""
    p = softmax(LOGITS.astype(np.float64)).reshape(-1, C)
    return LABELS.reshape(-1), p, WEIGHTS.reshape(-1).astype(np.float64)


def int_labels():
    return LABELS[..., None]


def onehot_labels():
    return np.eye(C, dtype=np.float32)[LABELS]


def value(loss, y, w=None, logits=LOGITS):
    return float(loss(y, logits, sample_weight=w))


# --- hand computations (numpy, pixel by pixel) ------------------------------------------

def hand_ce(w=None, class_weights=(1, 1, 1), gamma=0.0):
    lab, p, pw = pixels()
    pw = np.ones_like(pw) if w is None else pw
    total = 0.0
    for y, probs, wi in zip(lab, p, pw):
        pt = probs[y]
        total += wi * class_weights[y] * (1 - pt) ** gamma * -np.log(pt)
    return total / len(lab)  # Keras's sum_over_batch_size: divide by the pixel count


def hand_region(kind, w=None, smooth=1.0, include_background=True):
    lab, p, pw = pixels()
    pw = np.ones_like(pw) if w is None else pw
    scores = []
    for c in range(C):
        if not (lab == c).any() or (c == 0 and not include_background):
            continue
        inter = sum(wi * probs[c] for y, probs, wi in zip(lab, p, pw) if y == c)
        psum = sum(wi * probs[c] for probs, wi in zip(p, pw))
        gsum = sum(wi for y, wi in zip(lab, pw) if y == c)
        if kind == "dice":
            scores.append(1 - (2 * inter + smooth) / (psum + gsum + smooth))
        else:
            scores.append(1 - (inter + smooth) / (psum + gsum - inter + smooth))
    return np.mean(scores)


def hand_lovasz(w=None):
    """Lovász extension from its definition with set operations (no cumsum trick)."""
    lab, p, pw = pixels()
    keep = np.ones(len(lab), bool) if w is None else pw > 0
    lab, p = lab[keep], p[keep]
    out = []
    for c in range(C):
        gt = set(np.flatnonzero(lab == c))
        if not gt:
            continue
        err = np.abs((lab == c).astype(float) - p[:, c])
        order = sorted(range(len(err)), key=lambda i: -err[i])

        def delta(prefix):  # Jaccard loss of the mispredicted set `prefix`
            return len(prefix) / len(gt | set(prefix)) if prefix else 0.0

        out.append(sum(err[i] * (delta(order[:k + 1]) - delta(order[:k]))
                       for k, i in enumerate(order)))
    return np.mean(out)


CASES = {
    "sparse_ce": (lambda: L.get_loss("sparse_ce", C), lambda w: hand_ce(w)),
    "weighted_ce": (lambda: L.get_loss("weighted_ce", C, class_weights=[0.5, 2.0, 1.0]),
                    lambda w: hand_ce(w, class_weights=(0.5, 2.0, 1.0))),
    "focal": (lambda: L.get_loss("focal", C, gamma=2.0),
              lambda w: hand_ce(w, gamma=2.0)),
    "dice": (lambda: L.get_loss("dice", C), lambda w: hand_region("dice", w)),
    "jaccard": (lambda: L.get_loss("jaccard", C), lambda w: hand_region("jaccard", w)),
    "ce_dice": (lambda: L.get_loss("ce_dice", C, dice_weight=0.5),
                lambda w: hand_ce(w) + 0.5 * hand_region("dice", w)),
    "lovasz": (lambda: L.get_loss("lovasz", C), lambda w: hand_lovasz(w)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("encoding", ["int", "onehot"])
def test_matches_hand_computation(name, weighted, encoding):
    make, hand = CASES[name]
    y = int_labels() if encoding == "int" else onehot_labels()
    w = WEIGHTS if weighted else None
    assert value(make(), y, w) == pytest.approx(hand(w), rel=1e-5, abs=1e-6)


def test_region_options_match_hand():
    no_bg = L.get_loss("dice", C, smooth=0.0, include_background=False)
    assert value(no_bg, int_labels()) == pytest.approx(
        hand_region("dice", smooth=0.0, include_background=False), rel=1e-5)
    jac = L.get_loss("jaccard", C, smooth=0.5)
    assert value(jac, int_labels(), WEIGHTS) == pytest.approx(
        hand_region("jaccard", WEIGHTS, smooth=0.5), rel=1e-5)


def test_lovasz_equals_one_minus_iou_for_hard_predictions():
    # For 0/1 errors the Lovász extension is the Jaccard loss itself: 1 - IoU of the
    # hard prediction, averaged over the classes present in the ground truth.
    hard = (LOGITS == LOGITS.max(-1, keepdims=True)).astype(np.float32)
    hard[0, 1, 0] = [1, 0, 0]  # break the 3-way tie of pixel (1, 0)
    pred = hard.argmax(-1)
    ious = [((LABELS == c) & (pred == c)).sum() / ((LABELS == c) | (pred == c)).sum()
            for c in (0, 1)]
    loss = L.get_loss("lovasz", C)(int_labels(), 40.0 * hard - 20.0)
    assert float(loss) == pytest.approx(1 - np.mean(ious), abs=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_about_zero_for_a_perfect_confident_prediction(name):
    perfect = 30.0 * onehot_labels() - 15.0
    loss = CASES[name][0]()
    assert value(loss, int_labels(), logits=perfect) < 1e-4
    assert value(loss, int_labels()) > 0.05  # and clearly not zero on LOGITS


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_are_finite_and_nonzero(name):
    loss = CASES[name][0]()
    logits = tf.Variable(LOGITS)
    for y, w in [(int_labels(), None), (onehot_labels(), WEIGHTS)]:
        with tf.GradientTape() as tape:
            out = loss(y, logits, sample_weight=w)
        grad = tape.gradient(out, logits).numpy()
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 1e-4


@pytest.mark.parametrize("name", sorted(CASES))
def test_float16_logits_give_a_float32_loss(name):
    out = CASES[name][0]()(int_labels(), tf.constant(LOGITS, tf.float16))
    assert out.dtype == tf.float32
    assert float(out) == pytest.approx(value(CASES[name][0](), int_labels()), rel=1e-2)


# --- cross-checks against Keras's own losses ----------------------------------------------

def test_sparse_ce_equals_keras_with_sample_weights():
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for w in (None, WEIGHTS):
        assert value(L.SparseCE(C), int_labels(), w) == pytest.approx(
            float(ref(int_labels(), LOGITS, sample_weight=w)), rel=1e-5)


def test_weighted_ce_with_unit_weights_and_focal_with_gamma0_equal_ce():
    ce = value(L.SparseCE(C), int_labels(), WEIGHTS)
    assert value(L.WeightedCE(C, class_weights=[1, 1, 1]), int_labels(), WEIGHTS) == \
        pytest.approx(ce, rel=1e-6)
    assert value(L.FocalLoss(C, gamma=0.0), int_labels(), WEIGHTS) == pytest.approx(ce, rel=1e-6)


def test_focal_equals_keras_categorical_focal():
    ref = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=2.0, from_logits=True)
    assert value(L.FocalLoss(C, gamma=2.0), onehot_labels()) == pytest.approx(
        float(ref(onehot_labels(), LOGITS)), rel=1e-4)


def one_class_case():
    """Every pixel is class 1 of 2, so the class average has exactly one term."""
    y = np.ones((1, 2, 3, 1), np.int32)
    probs = softmax(LOGITS[..., :2])
    return y, LOGITS[..., :2], np.ones((1, 2, 3, 1), np.float32), probs[..., 1:2]


def test_dice_on_one_class_equals_keras_dice():
    y, logits, g, p1 = one_class_case()
    ours = float(L.DiceLoss(2, smooth=0.0)(y, logits))
    assert ours == pytest.approx(float(keras.losses.Dice()(g, p1)), rel=1e-5)


def test_jaccard_on_one_class_equals_keras_tversky_alpha_beta_1():
    y, logits, g, p1 = one_class_case()
    ours = float(L.JaccardLoss(2, smooth=0.0)(y, logits))
    assert ours == pytest.approx(float(keras.losses.Tversky(alpha=1.0, beta=1.0)(g, p1)),
                                 rel=1e-5)


# --- factory, config, errors -----------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_serialisation_round_trip_keeps_the_value(name):
    loss = CASES[name][0]()
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert value(again, int_labels(), WEIGHTS) == pytest.approx(value(loss, int_labels(), WEIGHTS))


def test_factory_errors_name_the_option():
    with pytest.raises(CelebsegError, match="unknown loss 'dcie'.*dice"):
        L.get_loss("dcie")
    with pytest.raises(CelebsegError, match="weighted_ce.*class_weights"):
        L.get_loss("weighted_ce")
    with pytest.raises(CelebsegError, match="one per class"):
        L.get_loss("dice", num_classes=3, class_weights=[1, 2])
    with pytest.raises(CelebsegError, match="bad option for loss 'dice'"):
        L.get_loss("dice", gama=2)


def test_class_weights_weight_the_dice_class_average():
    lab, p, _ = pixels()
    per_class = [1 - (2 * p[lab == c, c].sum() + 1) / (p[:, c].sum() + (lab == c).sum() + 1)
                 for c in (0, 1)]
    expected = (1.0 * per_class[0] + 3.0 * per_class[1]) / 4.0
    loss = L.get_loss("dice", C, class_weights=[1.0, 3.0, 5.0])  # class 2 absent: unused
    assert value(loss, int_labels()) == pytest.approx(expected, rel=1e-5)


# --- a tiny model overfits one batch with each loss -----------------------------------------

def tiny_batch():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(2, 16, 16))
    colours = np.array([[20, 20, 20], [200, 40, 40], [40, 200, 40], [40, 40, 200]], np.float32)
    images = colours[labels] + rng.normal(0, 10, (2, 16, 16, 3)).astype(np.float32)
    return images, labels[..., None].astype(np.int32)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_tiny_model_overfits_one_batch(name):
    keras.utils.set_random_seed(0)
    images, labels = tiny_batch()
    model = keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(4, 1),
    ])
    kw = {"class_weights": [1.0, 2.0, 1.0, 0.5]} if name == "weighted_ce" else {}
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=L.get_loss(name, 4, **kw))
    history = model.fit(images, labels, batch_size=2, epochs=40, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0], history[::8]

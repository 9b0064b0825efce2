"""Did the per-image pixel weights reach the loss? The ways a (B,H,W) weight map can travel
from a data generator to the gradient, and the gradient each way gives.

The seed experiment fed ``model.fit`` a data generator yielding ``(images, labels, weights)``
with per-image pixel weights (each pixel weighted by the inverse of its class's pixel count
in its image) and saw "no noticeable difference" from plain cross-entropy. One explanation is
that the weights never reached the loss. This module reproduces the plausible ways, each as
the labels, logits and ``sample_weight`` a Keras loss receives (:data:`WAYS`), and measures
the gradient of the batch loss with respect to the logits against

* ``unweighted``: plain CE (what "no difference" would mean), and
* ``pixel``: CE with the (B,H,W) weights applied pixel by pixel (what was intended),

as a cosine and a relative L2 distance, plus the share of the gradient (per-pixel L1 norm
over the channels) that the pixels of the rare classes (eyeglasses, hat, earring, necklace)
and of the three big classes (background, skin, hair) receive (:func:`compare_ways`).
:func:`fit_check` then asks ``Model.fit`` itself (Keras 3, or ``tf_keras``, the Keras 2 of
TensorFlow) what it does with a generator's ``sample_weight``: one SGD step from identical
parameters, the parameter update against manually weighted and unweighted gradients.

The ways (losses are Keras's own ``SparseCategoricalCrossentropy`` /
``CategoricalCrossentropy(from_logits=True)``, reduction ``sum_over_batch_size`` unless said):

* ``unweighted``      no ``sample_weight``;
* ``pixel``           int labels (B,H,W,1), weights (B,H,W): the project's pipeline;
* ``pixel_hw1``       the weights as (B,H,W,1);
* ``onehot_hw1``      one-hot labels (B,H,W,19), categorical CE, weights (B,H,W,1);
* ``flat_temporal``   Keras 2's "temporal" recipe: logits (B,HW,19), labels (B,HW,1),
  weights (B,HW), all flattened in the same (row-major) order;
* ``per_image_mean``  one weight per image, the mean of its pixel weights: what Keras <= 2.2
  does with the 1-D weights its ``standardize_weights`` asks for ("make sure your
  sample_weight array is 1D"): ``weighted_masked_objective`` averages the loss over an
  image's pixels, then weighs the image. Given here as (B,1,1);
* ``transposed``      each image's weight map transposed, H <-> W (for a square image this
  is also the map flattened in column-major order and reshaped in row-major order, or a map
  built with PIL's (W, H) ``size``);
* ``other_image``     each image gets the next image's weight map (images and weights
  shuffled apart in the generator);
* ``divided_by_sum``  each image's weights divided by their own sum;
* ``mean_with_sample_weight``  Keras 3's reduction that divides by the sum of the weights
  instead of the pixel count.

Two more shapes fail loudly rather than silently in Keras 3.15 and ``tf_keras`` 2.21 (see
:func:`fit_check`): per-image weights of shape (B,) (``Incompatible shapes: [B,H,W] vs.
[B]``) and weights repeated over the 19 channels, (B,H,W,19).

>>> import numpy as np
>>> labels = np.array([[[0, 1], [0, 0]]])               # 3 background pixels, 1 skin
>>> weights = np.array([[[2 / 3, 2.0], [2 / 3, 2 / 3]]], "float32")   # per_image: mean 1
>>> logits = np.zeros((1, 2, 2, 19), "float32")
>>> r = compare_ways(labels, logits, weights, ("per_image_mean", "transposed"))
>>> round(r["per_image_mean"]["cosine_unweighted"], 6), round(r["per_image_mean"]["rel_l2_unweighted"], 6)
(1.0, 0.0)
>>> round(r["transposed"]["cosine_weighted"], 4)  # the skin weight lands on a background pixel
0.6667
"""

from __future__ import annotations

import math
import re

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.errors import CelebsegError

#: The delivery ways (names are the contract), in the order reports list them.
WAYS: tuple[str, ...] = ("unweighted", "pixel", "pixel_hw1", "onehot_hw1", "flat_temporal",
                         "per_image_mean", "transposed", "other_image", "divided_by_sum",
                         "mean_with_sample_weight")
#: What the ``fit`` check feeds ``Model.fit`` as (labels, sample_weight), see :func:`fit_check`.
FIT_CASES: tuple[str, ...] = ("unweighted", "pixel", "pixel_hw1", "onehot_hw1",
                              "per_image_1d", "onehot_hwc")
RARE_IDS: tuple[int, ...] = tuple(L.class_id(c) for c in L.RARE_CLASSES)
BIG_IDS: tuple[int, ...] = tuple(L.class_id(c) for c in ("background", "skin", "hair"))
#: Cosine at or above which two gradients count as the same direction (:func:`verdict`).
IDENTICAL = 0.9999
#: The verdicts under which training would see plain CE's class balance.
NO_DIFFERENCE = ("unweighted", "unweighted balance")


def _int_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 4:
        labels = labels[..., 0]
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise CelebsegError(f"labels of shape {labels.shape}: give (B,H,W) or (B,H,W,1)")
    return labels.astype(np.int32)


def _delivered(way: str, labels, logits, weights):
    """(y_true, y_pred, sample_weight, loss) as the loss receives them under ``way``."""
    import keras
    import tensorflow as tf

    if way not in WAYS:
        raise CelebsegError(f"unknown way {way!r}: use one of {', '.join(WAYS)}")
    b, h, w = labels.shape
    c = logits.shape[-1]
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    y = tf.constant(labels[..., None])
    wt = tf.constant(weights, tf.float32)
    if way == "unweighted":
        return y, logits, None, sparse
    if way == "pixel":
        return y, logits, wt, sparse
    if way == "pixel_hw1":
        return y, logits, wt[..., None], sparse
    if way == "onehot_hw1":
        return (tf.one_hot(labels, c), logits, wt[..., None],
                keras.losses.CategoricalCrossentropy(from_logits=True))
    if way == "flat_temporal":
        return (tf.reshape(y, (b, h * w, 1)), tf.reshape(logits, (b, h * w, c)),
                tf.reshape(wt, (b, h * w)), sparse)
    if way == "per_image_mean":
        return y, logits, tf.reduce_mean(wt, axis=(1, 2), keepdims=True), sparse
    if way == "transposed":
        return y, logits, tf.transpose(wt, (0, 2, 1)), sparse
    if way == "other_image":
        return y, logits, tf.roll(wt, 1, axis=0), sparse
    if way == "divided_by_sum":
        return y, logits, wt / tf.reduce_sum(wt, axis=(1, 2), keepdims=True), sparse
    return (y, logits, wt, keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"))


def way_gradient(labels, logits, weights, way: str) -> np.ndarray:
    """float64 (B,H,W,C): d (batch loss) / d logits when the intended pixel ``weights``
    (B,H,W) reach the loss as ``way`` delivers them. ``labels`` int (B,H,W[,1]); ``logits``
    (B,H,W,C) float; square images for ``transposed``."""
    import tensorflow as tf

    labels = _int_labels(labels)
    weights = np.asarray(weights, np.float32).reshape(labels.shape)
    if way == "transposed" and labels.shape[1] != labels.shape[2]:
        raise CelebsegError(f"'transposed' needs square images, not {labels.shape[1:]}")
    logits = tf.constant(np.asarray(logits, np.float32).reshape(labels.shape + (-1,)))
    with tf.GradientTape() as tape:
        tape.watch(logits)
        y, pred, sw, loss = _delivered(way, labels, logits, weights)
        value = loss(y, pred, sample_weight=sw)
    return tape.gradient(value, logits).numpy().astype(np.float64)


def _cos(a, b) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(np.vdot(a, b) / (na * nb)) if na > 0 and nb > 0 else float("nan")


def _rel(a, ref) -> float:
    n = np.linalg.norm(ref)
    return float(np.linalg.norm(a - ref) / n) if n > 0 else float("nan")


def compare_ways(labels, logits, weights, ways=WAYS) -> dict:
    """One batch: for each way, its logit gradient against ``unweighted`` and ``pixel``.

    ``{way: {"cosine_unweighted", "rel_l2_unweighted", "cosine_weighted", "rel_l2_weighted",
    "norm_ratio" (||g|| / ||g_pixel||), "rare_share", "big_share", "tv_unweighted",
    "tv_weighted"}}``. The shares are the fraction of the gradient's per-pixel L1 norm on the
    pixels of the four rare classes and of background + skin + hair; ``tv_*`` is the total
    variation distance (half the L1 distance) between the way's 19 per-class shares and those
    of the reference. The relative L2 distances include scale; the cosines do not. At zero
    logits every pixel's CE gradient has the same norm, so the cosine with plain CE depends
    only on the weights' values (``mean(w) / rms(w)``), not on which pixel has which: the
    class shares tell a scrambled weight map from plain CE.
    """
    labels = _int_labels(labels)
    ref_u = way_gradient(labels, logits, weights, "unweighted")
    ref_p = way_gradient(labels, logits, weights, "pixel")
    share_u, share_p = _shares(labels, ref_u), _shares(labels, ref_p)
    out = {}
    for way in ways:
        g = ref_u if way == "unweighted" else ref_p if way == "pixel" else way_gradient(
            labels, logits, weights, way)
        share = _shares(labels, g)
        out[way] = {"cosine_unweighted": _cos(g, ref_u), "rel_l2_unweighted": _rel(g, ref_u),
                    "cosine_weighted": _cos(g, ref_p), "rel_l2_weighted": _rel(g, ref_p),
                    "norm_ratio": float(np.linalg.norm(g) / np.linalg.norm(ref_p)),
                    "rare_share": float(share[list(RARE_IDS)].sum()),
                    "big_share": float(share[list(BIG_IDS)].sum()),
                    "tv_unweighted": float(np.abs(share - share_u).sum() / 2),
                    "tv_weighted": float(np.abs(share - share_p).sum() / 2)}
    return out


def _shares(labels, grad) -> np.ndarray:
    mass = np.bincount(labels.ravel(), weights=np.abs(grad).sum(-1).ravel(),
                       minlength=L.NUM_CLASSES)
    total = mass.sum()
    return mass / total if total > 0 else mass


def verdict(entry) -> str:
    """What training would see under a way, from its :func:`compare_ways` (or
    :func:`delivery_table`) entry: ``"unweighted"`` (the gradient is plain CE's, up to
    scale: cosine >= 0.9999 on every batch), ``"weighted"`` (the intended one, up to scale),
    ``"unweighted balance"`` (another gradient whose split over the classes is nearer plain
    CE's than the intended one: the weights land on the wrong pixels) or ``"weighted
    balance"``. The first and third would show "no difference" from plain CE."""
    cos_u = entry.get("cosine_unweighted_min", entry["cosine_unweighted"])
    cos_w = entry.get("cosine_weighted_min", entry["cosine_weighted"])
    if cos_u >= IDENTICAL:
        return "unweighted"
    if cos_w >= IDENTICAL:
        return "weighted"
    return "unweighted balance" if entry["tv_unweighted"] < entry["tv_weighted"] else "weighted balance"


def delivery_table(batches, ways=WAYS) -> dict:
    """:func:`compare_ways` over ``batches`` (an iterable of ``(labels, logits, weights)``):
    each number's mean over the batches, and the cosines' minimum (``*_min``)."""
    per = [compare_ways(lab, lg, w, ways) for lab, lg, w in batches]
    if not per:
        raise CelebsegError("no batches")
    table = {}
    for way in ways:
        rows = [p[way] for p in per]
        entry = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        for k in ("cosine_unweighted", "cosine_weighted"):
            entry[k + "_min"] = float(np.min([r[k] for r in rows]))
        table[way] = entry
    return {"batches": len(per), "ways": table}


# --- what Model.fit does with the generator's sample_weight -----------------------------

def _tiny_model(kmod, image_shape, num_classes: int, seed: int):
    """A small conv net built in ``kmod`` (keras or tf_keras) with seeded, framework-free
    initial parameters, so that both frameworks start from the same numbers."""
    model = kmod.Sequential([kmod.Input(image_shape), kmod.layers.Rescaling(1 / 255.0),
                             kmod.layers.Conv2D(8, 3, padding="same", activation="relu"),
                             kmod.layers.Conv2D(num_classes, 1)])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, v.shape).astype(np.float32) for v in model.get_weights()])
    return model


def _manual_gradient(params, images, labels, weights, dtype="float64") -> np.ndarray:
    """The gradient of ``sum(w * ce) / pixels`` for :func:`_tiny_model`'s parameters, in
    float64 (by default) and without Keras (its forward pass written out with ``tf.nn``):
    the reference that ``fit``'s float32 update is held against."""
    import tensorflow as tf

    k1, b1, k2, b2 = (tf.Variable(np.asarray(p, dtype)) for p in params)
    x = tf.constant(images, dtype) / 255.0
    with tf.GradientTape() as tape:
        h = tf.nn.relu(tf.nn.conv2d(x, k1, 1, "SAME") + b1)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.nn.conv2d(h, k2, 1, "SAME") + b2)
        loss = tf.reduce_sum(tf.constant(weights, dtype) * ce) / float(ce.shape.num_elements())
    return _flat(g.numpy() for g in tape.gradient(loss, [k1, b1, k2, b2]))


def _flat(arrays) -> np.ndarray:
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])


def _fit_inputs(case: str, labels, weights, num_classes: int):
    if case not in FIT_CASES:
        raise CelebsegError(f"unknown fit case {case!r}: use one of {', '.join(FIT_CASES)}")
    y = labels[..., None]
    if case == "unweighted":
        return y, None, "sparse"
    if case == "pixel":
        return y, weights, "sparse"
    if case == "pixel_hw1":
        return y, weights[..., None], "sparse"
    onehot = np.eye(num_classes, dtype=np.float32)[labels]
    if case == "onehot_hw1":
        return onehot, weights[..., None], "categorical"
    if case == "per_image_1d":
        return y, weights.mean(axis=(1, 2)), "sparse"
    return onehot, np.repeat(weights[..., None], num_classes, -1), "categorical"


_SHAPE_ERRORS = re.compile(r"(Incompatible shapes: \[[^\]]*\] vs\. \[[^\]]*\]|Can not squeeze "
                           r"dim\[\d+\], expected a dimension of 1, got \d+|Dimensions must be "
                           r"equal, but are \d+ and \d+)")


def _error_line(err) -> str:
    """The error's type and its shape complaint (a TF graph error buries it in a traceback)."""
    found = _SHAPE_ERRORS.search(str(err))
    text = found.group(1) if found else " ".join(str(err).split())[:160]
    return f"{type(err).__name__}: {text}"


def fit_check(images, labels, weights, kmod=None, cases=FIT_CASES, seed: int = 0,
              learning_rate: float = 1e4) -> dict:
    """What ``kmod.Model.fit`` (``keras`` by default; pass ``tf_keras`` for Keras 2) does
    with a data generator's ``(images, labels, weights)``, case by case (:data:`FIT_CASES`).

    For each case a small conv net (:func:`_tiny_model`, same initial parameters every time)
    is compiled with SGD and Keras's CE from logits, and fitted for one step on a Python
    generator yielding the batch; the parameter update / learning rate is compared with the
    gradient of the manually weighted loss ``sum(w * ce) / pixels`` and of the unweighted
    ``mean(ce)`` (:func:`_manual_gradient`: float64, no Keras): ``{case: {"cosine_weighted",
    "rel_l2_weighted", "cosine_unweighted", "rel_l2_unweighted"}}``, or ``{case: {"error":
    "..."}}`` when ``fit`` refuses the shapes; ``float32_floor``: the same manual gradient
    computed in float32, its relative L2 distance from the float64 one (the precision any
    float32 ``fit`` can reach).
    The large learning rate keeps the update well above float32 rounding of the parameters.
    """
    if kmod is None:
        import keras as kmod
    images = np.asarray(images, np.float32)
    labels = _int_labels(labels)
    weights = np.asarray(weights, np.float32).reshape(labels.shape)
    c = L.NUM_CLASSES
    model = _tiny_model(kmod, images.shape[1:], c, seed)
    start = [np.array(v) for v in model.get_weights()]
    manual = {name: _manual_gradient(start, images, labels, sw)
              for name, sw in (("weighted", weights), ("unweighted", np.ones_like(weights)))}
    floor = {name: _rel(_manual_gradient(start, images, labels, sw, "float32"), manual[name])
             for name, sw in (("weighted", weights), ("unweighted", np.ones_like(weights)))}
    out = {}
    for case in cases:
        yy, sw, kind = _fit_inputs(case, labels, weights, c)
        model.set_weights(start)
        loss = (kmod.losses.SparseCategoricalCrossentropy(from_logits=True) if kind == "sparse"
                else kmod.losses.CategoricalCrossentropy(from_logits=True))
        model.compile(optimizer=kmod.optimizers.SGD(learning_rate), loss=loss)

        def generator(yy=yy, sw=sw):
            while True:
                yield (images, yy) if sw is None else (images, yy, sw)

        before = _flat(v.numpy() for v in model.trainable_variables)
        try:
            model.fit(generator(), steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
        except Exception as err:  # the shapes fit refuses: record what it says
            out[case] = {"error": _error_line(err)}
            continue
        update = (before - _flat(v.numpy() for v in model.trainable_variables)) / learning_rate
        out[case] = {f"{k}_{name}": f(update, manual[name]) for name in ("weighted", "unweighted")
                     for k, f in (("cosine", _cos), ("rel_l2", _rel))}
    model.set_weights(start)
    return {"framework": f"{kmod.__name__} {kmod.__version__}", "learning_rate": learning_rate,
            "batch": list(images.shape), "float32_floor": floor, "cases": out}


def finite(obj):
    """JSON-safe copy: NaN / inf become None."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

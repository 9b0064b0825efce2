"""Where the loss gradient goes: the share of d loss / d logits each true class receives.

The loss study asks why the seed experiment's per-image pixel weights (each pixel weighted
by the inverse of its class's pixel count in its image) trained much like plain
cross-entropy. A loss steers training only through its gradient, so this module measures,
for one batch, how the gradient of the batch loss with respect to the logits splits over the
pixels' **true** classes:

    share_c = sum over pixels of true class c of ||d loss / d logits_pixel||_1
              / sum over all pixels of ||d loss / d logits_pixel||_1

computed by autodiff (``tf.GradientTape``) through the project's own losses
(:func:`celebseg_utils.losses.get_loss`), with pixel weights passed as ``sample_weight``
exactly as Keras training does. Schemes (:data:`SCHEMES`):

* ``ce``            sparse cross-entropy, unweighted (the baseline arm);
* ``per_image``     sparse CE with :func:`weight_maps.per_image_pixel_weights_tf` (``N / (K n_c)``
  with the image's own counts, mean 1 per image: the ``pixel_weighted_ce`` arm);
* ``per_image_raw`` sparse CE with raw ``1 / n_c`` weights, not normalised (the seed's
  literal description): the same weights up to a factor ``K / N`` per image;
* ``median_freq``   ``weighted_ce`` with the split's median-frequency class weights;
* ``dice``, ``jaccard`` the project's soft region losses (no weights).

:func:`gradient_share_table` averages the shares over real training batches, with logits
all zero (the start of training: a uniform prediction, where CE's gradient per pixel is the
same everywhere) or a trained model's logits, beside each class's pixel share and how often
it occurs; it also measures the total gradient size of each scheme relative to ``ce`` and
checks numerically whether ``per_image`` and ``per_image_raw`` differ by more than a scale
that Adam divides away. :func:`plot_gradient_shares` draws the shares per facial class.

>>> import numpy as np
>>> labels = np.array([[[0, 0], [0, 1]]])               # 3 background pixels, 1 skin
>>> logits = np.zeros((1, 2, 2, 19), "float32")
>>> [round(float(s), 4) for s in gradient_shares(labels, logits, "ce")[:2]]
[0.75, 0.25]
>>> [round(float(s), 4) for s in gradient_shares(labels, logits, "per_image")[:2]]
[0.5, 0.5]
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.errors import CelebsegError

#: The gradient schemes (names are the contract).
SCHEMES: tuple[str, ...] = ("ce", "per_image", "per_image_raw", "median_freq", "dice", "jaccard")
_LOSS_NAME = {"ce": "sparse_ce", "per_image": "sparse_ce", "per_image_raw": "sparse_ce",
              "median_freq": "weighted_ce", "dice": "dice", "jaccard": "jaccard"}
#: Keras AdamW's defaults, as training uses them (beta_1, beta_2, epsilon).
ADAM = (0.9, 0.999, 1e-7)


def _int_labels(labels):
    import tensorflow as tf

    labels = tf.cast(tf.convert_to_tensor(labels), tf.int32)
    if labels.shape.rank == 4:
        labels = labels[..., 0]
    if labels.shape.rank == 2:
        labels = labels[None]
    if labels.shape.rank != 3:
        raise CelebsegError(f"labels of shape {labels.shape}: give (B,H,W) or (B,H,W,1)")
    return labels


def scheme_weights(labels, scheme: str):
    """float32 (B, H, W) pixel weights of ``scheme`` (None for the unweighted ones).

    >>> scheme_weights([[[0, 0, 0, 5]]], "per_image_raw").numpy().tolist()  # 1 / n_c
    [[[0.3333333432674408, 0.3333333432674408, 0.3333333432674408, 1.0]]]
    """
    import tensorflow as tf

    from celebseg_utils.data import weight_maps as W

    if scheme not in SCHEMES:
        raise CelebsegError(f"unknown scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    labels = _int_labels(labels)
    if scheme == "per_image":
        return W.per_image_pixel_weights_tf(labels[..., None])
    if scheme == "per_image_raw":
        onehot = tf.one_hot(labels, L.NUM_CLASSES)
        counts = tf.reduce_sum(onehot, axis=(1, 2), keepdims=True)
        return tf.reduce_sum(onehot * tf.math.divide_no_nan(1.0, counts), axis=-1)
    return None


def _loss(scheme: str, class_weights=None):
    from celebseg_utils.models.losses import get_loss

    if scheme == "median_freq":
        if class_weights is None:
            raise CelebsegError("scheme 'median_freq' needs class_weights (stats.json's "
                                "class_weights['median_freq'])")
        return get_loss("weighted_ce", class_weights=list(class_weights))
    return get_loss(_LOSS_NAME[scheme])


def logit_gradient(labels, logits, scheme: str, class_weights=None):
    """d (batch loss) / d logits, float32 (B, H, W, 19), as Keras training computes the loss
    (``loss_fn(y_true, logits, sample_weight=w)``)."""
    import tensorflow as tf

    labels = _int_labels(labels)
    logits = tf.convert_to_tensor(logits, tf.float32)
    if logits.shape.rank == 3:
        logits = logits[None]
    weights = scheme_weights(labels, scheme)
    loss_fn = _loss(scheme, class_weights)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = loss_fn(labels[..., None], logits, sample_weight=weights)
    return tape.gradient(loss, logits)


def gradient_per_class(labels, logits, scheme: str, class_weights=None) -> np.ndarray:
    """float64 (19,): the summed per-pixel L1 norm of d loss / d logits over the pixels of
    each true class (not normalised: its sum is the batch's total gradient L1 norm).

    >>> import numpy as np                                   # 4 pixels x 2 (18/19) / 4
    >>> round(float(gradient_per_class([[[0, 0], [0, 1]]], np.zeros((1, 2, 2, 19)), "ce").sum()), 4)
    1.8947
    """
    return _per_class(_int_labels(labels), logit_gradient(labels, logits, scheme, class_weights))


def _per_class(labels, grad) -> np.ndarray:
    import tensorflow as tf

    pixel_l1 = tf.reduce_sum(tf.abs(grad), axis=-1)
    mass = tf.math.unsorted_segment_sum(tf.reshape(pixel_l1, [-1]), tf.reshape(labels, [-1]),
                                        L.NUM_CLASSES)
    return mass.numpy().astype(np.float64)


def gradient_shares(labels, logits, scheme: str, class_weights=None) -> np.ndarray:
    """float64 (19,): the share of the batch's logit gradient (per-pixel L1 norm over the 19
    channels) that the pixels of each true class receive; sums to 1 (all 0 if the gradient
    is 0). ``labels`` int (B,H,W[,1]), ``logits`` (B,H,W,19); ``class_weights`` only for
    ``median_freq``.

    >>> import numpy as np
    >>> s = gradient_shares([[[0, 0], [1, 13]]], np.zeros((1, 2, 2, 19)), "per_image")
    >>> [round(float(s[c]), 4) for c in (0, 1, 13)]           # 3 classes, one third each
    [0.3333, 0.3333, 0.3333]
    """
    mass = gradient_per_class(labels, logits, scheme, class_weights)
    total = mass.sum()
    return mass / total if total > 0 else mass


# --- over real batches ------------------------------------------------------------------

def _cosine(a, b) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else float("nan")


class _Adam:
    """Adam's update direction ``m_hat / (sqrt(v_hat) + eps)`` on a flat gradient vector."""

    def __init__(self, size: int):
        self.m = np.zeros(size, np.float64)
        self.v = np.zeros(size, np.float64)
        self.t = 0

    def step(self, g) -> np.ndarray:
        b1, b2, eps = ADAM
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        m_hat, v_hat = self.m / (1 - b1 ** self.t), self.v / (1 - b2 ** self.t)
        return m_hat / (np.sqrt(v_hat) + eps)


def _load_model(model):
    if model is None or not isinstance(model, (str, Path)):
        return model
    from celebseg_utils.engine.inference import load_model

    return load_model(model)


def gradient_share_table(prepared, model=None, batches: int = 8, batch_size: int = 8,
                         image_size: int = 128, seed: int = 0, schemes=SCHEMES,
                         adam_batches: int = 4) -> dict:
    """Mean gradient share per class and scheme over ``batches`` real training batches.

    Batches: the train split of ``prepared``, no augmentation, shuffled with ``seed``.
    Logits: all zeros (``model=None``: the start of training) or ``model``'s (a Keras model
    or a ``.keras`` path; inference mode). Keys: ``class_names``, ``logits``, ``batches``,
    ``images``, ``pixel_share`` (each class's share of the pixels), ``image_fraction`` (of
    the images containing it), ``batch_fraction`` (of the batches containing it),
    ``shares {scheme: (19,)}`` (the mean over batches of :func:`gradient_shares`, a class
    absent from a batch counting 0), ``loss_scale {scheme: float}`` (the mean over batches of
    the scheme's total gradient L1 norm / ``ce``'s), and ``scale_check``: per batch, the
    ratio of ``per_image_raw``'s to ``per_image``'s gradient norm (mean, min, max,
    coefficient of variation) and the cosine between the two logit gradients. With a model
    and both schemes, ``adam_check`` also compares the first ``adam_batches`` steps of Adam
    (Keras defaults, fresh state) fed each scheme's parameter gradients: the cosine and norm
    ratio of the summed updates, ``per_image_raw`` vs ``per_image`` and ``ce`` vs
    ``per_image``, the cosine of the first parameter gradients (raw vs normalised) and the
    fraction of parameter-gradient entries below Adam's epsilon per scheme (where epsilon,
    not the gradient's own scale, sets the step).

    >>> # table = gradient_share_table("/tmp/realprep", batches=16)
    >>> # table["shares"]["per_image"][L.class_id("hat")]
    """
    import tensorflow as tf

    from celebseg_utils.data import stats as S
    from celebseg_utils.data.pipeline import make_dataset

    schemes = tuple(schemes)
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise CelebsegError(f"unknown scheme(s) {unknown}: use {', '.join(SCHEMES)}")
    class_weights = None
    if "median_freq" in schemes:
        class_weights = S.load_or_compute_stats(prepared, progress=False)["class_weights"]["median_freq"]
    model_name = str(model) if isinstance(model, (str, Path)) else None
    model = _load_model(model)
    ds = make_dataset(prepared, "train", image_size=image_size, batch_size=batch_size,
                      augment=False, shuffle=True, seed=seed).take(batches)
    n = L.NUM_CLASSES
    pixels, images, in_batch, n_images, n_batches = np.zeros(n), np.zeros(n), np.zeros(n), 0, 0
    shares = {s: np.zeros(n) for s in schemes}
    scale = {s: [] for s in schemes}
    raw_ratio, raw_cos = [], []
    adam_on = model is not None and {"ce", "per_image", "per_image_raw"} <= set(schemes)
    adam, adam_sum, first, variables = {}, {}, {}, None
    for x, y in ds:
        labels = _int_labels(y)
        counts = tf.math.bincount(tf.reshape(labels, [labels.shape[0], -1]), minlength=n,
                                  maxlength=n, axis=-1).numpy()
        pixels += counts.sum(0)
        images += (counts > 0).sum(0)
        in_batch += counts.sum(0) > 0
        n_images += labels.shape[0]
        n_batches += 1
        adam_step = adam_on and n_batches <= adam_batches
        if model is None:
            logits = tf.zeros(tuple(labels.shape) + (n,), tf.float32)
        elif adam_step:
            variables = model.trainable_variables
            tape = tf.GradientTape(persistent=True)
            with tape:
                logits = tf.cast(model(x, training=False), tf.float32)
        else:
            logits = tf.cast(model(x, training=False), tf.float32)
        grads = {}
        for s in schemes:
            grads[s] = logit_gradient(labels, logits, s, class_weights)
            mass = _per_class(labels, grads[s])
            total = mass.sum()
            shares[s] += mass / total if total > 0 else mass
            scale[s].append(total)
        if "per_image" in grads and "per_image_raw" in grads:
            a, b = grads["per_image"].numpy().ravel(), grads["per_image_raw"].numpy().ravel()
            raw_ratio.append(np.abs(b).sum() / np.abs(a).sum())
            raw_cos.append(_cosine(a, b))
        if adam_step:
            for s in ("ce", "per_image", "per_image_raw"):
                pg = tape.gradient(logits, variables, output_gradients=grads[s])
                flat = np.concatenate([np.zeros(int(np.prod(v.shape))) if g is None else
                                       g.numpy().ravel().astype(np.float64)
                                       for g, v in zip(pg, variables)])
                if s not in adam:
                    adam[s] = _Adam(flat.size)
                    first[s] = flat
                upd = adam[s].step(flat)
                adam_sum[s] = adam_sum.get(s, 0) + upd
            del tape
    if not n_batches:
        raise CelebsegError(f"no training batches in {prepared}")
    table = {
        "class_names": list(L.CLASS_NAMES),
        "logits": "zeros" if model is None else f"model:{model_name or model.name}",
        "batches": n_batches, "batch_size": batch_size, "images": n_images,
        "image_size": image_size, "seed": seed,
        "pixel_share": (pixels / pixels.sum()).tolist(),
        "image_fraction": (images / n_images).tolist(),
        "batch_fraction": (in_batch / n_batches).tolist(),
        "shares": {s: (v / n_batches).tolist() for s, v in shares.items()},
    }
    if "ce" in schemes:
        ce = np.asarray(scale["ce"])
        table["loss_scale"] = {s: float(np.mean(np.asarray(v) / ce)) for s, v in scale.items()}
    if raw_ratio:
        r = np.asarray(raw_ratio)
        table["scale_check"] = {
            "per_image_raw_over_per_image": {
                "mean": float(r.mean()), "min": float(r.min()), "max": float(r.max()),
                "cv": float(r.std() / r.mean()), "cosine_min": float(min(raw_cos)),
                "cosine_mean": float(np.mean(raw_cos))}}
    if adam_sum:
        def compare(a, b):
            return {"cosine": _cosine(adam_sum[a], adam_sum[b]),
                    "norm_ratio": float(np.linalg.norm(adam_sum[a]) / np.linalg.norm(adam_sum[b]))}
        table["adam_check"] = {"steps": min(adam_batches, n_batches), "beta1_beta2_eps": list(ADAM),
                               "per_image_raw_vs_per_image": compare("per_image_raw", "per_image"),
                               "ce_vs_per_image": compare("ce", "per_image"),
                               "first_gradient_cosine_raw_vs_per_image": _cosine(
                                   first["per_image_raw"], first["per_image"]),
                               "first_gradient_below_eps": {
                                   s: float(np.mean(np.abs(first[s]) < ADAM[2])) for s in first}}
    return table


# --- figure -----------------------------------------------------------------------------

def logits_text(table: dict) -> str:
    """Where a table's logits came from, in words and without a machine's path: the zero
    logits of the start of training, or a trained model named by its last three path parts.

    >>> logits_text({"logits": "zeros"})
    'zero logits (start of training)'
    >>> logits_text({"logits": "model:/work/study-out/runs/sparse_ce/seed0/best.keras"})
    'logits of the trained model sparse_ce/seed0/best.keras'
    """
    logits = str(table["logits"])
    if logits == "zeros":
        return "zero logits (start of training)"
    name = logits.split(":", 1)[1] if logits.startswith("model:") else logits
    return "logits of the trained model " + "/".join(Path(name).parts[-3:])


def plot_gradient_shares(table, path=None, faces: str = "real faces"):
    """Grouped bars (log y) of the gradient share of each facial class per scheme, the
    class's pixel share as a black tick, rare classes shaded with bold labels. ``table`` is
    one :func:`gradient_share_table` result or a list of them (one row each); ``faces``
    says what the batches were ("synthetic faces" in SMOKE runs). Saved with
    :func:`viz.save_figure` when ``path`` is given; returns the figure.
    """
    import matplotlib

    from celebseg_utils.visualization import viz

    if path is not None:
        viz.headless_backend(matplotlib)
    import matplotlib.pyplot as plt

    tables = [table] if isinstance(table, dict) else list(table)
    ids = list(L.FACIAL_CLASS_IDS)
    rare = {L.class_id(c) for c in L.RARE_CLASSES}
    fig, axes = plt.subplots(len(tables), 1, figsize=(14, 4.2 * len(tables)), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, t in zip(axes[:, 0], tables):
        schemes = list(t["shares"])
        width = 0.8 / len(schemes)
        x = np.arange(len(ids))
        for j, c in enumerate(ids):
            if c in rare:
                ax.axvspan(j - 0.5, j + 0.5, color="#f3d9d9", zorder=0)
        positive = [v for s in schemes for v in t["shares"][s] if v > 0]
        floor = 10 ** math.floor(math.log10(min(positive))) if positive else 1e-6
        for k, s in enumerate(schemes):
            vals = np.maximum(np.asarray(t["shares"][s])[ids], floor)
            ax.bar(x - 0.4 + width * (k + 0.5), vals, width, label=s, color=cmap(k), zorder=2)
        pix = np.maximum(np.asarray(t["pixel_share"])[ids], floor)
        ax.scatter(x, pix, marker="_", s=260, color="black", zorder=3, linewidths=2,
                   label="pixel share")
        ax.set_yscale("log")
        ax.set_ylim(floor, 1.0)
        ax.set_xticks(x)
        ax.set_xticklabels([L.DISPLAY_NAMES[L.CLASS_NAMES[c]] for c in ids], rotation=40,
                           ha="right", fontsize=8)
        for lab, c in zip(ax.get_xticklabels(), ids):
            if c in rare:
                lab.set_fontweight("bold")
        ax.set_xlim(-0.5, len(ids) - 0.5)
        ax.set_ylabel("share of d loss / d logits")
        ax.grid(axis="y", alpha=0.3, zorder=1)
        bg = ", ".join(f"{s} {t['shares'][s][0]:.2f}" for s in schemes)
        ax.set_title(f"Gradient share per true facial class, {logits_text(t)}; "
                     f"{t['batches']} training batches x {t['batch_size']} {faces} at "
                     f"{t.get('image_size', '?')} px\n(background share: {bg}; rare classes "
                     f"shaded, bold)", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    fig.tight_layout()
    if path is not None:
        viz.save_figure(fig, path)
    return fig


def format_table(table) -> str:
    """A compact text table: class, pixel share, % images and % batches containing it, the
    gradient share per scheme (percent), then the loss scales."""
    schemes = list(table["shares"])
    head = f"{'class':<11}{'pixel%':>8}{'img%':>6}{'bat%':>6}" + "".join(f"{s[:10]:>11}" for s in schemes)
    lines = [f"logits: {table['logits']}", head]
    for c, name in enumerate(table["class_names"]):
        row = (f"{name:<11}{100 * table['pixel_share'][c]:8.3f}{100 * table['image_fraction'][c]:6.0f}"
               f"{100 * table['batch_fraction'][c]:6.0f}")
        lines.append(row + "".join(f"{100 * table['shares'][s][c]:11.3f}" for s in schemes))
    if "loss_scale" in table:
        lines.append("loss_scale vs ce: " + ", ".join(
            f"{s} {v:.4g}" for s, v in table["loss_scale"].items()))
    if "scale_check" in table:
        r = table["scale_check"]["per_image_raw_over_per_image"]
        lines.append(f"per_image_raw / per_image gradient norm per batch: mean {r['mean']:.4g}, "
                     f"min {r['min']:.4g}, max {r['max']:.4g}, cv {r['cv']:.3f}; "
                     f"cosine min {r['cosine_min']:.4f}")
    if "adam_check" in table:
        a = table["adam_check"]
        lines.append(f"Adam, {a['steps']} steps, summed update: raw vs per_image cosine "
                     f"{a['per_image_raw_vs_per_image']['cosine']:.4f} norm ratio "
                     f"{a['per_image_raw_vs_per_image']['norm_ratio']:.4f}; ce vs per_image cosine "
                     f"{a['ce_vs_per_image']['cosine']:.4f} norm ratio "
                     f"{a['ce_vs_per_image']['norm_ratio']:.4f}; first parameter gradient raw vs "
                     f"per_image cosine {a['first_gradient_cosine_raw_vs_per_image']:.4f}, entries "
                     f"below eps: " + ", ".join(f"{s} {v:.1%}" for s, v in
                                                a["first_gradient_below_eps"].items()))
    return "\n".join(lines)


def _finite(obj):
    """JSON-safe copy: NaN / inf become None."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

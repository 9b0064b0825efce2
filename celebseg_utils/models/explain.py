"""DeepLabV3+ and its losses, measured: what the teaching figures and worked examples show.

Four questions about the model, each answered by a measurement on a Keras model rather
than a paper's figure:

- **receptive field** (:func:`input_gradient`, :func:`support_size`, :func:`mass_radius`):
  the input pixels one output logit depends on are those where its gradient with respect
  to the input is not zero. A stack of 3x3 convolutions with dilation rates ``r_i`` reaches
  ``1 + 2 * sum(r_i)`` pixels across (:func:`conv_stack` builds one to check this);
  dilation widens it with no extra weights, at the price of holes (rate 2 three times
  reads every other pixel only);
- **ASPP's branches** (:func:`aspp_tap_share`, :func:`aspp_taps`): a 3x3 branch of rate
  ``r`` reads 9 cells of the stride-32 map, ``r`` cells apart; on a small map most of them
  fall in the zero padding, so a large rate degenerates into a 1x1 convolution;
- **output stride** (:func:`feature_map_sizes`, :func:`block_majority`): the map sizes through
  keras-cv's DeepLabV3+ (stride 4 and 32 feature maps) and how much of a thin part survives
  at each stride when every cell is labelled perfectly;
- **the decoder's stride-4 skip** (:func:`without_skip`): the same trained model with its
  low-level (stride-4) features replaced by their per-image mean or by zeros, so that only
  the stride-32 ASPP output reaches the classifier (keras-cv and keras-hub models).

And the losses of the loss study on a 4x4 label map whose numbers can be checked by hand
(:func:`loss_example`), each computed by the package's own loss class.

>>> import numpy as np
>>> analytic_receptive_field([1, 1, 1]), analytic_receptive_field([2, 2, 2])
(7, 13)
>>> round(aspp_tap_share(map_size=4, rate=6), 4)   # 128 px: a rate-6 branch reads 1 tap in 9
0.1111
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from celebseg_utils.errors import CelebsegError

# --------------------------------------------------------------------------- receptive field


def analytic_receptive_field(rates: Sequence[int], kernel: int = 3) -> int:
    """Side, in pixels, of the receptive field of a stack of ``kernel`` x ``kernel``
    convolutions with dilation ``rates`` (stride 1): ``1 + (kernel - 1) * sum(rates)``.

    >>> analytic_receptive_field([1, 2, 3])
    13
    """
    return 1 + (int(kernel) - 1) * int(sum(int(r) for r in rates))


def conv_stack(rates: Sequence[int], size: int = 33):
    """A linear stack of one-channel 3x3 convolutions with dilation ``rates``, every kernel
    weight 1 and no bias: the gradient of an output pixel then counts the paths from each
    input pixel, so its support is exactly the receptive field.

    >>> conv_stack([1, 2], size=9).output.shape
    (None, 9, 9, 1)
    """
    import keras

    if not rates or min(int(r) for r in rates) < 1:
        raise CelebsegError(f"rates={list(rates)}: give one dilation rate >= 1 per convolution")
    inputs = keras.Input((size, size, 1))
    x = inputs
    for i, rate in enumerate(rates):
        x = keras.layers.Conv2D(1, 3, padding="same", dilation_rate=int(rate), use_bias=False,
                                kernel_initializer="ones", name=f"conv{i}_rate{rate}")(x)
    return keras.Model(inputs, x, name="conv_stack_" + "_".join(str(r) for r in rates))


def input_gradient(model, image: np.ndarray, row: int, col: int, channel: int | None = None
                   ) -> np.ndarray:
    """``|d logit[row, col, channel] / d input|`` summed over the input's channels: (H, W).

    ``image`` is one (H, W, C) input; ``channel`` None takes the class the model predicts
    at that pixel. Inference mode (BatchNorm uses its moving statistics).

    >>> g = input_gradient(conv_stack([1]), np.zeros((33, 33, 1), "float32"), 16, 16)
    >>> g[15:18, 15:18].tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(np.asarray(image, np.float32)[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = model(x, training=False)
        pixel = out[0, row, col]
        if channel is None:
            channel = int(tf.argmax(pixel))
        target = pixel[channel]
    grad = tape.gradient(target, x)
    return np.abs(grad.numpy()[0].astype(np.float64)).sum(axis=-1)


def support_size(gradient: np.ndarray) -> int:
    """Side of the bounding box of the pixels with a non-zero gradient: the measured
    receptive field (0 when the gradient is zero everywhere).

    >>> support_size(np.pad(np.ones((7, 5)), 3))
    7
    """
    rows, cols = np.nonzero(np.asarray(gradient))
    if rows.size == 0:
        return 0
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))


def mass_radius(gradient: np.ndarray, row: int, col: int, mass: float = 0.9) -> int:
    """Half-width ``r`` of the smallest square (side ``2r + 1``) centred on ``(row, col)``
    that holds ``mass`` of the total absolute gradient: the *effective* receptive field,
    which in a trained network is much smaller than the support.

    >>> g = np.zeros((9, 9)); g[4, 4] = 8; g[4, 6] = 2
    >>> mass_radius(g, 4, 4, 0.8), mass_radius(g, 4, 4, 0.9)
    (0, 2)
    """
    g = np.abs(np.asarray(gradient, np.float64))
    total = g.sum()
    if total == 0:
        return 0
    h, w = g.shape
    yy, xx = np.mgrid[0:h, 0:w]
    distance = np.maximum(np.abs(yy - row), np.abs(xx - col)).ravel()
    order = np.argsort(distance, kind="stable")
    cumulative = np.cumsum(g.ravel()[order])
    # every pixel at distance <= d is inside the square of half-width d
    per_radius = np.array([cumulative[np.searchsorted(distance[order], d, side="right") - 1]
                           for d in range(int(distance.max()) + 1)])
    return int(np.argmax(per_radius >= mass * total - 1e-12 * total))


# --------------------------------------------------------------------------- ASPP


def aspp_taps(map_size: int, rate: int, row: int, col: int) -> np.ndarray:
    """bool (map_size, map_size): the cells a 3x3 convolution of dilation ``rate`` reads
    for output cell ``(row, col)`` (taps in the zero padding are left out).

    >>> aspp_taps(4, 2, 1, 1).astype(int).tolist()
    [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]]
    """
    taps = np.zeros((map_size, map_size), bool)
    for dy in (-rate, 0, rate):
        for dx in (-rate, 0, rate):
            y, x = row + dy, col + dx
            if 0 <= y < map_size and 0 <= x < map_size:
                taps[y, x] = True
    return taps


def aspp_tap_share(map_size: int, rate: int) -> float:
    """Share of a 3x3 rate-``rate`` kernel's 9 taps that land inside a ``map_size`` square
    map, averaged over the map's cells (the rest read zero padding).

    >>> round(aspp_tap_share(4, 1), 4), round(aspp_tap_share(4, 3), 4)   # (2.5/3)^2, (1.5/3)^2
    (0.6944, 0.25)
    """
    if map_size < 1 or rate < 1:
        raise CelebsegError(f"map_size={map_size}, rate={rate}: both must be >= 1")
    i = np.arange(map_size)
    inside = sum(((i + d >= 0) & (i + d < map_size)).astype(float) for d in (-rate, 0, rate))
    per_axis = inside.mean() / 3.0
    return float(per_axis * per_axis)


# --------------------------------------------------------------------------- output stride


def _keras_cv_parts(model):
    """The layers of a keras-cv DeepLabV3Plus: (extractor, aspp, upsampling, projector,
    concatenate, head); CelebsegError for any other model."""
    import keras

    def find(test):
        return next((layer for layer in model.layers if test(layer)), None)

    extractor = find(lambda l: isinstance(l, keras.Model) and not isinstance(l, keras.Sequential)
                     and isinstance(getattr(l, "output", None), dict)
                     and {"P2", "P5"} <= set(l.output))
    projector = find(lambda l: isinstance(l, keras.Sequential) and l.layers
                     and l.layers[0].name == "low_level_feature_conv")
    parts = (extractor, getattr(model, "spatial_pyramid_pooling", None),
             find(lambda l: l.name == "encoder_output_upsampling"), projector,
             find(lambda l: isinstance(l, keras.layers.Concatenate)),
             getattr(model, "segmentation_head", None))
    if any(p is None for p in parts):
        raise CelebsegError(f"model {model.name!r} is not a keras-cv DeepLabV3Plus "
                            f"(model.library=keras_cv): its maps cannot be listed")
    return parts


def feature_map_sizes(model) -> list[dict]:
    """The maps through a keras-cv DeepLabV3+, input to logits: one row per stage with its
    ``name``, ``side`` (pixels of the square map), ``stride`` (input side / map side) and
    ``channels``.

    >>> from celebseg_utils.models.deeplab import build_model
    >>> rows = feature_map_sizes(build_model(backbone="mobilenet_v3_large", image_size=64))
    >>> [(r["name"], r["stride"]) for r in rows][:3]
    [('input', 1), ('backbone P2 (low-level)', 4), ('backbone P5', 32)]
    """
    extractor, aspp, upsampling, projector, concatenate, head = _keras_cv_parts(model)
    side = int(model.input_shape[1])

    def row(name, shape):
        return {"name": name, "side": int(shape[1]), "stride": side // int(shape[1]),
                "channels": int(shape[-1])}

    feats = extractor.output
    return [row("input", model.input_shape), row("backbone P2 (low-level)", feats["P2"].shape),
            row("backbone P5", feats["P5"].shape), row("ASPP", aspp.output.shape),
            row("ASPP upsampled x8", upsampling.output.shape),
            row("skip: P2 projected (1x1 conv)", projector.output.shape),
            row("decoder: concatenated", concatenate.output.shape),
            row("logits (upsampled x4)", head.output.shape)]


def block_majority(label: np.ndarray, stride: int) -> np.ndarray:
    """The label map a perfect classifier at ``stride`` can give: each ``stride`` x
    ``stride`` block takes its most frequent class (ties: the lower class id), spread back
    over the block: what a perfect classifier at that stride gives, upsampled by nearest
    neighbour.

    >>> block_majority(np.array([[0, 0, 5, 0], [0, 5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), 2).tolist()
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    """
    label = np.asarray(label)
    h, w = label.shape
    if h % stride or w % stride:
        raise CelebsegError(f"label {h}x{w} is not a multiple of stride {stride}")
    num = int(label.max()) + 1
    onehot = np.eye(num, dtype=np.int32)[label]
    counts = onehot.reshape(h // stride, stride, w // stride, stride, num).sum(axis=(1, 3))
    return np.repeat(np.repeat(counts.argmax(-1), stride, axis=0), stride, axis=1).astype(label.dtype)


# --------------------------------------------------------------------------- the skip


#: How :func:`without_skip` replaces the stride-4 features: kept (the model as trained),
#: each channel's per-image spatial mean (no spatial detail, the level the decoder expects)
#: or zeros (the wire cut).
SKIP_MODES = ("keep", "mean", "zero")


def without_skip(model, mode: str = "mean"):
    """The same DeepLabV3+ (its layers and weights shared, nothing retrained) with the
    decoder's stride-4 skip features replaced: ``mode`` one of :data:`SKIP_MODES`. With the
    skip gone, every logit comes from the stride-32 ASPP output, upsampled.

    The skip is the input of the decoder's ``Concatenate`` that sits at a quarter of the
    input's side; the graph is re-run by ``keras.models.clone_model`` (nested models too),
    reusing every layer, so both keras-cv's ``DeepLabV3Plus`` and the keras-hub model work.

    >>> import numpy as np
    >>> from celebseg_utils.models.deeplab import build_model
    >>> m = build_model(backbone="mobilenet_v3_large", image_size=64)
    >>> x = np.zeros((1, 64, 64, 3), "float32")
    >>> bool(np.allclose(without_skip(m, "keep")(x), m(x), atol=1e-5))
    True
    """
    import keras

    if mode not in SKIP_MODES:
        raise CelebsegError(f"mode={mode!r}: use one of {', '.join(SKIP_MODES)}")
    side = model.input_shape[1]
    found = []

    def is_skip(layer, inputs) -> bool:
        return (isinstance(layer, keras.layers.Concatenate) and isinstance(inputs, (list, tuple))
                and len(inputs) == 2 and side is not None and inputs[1].shape[1] is not None
                and 4 * int(inputs[1].shape[1]) == int(side))

    def call_function(layer, *args, **kwargs):
        if args and is_skip(layer, args[0]):
            found.append(layer.name)
            upsampled_aspp, low = args[0]
            if mode == "mean":
                # zeros + mean broadcasts over the map (a symbolic batch has no fixed shape)
                low = keras.ops.zeros_like(low) + keras.ops.mean(low, axis=(1, 2), keepdims=True)
            elif mode == "zero":
                low = keras.ops.zeros_like(low)
            return layer([upsampled_aspp, low], *args[1:], **kwargs)
        return layer(*args, **kwargs)

    try:
        clone = keras.models.clone_model(model, clone_function=lambda layer: layer,
                                         call_function=call_function, recursive=True)
    except ValueError as exc:
        raise CelebsegError(f"model {model.name!r} is not a DeepLabV3+ (a functional graph "
                            f"with a stride-4 skip): {exc}") from exc
    if len(found) != 1:
        raise CelebsegError(f"model {model.name!r} is not a DeepLabV3+: found {len(found)} "
                            f"stride-4 skip concatenations, expected 1")
    return clone


# --------------------------------------------------------------------------- losses, by hand

#: The worked example's classes (its own 3, so the softmax sums can be checked by hand).
EXAMPLE_CLASSES = ("background", "skin", "brow")
#: Its 4x4 label map: 10 background, 4 skin and 2 brow pixels.
EXAMPLE_LABELS = np.array([[0, 0, 0, 0],
                           [0, 2, 2, 0],
                           [0, 1, 1, 0],
                           [0, 1, 1, 0]])
#: The predicted probabilities at a pixel of each true class: right and sure on background
#: (0.8), half right on skin (0.5), wrong on the brow (0.25, background 0.5).
EXAMPLE_PROBS = {0: (0.8, 0.1, 0.1), 1: (0.25, 0.5, 0.25), 2: (0.5, 0.25, 0.25)}
#: The loss recipes the example computes, in teaching order.
EXAMPLE_LOSSES = ("sparse_ce", "pixel_weighted_ce", "weighted_ce", "dice", "jaccard")


@dataclass
class LossExample:
    """The 4x4 worked example: inputs, the intermediate numbers, and each loss's value."""

    labels: np.ndarray          # (4, 4) int
    probs: np.ndarray           # (4, 4, 3) softmax of ``logits``
    logits: np.ndarray          # (4, 4, 3) = ln(probs)
    smooth: float
    pixel_ce: np.ndarray        # (4, 4) -ln p(true class), from losses.SparseCE
    pixel_weights: np.ndarray   # (4, 4) weight_maps.per_image_pixel_weights
    class_weights: list         # stats.class_weights_from_counts(...)["median_freq"]
    soft_counts: dict           # {"I", "P", "G"}: per class, from losses.DiceLoss
    values: dict = field(default_factory=dict)  # recipe name -> loss value
    #: recipe name -> each class's share of the loss (its pixels' weighted CE, or its
    #: 1 - score term), in class order; they sum to 1
    class_shares: dict = field(default_factory=dict)

    def markdown(self, part: str) -> str:
        """Markdown of one part: ``"inputs"``, a name of :data:`EXAMPLE_LOSSES`, or
        ``"summary"`` (every loss's value and each class's share of it)."""
        return _example_markdown(self, part)


def loss_example(smooth: float = 1.0) -> LossExample:
    """Build the 4x4 example and compute every loss of :data:`EXAMPLE_LOSSES` with the
    package's own classes (``losses.get_loss``) and weights (``data.stats``). ``smooth`` is
    Dice's and Jaccard's ``s`` (1, as in training).

    >>> ex = loss_example()
    >>> {k: round(v, 4) for k, v in ex.values.items()}
    {'sparse_ce': 0.486, 'pixel_weighted_ce': 0.7675, 'weighted_ce': 0.5756, 'dice': 0.4129, 'jaccard': 0.5154}
    """
    from celebseg_utils.data import stats, weight_maps
    from celebseg_utils.models import losses

    labels = EXAMPLE_LABELS.copy()
    num = len(EXAMPLE_CLASSES)
    probs = np.array([[EXAMPLE_PROBS[int(c)] for c in row] for row in labels], np.float64)
    logits = np.log(probs).astype(np.float32)
    y = labels[None, ..., None]
    z = logits[None]
    counts = np.bincount(labels.ravel(), minlength=num)
    # the example is its own "split": each class's P_c is the image's 16 pixels
    class_weights = stats.class_weights_from_counts(counts, [labels.size] * num)["median_freq"]
    pixel_weights = weight_maps.per_image_pixel_weights(labels)
    sparse = losses.get_loss("sparse_ce", num_classes=num)
    dice = losses.get_loss("dice", num_classes=num, smooth=smooth)
    inter, pred_sum, gt_sum = (np.asarray(t, np.float64) for t in dice.soft_counts(y, z, None))
    values = {
        "sparse_ce": sparse(y, z),
        "pixel_weighted_ce": sparse(y, z, sample_weight=pixel_weights[None]),
        "weighted_ce": losses.get_loss("weighted_ce", num_classes=num,
                                       class_weights=class_weights)(y, z),
        "dice": dice(y, z),
        "jaccard": losses.get_loss("jaccard", num_classes=num, smooth=smooth)(y, z),
    }
    pixel_ce = np.asarray(sparse.call(y, z), np.float64)[0]
    per_pixel = {"sparse_ce": pixel_ce, "pixel_weighted_ce": pixel_ce * pixel_weights,
                 "weighted_ce": pixel_ce * np.asarray(class_weights)[labels]}
    shares = {name: np.bincount(labels.ravel(), weights=terms.ravel(), minlength=num)
              for name, terms in per_pixel.items()}
    shares["dice"] = 1.0 - (2 * inter + smooth) / (pred_sum + gt_sum + smooth)
    shares["jaccard"] = 1.0 - (inter + smooth) / (pred_sum + gt_sum - inter + smooth)
    return LossExample(
        labels=labels, probs=probs, logits=logits, smooth=float(smooth), pixel_ce=pixel_ce,
        pixel_weights=pixel_weights.astype(np.float64), class_weights=class_weights,
        soft_counts={"I": inter.tolist(), "P": pred_sum.tolist(), "G": gt_sum.tolist()},
        values={k: float(v) for k, v in values.items()},
        class_shares={k: (v / v.sum()).tolist() for k, v in shares.items()})


def _grid(values: np.ndarray, fmt: str) -> str:
    head = "| | col 0 | col 1 | col 2 | col 3 |\n|---|---:|---:|---:|---:|"
    rows = [f"| **row {i}** | " + " | ".join(fmt.format(v) for v in row) + " |"
            for i, row in enumerate(values)]
    return "\n".join([head, *rows])


def _example_markdown(ex: LossExample, part: str) -> str:
    names = EXAMPLE_CLASSES
    n = ex.labels.size
    counts = np.bincount(ex.labels.ravel(), minlength=len(names))
    p_true = np.take_along_axis(ex.probs, ex.labels[..., None], -1)[..., 0]
    ce = {c: float(ex.pixel_ce[ex.labels == c][0]) for c in range(len(names))}
    if part == "inputs":
        label_names = np.array([[names[c] for c in row] for row in ex.labels])
        probs = "\n".join(f"| {names[c]} | {counts[c]} | "
                          + " | ".join(f"{p:g}" for p in EXAMPLE_PROBS[c]) + " |"
                          for c in range(len(names)))
        return (f"**Label map** (4x4, {counts[0]} background, {counts[1]} skin, {counts[2]} "
                f"brow pixels):\n\n{_grid(label_names, '{}')}\n\n"
                "**Predicted probabilities** (the same at every pixel of a class):\n\n"
                "| true class | pixels | p(background) | p(skin) | p(brow) |\n"
                f"|---|---:|---:|---:|---:|\n{probs}\n\n"
                f"**p(true class)** per pixel:\n\n{_grid(p_true, '{:g}')}")
    if part == "sparse_ce":
        terms = " + ".join(f"{counts[c]}·{ce[c]:.4f}" for c in range(len(names)))
        return (f"Per-pixel $-\\ln p$: background {ce[0]:.4f}, skin {ce[1]:.4f}, brow "
                f"{ce[2]:.4f}.\n\n$L = ({terms}) / {n}$ = **{ex.values['sparse_ce']:.4f}**")
    if part == "pixel_weighted_ce":
        w = {c: float(ex.pixel_weights[ex.labels == c][0]) for c in range(len(names))}
        k = int(np.count_nonzero(counts))
        weights = ", ".join(f"{names[c]} {n}/({k}·{counts[c]}) = {w[c]:.4f}"
                            for c in range(len(names)))
        terms = " + ".join(f"{counts[c]}·{w[c]:.4f}·{ce[c]:.4f}" for c in range(len(names)))
        return (f"Pixel weights $N/(K\\,n_c)$: {weights}.\n\n$L = ({terms}) / {n}$ = "
                f"**{ex.values['pixel_weighted_ce']:.4f}**: each class present carries the "
                f"same total weight $N/K$, so this is the mean of the three classes' average "
                f"CE, ({ce[0]:.4f} + {ce[1]:.4f} + {ce[2]:.4f}) / 3.")
    if part == "weighted_ce":
        w = ex.class_weights
        freq = ", ".join(f"{counts[c]}/{n}" for c in range(len(names)))
        terms = " + ".join(f"{counts[c]}·{w[c]:.4g}·{ce[c]:.4f}" for c in range(len(names)))
        return (f"Frequencies $f_c = n_c / P_c$ = ({freq}) (each class's $P_c$ is this "
                f"image's {n} pixels), median {np.median(counts / n):g}, so "
                f"$w$ = ({', '.join(f'{x:.4g}' for x in w)}).\n\n$L = ({terms}) / {n}$ = "
                f"**{ex.values['weighted_ce']:.4f}**")
    if part in ("dice", "jaccard"):
        s = ex.smooth
        inter, pred, gt = (ex.soft_counts[k] for k in ("I", "P", "G"))
        rows, scores = [], []
        for c in range(len(names)):
            if part == "dice":
                score = (2 * inter[c] + s) / (pred[c] + gt[c] + s)
                text = f"(2·{inter[c]:g} + {s:g}) / ({pred[c]:g} + {gt[c]:g} + {s:g})"
            else:
                score = (inter[c] + s) / (pred[c] + gt[c] - inter[c] + s)
                text = f"({inter[c]:g} + {s:g}) / ({pred[c]:g} + {gt[c]:g} − {inter[c]:g} + {s:g})"
            scores.append(score)
            rows.append(f"| {names[c]} | {inter[c]:g} | {pred[c]:g} | {gt[c]:g} | {text} "
                        f"= {score:.4f} |")
        label = "Dice" if part == "dice" else "IoU"
        return ("| class | $I_c$ | $P_c$ | $G_c$ | soft " + label + " |\n|---|---:|---:|---:|---|\n"
                + "\n".join(rows) + f"\n\n$L = 1 - ({' + '.join(f'{x:.4f}' for x in scores)}) / 3$"
                f" = **{ex.values[part]:.4f}**")
    if part == "summary":
        brow_share = counts[2] / n
        rows = "\n".join(f"| `{name}` | {ex.values[name]:.4f} | "
                         + " | ".join(f"{100 * v:.0f}%" for v in ex.class_shares[name]) + " |"
                         for name in EXAMPLE_LOSSES)
        return (f"| loss | value | share: background | skin | brow |\n"
                f"|---|---:|---:|---:|---:|\n{rows}\n\nThe brow is {100 * brow_share:.1f}% of "
                f"the pixels and the worst-predicted class; the columns say how much of each "
                f"loss it makes up.")
    raise CelebsegError(f"part={part!r}: use 'inputs', 'summary' or one of "
                        f"{', '.join(EXAMPLE_LOSSES)}")

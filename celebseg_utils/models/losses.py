"""Segmentation losses on logits: CE, class-weighted CE, Dice, Jaccard, CE+Dice, Lovász, focal.

Every loss takes ``y_true`` as integer labels (B, H, W, 1) or (B, H, W), or one-hot
(B, H, W, C); ``y_pred`` as logits (B, H, W, C) of any float dtype (computed in float32);
and an optional per-pixel ``sample_weight`` (B, H, W). All are ``keras.losses.Loss``
subclasses, registered for serialisation, so ``model.compile(loss=get_loss("dice"))`` works
and saved models reload.

Two families, and how they use ``sample_weight``:

- pixel losses (``sparse_ce``, ``weighted_ce``, ``focal``) return one loss per pixel and
  Keras applies the weights and the reduction: ``sum(w * loss) / number_of_pixels`` (Keras's
  ``sum_over_batch_size``, the same as ``keras.losses.SparseCategoricalCrossentropy``);
- region losses (``dice``, ``jaccard``, ``lovasz``) return one scalar per batch: the per-class
  score is taken over all pixels of the batch, with pixel weights inside the soft counts
  (``I_c = sum w p_c g_c``), and averaged over the classes present in the batch's ground
  truth (optionally weighted by ``class_weights``). Lovász uses weights only as an ignore
  mask (weight 0 drops a pixel). ``ce_dice`` is ``ce_weight * CE + dice_weight * Dice``.

>>> import numpy as np
>>> from celebseg_utils.models.losses import get_loss
>>> y = np.array([[[[1]]]]); logits = np.array([[[[0.0, 20.0, 0.0]]]], "float32")
>>> float(get_loss("sparse_ce", num_classes=3)(y, logits)) < 1e-8
True
"""

from __future__ import annotations

import keras
from keras import ops

from celebseg_utils.errors import CelebsegError
from celebseg_utils.labels import NUM_CLASSES

try:  # divides by the replica count under tf.distribute, like every Keras loss does
    from keras.src.losses.loss import scale_loss_for_distribution
except ImportError:  # pragma: no cover - private helper moved
    def scale_loss_for_distribution(value):
        return value

_register = keras.saving.register_keras_serializable(package="celebseg")


def split_labels(y_true, num_classes: int):
    """(int labels (B,H,W), one-hot float32 (B,H,W,C)) from either label encoding.

    >>> import numpy as np
    >>> lab, oh = split_labels(np.array([[[[2]]]]), 3)
    >>> lab.numpy().tolist(), oh.numpy().tolist()
    ([[[2]]], [[[[0.0, 0.0, 1.0]]]])
    """
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == 4 and y_true.shape[-1] == num_classes and num_classes > 1:
        onehot = ops.cast(y_true, "float32")
        return ops.cast(ops.argmax(onehot, axis=-1), "int32"), onehot
    if len(y_true.shape) == 4:
        y_true = ops.squeeze(y_true, axis=-1)
    labels = ops.cast(ops.round(ops.cast(y_true, "float32")), "int32")
    return labels, ops.one_hot(labels, num_classes, dtype="float32")


class _Base(keras.losses.Loss):
    def __init__(self, num_classes=NUM_CLASSES, class_weights=None, name=None,
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name or self._default_name, reduction=reduction, dtype=dtype)
        self.num_classes = int(num_classes)
        if class_weights is not None:
            class_weights = [float(w) for w in class_weights]
            if len(class_weights) != self.num_classes:
                raise CelebsegError(f"class_weights has {len(class_weights)} values: give one "
                                    f"per class ({self.num_classes})")
        self.class_weights = class_weights

    def _class_weight_vector(self):
        if self.class_weights is None:
            return ops.ones((self.num_classes,), "float32")
        return ops.convert_to_tensor(self.class_weights, "float32")

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, class_weights=self.class_weights)
        return config


@_register
class SparseCE(_Base):
    """Softmax cross-entropy on logits, per pixel (== keras SparseCategoricalCrossentropy).

    >>> import numpy as np
    >>> float(SparseCE(num_classes=2)(np.array([[[[0]]]]), np.zeros((1, 1, 1, 2)))) # ln 2
    0.6931...
    """

    _default_name = "sparse_ce"

    def call(self, y_true, y_pred):
        _, onehot = split_labels(y_true, self.num_classes)
        logp = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        return -ops.sum(onehot * logp, axis=-1)


@_register
class WeightedCE(SparseCE):
    """Cross-entropy times ``class_weights[true class]`` per pixel (all ones == SparseCE).

    >>> import numpy as np
    >>> float(WeightedCE(2, class_weights=[2.0, 1.0])(np.array([[[[0]]]]), np.zeros((1, 1, 1, 2))))
    1.3862...
    """

    _default_name = "weighted_ce"

    def call(self, y_true, y_pred):
        _, onehot = split_labels(y_true, self.num_classes)
        pixel_weight = ops.sum(onehot * self._class_weight_vector(), axis=-1)
        return super().call(onehot, y_pred) * pixel_weight


@_register
class FocalLoss(SparseCE):
    """Focal loss (Lin et al. 2017): ``-alpha_t (1 - p_t)^gamma log p_t`` per pixel.

    ``alpha_t`` is ``class_weights[true class]`` (1 if none); ``gamma=0`` gives CE.

    >>> import numpy as np
    >>> float(FocalLoss(2, gamma=2.0)(np.array([[[[0]]]]), np.zeros((1, 1, 1, 2))))  # .25 ln 2
    0.1732...
    """

    _default_name = "focal"

    def __init__(self, num_classes=NUM_CLASSES, class_weights=None, gamma=2.0, **kwargs):
        super().__init__(num_classes, class_weights, **kwargs)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        _, onehot = split_labels(y_true, self.num_classes)
        logp_t = ops.sum(onehot * ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1), -1)
        alpha_t = ops.sum(onehot * self._class_weight_vector(), axis=-1)
        modulator = ops.power(1.0 - ops.exp(logp_t), self.gamma) if self.gamma else 1.0
        return -alpha_t * modulator * logp_t

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


class _RegionLoss(_Base):
    """A loss over the whole batch: sample weights go inside, the result is one scalar."""

    def __init__(self, num_classes=NUM_CLASSES, class_weights=None, smooth=1.0,
                 include_background=True, **kwargs):
        super().__init__(num_classes, class_weights, **kwargs)
        self.smooth = float(smooth)
        self.include_background = bool(include_background)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            return scale_loss_for_distribution(self.region_loss(y_true, y_pred, sample_weight))

    def call(self, y_true, y_pred):
        return self.region_loss(y_true, y_pred, None)

    def _inputs(self, y_true, y_pred, sample_weight):
        """(labels, one-hot, probs, weights), the last three flattened to (N, C) / (N, 1)."""
        labels, onehot = split_labels(y_true, self.num_classes)
        probs = ops.softmax(ops.cast(y_pred, "float32"), axis=-1)
        onehot = ops.reshape(onehot, (-1, self.num_classes))
        probs = ops.reshape(probs, (-1, self.num_classes))
        if sample_weight is None:
            weights = ops.ones_like(probs[:, :1])
        else:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        return labels, onehot, probs, weights

    def _mean_over_present(self, per_class_loss, gt_count):
        """Class-weighted mean over the classes present in the ground truth."""
        present = ops.cast(gt_count > 0, "float32") * self._class_weight_vector()
        if not self.include_background:
            present = present * ops.convert_to_tensor(
                [0.0] + [1.0] * (self.num_classes - 1), "float32")
        return ops.divide_no_nan(ops.sum(per_class_loss * present), ops.sum(present))

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth,
                "include_background": self.include_background}


@_register
class DiceLoss(_RegionLoss):
    """Soft multiclass Dice: ``1 - (2 I_c + s) / (P_c + G_c + s)`` averaged over present classes.

    ``I_c = sum w p_c g_c``, ``P_c = sum w p_c``, ``G_c = sum w g_c`` over the batch's pixels,
    ``p`` the softmax of the logits, ``s`` = ``smooth``.

    >>> import numpy as np
    >>> y = np.array([[[[0], [1]]]]); logits = np.array([[[[9.0, -9.0], [-9.0, 9.0]]]])
    >>> round(float(DiceLoss(2)(y, logits)), 3)
    0.0
    """

    _default_name = "dice"

    def soft_counts(self, y_true, y_pred, sample_weight):
        _, onehot, probs, weights = self._inputs(y_true, y_pred, sample_weight)
        inter = ops.sum(weights * probs * onehot, axis=0)
        return inter, ops.sum(weights * probs, axis=0), ops.sum(weights * onehot, axis=0)

    def region_loss(self, y_true, y_pred, sample_weight):
        inter, pred_sum, gt_sum = self.soft_counts(y_true, y_pred, sample_weight)
        dice = (2.0 * inter + self.smooth) / (pred_sum + gt_sum + self.smooth)
        return self._mean_over_present(1.0 - dice, gt_sum)


@_register
class JaccardLoss(DiceLoss):
    """Soft multiclass Jaccard (IoU): ``1 - (I_c + s) / (P_c + G_c - I_c + s)``, as Dice.

    >>> import numpy as np
    >>> y = np.array([[[[0], [1]]]]); logits = np.zeros((1, 1, 2, 2))  # p = 0.5 everywhere
    >>> round(float(JaccardLoss(2, smooth=0.0)(y, logits)), 4)  # 1 - 0.5 / 1.5
    0.6667
    """

    _default_name = "jaccard"

    def region_loss(self, y_true, y_pred, sample_weight):
        inter, pred_sum, gt_sum = self.soft_counts(y_true, y_pred, sample_weight)
        iou = (inter + self.smooth) / (pred_sum + gt_sum - inter + self.smooth)
        return self._mean_over_present(1.0 - iou, gt_sum)


@_register
class CEDiceLoss(DiceLoss):
    """``ce_weight * CE + dice_weight * Dice`` (CE class-weighted when class_weights given).

    >>> import numpy as np
    >>> y = np.array([[[[0], [1]]]]); logits = np.array([[[[9.0, -9.0], [-9.0, 9.0]]]])
    >>> round(float(CEDiceLoss(2)(y, logits)), 3)
    0.0
    """

    _default_name = "ce_dice"

    def __init__(self, num_classes=NUM_CLASSES, class_weights=None, ce_weight=1.0,
                 dice_weight=1.0, **kwargs):
        super().__init__(num_classes, class_weights, **kwargs)
        self.ce_weight, self.dice_weight = float(ce_weight), float(dice_weight)
        self._ce = WeightedCE(num_classes, class_weights) if class_weights else SparseCE(
            num_classes)

    def region_loss(self, y_true, y_pred, sample_weight):
        dice = DiceLoss.region_loss(self, y_true, y_pred, sample_weight)
        # The CE part is a pixel loss: unscaled mean here, __call__ scales the sum once.
        per_pixel = self._ce.call(y_true, y_pred)
        if sample_weight is not None:
            per_pixel = per_pixel * ops.reshape(ops.cast(sample_weight, "float32"),
                                                ops.shape(per_pixel))
        return self.ce_weight * ops.mean(per_pixel) + self.dice_weight * dice

    def _mean_over_present(self, per_class_loss, gt_count):
        # Dice part unweighted by class: class weights go to the CE part only.
        present = ops.cast(gt_count > 0, "float32")
        if not self.include_background:
            present = present * ops.convert_to_tensor(
                [0.0] + [1.0] * (self.num_classes - 1), "float32")
        return ops.divide_no_nan(ops.sum(per_class_loss * present), ops.sum(present))

    def get_config(self):
        return {**super().get_config(), "ce_weight": self.ce_weight,
                "dice_weight": self.dice_weight}


@_register
class LovaszSoftmax(_RegionLoss):
    """Lovász-softmax (Berman et al. 2018): a convex surrogate of 1 - IoU, per class.

    For each class present in the batch: sort the pixel errors ``|g_c - p_c|`` in
    decreasing order and dot them with the gradient of the Lovász extension of the Jaccard
    loss (computed from the sorted ground truth); average over present classes. Pixels of
    zero ``sample_weight`` are ignored (their error and label are zeroed, which sorts them
    last with no effect: the same as dropping them); other weight values are not used.

    >>> import numpy as np
    >>> y = np.array([[[[0], [1]]]]); logits = np.zeros((1, 1, 2, 2))  # errors all 0.5
    >>> round(float(LovaszSoftmax(2)(y, logits)), 4)
    0.5
    """

    _default_name = "lovasz"

    def region_loss(self, y_true, y_pred, sample_weight):
        _, onehot, probs, weights = self._inputs(y_true, y_pred, sample_weight)
        keep = ops.cast(weights > 0, "float32")
        fg = ops.transpose(onehot * keep)                       # (C, N)
        errors = ops.transpose(ops.abs(onehot - probs) * keep)  # (C, N)
        order = ops.flip(ops.argsort(ops.stop_gradient(errors), axis=-1), axis=-1)
        errors_sorted = ops.take_along_axis(errors, order, axis=-1)
        fg_sorted = ops.take_along_axis(fg, order, axis=-1)
        gts = ops.sum(fg_sorted, axis=-1, keepdims=True)
        intersection = gts - ops.cumsum(fg_sorted, axis=-1)
        union = gts + ops.cumsum(1.0 - fg_sorted, axis=-1)
        jaccard = 1.0 - intersection / union
        grad = ops.concatenate([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=-1)
        per_class = ops.sum(errors_sorted * ops.stop_gradient(grad), axis=-1)
        return self._mean_over_present(per_class, ops.sum(fg, axis=-1))


def categorical_ce(num_classes=NUM_CLASSES, class_weights=None, **kw):
    """Keras's own ``CategoricalCrossentropy`` on logits, for **one-hot** labels.

    The loss study's ``ce_onehot`` arm trains with it (``data.encoding=onehot``) as a
    cross-check of :class:`SparseCE` on integer labels: the two must agree up to rounding.

    >>> import numpy as np
    >>> y = np.eye(3, dtype="float32")[[[[2]]]][..., 0, :]; z = np.array([[[[0.0, 1.0, 2.0]]]], "float32")
    >>> abs(float(categorical_ce(3)(y, z)) - float(SparseCE(3)(np.array([[[[2]]]]), z))) < 1e-6
    True
    """
    if class_weights is not None:
        raise CelebsegError("loss 'categorical_ce' takes no class_weights: use 'weighted_ce'")
    del num_classes  # the one-hot labels carry it
    return keras.losses.CategoricalCrossentropy(from_logits=True, name="categorical_ce", **kw)


LOSSES: dict[str, type] = {
    "sparse_ce": SparseCE, "categorical_ce": categorical_ce, "weighted_ce": WeightedCE,
    "dice": DiceLoss, "jaccard": JaccardLoss, "ce_dice": CEDiceLoss, "lovasz": LovaszSoftmax,
    "focal": FocalLoss,
}


def get_loss(name: str, num_classes: int = NUM_CLASSES, class_weights=None, **kw):
    """The loss called ``name`` (one of ``LOSSES``); ``kw`` go to its constructor.

    ``class_weights`` (one per class): the pixel weight of ``weighted_ce`` (required there),
    ``alpha`` of ``focal``, the CE part of ``ce_dice``, and the weights of the class
    average of ``dice``, ``jaccard`` and ``lovasz``; ``sparse_ce`` refuses them.

    >>> import numpy as np
    >>> get_loss("dice", num_classes=19, smooth=0.5).smooth
    0.5
    """
    if name not in LOSSES:
        raise CelebsegError(f"unknown loss {name!r}: use one of {', '.join(LOSSES)}")
    if name == "weighted_ce" and class_weights is None:
        raise CelebsegError("loss 'weighted_ce' needs class_weights (e.g. stats.json's "
                            "class_weights['median_freq']); or use loss 'sparse_ce'")
    if name == "sparse_ce" and class_weights is not None:
        raise CelebsegError("loss 'sparse_ce' takes no class_weights: use 'weighted_ce'")
    try:
        return LOSSES[name](num_classes=num_classes, class_weights=class_weights, **kw)
    except TypeError as exc:
        raise CelebsegError(f"bad option for loss {name!r}: {exc}") from exc

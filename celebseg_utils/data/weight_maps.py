"""Per-pixel loss weights from a label map, in numpy and their TensorFlow twins.

* :func:`per_image_pixel_weights`: pixel weight ``N / (K * n_c)`` with counts of the image
  itself, i.e. each pixel weighted by the inverse of how many pixels of its class the image
  has, normalised so the image's weights average to 1 (the study's ``per_image`` arm).
* :func:`class_weight_map`: the global class weight of each pixel (``class_weights`` from
  :mod:`~celebseg_utils.data.stats`).

The ``*_tf`` twins compute the same inside the input pipeline (:mod:`~celebseg_utils.data.pipeline`).

Worked example, a 4x4 label with 10 background, 4 skin (1) and 2 hair (13) pixels:
N = 16, K = 3, so background pixels weigh 16/30, skin 16/12, hair 16/6.

>>> import numpy as np
>>> label = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 13, 13]])
>>> [round(float(v), 4) for v in per_image_pixel_weights(label)[3]]
[1.3333, 1.3333, 2.6667, 2.6667]
>>> float(per_image_pixel_weights(label).mean())
1.0
"""

from __future__ import annotations

import numpy as np

from celebseg_utils import labels as L


def _as_2d(label) -> np.ndarray:
    label = np.asarray(label)
    return label[..., 0] if label.ndim == 3 and label.shape[-1] == 1 else label


def per_image_pixel_weights(label) -> np.ndarray:
    """float32 (H, W): pixel of class c weighs ``N / (K * n_c)`` with ``n_c`` its class's
    pixels in this image, ``N`` the image's pixels, ``K`` the classes in it (mean 1).

    >>> [round(float(v), 4) for v in per_image_pixel_weights([[0, 0, 0, 5]])[0]]
    [0.6667, 0.6667, 0.6667, 2.0]
    """
    label = _as_2d(label).astype(np.intp)
    counts = np.bincount(label.ravel(), minlength=L.NUM_CLASSES).astype(np.float64)
    k = np.count_nonzero(counts)
    per_class = np.divide(label.size, k * counts, out=np.zeros_like(counts), where=counts > 0)
    return per_class[label].astype(np.float32)


def class_weight_map(label, class_weights) -> np.ndarray:
    """float32 (H, W): ``class_weights[label]``, the global weight of each pixel's class.

    >>> class_weight_map([[0, 13]], [0.5] + [1.0] * 12 + [3.0] + [1.0] * 5).tolist()
    [[0.5, 3.0]]
    """
    return np.asarray(class_weights, dtype=np.float32)[_as_2d(label).astype(np.intp)]


def per_image_pixel_weights_tf(label):
    """TensorFlow twin of :func:`per_image_pixel_weights`: (H, W) or (H, W, 1) labels give
    (H, W); a batch (B, H, W, 1) gives (B, H, W), each image on its own. XLA-compatible
    (counts by segment sum).

    >>> float(per_image_pixel_weights_tf([[0, 0, 0, 5]])[0, 3])
    2.0
    """
    import tensorflow as tf

    label = tf.cast(tf.convert_to_tensor(label), tf.int32)
    if label.shape.rank == 4 or (label.shape.rank == 3 and label.shape[-1] != 1):
        label = label[..., 0] if label.shape.rank == 4 else label
        batch, n = tf.shape(label)[0], tf.size(label[0])
        flat = tf.reshape(label, [batch, -1]) + L.NUM_CLASSES * tf.range(batch)[:, None]
    else:
        label = label[..., 0] if label.shape.rank == 3 else label
        batch, n, flat = 1, tf.size(label), label
    counts = tf.math.unsorted_segment_sum(tf.ones_like(flat, tf.float32), flat, L.NUM_CLASSES * batch)
    counts = tf.reshape(counts, [batch, L.NUM_CLASSES])
    k = tf.reduce_sum(tf.cast(counts > 0, tf.float32), axis=1, keepdims=True)
    per_class = tf.math.divide_no_nan(tf.cast(n, tf.float32), k * counts)
    return tf.reshape(tf.gather(tf.reshape(per_class, [-1]), flat), tf.shape(label))


def class_weight_map_tf(label, class_weights):
    """TensorFlow twin of :func:`class_weight_map` ((..., H, W) or (..., H, W, 1) labels).

    >>> class_weight_map_tf([[0, 13]], [0.5] + [1.0] * 12 + [3.0] + [1.0] * 5).numpy().tolist()
    [[0.5, 3.0]]
    """
    import tensorflow as tf

    label = tf.convert_to_tensor(label)
    if label.shape.rank in (3, 4) and label.shape[-1] == 1:
        label = label[..., 0]
    return tf.gather(tf.constant(class_weights, tf.float32), tf.cast(label, tf.int32))

"""Random augmentation of a (photo, label map) pair, identical geometry for both.

One affine warp does flip, scale, crop (shift) and rotation at once, straight from the
decoded photo and label to the training size: bilinear for the photo, nearest neighbour for
the label (ids are never blended), outside the source filled with 0 (black photo,
background label). A mirrored label has its left/right ids swapped
(``labels.FLIP_PERMUTATION``). Colour jitter (brightness, contrast, saturation) touches the
photo only. Pixel weights are computed afterwards from the final label (see ``data``).

All randomness is in one small parameter vector drawn by :func:`sample_params` from a
stateless seed, so the same (seed, element index) always gives the same augmentation. The
warp and jitter are XLA-compiled: on CPU a fused kernel is ~3x faster than the separate ops
(set ``CELEBSEG_NO_XLA=1`` to run them unfused).

>>> import numpy as np
>>> label = np.zeros((4, 4, 1), np.uint8); label[:, 0] = 4            # l_eye on the left
>>> photo = np.zeros((4, 4, 3), np.uint8)
>>> _, out = augment(photo, label, identity_params(flip=True), 4)
>>> out[:, :, 0].numpy()[0].tolist()                                   # r_eye on the right
[0, 0, 0, 5]
"""

from __future__ import annotations

import math
import os

import tensorflow as tf

from celebseg_utils import labels as L

FLIP_PROB = 0.5
#: Zoom factor range (> 1 zooms in, < 1 zooms out with a 0-filled border).
SCALE_RANGE = (0.8, 1.25)
MAX_ROTATION_DEG = 10.0
#: Extra random shift, as a fraction of half the image, beyond what the zoom allows.
MAX_SHIFT = 0.05
MAX_BRIGHTNESS = 25.0  # in 0..255 units
CONTRAST_RANGE = (0.8, 1.2)
SATURATION_RANGE = (0.8, 1.2)

#: Order of the parameter vector.
PARAMS = ("flip", "scale", "angle", "shift_x", "shift_y", "brightness", "contrast", "saturation")
NUM_PARAMS = len(PARAMS)
_GRAY = (0.299, 0.587, 0.114)


def identity_params(flip: bool = False):
    """The parameter vector of no change (optionally a pure mirror), float32 (8,)."""
    return tf.constant([float(flip), 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0], tf.float32)


def sample_params(seed):
    """Random augmentation parameters, float32 (8,), from a stateless seed (int (2,)).

    >>> p = sample_params([0, 7]); bool(tf.reduce_all(p == sample_params([0, 7])))
    True
    """
    u = tf.random.stateless_uniform([NUM_PARAMS], seed=tf.cast(seed, tf.int64))
    lo, hi = SCALE_RANGE
    # Log-uniform zoom: zooming in by 1.25 is as likely as out by 1 / 1.25.
    scale = tf.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u[1])
    reach = tf.abs(1.0 - 1.0 / scale) + MAX_SHIFT
    angle = (2.0 * u[2] - 1.0) * math.radians(MAX_ROTATION_DEG)
    between = lambda x, r: r[0] + (r[1] - r[0]) * x  # noqa: E731
    return tf.stack([
        tf.cast(u[0] < FLIP_PROB, tf.float32), scale, angle,
        (2.0 * u[3] - 1.0) * reach, (2.0 * u[4] - 1.0) * reach,
        (2.0 * u[5] - 1.0) * MAX_BRIGHTNESS, between(u[6], CONTRAST_RANGE),
        between(u[7], SATURATION_RANGE),
    ])


def _source_coords(params, size: int, height, width, row0=0, rows: int | None = None):
    """Source pixel coordinates (x, y), each (rows, size), of output rows ``row0`` onwards
    (default: all ``size`` rows).

    Coordinates are centred half-integers, so the identity and a pure mirror map exactly
    onto source pixel centres (no interpolation blur) when source/size is a power of two.
    """
    u = tf.range(size, dtype=tf.float32) + (0.5 - size / 2)
    v = tf.cast(row0 + tf.range(size if rows is None else rows), tf.float32) + (0.5 - size / 2)
    v, u = tf.meshgrid(v, u, indexing="ij")
    u = tf.where(params[0] > 0.5, -u, u)
    c, s = tf.cos(params[2]) / params[1], tf.sin(params[2]) / params[1]
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    x = (c * u - s * v) * (w / size) + (1.0 + params[3]) * (w / 2) - 0.5
    y = (s * u + c * v) * (h / size) + (1.0 + params[4]) * (h / 2) - 0.5
    return x, y


def _take(flat, xi, yi, height, width):
    inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
    idx = tf.clip_by_value(yi, 0, height - 1) * width + tf.clip_by_value(xi, 0, width - 1)
    return tf.gather(flat, idx), inside


def warp_label(label, params, size: int, row0=0, rows: int | None = None):
    """Nearest-neighbour warp of an (h, w, 1) label to (size, size, 1), 0 outside, with the
    left/right ids swapped when ``params`` mirrors; only output rows ``row0 .. row0+rows``
    when ``rows`` is given."""
    h, w = tf.shape(label)[0], tf.shape(label)[1]
    x, y = _source_coords(params, size, h, w, row0, rows)
    xi = tf.cast(tf.floor(x + 0.5), tf.int32)
    yi = tf.cast(tf.floor(y + 0.5), tf.int32)
    out, inside = _take(tf.reshape(label, [-1]), xi, yi, h, w)
    out = tf.where(inside, out, tf.zeros_like(out))
    swapped = tf.gather(tf.constant(L.FLIP_PERMUTATION, out.dtype), tf.cast(out, tf.int32))
    return tf.where(params[0] > 0.5, swapped, out)[..., None]


def warp_image(image, params, size: int, row0=0, rows: int | None = None):
    """Bilinear warp of an (h, w, 3) photo to float32 (size, size, 3), 0 outside (rows
    ``row0 .. row0+rows`` only when ``rows`` is given)."""
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    x, y = _source_coords(params, size, h, w, row0, rows)
    x0f, y0f = tf.floor(x), tf.floor(y)
    fx, fy = (x - x0f)[..., None], (y - y0f)[..., None]
    x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
    flat = tf.reshape(image, [-1, 3])

    def tap(yy, xx):
        v, inside = _take(flat, xx, yy, h, w)
        return tf.cast(v, tf.float32) * tf.cast(inside, tf.float32)[..., None]

    top = tap(y0, x0) + (tap(y0, x0 + 1) - tap(y0, x0)) * fx
    bottom = tap(y0 + 1, x0) + (tap(y0 + 1, x0 + 1) - tap(y0 + 1, x0)) * fx
    return top + (bottom - top) * fy


def colour_jitter(image, params, mean_gray=None):
    """Saturation (blend with grey), contrast (around the mean grey ``mean_gray``, default
    the image's own) and brightness of a float32 0..255 photo, clipped to 0..255."""
    gray = tf.reduce_sum(image * tf.constant(_GRAY), axis=-1, keepdims=True)
    image = gray + (image - gray) * params[7]
    mean = tf.reduce_mean(gray) if mean_gray is None else mean_gray
    return tf.clip_by_value((image - mean) * params[6] + mean + params[5], 0.0, 255.0)


#: Output rows warped per step (an XLA while loop over bands). A band's coordinates, taps
#: and jitter stay in the caches: +7% images per CPU-second and +8% images/s at 512 px on
#: 2 cores, measured side by side; bands of 8-16 rows lose it to loop overhead, 64-128 rows
#: gain 3%.
BAND_ROWS = 32


def _augment(image, label, params, size: int):
    # The contrast pivot from a 1/16 subsample of the source saves a pass over the output;
    # rounding to uint8 moves 4x fewer bytes through batching (0.5 levels, below JPEG noise).
    mean_gray = tf.reduce_mean(tf.cast(image[::4, ::4], tf.float32) * tf.constant(_GRAY)) * 3.0

    def rows(row0, count):
        photo = colour_jitter(warp_image(image, params, size, row0, count), params, mean_gray)
        return tf.cast(photo + 0.5, tf.uint8), warp_label(label, params, size, row0, count)

    if size % BAND_ROWS or size == BAND_ROWS:
        return rows(0, size)
    photos, labels = tf.map_fn(lambda b: rows(b * BAND_ROWS, BAND_ROWS), tf.range(size // BAND_ROWS),
                               fn_output_signature=(tf.uint8, label.dtype))
    return tf.reshape(photos, [size, size, 3]), tf.reshape(labels, [size, size, 1])


def _compiled(fn):
    return tf.function(fn, jit_compile=os.environ.get("CELEBSEG_NO_XLA") != "1",
                       reduce_retracing=True)


_augment_compiled = _compiled(_augment)
_resize_label_compiled = _compiled(lambda label, size: warp_label(label, identity_params(), size))


def augment(image, label, params, size: int):
    """Warp photo (h, w, 3) and label (h', w', 1) with ``params`` to ``size``; jitter the
    photo. Returns the photo uint8 (size, size, 3) (rounded) and the label (size, size, 1)
    in the label's dtype. The photo and label may have different sizes (1024 vs 512 px): the
    warp is defined on normalised coordinates, so both get the same geometry.
    """
    image, label = _augment_compiled(tf.convert_to_tensor(image), tf.convert_to_tensor(label),
                                     tf.convert_to_tensor(params, tf.float32), size)
    image.set_shape([size, size, 3])
    label.set_shape([size, size, 1])
    return image, label


def resize_label(label, size: int):
    """Nearest-neighbour resize of an (h, w, 1) label to (size, size, 1); the identity when
    h = w = size.

    >>> resize_label(tf.reshape(tf.range(16), [4, 4, 1]), 2)[..., 0].numpy().tolist()
    [[5, 7], [13, 15]]
    """
    out = _resize_label_compiled(tf.convert_to_tensor(label), size)
    out.set_shape([size, size, 1])
    return out

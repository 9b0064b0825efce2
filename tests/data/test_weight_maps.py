"""Per-pixel weights (numpy and their TensorFlow twins) against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from celebseg_utils.data import weight_maps

# Image A: 10 background, 4 skin, 2 hair. Image B: 8 background, 8 skin.
LABEL_A = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 13, 13]], np.uint8)
LABEL_B = np.array([[0, 0, 1, 1]] * 4, np.uint8)


def test_per_image_weights_on_the_4x4_example():
    w = weight_maps.per_image_pixel_weights(LABEL_A)
    assert w.dtype == np.float32 and w.shape == (4, 4)
    # N = 16, K = 3: background 16/30, skin 16/12, hair 16/6.
    assert w[0, 0] == pytest.approx(0.533333) and w[2, 2] == pytest.approx(1.333333)
    assert w[3, 3] == pytest.approx(2.666667)
    assert w.mean() == pytest.approx(1.0)
    # Every class carries the same total weight N / K.
    assert [w[LABEL_A == c].sum() for c in (0, 1, 13)] == pytest.approx([16 / 3] * 3)
    assert weight_maps.per_image_pixel_weights(np.zeros((3, 3), np.uint8)).tolist() == [[1.0] * 3] * 3


def test_class_weight_map_looks_up_each_pixel():
    weights = np.arange(19, dtype=np.float32) / 10
    out = weight_maps.class_weight_map(LABEL_A[..., None], weights)
    assert out.shape == (4, 4)
    assert out[0, 0] == 0.0 and out[3, 0] == pytest.approx(0.1) and out[3, 3] == pytest.approx(1.3)


def test_tensorflow_twins_equal_numpy():
    weights = np.linspace(0.1, 2.0, 19).astype(np.float32)
    for label in (LABEL_A, LABEL_B, np.random.default_rng(0).integers(0, 19, (8, 8)).astype(np.uint8)):
        np.testing.assert_allclose(weight_maps.per_image_pixel_weights_tf(label[..., None]).numpy(),
                                   weight_maps.per_image_pixel_weights(label), rtol=1e-6)
        np.testing.assert_array_equal(weight_maps.class_weight_map_tf(label, weights).numpy(),
                                      weight_maps.class_weight_map(label, weights))
    batch = np.stack([LABEL_A, LABEL_B, np.zeros((4, 4), np.uint8)])[..., None]  # (3, 4, 4, 1)
    out = weight_maps.per_image_pixel_weights_tf(batch).numpy()
    assert out.shape == (3, 4, 4)
    for got, label in zip(out, batch[..., 0]):  # each image normalised on its own
        np.testing.assert_allclose(got, weight_maps.per_image_pixel_weights(label), rtol=1e-6)

"""The XLA-compilable ASPP: the same function as keras-cv's, and its separable variant."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from celebseg_utils.models import aspp as aspp_module
from celebseg_utils.models.aspp import AtrousSpatialPyramidPooling


def test_same_output_as_keras_cv_with_the_same_weights():
    from celebseg_utils.models.backbones import import_keras_cv

    keras_cv = import_keras_cv()
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
    theirs = keras_cv.layers.SpatialPyramidPooling(dilation_rates=[1, 2, 3], num_channels=16)
    ours = AtrousSpatialPyramidPooling(rates=(1, 2, 3), channels=16)
    theirs(x), ours(x)
    # the same branches in the same order: 1x1, three 3x3, pooling, then the projection
    src = [w for b in theirs.aspp_parallel_channels for w in b.weights] + theirs.projection.weights
    dst = ([w for b in ours.branches for w in b.weights] + ours.pool_projection.weights
           + ours.projection.weights)
    assert [tuple(w.shape) for w in src] == [tuple(w.shape) for w in dst]
    for s, d in zip(src, dst):
        d.assign(s)
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-5)


def test_separable_branches_cost_less_and_round_trip(tmp_path):
    import keras

    plain = AtrousSpatialPyramidPooling((1, 2, 3), 32)
    sep = AtrousSpatialPyramidPooling((1, 2, 3), 32, separable=True)
    x = np.ones((1, 4, 4, 64), "float32")
    plain(x), sep(x)
    assert sep.count_params() < plain.count_params() / 3
    inputs = keras.Input((4, 4, 64))
    model = keras.Model(inputs, sep(inputs))
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(x), model(x), atol=1e-6)


@pytest.mark.slow
def test_the_model_with_our_aspp_compiles_with_xla():
    import keras

    from celebseg_utils.models.deeplab import build_model

    model = build_model(backbone="mobilenet_v3_large", image_size=64, aspp="separable",
                        aspp_rates=[1, 2, 3], aspp_channels=32, decoder_channels=32)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    x = np.zeros((2, 64, 64, 3), "float32")
    y = np.zeros((2, 64, 64, 1), "int32")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.jit_compile is True  # Keras turns it off when a layer does not support XLA


def test_module_examples_run():
    assert doctest.testmod(aspp_module).failed == 0

"""engine.inference: one loader (run, .keras, SavedModel), one input size, one way to run."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from celebseg_utils import labels as L
from celebseg_utils.engine import inference
from celebseg_utils.errors import CelebsegError


def _conv_model(size=24, classes=L.NUM_CLASSES, seed=0):
    """A small random two-layer convnet: enough for its outputs to depend on every pixel."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 3, padding="same")(x))


class _Shape:
    """Stands in for a model: only its input shape is read."""

    name = "stand-in"

    def __init__(self, *input_shape):
        self.input_shape = input_shape


def test_input_size_is_read_one_way():
    assert inference.input_size(_Shape(None, 128, 128, 3)) == 128
    assert inference.input_size(_Shape(None, 128, None, 3)) == 128  # one side given
    assert inference.input_size(_Shape(None, None, None, 3), default=512) == 512
    with pytest.raises(CelebsegError, match="no fixed input size"):
        inference.input_size(_Shape(None, None, None, 3))
    with pytest.raises(CelebsegError, match="non-square"):
        inference.input_size(_Shape(None, 64, 128, 3))


def test_every_failure_to_load_has_its_one_text(tmp_path):
    with pytest.raises(CelebsegError, match="model .*nope.keras not found: train one"):
        inference.load_model(tmp_path / "nope.keras")
    with pytest.raises(CelebsegError, match="is a folder without a final.keras: .*SavedModel"):
        inference.load_model(tmp_path)
    (tmp_path / "cut.keras").write_bytes(b"PK\x03\x04 and then nothing")
    with pytest.raises(CelebsegError, match="cut.keras is not a .keras archive"):
        inference.load_model(tmp_path / "cut.keras")
    (tmp_path / "weights.h5").write_bytes(b"not a model at all")
    with pytest.raises(CelebsegError, match="cannot load model .*weights.h5: "):
        inference.load_model(tmp_path / "weights.h5")
    with pytest.raises(CelebsegError, match="predicts 5 classes"):
        inference.load_model(_conv_model(classes=5))
    model = _conv_model()
    assert inference.load_model(model) is model


def test_a_run_directory_and_its_keras_file_load_the_same_model(tmp_path):
    model = _conv_model()
    model.save(tmp_path / "final.keras")
    assert inference.model_file(tmp_path) == tmp_path / "final.keras"
    photo = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    expected = inference.predict_logits(model, [photo])[0]
    for source in (tmp_path, tmp_path / "final.keras", str(tmp_path / "final.keras")):
        np.testing.assert_array_equal(inference.predict_logits(source, [photo])[0], expected)


@pytest.mark.slow
def test_a_savedmodel_loads_and_predicts_like_its_keras_model(tmp_path):
    from celebseg_utils.engine.export import export_model

    model = _conv_model()
    model.save(tmp_path / "m.keras")
    export_model(tmp_path / "m.keras", "savedmodel", tmp_path / "sm")
    loaded = inference.load_model(tmp_path / "sm")
    assert inference.model_file(tmp_path / "sm") == tmp_path / "sm"
    assert inference.input_size(loaded) == 24 and loaded.output_shape == (None, 24, 24, 19)
    photo = np.random.default_rng(1).integers(0, 256, (50, 30, 3), dtype=np.uint8)
    keras_labels = inference.predict_labels(model, [photo], tta="flip")[0]
    sm_labels = inference.predict_labels(tmp_path / "sm", [photo], tta="flip")[0]
    np.testing.assert_array_equal(sm_labels, keras_labels)
    # a folder with a final.keras is a run directory, whatever else it holds
    shutil.copy(tmp_path / "m.keras", tmp_path / "sm" / "final.keras")
    assert inference.model_file(tmp_path / "sm") == tmp_path / "sm" / "final.keras"


def test_predict_labels_are_the_argmax_of_the_logits_at_the_photo_size():
    model = _conv_model()
    photos = [np.random.default_rng(k).integers(0, 256, shape, dtype=np.uint8)
              for k, shape in enumerate([(30, 40, 3), (24, 24, 3), (61, 17, 3)])]
    labels = inference.predict_labels(model, photos, tta="flip", batch_size=2)
    logits = inference.predict_logits(model, photos, tta="flip", batch_size=2)
    assert [lab.shape for lab in labels] == [(30, 40), (24, 24), (61, 17)]
    for lab, lg in zip(labels, logits):
        assert lab.dtype == np.uint8
        np.testing.assert_array_equal(lab, lg.argmax(-1))
    # at the model's own size nothing is resized: the logits are the model's, unchanged
    direct = np.asarray(model(photos[1][None].astype(np.float32), training=False))[0]
    np.testing.assert_allclose(inference.predict_logits(model, [photos[1]])[0], direct,
                               rtol=0, atol=1e-6)


def test_bad_arguments_are_refused():
    model = _conv_model()
    photo = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(CelebsegError, match="tta='mirror' unknown"):
        inference.predict_logits(model, [photo], tta="mirror")
    with pytest.raises(CelebsegError, match="batch_size=0 must be at least 1"):
        inference.predict_logits(model, [photo], batch_size=0)
    with pytest.raises(CelebsegError, match="pad mode 'wrap' unknown"):
        inference.predict_logits(model, [photo], pad_mode="wrap")

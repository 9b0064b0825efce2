"""The one evaluation loop: both protocols counted by hand on a model of known output."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from PIL import Image

from test_train import make_tiny_prepared

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.engine import scoring


def constant_model(size: int, winner: int):
    """A model whose logits make every pixel ``winner`` (a 1x1 conv with a bias only)."""
    import keras

    inputs = keras.Input((size, size, 3))
    bias = np.full(L.NUM_CLASSES, -5.0, np.float32)
    bias[winner] = 5.0
    outputs = keras.layers.Conv2D(L.NUM_CLASSES, 1, kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant(bias))(inputs)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return make_tiny_prepared(tmp_path_factory.mktemp("scoring"), count=16, image_size=64)


def test_both_protocols_count_every_pixel_of_a_constant_prediction(prepared):
    ids = layout.read_split(prepared, "test")
    scored = scoring.score_split(constant_model(32, winner=1), prepared, "test",
                                 batch_size=3, protocols=scoring.PROTOCOLS, keep_ids=ids[:1])
    full = scored["label_size"]
    truth = [np.asarray(Image.open(layout.label_path(prepared, k))) for k in ids]
    # every pixel predicted skin: column 1 of the confusion matrix is each true class's count
    want = np.bincount(np.concatenate([t.ravel() for t in truth]), minlength=L.NUM_CLASSES)
    np.testing.assert_array_equal(full.confusion[:, 1], want)
    assert full.confusion.sum() == want.sum() == len(ids) * 64 * 64
    assert full.image_size == 64 and scored["model_size"].image_size == 32
    assert scored["model_size"].confusion.sum() == len(ids) * 32 * 32
    # per-image counts add up to the summed matrix
    for s in scored.values():
        np.testing.assert_array_equal(s.tp.sum(0), np.diag(s.confusion))
        np.testing.assert_array_equal(s.fp.sum(0), s.confusion.sum(0) - np.diag(s.confusion))
        np.testing.assert_array_equal(s.fn.sum(0), s.confusion.sum(1) - np.diag(s.confusion))
    first = truth[0]
    assert full.tp[0, 1] == (first == 1).sum() and full.fp[0, 1] == (first != 1).sum()
    assert full.predictions[ids[0]].shape == (64, 64) and (full.predictions[ids[0]] == 1).all()
    results = full.results(arm="x")
    assert results["protocol"] == "label_size" and results["arm"] == "x"
    assert results["per_class"]["skin"]["recall"] == 1.0
    assert results["num_images"] == len(ids)


def test_evaluate_and_the_loop_agree(prepared, tmp_path):
    from celebseg_utils.engine.evaluate import evaluate_model

    model = constant_model(32, winner=13)
    via_evaluate = evaluate_model(model, prepared, "test", progress=False, protocol="label_size")
    direct = scoring.score_split(model, prepared, "test", protocols=("label_size",))
    assert via_evaluate["confusion_matrix"] == direct["label_size"].confusion.tolist()
    assert via_evaluate["protocol"] == "label_size"


def test_unknown_protocol_and_bad_batch_are_user_errors(prepared):
    from celebseg_utils.errors import CelebsegError

    with pytest.raises(CelebsegError, match="unknown scoring protocol 'pixels'"):
        scoring.score_split(constant_model(32, 0), prepared, protocols=("pixels",))
    with pytest.raises(CelebsegError, match="--batch-size must be at least 1"):
        scoring.score_split(constant_model(32, 0), prepared, batch_size=0)


def test_saved_counts_round_trip(prepared, tmp_path):
    s = scoring.score_split(constant_model(32, 2), prepared, "val")["model_size"]
    path = s.save_counts(tmp_path / "c.npz")
    with np.load(path) as z:
        np.testing.assert_array_equal(z["tp"], s.tp)
        assert z["tp"].dtype == np.int32 and list(z["ids"]) == list(s.ids)


def test_module_examples_run():
    assert doctest.testmod(scoring).failed == 0

"""The fast tier's model check: DeepLabV3+ (MobileNetV3, 64 px) forward and one training step.

``make test`` leaves out the four-backbone builds of test_deeplab (marked ``slow``); this file
keeps the model in the fast tier at the smallest size the architecture takes (64 px, batch 2):
the logits contract of the forward pass, and an optimizer step with the project's loss and metric
that moves the weights and lowers the loss on that batch.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from celebseg_utils.models import losses, metrics
from celebseg_utils.models.deeplab import build_model

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
LABELS = np.random.default_rng(1).integers(0, 19, (2, 64, 64, 1)).astype(np.int32)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_model(backbone="mobilenet_v3_large", library="keras_hub", image_size=64,
                       bn_momentum=0.9, aspp_rates=[1, 2, 3])


def test_forward_pass_returns_float32_logits_at_full_resolution(model):
    out = model(IMAGES, training=False)
    assert tuple(out.shape) == (2, 64, 64, 19) and out.dtype == "float32"
    out = np.asarray(out)
    assert np.isfinite(out).all()
    # logits, not probabilities: negative values, sums over classes far from 1
    assert out.min() < 0 and np.abs(out.sum(-1) - 1).mean() > 0.1
    # the same image alone gives the same logits as in the batch (no batch coupling at inference)
    np.testing.assert_allclose(np.asarray(model(IMAGES[:1], training=False))[0], out[0],
                               rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")
def test_one_training_step_moves_the_weights_and_lowers_the_loss(model):
    # Eagerly: the step's arithmetic is the same, without the ~20 s of graph tracing that
    # the slow tier's runs pay (tests/engine/test_train.py trains in graph mode).
    loss = losses.get_loss("ce_dice")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=[metrics.MeanIoU()],
                  run_eagerly=True)

    def batch_loss():  # training mode: batch statistics, as the step computes its loss
        return float(loss(LABELS, model(IMAGES, training=True)))

    kernel = next(v for v in model.trainable_variables if v.path.endswith("logits/kernel"))
    before, loss_before = np.array(kernel.numpy()), batch_loss()
    logs = model.train_on_batch(IMAGES, LABELS, return_dict=True)
    assert int(model.optimizer.iterations) == 1
    # the step reports the loss of its forward pass, before its update
    assert logs["loss"] == pytest.approx(loss_before, rel=1e-4)
    assert 0 <= logs["miou"] <= 1
    assert not np.array_equal(before, kernel.numpy())  # the classifier moved
    assert batch_loss() < loss_before  # ... downhill

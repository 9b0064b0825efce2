"""The streaming confusion matrix under a two-replica MirroredStrategy equals one device's.

Logical CPU devices must be configured before TensorFlow initialises, so the check runs in
a fresh interpreter: this file is also the worker (``python tests/models/test_metrics_distributed.py``
prints one JSON line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def worker() -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    from celebseg_utils.models import losses, metrics

    c = 5
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, c, (8, 16, 16, 1)).astype(np.int32)
    w = rng.uniform(0, 2, (8, 16, 16)).astype(np.float32)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
                                  keras.layers.Conv2D(c, 3, padding="same")])
        model.compile(optimizer="adam", loss=losses.get_loss("ce_dice", c),
                      metrics=[metrics.ConfusionMatrix(c), metrics.MeanIoU(c)])
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    evaluated = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)

    # A custom loop: strategy.run on a distributed dataset, weighted, then read on the host.
    with strategy.scope():
        custom = metrics.ConfusionMatrix(c)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y, w)).batch(4))

    @tf.function
    def step(batch):
        images, labels, weights = batch
        custom.update_state(labels, model(images, training=False), sample_weight=weights)

    for batch in dataset:
        strategy.run(step, args=(batch,))

    # The same on one device, no strategy.
    logits = model.predict(x, verbose=0, batch_size=8)
    single = metrics.ConfusionMatrix(c)
    single.update_state(y, logits)
    single_weighted = metrics.ConfusionMatrix(c)
    single_weighted.update_state(y, logits, sample_weight=w)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "fit_loss": history["loss"],
        "evaluate_cm": np.asarray(evaluated["confusion_matrix"]).tolist(),
        "evaluate_miou": float(evaluated["miou"]),
        "custom_cm": custom.result().numpy().tolist(),
        "single_cm": single.result().numpy().tolist(),
        "single_weighted_cm": single_weighted.result().numpy().tolist(),
        "numpy_cm": metrics.confusion_matrix_np(y, logits.argmax(-1), c).tolist(),
        "numpy_miou": metrics.scores_from_confusion(
            metrics.confusion_matrix_np(y, logits.argmax(-1), c))["miou"],
    }


@pytest.mark.slow
def test_two_replicas_give_the_same_confusion_matrix_as_one_device():
    import numpy as np

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True,
                          env=env, cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert all(np.isfinite(out["fit_loss"]))
    np.testing.assert_array_equal(out["evaluate_cm"], out["single_cm"])
    np.testing.assert_array_equal(out["single_cm"], out["numpy_cm"])
    assert np.sum(out["single_cm"]) == 8 * 16 * 16
    np.testing.assert_allclose(out["custom_cm"], out["single_weighted_cm"], rtol=1e-12)
    assert out["evaluate_miou"] == pytest.approx(out["numpy_miou"], rel=1e-6)


if __name__ == "__main__":
    print(json.dumps(worker()))

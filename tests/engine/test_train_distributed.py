"""Two training steps of ``train`` under a two-replica MirroredStrategy on two logical CPUs.

Logical devices must be configured before TensorFlow initialises, so the run happens in a
fresh interpreter: this file is also the worker
(``python tests/engine/test_train_distributed.py PREPARED RUN`` prints one JSON line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def worker(prepared: str, run: str) -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from test_train import tiny_overrides

    from celebseg_utils.engine.config import resolve_config
    from celebseg_utils.engine.train import train

    cfg = resolve_config(preset="cpu-demo", run_dir=run, overrides=tiny_overrides(
        Path(prepared), strategy="mirrored", epochs=1, steps_per_epoch=2, batch_size=4))
    result = train(cfg, progress=False)
    model = result.pop("model")
    return {"strategy": result["strategy"], "replicas": result["replicas"],
            "iterations": int(model.optimizer.iterations.numpy()),
            # a mirrored variable holds one copy per replica device
            "copies": sorted(c.device.split("/")[-1]
                             for c in model.trainable_variables[0].value.values),
            "history": result["history"]}


@pytest.mark.slow
def test_two_steps_under_two_replica_mirrored_strategy(tmp_path, tiny_prepared):
    prepared = tiny_prepared
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
    proc = subprocess.run([sys.executable, __file__, str(prepared), str(tmp_path / "run")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["strategy"], out["replicas"]) == ("MirroredStrategy", 2)
    assert out["copies"] == ["device:CPU:0", "device:CPU:1"]
    assert out["iterations"] == 2  # two optimizer steps, each on a batch of 4 split 2 + 2
    assert out["history"]["epoch"] == [0]
    assert out["history"]["loss"][0] > 0 and 0 <= out["history"]["val_miou"][0] <= 1


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1], sys.argv[2])))

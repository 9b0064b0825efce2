"""TensorFlow's start-up noise is filtered; everything else it prints still shows."""

import logging
import os
import subprocess
import sys

import pytest

from celebseg_utils import tf_startup

NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795891611.255686   11563 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "E0000 00:00:1795891636.240455   11563 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "E0000 00:00:1721.1 1 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to "
    "register factory for plugin cuDNN when one has already been registered",
    "I0000 00:00:1.1 1 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
]
REAL_LINE = "E0000 00:00:1.1 1 gpu_device.cc:1] out of memory allocating 1.2GiB"


def test_drops_the_noise_and_keeps_a_real_error(capfd):
    with tf_startup.filtered_stderr() as kept:
        for line in [NOISE_LINES[0], REAL_LINE, *NOISE_LINES[1:]]:
            os.write(2, (line + "\n").encode())
    assert kept == [REAL_LINE]
    assert capfd.readouterr().err == REAL_LINE + "\n"


def _tensorflow_stderr(prelude: str, level: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    code = prelude + ("import tensorflow as tf\n"
                      "tf.config.list_physical_devices()\n"
                      "import keras\n"
                      "print(float(keras.ops.sum(keras.ops.ones(3))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "3.0", done.stderr
    return done.stderr


@pytest.mark.slow  # a fresh interpreter importing TensorFlow
def test_importing_tensorflow_after_the_package_prints_nothing():
    assert _tensorflow_stderr("import celebseg_utils\n", level=None) == ""


@pytest.mark.slow  # a fresh interpreter importing TensorFlow
def test_a_user_asking_for_tensorflow_logs_gets_them():
    # Level 0 is a debugging request: nothing is filtered. On a machine where TensorFlow
    # prints no start-up line at all there is nothing to compare, so only the filter's
    # own state is checked there.
    plain = _tensorflow_stderr("", level="0")
    asked = _tensorflow_stderr("import celebseg_utils\n", level="0")
    noisy = [line for line in plain.splitlines() if tf_startup.NOISE.search(line)]
    assert len([line for line in asked.splitlines() if tf_startup.NOISE.search(line)]) \
        == len(noisy)


def test_drops_only_the_named_log_record_and_only_inside_the_block(caplog):
    logger = logging.getLogger("absl")
    with caplog.at_level(logging.ERROR, logger="absl"):
        with tf_startup.without_log_records(tf_startup.TFDS_PROTOBUF_REPORT):
            logger.error("Detected incompatible Protobuf Gencode/Runtime versions when "
                         "loading tensorflow_metadata/proto/v0/anomalies.proto")
            # the same report as protobuf 5.29.5 words it (the Kaggle manifest)
            logger.error("Detected mismatched Protobuf Gencode/Runtime major versions when "
                         "loading tensorflow_metadata/proto/v0/anomalies.proto: gencode 6.31.1 "
                         "runtime 5.29.5.")
            logger.error("a real problem")
        logger.error("Detected incompatible Protobuf Gencode/Runtime versions, later")
    assert [r.getMessage() for r in caplog.records] == [
        "a real problem", "Detected incompatible Protobuf Gencode/Runtime versions, later"]


def _xla_stderr(spend: bool) -> str:
    code = ("import celebseg_utils\n"
            "from celebseg_utils import tf_startup\n"
            "import tensorflow as tf\n"
            + ("tf_startup.spend_xla_announcement()\n" if spend else "")
            + "print(float(tf.function(lambda x: x * 2, jit_compile=True)(tf.constant(1.5))))\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "3.0", done.stderr
    return done.stderr


@pytest.mark.slow  # a fresh interpreter importing TensorFlow
def test_the_first_xla_compilation_prints_nothing_once_spent():
    # TensorFlow 2.20 (the Colab and Kaggle manifests) logs "Compiled cluster using XLA!" at a
    # process's first XLA compilation whatever TF_CPP_MIN_LOG_LEVEL says; 2.21 does not. Where
    # it does, the plain run shows it and the spent run must not.
    plain, spent = _xla_stderr(spend=False), _xla_stderr(spend=True)
    assert "Compiled cluster using XLA" not in spent and spent == "", spent
    if "Compiled cluster using XLA" in plain:
        assert [line for line in plain.splitlines() if not tf_startup.NOISE.search(line)] == []

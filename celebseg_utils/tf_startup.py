"""TensorFlow's start-up without its start-up noise.

Loading TensorFlow prints a screen of C++ log lines to the process's stderr: CUDA discovery,
cuDNN/cuFFT/cuBLAS "factory already registered", "All log messages before
absl::InitializeLog() ...", CPU-feature and oneDNN notices. Most are written before absl's
logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them, and in a notebook
they land in the first cell that touches TensorFlow. They mean nothing to a user.

:func:`install` (called by ``import celebseg_utils``) arranges that the first import of
``tensorflow`` -- by this package or by the user -- runs with file descriptor 2 captured,
initialises the devices inside the same capture (that is where CUDA reports), and then
writes back every captured line except the known noise of :data:`NOISE`. Anything else,
a real error included, still shows. Python warnings are untouched (they do not go through
file descriptor 2 in a notebook). ``TF_CPP_MIN_LOG_LEVEL`` set to 0 or 1 by the user turns
the filter off, so nothing is hidden from someone debugging TensorFlow itself.

>>> import os
>>> with filtered_stderr() as kept:
...     _ = os.write(2, b"W0000 cudart_stub.cc:31] Could not find cuda drivers on your machine\\n")
>>> kept
[]
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile

#: Start-up lines that say nothing a user can act on. Matched anywhere in a line.
NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called",
    r"Could not find cuda drivers on your machine",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation_placer\.cc.*already registered",
    r"failed call to cuInit",
    r"cpu_feature_guard\.cc",
    r"rebuild TensorFlow with the appropriate compiler flags",
    r"oneDNN custom operations are on",
    r"TF-TRT Warning: Could not find TensorRT",
    r"^To enable the following instructions:",
    r"device_compiler\.h.*Compiled cluster using XLA",
]))

#: What tensorflow_datasets logs, with a traceback, when the runtime's protobuf is older than
#: the one its tensorflow_metadata was generated with. protobuf words it two ways: "Detected
#: incompatible Protobuf Gencode/Runtime versions" (Colab 2026-08, protobuf 5.29.6) and
#: "Detected mismatched Protobuf Gencode/Runtime major versions" (the Kaggle manifest, 5.29.5
#: against gencode 6.31.1); the common part matches both. keras-cv imports
#: tensorflow_datasets and this package uses none of it.
TFDS_PROTOBUF_REPORT = "Protobuf Gencode/Runtime"


class _DropRecords(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextlib.contextmanager
def without_log_records(text: str, logger: str = "absl"):
    """Drop the records of ``logger`` whose message contains ``text``, inside the block only.

    >>> import logging
    >>> with without_log_records("noise", "demo"):
    ...     logging.getLogger("demo").error("some noise")   # dropped
    """
    drop = _DropRecords(text)
    target = logging.getLogger(logger)
    target.addFilter(drop)
    try:
        yield
    finally:
        target.removeFilter(drop)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = NOISE):
    """Capture file descriptor 2; on exit write back the lines that are not ``noise``.

    Yields the list that receives the kept lines (filled on exit), for tests and callers
    that want to know what was shown.
    """
    kept: list[str] = []
    with contextlib.suppress(AttributeError, ValueError):
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield kept
            finally:
                os.dup2(saved, 2)
                capture.seek(0)
                text = capture.read().decode("utf-8", errors="replace")
                kept.extend(line for line in text.splitlines()
                            if line.strip() and not noise.search(line))
                if kept:
                    os.write(2, ("\n".join(kept) + "\n").encode())
    finally:
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with filtered_stderr():
            self._loader.exec_module(module)
            # CUDA discovery (and its complaints) happens on the first device query, not
            # at import: do it here, inside the capture.
            with contextlib.suppress(Exception):
                module.config.list_physical_devices()


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        uninstall()  # once: the real finders do the rest
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


_xla_announced = False


def spend_xla_announcement() -> None:
    """Let XLA's one-time "Compiled cluster using XLA!" line be printed here, and dropped.

    XLA logs its first compilation in a process with that INFO line ("logged at most once for
    the lifetime of the process"), which TF 2.20's absl logging prints whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says. The data pipeline XLA-compiles its augmentation, inside
    tf.data's threads, so the line would land in whichever notebook cell first reads a batch.
    One tiny compilation under :func:`filtered_stderr` spends it; later ones print nothing.
    A no-op after the first call, and when the user asked for TensorFlow's INFO logs.
    """
    global _xla_announced
    if _xla_announced or _logs_asked():
        return
    _xla_announced = True
    import tensorflow as tf

    with filtered_stderr(), tf.init_scope():
        tf.function(lambda x: x + 1, jit_compile=True)(tf.constant(0))


def _logs_asked() -> bool:
    """True when the user asked TensorFlow for its INFO or WARNING logs."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") in ("0", "1")


def wanted() -> bool:
    """False when the user asked TensorFlow for its INFO or WARNING logs, or it is loaded."""
    return not _logs_asked() and "tensorflow" not in sys.modules


def install() -> None:
    """Filter TensorFlow's first import (see the module docstring); a no-op when not :func:`wanted`."""
    if wanted() and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowFinder)]

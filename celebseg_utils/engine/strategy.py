"""Choosing the tf.distribute strategy and the dtype policy for a training run.

Only TensorFlow's own engines are used: ``TPUStrategy``, ``MirroredStrategy``,
``MultiWorkerMirroredStrategy`` and the default (no-op) strategy.

``"auto"``: a TPU when one is attached, else ``MirroredStrategy`` over all GPUs when there
are several, else the default strategy. Mixed precision ``"auto"`` is float16 on GPUs,
bfloat16 on TPUs and off on CPUs (float16 matmuls are slow there).

>>> s = make_strategy("default")
>>> describe_strategy(s)
{'strategy': '_DefaultDistributionStrategy', 'replicas': 1}
>>> resolve_precision("auto", s) in ("float32", "mixed_float16")
True
"""

from __future__ import annotations

import os

import tensorflow as tf

from celebseg_utils.errors import CelebsegError

_TPU_STRATEGY = None  # the TPU system may be initialised only once per process


def tpu_available() -> bool:
    """True when a TPU is attached (TPU VM devices, or a TPU address in the environment).

    Never contacts a metadata server: a plain machine answers False at once.
    """
    if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return True
    try:
        return bool(tf.config.list_physical_devices("TPU"))
    except Exception:  # noqa: BLE001 - builds without TPU support
        return False


def _tpu_strategy():
    global _TPU_STRATEGY
    if _TPU_STRATEGY is None:
        if os.environ.get("COLAB_TPU_ADDR") and not os.environ.get("TPU_NAME"):
            tpu = "grpc://" + os.environ["COLAB_TPU_ADDR"]
        else:
            tpu = os.environ.get("TPU_NAME") or "local"
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            if tpu != "local":
                tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise CelebsegError(f"strategy=tpu but no TPU could be reached ({exc}); on Colab "
                                f"pick a TPU runtime, or use --set strategy=auto") from None
        _TPU_STRATEGY = tf.distribute.TPUStrategy(resolver)
    return _TPU_STRATEGY


def make_strategy(name: str = "auto", devices=None) -> tf.distribute.Strategy:
    """The strategy called ``name``: auto, default, mirrored, multi_worker or tpu.

    ``mirrored`` mirrors over ``devices`` when given, else over all GPUs, else over all
    logical CPU devices (two logical CPUs make a two-replica strategy on any machine).
    ``multi_worker`` reads the cluster from the ``TF_CONFIG`` environment variable.

    >>> make_strategy("default").num_replicas_in_sync
    1
    """
    if name == "auto":
        if tpu_available():
            return _tpu_strategy()
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=list(devices))
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            print("note: strategy=multi_worker without TF_CONFIG: training as a single worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy()
    raise CelebsegError(f"unknown strategy {name!r}; use auto, default, mirrored, "
                        f"multi_worker or tpu")


def describe_strategy(strategy: tf.distribute.Strategy) -> dict:
    """Class name and replica count, for logs and run summaries."""
    return {"strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync)}


def is_tpu(strategy) -> bool:
    """True for a TPUStrategy."""
    return isinstance(strategy, (tf.distribute.TPUStrategy,))


def resolve_precision(setting, strategy) -> str:
    """The Keras dtype policy name for ``mixed_precision`` = "auto", True or False.

    >>> resolve_precision(False, make_strategy("default"))
    'float32'
    """
    if setting is False:
        return "float32"
    if is_tpu(strategy):
        return "mixed_bfloat16"
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    if setting is True:
        return "mixed_float16" if has_gpu else "mixed_bfloat16"
    return "mixed_float16" if has_gpu else "float32"


def worker_tag(strategy) -> str | None:
    """None for the process that writes the run (single process, or the multi-worker chief);
    ``"worker-1"``-style names for the other workers of a MultiWorkerMirroredStrategy.

    Every worker runs the same callbacks; only the chief's files are the run, the others
    write beside it (``RUN/.worker-1``) so that no two processes write one file.

    >>> worker_tag(make_strategy("default")) is None
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None
    jobs = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.task_type, resolver.task_id
    if not jobs or task_type in (None, "chief"):
        return None
    if task_type == "worker" and int(task_id or 0) == 0 and "chief" not in jobs:
        return None
    return f"{task_type}-{task_id}"

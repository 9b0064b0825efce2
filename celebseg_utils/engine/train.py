"""The training engine: ``celebseg train`` and :func:`train`.

Everything is built under the chosen tf.distribute strategy's scope; the run directory
(local, or a mounted Google Drive folder) receives::

    RUN/config.yaml   the resolved config (written at start)
    RUN/history.csv   RUN/history.json   one entry per epoch, each epoch once after resumes
    RUN/best.keras    best validation mIoU      RUN/final.keras   the last epoch's model
    RUN/summary.json  written last: the run is complete
    RUN/backup/       resume state (removed once the run is complete)   RUN/logs/ TensorBoard

Running the same command again after a kill resumes from the last completed epoch; after
completion it returns the finished run's summary without training.

>>> from celebseg_utils.engine.config import resolve_config
>>> cfg = resolve_config(preset="cpu-demo", overrides=["data.prepared=/tmp/prep", "epochs=1"],
...                      run_dir="/tmp/run")
>>> result = train(cfg, progress=False)  # doctest: +SKIP
>>> sorted(result)[:3]  # doctest: +SKIP
['best_epoch', 'best_metric', 'best_model']
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import keras

# losses and metrics register their classes on import, so that after `import
# celebseg_utils.engine.train` plain keras.saving.load_model reloads a run's .keras files.
from celebseg_utils.models import backbones as _backbones  # noqa: F401 - registers PyramidEncoder
from celebseg_utils.engine import callbacks as cb
from celebseg_utils.engine import config as cfgmod
from celebseg_utils.models import losses as _losses  # noqa: F401
from celebseg_utils.models import metrics as _metrics  # noqa: F401
from celebseg_utils.engine.config import TrainConfig
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_path, atomic_write_json, remove_partial_files

MONITOR = "val_miou"


@keras.saving.register_keras_serializable(package="celebseg")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then poly / cosine decay to ``end``
    at ``total_steps`` (constant afterwards); ``kind="constant"`` keeps ``peak``.

    >>> s = WarmupDecay(1e-3, total_steps=110, warmup_steps=10, kind="cosine")
    >>> [round(float(s(i)), 7) for i in (0, 9, 60, 110)]
    [0.0001, 0.001, 0.0005, 0.0]
    """

    def __init__(self, peak, total_steps, warmup_steps=0, kind="poly", end=0.0, power=0.9):
        if kind not in cfgmod.SCHEDULES:
            raise CelebsegError(f"unknown schedule {kind!r}; use one of {cfgmod.SCHEDULES}")
        self.peak, self.end, self.power = float(peak), float(end), float(power)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self.kind = kind

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = max(self.warmup_steps, 1)
        warmup = self.peak * (step + 1.0) / warm
        if self.kind == "constant":
            decay = ops.convert_to_tensor(self.peak, "float32")
        else:
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            if self.kind == "poly":
                shape = ops.power(1.0 - progress, self.power)
            else:
                shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
            decay = self.end + (self.peak - self.end) * shape
        return ops.where(step < self.warmup_steps, warmup, decay)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "kind": self.kind, "end": self.end,
                "power": self.power}


def load_trained_model(path, compile: bool = False) -> keras.Model:
    """Reload a ``.keras`` model written by :func:`train` (registers the custom objects).

    >>> model = load_trained_model("runs/cpu-demo/best.keras")  # doctest: +SKIP
    """
    if not Path(path).is_file():
        raise CelebsegError(f"model file {path} not found: train one with `celebseg train`")
    if _backbones.uses_keras_cv(path):
        _backbones.import_keras_cv()  # before Keras imports it itself, loudly
    return keras.saving.load_model(str(path), compile=compile)


# --------------------------------------------------------------------------- helpers

def _read_text(path: str) -> str:
    import tensorflow as tf  # tf.io.gfile reads gs:// as well as local files

    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def _split_size(prepared: str, split: str) -> int:
    path = f"{prepared.rstrip('/')}/splits/{split}.txt"
    try:
        return len(_read_text(path).split())
    except Exception:  # noqa: BLE001 - NotFoundError or a gs:// permission error
        raise CelebsegError(f"cannot read split file {path}: set data.prepared to a folder "
                            f"written by `celebseg prepare`, and data.train_split/val_split "
                            f"to one of train, val, test") from None


def _class_weights(config: TrainConfig, prepared: str):
    scheme = config.loss.class_weights
    if scheme == "auto":
        scheme = "median_freq" if config.loss.name == "weighted_ce" else None
    if scheme is None:
        return None
    from celebseg_utils.data.stats import load_or_compute_stats

    return list(load_or_compute_stats(prepared)["class_weights"][scheme])


def _check_paths(config: TrainConfig) -> TrainConfig:
    """Absolute local paths; clear errors for placeholders and missing folders."""
    prepared, run_dir = config.data.prepared, config.run_dir
    if "YOUR_BUCKET" in prepared:
        raise CelebsegError(f"data.prepared={prepared} is the preset's placeholder: "
                            f"--set data.prepared=gs://<your bucket>/<prepared folder>")
    if "://" in run_dir:
        raise CelebsegError(f"run_dir={run_dir}: use a local folder (a mounted Google Drive "
                            f"folder works) and copy the run to the bucket afterwards")
    if "://" not in prepared:
        prepared = str(Path(prepared).expanduser().resolve())
        if not (Path(prepared) / "prepare.json").is_file():
            raise CelebsegError(f"data.prepared={prepared} is not a prepared folder (no "
                                f"prepare.json): run `celebseg prepare --data-root RAW --out "
                                f"{prepared}` or --set data.prepared=DIR")
    run_dir = str(Path(run_dir).expanduser().resolve())
    data = dataclasses.replace(config.data, prepared=prepared)
    return dataclasses.replace(config, data=data, run_dir=run_dir)


def _completed_or_check(config: TrainConfig, run: Path):
    """The summary of a finished run in ``run``; None to train. A run dir holding progress
    of a different config is an error (resuming it would mix two experiments)."""
    saved = run / "config.yaml"
    started = (run / "summary.json").exists() or cb.backup_epoch(run / "backup") > 0
    if not (saved.exists() and started):
        return None
    diff = cfgmod.config_diff(cfgmod.load_config(saved), config)
    if diff:
        raise CelebsegError(f"run dir {run} holds a run with another config ({'; '.join(diff)}); "
                            f"pass a new --run-dir, or delete {run} to start over")
    if (run / "summary.json").exists():
        return json.loads((run / "summary.json").read_text())
    return None


def _datasets(config: TrainConfig, prepared: str, val_steps):
    from celebseg_utils.data.pipeline import make_dataset

    common = dict(image_size=config.image_size, batch_size=config.batch_size)
    train_ds = make_dataset(prepared, config.data.train_split, augment=config.data.augment,
                            shuffle=True, seed=config.seed, repeat=True, encoding=config.data.encoding,
                            sample_weights=config.data.sample_weights, **common)
    val_ds = make_dataset(prepared, config.data.val_split, augment=False, shuffle=False,
                          repeat=val_steps is not None, encoding=config.data.encoding, **common)
    return train_ds, val_ds


def _compile_model(config: TrainConfig, class_weights, total_steps: int, warmup_steps: int):
    from celebseg_utils.labels import NUM_CLASSES
    from celebseg_utils.models.losses import get_loss
    from celebseg_utils.models.metrics import MeanIoU
    from celebseg_utils.models.deeplab import build_model

    model = build_model(num_classes=NUM_CLASSES, backbone=config.model.backbone,
                        image_size=config.image_size, library=config.model.library,
                        weights=config.model.weights, bn_momentum=config.model.bn_momentum,
                        aspp_rates=config.model.aspp_rates)
    loss = get_loss(config.loss.name, num_classes=NUM_CLASSES, class_weights=class_weights,
                    **config.loss.kwargs)
    opt = config.optimizer
    schedule = WarmupDecay(opt.learning_rate, total_steps, warmup_steps, opt.schedule,
                           opt.end_learning_rate, opt.power)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=opt.weight_decay,
                                       clipnorm=opt.clipnorm)
    # Decaying norm scales and biases only shrinks them towards 0: the usual exclusion.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    accuracy = (keras.metrics.CategoricalAccuracy if config.data.encoding == "onehot"
                else keras.metrics.SparseCategoricalAccuracy)
    metrics = [MeanIoU(num_classes=NUM_CLASSES, name="miou"), accuracy(name="pixel_accuracy")]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics,
                  jit_compile=config.jit_compile)
    return model


def _callbacks(config: TrainConfig, run: Path, progress: bool) -> list:
    backup = run / "backup"
    # Order matters: history and best model are written before the backup at each epoch end.
    items = [cb.NaNGuard(),
             cb.ResumableCSVLogger(run / "history.csv", backup, json_path=run / "history.json"),
             cb.BestCheckpoint(run / "best.keras", run / "history.csv", backup, MONITOR,
                               verbose=int(progress)),
             cb.AtomicBackupAndRestore(backup)]
    if config.tensorboard and tensorboard_available():
        items.append(keras.callbacks.TensorBoard(log_dir=str(run / "logs"), write_graph=False))
    elif config.tensorboard:
        print("note: the tensorboard package is not installed: no TensorBoard logs "
              "(pip install tensorboard, or --set tensorboard=false to silence this)")
    return items


def tensorboard_available() -> bool:
    """True when TensorBoard (needed by tf.summary) is installed; Colab and Kaggle have it."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


# --------------------------------------------------------------------------- train

def train(config: TrainConfig, progress: bool = True) -> dict:
    """Train (or resume, or return the finished run of) ``config``; returns the summary.

    Keys: run_dir, history ({metric: [per epoch]}), best_metric (max val_miou), best_epoch
    (0-based, as in history.csv), epochs_completed, resumed_from_epoch, final_model,
    best_model, strategy, replicas, dtype_policy, jit_compile, steps_per_epoch,
    validation_steps, train_images, val_images, seconds; and ``model`` (the keras.Model).
    """
    from celebseg_utils.engine import strategy as st

    cfgmod.validate_config(config)
    config = _check_paths(config)
    # Multi-worker strategies must exist before any other TensorFlow op runs.
    strategy = st.make_strategy(config.strategy, config.devices)
    tag = st.worker_tag(strategy)
    run = Path(config.run_dir) / f".{tag}" if tag else Path(config.run_dir)
    done = _completed_or_check(config, run)
    if done is not None:
        print(f"{run} is complete ({done['epochs_completed']} epochs, best {MONITOR} "
              f"{done['best_metric']}); pass a new --run-dir to train again")
        return {**done, "model": load_trained_model(done["final_model"])}
    for folder in (run, run / "backup"):  # what a killed run was writing is incomplete
        remove_partial_files(folder)
    cfgmod.save_config(config, run / "config.yaml")

    keras.utils.set_random_seed(config.seed)
    policy = st.resolve_precision(config.mixed_precision, strategy)
    n_train = _split_size(config.data.prepared, config.data.train_split)
    n_val = _split_size(config.data.prepared, config.data.val_split)
    if n_train == 0 or n_val == 0:
        raise CelebsegError(f"{config.data.prepared}: the {config.data.train_split} and "
                            f"{config.data.val_split} splits need images (have {n_train}, "
                            f"{n_val}); prepare more images or change data.*_split")
    steps = config.steps_per_epoch or max(1, n_train // config.batch_size)
    val_steps = config.validation_steps
    if val_steps is None and st.is_tpu(strategy):  # TPUs need static batch shapes
        val_steps = max(1, n_val // config.batch_size)
    warmup = int(round(config.optimizer.warmup_epochs * steps))
    class_weights = _class_weights(config, config.data.prepared)
    train_ds, val_ds = _datasets(config, config.data.prepared, val_steps)

    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with strategy.scope():
            model = _compile_model(config, class_weights, config.epochs * steps, warmup)
        start = cb.backup_epoch(run / "backup")
        info = {**st.describe_strategy(strategy), "dtype_policy": policy,
                "jit_compile": bool(model.jit_compile)}
        print(f"training {config.model.backbone} at {config.image_size}px, batch "
              f"{config.batch_size}, {steps} steps/epoch, {info['strategy']} x{info['replicas']}, "
              f"{policy}, XLA {'on' if info['jit_compile'] else 'off'} -> {run}")
        if start:
            print(f"resuming at epoch {start + 1}/{config.epochs} from {run / 'backup'}")
        callbacks = _callbacks(config, run, progress)
        began = time.time()
        try:
            model.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps,
                      validation_data=val_ds, validation_steps=val_steps,
                      callbacks=callbacks, verbose=1 if progress else 2,
                      shuffle=False)  # make_dataset shuffles; Keras can't shuffle a dataset
        except BaseException:  # a NaN, a full disk, Ctrl-C: the backup stays at the last good epoch
            for c in callbacks:
                if isinstance(c, keras.callbacks.CSVLogger):
                    # Close now: a row a full disk refused would otherwise fail again, with a
                    # traceback, when the interpreter closes the file at exit.
                    with contextlib.suppress(OSError):
                        c.on_train_end()
            raise
        seconds = time.time() - began
        with atomic_path(run / "final.keras") as tmp:
            model.save(tmp)
    finally:
        keras.config.set_dtype_policy(previous_policy)

    rows = cb.read_history_csv(run / "history.csv")
    history = cb.history_from_rows(rows)
    atomic_write_json(run / "history.json", history)
    best, best_epoch = cb.best_of(rows, MONITOR)
    summary = {"run_dir": str(run), "history": history, "best_metric": best,
               "best_epoch": best_epoch, "epochs_completed": len(rows),
               "resumed_from_epoch": start, "final_model": str(run / "final.keras"),
               "best_model": str(run / "best.keras"), **info, "steps_per_epoch": steps,
               "validation_steps": val_steps, "train_images": n_train, "val_images": n_val,
               "seconds": round(seconds, 1)}
    atomic_write_json(run / "summary.json", summary)
    shutil.rmtree(run / "backup", ignore_errors=True)  # the run is complete: free the space
    return {**summary, "model": model}

"""The training engine: ``celebseg train`` and :func:`train`.

Everything is built under the chosen tf.distribute strategy's scope; the run directory
(local, or a mounted Google Drive folder) receives::

    RUN/config.yaml   the resolved config (written at start)
    RUN/history.csv   RUN/history.json   one entry per epoch, each epoch once after resumes
    RUN/best.keras    best validation mIoU      RUN/final.keras   the last epoch's model
    RUN/summary.json  written last: the run is complete
    RUN/backup/       resume state (removed once the run is complete)   RUN/logs/ TensorBoard
    RUN/plan.json     with ``time_budget_minutes``: the epochs and steps chosen, the costs
    RUN/test/results.json   with ``data.test_split``: the best model on that split

Before training, a short timed probe evaluates a few validation batches (which compiles
the test function validation reuses) and times a save; with ``time_budget_minutes`` it also
times a few training steps (weights and optimizer state put back afterwards) and plans the
run with :func:`~celebseg_utils.engine.budget.plan_run`, the learning-rate schedule then
spanning the planned steps. An :class:`~celebseg_utils.engine.callbacks.EtaReporter` prints
the expected end once the step rate is measured, then at every epoch's end.

Running the same command again after a kill resumes from the last backup: every epoch end,
and every ``backup_every_minutes`` (default 5) and/or ``backup_every_steps`` within an epoch.
A mid-epoch resume finishes that epoch from the step it reached, its data stream continued
at the same batch (``make_dataset(skip_batches=...)``, the same images and augmentation);
that epoch's training metrics in the history average the steps after the resume only.
After completion it returns the finished run's summary without training.

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
import typing
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
    """Reload a model :func:`train` wrote: the one loader,
    :func:`celebseg_utils.engine.inference.load_model`, kept under this name for callers.

    >>> model = load_trained_model("runs/cpu-demo/best.keras")  # doctest: +SKIP
    """
    from celebseg_utils.engine.inference import load_model

    return load_model(path, compile=compile)


# --------------------------------------------------------------------------- helpers

def _split_size(prepared: str, split: str) -> int:
    from celebseg_utils.data import layout

    try:
        return len(layout.read_split(prepared, split))
    except CelebsegError as exc:  # the config names the folder and the splits: say which to fix
        raise CelebsegError(f"{exc}; set data.prepared to a folder written by `celebseg prepare`, "
                            f"and data.train_split/val_split to one of train, val, test") from None


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
    started = (run / "summary.json").exists() or cb.backup_state(run / "backup") != (0, 0)
    if not (saved.exists() and started):
        return None
    diff = cfgmod.config_diff(cfgmod.load_config(saved), config)
    if diff:
        raise CelebsegError(f"run dir {run} holds a run with another config ({'; '.join(diff)}); "
                            f"pass a new --run-dir, or delete {run} to start over")
    if (run / "summary.json").exists():
        return json.loads((run / "summary.json").read_text())
    return None


def _train_dataset(config: TrainConfig, prepared: str, skip_batches: int = 0):
    """The training stream (seeded, endless), from its batch ``skip_batches`` on."""
    from celebseg_utils.data.pipeline import make_dataset

    return make_dataset(prepared, config.data.train_split, image_size=config.image_size,
                        batch_size=config.batch_size, augment=config.data.augment,
                        shuffle=True, seed=config.seed, repeat=True,
                        encoding=config.data.encoding, sample_weights=config.data.sample_weights,
                        skip_batches=skip_batches)


def _val_dataset(config: TrainConfig, prepared: str, val_steps):
    from celebseg_utils.data.pipeline import make_dataset

    return make_dataset(prepared, config.data.val_split, image_size=config.image_size,
                        batch_size=config.batch_size, augment=False, shuffle=False,
                        repeat=val_steps is not None, encoding=config.data.encoding)


def _compile_model(config: TrainConfig, class_weights, total_steps: int, warmup_steps: int):
    from celebseg_utils.labels import NUM_CLASSES
    from celebseg_utils.models.losses import get_loss
    from celebseg_utils.models.metrics import MeanIoU
    from celebseg_utils.models.deeplab import build_model

    model = build_model(num_classes=NUM_CLASSES, backbone=config.model.backbone,
                        image_size=config.image_size, library=config.model.library,
                        weights=config.model.weights, bn_momentum=config.model.bn_momentum,
                        aspp_rates=config.model.aspp_rates, aspp=config.model.aspp,
                        aspp_channels=config.model.aspp_channels,
                        decoder_channels=config.model.decoder_channels)
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
    # Slots made now, not while the first training step is traced: a tf.function that creates
    # variables is traced a second time, which cost ~25 s per run on this CPU (measured).
    model.optimizer.build(model.trainable_variables)  # the loss-scale wrapper's too
    return model, schedule


def _callbacks(config: TrainConfig, run: Path, progress: bool, eta) -> list:
    backup = run / "backup"
    # Order matters: history and best model are written before the backup at each epoch
    # end, and a NaN stops a step before its backup.
    items = [cb.NaNGuard(),
             cb.ResumableCSVLogger(run / "history.csv", backup, json_path=run / "history.json"),
             cb.BestCheckpoint(run / "best.keras", run / "history.csv", backup, MONITOR,
                               verbose=int(progress)),
             cb.AtomicBackupAndRestore(backup, every_steps=config.backup_every_steps,
                                       every_minutes=config.backup_every_minutes),
             eta]
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


# --------------------------------------------------------------------------- probes

class _StepTimer(keras.callbacks.Callback):
    """Clock readings at each batch end; stops ``fit`` once ``min_steps`` steps after the
    first ``skip`` (compilation) took ``min_s`` seconds."""

    def __init__(self, skip=2, min_steps=8, min_s=4.0):
        super().__init__()
        self.skip, self.min_steps, self.min_s = skip, min_steps, min_s
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())
        timed = len(self.times) - self.skip
        if timed >= self.min_steps and self.times[-1] - self.times[self.skip - 1] >= self.min_s:
            self.model.stop_training = True


def probe_train_step(model, dataset, max_steps: int = 40, skip: int = 5, min_steps: int = 10,
                     min_s: float = 6.0) -> tuple[float, float]:
    """(seconds per training step after compilation, seconds the compilation took), from a
    short ``fit`` on ``dataset``; the model's weights and optimizer state are put back
    afterwards, so the probe leaves no trace in the run. The first ``skip`` steps are left
    out, as :class:`~celebseg_utils.engine.callbacks.EtaReporter` leaves them out: compilation,
    and the batches the input pipeline prefetched meanwhile, which hide its cost (with 2
    skipped, the ETA check's budget run took 0.94 s a step where its probe said 0.77).

    >>> step_s, compile_s = probe_train_step(model, train_ds)  # doctest: +SKIP
    """
    if not model.optimizer.built:  # its slots must exist now, to be put back afterwards
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)
    optimizers = [model.optimizer, getattr(model.optimizer, "inner_optimizer", None)]
    variables, seen = [], set()
    for v in [*model.variables, *(w for o in optimizers if o is not None for w in o.variables)]:
        if id(v) not in seen:
            seen.add(id(v))
            variables.append(v)
    saved = [v.numpy() for v in variables]
    timer = _StepTimer(skip=skip, min_steps=min_steps, min_s=min_s)
    began = time.perf_counter()
    try:
        model.fit(dataset, epochs=1, steps_per_epoch=max_steps, verbose=0, callbacks=[timer])
    finally:
        for v, value in zip(variables, saved):
            v.assign(value)
    t = timer.times
    if len(t) <= skip:
        raise CelebsegError("the timing probe ran fewer steps than it needs; raise steps_per_epoch")
    step_s = (t[-1] - t[skip - 1]) / (len(t) - skip)
    return step_s, max(0.0, t[0] - began - step_s)


def probe_eval_step(model, dataset, steps: int) -> tuple[float, float]:
    """(seconds per evaluation step, seconds of compilation) from two ``evaluate`` calls;
    the compiled test function is the one validation then uses."""
    began = time.perf_counter()
    model.evaluate(dataset, steps=1, verbose=0)
    first = time.perf_counter() - began
    steps = max(1, int(steps))
    began = time.perf_counter()
    model.evaluate(dataset, steps=steps, verbose=0)
    step_s = (time.perf_counter() - began) / steps
    return step_s, max(0.0, first - step_s)


def _save_seconds(model) -> float:
    """Seconds of one whole-model ``.keras`` save (the best checkpoint and the final model;
    the backup's weights-only file costs less), written to a temporary file as they are."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        model.save(Path(folder) / "probe.keras")
        return time.perf_counter() - began


def _read_plan(run: Path):
    try:
        plan = json.loads((run / "plan.json").read_text())
        return int(plan["epochs"]), int(plan["steps_per_epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _test_scores(model_file: Path, prepared: str, split: str, batch_size: int = 8) -> dict:
    """``celebseg evaluate``'s scores (its results.json keys) of a saved model on ``split``,
    through the one evaluation loop (:func:`~celebseg_utils.engine.scoring.score_split`);
    its per-image scores go to ``per_image_<split>.json`` beside the model."""
    from celebseg_utils.engine.scoring import save_run_per_image, score_split

    model = load_trained_model(model_file)
    scored = score_split(model, prepared, split, batch_size=batch_size)["model_size"]
    if "://" not in str(prepared):  # RUN/per_image_<split>.json, for the viewer's order
        save_run_per_image(scored, model_file, prepared)
    return scored.results(model=str(model_file))


# --------------------------------------------------------------------------- train

def train(config: TrainConfig, progress: bool = True, test_images: int | None = None,
          started: float | None = None) -> dict:
    """Train (or resume, or return the finished run of) ``config``; returns the summary.

    Keys: run_dir, history ({metric: [per epoch]}), best_metric (max val_miou), best_epoch
    (0-based, as in history.csv), epochs_completed, resumed_from_epoch, resumed_from_step,
    final_model, best_model, strategy, replicas, dtype_policy, jit_compile, epochs,
    steps_per_epoch, validation_steps, train_images, val_images, seconds, eta_first_s, plan
    (the time-budget plan or None), test (scores on ``data.test_split`` or None); and
    ``model`` (the keras.Model).

    ``test_images``: images the caller evaluates after training (the study's test pass),
    counted in the ETA and the time budget; ``data.test_split`` counts its own.
    ``started``: the ``time.time()`` the budget counts from (default: now; the CLI passes
    its start).
    """
    started = time.time() if started is None else float(started)
    config, strategy, run = _prepare_run(config)
    done = _completed_or_check(config, run)
    if done is not None:
        print(f"{run} is complete ({done['epochs_completed']} epochs, best {MONITOR} "
              f"{done['best_metric']}); pass a new --run-dir to train again")
        return {**done, "model": load_trained_model(done["final_model"])}
    state = _start_run(config, strategy, run, test_images)
    with _global_dtype_policy(state.policy):
        _build_or_resume(state)
        _plan_budget(state, started)
        _fit(state, progress)
    return _finish(state)


@dataclasses.dataclass
class _Run:
    """One training run's state, handed from phase to phase of :func:`train`."""

    config: TrainConfig
    strategy: object          # the tf.distribute strategy
    run: Path                 # the run folder (under multi-worker, this worker's own)
    policy: str               # the dtype policy the model is built under
    n_train: int
    n_val: int
    n_test: int               # images evaluated after training: the budget counts them
    epochs: int
    steps: int                # steps per epoch
    planned: bool             # epochs and steps come from a resumed budget run's plan.json
    val_steps: int | None     # fit's validation_steps (None: the whole split)
    val_steps_run: int        # the validation steps each epoch runs
    warmup: int               # the schedule's warm-up steps
    class_weights: list | None
    val_ds: object            # the validation dataset
    start: int = 0            # epochs the backup holds
    start_step: int = 0       # steps of epoch ``start`` the backup holds
    model: keras.Model | None = None
    schedule: WarmupDecay | None = None
    build_s: float = 0.0      # seconds building and compiling took
    info: dict = dataclasses.field(default_factory=dict)  # strategy, dtype policy, XLA
    costs: object = None      # budget.Costs from the probes
    plan: object = None       # the time budget's budget.Plan, or None
    eta: cb.EtaReporter | None = None
    seconds: float = 0.0      # seconds the fit calls took


def _prepare_run(config: TrainConfig):
    """Phase 1a: validate ``config``, make its paths absolute, create the tf.distribute
    strategy and name the run folder; returns (config, strategy, run folder)."""
    from celebseg_utils.engine import strategy as st

    cfgmod.validate_config(config)
    config = _check_paths(config)
    # Multi-worker strategies must exist before any other TensorFlow op runs.
    strategy = st.make_strategy(config.strategy, config.devices)
    tag = st.worker_tag(strategy)
    run = Path(config.run_dir) / f".{tag}" if tag else Path(config.run_dir)
    return config, strategy, run


def _start_run(config: TrainConfig, strategy, run: Path, test_images) -> _Run:
    """Phase 1b, for a run to train: clear what a killed run left half-written, write
    config.yaml, seed, and size the run (images, epochs and steps, kept from plan.json when
    resuming a budget run, and validation steps); the validation dataset."""
    from celebseg_utils.engine import strategy as st

    for folder in (run, run / "backup"):  # what a killed run was writing is incomplete
        remove_partial_files(folder)
    cfgmod.save_config(config, run / "config.yaml")
    keras.utils.set_random_seed(config.seed)
    policy = st.resolve_precision(config.mixed_precision, strategy)
    prepared, batch = config.data.prepared, config.batch_size
    n_train, n_val, n_test = _split_sizes(config, test_images)
    steps = config.steps_per_epoch or max(1, n_train // batch)
    epochs = config.epochs
    planned = _read_plan(run)
    if planned is not None:  # a resumed budget run keeps the plan it chose
        epochs, steps = planned
    val_steps = config.validation_steps
    if val_steps is None and st.is_tpu(strategy):  # TPUs need static batch shapes
        val_steps = max(1, n_val // batch)
    return _Run(config, strategy, run, policy, n_train, n_val, n_test, epochs, steps,
                planned=planned is not None, val_steps=val_steps,
                val_steps_run=val_steps or math.ceil(n_val / batch),
                warmup=int(round(config.optimizer.warmup_epochs * steps)),
                class_weights=_class_weights(config, prepared),
                val_ds=_val_dataset(config, prepared, val_steps))


def _split_sizes(config: TrainConfig, test_images) -> tuple[int, int, int]:
    """Images of the training and validation splits (an error when either has none), and
    the images evaluated after training: ``data.test_split``'s, else ``test_images``."""
    prepared = config.data.prepared
    n_train = _split_size(prepared, config.data.train_split)
    n_val = _split_size(prepared, config.data.val_split)
    if n_train == 0 or n_val == 0:
        raise CelebsegError(f"{prepared}: the {config.data.train_split} and "
                            f"{config.data.val_split} splits need images (have {n_train}, "
                            f"{n_val}); prepare more images or change data.*_split")
    n_test = (_split_size(prepared, config.data.test_split) if config.data.test_split
              else int(test_images or 0))
    return n_train, n_val, n_test


@contextlib.contextmanager
def _global_dtype_policy(policy: str):
    """Keras's global dtype policy set to ``policy`` inside, put back afterwards."""
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _build_or_resume(state: _Run) -> None:
    """Phase 2: build and compile the model under the strategy's scope, timed (reloading
    the best model at the end repeats it), and read where the backup resumes. The backup's
    weights and optimizer state come back in the first ``fit``: its callback restores them."""
    from celebseg_utils.engine import strategy as st

    config, run = state.config, state.run
    state.start, state.start_step = cb.backup_state(run / "backup")
    build_began = time.perf_counter()
    with state.strategy.scope():
        state.model, state.schedule = _compile_model(
            config, state.class_weights, state.epochs * state.steps, state.warmup)
    state.build_s = time.perf_counter() - build_began
    info = state.info = {**st.describe_strategy(state.strategy),
                         "dtype_policy": state.policy,
                         "jit_compile": bool(state.model.jit_compile)}
    print(f"training {config.model.backbone} at {config.image_size}px, batch "
          f"{config.batch_size}, {state.steps} steps/epoch, {info['strategy']} "
          f"x{info['replicas']}, {state.policy}, XLA {'on' if info['jit_compile'] else 'off'}"
          f" -> {run}")


def _plan_budget(state: _Run, started: float) -> None:
    """Phase 3: probe the costs and, with ``time_budget_minutes`` and no plan kept from
    before a resume, time a few training steps and plan the epochs and steps that fit the
    budget: the schedule and the training function follow a shortened plan, and the plan
    is printed and written to plan.json."""
    from celebseg_utils.engine import budget as bud

    config = state.config
    state.costs = _probe_costs(state)
    if config.time_budget_minutes is None or state.planned:
        return
    step_s, compile_s = probe_train_step(state.model,
                                         _train_dataset(config, config.data.prepared))
    costs = state.costs = dataclasses.replace(state.costs, step_s=step_s)
    budget_s = 60.0 * config.time_budget_minutes
    # a new plan compiles the training step again (its schedule changes)
    spent_s = time.time() - started + compile_s
    plan = state.plan = bud.plan_run(budget_s, spent_s, costs, epochs_max=state.epochs,
                                     steps_max=state.steps)
    if not plan.full:
        _follow_plan(state, plan)
    print(plan.describe(budget_s, config.batch_size, state.n_train))
    atomic_write_json(state.run / "plan.json", {
        "epochs": state.epochs, "steps_per_epoch": state.steps,
        "expected_s": round(plan.expected_s, 1),
        "time_budget_minutes": config.time_budget_minutes,
        "spent_s": round(spent_s, 3), "costs": dataclasses.asdict(costs),
        "full": plan.full})


def _probe_costs(state: _Run):
    """The costs the probe measures: validation steps (the first evaluation compiles the
    test function validation then uses), a whole-model save, and the run's end; ``step_s``
    stays 0 until a training probe sets it."""
    from celebseg_utils.engine import budget as bud

    val_step_s, val_compile_s = probe_eval_step(state.model, state.val_ds,
                                                min(3, state.val_steps_run))
    save_s = _save_seconds(state.model)
    end_s = bud.end_seconds(save_s, state.build_s, val_compile_s, val_step_s, state.n_test,
                            state.config.batch_size)
    return bud.Costs(step_s=0.0, val_step_s=val_step_s, val_steps=state.val_steps_run,
                     epoch_overhead_s=2 * save_s, end_s=end_s)


def _follow_plan(state: _Run, plan) -> None:
    """Shorten the run to ``plan``: its epochs and steps, the schedule spanning them, and
    a training function compiled again for that schedule."""
    state.epochs, state.steps = plan.epochs, plan.steps_per_epoch
    state.warmup = int(round(state.config.optimizer.warmup_epochs * state.steps))
    state.schedule.total_steps = state.epochs * state.steps
    state.schedule.warmup_steps = state.warmup
    state.model.make_train_function(force=True)


def _fit(state: _Run, progress: bool) -> None:
    """Phase 4: train the epochs left, in the parts :func:`_fit_parts` lists, and save
    final.keras. On any failure (a NaN, a full disk, Ctrl-C) the history CSV is closed and
    the error raised again: the backup stays at the last good step."""
    config, model = state.config, state.model
    callbacks = _fit_callbacks(state, progress)
    parts = _fit_parts(state.start, state.start_step, state.epochs, state.steps)
    began = time.time()
    try:
        for part in parts:
            _clear_restored_epoch(model)
            model.fit(_train_dataset(config, config.data.prepared, part.skip),
                      initial_epoch=part.initial, epochs=part.last,
                      steps_per_epoch=part.steps, validation_data=state.val_ds,
                      validation_steps=state.val_steps, callbacks=callbacks,
                      verbose=1 if progress else 2,
                      shuffle=False)  # make_dataset shuffles; Keras can't shuffle a dataset
    except BaseException:
        _close_csv_loggers(callbacks)
        raise
    state.seconds = time.time() - began
    with atomic_path(state.run / "final.keras") as tmp:
        model.save(tmp)


def _fit_callbacks(state: _Run, progress: bool) -> list:
    """The ``fit`` callbacks, after announcing a resume: those of :func:`_callbacks`
    (the ETA counting from the resume point), with ``curve_steps`` the learning-curve
    points before the backup, and the backup told the step its first epoch starts at."""
    config, run, epochs, steps = state.config, state.run, state.epochs, state.steps
    start, start_step = state.start, state.start_step
    if start or start_step:
        where = f" step {start_step + 1}/{steps}" if start_step else ""
        print(f"resuming at epoch {start + 1}/{epochs}{where} from {run / 'backup'}")
    state.eta = cb.EtaReporter(epochs, steps, config.batch_size, state.costs,
                               start_epoch=start, start_step=start_step)
    callbacks = _callbacks(config, run, progress, state.eta)
    if config.curve_steps:
        points, missed = cb.CurvePoints.reachable(config.curve_steps, steps, epochs)
        if missed:
            print(f"note: curve_steps {missed} fall on no epoch end ({epochs} x {steps} "
                  f"steps): not scored")
        # before the backup: a kill while scoring repeats the epoch's end, not the point
        callbacks.insert(3, cb.CurvePoints(run / "curve", points, steps, config.data.prepared,
                                           config.curve_split, config.batch_size))
    backup = next(c for c in callbacks if isinstance(c, cb.AtomicBackupAndRestore))
    backup.start_step = start_step
    return callbacks


class _FitPart(typing.NamedTuple):
    """One ``fit`` call: epochs ``initial`` to ``last`` (exclusive) of ``steps`` steps, its
    data stream starting at batch ``skip`` of the seeded training stream."""

    initial: int
    last: int
    steps: int
    skip: int


def _fit_parts(start: int, start_step: int, epochs: int, steps: int) -> list[_FitPart]:
    """The ``fit`` calls of a run whose backup holds ``start`` epochs and ``start_step``
    steps of the next: a run resumed mid-epoch first finishes that epoch, then trains the
    others.

    >>> [tuple(part) for part in _fit_parts(1, 4, 3, 10)]  # (initial, last, steps, skip)
    [(1, 2, 6, 14), (2, 3, 10, 20)]
    """
    parts = []
    if start_step and start < epochs:
        parts.append(_FitPart(start, start + 1, steps - start_step, start * steps + start_step))
    first = start + (1 if start_step else 0)
    if first < epochs or not parts:
        parts.append(_FitPart(min(first, epochs), epochs, steps, min(first, epochs) * steps))
    return parts


def _clear_restored_epoch(model) -> None:
    """Let the next ``fit`` start at its ``initial_epoch`` argument.

    The one private Keras attribute here, and no public API resets it (Keras 3.15):
    BackupAndRestore's restore sets ``model._initial_epoch``, ``fit`` starts from it in
    preference to its ``initial_epoch`` argument, and nothing clears it. A run resumed
    mid-epoch fits twice and the backup restores once, in the first ``fit`` (where it sets
    the same epoch again); the second would start over at the restored epoch.
    ``tests/engine/test_callbacks.py::test_keras_restore_sets_the_epoch_fit_starts_at``
    fails when Keras changes this.
    """
    model._initial_epoch = None


def _close_csv_loggers(callbacks) -> None:
    """Close the history CSV now: a row a full disk refused would otherwise fail again,
    with a traceback, when the interpreter closes the file at exit."""
    for c in callbacks:
        if isinstance(c, keras.callbacks.CSVLogger):
            with contextlib.suppress(OSError):
                c.on_train_end()


def _finish(state: _Run) -> dict:
    """Phase 5: write history.json, score the best model on ``data.test_split``, write
    summary.json (the run is complete) and remove the backup; returns the summary with
    the model."""
    run = state.run
    rows = cb.read_history_csv(run / "history.csv")
    history = cb.history_from_rows(rows)
    atomic_write_json(run / "history.json", history)
    best, best_epoch = cb.best_of(rows, MONITOR)
    test = _test_pass(state.config, run)
    eta_s = state.eta.first_eta_s
    summary = {"run_dir": str(run), "history": history, "best_metric": best,
               "best_epoch": best_epoch, "epochs_completed": len(rows),
               "resumed_from_epoch": state.start, "resumed_from_step": state.start_step,
               "final_model": str(run / "final.keras"),
               "best_model": str(run / "best.keras"), **state.info, "epochs": state.epochs,
               "steps_per_epoch": state.steps, "validation_steps": state.val_steps,
               "train_images": state.n_train, "val_images": state.n_val,
               "seconds": round(state.seconds, 1),
               "eta_first_s": None if eta_s is None else round(eta_s, 1),
               "plan": None if state.plan is None else dataclasses.asdict(state.plan),
               "test": test}
    atomic_write_json(run / "summary.json", summary)
    shutil.rmtree(run / "backup", ignore_errors=True)  # the run is complete: free the space
    return {**summary, "model": state.model}


def _test_pass(config: TrainConfig, run: Path) -> dict | None:
    """With ``data.test_split``: the best model's scores on it, written to
    RUN/<split>/results.json; its miou, mean_f1 and pixel_accuracy returned (else None)."""
    if not config.data.test_split:
        return None
    scores = _test_scores(run / "best.keras", config.data.prepared, config.data.test_split)
    atomic_write_json(run / config.data.test_split / "results.json", scores)
    return {k: scores.get(k) for k in ("miou", "mean_f1", "pixel_accuracy")}

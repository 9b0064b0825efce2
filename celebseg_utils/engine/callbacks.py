"""Keras callbacks that make a run resumable at any moment and stop it cleanly on NaN.

A run directory holds::

    RUN/backup/          BackupAndRestore state (weights + optimizer + epoch), atomic writes
    RUN/history.csv      one row per completed epoch, each epoch exactly once after resumes
    RUN/history.json     the same history as {metric: [values per epoch]}
    RUN/best.keras       the model of the best validation mIoU so far
    RUN/logs/            TensorBoard

The CSV is rewritten at the start of a resumed run to the epochs the backup holds, so an
epoch whose row was written just before a kill (and whose backup was not) appears once.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "h.csv"
>>> _ = p.write_text("epoch,loss,val_miou\\n0,1.5,0.25\\n1,1.0,0.5\\n")
>>> history_from_rows(read_history_csv(p))
{'epoch': [0, 1], 'loss': [1.5, 1.0], 'val_miou': [0.25, 0.5]}
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from pathlib import Path

import keras

from celebseg_utils.errors import CelebsegError
from celebseg_utils.text import format_duration
from celebseg_utils.fileio import (atomic_path, atomic_write_json, atomic_write_text,
                                    naming_write_errors, temporary_beside)


class NaNLossError(CelebsegError):
    """The training loss became NaN or infinite; the message says where and what to change."""


def read_history_csv(path, before_epoch: int | None = None) -> list[dict]:
    """Rows of a history CSV as dicts of floats (``epoch`` as int), optionally only the
    epochs before ``before_epoch``; [] when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                epoch = int(row["epoch"])
            except (KeyError, TypeError, ValueError):
                continue  # a torn last line from a kill mid-write
            if before_epoch is not None and epoch >= before_epoch:
                continue
            out = {"epoch": epoch}
            for key, value in row.items():
                if key != "epoch" and key is not None:
                    try:
                        out[key] = float(value)
                    except (TypeError, ValueError):
                        out[key] = value
            rows.append(out)
    return rows


def history_from_rows(rows: list[dict]) -> dict:
    """{column: [value per epoch]} from :func:`read_history_csv` rows."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: [row.get(k) for row in rows] for k in keys}


def best_of(rows: list[dict], monitor: str = "val_miou") -> tuple[float | None, int | None]:
    """(best value, its epoch) of ``monitor`` (higher is better) among ``rows``.

    >>> best_of([{"epoch": 0, "val_miou": 0.2}, {"epoch": 1, "val_miou": 0.4},
    ...          {"epoch": 2, "val_miou": 0.4}])
    (0.4, 1)
    """
    values = [(r[monitor], r["epoch"]) for r in rows
              if isinstance(r.get(monitor), float) and not math.isnan(r[monitor])]
    # the earliest epoch on ties: the one ModelCheckpoint (strict improvement) kept
    return max(values, key=lambda t: (t[0], -t[1])) if values else (None, None)


def backup_state(backup_dir) -> tuple[int, int]:
    """(epochs completed, steps completed in the next epoch) of a backup folder; (0, 0) when
    there is none.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "training_metadata.json").write_text('{"epoch": 2, "batch": 30}')
    >>> backup_state(d), backup_epoch(d)
    ((2, 30), 2)
    """
    path = Path(backup_dir) / "training_metadata.json"
    try:
        data = json.loads(path.read_text())
        return int(data["epoch"]), int(data.get("batch") or 0)
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0


def backup_epoch(backup_dir) -> int:
    """Epochs completed according to a BackupAndRestore folder (0 when there is none)."""
    return backup_state(backup_dir)[0]


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose files are replaced atomically (a kill mid-save keeps the old),
    at every epoch end and also within epochs: every ``every_steps`` steps and/or every
    ``every_minutes`` minutes of training (whichever comes first; None turns one off).

    The metadata is Keras's ``{"epoch": e, "batch": b}`` with ``b`` the number of steps of
    epoch ``e`` already trained (0 at an epoch's end); :func:`backup_state` reads it. A
    resumed run (``engine.train``) continues epoch ``e`` at step ``b`` and its data stream at
    batch ``e * steps_per_epoch + b`` (``make_dataset(skip_batches=...)``), so a kill costs at
    most the steps since the last backup. ``start_step`` tells the callback where the first
    epoch of the next ``fit`` begins (the restored ``b``).

    The weights file (with the optimizer state) is renamed into place before the metadata,
    so a kill between the two renames resumes a little early with newer weights: never with
    a half-written file.
    """

    def __init__(self, backup_dir, every_steps: int | None = None,
                 every_minutes: float | None = None, clock=time.monotonic):
        super().__init__(backup_dir=str(backup_dir), save_freq="epoch",
                         delete_checkpoint=False)
        self.every_steps = every_steps
        self.every_seconds = None if every_minutes is None else 60.0 * float(every_minutes)
        self.clock = clock
        self.start_step = 0
        self.saves = 0
        self._restored = False
        self._step = 0
        self._last_save_step = 0
        self._last_save_time = None

    def on_train_begin(self, logs=None):
        if not self._restored:  # a resumed run calls fit twice: restore once
            super().on_train_begin(logs)
            self._restored = True
        self._last_save_time = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._step = self._last_save_step = self.start_step
        self.start_step = 0

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        due_steps = self.every_steps and self._step - self._last_save_step >= self.every_steps
        due_time = (self.every_seconds is not None
                    and self.clock() - self._last_save_time >= self.every_seconds)
        if due_steps or due_time:
            self._last_batch_seen = self._step
            self._save_model()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        self._save_model()

    def _save_model(self):
        with atomic_path(self._weights_path) as tmp:
            tmp.write_bytes(weights_h5_bytes(self.model))
        atomic_write_json(self._training_metadata_path,
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen})
        self.saves += 1
        self._last_save_step = self._step
        self._last_save_time = self.clock()


def weights_h5_bytes(model) -> bytes:
    """The ``.weights.h5`` file that ``model.save_weights`` writes (optimizer state
    included), built in memory.

    A full disk then fails one plain Python write (``OSError`` ENOSPC, see
    :func:`~celebseg_utils.fileio.naming_write_errors`): h5py writing straight into a full
    disk reports the failure again from every HDF5 object it frees, then can crash the
    interpreter at exit (seen: hundreds of tracebacks, exit -11).

    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> weights_h5_bytes(m)[:8]
    b'\\x89HDF\\r\\n\\x1a\\n'
    """
    try:
        from keras.src.saving import saving_lib

        buffer = io.BytesIO()
        store = saving_lib.H5IOStore(buffer, mode="w")
        saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                               visited_saveables=set())
        store.close()
        return buffer.getvalue()
    except (ImportError, AttributeError, TypeError):  # another Keras: its public writer
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.weights.h5"
            model.save_weights(path)
            return path.read_bytes()


class ResumableCSVLogger(keras.callbacks.CSVLogger):
    """CSVLogger(append=True) that first drops the rows of epochs the backup in
    ``backup_dir`` does not hold (they will be trained again), and mirrors the CSV into
    ``json_path`` after every epoch.

    Place it *before* the backup callback: at an epoch's end the row is written first and
    the backup last, so whatever a kill interrupts, the backup never runs ahead of the CSV.
    """

    def __init__(self, filename, backup_dir, json_path=None):
        super().__init__(str(filename), append=True)
        self.backup_dir = backup_dir
        self.json_path = json_path

    def on_train_begin(self, logs=None):
        start = backup_epoch(self.backup_dir)
        path = Path(self.filename)
        if path.exists():
            lines = path.read_text().splitlines()
            keep = [ln for ln in lines[1:] if (_row_epoch(ln) or 0) < start
                    and _row_epoch(ln) is not None and ln.count(",") == lines[0].count(",")]
            if keep:
                atomic_write_text(path, "\n".join([lines[0]] + keep) + "\n")
            else:
                path.unlink()
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        with naming_write_errors(self.filename):  # the buffered flush names no file
            super().on_epoch_end(epoch, logs)
        if self.json_path is not None:
            atomic_write_json(self.json_path, history_from_rows(read_history_csv(self.filename)))


def _row_epoch(line: str):
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return None


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint(save_best_only, mode="max") on ``val_miou`` that remembers the best
    value of the epochs before a resume (from the history CSV) and saves atomically."""

    def __init__(self, filepath, history_csv, backup_dir, monitor: str = "val_miou",
                 verbose: int = 0):
        # Keras' own message would name the temporary file: this class prints its own.
        super().__init__(str(filepath), monitor=monitor, mode="max", save_best_only=True,
                         verbose=0)
        self.say = bool(verbose)
        self.history_csv = history_csv
        self.backup_dir = backup_dir

    def on_train_begin(self, logs=None):
        rows = read_history_csv(self.history_csv, before_epoch=backup_epoch(self.backup_dir))
        best, _ = best_of(rows, self.monitor)
        self.best = best if best is not None and Path(self.filepath).exists() else None
        super().on_train_begin(logs)

    def _save_model(self, epoch, batch, logs):
        final = self.filepath
        tmp = str(temporary_beside(final))  # found by the next run's cleanup after a kill
        os.unlink(tmp)  # "exists afterwards" then means "the model was saved"
        self.filepath = tmp
        try:
            with naming_write_errors(final, tmp):
                super()._save_model(epoch, batch, logs)
            if os.path.exists(tmp):
                os.replace(tmp, final)
                if self.say:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} improved to "
                          f"{float(self.best):.4f}, saved {final}")
        finally:
            self.filepath = final
            if os.path.exists(tmp):
                os.unlink(tmp)


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first NaN/inf loss by raising :class:`NaNLossError`.

    Raising (rather than ``stop_training``) skips the end of the epoch, so neither the
    backup nor the history records the broken epoch: the run dir keeps its last good state.
    """

    def __init__(self, hint: str = ""):
        super().__init__()
        self.hint = hint
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NaNLossError(
                f"the loss became {'NaN' if math.isnan(float(loss)) else 'infinite'} at epoch "
                f"{self.epoch + 1} step {batch + 1}; lower the learning rate (e.g. --set "
                f"optimizer.learning_rate=1e-4), set optimizer.clipnorm=1.0 or "
                f"mixed_precision=false, and train again in a new --run-dir{self.hint}")


class EtaReporter(keras.callbacks.Callback):
    """Says when the run will end: once the step rate is measured (over the first steps
    after compilation), then at every epoch's end with the rates that epoch measured.

    The estimate covers the remaining training steps, the validation and saves of the
    remaining epochs and what comes after training (``costs.end_s``: final save, test
    evaluation); ``costs`` holds the probe's validation and save figures, and its step time
    is replaced by the measured one. The first ``skip_steps`` are left out: compilation, and
    batches the input pipeline prefetched while it ran (they hide its cost; measured on the
    2-core CPU, a window right after compilation read 2.2 s per step where the epoch took
    5). ``start_epoch`` / ``start_step`` are where a resumed run begins. ``clock`` and ``say`` are injectable (tests use a fake clock).

    >>> from celebseg_utils.engine.budget import Costs
    >>> t = [0.0]
    >>> eta = EtaReporter(epochs=2, steps_per_epoch=10, batch_size=4, clock=lambda: t[0],
    ...                   costs=Costs(step_s=0, val_step_s=1.0, val_steps=2, end_s=5.0),
    ...                   skip_steps=1, measure_steps=3, measure_s=0.0, say=print)
    >>> eta.on_epoch_begin(0)
    >>> for b in range(4):
    ...     t[0] += 10.0 if b == 0 else 0.5   # the first step compiles
    ...     eta.on_train_batch_end(b)
    2 epochs x 10 steps: ETA 17 s at 8.0 img/s (validation, saves and the end included)
    >>> round(eta.first_eta_s, 1)  # 16 steps x 0.5 s + 2 x 2 s validation + 5 s
    17.0
    """

    def __init__(self, epochs: int, steps_per_epoch: int, batch_size: int, costs,
                 start_epoch: int = 0, start_step: int = 0, skip_steps: int = 5,
                 measure_steps: int = 20, measure_s: float = 10.0, clock=time.monotonic,
                 say=print):
        super().__init__()
        self.epochs, self.steps, self.batch_size = int(epochs), int(steps_per_epoch), batch_size
        self.costs = costs
        self.steps_left = (self.epochs - start_epoch) * self.steps - start_step
        self.epochs_left = self.epochs - start_epoch
        self.skip_steps, self.measure_steps, self.measure_s = skip_steps, measure_steps, measure_s
        self.clock, self.say = clock, say
        self.first_eta_s = None      # the first estimate, seconds from when it was said
        self._seen = 0               # steps seen since the process started training
        self._window = None          # (clock, steps seen) where the measurement starts
        self._epoch_start = self._epoch_steps = self._test_start = None
        self._val_s = None

    def _eta(self, end: bool = True) -> float:
        from celebseg_utils.engine.budget import eta_seconds

        return eta_seconds(self.steps_left, self.epochs_left, self.costs, end=end)

    def _use(self, step_s: float | None = None, val_step_s: float | None = None):
        import dataclasses

        changes = {}
        if step_s is not None:
            changes["step_s"] = step_s
        if val_step_s is not None:
            changes["val_step_s"] = val_step_s
        self.costs = dataclasses.replace(self.costs, **changes)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._epoch_steps, self._val_s = self.clock(), 0, None

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        self._epoch_steps += 1
        self.steps_left -= 1
        now = self.clock()
        if self._seen == self.skip_steps:
            self._window = (now, self._seen)
        if self.first_eta_s is None and self._window is not None:
            start, seen = self._window
            n = self._seen - seen
            if n >= self.measure_steps and now - start >= self.measure_s:
                self._use(step_s=(now - start) / n)
                self._report_first()

    def _report_first(self):
        self.first_eta_s = self._eta()
        rate = self.batch_size / self.costs.step_s
        self.say(f"{self.epochs} epochs x {self.steps} steps: ETA "
                 f"{format_duration(self.first_eta_s)} at {rate:.1f} img/s (validation, saves and the end "
                 f"included)")

    def on_test_begin(self, logs=None):
        self._test_start = self.clock()

    def on_test_end(self, logs=None):
        if self._test_start is not None:
            self._val_s = self.clock() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.epochs_left -= 1
        if self._val_s is not None and self.costs.val_steps:
            self._use(val_step_s=self._val_s / self.costs.val_steps)
        train_end = now - (self._val_s or 0.0)
        if self._window is not None and self._epoch_steps > self.skip_steps:
            # this epoch's own rate; the first epoch's compilation steps left out
            if self._epoch_start > self._window[0]:
                start, steps = self._epoch_start, self._epoch_steps
            else:
                start, steps = self._window[0], self._seen - self._window[1]
            if steps > 0:
                self._use(step_s=(train_end - start) / steps)
        if self.first_eta_s is None and self.costs.step_s > 0:
            self._report_first()
            return
        if self.epochs_left > 0 and self.costs.step_s > 0:
            self.say(f"epoch {epoch + 1}/{self.epochs} done: {self.epochs_left} to go, ETA "
                     f"{format_duration(self._eta())} at {self.batch_size / self.costs.step_s:.1f} img/s")


class CurvePoints(keras.callbacks.Callback):
    """The learning curve: the model scored on a split after chosen numbers of training steps.

    At the end of every epoch whose last step is one of ``curve_steps`` (so each must be a
    multiple of ``steps_per_epoch``), the model as it is then goes through the one evaluation
    loop (:func:`~celebseg_utils.engine.scoring.score_split`, both protocols), which writes::

        FOLDER/step<N>.json                 {"steps", "epoch", "protocols": {name: results}}
        FOLDER/step<N>_<protocol>.npz       per-image tp, fp, fn (the study's bootstrap)

    A point already written is kept (a resumed run does not score it again). It runs before
    the epoch's backup: a kill while it scores repeats the epoch's end, not the point.

    >>> CurvePoints.reachable([250, 500, 700], steps_per_epoch=250, epochs=4)
    ([250, 500], [700])
    """

    def __init__(self, folder, curve_steps, steps_per_epoch: int, prepared: str, split: str,
                 batch_size: int = 8):
        super().__init__()
        self.folder = Path(folder)
        self.steps = set(int(s) for s in curve_steps)
        self.steps_per_epoch = int(steps_per_epoch)
        self.prepared, self.split, self.batch_size = prepared, split, batch_size

    @staticmethod
    def reachable(curve_steps, steps_per_epoch: int, epochs: int) -> tuple[list, list]:
        """(steps that fall on an epoch end of the run, those that do not)."""
        ends = {steps_per_epoch * (e + 1) for e in range(epochs)}
        steps = sorted(int(s) for s in curve_steps)
        return [s for s in steps if s in ends], [s for s in steps if s not in ends]

    def on_epoch_end(self, epoch, logs=None):
        from celebseg_utils.engine.scoring import PROTOCOLS, score_split

        step = (int(epoch) + 1) * self.steps_per_epoch
        path = self.folder / f"step{step}.json"
        if step not in self.steps or path.exists():
            return
        began = time.perf_counter()
        scored = score_split(self.model, self.prepared, self.split, batch_size=self.batch_size,
                             protocols=PROTOCOLS)
        for protocol, scores in scored.items():
            scores.save_counts(self.folder / f"step{step}_{protocol}.npz")
        atomic_write_json(path, {"steps": step, "epoch": int(epoch) + 1, "split": self.split,
                                 "protocols": {p: s.results() for p, s in scored.items()}})
        first = scored["model_size"].results()
        print(f"curve: step {step}: {self.split} mean F1 {first['mean_f1']:.3f} (model size), "
              f"{scored['label_size'].results()['mean_f1']:.3f} (label size), scored in "
              f"{time.perf_counter() - began:.0f} s", flush=True)

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
from pathlib import Path

import keras

from celebseg_utils.errors import CelebsegError
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


def backup_epoch(backup_dir) -> int:
    """Epochs completed according to a BackupAndRestore folder (0 when there is none)."""
    path = Path(backup_dir) / "training_metadata.json"
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose files are replaced atomically (a kill mid-save keeps the old).

    The weights file (with the optimizer state) is renamed into place before the epoch
    counter, so a kill between the two renames resumes one epoch early with newer weights:
    never with a half-written file.
    """

    def __init__(self, backup_dir):
        super().__init__(backup_dir=str(backup_dir), save_freq="epoch",
                         delete_checkpoint=False)

    def _save_model(self):
        with atomic_path(self._weights_path) as tmp:
            tmp.write_bytes(weights_h5_bytes(self.model))
        atomic_write_json(self._training_metadata_path,
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen})


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

"""Reliability, runs: SIGKILL and Ctrl-C during `prepare` and `train`, a full disk, NaN loss.

The kills go to real ``python -m celebseg_utils`` processes (started in their own session,
so ``os.killpg`` also reaches prepare's worker processes); re-runs and checks use the CLI in
this process. A full disk is a tiny tmpfs mounted for the test (root only; skipped
elsewhere). The training runs are the cpu-demo preset shrunk to MobileNetV3 at 64 px,
batch 2, 3 epochs of a few steps. The random kill step comes from
``random.Random(CELEBSEG_RELIABILITY_SEED)`` (default 7) and is printed with where it landed:
``CELEBSEG_RELIABILITY_SEED=3 pytest tests/reliability/test_reliability_runs.py -k random -s``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from harness import REPO_ROOT, Result, assert_user_error, partial_files, run_cli, tree_digest

from celebseg_utils.engine import callbacks as cb
from celebseg_utils.data import layout

SOURCES, COPIES = 24, 1600   # prepare: 24 drawn faces, hard-linked to 1600 images
EPOCHS, STEPS = 3, 3         # train: 3 epochs of 3 steps
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO_ROOT),
       "PYTHONUNBUFFERED": "1"}
INTERRUPTED = "error: interrupted; outputs written so far are complete, re-run to continue"


# --------------------------------------------------------------------------- helpers

def _start(argv, log_dir: Path, name: str) -> subprocess.Popen:
    """``python -m celebseg_utils ARGV`` in its own session, stdout/stderr to log files."""
    out = (log_dir / f"{name}.out").open("w")
    err = (log_dir / f"{name}.err").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "celebseg_utils", *map(str, argv)],
                            cwd=REPO_ROOT, env=ENV, stdout=out, stderr=err,
                            start_new_session=True)
    proc.logs = (Path(out.name), Path(err.name))
    out.close()
    err.close()
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 300) -> Result:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Result(proc.returncode, proc.logs[0].read_text(), proc.logs[1].read_text())


def _wait_until(proc: subprocess.Popen, condition, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process ended before {what}:\n{_finish(proc)}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"timed out waiting for {what}:\n{_finish(proc)}")
        time.sleep(0.005)


@contextlib.contextmanager
def tiny_fs(path: Path, size: str):
    """A tmpfs of ``size`` (``mount -o size=``) at ``path``: a disk that fills up."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated by mounting a tiny tmpfs, which needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to simulate a full disk: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _resize(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def _fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its filesystem has no byte left."""
    folder.mkdir(exist_ok=True)
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def _label_ids(out: Path) -> list[int]:
    return sorted(int(m[1]) for e in os.scandir(out / "labels")
                  if (m := re.fullmatch(r"(\d+)\.png", e.name)))


def _work_folders(out: Path) -> list[Path]:
    """The hidden folders ``prepare`` works in beside ``out`` (it is all or nothing)."""
    return sorted(out.parent.glob(f".{out.name}.prepare-*"))


def _assert_labels_whole(out: Path, setup) -> int:
    """Every label present decodes to the fusion of its image's masks; returns the count."""
    ids = _label_ids(out)
    for k in ids:
        with Image.open(layout.label_path(out, k)) as im:
            got = np.asarray(im)
        np.testing.assert_array_equal(got, setup.expected[k % SOURCES], err_msg=f"label {k}")
    return len(ids)


# --------------------------------------------------------------------------- prepare

def _replicate(src: Path, raw: Path, count: int) -> Path:
    """A raw folder of ``count`` images whose files are hard links to ``src``'s images."""
    from celebseg_utils.data.splits import read_mapping

    rows = read_mapping(layout.mapping_path(src))
    (raw / layout.IMAGE_DIR).mkdir(parents=True)
    lines = ["idx orig_idx orig_file"]
    masks = {}
    for entry in os.scandir(src / layout.MASK_DIR / "0"):
        masks.setdefault(int(entry.name[:5]), []).append(entry.name[6:])
    for k in range(count):
        j = k % len(rows)
        os.link(layout.image_path(src, j), layout.image_path(raw, k))
        for attribute_png in masks[j]:
            target = layout.mask_path(raw, k, attribute_png[:-4])
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(layout.mask_path(src, j, attribute_png[:-4]), target)
        lines.append(f"{k} {rows[j][1]} {rows[j][2]}")
    layout.mapping_path(raw).write_text("\n".join(lines) + "\n")
    return raw


@pytest.fixture(scope="module")
def raw_setup(tmp_path_factory):
    """1600 images to prepare (slow enough to kill mid-way) and an uninterrupted reference."""
    from celebseg_utils.data.masks import fuse_masks
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    root = tmp_path_factory.mktemp("raw")
    src = write_synthetic_dataset(root / "src", SOURCES, image_size=64, seed=0, progress=False)
    raw = _replicate(Path(src), root / "raw", COPIES)
    reference = root / "reference"
    assert run_cli(["prepare", "--data-root", raw, "--out", reference, "--workers", "2"]).code == 0
    setup = SimpleNamespace(raw=raw, reference=reference,
                            expected=[fuse_masks(src, j) for j in range(SOURCES)])
    assert _assert_labels_whole(reference, setup) == COPIES
    setup.digest = tree_digest(reference)
    return setup


KILL_MOMENTS = {  # name -> condition on the number of labels written so far
    "labels-folder": lambda n: n >= 0,
    "first-label": lambda n: n >= 1,
    "half-the-labels": lambda n: n >= COPIES // 2,
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", [
    pytest.param(name, id=name, marks=pytest.mark.reliability(
        "runs", f"SIGKILL to `celebseg prepare` and its workers ({name.replace('-', ' ')})",
        "no --out at all (the labels were in its hidden work folder, each whole); the re-run "
        "removes that folder, exits 0, tree equal to an uninterrupted run"))
    for name in KILL_MOMENTS])
def test_sigkill_during_prepare(tmp_path, raw_setup, moment):
    out = tmp_path / "prepared"
    proc = _start(["prepare", "--data-root", raw_setup.raw, "--out", out, "--workers", "2"],
                  tmp_path, "prepare")

    def reached():
        try:
            return KILL_MOMENTS[moment](len(_label_ids(_work_folders(out)[0])))
        except (FileNotFoundError, IndexError):  # the work folder or its labels/ not made yet
            return False

    _wait_until(proc, reached, f"the moment {moment}")
    os.killpg(proc.pid, signal.SIGKILL)
    killed = _finish(proc)
    assert killed.code == -signal.SIGKILL, str(killed)
    assert not out.exists(), "prepare finished before the kill: nothing tested"
    (work,) = _work_folders(out)
    kept = _assert_labels_whole(work, raw_setup)
    print(f"killed at {moment}: {kept} of {COPIES} labels whole in {work.name}")

    again = run_cli(["prepare", "--data-root", raw_setup.raw, "--out", out, "--workers", "2"])
    assert again.code == 0, str(again)
    assert f"{COPIES} labels written, 0 kept from an earlier run" in again.out
    assert partial_files(out) == [] and _work_folders(out) == []
    assert tree_digest(out) == raw_setup.digest


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "Ctrl-C (SIGINT to the process group) during `celebseg prepare` with 2 workers",
    "exit 130 with the one-line `interrupted` message and no traceback; the re-run equals an "
    "uninterrupted run")
def test_ctrl_c_during_prepare(tmp_path, raw_setup):
    out = tmp_path / "prepared"
    argv = ["prepare", "--data-root", raw_setup.raw, "--out", out, "--workers", "2"]
    proc = _start(argv, tmp_path, "prepare")
    _wait_until(proc, lambda: bool(_work_folders(out)) and (_work_folders(out)[0] / "labels").is_dir()
                and len(_label_ids(_work_folders(out)[0])) >= 200, "200 labels")
    # The terminal sends SIGINT to every process of the group at once; holding the main
    # process for a moment makes the order deterministic: the workers see it first.
    os.kill(proc.pid, signal.SIGSTOP)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGCONT)
    stopped = _finish(proc)
    assert assert_user_error(stopped, code=130) == INTERRUPTED
    assert not out.exists() and _work_folders(out) == []  # all or nothing

    again = run_cli(argv)
    assert again.code == 0, str(again)
    assert partial_files(out) == [] and tree_digest(out) == raw_setup.digest


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "`celebseg prepare` onto a disk that fills up (a 256 KiB tmpfs), then again",
    "one-line `No space left on device` naming a label under --out, exit 2; no --out and no work "
    "folder left (all or nothing); with space the re-run equals a clean run")
def test_prepare_on_a_full_disk(tmp_path, raw_setup):
    with tiny_fs(tmp_path / "disk", "256k") as disk:
        out = disk / "prepared"
        argv = ["prepare", "--data-root", raw_setup.raw, "--out", out, "--workers", "2"]
        first = run_cli(argv)
        line = assert_user_error(first, "No space left on device", str(out / "labels"))
        label = rf"{re.escape(str(out / 'labels'))}/\d+\.png"
        assert re.fullmatch(rf"error: No space left on device: {label}", line), line
        assert not out.exists() and _work_folders(out) == []

        assert_user_error(run_cli(argv), "No space left on device")  # a second try: the same
        assert not out.exists() and _work_folders(out) == []

        _resize(disk, "16m")  # the user frees space
        again = run_cli(argv)
        assert again.code == 0, str(again)
        assert "0 kept from an earlier run" in again.out
        assert partial_files(out) == [] and tree_digest(out) == raw_setup.digest


# --------------------------------------------------------------------------- train

def _train_argv(prepared: Path, run: Path, quiet: bool = True, **extra) -> list:
    from test_train import tiny_overrides

    argv = ["train", "--preset", "cpu-demo", "--run-dir", run] + (["--quiet"] if quiet else [])
    values = {"epochs": EPOCHS, "steps_per_epoch": STEPS, "tensorboard": False, **extra}
    for item in tiny_overrides(prepared, **values):
        argv += ["--set", item]
    return argv


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _global_step(log: str) -> int:
    """Steps done so far according to a Keras progress bar log (``Epoch e/E``, ``k/S``)."""
    epoch = step = 0
    for token in re.split(r"[\r\n]+", _ANSI.sub("", log)):
        if m := re.match(r"\s*Epoch (\d+)/\d+", token):
            epoch, step = int(m[1]), 0
        elif (m := re.match(rf"\s*(\d+)/{STEPS}\b", token)) and epoch:
            step = int(m[1])
    return max(0, (epoch - 1) * STEPS + step)


def _assert_complete(run: Path, resumed_from: int):
    """A finished run: each epoch once in history and summary, models that load."""
    from celebseg_utils.engine.train import load_trained_model

    rows = cb.read_history_csv(run / "history.csv")
    assert [r["epoch"] for r in rows] == list(range(EPOCHS))
    assert len((run / "history.csv").read_text().splitlines()) == 1 + EPOCHS
    assert json.loads((run / "history.json").read_text())["epoch"] == list(range(EPOCHS))
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["resumed_from_epoch"], summary["epochs_completed"]) == (resumed_from, EPOCHS)
    assert sorted(p.name for p in run.iterdir()) == [  # nothing hidden or half-written left
        "best.keras", "config.yaml", "final.keras", "history.csv", "history.json",
        "summary.json"]
    final = load_trained_model(run / "final.keras", compile=True)
    # the optimizer counted every step once: no epoch lost or trained twice
    assert int(final.optimizer.iterations) == EPOCHS * STEPS
    assert load_trained_model(run / "best.keras").count_params() == final.count_params()


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "SIGKILL to `celebseg train` at a random step (seeded; the step is logged)",
    "the re-run exits 0, resumes at the backed-up epoch, each epoch once in history, "
    "models load, optimizer steps = total")
def test_sigkill_during_train_at_a_random_step(tmp_path, tiny_prepared):
    seed = int(os.environ.get("CELEBSEG_RELIABILITY_SEED", "7"))
    target = random.Random(seed).randint(1, EPOCHS * STEPS - 1)
    run = tmp_path / "run"
    proc = _start(_train_argv(tiny_prepared, run, quiet=False), tmp_path, "train")
    log = proc.logs[0]
    _wait_until(proc, lambda: _global_step(log.read_text()) >= target, f"step {target}")
    os.killpg(proc.pid, signal.SIGKILL)
    killed = _finish(proc)
    at, backed_up = _global_step(killed.out), cb.backup_epoch(run / "backup")
    print(f"seed {seed}: kill drawn at step {target}, landed at step {at}; "
          f"backup holds {backed_up} epochs")
    assert killed.code == -signal.SIGKILL and not (run / "summary.json").exists(), str(killed)

    again = run_cli(_train_argv(tiny_prepared, run))
    assert again.code == 0, str(again)
    if backed_up:
        assert f"resuming at epoch {backed_up + 1}/{EPOCHS}" in again.out
    _assert_complete(run, resumed_from=backed_up)


# `celebseg train` with a callback that logs the optimizer's step count after every step
# (flushed and synced: a SIGKILL loses no line of a step that ran).
_STEP_LOGGING_TRAIN = """
import os, sys, keras
from celebseg_utils.engine import train as T
log = open(os.environ["CELEBSEG_STEP_LOG"], "a")
class StepLog(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        log.write(f"{int(self.model.optimizer.iterations)}\\n"); log.flush(); os.fsync(log.fileno())
make = T._callbacks
T._callbacks = lambda *a, **k: make(*a, **k) + [StepLog()]
from celebseg_utils.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "SIGKILL to `celebseg train` mid-epoch, with a backup every 2 steps "
    "(`backup_every_steps=2`)",
    "the re-run resumes at the backed-up step of that epoch and repeats at most 2 steps "
    "(the optimizer's step count logged after every step); optimizer steps = total")
def test_sigkill_mid_epoch_repeats_at_most_one_backup_interval(tmp_path, tiny_prepared):
    epochs, steps, every = 2, 8, 2
    run, step_log = tmp_path / "run", tmp_path / "steps.log"
    argv = _train_argv(tiny_prepared, run, epochs=epochs, steps_per_epoch=steps,
                       backup_every_steps=every, backup_every_minutes="none")
    env = {**ENV, "CELEBSEG_STEP_LOG": str(step_log)}

    def start(name):
        out, err = (tmp_path / f"{name}.out").open("w"), (tmp_path / f"{name}.err").open("w")
        proc = subprocess.Popen([sys.executable, "-c", _STEP_LOGGING_TRAIN, *map(str, argv)],
                                cwd=REPO_ROOT, env=env, stdout=out, stderr=err,
                                start_new_session=True)
        proc.logs = (Path(out.name), Path(err.name))  # what _finish reports
        out.close()
        err.close()
        return proc

    def logged():
        return [int(x) for x in step_log.read_text().split()] if step_log.exists() else []

    proc = start("first")
    _wait_until(proc, lambda: len(logged()) >= 5, "step 5 of epoch 1", timeout=600)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = logged()
    epoch, step = cb.backup_state(run / "backup")
    print(f"killed after {len(first)} steps; the backup holds epoch {epoch}, step {step}")
    assert (epoch, step) in ((0, 4), (0, 6)), "the kill should land mid-epoch"
    assert first == list(range(1, len(first) + 1))

    second = _finish(start("second"), timeout=600)
    assert second.code == 0, str(second)
    out = second.out
    assert f"resuming at epoch 1/{epochs} step {step + 1}/{steps}" in out, out
    resumed = logged()[len(first):]
    # the second process went on from the backed-up step, to the end, once each
    assert resumed == list(range(step + 1, epochs * steps + 1))
    repeated = sorted(set(first) & set(resumed))
    assert len(repeated) == len(first) - step <= every, repeated
    _assert_complete_run(run, epochs, steps)


def _assert_complete_run(run: Path, epochs: int, steps: int):
    from celebseg_utils.engine.train import load_trained_model

    assert [r["epoch"] for r in cb.read_history_csv(run / "history.csv")] == list(range(epochs))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_completed"] == epochs and not (run / "backup").exists()
    final = load_trained_model(run / "final.keras", compile=True)
    assert int(final.optimizer.iterations) == epochs * steps


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "SIGKILL to `celebseg train` while it writes a checkpoint (`best.keras` or backup)",
    "final names never half-written; the re-run removes the temporaries, resumes, exits 0, "
    "each epoch once")
def test_sigkill_while_writing_a_checkpoint(tmp_path, tiny_prepared):
    run = tmp_path / "run"
    proc = _start(_train_argv(tiny_prepared, run), tmp_path, "train")

    def writing():
        return [p for p in partial_files(run) if p.endswith((".tmp.keras", ".tmp.h5"))] \
            if run.is_dir() else []

    _wait_until(proc, writing, "a checkpoint write")
    os.killpg(proc.pid, signal.SIGKILL)
    killed = _finish(proc)
    left = partial_files(run)
    print(f"killed while writing {writing()}; temporaries left: {left}")
    assert killed.code == -signal.SIGKILL and left, str(killed)
    backed_up = cb.backup_epoch(run / "backup")
    if (run / "best.keras").exists():  # a final name holds a whole model, or nothing
        from celebseg_utils.engine.train import load_trained_model

        load_trained_model(run / "best.keras")

    again = run_cli(_train_argv(tiny_prepared, run))
    assert again.code == 0, str(again)
    _assert_complete(run, resumed_from=backed_up)


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "Ctrl-C (SIGINT) to `celebseg train` in its second epoch",
    "exit 130 with the one-line `interrupted ... re-run to continue`; the re-run resumes at "
    "epoch 2 and finishes, each epoch once")
def test_ctrl_c_during_train(tmp_path, tiny_prepared):
    run = tmp_path / "run"
    proc = _start(_train_argv(tiny_prepared, run, quiet=False), tmp_path, "train")
    _wait_until(proc, lambda: _global_step(proc.logs[0].read_text()) > STEPS + 1,
                "the second epoch")
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    stopped = _finish(proc)
    assert assert_user_error(stopped, code=130) == INTERRUPTED
    assert "Exception ignored" not in stopped.err, str(stopped)
    assert partial_files(run) == []
    backed_up = cb.backup_epoch(run / "backup")
    assert backed_up in (1, 2), str(stopped)  # 2 if the signal came during epoch 2's end

    again = run_cli(_train_argv(tiny_prepared, run))
    assert again.code == 0, str(again)
    assert f"resuming at epoch {backed_up + 1}/{EPOCHS}" in again.out
    _assert_complete(run, resumed_from=backed_up)


@pytest.fixture(scope="module")
def filled_run(tmp_path_factory, tiny_prepared):
    """A training run on a disk that another program fills after the run's first epoch."""
    root = tmp_path_factory.mktemp("fill")
    with tiny_fs(root / "disk", "512m") as disk:
        run = disk / "run"
        proc = _start(_train_argv(tiny_prepared, run), root, "train")
        _wait_until(proc, lambda: cb.backup_epoch(run / "backup") >= 1, "epoch 1's backup")
        os.killpg(proc.pid, signal.SIGSTOP)  # hold it still between two epochs
        before = {k: v for k, v in tree_digest(run).items() if not k.startswith("history.")}
        history = (run / "history.csv").read_text()
        filler = _fill(disk)
        # 64 KiB stay free: the epoch's history rows fit, its checkpoints do not
        os.truncate(filler, filler.stat().st_size - (64 << 10))
        os.killpg(proc.pid, signal.SIGCONT)
        yield SimpleNamespace(run=run, filler=filler, first=_finish(proc), before=before,
                              history=history)


def _assert_run_intact(setup):
    """The files of the last backed-up epoch are those from before the disk filled up."""
    now = {k: v for k, v in tree_digest(setup.run).items() if not k.startswith("history.")}
    assert now == setup.before
    assert (setup.run / "history.csv").read_text().startswith(setup.history)
    assert partial_files(setup.run) == []
    assert cb.backup_epoch(setup.run / "backup") == 1


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "the disk fills up (64 KiB left) while `celebseg train` is in its second epoch",
    "one-line `No space left on device: <best.keras or backup weights>`, exit 2; best model, "
    "backup, config unchanged, no temp files")
def test_disk_fills_during_train(filled_run):
    first, run = filled_run.first, filled_run.run
    line = assert_user_error(first, "No space left on device")
    assert line in (f"error: No space left on device: {run / 'best.keras'}",
                    f"error: No space left on device: {run / 'backup' / 'latest.weights.h5'}"), line
    assert "Exception ignored" not in first.err, str(first)
    _assert_run_intact(filled_run)


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "`celebseg train` resuming a run whose disk is still full, then after freeing it",
    "one-line `No space left on device: <run>/config.yaml`, exit 2, run unchanged; with space "
    "it resumes at epoch 2 and finishes, each epoch once")
def test_train_resumes_on_a_full_disk(filled_run, tiny_prepared):
    run = filled_run.run
    argv = _train_argv(tiny_prepared, run)
    more = _fill(filled_run.filler.parent / "more")  # not even the config fits now
    line = assert_user_error(run_cli(argv), "No space left on device")
    assert line == f"error: No space left on device: {run / 'config.yaml'}"
    _assert_run_intact(filled_run)

    filled_run.filler.unlink()  # the user frees space
    more.unlink()
    again = run_cli(argv)
    assert again.code == 0, str(again)
    assert f"resuming at epoch 2/{EPOCHS}" in again.out
    _assert_complete(run, resumed_from=1)


@pytest.mark.parametrize("kind", [
    pytest.param("best", id="best-model", marks=pytest.mark.reliability(
        "runs", "`BestCheckpoint` saving an improved `best.keras` onto a full disk",
        "OSError ENOSPC naming best.keras; the previous best.keras unchanged, no temp files")),
    pytest.param("backup", id="backup", marks=pytest.mark.reliability(
        "runs", "`AtomicBackupAndRestore` saving the epoch's weights onto a full disk",
        "OSError ENOSPC naming latest.weights.h5; previous backup unchanged, no temp files, "
        "no HDF5 error spam"))])
def test_checkpoint_save_on_a_full_disk(tmp_path, kind, capfd):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(64), keras.layers.Dense(2)])
    model.compile(keras.optimizers.AdamW(1e-3), loss="mse")
    x, y = np.ones((4, 3)), np.zeros((4, 2))
    model.fit(x, y, epochs=1, verbose=0)
    with tiny_fs(tmp_path / "disk", "1m") as disk:
        run = disk / "run"
        if kind == "best":
            callback = cb.BestCheckpoint(run / "best.keras", run / "history.csv", run / "backup")
            final = run / "best.keras"
        else:
            callback = cb.AtomicBackupAndRestore(run / "backup")
            final = run / "backup" / "latest.weights.h5"
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_end(0, {"val_miou": 0.1})
        before = tree_digest(run)
        assert str(final.relative_to(run)) in before
        _fill(disk / "other")
        model.fit(x, y, epochs=1, verbose=0)
        with pytest.raises(OSError) as info:
            callback.on_epoch_end(1, {"val_miou": 0.2})
        assert (info.value.errno, info.value.strerror, info.value.filename) == (
            28, "No space left on device", str(final))
        assert tree_digest(run) == before and partial_files(run) == []
    assert "Exception ignored" not in capfd.readouterr().err


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "a learning rate that climbs to 1e30 in epoch 2 (poly decay to `end_learning_rate`)",
    "one-line error naming epoch 2 and its step and the fix, exit 2; best.keras = epoch 1's "
    "backed-up weights, all finite")
def test_nan_loss_keeps_the_best_model(tmp_path, tiny_prepared):
    from celebseg_utils.engine.train import load_trained_model

    # lr: warm-up to 1e-3 over epoch 1 (3 steps), then "decay" from 1e-3 towards 1e30: 0 at
    # step 4 (float32 rounding), 1.5e29 at step 5, so step 6's loss (epoch 2) is not finite.
    run = tmp_path / "run"
    result = run_cli(_train_argv(tiny_prepared, run, steps_per_epoch=3, **{
        "optimizer.learning_rate": 1e-3, "optimizer.warmup_epochs": 1,
        "optimizer.end_learning_rate": 1e30}))
    line = assert_user_error(result, "at epoch 2 step 3", "lower the learning rate", "--set")
    assert re.fullmatch(r"error: the loss became (NaN|infinite) at epoch 2 step 3; .*", line), line
    assert not (run / "final.keras").exists() and not (run / "summary.json").exists()
    assert [r["epoch"] for r in cb.read_history_csv(run / "history.csv")] == [0]
    assert cb.backup_epoch(run / "backup") == 1 and partial_files(run) == []

    best = load_trained_model(run / "best.keras", compile=True)
    backed_up = load_trained_model(run / "best.keras", compile=True)
    backed_up.load_weights(run / "backup" / "latest.weights.h5")
    assert int(best.optimizer.iterations) == int(backed_up.optimizer.iterations) == 3
    assert all(np.isfinite(w).all() for w in best.get_weights())
    # (compared by outputs: the backbone's unused last conv is not restored from a .keras file)
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    logits = best.predict(x, verbose=0)
    assert np.isfinite(logits).all()
    np.testing.assert_array_equal(logits, backed_up.predict(x, verbose=0))


def test_helpers_read_progress_and_fill(tmp_path):
    """The test's own tools: the step parser and the disk filler."""
    assert STEPS == 3
    log = ("Epoch 1/3\n\x1b[1m1/3\x1b[0m ━━ 2s\r\x1b[1m3/3\x1b[0m ━━ 1s\nEpoch 2/3\n"
           "\r\x1b[1m2/3\x1b[0m ━━")
    assert _global_step(log) == 5 and _global_step("") == 0 and _global_step("Epoch 3/3\n") == 6
    with tiny_fs(tmp_path / "disk", "64k") as disk:
        _fill(disk)
        assert shutil.disk_usage(disk).free == 0
        with pytest.raises(OSError, match="No space left"):
            (disk / "x").write_bytes(b"x" * 4096)

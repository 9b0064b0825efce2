"""A training process killed with SIGKILL after its first epoch resumes at the second.

The run is the CLI in a subprocess (``python -m celebseg_utils train --preset cpu-demo ...``).
The test watches the backup folder, kills the process as soon as epoch 1 is backed up,
runs the same command again (in this process: only the kill needs one) and checks: the
second run starts at epoch 2, the history lists each epoch once, and the optimizer state
continued (its step count is the total).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import run_cli
from test_train import tiny_overrides

from celebseg_utils.engine import callbacks as cb

REPO = Path(__file__).resolve().parents[2]
EPOCHS, STEPS = 3, 3


def _argv(prepared: Path, run: Path) -> list[str]:
    argv = ["train", "--preset", "cpu-demo", "--run-dir", str(run), "--quiet"]
    for item in tiny_overrides(prepared, epochs=EPOCHS, steps_per_epoch=STEPS):
        argv += ["--set", item]
    return argv


def _command(prepared: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "celebseg_utils", *_argv(prepared, run)]


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "SIGKILL to `celebseg train` right after its first epoch's backup",
    "the same command resumes at epoch 2 and exits 0; each epoch once in history; optimizer "
    "steps = total")
def test_sigkill_after_first_epoch_resumes_at_second(tmp_path, tiny_prepared):
    prepared = tiny_prepared
    run = tmp_path / "run"
    log1 = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_command(prepared, run), cwd=REPO, env=_env(), stdout=log1,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    try:
        while cb.backup_epoch(run / "backup") < 1:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            assert time.time() < deadline, "the first epoch never completed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        log1.close()
    killed_at = cb.backup_epoch(run / "backup")
    assert killed_at == 1, f"killed after {killed_at} epochs; the epochs ran faster than polling"
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "summary.json").exists()
    assert [r["epoch"] for r in cb.read_history_csv(run / "history.csv")][:1] == [0]

    second = run_cli(_argv(prepared, run))
    out = second.out + second.err
    assert second.code == 0, out
    assert f"resuming at epoch 2/{EPOCHS}" in out
    assert f"Epoch 2/{EPOCHS}" in out and f"Epoch 1/{EPOCHS}" not in out

    rows = cb.read_history_csv(run / "history.csv")
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    lines = (run / "history.csv").read_text().splitlines()
    assert len(lines) == 1 + EPOCHS and lines[0].startswith("epoch,")
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [0, 1, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["resumed_from_epoch"], summary["epochs_completed"]) == (1, EPOCHS)
    assert not (run / "backup").exists() and (run / "final.keras").exists()

    # The optimizer state came back with the weights: its step counter is the whole run's.
    import keras

    import celebseg_utils.engine.train  # noqa: F401  (registers the custom objects)

    final = keras.saving.load_model(run / "final.keras")
    assert int(final.optimizer.iterations) == EPOCHS * STEPS

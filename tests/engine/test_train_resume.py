"""A training process killed with SIGKILL after its first epoch resumes at the second.

The run is the CLI in a subprocess (``python -m celebseg_utils train --preset cpu-demo ...``).
The test watches the backup folder, kills the process as soon as epoch 1 is backed up,
runs the same command again and checks: the second process starts at epoch 2, the history
lists each epoch once, and the optimizer state continued (its step count is the total).
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

from test_train import make_tiny_prepared, tiny_overrides

from celebseg_utils.engine import callbacks as cb

REPO = Path(__file__).resolve().parents[2]
EPOCHS, STEPS = 3, 3


def _command(prepared: Path, run: Path) -> list[str]:
    cmd = [sys.executable, "-m", "celebseg_utils", "train", "--preset", "cpu-demo",
           "--run-dir", str(run), "--quiet"]
    for item in tiny_overrides(prepared, epochs=EPOCHS, steps_per_epoch=STEPS):
        cmd += ["--set", item]
    return cmd


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "SIGKILL to `celebseg train` right after its first epoch's backup",
    "the same command resumes at epoch 2 and exits 0; each epoch once in history; optimizer "
    "steps = total")
def test_sigkill_after_first_epoch_resumes_at_second(tmp_path):
    prepared = make_tiny_prepared(tmp_path / "data")
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

    second = subprocess.run(_command(prepared, run), cwd=REPO, env=_env(), capture_output=True,
                            text=True, timeout=300)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
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
    check = (
        "import sys, keras, celebseg_utils.engine.train;"
        "m = keras.saving.load_model(sys.argv[1]); print(int(m.optimizer.iterations))")
    steps = subprocess.run([sys.executable, "-c", check, str(run / "final.keras")], cwd=REPO,
                           env=_env(), capture_output=True, text=True, timeout=120)
    assert steps.stdout.strip().splitlines()[-1] == str(EPOCHS * STEPS), steps.stderr

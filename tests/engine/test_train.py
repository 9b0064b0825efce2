"""The training engine: LR schedule, resumable callbacks, NaN stop, a tiny run end to end.

``make_tiny_prepared`` writes a 24-image synthetic dataset at 64 px and prepares it; the
``tiny_prepared`` fixture (conftest.py) is one such folder shared by the whole session.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from celebseg_utils.engine import callbacks as cb  # noqa: E402
from celebseg_utils.engine import config as C  # noqa: E402
from celebseg_utils.errors import CelebsegError  # noqa: E402
from celebseg_utils.engine.train import WarmupDecay  # noqa: E402


def make_tiny_prepared(root: Path, count: int = 24, image_size: int = 64) -> Path:
    """A synthetic raw folder under ``root/raw`` and its prepared twin ``root/prepared``."""
    from celebseg_utils.data.prepare import prepare_dataset
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    raw, prepared = Path(root) / "raw", Path(root) / "prepared"
    if not (prepared / "prepare.json").exists():
        write_synthetic_dataset(raw, count=count, image_size=image_size, seed=0, progress=False)
        prepare_dataset(raw, prepared, progress=False)
    return prepared


def tiny_overrides(prepared: Path, **extra) -> list[str]:
    """cpu-demo shrunk to seconds: MobileNetV3 at 64 px, batch 2, 2 steps per epoch."""
    values = {"data.prepared": str(prepared), "image_size": 64, "batch_size": 2,
              "steps_per_epoch": 2, "validation_steps": 1, "epochs": 2, "tensorboard": True,
              "data.augment": False, **extra}
    return [f"{k}={v}" for k, v in values.items()]


# --------------------------------------------------------------------------- schedule

def test_schedule_poly_by_hand():
    s = WarmupDecay(1e-3, total_steps=110, warmup_steps=10, kind="poly", end=1e-5, power=0.9)
    got = [float(s(i)) for i in (0, 4, 9, 10, 60, 110, 500)]
    want = [1e-4, 5e-4, 1e-3, 1e-3, 1e-5 + (1e-3 - 1e-5) * 0.5 ** 0.9, 1e-5, 1e-5]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_schedule_cosine_constant_and_no_warmup():
    cos = WarmupDecay(2e-3, total_steps=100, warmup_steps=0, kind="cosine")
    # progress 0.25: 0.5 * (1 + cos(pi/4)) = 0.853553...
    np.testing.assert_allclose([float(cos(0)), float(cos(25)), float(cos(100))],
                               [2e-3, 2e-3 * 0.8535533905932737, 0.0], rtol=1e-5, atol=1e-12)
    const = WarmupDecay(1e-3, total_steps=100, warmup_steps=4, kind="constant")
    np.testing.assert_allclose([float(const(1)), float(const(50))], [5e-4, 1e-3], rtol=1e-6)


def test_schedule_serialises():
    s = WarmupDecay(1e-3, total_steps=50, warmup_steps=5, kind="cosine", end=1e-6, power=2.0)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, WarmupDecay) and again.get_config() == s.get_config()
    with pytest.raises(CelebsegError, match="unknown schedule 'step'"):
        WarmupDecay(1e-3, 10, kind="step")


# --------------------------------------------------------------------------- callbacks

def test_csv_logger_keeps_only_backed_up_epochs(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    csv = tmp_path / "history.csv"
    # epoch 2's row made it to disk before the kill, its backup did not; a torn line follows
    csv.write_text("epoch,loss,val_miou\n0,2.0,0.1\n1,1.5,0.3\n2,1.2,0.35\n3,1.1")
    logger = cb.ResumableCSVLogger(csv, backup, json_path=tmp_path / "history.json")
    logger.on_train_begin()
    logger.on_epoch_end(2, {"loss": 1.25, "val_miou": 0.4})
    logger.on_train_end()
    assert csv.read_text().splitlines() == [
        "epoch,loss,val_miou", "0,2.0,0.1", "1,1.5,0.3", "2,1.25,0.4"]
    assert json.loads((tmp_path / "history.json").read_text()) == {
        "epoch": [0, 1, 2], "loss": [2.0, 1.5, 1.25], "val_miou": [0.1, 0.3, 0.4]}


def test_csv_logger_starts_fresh_without_backup(tmp_path):
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,loss,val_loss\n0,2.0,2.5\n")
    logger = cb.ResumableCSVLogger(csv, tmp_path / "no-backup")
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 3.0, "val_loss": 3.5})
    logger.on_train_end()
    assert csv.read_text().splitlines() == ["epoch,loss,val_loss", "0,3.0,3.5"]


def test_best_of_and_backup_epoch(tmp_path):
    rows = [{"epoch": 0, "val_miou": 0.2}, {"epoch": 1, "val_miou": float("nan")},
            {"epoch": 2, "val_miou": 0.5}, {"epoch": 3, "val_miou": 0.4},
            {"epoch": 4, "val_miou": 0.5}]
    assert cb.best_of(rows) == (0.5, 2)  # ties: the first, which the checkpoint kept
    assert cb.best_of([]) == (None, None)
    assert cb.backup_epoch(tmp_path) == 0
    (tmp_path / "training_metadata.json").write_text("{")  # torn: treated as no backup
    assert cb.backup_epoch(tmp_path) == 0


def _small_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.AdamW(1e-3), loss="mse")
    return model


def test_best_checkpoint_remembers_best_before_resume(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    (tmp_path / "history.csv").write_text("epoch,val_miou\n0,0.3\n1,0.6\n2,0.9\n")
    best = tmp_path / "best.keras"
    best.write_bytes(b"previous best")
    ckpt = cb.BestCheckpoint(best, tmp_path / "history.csv", backup)
    ckpt.set_model(_small_model())
    ckpt.on_train_begin()
    assert ckpt.best == 0.6  # epoch 2 (0.9) is not in the backup: it will be trained again
    ckpt.on_epoch_end(2, {"val_miou": 0.5})
    assert best.read_bytes() == b"previous best"
    ckpt.on_epoch_end(3, {"val_miou": 0.7})
    assert keras.saving.load_model(best).count_params() == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup", "best.keras", "history.csv"]


def test_atomic_backup_writes_weights_and_epoch(tmp_path):
    model = _small_model()
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    backup = cb.AtomicBackupAndRestore(tmp_path / "b")
    backup.set_model(model)
    backup.on_epoch_end(0)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "latest.weights.h5", "training_metadata.json"]
    assert cb.backup_epoch(tmp_path / "b") == 1
    fresh = _small_model()
    backup.set_model(fresh)
    backup.on_train_begin()  # restores weights, optimizer state and the epoch
    assert fresh._initial_epoch == 1 and int(fresh.optimizer.iterations) == 1
    np.testing.assert_array_equal(fresh.layers[0].kernel.numpy(), model.layers[0].kernel.numpy())


def test_weights_h5_bytes_equal_the_save_weights_file(tmp_path):
    import io

    import h5py

    model = _small_model()
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    model.save_weights(tmp_path / "k.weights.h5")

    def datasets(f):
        found = {}
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
        return found

    with h5py.File(tmp_path / "k.weights.h5", "r") as a, \
            h5py.File(io.BytesIO(cb.weights_h5_bytes(model)), "r") as b:
        want, got = datasets(a), datasets(b)
    assert sorted(got) == sorted(want) and any("optimizer" in k for k in got)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_nan_guard_message():
    guard = cb.NaNGuard()
    guard.on_epoch_begin(1)
    guard.on_train_batch_end(0, {"loss": 0.5})
    with pytest.raises(cb.NaNLossError) as err:
        guard.on_train_batch_end(2, {"loss": float("nan")})
    assert str(err.value).startswith("the loss became NaN at epoch 2 step 3; lower the learning")
    with pytest.raises(cb.NaNLossError, match="became infinite at epoch 2 step 1"):
        guard.on_train_batch_end(0, {"loss": math.inf})


def test_strategy_and_precision_on_cpu():
    from celebseg_utils.engine import strategy as st

    assert st.describe_strategy(st.make_strategy("auto")) == {
        "strategy": "_DefaultDistributionStrategy", "replicas": 1}
    default = st.make_strategy("default")
    assert st.resolve_precision("auto", default) == "float32"
    assert st.resolve_precision(False, default) == "float32"
    assert st.resolve_precision(True, default) == "mixed_bfloat16"  # float16 is slow on CPUs
    assert not st.tpu_available()
    with pytest.raises(CelebsegError, match="unknown strategy"):
        st.make_strategy("horovod")


@pytest.mark.parametrize("jobs, task, tag", [
    ({"worker": ["a:1", "b:1"]}, ("worker", 0), None),
    ({"worker": ["a:1", "b:1"]}, ("worker", 1), "worker-1"),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("chief", 0), None),
    ({"chief": ["c:1"], "worker": ["a:1"]}, ("worker", 0), "worker-0"),
])
def test_worker_tag_only_the_chief_writes_the_run(jobs, task, tag):
    import types

    import tensorflow as tf

    from celebseg_utils.engine.strategy import worker_tag

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(jobs), task_type=task[0], task_id=task[1])
    assert worker_tag(types.SimpleNamespace(cluster_resolver=resolver)) == tag


# --------------------------------------------------------------------------- train

def test_train_errors_before_any_work(tmp_path):
    from celebseg_utils.engine.train import train

    cfg = C.resolve_config(preset="cpu-demo", overrides=[f"data.prepared={tmp_path}/nothing"],
                           run_dir=str(tmp_path / "run"))
    with pytest.raises(CelebsegError, match="not a prepared folder .*celebseg prepare"):
        train(cfg, progress=False)
    with pytest.raises(CelebsegError, match="placeholder"):
        train(C.resolve_config(preset="tpu"), progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_tiny_run_end_to_end(tmp_path, tiny_prepared):
    from celebseg_utils.engine.train import load_trained_model, tensorboard_available, train

    run = tmp_path / "run"
    cfg = C.resolve_config(preset="cpu-demo", overrides=tiny_overrides(tiny_prepared),
                           run_dir=str(run))
    result = train(cfg, progress=False)

    expected = {"best.keras", "config.yaml", "final.keras", "history.csv", "history.json",
                "summary.json"} | ({"logs"} if tensorboard_available() else set())
    assert {p.name for p in run.iterdir()} == expected
    saved = C.load_config(run / "config.yaml")
    assert C.config_diff(saved, cfg) == [] and saved.data.prepared == str(tiny_prepared)
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == [0, 1] and result["history"] == history
    assert {"loss", "miou", "pixel_accuracy", "val_loss", "val_miou"} <= set(history)
    assert all(math.isfinite(v) for v in history["loss"] + history["val_miou"])
    best = max(history["val_miou"])
    assert result["best_metric"] == best and history["val_miou"][result["best_epoch"]] == best
    assert (result["epochs_completed"], result["resumed_from_epoch"]) == (2, 0)
    assert (result["replicas"], result["dtype_policy"], result["jit_compile"]) == (1, "float32", False)
    assert result["steps_per_epoch"] == 2
    assert json.loads((run / "summary.json").read_text())["best_metric"] == best

    # the saved models reload (custom loss, metric and schedule registered) and agree
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    final = load_trained_model(run / "final.keras")
    np.testing.assert_allclose(final.predict(x, verbose=0), result["model"].predict(x, verbose=0),
                               atol=1e-5)
    compiled = keras.saving.load_model(run / "best.keras")
    assert isinstance(compiled.optimizer._learning_rate, WarmupDecay)
    assert type(compiled.loss).__name__ == "CEDiceLoss"  # the cpu-demo preset's loss
    assert int(keras.saving.load_model(run / "final.keras").optimizer.iterations) == 4

    # the same command again: the finished run is returned, nothing retrains
    before = (run / "history.csv").read_text()
    again = train(cfg, progress=False)
    assert again["seconds"] == result["seconds"] and (run / "history.csv").read_text() == before
    # another config in the same run dir is refused, naming the difference
    changed = C.apply_overrides(cfg, ["optimizer.learning_rate=0.01"])
    with pytest.raises(CelebsegError, match=r"another config \(optimizer.learning_rate: 0.004 -> 0.01\)"):
        train(changed, progress=False)


@pytest.mark.slow
@pytest.mark.reliability(
    "runs", "`celebseg train` with learning rate 1e30 (NaN loss from the first steps)",
    "one-line error naming epoch, step and the fix, exit 2; no final model, no broken epoch "
    "in the history")
def test_nan_loss_stops_with_message(tmp_path, tiny_prepared, capsys):
    from celebseg_utils.cli import main

    run = tmp_path / "nan"
    args = ["train", "--preset", "cpu-demo", "--run-dir", str(run), "--quiet"]
    for item in tiny_overrides(tiny_prepared, **{"optimizer.learning_rate": 1e30,
                                                 "optimizer.warmup_epochs": 0, "epochs": 3}):
        args += ["--set", item]
    assert main(args) == 2
    captured = capsys.readouterr().err
    assert "Traceback" not in captured
    err = captured.strip().splitlines()[-1]
    assert err.startswith("error: the loss became NaN at epoch ") or \
        err.startswith("error: the loss became infinite at epoch "), err
    assert "lower the learning rate" in err
    assert not (run / "final.keras").exists() and not (run / "summary.json").exists()
    rows = cb.read_history_csv(run / "history.csv")
    assert all(math.isfinite(r["loss"]) for r in rows)  # the broken epoch is not recorded
    assert len(rows) == cb.backup_epoch(run / "backup")


def test_cli_print_config_and_usage_errors(capsys):
    from celebseg_utils.cli import main

    assert main(["train", "--preset", "cpu-demo", "--set", "loss.name=dice", "--set",
                 "optimizer.learning_rate=1e-3", "--run-dir", "/tmp/x", "--print-config"]) == 0
    printed = C.config_from_yaml(capsys.readouterr().out)
    assert printed == C.resolve_config(preset="cpu-demo", run_dir="/tmp/x", overrides=[
        "loss.name=dice", "optimizer.learning_rate=0.001"])
    assert main(["train", "--preset", "cpu-demo", "--set", "optimizer.lr=1",
                 "--print-config"]) == 2
    assert "error: unknown key 'optimizer.lr' in --set" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--set", "epochs=1"])
    assert exit_.value.code == 2 and "--config" in capsys.readouterr().err


@pytest.mark.slow
def test_weighted_loss_and_sample_weights_come_from_stats(tmp_path, tiny_prepared):
    from celebseg_utils.engine.train import train

    cfg = C.resolve_config(preset="cpu-demo", run_dir=str(tmp_path / "w"), overrides=tiny_overrides(
        tiny_prepared, **{"loss.name": "weighted_ce", "data.sample_weights": "per_image",
                          "epochs": 1, "tensorboard": False}))
    result = train(cfg, progress=False)
    stats = json.loads((tiny_prepared / "stats.json").read_text())
    # loss.class_weights "auto" means median_freq for weighted_ce
    assert result["model"].loss.class_weights == pytest.approx(stats["class_weights"]["median_freq"])
    assert math.isfinite(result["history"]["loss"][0]) and result["epochs_completed"] == 1


@pytest.mark.slow
def test_a_time_budget_plans_the_run_and_the_schedule_spans_the_plan(tmp_path, tiny_prepared,
                                                                     monkeypatch, capsys):
    """Probe figures fixed (20 s a step, fast validation), the rest real: the run trains the
    planned epochs x steps, the probe leaves no trace in the optimizer, the schedule ends with
    the plan, and the test split is evaluated inside the run."""
    from celebseg_utils.engine import train as T

    monkeypatch.setattr(T, "probe_train_step", lambda model, ds: (20.0, 0.0))
    monkeypatch.setattr(T, "probe_eval_step", lambda model, ds, steps: (0.1, 0.0))
    monkeypatch.setattr(T, "_save_seconds", lambda model: 0.0)
    run = tmp_path / "run"
    cfg = C.resolve_config(preset="cpu-demo", run_dir=str(run), overrides=tiny_overrides(
        tiny_prepared, epochs=4, steps_per_epoch=12, time_budget_minutes=10,
        **{"data.test_split": "test", "tensorboard": False}))
    result = T.train(cfg, progress=False)
    plan = json.loads((run / "plan.json").read_text())
    epochs, steps = plan["epochs"], plan["steps_per_epoch"]
    # 10 min x 0.96 less the start-up and the test pass, at 20 s a step; validation
    # (1 step of 0.1 s) is far below its share, so all 4 epochs
    costs = plan["costs"]
    assert costs["step_s"] == 20.0 and costs["epoch_overhead_s"] == 0.0
    available = 0.96 * 600 - plan["spent_s"] - costs["end_s"]
    assert epochs == 4 and steps == int((available - 4 * 0.1) // (4 * 20.0)) and not plan["full"]
    assert 1 <= steps < 12
    assert (result["epochs"], result["steps_per_epoch"], result["epochs_completed"]) == (
        epochs, steps, epochs)
    assert result["plan"]["expected_s"] <= 0.96 * 600
    out = capsys.readouterr().out
    assert f"time budget 10 min 00 s: planned {epochs} epochs x {steps} steps" in out
    final = keras.saving.load_model(run / "final.keras")
    assert int(final.optimizer.iterations) == epochs * steps
    schedule = final.optimizer._learning_rate
    assert (schedule.total_steps, schedule.warmup_steps) == (
        epochs * steps, round(cfg.optimizer.warmup_epochs * steps))
    tested = json.loads((run / "test" / "results.json").read_text())
    assert tested["split"] == "test"
    assert tested["num_images"] == len((tiny_prepared / "splits" / "test.txt").read_text().split())
    assert result["test"]["miou"] == tested["miou"] and 0 <= tested["miou"] <= 1


@pytest.mark.slow
def test_a_real_probe_leaves_weights_and_optimizer_as_they_were(tiny_prepared):
    from celebseg_utils.engine import train as T

    cfg = C.resolve_config(preset="cpu-demo", overrides=tiny_overrides(tiny_prepared))
    model, _ = T._compile_model(cfg, None, total_steps=10, warmup_steps=1)
    before = [v.numpy().copy() for v in model.variables]
    step_s, compile_s = T.probe_train_step(model, T._train_dataset(cfg, str(tiny_prepared)),
                                           max_steps=5, skip=2, min_steps=2, min_s=0.0)
    assert step_s > 0 and compile_s >= 0
    assert int(model.optimizer.iterations) == 0
    for a, v in zip(before, model.variables):
        np.testing.assert_array_equal(a, v.numpy())


def test_a_resumed_run_fits_in_parts_that_continue_the_seeded_stream():
    from celebseg_utils.engine import train as T

    parts = [tuple(p) for p in T._fit_parts(0, 0, 3, 10)]
    assert parts == [(0, 3, 10, 0)]  # a fresh run: one fit
    # mid-epoch (epoch 1, step 4 of 10): the rest of epoch 1, then epoch 2 from batch 20
    assert [tuple(p) for p in T._fit_parts(1, 4, 3, 10)] == [(1, 2, 6, 14), (2, 3, 10, 20)]
    assert [tuple(p) for p in T._fit_parts(2, 4, 3, 10)] == [(2, 3, 6, 24)]  # the last epoch
    assert [tuple(p) for p in T._fit_parts(1, 0, 3, 10)] == [(1, 3, 10, 10)]  # at an epoch end
    # every epoch trained (killed before the summary): one fit of no epochs finishes the run
    assert [tuple(p) for p in T._fit_parts(3, 0, 3, 10)] == [(3, 3, 10, 30)]

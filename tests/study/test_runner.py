"""The loss study: arms, the one-hot cross-check, per-image weights, statistics, resuming."""

from __future__ import annotations

import doctest
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_train import make_tiny_prepared

from celebseg_utils.study import report as study_report, runner as study
from celebseg_utils.errors import CelebsegError
from celebseg_utils.models.losses import SparseCE, get_loss
from celebseg_utils.data.weight_maps import per_image_pixel_weights, per_image_pixel_weights_tf

REPO = Path(__file__).resolve().parents[2]


def test_module_examples_run():
    assert doctest.testmod(study).failed == 0
    assert doctest.testmod(study_report).failed == 0


def test_every_arm_resolves_to_a_valid_config(tmp_path):
    (tmp_path / "prep").mkdir()
    for arm in study.ARMS:
        cfg = study.study_config(tmp_path / "prep", tmp_path / "out", arm, seed=2)
        assert cfg.seed == 2 and cfg.run_dir.endswith(f"{arm}/seed2")
        assert cfg.image_size == 128 and cfg.model.aspp_rates == [1, 2, 3]  # cpu-real
    assert study.study_config(tmp_path, tmp_path, "ce_onehot", 0).data.encoding == "onehot"
    assert study.study_config(tmp_path, tmp_path, "pixel_weighted_ce", 0).data.sample_weights == "per_image"
    assert study.study_config(tmp_path, tmp_path, "weighted_ce", 0).loss.class_weights == "median_freq"
    with pytest.raises(CelebsegError, match="unknown arm 'cross_entropy'"):
        study.parse_arms("sparse_ce,cross_entropy")


def test_the_study_budget_is_shared_over_the_runs_left(tmp_path):
    from celebseg_utils.engine.config import config_diff

    assert study.share_budget(180, elapsed_s=0, runs_left=4) == 45.0
    # the first run took 60 minutes: the 120 left go to the 3 runs left
    assert study.share_budget(180, elapsed_s=3600, runs_left=3) == 40.0
    assert study.share_budget(180, elapsed_s=200 * 60, runs_left=2) == 0.0  # overspent
    first = study.study_config(tmp_path, tmp_path, "dice", 0, overrides=["time_budget_minutes=45"])
    again = study.study_config(tmp_path, tmp_path, "dice", 0, overrides=["time_budget_minutes=40"])
    assert first.time_budget_minutes == 45.0
    assert config_diff(first, again) == []  # a resumed run gets a new share, keeps its plan


def test_ce_onehot_equals_sparse_ce_on_the_same_batch():
    """Keras's CategoricalCrossentropy on one-hot labels == our SparseCE on integer labels,
    in value and in gradient, with and without per-pixel weights."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 19, (2, 16, 16, 1)).astype("int32")
    onehot = np.eye(19, dtype="float32")[labels[..., 0]]
    logits = tf.constant(rng.normal(size=(2, 16, 16, 19)) * 3, tf.float32)
    weights = per_image_pixel_weights_tf(labels)
    for w in (None, weights):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(logits)
            a = get_loss("categorical_ce")(onehot, logits, sample_weight=w)
            b = get_loss("sparse_ce")(labels, logits, sample_weight=w)
        assert abs(float(a) - float(b)) < 1e-5 * float(b)
        np.testing.assert_allclose(tape.gradient(a, logits), tape.gradient(b, logits), atol=1e-7)


def test_per_image_weights_match_the_hand_computed_values():
    # 2x3 image: class 0 x3, class 13 x2, class 15 x1; N=6 pixels, K=3 classes present.
    label = np.array([[0, 0, 13], [0, 13, 15]])
    # weight of class c = N / (K * n_c): 6/9, 6/6, 6/3
    want = np.array([[2 / 3, 2 / 3, 1.0], [2 / 3, 1.0, 2.0]], np.float32)
    np.testing.assert_allclose(per_image_pixel_weights(label), want, rtol=1e-6)
    np.testing.assert_allclose(per_image_pixel_weights_tf(label[None, ..., None])[0], want, rtol=1e-6)
    assert per_image_pixel_weights(label).mean() == pytest.approx(1.0)
    # each class present carries the same total weight, N / K = 2
    for c in (0, 13, 15):
        assert per_image_pixel_weights(label)[label == c].sum() == pytest.approx(2.0)
    # a weighted batch loss is sum(w * ce) / pixels (Keras's sum_over_batch_size)
    logits = np.zeros((1, 2, 3, 19), np.float32)
    got = float(SparseCE()(label[None, ..., None], logits, sample_weight=want[None]))
    assert got == pytest.approx(np.log(19) * want.sum() / 6, rel=1e-6)


def test_paired_comparison_on_known_counts():
    """Arm better than the baseline on every seed and face: the difference holds."""
    rng = np.random.default_rng(0)
    n, c = 40, 19

    def run(tp_boost, seed):
        r = np.random.default_rng(seed)
        tp = r.integers(50, 100, (n, c))
        return {"counts": {"ids": np.arange(n), "tp": tp + tp_boost, "fp": r.integers(0, 30, (n, c)),
                           "fn": r.integers(0, 30, (n, c))}}

    base = {s: run(0, s) for s in range(3)}
    better = {s: run(40, s) for s in range(3)}
    same = {s: run(0, s) for s in range(3)}
    up = study_report.paired_comparison(base, better, rng)
    assert up["mean_f1"]["holds"] and up["mean_f1"]["sign_over_seeds"] == 1.0
    assert all(d > 0 for d in up["mean_f1"]["diff_per_seed"]) and up["mean_f1"]["ci95"][0] > 0
    flat = study_report.paired_comparison(base, same, rng)
    assert not flat["mean_f1"]["holds"] and flat["mean_f1"]["diff_mean"] == 0.0
    assert study_report.f1_from_counts([0, 3], [0, 1], [0, 1]).tolist()[1] == 0.75


@pytest.mark.slow
def test_study_resumes_after_a_kill_without_retraining_finished_runs(tmp_path, tiny_prepared):
    from harness import run_cli

    out = tmp_path / "study"
    argv = ["study", "--prepared", str(tiny_prepared), "--out", str(out),
            "--arms", "sparse_ce,dice", "--seeds", "1"]
    for item in ["image_size=64", "batch_size=2", "steps_per_epoch=2", "validation_steps=1",
                 "epochs=1", "data.augment=false"]:
        argv += ["--set", item]
    cmd = [sys.executable, "-m", "celebseg_utils", *argv]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    first_done = out / "runs" / "sparse_ce" / "seed0" / "test.json"
    # the kill needs a process; the re-runs are the same command in this one
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 600
    while not first_done.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # mid-study: the first run is finished, the rest are not
    proc.wait()
    assert first_done.exists(), proc.stdout.read()
    stamp = first_done.stat().st_mtime_ns, (first_done.parent / "best.keras").stat().st_mtime_ns
    assert not (out / "runs" / "dice" / "seed0" / "test.json").exists()

    again = run_cli(argv)
    assert again.code == 0, again.out + again.err
    assert "2 runs, 1 finished before, 1 to run" in again.out
    assert stamp == (first_done.stat().st_mtime_ns, (first_done.parent / "best.keras").stat().st_mtime_ns)
    report = json.loads((out / "study.json").read_text())
    assert report["arms"] == ["sparse_ce", "dice"] and report["seeds_complete"] == 1
    assert set(report["versus_baseline"]) == {"dice"}
    for name in ("per_class_f1.png", "rare_precision_recall.png", "test_faces.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    assert "| sparse_ce | 1 |" in (out / "study.md").read_text()
    # a third run finds everything finished and only rewrites the report
    third = run_cli(argv)
    assert "2 runs, 2 finished before, 0 to run" in third.out


def test_a_study_folder_refuses_other_settings(tmp_path):
    prepared = make_tiny_prepared(tmp_path, count=8, image_size=32)
    out = tmp_path / "study"
    out.mkdir()
    (out / "study_args.json").write_text(json.dumps({
        "prepared": str(prepared.resolve()), "preset": "cpu-real", "overrides": ["epochs=2"],
        "arms": ["sparse_ce"], "seeds": 1}))
    with pytest.raises(CelebsegError, match=r"other settings \(overrides: \['epochs=2'\] -> \['epochs=1'\]\)"):
        study.run_loss_study(prepared, out, arms="sparse_ce", seeds=1, overrides=["epochs=1"])


@pytest.mark.slow
def test_a_study_with_a_step_budget_keeps_its_learning_curve_apart_from_the_models(tmp_path):
    prepared = make_tiny_prepared(tmp_path, count=24, image_size=64)
    out, results = tmp_path / "work", tmp_path / "results"
    small = ["image_size=64", "batch_size=2", "validation_steps=1", "data.augment=false"]
    report = study.run_loss_study(prepared, out, arms="sparse_ce,dice", seeds=1,
                                  overrides=small, steps=4, curve_every=2, results=results,
                                  progress=False)
    assert report["budgets"] == [2, 4] and report["steps"] == 4 and report["image_size"] == 64
    assert report["runs"]["dice"]["0"]["steps"] == 4
    for budget in ("2", "4"):
        for protocol in ("model_size", "label_size"):
            entry = report["curves"][budget][protocol]
            assert set(entry["summary"]) == {"sparse_ce", "dice"}
            assert "mean_f1" in entry["versus_baseline"]["dice"]
    run = results / "arms" / "dice" / "seed0"
    point = json.loads((run / "curve" / "step4.json").read_text())
    final = json.loads((run / "test.json").read_text())
    # the curve's last point is the final model: the same counts
    assert point["protocols"]["model_size"]["confusion_matrix"] == final["confusion_matrix"]
    assert json.loads((run / "test_label_size.json").read_text())["image_size"] == 64
    assert not list(results.rglob("*.keras")) and list(out.rglob("final.keras"))
    assert (results / "figures" / "learning_curves.png").stat().st_size > 10_000
    md = (results / "study.md").read_text()
    assert "4 steps, 64 px, 1 complete seed)" in md and "Learning curve" in md
    # the same settings in another order are the same study: nothing to run again
    again = study.run_loss_study(prepared, out, arms="sparse_ce,dice", seeds=1,
                                 overrides=list(reversed(small)), steps=4, curve_every=2,
                                 results=results, progress=False)
    assert again["runs"] == report["runs"]
    with pytest.raises(CelebsegError, match=r"other settings \(batch_size: 2 -> 4\)"):
        study.run_loss_study(prepared, out, arms="sparse_ce", seeds=1,
                             overrides=[*small, "batch_size=4"], steps=4, curve_every=2,
                             results=results, progress=False)


def test_budget_overrides_put_the_curve_on_epoch_ends():
    from celebseg_utils.engine.callbacks import CurvePoints

    lines = study.budget_overrides(4000)
    assert lines == ["steps_per_epoch=250", "epochs=16",
                     "curve_steps=[250, 500, 1000, 2000, 4000]"]
    assert CurvePoints.reachable([250, 500, 1000, 2000, 4000], 250, 16)[1] == []
    with pytest.raises(CelebsegError, match="--steps must be positive"):
        study.budget_overrides(0)

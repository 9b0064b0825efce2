"""Runs compared in notebook 07 differ only in the loss: one plan shared, every difference named."""

from __future__ import annotations

import json

from celebseg_utils.engine import config, control


def _run(root, name, overrides, plan=(3, 5), finished=True):
    run = root / name
    cfg = config.resolve_config(preset="cpu-demo", run_dir=str(run), overrides=list(overrides))
    config.save_config(cfg, run / "config.yaml")
    epochs, steps = plan
    (run / ("summary.json" if finished else "plan.json")).write_text(
        json.dumps({"epochs": epochs, "steps_per_epoch": steps}))
    return run


def test_a_run_reuses_the_plan_and_seed_of_notebook_04s_run(tmp_path, capsys):
    base = _run(tmp_path, "sparse_ce", ["loss.name=sparse_ce", "seed=7"], plan=(4, 25),
                finished=False)
    lines = control.shared_plan_overrides(base)
    assert lines == ["epochs=4", "steps_per_epoch=25", "time_budget_minutes=none", "seed=7"]
    assert "4 epochs x 25 steps = 100 steps, seed 7 (from its plan.json)" in capsys.readouterr().out
    cfg = config.resolve_config(preset="colab-t4-quick", overrides=["loss.name=dice", *lines])
    assert (cfg.epochs, cfg.steps_per_epoch, cfg.time_budget_minutes, cfg.seed) == (4, 25, None, 7)
    # the finished run's summary wins over its plan
    (base / "summary.json").write_text(json.dumps({"epochs": 3, "steps_per_epoch": 25}))
    assert control.shared_plan_overrides(base, quiet=True)[:2] == ["epochs=3", "steps_per_epoch=25"]


def test_without_notebook_04s_run_the_run_plans_its_own_and_says_so(tmp_path, capsys):
    assert control.shared_plan_overrides(tmp_path / "sparse_ce") == []
    assert "notebook 07 will report the runs as not controlled" in capsys.readouterr().out


def test_runs_that_differ_only_in_the_loss_are_controlled(tmp_path):
    runs = [_run(tmp_path, "sparse_ce", ["loss.name=sparse_ce"]),
            _run(tmp_path, "pixel_weighted_ce", ["loss.name=sparse_ce", "data.sample_weights=per_image"]),
            _run(tmp_path, "ce_onehot", ["loss.name=categorical_ce", "data.encoding=onehot"]),
            _run(tmp_path, "dice", ["loss.name=dice", "time_budget_minutes=40"])]
    check = control.compare_settings(runs)
    assert check["controlled"] and check["differences"] == []
    assert check["steps"] == {r.name: 15 for r in runs}
    assert control.control_markdown(check).startswith("**Controlled**: the 4 runs differ only in the loss")


def test_every_other_difference_is_named(tmp_path):
    runs = [_run(tmp_path, "sparse_ce", ["loss.name=sparse_ce"]),
            _run(tmp_path, "dice", ["loss.name=dice", "seed=1", "image_size=96"], plan=(2, 5))]
    check = control.compare_settings(runs)
    assert not check["controlled"]
    assert check["differences"] == ["image_size: 128 (sparse_ce), 96 (dice)",
                                     "planned steps: 3 x 5 (sparse_ce), 2 x 5 (dice)",
                                     "seed: 0 (sparse_ce), 1 (dice)"]
    text = control.control_markdown(check)
    assert text.startswith("**Not controlled**") and "- seed: 0 (sparse_ce), 1 (dice)" in text


def test_figure_titles_say_what_trained_the_runs(tmp_path):
    runs = [_run(tmp_path, "sparse_ce", ["loss.name=sparse_ce"]),
            _run(tmp_path, "dice", ["loss.name=dice"], plan=(2, 5))]
    check = control.compare_settings(runs)
    assert control.budget_text(check, "synthetic faces") == (
        "synthetic faces, planned steps differ (sparse_ce 15, dice 10), one seed each")
    same = control.compare_settings(runs[:1])
    assert control.budget_text(same) == "real faces, 15 planned steps and seed 0 for every loss, one seed each"


def test_the_modules_examples_run():
    import doctest

    from celebseg_utils.engine import holds

    for module in (control, holds):
        assert doctest.testmod(module).failed == 0

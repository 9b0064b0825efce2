"""The plateau budget of the study, from a ladder of baseline runs."""

from __future__ import annotations

import doctest
import json

from celebseg_utils.study import plateau


def test_the_plateau_is_the_first_doubling_that_gains_less_than_the_threshold():
    assert plateau.plateau_budget({500: 0.30, 1000: 0.45, 2000: 0.52, 4000: 0.525}) == 2000
    # a drop counts as no gain
    assert plateau.plateau_budget({1000: 0.6, 2000: 0.58}) == 1000
    assert plateau.plateau_budget({1000: 0.6, 2000: 0.65, 4000: 0.7}) is None
    assert plateau.next_rung({}, first=1000) == 1000
    assert plateau.next_rung({1000: 0.6, 2000: 0.65}, first=1000) == 4000
    assert plateau.next_rung({1000: 0.6, 2000: 0.605}, first=1000) is None


def test_the_ladder_report_reads_the_rungs(tmp_path):
    for b, f1 in ((1000, 0.50), (2000, 0.505)):
        run = tmp_path / f"steps{b}" / "arms" / "sparse_ce" / "seed0"
        (run / "curve").mkdir(parents=True)
        (run / "test.json").write_text(json.dumps({"mean_f1": f1, "train_seconds": b / 4}))
        (run / "test_label_size.json").write_text(json.dumps({"mean_f1": f1 + 0.01}))
        (run / "curve" / "step1000.json").write_text(json.dumps(
            {"steps": 1000, "protocols": {"model_size": {"mean_f1": 0.4}}}))
    report = plateau.ladder_report(tmp_path)
    assert report["plateau_steps"] == 1000
    assert report["rungs"]["2000"]["label_size"] == 0.515
    assert report["rungs"]["2000"]["curve"] == {1000: {"model_size": 0.4}}


def test_module_examples_run():
    assert doctest.testmod(plateau).failed == 0

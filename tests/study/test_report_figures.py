"""The study's figures: every arm in the legend, missing values drawn and named, titles with
the faces and the budget (issue #21: the precision-recall legend named one arm of six)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from celebseg_utils.study import report as R  # noqa: E402

BUDGET250 = Path(__file__).resolve().parents[2] / "figures" / "study" / "budget250" / "study.json"


def _report():
    return json.loads(BUDGET250.read_text())


def test_precision_recall_legend_names_every_arm_and_marks_arms_without_precision():
    report = _report()
    fig = R.plot_rare_precision_recall(report)
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == report["arms"] + ["hollow: never predicted (no precision)"]
    # necklace: five arms never predicted it (no precision), one did (precision 0.00):
    # all six are drawn, none vanishes
    necklace = fig.axes[3]
    hollow = [line for line in necklace.lines if line.get_markerfacecolor() == "none"]
    assert len(hollow) == 5
    assert all(line.get_ydata()[0] < 0 for line in hollow)  # on the "no precision" line
    assert "real faces, 250 steps, 128 px, 3 complete seeds; test split" in fig._suptitle.get_text()
    plt.close(fig)


def test_per_class_f1_marks_a_class_without_f1_and_states_the_budget():
    report = _report()
    report["summary"]["jaccard"]["per_class"]["hat"]["f1"] = {"mean": None, "std": None, "n": 0}
    fig = R.plot_per_class_f1(report)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == report["arms"] + ["x: no F1 (class neither in truth nor predicted)"]
    crosses = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == 1 and len(crosses[0].get_xdata()) == 1
    assert ax.get_title().endswith("real faces, 250 steps, 128 px, 3 complete seeds; test split")
    plt.close(fig)


def test_titles_say_synthetic_faces_for_a_smoke_workspace(tmp_path):
    (tmp_path / "smoke.json").write_text("{}")
    report = {**_report(), "settings": {"prepared": str(tmp_path / "prepared")}}
    assert R.faces_kind(report) == "synthetic faces"
    assert R.figure_title(report, "x") == "x\nsynthetic faces, 250 steps, 128 px, 3 complete seeds; test split"


def test_study_tables_state_the_budget_in_every_heading():
    md = R.study_markdown(_report())
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert len(headings) == 4  # title, precision/recall, against the baseline, every class
    assert all("250 steps, 128 px, 3 complete seeds" in h for h in headings), headings
    once = R.study_markdown(_report(), budget_in_headings=False)
    assert sum("250 steps" in line for line in once.splitlines() if line.startswith("#")) == 1


@pytest.mark.slow  # draws and writes two full-size figures: about 2 s here
def test_redraw_writes_the_figures_study_json_alone_can_give(tmp_path):
    (tmp_path / "study.json").write_text(BUDGET250.read_text())
    written = R.redraw_study_figures(tmp_path)
    assert [p.name for p in written] == ["per_class_f1.png", "rare_precision_recall.png"]
    assert all(p.stat().st_size > 10_000 for p in written)

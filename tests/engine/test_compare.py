"""results and compare: results files read back (damaged ones too), the side-by-side
tables of several runs, and how many classes each mean averaged. No model: numbers only."""

import json

import pytest

from celebseg_utils import labels as L
from celebseg_utils.engine.compare import comparison_table, run_name
from celebseg_utils.engine.results import averaged_label, read_results
from celebseg_utils.errors import CelebsegError


def test_read_results_and_run_name_survive_damaged_files(tmp_path):
    good = {"miou": 0.5, "mean_f1": 0.6, "pixel_accuracy": 0.9, "per_class": {"skin": {}}}
    (tmp_path / "ok.json").write_text(json.dumps(good))
    assert read_results(tmp_path / "ok.json") == good
    (tmp_path / "cut.json").write_text(json.dumps(good)[:20])
    with pytest.raises(CelebsegError, match="cut.json is not valid JSON"):
        read_results(tmp_path / "cut.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(CelebsegError, match="missing miou, mean_f1, pixel_accuracy, per_class"):
        read_results(tmp_path / "list.json")
    run = tmp_path / "my_run"
    run.mkdir()
    (run / "config.yaml").write_text("loss: {name: [unclosed\n")
    assert run_name(run) == "my_run"
    (run / "config.yaml").write_text("loss:\n  name: dice\n")
    assert run_name(run) == "dice"


def _run(iou, f1=None, precision=0.5, recall=0.5, miou=0.5, mean_f1=0.6, accuracy=0.9):
    """A results dict with every class scored alike."""
    f1 = 2 * iou / (1 + iou) if f1 is None else f1
    return {"miou": miou, "mean_f1": mean_f1, "pixel_accuracy": accuracy,
            "per_class": {n: {"iou": iou, "f1": f1, "precision": precision, "recall": recall,
                              "support": 10} for n in L.CLASS_NAMES}}


def _row(table, label):
    (line,) = [row for row in table.splitlines() if row.startswith(f"| {label} |")]
    return line


def test_comparison_table_bolds_only_a_best_that_beats_another_run():
    runs = {"a": _run(0.0, 0.0), "b": _run(0.0, 0.0), "c": _run(0.0, 0.0), "d": _run(0.0, 0.0)}
    runs["a"]["per_class"]["skin"].update(iou=0.8, f1=0.9)  # unique best
    runs["b"]["per_class"]["skin"].update(iou=0.8, f1=0.7)  # IoU shared best, F1 second
    runs["c"]["per_class"]["hair"].update(iou=None, f1=None)  # no score: never bold, never beaten
    runs["d"]["pixel_accuracy"] = 0.8
    table = comparison_table(runs)
    assert _row(table, "nose") == "| nose | 0.000 / 0.000 | 0.000 / 0.000 | 0.000 / 0.000 | 0.000 / 0.000 |"
    assert _row(table, "skin") == ("| skin | **0.800** / **0.900** | **0.800** / 0.700 | 0.000 / 0.000 "
                                   "| 0.000 / 0.000 |")
    assert _row(table, "hair") == "| hair | 0.000 / 0.000 | 0.000 / 0.000 | – / – | 0.000 / 0.000 |"
    assert _row(table, "**mIoU**") == ("| **mIoU** | 0.500 (19 classes) | 0.500 (19 classes) "
                                       "| 0.500 (18 of 19 classes) | 0.500 (19 classes) |")  # tie: no bold
    assert _row(table, "**pixel accuracy**") == "| **pixel accuracy** | **0.900** | **0.900** | **0.900** | 0.800 |"
    assert "**" not in comparison_table({"only": _run(0.7)}).split("**mIoU")[0]  # one run: nothing to beat


def test_comparison_table_shows_display_names_and_rare_precision_recall():
    runs = {"ce": _run(0.5, precision=0.25, recall=0.75), "dice": _run(0.5, precision=0.4, recall=0.9)}
    runs["dice"]["per_class"]["neck_l"].update(precision=None, recall=0.0)
    table = comparison_table(runs)
    assert "| earring *(rare)* | 0.500 / 0.667 | 0.500 / 0.667 |" in table
    assert "| left eye | " in table and "| eyeglasses *(rare)* | " in table
    for code in ("ear_r", "neck_l", "eye_g", "l_eye", "r_brow", "u_lip"):
        assert code not in table
    main, rare = table.split("\n\n**Rare classes: precision / recall**\n\n")
    assert rare.splitlines()[:2] == ["| class | ce P / R | dice P / R |", "|---|---:|---:|"]
    assert rare.splitlines()[2:] == ["| eyeglasses | 0.250 / 0.750 | 0.400 / 0.900 |",
                                     "| hat | 0.250 / 0.750 | 0.400 / 0.900 |",
                                     "| earring | 0.250 / 0.750 | 0.400 / 0.900 |",
                                     "| necklace | 0.250 / 0.750 | – / 0.000 |"]
    assert main.splitlines()[0] == "| class | ce IoU / F1 | dice IoU / F1 |"


def test_comparison_table_says_how_many_classes_each_mean_averaged():
    full, partial = _run(0.5, miou=0.5, mean_f1=0.6), _run(0.5, miou=0.4, mean_f1=0.7)
    for name in ("hat", "ear_r"):  # absent from truth and prediction: no score, not averaged
        partial["per_class"][name].update(iou=None, f1=None, precision=None, recall=None)
    assert (averaged_label(full, "miou"), averaged_label(full, "mean_f1")) == (
        "mIoU (19 classes)", "mean F1 (18 facial classes)")
    assert (averaged_label(partial, "miou"), averaged_label(partial, "mean_f1")) == (
        "mIoU (17 of 19 classes)", "mean F1 (16 of 18 facial classes)")
    partial["per_class"]["background"]["iou"] = None  # mIoU only: background is not facial
    assert averaged_label(partial, "miou") == "mIoU (16 of 19 classes)"
    assert averaged_label(partial, "mean_f1") == "mean F1 (16 of 18 facial classes)"
    table = comparison_table({"full": full, "partial": partial})
    assert _row(table, "**mIoU**") == "| **mIoU** | **0.500** (19 classes) | 0.400 (16 of 19 classes) |"
    assert _row(table, "**mean F1**") == ("| **mean F1** | 0.600 (18 facial classes) "
                                          "| **0.700** (16 of 18 facial classes) |")
    same = comparison_table({"p": partial, "q": partial})
    assert _row(same, "**mIoU (16 of 19 classes)**") == "| **mIoU (16 of 19 classes)** | 0.400 | 0.400 |"

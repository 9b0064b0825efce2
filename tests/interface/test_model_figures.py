"""interface.model_figures and scripts/make_model_figures.py: the numbers behind the model
figures, their tables, the figures' panels, and the script's refusal of bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402,F401 - imported at collection: no test pays for it

from celebseg_utils import labels as L  # noqa: E402
from celebseg_utils.interface import model_figures as MF  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_conv_stack_fields_measure_the_analytic_sizes():
    fields = MF.conv_stack_fields(size=21)
    assert [(f["rates"], f["support"], f["analytic"], f["taps_read"]) for f in fields] == [
        ([1, 1, 1], 7, 7, 49), ([2, 2, 2], 13, 13, 49), ([1, 2, 3], 13, 13, 169)]
    assert MF.json_ready(fields)[0] == {"rates": [1, 1, 1], "support": 7, "analytic": 7,
                                        "taps_read": 49}


def test_receptive_field_figure_has_one_panel_per_stack_and_one_for_the_model(tmp_path):
    fields = MF.conv_stack_fields(size=21)
    gradient = np.zeros((32, 32))
    gradient[10:20, 12:22] = 1.0
    field = {"row": 15, "col": 17, "class": "l_brow", "support": 10, "side": 32, "r50": 2,
             "r90": 4, "gradient": gradient}
    fig = MF.plot_receptive_fields(fields, field, np.zeros((32, 32, 3), np.uint8),
                                   title="t", path=tmp_path / "rf.png")
    assert len(fig.axes) == 4 and (tmp_path / "rf.png").stat().st_size > 1000
    assert "receptive field 13 px (1 + 2·6 = 13)" in fig.axes[2].get_title()
    assert "90% within ±4" in fig.axes[3].get_title()


def test_aspp_table_and_markdown_at_the_three_sizes():
    rows = MF.aspp_table(rates=(1, 3, 6, 18))
    assert [(r["image_size"], r["map_side"]) for r in rows] == [(128, 4), (256, 8), (512, 16)]
    assert rows[0]["tap_share"][3] == pytest.approx(0.25)      # (1.5 / 3)^2 on a 4x4 map
    assert rows[2]["tap_share"][18] == pytest.approx(1 / 9)    # rate 18 on 16x16: centre only
    assert rows[2]["tap_share"][6] == pytest.approx((2.25 / 3) ** 2)  # per axis (6·2 + 4·3 + 6·2) / 16
    text = MF.aspp_markdown(rows)
    assert "| 128 px | 4x4 | 69% | 25% | 11% | 11% |" in text


def test_aspp_figure_marks_the_cells_each_branch_reads():
    fig = MF.plot_aspp_branches(np.zeros((128, 128, 3), np.uint8), rates=(1, 2, 3, 6))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["1x1 conv\nreads 1", "3x3, rate 1\nreads 9 of 9 taps",
                      "3x3, rate 2\nreads 4 of 9 taps", "3x3, rate 3\nreads 1 of 9 taps",
                      "3x3, rate 6\nreads 1 of 9 taps", "image pooling\nreads 16"]


def test_stride_oracle_loses_a_thin_part_at_a_coarse_stride():
    label = np.zeros((32, 32), np.uint8)
    label[8:10, 4:28] = L.class_id("l_brow")     # 2 px tall
    label[16:32, 8:24] = L.class_id("nose")      # large, on whole 8 px blocks
    oracle = MF.stride_oracle_f1([label], strides=(2, 4, 8), classes=("l_brow", "nose"))
    assert oracle[2]["l_brow"] == 1.0 and oracle[4]["l_brow"] == 0.0
    assert oracle[8]["nose"] == 1.0 and oracle[8]["mean_f1"] == 0.5


def test_skip_tables_from_evaluation_results():
    def results(f1s):
        return {"mean_f1": f1s["mean"], "per_class": {c: {"f1": v} for c, v in f1s.items()}}

    scores = {"keep": results({"l_brow": 0.7, "neck_l": None, "mean": 0.72}),
              "mean": results({"l_brow": 0.1, "neck_l": None, "mean": 0.3})}
    rows = MF.skip_f1_table(scores, classes=("l_brow", "neck_l"))
    assert rows == [{"class": "l_brow", "keep": 0.7, "mean": 0.1, "change_mean": -0.6},
                    {"class": "neck_l", "keep": None, "mean": None},
                    {"class": "mean_f1", "keep": 0.72, "mean": 0.3, "change_mean": -0.42}]
    text = MF.skip_markdown(rows)
    assert "| l_brow | 0.700 | 0.100 (-0.600) |" in text and "| neck_l | – | – |" in text


def test_thin_faces_prefer_brows_with_a_necklace_or_an_earring():
    plain = np.zeros((4, 4), np.uint8)
    brow = plain.copy(); brow[0, 0] = L.class_id("l_brow")
    earring = brow.copy(); earring[3, 3] = L.class_id("ear_r")
    necklace = brow.copy(); necklace[2, 2] = L.class_id("neck_l")
    labels = [plain, brow, earring, necklace]
    assert MF.pick_thin_faces(labels, count=3) == [3, 2, 1]
    assert MF.thin_face_ids([10, 11, 12, 13], labels, count=4) == [13, 12, 11, 10]


def _script():
    spec = importlib.util.spec_from_file_location("make_model_figures",
                                                  REPO_ROOT / "scripts" / "make_model_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_refuses_a_missing_model_or_folder_in_one_line(tmp_path, capsys):
    script = _script()
    assert script.main(["--model", str(tmp_path / "none.keras"), "--prepared", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'none.keras'}: no such model file"]
    model = tmp_path / "m.keras"
    model.write_bytes(b"x")
    assert script.main(["--model", str(model), "--prepared", str(tmp_path)]) == 2
    assert "no such prepared folder" in capsys.readouterr().err


def test_committed_numbers_match_their_figures_and_bench_files():
    numbers = json.loads((REPO_ROOT / "figures" / "model" / "model_figures.json").read_text())
    for name in ("receptive_field.png", "skip_connection.png", "aspp_branches.png", "output_stride.png"):
        assert (REPO_ROOT / "figures" / "model" / name).is_file(), name
    stacks = numbers["receptive_field"]["conv_stacks"]
    assert [(s["support"], s["analytic"]) for s in stacks] == [(7, 7), (13, 13), (13, 13)]
    # the "keep" arm is the model as trained: it reproduces the study ladder's committed
    # test mean F1 of that run (same split, same protocol)
    ladder = json.loads((REPO_ROOT / "figures" / "study" / "plateau" / "plateau.json").read_text())
    keep = {row["class"]: row["keep"] for row in numbers["skip"]["f1"]}
    steps = str(numbers["model"]["steps"])
    assert keep["mean_f1"] == round(ladder["rungs"][steps][ladder["protocol"]], 4)
    assert numbers["model"]["steps"] == 8000 and numbers["model"]["image_size"] == 128
    # the cost rows are the committed bench_models.py files, read back
    for row in numbers["cost"]:
        bench = json.loads((REPO_ROOT / row["file"]).read_text())
        same = [b for b in bench if b["backbone"] == row["backbone"]]
        assert same and same[0]["gflops"] == row["gflops"]
    assert sorted({r["image_size"] for r in numbers["cost"]}) == [128, 256, 512]


def test_docs_model_md_quotes_the_committed_numbers():
    numbers = json.loads((REPO_ROOT / "figures" / "model" / "model_figures.json").read_text())
    doc = (REPO_ROOT / "docs" / "model.md").read_text()
    for row in numbers["skip"]["f1"]:
        name = L.DISPLAY_NAMES.get(row["class"], "mean F1 (18 classes)")
        assert f"| {name} | {row['keep']:.3f} | {row['mean']:.3f}" in doc, name
    for stride, f1 in numbers["stride_oracle_f1"].items():
        cells = " | ".join(f"{f1[c]:.2f}" for c in (*MF.THIN_CLASSES, "mean_f1"))
        assert f"| {stride} | {cells} |" in doc, stride
    for row in numbers["cost"]:
        assert f"| {row['backbone']} | {row['image_size']} px | {row['params'] / 1e6:.2f} | " \
               f"{row['gflops']:.2f} |" in doc
    field = numbers["receptive_field"]["model"]
    assert f"within ±{field['r50']} px" in doc and f"90% within ±{field['r90']} px" in doc

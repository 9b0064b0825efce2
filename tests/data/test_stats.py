"""Class statistics and class weights against hand-computed numbers; ``celebseg stats``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import cli
from celebseg_utils.data import stats
from celebseg_utils.visualization.plots import plot_class_frequency
from celebseg_utils.errors import CelebsegError

# Image A: 10 background, 4 skin, 2 hair. Image B: 8 background, 8 skin.
LABEL_A = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 13, 13]], np.uint8)
LABEL_B = np.array([[0, 0, 1, 1]] * 4, np.uint8)


def write_prepared(root, labels: dict, splits: dict) -> "Path":
    """A prepared folder by hand: PREP/labels/<k>.png, splits, prepare.json."""
    prep = root / "prep"
    (prep / "labels").mkdir(parents=True)
    (prep / "splits").mkdir()
    for k, label in labels.items():
        Image.fromarray(label).save(prep / "labels" / f"{k}.png")
    for name in ("train", "val", "test"):
        (prep / "splits" / f"{name}.txt").write_text("".join(f"{k}\n" for k in splits.get(name, [])))
    info = {"data_root": str(root / "raw"), "label_size": 4, "num_images": len(labels),
            "splits": {s: len(splits.get(s, [])) for s in ("train", "val", "test")}, "problems": 0}
    (prep / "prepare.json").write_text(json.dumps(info))
    return prep


@pytest.fixture
def prepared(tmp_path):
    return write_prepared(tmp_path, {0: LABEL_A, 1: LABEL_B, 2: LABEL_B}, {"train": [0, 1], "val": [2]})


def test_counts_and_weights_are_the_hand_computed_numbers(prepared):
    s = stats.compute_stats(prepared, progress=False)
    assert s["num_images"] == 2 and s["num_pixels"] == 32
    assert s["pixel_counts"][:2] == [18, 12] and s["pixel_counts"][13] == 2
    assert sum(s["pixel_counts"]) == 32
    assert s["image_counts"][0] == 2 and s["image_counts"][1] == 2 and s["image_counts"][13] == 1
    assert s["present_pixel_counts"][13] == 16 and s["present_pixel_counts"][0] == 32
    assert s["frequency"][0] == pytest.approx(0.5625) and s["frequency"][13] == pytest.approx(0.0625)
    w = s["class_weights"]
    # inv_freq 32 / (3 n); median_freq: f = (18/32, 12/32, 2/16), median 0.375
    assert [w["inv_freq"][i] for i in (0, 1, 13)] == pytest.approx([0.59259, 0.88889, 5.33333], abs=1e-5)
    assert [w["median_freq"][i] for i in (0, 1, 13)] == pytest.approx([0.66667, 1.0, 3.0], abs=1e-5)
    # ENet: 1/ln(1.5825) = 1/0.45901, 1/ln(1.395) = 1/0.33289, 1/ln(1.0825) = 1/0.07927
    assert [w["enet"][i] for i in (0, 1, 13)] == pytest.approx([2.1786, 3.0040, 12.6146], abs=1e-3)


def test_absent_classes_get_weight_zero_never_inf_or_nan(prepared):
    s = stats.compute_stats(prepared, progress=False)
    absent = [i for i in range(19) if i not in (0, 1, 13)]
    assert s["absent_classes"] == [s["class_names"][i] for i in absent]
    for scheme, w in s["class_weights"].items():
        assert all(math.isfinite(x) for x in w), scheme
        assert [w[i] for i in absent] == [0.0] * 16, scheme


def test_the_inverse_frequency_weights_average_one_per_pixel(prepared):
    s = stats.compute_stats(prepared, progress=False)
    w, n = np.array(s["class_weights"]["inv_freq"]), np.array(s["pixel_counts"])
    assert (w * n).sum() / n.sum() == pytest.approx(1.0)


def test_stats_json_is_written_and_reused_until_the_split_changes(prepared):
    s = stats.compute_stats(prepared, progress=False)
    on_disk = json.loads((prepared / "stats.json").read_text())
    assert on_disk == s
    on_disk["num_pixels"] = -1  # a marker: load must return the file, not recompute
    (prepared / "stats.json").write_text(json.dumps(on_disk))
    assert stats.load_or_compute_stats(prepared)["num_pixels"] == -1
    (prepared / "splits" / "train.txt").write_text("0\n")
    again = stats.load_or_compute_stats(prepared, progress=False)
    assert again["num_pixels"] == 16 and again["num_images"] == 1


def test_other_splits_do_not_overwrite_the_train_stats(prepared):
    stats.compute_stats(prepared, progress=False)
    val = stats.compute_stats(prepared, split="val", progress=False)
    assert val["pixel_counts"][:2] == [8, 8]
    assert json.loads((prepared / "stats.json").read_text())["split"] == "train"
    assert (prepared / "stats-val.json").exists()


def test_a_label_with_an_unknown_id_names_the_file(prepared):
    Image.fromarray(np.full((4, 4), 25, np.uint8)).save(prepared / "labels" / "1.png")
    with pytest.raises(CelebsegError, match="1.png") as info:
        stats.compute_stats(prepared, progress=False)
    # prepare keeps the labels it finds: re-running it alone would not replace this one
    assert "delete it and re-run `celebseg prepare`" in str(info.value)
    (prepared / "labels" / "1.png").unlink()
    with pytest.raises(CelebsegError, match=r"missing label .*1\.png: re-run `celebseg prepare`"):
        stats.compute_stats(prepared, progress=False)


def test_figure_is_a_png_with_absent_classes_marked(prepared, tmp_path):
    s = stats.compute_stats(prepared, progress=False)
    fig = plot_class_frequency(s, tmp_path / "f" / "freq.png")
    assert (tmp_path / "f" / "freq.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert sum(t.get_text() == "absent" for t in ax.texts) == 16


def test_cli_writes_json_and_default_figure_and_prints_the_table(prepared, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["stats", "--prepared", str(prepared)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "figures" / "class_frequency.png").exists()
    assert (prepared / "stats.json").exists()
    hair = next(line for line in out.splitlines() if " hair " in line)
    assert hair.split()[2:] == ["6.2500", "1", "5.333", "3.000", "12.615"]


def test_cli_on_a_folder_that_is_not_prepared_exits_2(tmp_path, capsys):
    assert cli.main(["stats", "--prepared", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "celebseg prepare" in err

"""celebseg_utils.interface.notebook: install command, badges, readable tables and summaries."""

from __future__ import annotations

from celebseg_utils.interface import notebook


def test_install_command_keeps_the_runtime_tensorflow():
    cmd = notebook.install_command()
    assert cmd == 'pip install -q "celebseg[download] @ git+https://github.com/celebseg/celebseg"'
    assert "[tf" not in cmd and ",tf" not in cmd
    assert notebook.package_spec(("download", "export"), repository="me/fork") == \
        "celebseg[download,export] @ git+https://github.com/me/fork"
    assert notebook.package_spec(()) == "celebseg @ git+https://github.com/celebseg/celebseg"


def test_colab_url_and_badge_point_at_the_notebook_on_main():
    url = notebook.colab_url("notebooks/03_class_imbalance.ipynb")
    assert url == ("https://colab.research.google.com/github/celebseg/celebseg/blob/main/"
                   "notebooks/03_class_imbalance.ipynb")
    badge = notebook.colab_badge("03_class_imbalance.ipynb")
    assert badge == f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


# --------------------------------------------------------------------------- display helpers

def _toy_stats():
    """19 classes: background 50%, skin 30%, hair 19.9%, hat 0.1%, the rest absent."""
    from celebseg_utils import labels as L

    freq = [0.0] * 19
    freq[0], freq[1], freq[13], freq[14] = 0.5, 0.3, 0.199, 0.001
    images = [0] * 19
    images[0], images[1], images[13], images[14] = 10, 10, 9, 1
    median = [0.0 if f == 0 else 0.2495 / f for f in freq]
    return {"class_names": list(L.CLASS_NAMES), "frequency": freq, "image_counts": images,
            "pixel_counts": [int(f * 40960) for f in freq], "num_images": 10,
            "class_weights": {"inv_freq": [1.0] * 19, "median_freq": median, "enet": [2.0] * 19}}


def test_markdown_table_aligns_and_renders():
    t = notebook.markdown_table(["a", "b", "c"], [[1, 2.5, "x"]])
    assert t == "| a | b | c |\n|:--|--:|--:|\n| 1 | 2.5 | x |"
    assert t._repr_markdown_() == str(t)


def test_imbalance_summary_states_the_numbers():
    text = notebook.imbalance_summary(_toy_stats())
    assert "**background, skin, hair** cover **99.9%** of all pixels" in text
    # hat: 0.1% of the pixels, 500x fewer than background
    assert "**hat**, has 0.100% of the pixels, background 50.0%: **500×** fewer" in text
    assert "hat 10%" in text and "eyeglasses 0%" in text
    assert "Never present in this split: nose" in text
    # median weights: 0.2495/0.5 = 0.499 (background) .. 0.2495/0.001 = 249.5 (hat), printed
    # to three digits; the spread is of the printed numbers: 250 / 0.499 = 501
    assert "from **0.499** (background) to **250** (hat): a 501-fold spread" in text


def test_imbalance_summary_ratios_match_the_numbers_it_prints():
    """What the rendered notebook 03 got wrong: a "244-fold spread" printed beside weights
    rounded to 0.05 and 18.0, which read as 360x. Every ratio is now the quotient of the
    numbers printed next to it, checked here on weights whose two-decimal rounding would
    be far off (0.0738 -> 0.07)."""
    import re

    stats = _toy_stats()
    median = [0.0] * 19
    median[0], median[1], median[13], median[14] = 0.0738, 0.2, 1.0, 18.04
    stats["class_weights"]["median_freq"] = median
    text = notebook.imbalance_summary(stats)
    low, high, fold = re.search(r"from \*\*([\d.,]+)\*\* \(background\) to \*\*([\d.,]+)\*\* "
                                r"\(hat\): a ([\d,]+)-fold spread", text).groups()
    assert (low, high) == ("0.0738", "18.0")
    assert float(fold.replace(",", "")) == round(float(high) / float(low))  # 243.9 -> 244
    rare, big, times = re.search(r"has ([\d.]+)% of the pixels, background ([\d.]+)%: \*\*([\d,]+)×\*\*",
                                 text).groups()
    assert float(times.replace(",", "")) == round(float(big) / float(rare))


def test_frequency_table_rows():
    lines = notebook.frequency_table(_toy_stats()).splitlines()
    assert lines[0] == "| class | pixels | images | inv_freq | median_freq | enet |"
    assert lines[2 + 14] == "| 14 hat (rare) | 0.100% | 1 (10%) | 1.00 | 250 | 2.00 |"
    assert lines[2 + 0] == "| 0 background | 50.0% | 10 (100%) | 1.00 | 0.499 | 2.00 |"


def test_prepare_summary_is_one_readable_line_without_the_machine_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = {"data_root": "/home/someone/data/CelebAMask-HQ", "out": str(tmp_path / "prepared"),
               "label_size": 512, "num_images": 30000, "splits": {"train": 24183, "val": 2993,
               "test": 2824}, "problems": 2, "written": 29000, "existing": 1000,
               "seconds": 754.2069224970000505}
    text = notebook.prepare_summary(summary)
    assert text == ("Prepared **30,000** label maps of 512×512 px in `prepared` in 12 min 34 s "
                    "(29,000 fused now, 1,000 kept from an earlier run). Splits: train **24,183** · "
                    "val **2,993** · test **2,824**. **2 images left out**, listed in "
                    "`prepared/problems.txt`.")
    assert str(tmp_path) not in text and "/home/someone" not in text
    assert "0.2 s" in notebook.prepare_summary({**summary, "seconds": 0.2069224970000505})


def _results(miou, mean_f1, hat_f1, hat_recall, skin_f1=0.9):
    """All 19 classes scored (so the means count them all); skin and hat as given."""
    from celebseg_utils.labels import CLASS_NAMES

    per_class = {n: {"iou": 0.6 / 1.4, "f1": 0.6, "precision": 0.6, "recall": 0.6} for n in CLASS_NAMES}
    per_class["skin"] = {"iou": skin_f1 / (2 - skin_f1), "f1": skin_f1, "precision": 0.9, "recall": 0.9}
    per_class["hat"] = {"iou": hat_f1 / (2 - hat_f1), "f1": hat_f1, "precision": 0.5, "recall": hat_recall}
    return {"miou": miou, "mean_f1": mean_f1, "pixel_accuracy": 0.95, "per_class": per_class}


def test_comparison_summary_names_winners_and_gains():
    results = {"sparse_ce": _results(0.50, 0.60, 0.10, 0.20), "weighted_ce": _results(0.48, 0.62, 0.25, 0.70),
               "dice": _results(0.55, 0.58, 0.20, 0.40)}
    text = notebook.comparison_summary(results)
    assert text.startswith("Best mIoU (19 classes): **dice** (0.550); best mean F1 (18 facial classes): "
                           "**weighted_ce** (0.620). Baseline `sparse_ce`: mIoU (19 classes) 0.500, "
                           "mean F1 (18 facial classes) 0.600.")
    assert "- **hat**: best F1 0.250 with `weighted_ce` (+0.150 over `sparse_ce`; recall 0.200 → 0.700)" in text
    # A tie goes to the baseline; display names, never codes.
    assert "- **eyeglasses**: best F1 0.600 with `sparse_ce` itself (recall 0.600)" in text
    assert "eye_g" not in text and "**necklace**" in text


def test_comparison_summary_judges_one_seed_runs_by_the_studys_rule():
    # issue #21: the notebook's runs are one seed each; the one definition of "holds" says
    # that no difference between them can be judged to hold, however large
    results = {"sparse_ce": _results(0.50, 0.60, 0.10, 0.20), "dice": _results(0.55, 0.90, 0.20, 0.40)}
    text = notebook.comparison_summary(results)
    assert ("`dice` against `sparse_ce`, mean F1 +0.300: does not hold: one seed, so no "
            "difference can be judged to hold") in text


def test_comparison_summary_says_how_many_classes_each_mean_averaged():
    a, b = _results(0.5, 0.6, 0.1, 0.2), _results(0.4, 0.7, 0.3, 0.3)
    for name in ("ear_r", "neck_l"):  # absent from truth and prediction in run b: no score
        b["per_class"][name] = {"iou": None, "f1": None, "precision": None, "recall": None}
    text = notebook.comparison_summary({"a": a, "b": b})
    assert text.startswith("Best mIoU (19 classes): **a** (0.500); best mean F1 (16 of 18 facial classes): "
                           "**b** (0.700). Baseline `a`: mIoU (19 classes) 0.500, mean F1 (18 facial classes) 0.600.")
    b["per_class"]["background"]["iou"] = None  # background counts for mIoU only
    text = notebook.comparison_summary({"a": a, "b": b}, baseline="b")
    assert "Baseline `b`: mIoU (16 of 19 classes) 0.400, mean F1 (16 of 18 facial classes) 0.700." in text


def test_comparison_summary_handles_classes_without_a_score():
    a, b = _results(0.5, 0.6, 0.1, 0.2), _results(0.4, 0.5, 0.1, 0.3)
    a["per_class"]["hat"]["f1"] = b["per_class"]["hat"]["f1"] = None  # strict JSON: no NaN
    a["per_class"]["hat"]["recall"] = b["per_class"]["hat"]["recall"] = None
    text = notebook.comparison_summary({"a": a, "b": b})
    assert "- **hat**: not in the test split, nor predicted (no score)" in text
    a["per_class"]["hat"]["f1"] = b["per_class"]["hat"]["f1"] = 0.4
    a["per_class"]["hat"]["recall"] = 0.2
    text = notebook.comparison_summary({"a": a, "b": b})
    assert "- **hat**: best F1 0.400 with `a` itself (recall 0.200)" in text
    b["miou"] = None
    assert notebook.comparison_summary({"a": a, "b": b}).startswith("Best mIoU (19 classes): **a** (0.500)")

"""weight_delivery: which ways of handing (B,H,W) pixel weights to a Keras loss deliver them,
on small synthetic batches (and the script's reading of a committed study.json)."""

from __future__ import annotations

import doctest
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from celebseg_utils import labels as L
from celebseg_utils.data import weight_maps as W
from celebseg_utils.study import weight_delivery as WD

REPO = Path(__file__).resolve().parents[2]
C = L.NUM_CLASSES
HAT, EYE_G = L.class_id("hat"), L.class_id("eye_g")


def _batch(seed: int = 0, size: int = 16):
    """Two square faces: background, skin, hair, and a small hat / eyeglasses patch placed
    off the diagonal (so a transposed weight map puts its weight elsewhere)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((2, size, size), np.int32)
    labels[:, size // 4:, size // 4:3 * size // 4] = L.class_id("skin")
    labels[:, :size // 4, :] = L.class_id("hair")
    labels[0, size - 3:, :2] = HAT
    labels[1, size // 2:size // 2 + 2, 1:3] = EYE_G
    weights = np.stack([W.per_image_pixel_weights(lab) for lab in labels])
    logits = rng.normal(size=labels.shape + (C,)).astype(np.float32)
    return labels, logits, weights


@pytest.mark.slow
def test_doctests():
    assert doctest.testmod(WD).failed == 0


def test_per_image_mean_is_exactly_unweighted():
    labels, logits, weights = _batch()
    assert np.abs(weights.mean(axis=(1, 2)) - 1).max() < 1e-6   # mean 1 by construction
    r = WD.compare_ways(labels, logits, weights, ("per_image_mean",))["per_image_mean"]
    assert r["rel_l2_unweighted"] < 1e-6 and r["cosine_unweighted"] > 1 - 1e-9
    assert r["rel_l2_weighted"] > 0.3
    assert WD.verdict(r) == "unweighted"


@pytest.mark.parametrize("way", ["pixel_hw1", "onehot_hw1", "flat_temporal", "mean_with_sample_weight"])
def test_shapes_that_deliver_the_weights(way):
    labels, logits, weights = _batch(1)
    r = WD.compare_ways(labels, logits, weights, (way,))[way]
    assert r["rel_l2_weighted"] < 1e-6
    assert r["rel_l2_unweighted"] > 0.3
    assert WD.verdict(r) == "weighted"


def test_scrambled_weights_keep_ce_class_balance():
    labels, logits, weights = _batch(2)
    r = WD.compare_ways(labels, logits, weights)
    for way in ("transposed", "other_image"):
        assert WD.verdict(r[way]) == "unweighted balance"
        assert r[way]["rare_share"] < r["pixel"]["rare_share"] / 3
        assert r[way]["tv_unweighted"] < r[way]["tv_weighted"]
    assert r["pixel"]["rare_share"] > 3 * r["unweighted"]["rare_share"]


def test_transposed_is_column_major_flatten_of_a_square_map():
    _, _, weights = _batch()
    w = weights[0]
    assert np.array_equal(w.ravel(order="F").reshape(w.shape), w.T)


def test_divided_by_sum_only_rescales():
    labels, logits, weights = _batch(3)
    r = WD.compare_ways(labels, logits, weights, ("divided_by_sum",))["divided_by_sum"]
    assert r["cosine_weighted"] > 1 - 1e-9
    assert r["norm_ratio"] == pytest.approx(1 / labels[0].size, rel=1e-5)
    assert WD.verdict(r) == "weighted"


@pytest.mark.slow
def test_keras3_fit_delivers_pixel_weights():
    labels, _, weights = _batch(4)
    images = np.random.default_rng(4).uniform(0, 255, labels.shape + (3,))
    fit = WD.fit_check(images, labels, weights)
    cases = fit["cases"]
    for case in ("pixel", "pixel_hw1", "onehot_hw1"):
        assert cases[case]["rel_l2_weighted"] < 1e-6, case
        assert cases[case]["rel_l2_unweighted"] > 0.3, case
    assert cases["unweighted"]["rel_l2_unweighted"] < 1e-6
    assert "Incompatible shapes" in cases["per_image_1d"]["error"]
    assert "error" in cases["onehot_hwc"]


@pytest.mark.slow
def test_tf_keras_fit_delivers_pixel_weights():
    tf_keras = pytest.importorskip("tf_keras", reason="tf_keras (Keras 2) is not a project dependency")
    labels, _, weights = _batch(5)
    images = np.random.default_rng(5).uniform(0, 255, labels.shape + (3,))
    cases = WD.fit_check(images, labels, weights, kmod=tf_keras, cases=("pixel", "per_image_1d"))["cases"]
    assert cases["pixel"]["rel_l2_weighted"] < 1e-6
    assert "Incompatible shapes" in cases["per_image_1d"]["error"]


def _script():
    spec = importlib.util.spec_from_file_location("measure_weight_delivery",
                                                  REPO / "scripts" / "measure_weight_delivery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metric_view_on_the_committed_study():
    study = json.loads((REPO / "figures" / "study" / "budget250" / "study.json").read_text())
    view = _script().metric_view(study)
    s = study["summary"]
    for k in ("pixel_accuracy", "miou", "mean_f1"):
        assert view["headline"][k]["diff"] == pytest.approx(
            s["pixel_weighted_ce"][k]["mean"] - s["sparse_ce"][k]["mean"])
    # 250 steps: pixel accuracy falls 0.137, mIoU rises 0.021, mouth F1 rises 0.51.
    assert view["headline"]["pixel_accuracy"]["diff"] < -0.1
    assert abs(view["headline"]["miou"]["diff"]) < 0.05
    assert view["per_class"]["mouth"]["f1"]["diff"] > 0.3
    assert view["facial_f1_moves"]["classes"] == 18
    assert view["per_class"]["ear_r"]["precision"]["diff"] is None   # sparse_ce never predicts it
    assert _script().metric_view({"summary": {}})["missing"] == ["pixel_weighted_ce", "sparse_ce"]

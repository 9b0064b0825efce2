"""models.explain: receptive fields equal their analytic sizes, ASPP tap shares, the stride
oracle, the skip ablation, and the 4x4 loss examples equal values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf  # noqa: F401 - imported at collection, as test_losses does: no test pays for it

from celebseg_utils.errors import CelebsegError
from celebseg_utils.models import explain


# --------------------------------------------------------------------------- receptive field

@pytest.mark.parametrize("rates, side", [((1, 1, 1), 7), ((2, 2, 2), 13), ((1, 2, 3), 13),
                                         ((1,), 3), ((3, 3), 13)])
def test_measured_receptive_field_of_a_conv_stack_equals_the_analytic_side(rates, side):
    grad = explain.input_gradient(explain.conv_stack(rates, size=33),
                                  np.zeros((33, 33, 1), np.float32), 16, 16, 0)
    assert explain.analytic_receptive_field(rates) == side
    assert explain.support_size(grad) == side
    # the gradient is symmetric about the pixel: its support is centred on it
    rows, cols = np.nonzero(grad)
    assert (rows.min() + rows.max()) / 2 == 16 and (cols.min() + cols.max()) / 2 == 16


def test_dilation_by_two_three_times_reads_every_other_pixel_only():
    dense = explain.input_gradient(explain.conv_stack((1, 2, 3)), np.zeros((33, 33, 1), "float32"), 16, 16, 0)
    holes = explain.input_gradient(explain.conv_stack((2, 2, 2)), np.zeros((33, 33, 1), "float32"), 16, 16, 0)
    # same 13 px field; rates 2,2,2 read the 7x7 even offsets only (gridding), 1,2,3 all 169
    assert np.count_nonzero(holes) == 49 and np.count_nonzero(dense) == 169
    assert holes[16, 17] == 0 and holes[16, 18] > 0
    # with kernels of ones a pixel's gradient counts its paths: per axis, the steps
    # (d1, d2, d3) in {-1, 0, 1} summing to 0 are 7, so the centre has 7 x 7 = 49
    assert explain.input_gradient(explain.conv_stack((1, 1, 1), size=9), np.zeros((9, 9, 1), "float32"),
                                  4, 4, 0)[4, 4] == 49


def test_mass_radius_is_the_smallest_square_with_that_share():
    g = np.zeros((11, 11))
    g[5, 5], g[5, 7], g[1, 5] = 6.0, 3.0, 1.0
    assert [explain.mass_radius(g, 5, 5, m) for m in (0.5, 0.6, 0.9, 1.0)] == [0, 0, 2, 4]
    assert explain.mass_radius(np.zeros((3, 3)), 1, 1) == 0
    assert explain.support_size(np.zeros((3, 3))) == 0


def test_conv_stack_refuses_a_rate_below_one():
    with pytest.raises(CelebsegError, match="rate"):
        explain.conv_stack([1, 0])


# --------------------------------------------------------------------------- ASPP and stride

def test_aspp_tap_share_by_hand():
    # per axis, taps inside a 4-cell map: rate 1 -> (2, 3, 3, 2)/3, rate 2 -> 2/3 each,
    # rate 3 -> (2, 1, 1, 2)/3, rate >= 4 -> the centre only
    assert math.isclose(explain.aspp_tap_share(4, 1), (2.5 / 3) ** 2)
    assert math.isclose(explain.aspp_tap_share(4, 2), (2 / 3) ** 2)
    assert math.isclose(explain.aspp_tap_share(4, 3), 0.25)
    assert math.isclose(explain.aspp_tap_share(4, 6), 1 / 9)
    assert math.isclose(explain.aspp_tap_share(16, 18), 1 / 9)   # 512 px: rate 18 is a 1x1
    assert explain.aspp_taps(4, 6, 1, 1).sum() == 1
    with pytest.raises(CelebsegError):
        explain.aspp_tap_share(0, 1)


def test_block_majority_keeps_a_part_only_where_it_wins_its_block():
    label = np.zeros((8, 8), np.uint8)
    label[0:3, 0:3] = 6          # 9 of the 16 pixels of the top-left 4x4 block
    label[5, 4:8] = 7            # 4 of 16 in its block: lost at stride 4
    out = explain.block_majority(label, 4)
    assert (out[:4, :4] == 6).all() and (out[4:, 4:] == 0).all() and (out[:4, 4:] == 0).all()
    assert (explain.block_majority(label, 1) == label).all()
    with pytest.raises(CelebsegError, match="multiple"):
        explain.block_majority(label, 3)


# --------------------------------------------------------------------------- the 4x4 losses

def test_loss_example_inputs_are_the_documented_map_and_probabilities():
    ex = explain.loss_example()
    assert np.bincount(ex.labels.ravel()).tolist() == [10, 4, 2]
    assert np.allclose(ex.probs.sum(-1), 1.0)
    # softmax(ln p) = p: the logits give back the probabilities a student reads
    e = np.exp(ex.logits.astype(np.float64))
    assert np.allclose(e / e.sum(-1, keepdims=True), ex.probs, atol=1e-6)


def test_loss_example_equals_the_hand_computed_values():
    ex = explain.loss_example()
    ce_bg, ce_skin, ce_brow = -math.log(0.8), -math.log(0.5), -math.log(0.25)
    assert np.allclose(sorted(set(np.round(ex.pixel_ce.ravel(), 5))),
                       sorted(round(v, 5) for v in (ce_bg, ce_skin, ce_brow)))
    hand = {
        # mean over 16 pixels
        "sparse_ce": (10 * ce_bg + 4 * ce_skin + 2 * ce_brow) / 16,
        # weights 16/(3*10), 16/(3*4), 16/(3*2): the mean of the 3 classes' CE
        "pixel_weighted_ce": (ce_bg + ce_skin + ce_brow) / 3,
        # median-frequency weights: f = (10, 4, 2)/16, median 4/16 -> w = (0.4, 1, 2)
        "weighted_ce": (10 * 0.4 * ce_bg + 4 * 1 * ce_skin + 2 * 2 * ce_brow) / 16,
        # I = (8, 2, 0.5), P = (10, 3.5, 2.5), G = (10, 4, 2), s = 1
        "dice": 1 - (17 / 21 + 5 / 8.5 + 2 / 5.5) / 3,
        "jaccard": 1 - (9 / 13 + 3 / 6.5 + 1.5 / 5) / 3,
    }
    assert list(ex.values) == list(explain.EXAMPLE_LOSSES)
    for name, value in hand.items():
        assert math.isclose(ex.values[name], value, rel_tol=1e-5), name
    assert [round(v, 4) for v in ex.values.values()] == [0.486, 0.7675, 0.5756, 0.4129, 0.5154]
    assert np.allclose(ex.class_weights, [0.4, 1.0, 2.0])
    assert np.allclose(ex.soft_counts["I"], [8, 2, 0.5]) and np.allclose(ex.soft_counts["P"], [10, 3.5, 2.5])


def test_loss_example_class_shares_by_hand():
    ex = explain.loss_example()
    ce_bg, ce_skin, ce_brow = -math.log(0.8), -math.log(0.5), -math.log(0.25)
    brow = {
        "sparse_ce": 2 * ce_brow / (10 * ce_bg + 4 * ce_skin + 2 * ce_brow),        # 36%
        "pixel_weighted_ce": ce_brow / (ce_bg + ce_skin + ce_brow),                  # 60%
        "weighted_ce": 4 * ce_brow / (4 * ce_bg + 4 * ce_skin + 4 * ce_brow),        # 60%
        "dice": (1 - 2 / 5.5) / ((1 - 17 / 21) + (1 - 5 / 8.5) + (1 - 2 / 5.5)),     # 51%
        "jaccard": (1 - 0.3) / ((1 - 9 / 13) + (1 - 3 / 6.5) + (1 - 0.3)),           # 45%
    }
    for name, share in brow.items():
        assert math.isclose(ex.class_shares[name][2], share, rel_tol=1e-5), name
        assert math.isclose(sum(ex.class_shares[name]), 1.0, rel_tol=1e-9)
    assert "| `sparse_ce` | 0.4860 | 29% | 36% | 36% |" in ex.markdown("summary")


def test_loss_example_without_smoothing():
    ex = explain.loss_example(smooth=0.0)
    assert math.isclose(ex.values["dice"], 1 - (16 / 20 + 4 / 7.5 + 1 / 4.5) / 3, rel_tol=1e-5)
    assert math.isclose(ex.values["jaccard"], 1 - (8 / 12 + 2 / 5.5 + 0.5 / 4) / 3, rel_tol=1e-5)


def test_loss_example_markdown_shows_the_numbers_a_student_checks():
    ex = explain.loss_example()
    assert "| **row 1** | background | brow | brow | background |" in ex.markdown("inputs")
    assert "**0.4860**" in ex.markdown("sparse_ce")
    assert "16/(3·2) = 2.6667" in ex.markdown("pixel_weighted_ce")
    assert "(0.4, 1, 2)" in ex.markdown("weighted_ce")
    assert "(2·0.5 + 1) / (2.5 + 2 + 1) = 0.3636" in ex.markdown("dice")
    assert "**0.5154**" in ex.markdown("jaccard")
    with pytest.raises(CelebsegError, match="part"):
        ex.markdown("focal")


# --------------------------------------------------------------------------- the model
# Building the MobileNetV3 DeepLabV3+ takes ~9 s here: these two are `slow` (tests/README.md);
# the measurements they feed are covered fast above, on conv stacks.

@pytest.fixture(scope="module")
def tiny_model():
    from celebseg_utils.models.deeplab import build_model

    return build_model(backbone="mobilenet_v3_large", image_size=64, aspp_rates=(1, 2, 3))


@pytest.mark.slow
def test_feature_map_sizes_of_the_keras_cv_model(tiny_model):
    rows = explain.feature_map_sizes(tiny_model)
    by_name = {r["name"]: (r["side"], r["stride"], r["channels"]) for r in rows}
    assert by_name["backbone P2 (low-level)"][:2] == (16, 4)
    assert by_name["backbone P5"][:2] == (2, 32)
    assert by_name["skip: P2 projected (1x1 conv)"] == (16, 4, 48)
    assert by_name["decoder: concatenated"] == (16, 4, 256 + 48)
    assert by_name["logits (upsampled x4)"] == (64, 1, 19)


@pytest.mark.slow
def test_without_skip_keeps_the_model_or_removes_the_stride_4_detail(tiny_model):
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    full = tiny_model(x, training=False).numpy()
    kept = explain.without_skip(tiny_model, "keep")(x, training=False).numpy()
    mean = explain.without_skip(tiny_model, "mean")(x, training=False).numpy()
    zero = explain.without_skip(tiny_model, "zero")(x, training=False).numpy()
    assert np.allclose(kept, full, atol=1e-5)
    assert not np.allclose(mean, full, atol=1e-3) and not np.allclose(zero, mean, atol=1e-3)
    # the weights are shared, not copied: nothing is retrained or duplicated
    original = {id(v) for v in tiny_model.weights}
    assert all(id(v) in original for v in explain.without_skip(tiny_model, "mean").weights)
    with pytest.raises(CelebsegError, match="mode"):
        explain.without_skip(tiny_model, "drop")


def test_without_skip_refuses_a_model_without_one():
    import keras

    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(19, 1)])
    with pytest.raises(CelebsegError, match="not a DeepLabV3"):
        explain.without_skip(plain)
    with pytest.raises(CelebsegError, match="keras-cv DeepLabV3Plus"):
        explain.feature_map_sizes(plain)


@pytest.mark.slow
def test_without_skip_finds_the_skip_of_the_keras_hub_model_too():
    from celebseg_utils.models.deeplab import build_model

    model = build_model(backbone="mobilenet_v3_large", image_size=64, library="keras_hub")
    x = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    full = model(x, training=False).numpy()
    assert np.allclose(explain.without_skip(model, "keep")(x, training=False).numpy(), full, atol=1e-5)
    assert not np.allclose(explain.without_skip(model, "mean")(x, training=False).numpy(), full, atol=1e-3)

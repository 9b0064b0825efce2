"""study_gradients: gradient shares per true class on hand-made tensors (+ one real-data run)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from celebseg_utils import labels as L
from celebseg_utils.study import gradients as G

C = L.NUM_CLASSES
#: CE's logit gradient per pixel at zero logits, L1 over the channels: (1 - 1/19) + 18/19.
CE_PIXEL_L1 = 2 * 18 / 19


def test_doctests():
    assert doctest.testmod(G).failed == 0


@pytest.mark.parametrize("scheme", G.SCHEMES)
def test_shares_sum_to_one(scheme):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, size=(2, 6, 6, 1))
    logits = rng.normal(size=(2, 6, 6, C)).astype("float32")
    weights = list(rng.uniform(0.1, 3.0, size=C))
    shares = G.gradient_shares(labels, logits, scheme, class_weights=weights)
    assert shares.shape == (C,)
    assert shares.sum() == pytest.approx(1.0, abs=1e-6)
    assert (shares >= 0).all()
    absent = np.setdiff1d(np.arange(C), labels)
    assert np.all(shares[absent] == 0)  # only true classes receive a share


def test_ce_is_pixel_share_and_per_image_equalises():
    # 1x2x2: background (0) on 2 pixels, skin (1) and hair (13) on one each.
    labels = np.array([[[0, 0], [1, 13]]])
    zeros = np.zeros((1, 2, 2, C), "float32")
    ce = G.gradient_shares(labels, zeros, "ce")
    # Every pixel gets the same gradient (p - onehot) / 4 at zero logits: share = pixel share.
    assert ce[[0, 1, 13]] == pytest.approx([2 / 4, 1 / 4, 1 / 4], abs=1e-6)
    assert G.gradient_per_class(labels, zeros, "ce").sum() == pytest.approx(CE_PIXEL_L1, rel=1e-5)
    # per_image weights N/(K n_c): background 4/(3*2) = 2/3, skin and hair 4/3, so each
    # class's pixels weigh 4/3 in total: one third each.
    per_image = G.gradient_shares(labels, zeros, "per_image")
    assert per_image[[0, 1, 13]] == pytest.approx([1 / 3] * 3, abs=1e-6)
    # mean weight is 1, so the total gradient equals CE's.
    assert G.gradient_per_class(labels, zeros, "per_image").sum() == pytest.approx(CE_PIXEL_L1, rel=1e-5)


def test_per_image_raw_rescales_one_image_by_k_over_n():
    labels = np.array([[[0, 0], [1, 13]]])
    logits = np.random.default_rng(1).normal(size=(1, 2, 2, C)).astype("float32")
    norm = G.gradient_per_class(labels, logits, "per_image")
    raw = G.gradient_per_class(labels, logits, "per_image_raw")
    assert raw / raw.sum() == pytest.approx(norm / norm.sum(), abs=1e-6)
    # raw 1/n_c = (K/N) * N/(K n_c): K = 3 classes, N = 4 pixels.
    assert raw.sum() / norm.sum() == pytest.approx(3 / 4, rel=1e-5)


def test_per_image_raw_differs_across_images_with_different_k():
    # Two images, K = 1 and K = 2: raw weights sum to K per image, normalised ones to N,
    # so the images' relative weight differs and with it the class shares.
    labels = np.array([[[0, 0], [0, 0]], [[0, 0], [0, 1]]])
    zeros = np.zeros((2, 2, 2, C), "float32")
    norm = G.gradient_shares(labels, zeros, "per_image")
    raw = G.gradient_shares(labels, zeros, "per_image_raw")
    assert norm[1] == pytest.approx(2 / 8)  # image 2's skin pixel: weight 2 of total 8
    assert raw[1] == pytest.approx(1 / 3)   # weights 1 (image 1) + 1 + 1 (image 2)


def test_median_freq_needs_weights():
    from celebseg_utils.errors import CelebsegError

    with pytest.raises(CelebsegError, match="class_weights"):
        G.gradient_shares(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, C)), "median_freq")
    with pytest.raises(CelebsegError, match="unknown scheme"):
        G.gradient_shares(np.zeros((1, 2, 2)), np.zeros((1, 2, 2, C)), "focal")


def _fake_table():
    rng = np.random.default_rng(0)
    shares = {s: list(rng.dirichlet(np.ones(C))) for s in G.SCHEMES}
    return {"class_names": list(L.CLASS_NAMES), "logits": "zeros", "batches": 2, "batch_size": 2,
            "images": 4, "pixel_share": list(rng.dirichlet(np.ones(C))),
            "image_fraction": [1.0] * C, "batch_fraction": [1.0] * C, "shares": shares,
            "loss_scale": {s: 1.0 for s in G.SCHEMES}}


def test_plot_returns_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    fig = G.plot_gradient_shares(_fake_table())
    assert fig.axes and fig.axes[0].get_yscale() == "log"
    G.plot_gradient_shares([_fake_table(), _fake_table()], tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0
    assert "pixel%" in G.format_table(_fake_table())


@pytest.mark.slow
def test_table_on_shared_mini(tmp_path, real_mini_dir):
    from celebseg_utils.data.fused import prepare_fused

    images = sorted((real_mini_dir / "images").glob("*.jpg"), key=lambda p: int(p.stem))[:24]
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    for photo in images:
        (src / "images" / photo.name).symlink_to(photo)
        (src / "labels" / f"{photo.stem}.png").symlink_to(real_mini_dir / "labels" / f"{photo.stem}.png")
    prepare_fused(src / "images", src / "labels", tmp_path / "prep", workers=1, progress=False)
    table = G.gradient_share_table(tmp_path / "prep", batches=2, batch_size=4, image_size=64)
    assert table["batches"] == 2 and table["images"] == 8
    for s in G.SCHEMES:
        assert sum(table["shares"][s]) == pytest.approx(1.0, abs=1e-5)
    # zero logits: CE's shares are the pixel shares.
    assert table["shares"]["ce"] == pytest.approx(table["pixel_share"], abs=1e-5)
    assert table["loss_scale"]["ce"] == pytest.approx(1.0)
    assert table["loss_scale"]["per_image"] == pytest.approx(1.0, rel=1e-4)  # mean weight 1


def test_the_figure_title_names_no_machine_path_and_says_which_faces():
    import matplotlib

    matplotlib.use("Agg")
    table = {**_fake_table(), "logits": "model:/work/study-out/runs/sparse_ce/seed0/best.keras",
             "image_size": 128}
    fig = G.plot_gradient_shares(table, faces="synthetic faces")
    title = fig.axes[0].get_title()
    assert "/work" not in title and "study-out" not in title
    assert "logits of the trained model sparse_ce/seed0/best.keras" in title
    assert "2 training batches x 2 synthetic faces at 128 px" in title
    assert G.logits_text({"logits": "zeros"}) == "zero logits (start of training)"

"""celebseg_utils.interface.notebook_figures: the pictures of the notebooks, checked on tiny data."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from celebseg_utils import labels as L  # noqa: E402
from celebseg_utils.data import layout  # noqa: E402
from celebseg_utils.interface import notebook_figures as F  # noqa: E402
from celebseg_utils.errors import CelebsegError  # noqa: E402


def test_plot_history_draws_train_and_val_curves():
    fig = F.plot_history({"epoch": [0, 1, 2], "loss": [3.0, 2.0, 1.5],
                                 "val_loss": [3.1, 2.5, 2.0], "miou": [0.1, 0.2, 0.3],
                                 "val_miou": [0.05, 0.1, 0.2]})
    loss_ax, miou_ax = fig.axes
    assert [tuple(l.get_xdata()) for l in loss_ax.lines] == [(1, 2, 3), (1, 2, 3)]
    assert list(miou_ax.lines[1].get_ydata()) == [0.05, 0.1, 0.2]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["train", "val"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_load_photos_and_sample_rows(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    from celebseg_utils.data import layout

    raw, prep = tmp_path / "raw", tmp_path / "prep"
    photo = np.zeros((8, 8, 3), np.uint8)
    photo[:, :, 0] = 200
    layout.image_path(raw, 3).parent.mkdir(parents=True)
    Image.fromarray(photo).save(layout.image_path(raw, 3), quality=100)
    label = np.zeros((4, 4), np.uint8)
    label[1:3, 1:3] = 13
    layout.label_path(prep, 3).parent.mkdir(parents=True)
    Image.fromarray(label).save(layout.label_path(prep, 3))
    layout.info_path(prep).write_text(json.dumps({"data_root": str(raw), "label_size": 4}))

    (big,) = F.load_photos(raw, [3])
    assert big.shape == (8, 8, 3) and abs(int(big[0, 0, 0]) - 200) <= 2
    ((p, lab, over),) = F.sample_rows(prep, [3], alpha=1.0)
    assert p.shape == (4, 4, 3) and lab.tolist() == label.tolist()
    assert over[1, 1].tolist() == [0, 0, 204]  # hair, fully opaque
    assert abs(int(over[0, 0, 0]) - 200) <= 2  # background keeps the photo
    from celebseg_utils.errors import CelebsegError

    with pytest.raises(CelebsegError, match="missing photo"):
        F.load_photos(raw, [4])


def _prepared(tmp_path, labels: dict[int, np.ndarray], split_ids=None):
    """A prepared folder with the given label maps, all in the train split."""
    raw, prep = tmp_path / "raw", tmp_path / "prep"
    for k, label in labels.items():
        layout.label_path(prep, k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(label.astype(np.uint8)).save(layout.label_path(prep, k))
    layout.split_path(prep, "train").parent.mkdir(parents=True, exist_ok=True)
    ids = sorted(labels) if split_ids is None else split_ids
    layout.split_path(prep, "train").write_text("".join(f"{k}\n" for k in ids))
    layout.info_path(prep).write_text(json.dumps({"data_root": str(raw), "label_size": 4}))
    return prep


def test_pick_example_prefers_rare_accessories(tmp_path):
    plain = np.zeros((4, 4), np.uint8)
    many = plain.copy()
    many[0, :4] = [1, 2, 4, 5]  # four common classes + background
    rare = plain.copy()
    rare[0, 0], rare[0, 1] = L.class_id("ear_r"), L.class_id("hat")
    prep = _prepared(tmp_path, {0: plain, 1: many, 2: rare, 3: rare})
    assert F.pick_example(prep) == 2  # two rare classes beat five common ones; smallest id on ties
    assert F.pick_example(prep, scan=2) == 1


def test_plot_weight_maps_shows_the_weights_of_each_pixel(tmp_path):
    label = np.zeros((4, 4), np.uint8)
    label[2:, 2:] = 13  # 12 background, 4 hair pixels
    prep = _prepared(tmp_path, {7: label})
    weights = [0.5] + [1.0] * 12 + [3.0] + [1.0] * 5
    fig = F.plot_weight_maps(prep, {"class_weights": {"median_freq": weights}}, image_id=7)
    truth_ax, class_ax, image_ax = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert truth_ax.get_title() == "label map, image 7"
    class_map = class_ax.images[0].get_array()
    assert class_map[0, 0] == 0.5 and class_map[3, 3] == 3.0
    # per image: N / (K n_c) = 16 / (2 * 12) for background, 16 / (2 * 4) for hair
    image_map = image_ax.images[0].get_array()
    assert image_map[0, 0] == pytest.approx(16 / 24) and image_map[3, 3] == pytest.approx(2.0)
    plt.close(fig)


def test_weight_map_panels_are_the_same_size_and_the_label_map_has_a_legend(tmp_path):
    """Rendered notebook 03 had three panels of different heights: each colourbar took its
    width from its picture. Now the pictures' boxes, as drawn, match to the pixel."""
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 13  # 32 hair pixels
    label[0, 0] = L.class_id("ear_r")  # 1 earring pixel
    prep = _prepared(tmp_path, {7: label})
    weights = [0.5] + [1.0] * 12 + [3.0, 1.0, 40.0] + [1.0] * 3
    fig = F.plot_weight_maps(prep, {"class_weights": {"median_freq": weights}}, image_id=7)
    fig.canvas.draw()  # applies the layout and the pictures' aspect
    pictures = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(pictures) == 3
    boxes = [ax.get_window_extent() for ax in pictures]
    assert {round(b.height, 1) for b in boxes} == {round(boxes[0].height, 1)}
    assert {round(b.width, 1) for b in boxes} == {round(boxes[0].width, 1)}
    assert {round(b.y0, 1) for b in boxes} == {round(boxes[0].y0, 1)}  # one row, aligned
    # each colourbar is as tall as its picture
    bars = [ax for ax in fig.axes if not ax.get_title()]
    assert [round(ax.get_window_extent().height, 1) for ax in bars] == [round(boxes[0].height, 1)] * 2
    legend = pictures[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["hair 50%", "earring 1.6%"]
    assert legend.get_window_extent().x0 >= boxes[0].x1  # beside the picture, not over it
    assert legend.get_window_extent().x1 <= boxes[1].x0
    plt.close(fig)


def test_plot_class_weights_one_bar_per_present_class_and_scheme():
    w = {"inv_freq": [2.0] * 19, "median_freq": [0.0] + [1.0] * 18, "enet": [4.0] * 19}
    fig = F.plot_class_weights({"class_names": list(L.CLASS_NAMES), "class_weights": w})
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights[:19] == [2.0] * 19 and heights[38:] == [4.0] * 19
    assert np.isnan(heights[19]) and heights[20:38] == [1.0] * 18  # absent class: no bar
    red = {t.get_text() for t in ax.get_xticklabels() if t.get_color() == "crimson"}
    assert red == {"eyeglasses", "hat", "earring", "necklace"}
    plt.close(fig)


class _HairModel:
    """Stands in for a keras model: input 4x4, logits that say "hair" on the left half."""

    input_shape = (None, 4, 4, 3)
    output_shape = (None, 4, 4, 19)
    name = "hair"

    def __init__(self):
        self.seen = []

    def __call__(self, x, training=False):
        self.seen.append(x.shape)
        logits = np.zeros((x.shape[0], 4, 4, 19), np.float32)
        logits[:, :, :2, 13] = 1.0
        return logits


def test_predict_label_is_what_predict_writes_brought_to_size():
    # As `celebseg predict`: the 16 px photo goes in at the model's 4 px, the logits come back
    # to 16 px (bilinear) and the argmax is taken there. Hair's logit (1 on the left 2 of 4
    # columns, 0 elsewhere, like every other class) stays above 0 up to column 9 of 16
    # (input x = j/4 - 0.375 < 2); every second column of those makes the 8 px map: 5 of 8.
    # (Before issue #23 the figures took the argmax at 4 px and stretched it: 4 of 8.)
    model = _HairModel()
    photo = np.full((16, 16, 3), 100, np.uint8)
    label = F.predict_label(model, photo, size=8)
    assert model.seen == [(1, 4, 4, 3)]
    assert label.shape == (8, 8) and (label[:, :5] == 13).all() and (label[:, 5:] == 0).all()


def test_plot_predictions_rows_show_truth_prediction_and_iou(tmp_path):
    truth = np.zeros((4, 4), np.uint8)
    truth[:, :2] = 13  # the model's own 4 px logits match image 5 exactly
    prep = _prepared(tmp_path, {5: truth, 6: np.zeros((4, 4), np.uint8)})
    layout.split_path(prep, "test").write_text("5\n6\n")
    for k in (5, 6):
        layout.image_path(tmp_path / "raw", k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(layout.image_path(tmp_path / "raw", k))
    fig = F.plot_predictions(_HairModel(), prep, count=5, split="test")
    axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in axes[:4]] == ["photo", "ground truth", "prediction", "overlay"]
    # The model sees the 8 px photo files as `celebseg predict` does: its 4 px logits come
    # back to 8 px bilinearly, where hair wins columns 0-4 (x = j/2 - 0.25 < 2), then the
    # 4 px map takes every second column: hair in 3 of 4. Image 5: hair 8/12, background
    # 4/8 -> 0.58; image 6 (all background): hair 0/12, background 4/16 -> 0.125.
    assert [axes[0].get_ylabel(), axes[4].get_ylabel()] == ["image 5, IoU 0.58", "image 6, IoU 0.12"]
    # each row's legend, beside it: the classes of its truth and prediction, with both shares
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    assert [[t.get_text() for t in lg.get_texts()] for lg in legends] == [
        ["hair 50% / 75%"], ["hair 0% / 75%"]]
    assert legends[0].get_title().get_text() == "pixels: ground truth / prediction"
    plt.close(fig)


def test_plot_comparison_groups_bars_and_shades_rare_classes():
    results = {"ce": {"per_class": {"skin": {"f1": .9}, "hat": {"f1": .2}, "ear_r": {"f1": .1}}},
               "dice": {"per_class": {"skin": {"f1": .8}, "hat": {"f1": .5}, "ear_r": {"f1": .3}}}}
    fig = F.plot_comparison(results, metric="f1")
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_width() < 0.5]
    assert [round(float(b.get_height()), 2) for b in bars] == [0.9, 0.2, 0.1, 0.8, 0.5, 0.3]
    shaded = [p for p in ax.patches if p.get_width() >= 0.5]
    assert len(shaded) == 2  # hat and earring
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ce", "dice"]
    assert ax.get_ylabel() == "F1"
    plt.close(fig)


def _with_photos(prep, ids, size=8):
    raw = prep.parent / "raw"
    for k in ids:
        layout.image_path(raw, k).parent.mkdir(parents=True, exist_ok=True)
        photo = np.zeros((size, size, 3), np.uint8)
        photo[..., 1] = 120
        Image.fromarray(photo).save(layout.image_path(raw, k))
    return prep


def test_plot_class_grid_highlights_each_class_of_the_image(tmp_path):
    label = np.zeros((4, 4), np.uint8)
    label[:2] = L.class_id("hair")
    label[3, 3] = L.class_id("l_eye")
    prep = _with_photos(_prepared(tmp_path, {2: label}), [2])
    fig = F.plot_class_grid(prep, 2, alpha=1.0)
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["left eye 6.2%", "hair 50%"]
    for ax, class_id in zip(shown, (L.class_id("l_eye"), L.class_id("hair"))):
        picture = np.asarray(ax.images[0].get_array())
        assert (np.all(picture == (255, 0, 255), axis=-1) == (label == class_id)).all()
    assert "image 2" in fig._suptitle.get_text()
    plt.close(fig)


class _FakeViewer:
    """What plot_viewer reads of a MaskViewer: its folder, ids, position, hidden classes, render()."""

    def __init__(self, prepared, ids, truth, prediction=None, hidden=()):
        self.prepared, self.ids = prepared, list(ids)
        self.slider = type("Slider", (), {"value": 1})()
        self.hidden_classes = list(hidden)
        self._truth, self._prediction = truth, prediction

    @property
    def image_id(self):
        return self.ids[self.slider.value]

    def render(self):
        canvas = np.zeros(self._truth.shape + (3,), np.uint8)
        out = {"truth_label": self._truth, "canvas": canvas}
        if self._prediction is not None:
            out.update(prediction_label=self._prediction, iou=np.float64(0.5),
                       canvas=np.concatenate([canvas, canvas], axis=1))
        return out


def test_plot_viewer_names_the_split_and_lists_only_the_classes_shown(tmp_path):
    truth = np.zeros((4, 4), np.uint8)
    truth[:2] = L.class_id("hair")
    truth[3, :2] = L.class_id("skin")
    prep = _prepared(tmp_path, {0: truth, 1: truth, 2: truth}, split_ids=[0, 1, 2])
    layout.split_path(prep, "val").write_text("1\n2\n")
    layout.split_path(prep, "test").write_text("")
    viewer = _FakeViewer(prep, [1, 2], truth, hidden=[L.class_id("hair")])
    assert F.viewer_split(viewer) == "val"
    fig = F.plot_viewer(viewer)
    ax = fig.axes[0]
    assert ax.get_title().splitlines() == ["MaskViewer, val split: image 2 (2 of 2)",
                                           "ground truth; hidden: hair"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["skin 12%"]  # hair is hidden
    plt.close(fig)
    pred = truth.copy()
    pred[3, :] = L.class_id("nose")
    viewer = _FakeViewer(prep, [0, 1, 2], truth, prediction=pred)
    assert F.viewer_split(viewer) == "train"
    fig = F.plot_viewer(viewer)
    ax = fig.axes[0]
    assert ax.get_title().splitlines()[1] == "ground truth | prediction, IoU 0.500"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["skin 12% / 0%", "nose 0% / 25%",
                                                                    "hair 50% / 50%"]
    assert F.viewer_split(_FakeViewer(prep, [0, 2], truth)) is None  # no split: every image
    plt.close(fig)
    fig = F.plot_viewer(_FakeViewer(prep, [1, 2], truth, hidden=list(range(1, 19))))
    assert fig.axes[0].get_title().splitlines()[1] == "ground truth; 18 classes hidden"
    assert fig.axes[0].get_legend() is None  # nothing shown, nothing to name
    plt.close(fig)


def test_plot_viewer_of_a_real_mask_viewer(tmp_path):
    pytest.importorskip("ipywidgets")
    from celebseg_utils.interface.widgets import MaskViewer

    truth = np.zeros((4, 4), np.uint8)
    truth[:, :1] = L.class_id("r_ear")
    prep = _with_photos(_prepared(tmp_path, {4: truth, 5: truth}, split_ids=[4]), [4, 5])
    layout.split_path(prep, "test").write_text("5\n")
    viewer = MaskViewer(prep, split="test")
    fig = F.plot_viewer(viewer)
    assert fig.axes[0].get_title().splitlines()[0] == "MaskViewer, test split: image 5 (1 of 1)"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["right ear 25%"]
    plt.close(fig)




def _prepared_one(tmp_path, photo: np.ndarray, k: int = 5):
    """A prepared folder whose test split is the one photo ``k`` (label: all background)."""
    raw, prep = tmp_path / "raw", tmp_path / "prep"
    layout.image_path(raw, k).parent.mkdir(parents=True)
    Image.fromarray(photo).save(layout.image_path(raw, k), quality=95)
    layout.label_path(prep, k).parent.mkdir(parents=True)
    Image.fromarray(np.zeros(photo.shape[:2], np.uint8)).save(layout.label_path(prep, k))
    layout.info_path(prep).write_text(json.dumps({"data_root": str(raw),
                                                  "label_size": photo.shape[0]}))
    (prep / "splits").mkdir()
    (prep / "splits" / "test.txt").write_text(f"{k}\n")
    return prep


def test_framed_test_face_shrinks_turns_and_moves_the_face(tmp_path):
    photo = np.full((64, 64, 3), 250, np.uint8)
    photo[28:36, 28:36] = 0  # a dark mark in the middle
    frame = F.framed_test_face(_prepared_one(tmp_path, photo), scale=0.5, degrees=45,
                               shape=(60, 90))
    assert frame.shape == (60, 90, 3)
    assert (frame[0, 0] == 128).all() and (frame[:, :30] == 128).all()  # grey off the face
    ys, xs = np.nonzero(frame[..., 0] < 60)  # the mark: at 2/3 of the width, half the height
    assert abs(xs.mean() - 60) < 1.5 and abs(ys.mean() - 30) < 1.5
    bright = frame[..., 0] > 200  # the face: a 32 px square turned 45 degrees
    assert abs(int(bright.sum()) - 32 * 32) < 32 * 32 * 0.15
    hs = np.nonzero(bright.any(axis=0))[0]
    assert hs.max() - hs.min() + 1 > 40  # its diagonal, wider than the upright 32


@pytest.mark.slow
def test_plot_own_photo_parses_whole_and_aligned_or_says_why(tmp_path, real_mini_dir):
    import keras

    pytest.importorskip("mtcnn", reason="the [align] extra (mtcnn) is not installed")
    inp = keras.Input((64, 64, 3))
    model = keras.Model(inp, keras.layers.Conv2D(19, 1)(inp))
    face = np.asarray(Image.open(real_mini_dir / "images" / "14.jpg").convert("RGB"))  # a test face
    fig = F.plot_own_photo(model, prepared=_prepared_one(tmp_path, face))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["photo", "predict (whole photo)", "predict --align (1 face(s))"]
    plt.close(fig)
    fig = F.plot_own_photo(model, np.full((120, 160, 3), 128, np.uint8))
    assert fig.axes[2].get_title().startswith("--align: no face found")
    plt.close(fig)
    with pytest.raises(CelebsegError, match="needs a photo"):
        F.plot_own_photo(model)

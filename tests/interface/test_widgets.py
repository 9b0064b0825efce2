import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.interface import widgets  # ipywidgets, a dependency, is imported per viewer

S = 16  # label size; photos are 2 * S like the real data (1024 photos, 512 masks)
IDS = (3, 7, 12)
SKIN, HAIR, NOSE = 1, 13, 2


def truth_of(k: int) -> np.ndarray:
    """Left half skin, right half hair; image k also has a nose square of side k // 3 + 1."""
    label = np.zeros((S, S), np.uint8)
    label[2:14, :8] = SKIN
    label[2:14, 8:] = HAIR
    n = k // 3 + 1
    label[5:5 + n, 5:5 + n] = NOSE
    return label


def make_prepared(tmp_path: Path, val=IDS) -> Path:
    raw, prep = tmp_path / "raw", tmp_path / "prep"
    rng = np.random.default_rng(1)
    for k in IDS:
        photo = rng.integers(40, 200, (2 * S, 2 * S, 3), dtype=np.uint8)
        photo[:, :S, 0] = 250  # left half strongly red (used by the model test)
        photo[:, S:, 0] = 10
        layout.image_path(raw, k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo).save(layout.image_path(raw, k), quality=95)
        layout.label_path(prep, k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(truth_of(k)).save(layout.label_path(prep, k))
    layout.split_path(prep, "val").parent.mkdir(parents=True)
    layout.split_path(prep, "val").write_text("".join(f"{k}\n" for k in val))
    layout.info_path(prep).write_text(json.dumps({
        "data_root": str(raw), "label_size": S, "num_images": len(IDS),
        "splits": {"train": 0, "val": len(val), "test": 0}, "problems": 0}))
    return prep


@pytest.fixture
def prep(tmp_path):
    return make_prepared(tmp_path)


def test_importing_the_package_does_not_import_ipywidgets():
    import subprocess

    code = "import sys, celebseg_utils, celebseg_utils.interface.widgets; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_truth_overlay_follows_opacity_and_class_toggles(prep):
    v = widgets.MaskViewer(prep, split="val")
    first = v.render()
    assert set(first) == {"photo", "truth_label", "truth", "canvas"}
    assert first["photo"].shape == (S, S, 3) and first["truth"].shape == (S, S, 3)
    np.testing.assert_array_equal(first["truth_label"], truth_of(3))
    photo, label = first["photo"].astype(float), first["truth_label"]

    # opacity 0.5: each labelled pixel is the rounded mean of photo and palette colour
    expected = np.floor(0.5 * photo + 0.5 * L.OVERLAY_PALETTE[label] + 0.5).astype(np.uint8)
    expected[label == 0] = first["photo"][label == 0]  # background stays the photo
    np.testing.assert_array_equal(first["truth"], expected)

    v.opacity.value = 1.0
    drawn = v.render()["truth"]
    np.testing.assert_array_equal(drawn[label == HAIR], np.tile(L.OVERLAY_PALETTE[HAIR], ((label == HAIR).sum(), 1)))

    v.class_toggles[HAIR].value = False
    assert v.hidden_classes == [HAIR]
    drawn = v.render()
    np.testing.assert_array_equal(drawn["truth"][label == HAIR], drawn["photo"][label == HAIR])
    np.testing.assert_array_equal(drawn["truth"][label == SKIN],
                                  np.tile(L.OVERLAY_PALETTE[SKIN], ((label == SKIN).sum(), 1)))
    # What the widget shows is exactly the rendered canvas.
    shown = np.asarray(Image.open(io.BytesIO(v.image.value)))
    np.testing.assert_array_equal(shown, drawn["canvas"])

    v.opacity.value = 0.0
    np.testing.assert_array_equal(v.render()["truth"], drawn["photo"])

    v.show_none.click()
    assert v.hidden_classes == list(range(L.NUM_CLASSES))
    v.show_all.click()
    assert v.hidden_classes == []


def test_slider_and_box_move_together_and_change_the_image(prep):
    v = widgets.MaskViewer(prep, split="val")
    assert (v.slider.max, v.index_box.max) == (2, 2)
    assert "image id <b>3</b> (1 of 3)" in v.id_label.value
    before = v.image.value
    v.slider.value = 2
    assert v.index_box.value == 2 and v.image_id == 12
    assert "image id <b>12</b> (3 of 3)" in v.id_label.value
    np.testing.assert_array_equal(v.render()["truth_label"], truth_of(12))
    assert v.image.value != before
    v.index_box.value = 1
    assert v.slider.value == 1 and v.image_id == 7


# Run in a fresh interpreter: an IPython shell is a process-wide singleton, and the notebook
# tests of the same session must not inherit one. The interpreter is the one running pytest,
# so the browser test's ipywidgets-7 environment runs this same check under 7.
_DISPLAY_SCRIPT = r"""
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
import ipywidgets
from celebseg_utils.interface.widgets import MaskViewer

shell = InteractiveShell.instance()
shell.user_ns["v"] = MaskViewer(sys.argv[1], split="val")
outputs = []
for cell in ["v", "v.display()", "from IPython.display import display; display(v)"]:
    with capture_output() as cap:
        shell.run_cell(cell).raise_error()  # the Colab failure was an AttributeError here
    outputs.append([o.data for o in cap.outputs])
bundle = shell.user_ns["v"]._repr_mimebundle_()
print(json.dumps({"ipywidgets": ipywidgets.__version__, "model_id": shell.user_ns["v"].widget.model_id,
                  "outputs": outputs, "bundle": bundle}))
"""


def test_the_viewer_displays_as_its_widget_under_this_ipywidgets(prep, tmp_path):
    import subprocess

    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    done = subprocess.run([sys.executable, "-c", _DISPLAY_SCRIPT, str(prep)], capture_output=True,
                          text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    view = {"version_major": 2, "version_minor": 0, "model_id": got["model_id"]}
    # The notebook's last expression, viewer.display() and display(viewer): each publishes
    # exactly one bundle, the widget's view (what the front end renders) plus its text.
    for published in got["outputs"]:
        assert len(published) == 1
        assert published[0]["application/vnd.jupyter.widget-view+json"] == view
        assert published[0]["text/plain"].startswith("VBox(")
    if got["ipywidgets"].startswith("7."):
        assert got["bundle"] is None  # a 7.x widget has no bundle of its own to hand over
    else:
        assert got["bundle"]["application/vnd.jupyter.widget-view+json"] == view


def test_prediction_folder_side_by_side_with_iou(prep, tmp_path):
    same, shifted = tmp_path / "same", tmp_path / "shifted"
    same.mkdir()
    shifted.mkdir()
    for k in IDS:
        # twice the label size on purpose: the viewer brings predictions to the label size
        Image.fromarray(truth_of(k).repeat(2, axis=0).repeat(2, axis=1)).save(same / f"{k}.png")
        Image.fromarray(np.roll(truth_of(k), 2, axis=1)).save(shifted / f"{k}.png")

    v = widgets.MaskViewer(prep, split="val", predictions_dir=same)
    drawn = v.render()
    assert drawn["iou"] == 1.0 and "IoU 1.000" in v.iou_label.value
    assert drawn["canvas"].shape == (S, 2 * S + 8, 3)
    np.testing.assert_array_equal(drawn["canvas"][:, S + 8:], drawn["prediction"])
    np.testing.assert_array_equal(drawn["prediction"], drawn["truth"])

    v = widgets.MaskViewer(prep, split="val", predictions_dir=shifted)
    v.slider.value = 0  # image 3: nose is the 2x2 square at rows 5-6, cols 5-6
    drawn = v.render()
    truth, pred = drawn["truth_label"], drawn["prediction_label"]
    np.testing.assert_array_equal(pred, np.roll(truth_of(3), 2, axis=1))
    # by hand, per class: |T & P| / |T | P|
    # background: rows 0-1, 14-15 all 64 px in both -> 64/64
    # skin  T: 12x8 minus nose 4 = 92 ; P: cols 2-9 = 96 minus nose (cols 7-8) 4 = 92 ; both cols 2-7 minus
    #   T nose (cols 5-6, 4 px) minus P nose at cols 7 (2 px) -> 72-4-2 = 66 ; union 92+92-66 = 118
    # hair  T: cols 8-15 = 96 ; P: cols 10-15 and 0-1 = 96 ; both cols 10-15 = 72 ; union 120
    # nose  T: cols 5-6 ; P: cols 7-8 ; no overlap -> 0 / 8
    expected = (64 / 64 + 66 / 118 + 72 / 120 + 0 / 8) / 4
    assert drawn["iou"] == pytest.approx(expected, abs=1e-12)
    assert drawn["iou"] == pytest.approx(widgets.image_iou(truth, pred))
    assert f"IoU {expected:.3f}" in v.iou_label.value


def test_image_iou_by_hand():
    t = np.array([[0, 0, 1, 1]])
    assert widgets.image_iou(t, t) == 1.0
    assert widgets.image_iou(t, np.array([[0, 1, 1, 1]])) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert widgets.image_iou(t, np.array([[2, 2, 2, 2]])) == 0.0  # classes 0, 1, 2 all at 0


def test_bad_inputs_name_the_fix(prep, tmp_path):
    with pytest.raises(CelebsegError, match="predictions_dir .* is not a folder"):
        widgets.MaskViewer(prep, predictions_dir=tmp_path / "nope")
    with pytest.raises(CelebsegError, match="not a prepared folder"):
        widgets.MaskViewer(tmp_path)
    with pytest.raises(CelebsegError, match="model .* not found"):
        widgets.MaskViewer(prep, model=tmp_path / "m.keras")
    empty = tmp_path / "pred_empty"
    empty.mkdir()
    with pytest.raises(CelebsegError, match=r"missing label map .*3\.png"):
        widgets.MaskViewer(prep, predictions_dir=empty)
    all_ids = widgets.MaskViewer(prep, split=None)
    assert all_ids.ids == [3, 7, 12]


@pytest.mark.slow
def test_model_prediction_is_argmax_at_model_input_size(prep, tmp_path):
    keras = pytest.importorskip("keras")
    # 1x1 conv: skin logit = R - 128, background 0, others -1000 -> skin exactly where red > 128
    inp = keras.Input((2 * S, 2 * S, 3))
    conv = keras.layers.Conv2D(L.NUM_CLASSES, 1)
    model = keras.Model(inp, conv(inp))
    kernel = np.zeros((1, 1, 3, L.NUM_CLASSES), np.float32)
    kernel[0, 0, 0, SKIN] = 1.0
    bias = np.full(L.NUM_CLASSES, -1000.0, np.float32)
    bias[0], bias[SKIN] = 0.0, -128.0
    conv.set_weights([kernel, bias])
    path = tmp_path / "tiny.keras"
    model.save(path)

    for m in (model, path):
        v = widgets.MaskViewer(prep, split="val", model=m)
        v.slider.value = 1
        drawn = v.render()
        photo = np.asarray(Image.open(layout.image_path(tmp_path / "raw", 7)).convert("RGB"))
        expected = np.where(photo[::2, ::2, 0] > 128, SKIN, 0)  # model at 32 px, labels at 16
        np.testing.assert_array_equal(drawn["prediction_label"], expected)
        assert drawn["iou"] == pytest.approx(widgets.image_iou(truth_of(7), expected))


@pytest.mark.slow
def test_viewer_and_figures_show_what_celebseg_predict_writes(prep, tmp_path):
    # One way to run a model (engine.inference): the viewer's and the figures' prediction of
    # a photo is, pixel for pixel, the label map `celebseg predict` writes for its file,
    # brought to the 16 px labels by nearest neighbour (every second pixel of the 32 px map).
    import keras

    from celebseg_utils.engine.predict import predict_images
    from celebseg_utils.interface import notebook_figures as F
    from celebseg_utils.visualization import viz

    keras.utils.set_random_seed(3)
    inputs = keras.Input((24, 24, 3))  # not the photos' 32 px: the resize is part of the path
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(L.NUM_CLASSES, 3, padding="same")(x))
    path = tmp_path / "tiny.keras"
    model.save(path)
    photos = [layout.image_path(tmp_path / "raw", k) for k in IDS]
    predict_images(path, photos, tmp_path / "pred", progress=False)

    viewer = widgets.MaskViewer(prep, split="val", model=path)
    from_folder = widgets.MaskViewer(prep, split="val", predictions_dir=tmp_path / "pred")
    stretched_differs = []
    for i, (k, photo_file) in enumerate(zip(IDS, photos)):
        written = np.asarray(Image.open(tmp_path / "pred" / f"{k}.png"))
        assert written.shape == (2 * S, 2 * S)
        assert len(np.unique(written)) >= 3  # a model that says several things, not one
        viewer.slider.value = from_folder.slider.value = i
        np.testing.assert_array_equal(viewer.render()["prediction_label"], written[::2, ::2])
        np.testing.assert_array_equal(from_folder.render()["prediction_label"], written[::2, ::2])
        photo = np.asarray(Image.open(photo_file).convert("RGB"))
        np.testing.assert_array_equal(F.predict_label(model, photo, 2 * S), written)
        np.testing.assert_array_equal(F.predict_label(path, photo, S), written[::2, ::2])
        # what the viewer drew before issue #23: the photo stretched (bilinear, no antialias)
        # to the model's 24 px, the argmax there, nearest neighbour to the labels
        stretched = np.asarray(Image.fromarray(photo).resize((24, 24), Image.BILINEAR), np.float32)
        old = np.argmax(np.asarray(model(stretched[None], training=False))[0], -1).astype(np.uint8)
        stretched_differs.append(not np.array_equal(viz.resize_label(old, (S, S)),
                                                    written[::2, ::2]))
    assert any(stretched_differs)  # the parity is not a coincidence of the two paths


# --------------------------------------------------------------------------- error analysis
# Two 1x1-conv models whose predictions are known by hand on the faces of make_prepared:
# "skin" says skin where the photo is red (R > 128: the left half), background elsewhere;
# "hair" says hair where it is not (the right half), background elsewhere.

def threshold_model(path: Path, cls: int, sign: float):
    keras = pytest.importorskip("keras")
    inp = keras.Input((2 * S, 2 * S, 3))
    conv = keras.layers.Conv2D(L.NUM_CLASSES, 1)
    model = keras.Model(inp, conv(inp))
    kernel = np.zeros((1, 1, 3, L.NUM_CLASSES), np.float32)
    kernel[0, 0, 0, cls] = sign
    bias = np.full(L.NUM_CLASSES, -1000.0, np.float32)
    bias[0], bias[cls] = 0.0, -128.0 * sign
    conv.set_weights([kernel, bias])
    model.save(path)
    return path


def skin_f1(nose_px: int) -> float:
    # truth skin = the left block (12 x 8) minus the nose's pixels there; "skin" predicts
    # the whole left half (16 x 8 = 128 px): tp = 96 - nose, fp = 128 - tp, fn = 0
    tp = 96 - nose_px
    return 2 * tp / (2 * tp + (128 - tp))


def hand_mean_f1(k: int, model: str, nose: bool = True) -> float:
    """Image k's mean F1 under "skin" or "hair", by hand. The nose square (side n, from
    column 5) has min(n, 3) columns in the left (skin) half and the rest in the right (hair)
    half. Both models: background F1 1/3 (tp 32, fp 96, fn 32); the class the model never
    says scores 0, and so does the nose; the mean is over the classes present (4, or 3
    without a nose)."""
    n = k // 3 + 1 if nose else 0
    left, right = n * min(n, 3), n * max(n - 3, 0)
    if model == "skin":
        own = skin_f1(left)
    else:  # truth hair = 96 minus the nose's right part; "hair" predicts the right half
        tp = 96 - right
        own = 2 * tp / (2 * tp + (128 - tp))
    return (1 / 3 + own) / (4 if n else 3)


def test_error_map_colours_wrong_pixels_by_mode():
    from celebseg_utils.visualization.error_map import ERROR_COLOUR, error_map, faded

    photo = np.full((2, 3, 3), 100, np.uint8)
    truth = np.array([[0, 13, 13], [1, 1, 2]])
    pred = np.array([[0, 1, 13], [1, 13, 2]])
    right = faded(photo)[0, 0].tolist()
    assert right == [193, 193, 193]  # 0.4 * 100 + 0.6 * 255, rounded
    by_truth = error_map(photo, truth, pred, "truth")
    assert by_truth[0, 1].tolist() == L.OVERLAY_PALETTE[13].tolist()  # missed hair
    assert by_truth[1, 1].tolist() == L.OVERLAY_PALETTE[1].tolist()   # missed skin
    assert [by_truth[i, j].tolist() for i, j in [(0, 0), (0, 2), (1, 0), (1, 2)]] == [right] * 4
    by_pred = error_map(photo, truth, pred, "prediction")
    assert by_pred[0, 1].tolist() == L.OVERLAY_PALETTE[1].tolist() and by_pred[1, 1].tolist() == L.OVERLAY_PALETTE[13].tolist()
    single = error_map(photo, truth, pred, "single")
    assert (single == ERROR_COLOUR).all(axis=-1).sum() == 2
    # a hidden class's errors are left out (by the class each mode colours by)
    assert error_map(photo, truth, pred, "truth", hidden_classes=[13])[0, 1].tolist() == right
    assert error_map(photo, truth, pred, "prediction", hidden_classes=[13])[0, 1].tolist() != right
    # labels half the photo's size are scaled up by nearest neighbour
    big = error_map(np.zeros((4, 6, 3), np.uint8), truth, pred, "single")
    assert (big == ERROR_COLOUR).all(axis=-1).sum() == 8
    with pytest.raises(ValueError, match="mode 'x' unknown"):
        error_map(photo, truth, pred, "x")


def test_per_image_scores_orders_and_filter_by_hand(tmp_path):
    from celebseg_utils.engine import scoring
    from celebseg_utils.interface import viewer_scores as vs

    c = L.NUM_CLASSES
    tp, fp, fn = (np.zeros((3, c), np.int64) for _ in range(3))
    tp[:, 0] = 10                    # background right everywhere
    tp[0, 13], fn[0, 13] = 3, 1      # image 0: hair F1 6/7, IoU 3/4
    fp[1, 5] = 4                     # image 1: a class only predicted: F1 0
    # image 2: background alone
    scores = scoring.per_image_scores(tp, fp, fn)
    assert scores["f1"][0, 13] == pytest.approx(6 / 7) and scores["iou"][0, 13] == 0.75
    assert np.isnan(scores["f1"][0, 5]) and scores["f1"][1, 5] == 0.0
    np.testing.assert_allclose(scores["mean_f1"], [(1 + 6 / 7) / 2, 0.5, 1.0])
    np.testing.assert_allclose(scores["miou"], [(1 + 0.75) / 2, 0.5, 1.0])
    assert scores["present"][0, 13] and not scores["present"][1, 5]

    split = scoring.SplitScores("model_size", "val", np.array([7, 3, 12]), np.eye(c, dtype=np.int64),
                                tp, fp, fn, 16)
    path = split.save_per_image(tmp_path / "per_image_val.json", model="m.keras")
    back = scoring.read_per_image(path)
    assert back["ids"].tolist() == [7, 3, 12] and back["model"] == "m.keras"
    np.testing.assert_allclose(back["mean_f1"], scores["mean_f1"])
    np.testing.assert_array_equal(back["tp"], tp)
    assert json.loads(path.read_text())["mean_f1"][2] == 1.0
    path.write_text("{}")
    with pytest.raises(CelebsegError, match="not a per-image score file"):
        scoring.read_per_image(path)

    ids = [7, 3, 12]
    assert vs.worst_first(ids, scores["mean_f1"]) == [3, 7, 12]
    assert vs.worst_first(ids, [0.5, np.nan, 0.1]) == [12, 7, 3]
    assert vs.largest_gain(ids, [0.9, 0.5, 0.5], [0.1, 0.6, 0.5]) == [7, 12, 3]
    present = {7: np.eye(c, dtype=bool)[[0, 13]].any(0), 3: np.eye(c, dtype=bool)[0], 12: np.eye(c, dtype=bool)[13]}
    assert vs.with_classes(ids, present, [13]) == [7, 12]
    assert vs.with_classes(ids, present, [0, 13]) == [7]
    face = vs.face_scores(truth_of(3), np.roll(truth_of(3), 2, axis=1))
    assert face["miou"] == pytest.approx(widgets.image_iou(truth_of(3), np.roll(truth_of(3), 2, axis=1)))


@pytest.mark.slow
def test_models_viewer_panels_order_filter_and_readouts(prep, tmp_path, monkeypatch):
    from celebseg_utils.engine import scoring
    from celebseg_utils.visualization.error_map import ERROR_COLOUR, error_map

    # image 7 without its nose, so that a class filter has something to leave out
    no_nose = truth_of(7)
    no_nose[no_nose == NOSE] = SKIN
    Image.fromarray(no_nose).save(layout.label_path(prep, 7))
    models = {"skin": threshold_model(tmp_path / "skin.keras", SKIN, 1.0),
              "hair": threshold_model(tmp_path / "hair.keras", HAIR, -1.0)}
    v = widgets.MaskViewer(prep, split="val", models=models, image_size=S,
                           cache_dir=tmp_path / "cache", progress=False)
    drawn = v.render()
    assert set(drawn["models"]) == {"skin", "hair"}
    skin, hair = drawn["models"]["skin"], drawn["models"]["hair"]
    left = np.zeros((S, S), bool)
    left[:, :8] = True
    np.testing.assert_array_equal(skin["label"], np.where(left, SKIN, 0))
    np.testing.assert_array_equal(hair["label"], np.where(left, 0, HAIR))
    # the face's per-class scores (image 3, nose 2 x 2)
    assert skin["scores"]["f1"][SKIN] == pytest.approx(skin_f1(4))
    assert skin["scores"]["f1"][0] == pytest.approx(1 / 3)  # tp 32, fp 96 (hair), fn 32
    assert skin["scores"]["mean_f1"] == pytest.approx((1 / 3 + skin_f1(4)) / 4)
    assert hair["scores"]["mean_f1"] == pytest.approx((1 / 3 + 6 / 7) / 4) == pytest.approx(hand_mean_f1(3, "hair"))
    # the canvas: titles, then photo | truth | skin | hair, then blank | blank | errors
    t, g = 14, 8
    canvas = drawn["canvas"]
    assert canvas.shape == (2 * (S + t) + g, 4 * S + 3 * g, 3)
    col = lambda i: slice(i * (S + g), i * (S + g) + S)  # noqa: E731
    np.testing.assert_array_equal(canvas[t:t + S, col(0)], drawn["photo"])
    np.testing.assert_array_equal(canvas[t:t + S, col(1)], drawn["truth"])
    np.testing.assert_array_equal(canvas[t:t + S, col(2)], skin["overlay"])
    low = slice(S + t + g + t, 2 * (S + t) + g)
    np.testing.assert_array_equal(canvas[low, col(3)], hair["errors"])
    np.testing.assert_array_equal(hair["errors"], error_map(drawn["photo"], truth_of(3), hair["label"], "truth"))
    v.error_mode.value = "single"
    drawn = v.render()
    wrong = (drawn["models"]["skin"]["errors"] == ERROR_COLOUR).all(axis=-1).sum()
    assert wrong == 32 + 96 + 4  # background on the left, all of hair, the nose
    assert "<th colspan=2>skin</th>" in v.table.value and f"{skin_f1(4):.2f}" in v.table.value
    shown = np.asarray(Image.open(io.BytesIO(v.image.value)))
    np.testing.assert_array_equal(shown, drawn["canvas"])

    # worst first by "skin": the larger the nose, the lower its skin F1; 7 has none
    v.sort_by("worst", "skin")
    assert v.shown_ids == [12, 3, 7] and v.image_id == 12
    cached = scoring.read_per_image(tmp_path / "cache" / "skin" / "per_image_val.json")
    rows = {k: i for i, k in enumerate(cached["ids"].tolist())}
    assert cached["mean_f1"][rows[12]] == pytest.approx(hand_mean_f1(12, "skin"))
    assert cached["mean_f1"][rows[7]] == pytest.approx(hand_mean_f1(7, "skin", nose=False))
    assert cached["mean_f1"][rows[3]] == pytest.approx(hand_mean_f1(3, "skin"))
    assert "skin mean F1 " in v.id_label.value
    # where skin beats hair most: 7 (0: no nose, a tie), 3 (-0.005), 12 (-0.007)
    gain = {k: hand_mean_f1(k, "skin", k != 7) - hand_mean_f1(k, "hair", k != 7) for k in IDS}
    assert sorted(IDS, key=lambda k: -gain[k]) == [7, 3, 12]
    v.sort_by("gain", "skin", "hair")
    assert v.shown_ids == [7, 3, 12]
    v.sort_by("gain", "hair", "skin")
    assert v.shown_ids == [12, 3, 7]
    v.filter_classes(["nose"])  # the order stays; 7 (no nose) leaves
    assert v.shown_ids == [12, 3] and "2 faces with nose" in v.message.value
    v.filter_classes(["hat"])
    assert v.shown_ids == [12, 3] and "no face of this split has all of: hat" in v.message.value
    v.filter_classes([])
    v.sort_by("split")
    # jumping to a dataset id, and the point read-out
    assert v.go_to_id(12) and v.image_id == 12 and v.slider.value == 2
    assert not v.go_to_id(99) and "not in the val images" in v.message.value
    v.id_box.value = 3
    assert v.image_id == 3
    assert v.class_at(2, 8) == {"ground truth": "skin", "skin": "skin", "hair": "background"}
    v.point_box.value = "12, 0"
    assert "ground truth <b>background</b>; skin <b>background</b>; hair <b>hair</b>" in v.point_label.value

    # the cache is reused (no second pass), and a changed model file is scored again
    def no_second_pass(*a, **k):
        raise AssertionError("scored again")
    monkeypatch.setattr(scoring, "score_split", no_second_pass)
    again = widgets.MaskViewer(prep, split="val", models=models, image_size=S,
                               cache_dir=tmp_path / "cache", progress=False)
    again.sort_by("worst", "skin")
    assert again.shown_ids == [12, 3, 7]
    threshold_model(tmp_path / "skin.keras", SKIN, 1.0)  # a new file: another size or time
    fresh = widgets.MaskViewer(prep, split="val", models=models, cache_dir=tmp_path / "cache",
                               progress=False)
    with pytest.raises(AssertionError, match="scored again"):
        fresh.sort_by("worst", "skin")


@pytest.mark.slow
def test_models_viewer_prediction_is_what_predict_images_writes(prep, tmp_path):
    # One prediction path: each model's map in the viewer (called compiled, on its worker
    # thread) is, pixel for pixel, the label PNG `celebseg predict` writes for the photo.
    import keras

    from celebseg_utils.engine.predict import predict_images

    photos = [layout.image_path(tmp_path / "raw", k) for k in IDS]
    models = {}
    for seed in (3, 4):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((24, 24, 3))  # not the photos' 32 px: the resize is part of the path
        x = keras.layers.Rescaling(1 / 255.0)(inputs)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        model = keras.Model(inputs, keras.layers.Conv2D(L.NUM_CLASSES, 3, padding="same")(x))
        models[f"m{seed}"] = tmp_path / f"m{seed}.keras"
        model.save(models[f"m{seed}"])
        predict_images(models[f"m{seed}"], photos, tmp_path / f"pred{seed}", progress=False)
    v = widgets.MaskViewer(prep, split="val", models=models, progress=False)
    for i, k in enumerate(IDS):
        v.slider.value = i
        drawn = v.render()["models"]
        for seed in (3, 4):
            written = np.asarray(Image.open(tmp_path / f"pred{seed}" / f"{k}.png"))
            assert len(np.unique(written)) >= 3  # a model that says several things
            np.testing.assert_array_equal(drawn[f"m{seed}"]["photo_label"], written)
            np.testing.assert_array_equal(drawn[f"m{seed}"]["label"], written[::2, ::2])


@pytest.mark.slow
def test_show_photo_is_predict_align_and_saves_it(prep, tmp_path, monkeypatch):
    from celebseg_utils.engine.predict import predict_images
    from celebseg_utils.face.align import template_points
    from celebseg_utils.face.detect import Face

    class OneFace:  # a detector that finds one face where the template puts it, shifted
        def __call__(self, image):
            points = template_points(80) + np.array([20.0, 5.0])  # eyes 19 px apart
            return [Face((20, 5, 100, 85), points, 0.99)]

    rng = np.random.default_rng(5)
    photo = tmp_path / "mine.png"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(photo)
    model = threshold_model(tmp_path / "skin.keras", SKIN, 1.0)
    predict_images(model, [photo], tmp_path / "out", align=True, detector=OneFace(), progress=False)
    v = widgets.MaskViewer(prep, split="val", model=model, progress=False)
    parses = v.show_photo(photo, detector=OneFace())
    assert "1 face(s)" in v.message.value
    v.save_photo(tmp_path / "saved")
    written = np.asarray(Image.open(tmp_path / "out" / "mine.png"))
    assert {0, SKIN} <= set(np.unique(written).tolist())
    np.testing.assert_array_equal(parses["prediction"].labels, written)
    np.testing.assert_array_equal(parses["prediction"].overlay,
                                  np.asarray(Image.open(tmp_path / "out" / "mine_overlay.png")))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "saved" / "mine_prediction.png")), written)
    assert v.photo_canvas().shape == (S + 14, 2 * round(120 * S / 90) + 8, 3)

    # without mtcnn (the [align] extra) the viewer says how to install it
    monkeypatch.setitem(sys.modules, "mtcnn", None)
    with pytest.raises(CelebsegError, match=r"mtcnn .* not installed: pip install celebseg\[align\]"):
        v.show_photo(photo)
    assert "pip install celebseg[align]" in v.message.value


@pytest.mark.slow
def test_evaluate_writes_the_per_image_scores_the_viewer_reads(prep, tmp_path, monkeypatch):
    from celebseg_utils.engine import scoring
    from celebseg_utils.engine.evaluate import evaluate_model

    (tmp_path / "run").mkdir()
    model = threshold_model(tmp_path / "run" / "best.keras", SKIN, 1.0)
    results = evaluate_model(model, prep, split="val", progress=False)
    cached = scoring.read_per_image(tmp_path / "run" / "per_image_val.json")
    assert cached["ids"].tolist() == list(IDS) and cached["model"] == str(model.resolve())
    expected = [hand_mean_f1(k, "skin") for k in IDS]
    np.testing.assert_allclose(cached["mean_f1"], expected)
    # the per-image counts add up to the split's confusion matrix
    cm = np.asarray(results["confusion_matrix"])
    np.testing.assert_array_equal(cached["tp"].sum(0), np.diag(cm))
    # a viewer given the run folder reads it (no second pass), and takes the model it was
    # made of, here best.keras over a final.keras that says "hair"
    threshold_model(tmp_path / "run" / "final.keras", HAIR, -1.0)
    monkeypatch.setattr(scoring, "score_split", lambda *a, **k: 1 / 0)
    v = widgets.MaskViewer(prep, split="val", models={"skin": tmp_path / "run"}, progress=False)
    assert v.model_files["skin"] == tmp_path / "run" / "best.keras"
    v.sort_by("worst", "skin")
    assert v.shown_ids == [12, 7, 3]
    assert widgets.run_model_file(tmp_path / "run", "test").name == "best.keras"
    (tmp_path / "run" / "best.keras").unlink()  # no best.keras, no matching cache: final.keras
    assert widgets.run_model_file(tmp_path / "run", "val").name == "final.keras"


@pytest.mark.slow
def test_train_test_pass_writes_the_per_image_scores(prep, tmp_path):
    # train's test pass scores best.keras through the same loop and leaves the file beside it
    from celebseg_utils.engine import scoring
    from celebseg_utils.engine.train import _test_scores

    (tmp_path / "run").mkdir()
    model = threshold_model(tmp_path / "run" / "best.keras", SKIN, 1.0)
    results = _test_scores(model, str(prep), "val")
    cached = scoring.read_per_image(tmp_path / "run" / "per_image_val.json")
    assert cached["split"] == "val" and cached["protocol"] == "model_size"
    np.testing.assert_allclose(cached["mean_f1"], [hand_mean_f1(k, "skin") for k in IDS])
    np.testing.assert_array_equal(cached["tp"].sum(0), np.diag(np.asarray(results["confusion_matrix"])))

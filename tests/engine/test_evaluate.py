"""evaluate, results and compare: one confusion matrix over the split, the numpy metric's
numbers, the report files, runs side by side."""

import json
import warnings

import keras
import numpy as np
import pytest

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.cli import main
from celebseg_utils.errors import CelebsegError
from celebseg_utils.engine.compare import compare_runs, comparison_table, run_name
from celebseg_utils.engine.evaluate import evaluate_model, results_path
from celebseg_utils.engine.inference import load_model
from celebseg_utils.engine.results import averaged_label, read_results


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from celebseg_utils.data.prepare import prepare_dataset
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    root = tmp_path_factory.mktemp("eval")
    write_synthetic_dataset(root / "raw", 24, image_size=64, seed=3, progress=False)
    prepare_dataset(root / "raw", root / "prep", workers=1, progress=False)
    return root / "prep"


def tiny_model(seed=0, classes=L.NUM_CLASSES):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(classes, 1)(x))


def independent_counts(model, prepared, split="test"):
    """Per-class true/false positives and false negatives, counted pixel by pixel in numpy.

    Photos come from the same pipeline evaluate uses (one at a time); the truth is read
    straight from the label PNGs, so a mix-up of order or size in evaluate would show.
    """
    from PIL import Image

    from celebseg_utils.data.pipeline import make_dataset

    ids = layout.read_split(prepared, split)
    photos = [x.numpy() for x, _ in make_dataset(prepared, split, image_size=64, batch_size=1)]
    assert len(photos) == len(ids)
    tp, fp, fn = (np.zeros(L.NUM_CLASSES, np.int64) for _ in range(3))
    for k, photo in zip(ids, photos):
        truth = np.asarray(Image.open(layout.label_path(prepared, k)))
        pred = np.argmax(model.predict(photo, verbose=0)[0], axis=-1)
        assert truth.shape == pred.shape == (64, 64)
        for c in range(L.NUM_CLASSES):
            tp[c] += np.sum((truth == c) & (pred == c))
            fp[c] += np.sum((truth != c) & (pred == c))
            fn[c] += np.sum((truth == c) & (pred != c))
    return tp, fp, fn


def test_evaluate_equals_numpy_counts_on_the_same_images(prepared, tmp_path):
    model = tiny_model()
    out = tmp_path / "report" / "results.json"
    results = evaluate_model(model, prepared, split="test", out=out, batch_size=3,
                             progress=False)
    tp, fp, fn = independent_counts(model, prepared)
    cm = np.array(results["confusion_matrix"])
    n_pixels = len(layout.read_split(prepared, "test")) * 64 * 64
    assert cm.sum() == n_pixels
    np.testing.assert_array_equal(np.diag(cm), tp)
    np.testing.assert_array_equal(cm.sum(axis=0) - np.diag(cm), fp)
    np.testing.assert_array_equal(cm.sum(axis=1) - np.diag(cm), fn)
    assert tp.sum() > 0 and fp.sum() > 0  # a random model: neither all right nor all wrong
    # The scores, from the hand counts with the textbook formulas.
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        f1 = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
    assert results["miou"] == pytest.approx(np.nanmean(iou), abs=1e-12)
    assert results["mean_f1"] == pytest.approx(np.nanmean(f1[1:]), abs=1e-12)
    assert results["pixel_accuracy"] == pytest.approx(tp.sum() / n_pixels, abs=1e-12)
    for c, name in enumerate(L.CLASS_NAMES):
        for key, want in (("iou", iou[c]), ("f1", f1[c]), ("precision", precision[c]),
                          ("recall", recall[c])):
            got = results["per_class"][name][key]
            assert (got is None and np.isnan(want)) or got == pytest.approx(want, abs=1e-12)
    # One matrix over the split: the batch size changes nothing.
    again = evaluate_model(model, prepared, split="test", batch_size=1, progress=False)
    assert again["confusion_matrix"] == results["confusion_matrix"]
    assert results["split"] == "test" and results["num_images"] == len(layout.read_split(prepared, "test"))
    saved = json.loads(out.read_text())  # strict JSON: no NaN tokens
    assert "NaN" not in out.read_text() and saved["miou"] == pytest.approx(results["miou"])
    assert {p.name for p in out.parent.iterdir()} == {"results.json", "results.md",
                                                     "confusion_matrix.png", "per_class.png"}
    assert "| hair |" in (out.parent / "results.md").read_text()


def test_perfect_predictions_score_one(prepared, tmp_path, monkeypatch):
    """A model that returns the truth as logits scores 1.0 everywhere it is defined."""
    from celebseg_utils.engine import evaluate as E

    truths = {}
    import celebseg_utils.data.pipeline as D

    real = D.make_dataset

    def capture(*args, **kwargs):
        ds = real(*args, **kwargs)
        for images, labels in ds:
            truths[int(np.sum(images.numpy()))] = labels.numpy()[..., 0]
        return ds

    class Oracle(keras.Model):
        def __init__(self):
            super().__init__()
            self._input_shape = (None, 64, 64, 3)

        @property
        def input_shape(self):
            return (None, 64, 64, 3)

        @property
        def output_shape(self):
            return (None, 64, 64, L.NUM_CLASSES)

        def predict_on_batch(self, images):
            return np.eye(L.NUM_CLASSES)[truths[int(np.sum(np.asarray(images)))]] * 10

    monkeypatch.setattr(D, "make_dataset", capture)
    results = E.evaluate_model(Oracle(), prepared, split="val", progress=False)
    assert results["miou"] == pytest.approx(1.0) and results["mean_f1"] == pytest.approx(1.0)
    assert results["pixel_accuracy"] == pytest.approx(1.0)


def test_wrong_class_count_and_missing_model(prepared, tmp_path, capsys):
    with pytest.raises(CelebsegError, match="19"):
        evaluate_model(tiny_model(classes=5), prepared, progress=False)
    code = main(["evaluate", "--model", str(tmp_path / "nope.keras"), "--prepared", str(prepared)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nope.keras" in err[0]


def test_cli_evaluate_and_compare(prepared, tmp_path, capsys):
    runs = []
    for i, loss in enumerate(("sparse_ce", "dice")):
        run = tmp_path / f"run{i}"
        run.mkdir()
        with warnings.catch_warnings():  # Keras's own saving code trips a numpy-2 deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            tiny_model(seed=i).save(run / "final.keras")
        (run / "config.yaml").write_text(f"loss:\n  name: {loss}\n")
        assert main(["evaluate", "--model", str(run / "final.keras"),
                     "--prepared", str(prepared)]) == 0
        assert (run / "eval_test" / "results.json").exists()
        runs.append(run)
    capsys.readouterr()
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "sparse_ce IoU / F1" in table and "dice IoU / F1" in table
    assert "neck_l" not in table and "necklace *(rare)*" in table  # display names, not codes
    assert "sparse_ce P / R" in table and "| earring |" in table  # the rare classes' P / R table
    result = compare_runs(runs)
    first = json.loads((runs[0] / "eval_test" / "results.json").read_text())
    assert result["runs"]["sparse_ce"]["miou"] == first["miou"]
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 10_000
    with pytest.raises(CelebsegError, match="no results.json"):
        compare_runs([tmp_path])


@pytest.mark.slow
def test_evaluate_a_deeplab_model_from_the_factory(prepared):
    """Random-init MobileNetV3 DeepLabV3+ at 64 px: the real model class goes through too."""
    from celebseg_utils.models.deeplab import build_model

    model = build_model(backbone="mobilenet_v3_large", image_size=64)
    results = evaluate_model(model, prepared, split="val", batch_size=4, progress=False)
    cm = np.array(results["confusion_matrix"])
    assert cm.sum() == len(layout.read_split(prepared, "val")) * 64 * 64
    assert results["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())


def test_results_path_file_folder_or_beside_the_model(tmp_path):
    model = tmp_path / "run" / "final.keras"
    assert results_path(model, "val") == tmp_path / "run" / "eval_val" / "results.json"
    assert results_path(model, "val", tmp_path / "r.json") == tmp_path / "r.json"
    assert results_path(model, "val", tmp_path / "eval") == tmp_path / "eval" / "results.json"
    (tmp_path / "odd.json").mkdir()  # an existing folder wins over the suffix
    assert results_path(None, "test", tmp_path / "odd.json") == tmp_path / "odd.json" / "results.json"
    assert results_path(None, "test") is None


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


def test_the_one_loader_names_the_problem(tmp_path):
    with pytest.raises(CelebsegError, match="nope.keras not found"):
        load_model(tmp_path / "nope.keras")
    with pytest.raises(CelebsegError, match="folder without a final.keras"):
        load_model(tmp_path)
    (tmp_path / "cut.keras").write_bytes(b"PK\x03\x04 and then nothing")
    with pytest.raises(CelebsegError, match="cut.keras is not a .keras archive"):
        load_model(tmp_path / "cut.keras")
    with pytest.raises(CelebsegError, match="predicts 5 classes"):
        load_model(tiny_model(classes=5))
    model = tiny_model()
    assert load_model(model) is model


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

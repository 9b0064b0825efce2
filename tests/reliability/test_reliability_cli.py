"""Reliability: every command with unknown, missing, badly typed and contradictory options,
broken or foreign models, photos that are not photos, and awkward output paths.

Each case runs the real command in process (``run_cli``) inside its own ``tmp_path`` and,
where a package function decides, calls that too (``inference.load_model``,
``predict_images``). The common witnesses: a one-line ``error: ...`` with exit 2 naming the
culprit (``assert_user_error``), the workspace byte-identical afterwards (``tree_digest``),
no leftover temporary files (``partial_files``), and, on success, complete outputs.

Shared inputs are built once per module: a 6-face synthetic raw folder and its prepared
twin (64 px), a random-init DeepLabV3+ MobileNetV3-Large at 64 px, the same for 5 classes,
and (slow cases only) a 1-step training run.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import cli
from celebseg_utils.errors import CelebsegError
from harness import assert_user_error, partial_files, run_cli, tree_digest

SIZE = 64


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """``{"raw": synthetic raw root, "prep": its prepared folder}`` (6 faces, 64 px)."""
    from celebseg_utils.data.prepare import prepare_dataset
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data")
    raw = write_synthetic_dataset(root / "raw", 6, image_size=SIZE, progress=False)
    prepare_dataset(raw, root / "prep", workers=1, progress=False)
    return {"raw": Path(raw), "prep": root / "prep"}


def _save(model, path: Path) -> Path:
    with warnings.catch_warnings():  # Keras's own saving code trips a numpy-2 deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Good and bad model paths: ``good`` (19 classes), ``classes5``, ``truncated`` (the
    first half of the good .keras zip), ``text`` (a text file named .keras), ``folder``
    (a folder with no model), ``missing`` (no such file)."""
    from celebseg_utils.models.deeplab import build_model

    root = tmp_path_factory.mktemp("models")
    good = _save(build_model(backbone="mobilenet_v3_large", image_size=SIZE), root / "good.keras")
    five = _save(build_model(num_classes=5, backbone="mobilenet_v3_large", image_size=SIZE),
                 root / "five.keras")
    blob = good.read_bytes()
    (root / "truncated.keras").write_bytes(blob[: len(blob) // 2])
    (root / "text.keras").write_text("this is not a model\n")
    (root / "folder").mkdir()
    (root / "folder" / "notes.txt").write_text("no model in here\n")
    return {"good": good, "classes5": five, "truncated": root / "truncated.keras",
            "text": root / "text.keras", "folder": root / "folder",
            "missing": root / "missing.keras"}


TRAIN_SETS = ["image_size=64", "batch_size=2", "epochs=1", "steps_per_epoch=1",
              "validation_steps=1", "tensorboard=false"]


def _train_argv(prep: Path, run: Path, *extra: str) -> list[str]:
    sets = [f"data.prepared={prep}", *TRAIN_SETS, *extra]
    return ["train", "--preset", "cpu-demo", "--run-dir", run, "--quiet",
            *[a for s in sets for a in ("--set", s)]]


@pytest.fixture(scope="module")
def trained_run(data, tmp_path_factory) -> Path:
    """A finished 1-epoch, 1-step run of the cpu-demo preset at 64 px (about 20 s)."""
    run = tmp_path_factory.mktemp("runs") / "run"
    result = run_cli(_train_argv(data["prep"], run))
    assert result.code == 0, str(result)
    return run


def write_photo(path: Path, h: int = 40, w: int = 60, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def snapshot(root: Path) -> tuple[dict, list]:
    """Every file's digest and every folder (an empty folder left behind counts too)."""
    return tree_digest(root), sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                                     if p.is_dir())


def assert_untouched(root: Path, before: tuple[dict, list]) -> None:
    """``root`` byte-identical to ``before``, no folder added, no temporary files."""
    assert snapshot(root) == before
    assert partial_files(root) == []


def assert_label_outputs(out: Path, photos: dict[str, tuple[int, int]]) -> None:
    """Exactly ``<stem>.png`` + ``<stem>_overlay.png`` per photo (stem -> (w, h)), complete."""
    expected = sorted(n for s in photos for n in (f"{s}.png", f"{s}_overlay.png"))
    assert sorted(p.name for p in out.iterdir()) == expected
    for stem, size in photos.items():
        with Image.open(out / f"{stem}.png") as label:
            label.load()  # decodes every byte: a truncated PNG fails here
            assert label.mode == "L" and label.size == size
            assert np.asarray(label).max() < 19
        with Image.open(out / f"{stem}_overlay.png") as overlay:
            overlay.load()
            assert overlay.mode == "RGB" and overlay.size == size


# --------------------------------------------------------------------------- unknown options

def _full_argv(command: str, ws: Path) -> list:
    """A complete, valid command line of ``command`` whose outputs all go under ``ws``."""
    model, photo = ws / "m.keras", ws / "face.jpg"
    return {
        "synth": ["synth", "--out", ws / "raw", "--count", "3", "--image-size", "32"],
        "download": ["download", "--source", "archive", "--archive", ws / "a.zip",
                     "--out", ws / "dl"],
        "prepare": ["prepare", "--data-root", ws / "raw", "--out", ws / "prep"],
        "stats": ["stats", "--prepared", ws / "prep", "--figure", ws / "f.png"],
        "train": ["train", "--preset", "cpu-demo", "--run-dir", ws / "run"],
        "evaluate": ["evaluate", "--model", model, "--prepared", ws / "prep"],
        "compare": ["compare", ws / "run"],
        "predict": ["predict", "--model", model, photo, "--out", ws / "pred"],
        "export": ["export", "--model", model, "--format", "onnx", "--out", ws / "m.onnx"],
        "demo": ["demo", "--out", ws / "demo", "--count", "3"],
        "study": ["study", "--prepared", ws / "prep", "--out", ws / "study", "--seeds", "1"],
    }[command]


@pytest.mark.parametrize("command", [
    pytest.param(c, id=c, marks=pytest.mark.reliability(
        "cli", f"`celebseg {c} --bogus` (an unknown option"
               + (", required ones left out)" if c != "demo" else ")"),
        "one-line error naming `--bogus`, not the missing options; exit 2"))
    for c in cli.COMMANDS])
def test_unknown_option_is_named(command):
    line = assert_user_error(run_cli([command, "--bogus"]), "--bogus", "unrecognized")
    assert "required" not in line


@pytest.mark.parametrize("command", [
    pytest.param(c, id=c, marks=pytest.mark.reliability(
        "cli", f"a complete `celebseg {c}` command line plus `--bogus`",
        "one-line error naming `--bogus`, exit 2; nothing is written"))
    for c in cli.COMMANDS])
def test_unknown_option_stops_a_complete_command(command, tmp_path):
    assert_user_error(run_cli([*_full_argv(command, tmp_path), "--bogus"]), "--bogus")
    assert snapshot(tmp_path) == ({}, [])


@pytest.mark.reliability("cli", "`celebseg bogus` (an unknown command) and `celebseg --bogus`",
                         "one-line error naming it and listing the commands, exit 2")
def test_unknown_command_is_named():
    line = assert_user_error(run_cli(["bogus"]), "'bogus'")
    assert all(c in line for c in cli.COMMANDS)
    assert_user_error(run_cli(["--bogus"]), "--bogus")


# --------------------------------------------------------------------------- missing options

MISSING = [  # command line without one required option, what the error must name
    ("synth", ["synth", "--count", "3"], ["--out"]),
    ("download", ["download", "--source", "archive", "--archive", "a.zip"], ["--out"]),
    ("prepare", ["prepare", "--out", "{ws}/prep"], ["--data-root"]),
    ("stats", ["stats"], ["--prepared"]),
    ("train", ["train", "--set", "epochs=1"], ["--config", "--preset"]),
    ("evaluate", ["evaluate", "--model", "{ws}/m.keras"], ["--prepared"]),
    ("compare", ["compare", "--names", "a"], ["RUN_DIR"]),
    ("predict", ["predict", "--model", "{ws}/m.keras", "--out", "{ws}/pred"], ["IMAGE"]),
    ("export", ["export", "--model", "{ws}/m.keras", "--format", "onnx"], ["--out"]),
    ("study", ["study", "--out", "{ws}/study"], ["--prepared"]),
]


@pytest.mark.parametrize("argv, names", [
    pytest.param(argv, names, id=cmd, marks=pytest.mark.reliability(
        "cli", f"`celebseg {cmd}` without {' / '.join(f'`{n}`' for n in names)}",
        "one-line error naming the missing option, exit 2, nothing written"))
    for cmd, argv, names in MISSING])
def test_missing_required_option_is_named(argv, names, tmp_path):
    line = assert_user_error(run_cli([a.format(ws=tmp_path) for a in argv]), *names)
    assert "required" in line
    assert snapshot(tmp_path) == ({}, [])


# --------------------------------------------------------------------------- bad values

BAD_VALUES = [  # id, argv (outputs under {ws}), fragments the error must name
    ("synth-size-abc", ["synth", "--out", "{ws}/raw", "--count", "3", "--image-size", "abc"],
     ["--image-size", "abc"]),
    ("synth-count-neg", ["synth", "--out", "{ws}/raw", "--count", "-1"], ["--count", "-1"]),
    ("synth-count-0", ["synth", "--out", "{ws}/raw", "--count", "0"], ["--count", "0"]),
    ("synth-size-0", ["synth", "--out", "{ws}/raw", "--count", "3", "--image-size", "0"],
     ["--image-size", "got 0"]),
    ("synth-size-neg", ["synth", "--out", "{ws}/raw", "--count", "3", "--image-size", "-8"],
     ["--image-size", "-8"]),
    ("synth-workers-0", ["synth", "--out", "{ws}/raw", "--count", "3", "--image-size", "32",
                         "--workers", "0"], ["--workers", "got 0"]),
    ("download-source", ["download", "--source", "ftp", "--out", "{ws}/dl"], ["--source", "ftp"]),
    ("prepare-workers-0", ["prepare", "--data-root", "{raw}", "--out", "{ws}/prep",
                           "--workers", "0"], ["--workers", "got 0"]),
    ("prepare-workers-abc", ["prepare", "--data-root", "{raw}", "--out", "{ws}/prep",
                             "--workers", "many"], ["--workers", "many"]),
    ("stats-split", ["stats", "--prepared", "{prep}", "--split", "holdout",
                     "--figure", "{ws}/f.png"], ["--split", "holdout"]),
    ("train-set-abc", ["train", "--preset", "cpu-demo", "--run-dir", "{ws}/run",
                       "--set", "batch_size=abc"], ["batch_size", "integer", "abc"]),
    ("train-set-size-neg", ["train", "--preset", "cpu-demo", "--run-dir", "{ws}/run",
                            "--set", "image_size=-64"], ["image_size", "-64", "positive"]),
    ("train-set-batch-0", ["train", "--preset", "cpu-demo", "--run-dir", "{ws}/run",
                           "--set", "batch_size=0"], ["batch_size=0", "positive"]),
    ("train-set-no-value", ["train", "--preset", "cpu-demo", "--set", "epochs"],
     ["--set 'epochs'", "KEY=VALUE"]),
    ("evaluate-batch-0", ["evaluate", "--model", "{model}", "--prepared", "{prep}",
                          "--out", "{ws}/eval", "--batch-size", "0"], ["--batch-size", "0"]),
    ("evaluate-batch-abc", ["evaluate", "--model", "{model}", "--prepared", "{prep}",
                            "--out", "{ws}/eval", "--batch-size", "abc"], ["--batch-size", "abc"]),
    ("evaluate-split", ["evaluate", "--model", "{model}", "--prepared", "{prep}",
                        "--split", "dev"], ["--split", "dev"]),
    ("predict-batch-0", ["predict", "--model", "{model}", "{ws}/in/face.jpg", "--out",
                         "{ws}/pred", "--batch-size", "0"], ["--batch-size", "0"]),
    ("predict-tta", ["predict", "--model", "{model}", "{ws}/in/face.jpg", "--out",
                     "{ws}/pred", "--tta", "rotate"], ["--tta", "rotate"]),
    ("export-format", ["export", "--model", "{model}", "--format", "coreml", "--out",
                       "{ws}/m.mlmodel"], ["--format", "coreml"]),
    ("demo-count-neg", ["demo", "--out", "{ws}/demo", "--count", "-1"], ["--count", "-1"]),
    ("demo-count-abc", ["demo", "--out", "{ws}/demo", "--count", "lots"], ["--count", "lots"]),
    ("demo-size-0", ["demo", "--out", "{ws}/demo", "--count", "3", "--image-size", "0"],
     ["--image-size", "got 0"]),
    ("demo-size-abc", ["demo", "--out", "{ws}/demo", "--image-size", "abc"],
     ["--image-size", "abc"]),
    ("demo-epochs-0", ["demo", "--out", "{ws}/demo", "--count", "3", "--epochs", "0"],
     ["--epochs", "0"]),
    ("prepare-split-2", ["prepare", "--images", "{ws}", "--labels", "{ws}", "--out", "{ws}/prep",
                         "--split", "train=2"], ["--split", "between 0 and 1"]),
    ("prepare-split-sum", ["prepare", "--images", "{ws}", "--labels", "{ws}", "--out",
                           "{ws}/prep", "--split", "train=0.5"], ["--split", "sum to 0.5"]),
    ("study-arm", ["study", "--prepared", "{prep}", "--out", "{ws}/study", "--arms", "dcie"],
     ["unknown arm 'dcie'"]),
    ("study-seeds-0", ["study", "--prepared", "{prep}", "--out", "{ws}/study", "--seeds", "0"],
     ["--seeds", "got 0"]),
    ("study-preset", ["study", "--prepared", "{prep}", "--out", "{ws}/study", "--preset",
                      "gpu-huge"], ["unknown preset 'gpu-huge'"]),
    ("study-set-abc", ["study", "--prepared", "{prep}", "--out", "{ws}/study", "--set",
                       "batch_size=abc"], ["batch_size", "abc"]),
    ("study-not-prepared", ["study", "--prepared", "{ws}", "--out", "{ws}/study"],
     ["not a prepared folder"]),
]


def _shown(argv) -> str:
    """A case's command line for the table: placeholders as short names."""
    names = {"{ws}/": "", "{raw}": "RAW", "{prep}": "PREP", "{model}": "m.keras"}
    text = " ".join(argv)
    for key, value in names.items():
        text = text.replace(key, value)
    return f"`celebseg {text}`"


def _fill(argv, ws, data=None, models=None) -> list[str]:
    values = {"ws": ws}
    if data is not None:
        values.update(raw=data["raw"], prep=data["prep"])
    if models is not None:
        values.update(model=models["good"])
    return [str(a).format(**values) for a in argv]


@pytest.mark.parametrize("argv, names", [
    pytest.param(argv, names, id=case_id, marks=pytest.mark.reliability(
        "cli", _shown(argv),
        "one-line error naming the option and the bad value, exit 2, nothing written"))
    for case_id, argv, names in BAD_VALUES])
def test_bad_value_is_named(argv, names, tmp_path, data, models):
    write_photo(tmp_path / "in" / "face.jpg")
    shared = {k: snapshot(v) for k, v in (("ws", tmp_path), ("data", data["prep"].parent),
                                          ("models", models["good"].parent))}
    assert_user_error(run_cli(_fill(argv, tmp_path, data, models)), *names)
    for key, root in (("ws", tmp_path), ("data", data["prep"].parent),
                      ("models", models["good"].parent)):
        assert_untouched(root, shared[key])


# --------------------------------------------------------------------------- contradictions

CONTRADICTIONS = [  # id, tried, argv, fragments; the workspace must stay unchanged
    ("train-config-and-preset", "`train --config F --preset cpu-demo` (two config sources)",
     ["train", "--config", "{ws}/c.yaml", "--preset", "cpu-demo"], ["--config", "--preset"]),
    ("train-set-unknown-key", "`train --preset cpu-demo --set batchsize=4` (an unknown key)",
     ["train", "--preset", "cpu-demo", "--set", "batchsize=4", "--run-dir", "{ws}/run"],
     ["batchsize", "batch_size"]),
    ("train-set-breaks-preset", "`train --preset cpu-demo --set model=3` (a section as a value)",
     ["train", "--preset", "cpu-demo", "--set", "model=3", "--run-dir", "{ws}/run"],
     ["model", "mapping"]),
    ("train-set-unknown-loss", "`train --preset study-dice --set loss.name=dcie`",
     ["train", "--preset", "study-dice", "--set", "loss.name=dcie", "--run-dir", "{ws}/run"],
     ["loss.name", "dcie", "dice"]),
    ("train-set-unknown-backbone", "`train --preset cpu-demo --set model.backbone=resnet18`",
     ["train", "--preset", "cpu-demo", "--set", "model.backbone=resnet18", "--set",
      "data.prepared={prep}", "--run-dir", "{ws}/run"], ["model.backbone", "resnet18"]),
    ("train-preset-placeholder", "`train --preset tpu` without setting its bucket placeholder",
     ["train", "--preset", "tpu", "--run-dir", "{ws}/run"], ["data.prepared", "YOUR_BUCKET"]),
    ("train-raw-as-prepared", "`train --set data.prepared=RAW` (the raw folder, not prepared)",
     ["train", "--preset", "cpu-demo", "--set", "data.prepared={raw}", "--run-dir", "{ws}/run"],
     ["data.prepared", "prepare.json"]),
    ("download-archive-with-kaggle", "`download --source kaggle --archive a.zip`",
     ["download", "--source", "kaggle", "--archive", "{ws}/a.zip", "--out", "{ws}/dl"],
     ["--archive", "--source kaggle"]),
    ("download-archive-with-drive", "`download --source drive --archive a.zip`",
     ["download", "--source", "drive", "--archive", "{ws}/a.zip", "--out", "{ws}/dl"],
     ["--archive", "--source drive"]),
    ("download-archive-without-file", "`download --source archive` without `--archive`",
     ["download", "--source", "archive", "--out", "{ws}/dl"], ["--archive"]),
    ("prepare-swapped-folders", "`prepare --data-root PREPARED` (prepared folder given as raw)",
     ["prepare", "--data-root", "{prep}", "--out", "{ws}/prep2"], ["CelebA-HQ-img", "{prep}"]),
    ("prepare-out-is-a-file", "`prepare --out F` where F is an existing file",
     ["prepare", "--data-root", "{raw}", "--out", "{ws}/note.txt"], ["note.txt"]),
    ("synth-out-is-a-file", "`synth --out F` where F is an existing file",
     ["synth", "--out", "{ws}/note.txt", "--count", "3", "--image-size", "32"],
     ["note.txt", "file"]),
    ("stats-not-prepared", "`stats --prepared RAW` (the raw folder, not prepared)",
     ["stats", "--prepared", "{raw}", "--figure", "{ws}/f.png"], ["{raw}", "prepare"]),
    ("evaluate-not-prepared", "`evaluate --prepared RAW` (the raw folder, not prepared)",
     ["evaluate", "--model", "{model}", "--prepared", "{raw}", "--out", "{ws}/eval"],
     ["{raw}", "prepare.json"]),
    ("compare-names-count", "`compare RUN --names a b` (two names for one run)",
     ["compare", "{ws}/run_a", "--names", "a", "b"], ["--names", "2", "1"]),
    ("compare-no-results", "`compare DIR` where DIR holds no results.json",
     ["compare", "{ws}/in"], ["results.json", "celebseg evaluate"]),
    ("predict-out-is-a-file", "`predict --out F` where F is an existing file",
     ["predict", "--model", "{model}", "{ws}/in/face.jpg", "--out", "{ws}/note.txt"],
     ["--out", "note.txt", "file"]),
    ("predict-overwrites-photo", "`predict in/face.png --out in` (a label map would replace the "
     "photo)", ["predict", "--model", "{model}", "{ws}/in/face.png", "--out", "{ws}/in"],
     ["face.png", "overwrite"]),
    ("predict-same-stem", "`predict a/face.jpg b/face.jpg` (two outputs named face.png)",
     ["predict", "--model", "{model}", "{ws}/in/face.jpg", "{ws}/in/face.png", "--out",
      "{ws}/pred"], ["'face'", "overwrite"]),
    ("export-savedmodel-to-file", "`export --format savedmodel --out F` (F an existing file)",
     ["export", "--model", "{model}", "--format", "savedmodel", "--out", "{ws}/note.txt"],
     ["note.txt", "folder"]),
    ("export-onnx-to-folder", "`export --format onnx --out D` (D an existing folder)",
     ["export", "--model", "{model}", "--format", "onnx", "--out", "{ws}/in"],
     ["--out", "folder", "model.onnx"]),
    ("export-savedmodel-over-user-folder", "`export --format savedmodel --out D` (D a folder "
     "of the user's files)", ["export", "--model", "{model}", "--format", "savedmodel",
                              "--out", "{ws}/in"], ["--out", "not a SavedModel"]),
    ("demo-set-unknown-key", "`demo --set batchsize=4` (an unknown training key)",
     ["demo", "--out", "{ws}/demo", "--set", "batchsize=4"], ["batchsize"]),
]


@pytest.mark.parametrize("argv, names", [
    pytest.param(argv, names, id=case_id, marks=pytest.mark.reliability(
        "cli", tried, "one-line error naming the clash, exit 2; workspace, data and model "
                      "byte-identical, no run dir"))
    for case_id, tried, argv, names in CONTRADICTIONS])
def test_contradiction_is_refused(argv, names, tmp_path, data, models):
    write_photo(tmp_path / "in" / "face.jpg")
    write_photo(tmp_path / "in" / "face.png", seed=1)
    (tmp_path / "note.txt").write_text("the user's notes\n")
    (tmp_path / "c.yaml").write_text("epochs: 1\n")
    (tmp_path / "run_a").mkdir()
    roots = (tmp_path, data["prep"].parent, models["good"].parent)
    before = [snapshot(r) for r in roots]
    values = dict(ws=tmp_path, raw=data["raw"], prep=data["prep"], model=models["good"])
    assert_user_error(run_cli([a.format(**values) for a in argv]),
                      *[n.format(**values) for n in names])
    for root, digest in zip(roots, before):
        assert_untouched(root, digest)
    assert not (tmp_path / "run").exists() and not (tmp_path / "demo").exists()


@pytest.mark.reliability("cli", "`stats --figure D` where D is an existing folder",
                         "one-line error naming the folder, exit 2, folder unchanged")
def test_stats_figure_that_is_a_folder(tmp_path, data):
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "keep.png").write_bytes(b"keep")
    before = snapshot(tmp_path)
    assert_user_error(run_cli(["stats", "--prepared", data["prep"], "--figure",
                               tmp_path / "figs"]), "figs")
    assert_untouched(tmp_path, before)


@pytest.mark.reliability("cli", "`stats --figure F` with no image suffix (`freq`, `freq.xyz`)",
                         "one-line error naming the path and the formats, exit 2, nothing written")
def test_stats_figure_without_an_image_suffix(tmp_path, data):
    before = snapshot(tmp_path)
    for name in ("freq", "freq.xyz"):
        assert_user_error(run_cli(["stats", "--prepared", data["prep"], "--figure",
                                   tmp_path / name]), name, ".png")
    assert_untouched(tmp_path, before)


@pytest.mark.parametrize("content, names", [
    pytest.param("{not json", ["not valid JSON"], id="corrupt", marks=pytest.mark.reliability(
        "cli", "`compare RUN` whose results.json is cut short (invalid JSON)",
        "one-line error naming the file and `celebseg evaluate`, exit 2")),
    pytest.param('{"miou": 0.5}', ["mean_f1", "per_class"], id="foreign",
                 marks=pytest.mark.reliability(
                     "cli", "`compare RUN` whose results.json lacks the scores (another tool's)",
                     "one-line error naming the missing keys, exit 2")),
])
def test_compare_refuses_broken_results(content, names, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(content)
    (run / "config.yaml").write_text("loss: [unclosed\n")  # a damaged config: name falls back
    before = snapshot(tmp_path)
    assert_user_error(run_cli(["compare", run, "--out", tmp_path / "cmp"]),
                      str(run / "results.json"), *names)
    assert_untouched(tmp_path, before)


@pytest.mark.slow
@pytest.mark.reliability("cli", "`evaluate --out D` where D is an existing folder",
                         "success: results.json, results.md and both figures written inside D")
def test_evaluate_out_folder_gets_the_report(tmp_path, data, models):
    out = tmp_path / "my eval"
    out.mkdir()
    result = run_cli(["evaluate", "--model", models["good"], "--prepared", data["prep"],
                      "--out", out])
    assert result.code == 0, str(result)
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.png", "per_class.png",
                                                     "results.json", "results.md"]
    assert f"results: {out / 'results.json'}" in result.out
    assert partial_files(tmp_path) == []


# --------------------------------------------------------------------------- models

MODEL_PROBLEMS = [  # key of the models fixture, tried, fragments of the error
    ("missing", "a `--model` path that does not exist", ["missing.keras", "not found"]),
    ("folder", "a `--model` folder holding no model", ["folder", "final.keras"]),
    ("truncated", "a `--model` .keras zip cut in half (interrupted copy)",
     ["truncated.keras", "not a .keras archive"]),
    ("text", "a `--model` text file named .keras", ["text.keras", "not a .keras archive"]),
    ("classes5", "a `--model` trained for 5 classes, not 19", ["five.keras", "5 classes", "19"]),
]


def _model_argv(command: str, model, ws: Path, data) -> list:
    return {"evaluate": ["evaluate", "--model", model, "--prepared", data["prep"]],
            "predict": ["predict", "--model", model, ws / "in" / "face.jpg", "--out",
                        ws / "pred"],
            "export": ["export", "--model", model, "--format", "savedmodel", "--out",
                       ws / "sm"]}[command]


@pytest.mark.parametrize("command, problem, names", [
    pytest.param(cmd, key, names, id=f"{cmd}-{key}", marks=[pytest.mark.reliability(
        "cli", f"`{cmd}` with {tried}",
        "one-line error naming the file and the problem, exit 2, no output; "
        "`inference.load_model` raises CelebsegError too"),
        # loading a whole model to count its classes: seconds each (tests/README.md)
        *([pytest.mark.slow] if key == "classes5" else [])])
    for cmd in ("evaluate", "predict", "export") for key, tried, names in MODEL_PROBLEMS])
def test_bad_model_is_refused(command, problem, names, tmp_path, data, models):
    from celebseg_utils.engine.inference import load_model as load_model_checked

    write_photo(tmp_path / "in" / "face.jpg")
    roots = (tmp_path, models["good"].parent, data["prep"].parent)
    before = [snapshot(r) for r in roots]
    line = assert_user_error(run_cli(_model_argv(command, models[problem], tmp_path, data)),
                             *names)
    assert "Traceback" not in line
    for root, digest in zip(roots, before):
        assert_untouched(root, digest)
    with pytest.raises(CelebsegError, match=names[-1]):
        load_model_checked(models[problem])


@pytest.mark.slow
@pytest.mark.reliability("cli", "`train` again into a finished run dir with another loss",
                         "one-line error naming the run dir and `loss.name`, exit 2; run "
                         "byte-identical")
def test_train_into_a_run_of_another_config(trained_run, data):
    before = snapshot(trained_run)
    assert_user_error(run_cli(_train_argv(data["prep"], trained_run, "loss.name=dice")),
                      str(trained_run), "another config", "loss.name")
    assert_untouched(trained_run, before)


@pytest.mark.slow
@pytest.mark.reliability("cli", "`train` again, same config, into its finished run dir",
                         "success without training: says the run is complete; run "
                         "byte-identical")
def test_train_again_into_its_finished_run(trained_run, data):
    before = snapshot(trained_run)
    result = run_cli(_train_argv(data["prep"], trained_run))
    assert result.code == 0, str(result)
    assert "is complete" in result.out
    assert_untouched(trained_run, before)


@pytest.mark.slow
@pytest.mark.reliability("cli", "`evaluate --model RUN_DIR` and `predict --model RUN_DIR` "
                         "(a run folder, not a file)",
                         "success with its final.keras: RUN_DIR/eval_test/ report, label maps "
                         "at the photo's size")
def test_run_dir_as_model(trained_run, data, tmp_path):
    result = run_cli(["evaluate", "--model", trained_run, "--prepared", data["prep"]])
    assert result.code == 0, str(result)
    report = trained_run / "eval_test"
    assert sorted(p.name for p in report.iterdir()) == ["confusion_matrix.png", "per_class.png",
                                                        "results.json", "results.md"]
    assert json.loads((report / "results.json").read_text())["model"] == str(
        trained_run / "final.keras")
    photo = write_photo(tmp_path / "in" / "face.jpg", 50, 70)
    result = run_cli(["predict", "--model", trained_run, photo, "--out", tmp_path / "pred",
                      "--no-progress"])
    assert result.code == 0, str(result)
    assert_label_outputs(tmp_path / "pred", {"face": (70, 50)})
    # the per-image scores go beside the model, for the viewer's worst-first order
    per_image = json.loads((trained_run / "per_image_test.json").read_text())
    assert per_image["model"] == str((trained_run / "final.keras").resolve())
    shutil.rmtree(report)  # the other cases expect the run as training left it
    (trained_run / "per_image_test.json").unlink()


# --------------------------------------------------------------------------- images

def _bad_image(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "text-jpg":
        path = folder / "notes.jpg"
        path.write_text("this is not a photo\n")
    elif kind == "empty-png":
        path = folder / "empty.png"
        path.write_bytes(b"")
    else:
        path = truncated_jpeg(folder / "cut.jpg")
    return path


@pytest.mark.parametrize("kind, name, reason", [
    pytest.param("text-jpg", "notes.jpg", "not a readable image", id="text-jpg",
                 marks=pytest.mark.reliability("cli", "`predict notes.jpg` (a text file named "
                                               ".jpg)", "one-line error naming the file, "
                                               "exit 2, no output folder")),
    pytest.param("empty-png", "empty.png", "not a readable image", id="empty-png",
                 marks=pytest.mark.reliability("cli", "`predict empty.png` (a zero-byte PNG)",
                                               "one-line error naming the file, exit 2, no "
                                               "output folder")),
    pytest.param("truncated-jpg", "cut.jpg", "not a readable image", id="truncated-jpg",
                 marks=pytest.mark.reliability("cli", "`predict cut.jpg` (a JPEG cut in half)",
                                               "one-line error naming the file, exit 2, no "
                                               "output folder")),
])
def test_not_an_image_is_refused(kind, name, reason, tmp_path, models):
    bad = _bad_image(kind, tmp_path / "in")
    before = snapshot(tmp_path)
    assert_user_error(run_cli(["predict", "--model", models["good"], bad, "--out",
                               tmp_path / "pred"]), name, reason)
    assert_untouched(tmp_path, before)


def _mixed_folder(root: Path) -> Path:
    """Two good photos (40x60, 50x50), three bad ones and a stray text file."""
    folder = root / "photos"
    write_photo(folder / "good_a.jpg", 40, 60)
    write_photo(folder / "good_b.png", 50, 50, seed=1)
    for kind in ("text-jpg", "empty-png", "truncated-jpg"):
        _bad_image(kind, folder)
    (folder / "README.txt").write_text("not a photo, and not named like one\n")
    return folder


@pytest.mark.reliability("cli", "`predict FOLDER` mixing 2 good and 3 bad photos (default)",
                         "stops: one-line error naming the first bad file and `--skip-bad`, "
                         "exit 2, nothing written")
def test_mixed_folder_stops_before_writing(tmp_path, models):
    from celebseg_utils.engine.predict import predict_images

    folder = _mixed_folder(tmp_path)
    before = snapshot(tmp_path)
    assert_user_error(run_cli(["predict", "--model", models["good"], folder, "--out",
                               tmp_path / "pred"]), "cut.jpg", "--skip-bad", "nothing was written")
    assert_untouched(tmp_path, before)
    with pytest.raises(CelebsegError, match="cut.jpg"):
        predict_images(models["good"], [folder], tmp_path / "pred", progress=False)
    assert_untouched(tmp_path, before)


@pytest.mark.reliability("cli", "`predict FOLDER --skip-bad` mixing 2 good and 3 bad photos",
                         "exit 0; a `warning:` line per bad file; both good photos' label map "
                         "and overlay complete, at their size")
def test_mixed_folder_skip_bad_writes_the_good_ones(tmp_path, models):
    folder = _mixed_folder(tmp_path)
    photos = tree_digest(folder)
    out = tmp_path / "out"
    result = run_cli(["predict", "--model", models["good"], folder, "--out", out,
                      "--skip-bad", "--no-progress"])
    assert result.code == 0, str(result)
    assert "Traceback" not in result.err
    warned = [ln for ln in result.err.splitlines() if ln.startswith("warning: skipped")]
    assert len(warned) == 3
    for name, line in zip(("cut.jpg", "empty.png", "notes.jpg"), warned):
        assert name in line
    assert_label_outputs(out, {"good_a": (60, 40), "good_b": (50, 50)})
    assert result.out.split() == [str(out / n) for n in ("good_a.png", "good_a_overlay.png",
                                                         "good_b.png", "good_b_overlay.png")]
    assert tree_digest(folder) == photos
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("case", [
    pytest.param("all-bad", id="all-bad", marks=pytest.mark.reliability(
        "cli", "`predict FOLDER --skip-bad` where every photo is unreadable",
        "one-line error saying none is readable, exit 2, nothing written")),
    pytest.param("no-images", id="no-images", marks=pytest.mark.reliability(
        "cli", "`predict FOLDER` holding no .jpg/.png at all",
        "one-line error naming the folder, exit 2, nothing written")),
])
def test_folder_without_usable_photos(case, tmp_path, models):
    folder = tmp_path / "photos"
    if case == "all-bad":
        for kind in ("text-jpg", "empty-png"):
            _bad_image(kind, folder)
        names = ["none of the 2 images"]
    else:
        folder.mkdir()
        (folder / "notes.txt").write_text("x\n")
        names = [str(folder), "no images"]
    before = snapshot(tmp_path)
    assert_user_error(run_cli(["predict", "--model", models["good"], folder, "--out",
                               tmp_path / "pred", "--skip-bad"]), *names)
    assert_untouched(tmp_path, before)


# --------------------------------------------------------------------------- awkward paths

@pytest.mark.reliability("cli", "`predict` with photo and `--out` paths holding spaces and "
                         "non-ASCII (`fäce 1 顔.jpg`, `out dir/ünï 顔`)",
                         "success: both outputs under the exact names, complete, at the "
                         "photo's size; printed")
def test_predict_paths_with_spaces_and_unicode(tmp_path, models):
    photo = write_photo(tmp_path / "in pút" / "fäce 1 顔.jpg", 45, 30)
    out = tmp_path / "out dir" / "ünï 顔"
    result = run_cli(["predict", "--model", models["good"], photo, "--out", out, "--no-progress"])
    assert result.code == 0, str(result)
    assert_label_outputs(out, {"fäce 1 顔": (30, 45)})
    assert result.out.splitlines() == [str(out / "fäce 1 顔.png"),
                                       str(out / "fäce 1 顔_overlay.png")]
    assert partial_files(tmp_path) == []


@pytest.mark.slow
@pytest.mark.reliability("cli", "`export --format savedmodel --out 'exp dir/sävéd 顔'` (spaces, "
                         "non-ASCII)", "success: a SavedModel there whose logits match Keras's "
                         "(to 1e-4 of their scale); nothing else beside it")
def test_export_path_with_spaces_and_unicode(tmp_path, models):
    from celebseg_utils.engine.export import run_savedmodel
    from celebseg_utils.engine.train import load_trained_model

    out = tmp_path / "exp dir" / "sävéd 顔"
    result = run_cli(["export", "--model", models["good"], "--format", "savedmodel",
                      "--out", out])
    assert result.code == 0, str(result)
    assert result.out.strip() == str(out)
    assert [p.name for p in out.parent.iterdir()] == ["sävéd 顔"]
    images = np.random.default_rng(3).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    expected = np.asarray(load_trained_model(models["good"])(images, training=False))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(run_savedmodel(out, images), expected, atol=1e-4 * scale)
    assert partial_files(tmp_path) == []


def test_truncated_model_fixture_is_really_a_broken_zip(models):
    """The 'truncated' case is about a cut zip, so make sure the fixture is one."""
    assert zipfile.is_zipfile(models["good"])
    assert not zipfile.is_zipfile(models["truncated"])
    assert models["truncated"].stat().st_size == models["good"].stat().st_size // 2



@pytest.mark.reliability("cli", "`evaluate --prepared P` whose prepare.json is cut short",
                         "one-line error naming prepare.json, exit 2, nothing written")
def test_evaluate_with_a_damaged_prepare_json(tmp_path, data, models):
    prep = tmp_path / "prep"
    shutil.copytree(data["prep"], prep)
    text = (prep / "prepare.json").read_text()
    (prep / "prepare.json").write_text(text[: len(text) // 2])
    before = snapshot(tmp_path)
    assert_user_error(run_cli(["evaluate", "--model", models["good"], "--prepared", prep,
                               "--out", tmp_path / "eval"]), "prepare.json")
    assert_untouched(tmp_path, before)

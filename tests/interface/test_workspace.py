"""celebseg_utils.interface.workspace: the runtime, Drive and Kaggle roots, and ensure_data's
four cases, played with a temporary folder as "My Drive" and fresh folders as runtimes."""

from __future__ import annotations

import json
import os
import sys
import tarfile
import types
from pathlib import Path

import pytest

from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.interface import workspace

FACES = 10  # synthetic faces of the archive the tests build: 8 / 1 / 1 in the splits


@pytest.fixture(autouse=True)
def no_drive_nor_kaggle(monkeypatch):
    """Each test says what it runs in: no Drive variable, no Kaggle, no Colab of the host."""
    for name in (workspace.DRIVE_ROOT_VARIABLE, "KAGGLE_KERNEL_RUN_TYPE", "COLAB_RELEASE_TAG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(workspace, "_told", set())


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The SMOKE stand-in for the download: a zip of synthetic faces (made once)."""
    return workspace.smoke_archive(tmp_path_factory.mktemp("source"), count=FACES, image_size=32)


def runtime(tmp_path, monkeypatch, name):
    """A fresh runtime: an empty working folder of its own."""
    folder = tmp_path / name
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _labels(prepared: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((prepared / "labels").glob("*.png"))}


# --------------------------------------------------------------------------- ensure_data's four cases

def test_nothing_kept_stops_with_one_line_naming_notebook_01(tmp_path, monkeypatch):
    runtime(tmp_path, monkeypatch, "rt")
    keep = tmp_path / "drive" / "celebseg"
    with pytest.raises(workspace.NotebookStop) as stop:
        workspace.ensure_data("data/prepared", keep=keep, progress=False)
    message = str(stop.value)
    assert "\n" not in message
    assert f"run notebook {workspace.DOWNLOAD_NOTEBOOK} first" in message and str(keep) in message
    # Jupyter shows this line alone, no traceback; the CLI treats it as any input error.
    assert stop.value._render_traceback_() == [f"NotebookStop: {message}"]
    assert isinstance(stop.value, CelebsegError)
    assert not Path("data").exists() and not keep.exists()  # nothing written on the way


def test_kept_archive_is_prepared_kept_then_restored_on_a_fresh_runtime(tmp_path, monkeypatch, archive):
    import shutil

    keep = tmp_path / "drive" / "celebseg"
    (keep / "data").mkdir(parents=True)
    shutil.copy(archive, keep / "data" / "CelebAMask-HQ.zip")

    # Case 3: only the archive is kept: unpacked, prepared, and the prepared form kept.
    first = runtime(tmp_path, monkeypatch, "rt1")
    ready = workspace.ensure_data("data/prepared", keep=keep, workers=1, progress=False)
    assert (ready.how, ready.source) == ("prepared", keep / "data" / "CelebAMask-HQ.zip")
    assert ready.summary["num_images"] == FACES and ready.summary["written"] == FACES
    kept = keep / "data" / workspace.PREPARED_ARCHIVE
    ids = [k for s in layout.SPLITS for k in layout.read_split(first / "data/prepared", s)]
    assert len(ids) == FACES
    with tarfile.open(kept) as tar:
        names = set(tar.getnames())
    assert {f"prepared/CelebA-HQ-img/{k}.jpg" for k in ids} <= names
    assert {f"prepared/labels/{k}.png" for k in ids} <= names
    assert {"prepared/prepare.json", "prepared/splits/train.txt"} <= names
    assert not any(n.startswith("prepared/.") for n in names)

    # Case 1: on this runtime's disk already: nothing to do, nothing rewritten on Drive.
    stamp = kept.stat().st_mtime_ns
    again = workspace.ensure_data("data/prepared", keep=keep, progress=False)
    assert again.how == "local" and kept.stat().st_mtime_ns == stamp

    # Case 2: a fresh runtime restores the kept tar; an earlier restore cut short is redone.
    second = runtime(tmp_path, monkeypatch, "rt2")
    (second / "data" / ".prepared.restore" / "prepared").mkdir(parents=True)
    restored = workspace.ensure_data("data/prepared", keep=keep, progress=False)
    assert (restored.how, restored.source) == ("restored", kept)
    assert str(restored).startswith(f"data ready: {FACES} faces in data/prepared, restored from {kept} in ")
    prepared = second / "data" / "prepared"
    assert _labels(prepared) == _labels(first / "data" / "prepared") and len(_labels(prepared)) == FACES
    info = layout.read_prepare_info(prepared)
    assert info["data_root"] == str(prepared.resolve())  # the tar holds the photos
    first_info = layout.read_prepare_info(first / "data" / "prepared")
    for k in ids:
        assert (layout.photo_path(prepared, k, info).read_bytes()
                == layout.photo_path(first / "data/prepared", k, first_info).read_bytes())
    assert not (second / "data" / "CelebAMask-HQ").exists()  # the raw data is not needed
    assert sorted(p.name for p in (second / "data").iterdir()) == ["prepared"]
    assert workspace.is_ready("data/prepared") and workspace.split_size("data/prepared") == 1


def test_kaggle_attached_dataset_is_prepared_into_working(tmp_path, monkeypatch, archive):
    import zipfile

    attached = tmp_path / "input" / "datasets" / "someone" / "celebamaskhq"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(attached)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    working = runtime(tmp_path, monkeypatch, "working")
    monkeypatch.setattr(workspace, "KAGGLE_WORKING", working)
    ready = workspace.ensure_data("data/prepared", kaggle_input=tmp_path / "input", workers=1,
                                  progress=False)
    assert (ready.how, ready.source) == ("prepared", attached / "CelebAMask-HQ")
    assert ready.keep == working / "celebseg"
    assert (working / "celebseg" / "data" / workspace.PREPARED_ARCHIVE).is_file()
    # Prepared into /kaggle/working, reading the photos where Kaggle mounted them.
    info = layout.read_prepare_info(working / "data" / "prepared")
    assert info["data_root"] == str((attached / "CelebAMask-HQ").resolve())
    assert workspace.find_kaggle_dataset(tmp_path / "nothing-attached") is None


# --------------------------------------------------------------------------- notebook 01

def test_fetch_keeps_the_archive_once_and_a_fresh_runtime_unpacks_it_from_drive(
        tmp_path, monkeypatch, archive, capsys):
    keep = tmp_path / "drive" / "celebseg-smoke"
    first = runtime(tmp_path, monkeypatch, "rt1")
    root = workspace.fetch_dataset("archive", "data/CelebAMask-HQ", archive=archive, smoke=True,
                                   keep=keep, progress=False)
    kept = keep / "data" / "CelebAMask-HQ.zip"
    assert kept.read_bytes() == archive.read_bytes()
    assert root == first / "data" / "CelebAMask-HQ" / "CelebAMask-HQ"
    # A fresh runtime: the archive it was given is gone; the kept one is unpacked instead.
    second = runtime(tmp_path, monkeypatch, "rt2")
    root = workspace.fetch_dataset("archive", "data/CelebAMask-HQ", archive=tmp_path / "gone.zip",
                                   smoke=True, keep=keep, progress=False)
    assert f"the archive is kept in {kept}: not downloading it again" in capsys.readouterr().out
    assert root == second / "data" / "CelebAMask-HQ" / "CelebAMask-HQ"
    assert len(list((root / layout.IMAGE_DIR).glob("*.jpg"))) == FACES


def test_too_little_disk_is_said_before_downloading(tmp_path, monkeypatch, archive):
    runtime(tmp_path, monkeypatch, "rt")
    keep = tmp_path / "drive" / "celebseg"
    full = types.SimpleNamespace(total=100_000_000_000, used=99_990_000_000, free=10_000_000)
    monkeypatch.setattr(workspace.shutil, "disk_usage", lambda path: full)
    with pytest.raises(workspace.NotebookStop,
                       match=r"has 0\.0 GB free but the dataset needs 10\.0 GB: free some space"):
        workspace.fetch_dataset("archive", "data/CelebAMask-HQ", archive=archive, keep=keep)
    assert not Path("data").exists() and not keep.exists()


# --------------------------------------------------------------------------- the runtime

def test_training_notebook_without_gpu_stops_on_colab_and_kaggle_only(tmp_path, monkeypatch):
    runtime(tmp_path, monkeypatch, "rt")
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release")
    monkeypatch.setenv(workspace.DRIVE_ROOT_VARIABLE, str(tmp_path / "drive"))
    monkeypatch.setattr(workspace, "has_gpu", lambda: False)
    with pytest.raises(workspace.NotebookStop, match=r"^this Colab runtime has no GPU: Runtime > "
                       r"Change runtime type > T4 GPU, then Run all again"):
        workspace.ensure_data("data/prepared", gpu=True)
    # SMOKE needs none: on to the data, of which nothing is kept yet.
    with pytest.raises(workspace.NotebookStop, match="run notebook 01_download"):
        workspace.ensure_data("data/prepared", gpu=True, smoke=True)
    kaggle = workspace.gpu_problem(False, gpu=False, modules={}, environ={"KAGGLE_KERNEL_RUN_TYPE": "Batch"})
    assert kaggle.startswith("this Kaggle runtime has no GPU: Settings > Accelerator > GPU T4 x2")
    assert workspace.gpu_problem(False, gpu=False, modules={}, environ={}) is None  # local
    assert workspace.gpu_problem(False, gpu=True, modules={}, environ={"COLAB_RELEASE_TAG": "x"}) is None


def test_runtime_detection_reads_modules_and_environment():
    assert workspace.in_colab(modules={"google.colab": object()}, environ={})
    assert workspace.in_colab(modules={}, environ={"COLAB_RELEASE_TAG": "x"})
    assert not workspace.in_colab(modules={"google": object()}, environ={"KAGGLE_KERNEL_RUN_TYPE": "Batch"})
    assert workspace.in_kaggle(environ={"KAGGLE_KERNEL_RUN_TYPE": "Batch"})
    assert not workspace.in_kaggle(environ={"KAGGLE_KERNEL_RUN_TYPE": ""})
    assert workspace.in_hosted(modules={}, environ={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
    assert not workspace.in_hosted(modules={}, environ={"HOME": "/root"})


def test_this_test_process_is_not_hosted():
    assert not workspace.in_hosted()


def test_drive_variable_stands_for_my_drive_and_smoke_keeps_apart(tmp_path, monkeypatch, capsys):
    env = {workspace.DRIVE_ROOT_VARIABLE: str(tmp_path / "d")}
    assert workspace.keep_root(environ=env) == tmp_path / "d" / "celebseg"
    assert workspace.keep_root(smoke=True, environ=env) == tmp_path / "d" / "celebseg-smoke"
    assert workspace.run_root(smoke=True, environ=env) == tmp_path / "d" / "celebseg-smoke" / "runs"
    assert workspace.keep_root(drive_mount=tmp_path / "none", environ={"KAGGLE_KERNEL_RUN_TYPE": "Batch"}) \
        == Path("/kaggle/working/celebseg")
    # Nowhere to keep: said once, with where things go instead.
    assert workspace.keep_root(drive_mount=tmp_path / "none", environ={}) is None
    assert workspace.run_root(smoke=True, environ={}) == Path("celebseg-smoke/runs")
    assert workspace.run_root(environ={}) is None
    out = capsys.readouterr().out
    assert out.count(f"Not on Colab and {workspace.DRIVE_ROOT_VARIABLE} is not set") == 1
    monkeypatch.setenv(workspace.DRIVE_ROOT_VARIABLE, str(tmp_path / "d"))
    assert workspace.mount_drive_run_dir("ce", drive_mount=tmp_path / "none") \
        == tmp_path / "d" / "celebseg" / "runs" / "ce"


def test_run_dir_uses_explicit_root(tmp_path):
    run = workspace.mount_drive_run_dir("weighted_ce", root=tmp_path / "r")
    assert run == tmp_path / "r" / "weighted_ce" and run.is_dir()


def test_run_dir_goes_to_drive_when_mounted(tmp_path):
    (tmp_path / "drive" / "MyDrive").mkdir(parents=True)
    run = workspace.mount_drive_run_dir("dice", drive_mount=tmp_path / "drive",
                                        local_root=tmp_path / "local")
    assert run == tmp_path / "drive" / "MyDrive" / "celebseg" / "runs" / "dice"
    assert run.is_dir() and not (tmp_path / "local").exists()


def test_run_dir_falls_back_to_local_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = workspace.mount_drive_run_dir("jaccard", drive_mount=tmp_path / "no-drive")
    assert run.resolve() == (tmp_path / "runs" / "jaccard").resolve() and run.is_dir()


def _fake_colab(monkeypatch, mount):
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)


def test_colab_mounts_drive_then_uses_it(tmp_path, monkeypatch):
    calls = []

    def mount(where):
        calls.append(where)
        (tmp_path / "drive" / "MyDrive").mkdir(parents=True)

    _fake_colab(monkeypatch, mount)
    run = workspace.mount_drive_run_dir("ce", drive_mount=tmp_path / "drive", local_root=tmp_path / "l")
    assert calls == [str(tmp_path / "drive")]
    assert run == tmp_path / "drive" / "MyDrive" / "celebseg" / "runs" / "ce"
    # Already mounted: no second permission prompt.
    workspace.mount_drive_run_dir("ce2", drive_mount=tmp_path / "drive")
    assert len(calls) == 1


def test_declined_drive_mount_warns_and_stays_local(tmp_path, monkeypatch):
    def mount(where):
        raise RuntimeError("credential propagation was unsuccessful")

    _fake_colab(monkeypatch, mount)
    with pytest.warns(UserWarning, match="Google Drive not mounted"):
        run = workspace.mount_drive_run_dir("ce", drive_mount=tmp_path / "drive", local_root=tmp_path / "l")
    assert run == tmp_path / "l" / "ce"


def test_mount_false_never_prompts(tmp_path, monkeypatch):
    _fake_colab(monkeypatch, lambda where: pytest.fail("must not mount"))
    assert workspace.drive_run_root(tmp_path / "drive", mount=False) is None


# --------------------------------------------------------------------------- runs (notebook 07)

def test_ensure_runs_keeps_evaluated_runs_and_names_the_missing_notebook(tmp_path):
    (tmp_path / "sparse_ce").mkdir()
    (tmp_path / "sparse_ce" / "results.json").write_text(json.dumps({"miou": 0.5}))
    assert workspace.ensure_runs(["sparse_ce"], "unused", root=tmp_path) == [tmp_path / "sparse_ce"]
    with pytest.raises(workspace.NotebookStop, match=r"dice has no trained model: run notebook 06 first"):
        workspace.ensure_runs(["sparse_ce", "dice"], "unused", root=tmp_path)
def test_ensure_runs_evaluates_trained_and_trains_missing_in_smoke(tmp_path, monkeypatch):
    import celebseg_utils.engine.evaluate as evaluate

    trained, evaluated = [], []
    (tmp_path / "weighted_ce").mkdir()
    (tmp_path / "weighted_ce" / "summary.json").write_text("{}")  # trained, not evaluated

    def fake_train(name, prepared, run, progress):
        trained.append((name, prepared, run))
        return run / "best.keras"

    def fake_evaluate(model, prepared, split, out, progress):
        evaluated.append((Path(model), split, Path(out)))
        Path(out).write_text("{}")

    monkeypatch.setattr(workspace, "_train_smoke_run", fake_train)
    monkeypatch.setattr(evaluate, "evaluate_model", fake_evaluate)
    runs = workspace.ensure_runs(["weighted_ce", "jaccard"], "PREP", root=tmp_path, smoke=True)
    assert runs == [tmp_path / "weighted_ce", tmp_path / "jaccard"]
    assert trained == [("jaccard", "PREP", tmp_path / "jaccard")]
    assert evaluated == [(tmp_path / "weighted_ce" / "best.keras", "test", tmp_path / "weighted_ce" / "results.json"),
                         (tmp_path / "jaccard" / "best.keras", "test", tmp_path / "jaccard" / "results.json")]
    # Evaluated now: a second call does nothing.
    trained.clear(), evaluated.clear()
    workspace.ensure_runs(["weighted_ce", "jaccard"], "PREP", root=tmp_path, smoke=True)
    assert trained == [] and evaluated == []


def test_smoke_runs_use_the_loss_of_their_notebook():
    assert workspace.RUN_LOSSES["weighted_ce"] == ("loss.name=weighted_ce", "loss.class_weights=median_freq")
    from celebseg_utils.engine.config import resolve_config

    cfg = resolve_config(preset=workspace.SMOKE_PRESET, run_dir="/tmp/x",
                         overrides=[*workspace.RUN_LOSSES["weighted_ce"], *workspace.SMOKE_OVERRIDES])
    assert (cfg.loss.name, cfg.loss.class_weights) == ("weighted_ce", "median_freq")
    assert (cfg.image_size, cfg.epochs, cfg.steps_per_epoch, cfg.batch_size) == (64, 1, 2, 4)


@pytest.mark.slow
def test_ensure_runs_trains_and_evaluates_a_tiny_run_for_real(tmp_path):
    import json

    import yaml

    from celebseg_utils.demo import smoke_workspace

    ws = smoke_workspace(tmp_path / "smoke", count=24, image_size=64)
    (run,) = workspace.ensure_runs(["weighted_ce"], ws["prepared"], root=tmp_path / "runs",
                                  smoke=True, progress=False)
    assert run == tmp_path / "runs" / "weighted_ce"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["loss"] == {"name": "weighted_ce", "class_weights": "median_freq", "kwargs": {}}
    assert cfg["image_size"] == 64 and cfg["epochs"] == 1
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 1
    results = json.loads((run / "results.json").read_text())
    assert 0.0 <= results["miou"] <= 1.0 and len(results["per_class"]) == 19



def test_a_finished_run_reopened_reads_its_test_scores_instead_of_evaluating_again(tmp_path, monkeypatch):
    import celebseg_utils.engine.evaluate as evaluate

    evaluated = []

    def fake_evaluate(model, prepared, split, out, progress):
        evaluated.append((Path(model).name, split))
        Path(out).write_text(json.dumps({"miou": 0.25}))
        return {"miou": 0.25}

    monkeypatch.setattr(evaluate, "evaluate_model", fake_evaluate)
    model = tmp_path / "best.keras"
    model.write_bytes(b"model")
    assert workspace.run_test_scores(tmp_path, model, "PREP") == {"miou": 0.25}
    assert evaluated == [("best.keras", "test")]
    # Reopened (a fresh runtime): read back, not evaluated again.
    assert workspace.run_test_scores(tmp_path, model, "PREP") == {"miou": 0.25}
    assert len(evaluated) == 1
    # A model newer than its scores (retrained in place) is evaluated again.
    os.utime(model, (time_after := (tmp_path / "results.json").stat().st_mtime + 10, time_after))
    workspace.run_test_scores(tmp_path, model, "PREP")
    assert len(evaluated) == 2


def test_a_damaged_or_foreign_kept_tar_stops_and_leaves_nothing(tmp_path, monkeypatch):
    import io

    runtime(tmp_path, monkeypatch, "rt")
    kept = tmp_path / "prepared.tar"
    with tarfile.open(kept, "w") as tar:  # a member that would land outside the target
        info = tarfile.TarInfo("prepared/../../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(workspace.NotebookStop, match=r"holds 'prepared/\.\./\.\./evil\.txt', which no kept"):
        workspace.restore_prepared(kept, "data/prepared", progress=False)
    with tarfile.open(kept, "w") as tar:
        info = tarfile.TarInfo("prepared/labels/0.png")
        info.size = 4000
        tar.addfile(info, io.BytesIO(bytes(4000)))
    kept.write_bytes(kept.read_bytes()[:1500])  # cut short, as an interrupted upload leaves it
    with pytest.raises(workspace.NotebookStop, match=r"prepared\.tar is damaged .*run notebook 02 again"):
        workspace.restore_prepared(kept, "data/prepared", progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "rt" / "data" / "prepared").exists()
    assert list((tmp_path / "rt" / "data").iterdir()) == []  # no staging folder left


def test_notebooks_run_in_place_write_only_to_git_ignored_places():
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    # SMOKE writes celebseg-smoke/ (workspace.SMOKE_DIR) beside the notebook; a real local
    # run data/ and runs/. Run in place, that is under notebooks/.
    written = [f"notebooks/{workspace.SMOKE_DIR}/data/prepared/prepare.json", "notebooks/data/prepared/x",
               "notebooks/runs/sparse_ce/best.keras", f"{workspace.SMOKE_DIR}/runs/x", "data/prepared/x"]
    done = subprocess.run(["git", "check-ignore", *written], cwd=repo, capture_output=True, text=True)
    assert done.stdout.split() == written
    kept = subprocess.run(["git", "check-ignore", "celebseg_utils/data/download.py"], cwd=repo)
    assert kept.returncode == 1  # the package's own data/ folder is not ignored


def test_fetch_from_drive_downloads_onto_drive_and_kaggle_folder_is_kept_as_one_tar(
        tmp_path, monkeypatch, archive):
    import shutil
    import zipfile

    from celebseg_utils.data import download as D

    asked = []

    def fake_fetch_drive(file_id, dest, progress=True, url=None):
        asked.append((file_id, Path(dest)))
        shutil.copy(archive, dest)
        return Path(dest)

    monkeypatch.setattr(D, "fetch_drive", fake_fetch_drive)
    keep = tmp_path / "drive" / "celebseg"
    runtime(tmp_path, monkeypatch, "rt1")
    root = workspace.fetch_dataset("drive", "data/CelebAMask-HQ", keep=keep, progress=False,
                                   drive_id="the-id")
    # Straight onto Drive (where gdown's partial file survives a disconnect), then unpacked.
    assert asked == [("the-id", keep / "data" / "CelebAMask-HQ.zip")]
    assert D.verify_layout(root)["images"] == FACES

    # Kaggle hands back a folder: it is kept on Drive as one tar, which a fresh runtime unpacks.
    def fake_kaggle(slug, dest, progress):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
        return Path(dest)

    monkeypatch.setattr(D, "_fetch_kaggle", fake_kaggle)
    keep2 = tmp_path / "drive2" / "celebseg"
    runtime(tmp_path, monkeypatch, "rt2")
    workspace.fetch_dataset("kaggle", "data/CelebAMask-HQ", keep=keep2, progress=False)
    with tarfile.open(keep2 / "data" / "CelebAMask-HQ.tar") as tar:
        names = tar.getnames()
    assert sum(n.startswith("CelebAMask-HQ/CelebA-HQ-img/") for n in names) == FACES
    third = runtime(tmp_path, monkeypatch, "rt3")
    root = workspace.fetch_dataset("kaggle", "data/CelebAMask-HQ", keep=keep2, progress=False)
    assert root == third / "data" / "CelebAMask-HQ" / "CelebAMask-HQ"
    assert D.verify_layout(root)["images"] == FACES


@pytest.mark.parametrize("number, says", [("04", True), ("06", True), ("01", False)])
def test_first_cell_of_a_training_notebook_says_when_colab_has_no_gpu(number, says, monkeypatch, capsys):
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    notebook_file = next((repo / "notebooks").glob(f"{number}_*.ipynb"))
    cells = [c for c in json.loads(notebook_file.read_text())["cells"] if c["cell_type"] == "code"]
    first = "".join(cells[0]["source"])
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: None)  # no pip here
    real_exists = os.path.exists
    for gpu in (False, True):
        monkeypatch.setattr(os.path, "exists", lambda p, gpu=gpu: gpu if p == "/dev/nvidia0" else real_exists(p))
        monkeypatch.setattr(shutil, "which", lambda name: None)
        exec(compile(first, "<first cell>", "exec"), {})
        out = capsys.readouterr().out
        said = ("No GPU on this runtime: Runtime > Change runtime type > T4 GPU, then Run all again "
                "(SMOKE = True needs none).") in out
        assert said == (says and not gpu), out

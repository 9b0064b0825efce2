"""Reliability of ``celebseg predict --align``: photos without a face, faces too small, and a
missing ``[align]`` extra end in one line, exit 2, nothing written (``tests/reliability/harness.py``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import assert_user_error, partial_files, run_cli, tree_digest



@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A 19-class 1x1-convolution model at 32 px, saved as .keras: enough to run predict."""
    import keras

    inp = keras.Input((32, 32, 3))
    path = tmp_path_factory.mktemp("model") / "m.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        keras.Model(inp, keras.layers.Conv2D(19, 1)(inp)).save(path)
    return path


@pytest.fixture
def workspace(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(tmp_path / "in" / "wall.png")
    return tmp_path


@pytest.mark.slow
@pytest.mark.reliability("cli", "`predict --align wall.png` (a photo with no face in it)",
                         "one-line error naming the photo and 'no face found', exit 2, no "
                         "traceback, workspace unchanged")
def test_align_on_a_photo_without_a_face(model, workspace):
    pytest.importorskip("mtcnn", reason="the [align] extra (mtcnn) is not installed")
    before = tree_digest(workspace)
    result = run_cli(["predict", "--model", model, workspace / "in" / "wall.png", "--out",
                      workspace / "pred", "--align", "--no-progress"])
    assert_user_error(result, "wall.png", "no face found")
    assert tree_digest(workspace) == before and not partial_files(workspace)


@pytest.mark.slow
@pytest.mark.reliability("cli", "`predict --align --skip-bad FOLDER` holding only a photo "
                         "with no face", "a warning for it, then one-line error 'no face to "
                         "parse', exit 2, nothing written")
def test_align_skip_bad_with_no_face_anywhere(model, workspace):
    pytest.importorskip("mtcnn", reason="the [align] extra (mtcnn) is not installed")
    result = run_cli(["predict", "--model", model, workspace / "in", "--out",
                      workspace / "pred", "--align", "--skip-bad", "--no-progress"])
    assert_user_error(result, "no face to parse in any of the 1 photos")
    assert "warning: skipped" in result.err and "wall.png" in result.err
    assert not (workspace / "pred").exists()


@pytest.mark.slow
@pytest.mark.reliability("cli", "`predict --align face.jpg --min-eye-distance 400` (the only "
                         "face smaller than the floor)", "one-line error naming the photo, "
                         "the face's eye distance and the floor, exit 2, nothing written")
def test_align_with_every_face_too_small(model, workspace, real_mini_dir):
    pytest.importorskip("mtcnn", reason="the [align] extra (mtcnn) is not installed")
    Image.open(real_mini_dir / "images" / "17.jpg").save(workspace / "in" / "face.jpg")
    result = run_cli(["predict", "--model", model, workspace / "in" / "face.jpg", "--out",
                      workspace / "pred", "--align", "--min-eye-distance", "400",
                      "--no-progress"])
    line = assert_user_error(result, "face.jpg", "too small", "400 px")
    assert "eye distance 1" in line  # its own, ~125 px
    assert not (workspace / "pred").exists()


@pytest.mark.reliability("cli", "`predict --align` where the mtcnn package is not installed",
                         "one-line error 'pip install celebseg[align]', exit 2, nothing "
                         "written")
def test_align_without_the_detector_installed(model, workspace, monkeypatch):
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # how Python sees an absent package
    before = tree_digest(workspace)
    result = run_cli(["predict", "--model", model, workspace / "in" / "wall.png", "--out",
                      workspace / "pred", "--align"])
    assert_user_error(result, "pip install celebseg[align]")
    assert tree_digest(workspace) == before


@pytest.mark.reliability("cli", "`predict --save-crops` without `--align`",
                         "one-line error 'add --align', exit 2, nothing written")
def test_save_crops_without_align(model, workspace):
    before = tree_digest(workspace)
    result = run_cli(["predict", "--model", model, workspace / "in" / "wall.png", "--out",
                      workspace / "pred", "--save-crops"])
    assert_user_error(result, "--save-crops", "add --align")
    assert tree_digest(workspace) == before

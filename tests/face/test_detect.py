"""detect: MTCNN's rows read in the right order, the missing-extra error, real faces (slow)."""

from __future__ import annotations

import doctest
import sys

import numpy as np
import pytest
from PIL import Image

from celebseg_utils.face import detect as D
from celebseg_utils.errors import CelebsegError



def test_doctests():
    assert doctest.testmod(D).failed == 0


def test_rows_hold_five_x_then_five_y_and_scale_back():
    row = np.array([[0, 10, 20, 110, 140, 0.97,
                     30, 70, 50, 35, 65,      # x: eye, eye, nose, mouth, mouth
                     60, 61, 80, 100, 101]])  # y
    (face,) = D.faces_from_mtcnn(row, scale=0.5)
    assert face.box == (20.0, 40.0, 220.0, 280.0)
    assert face.landmarks.tolist() == [[60, 120], [140, 122], [100, 160], [70, 200], [130, 202]]
    assert face.confidence == pytest.approx(0.97)
    assert face.eye_distance == pytest.approx(np.hypot(80, 2))


def test_without_mtcnn_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # what an absent package looks like
    with pytest.raises(CelebsegError) as err:
        D.FaceDetector()
    assert "pip install celebseg[align]" in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("mtcnn", reason="the [align] extra (mtcnn) is not installed")
    return D.FaceDetector(detect_size=256)


@pytest.mark.slow
def test_a_real_face_has_its_landmarks_where_a_face_has_them(detector, real_mini_dir):
    photo = np.asarray(Image.open(real_mini_dir / "images" / "14.jpg").convert("RGB"))
    big = np.asarray(Image.fromarray(photo).resize((1024, 1024), Image.BILINEAR))
    (small,) = detector(photo)
    (large,) = detector(big)  # detected at 256 px, landmarks scaled back to 1024
    lm = large.landmarks
    assert lm[0, 0] < lm[2, 0] < lm[1, 0]  # photo-left eye, nose, photo-right eye
    assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])  # eyes, nose, mouth
    assert lm[3, 0] < lm[4, 0]
    # the same face at 2x the size (both detected at 256 px): the same points, doubled
    np.testing.assert_allclose(lm, 2 * small.landmarks + 0.5, atol=8)
    assert 100 < small.eye_distance < 160  # CelebA-HQ at 512 px: eyes ~125 px apart


@pytest.mark.slow
def test_no_face_gives_no_detection(detector):
    rng = np.random.default_rng(0)
    assert detector(np.full((300, 400, 3), 128, np.uint8)) == []
    assert detector(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) == []


@pytest.mark.slow
def test_a_detector_failure_is_one_line_naming_it(detector, monkeypatch):
    def fails(*args, **kwargs):  # what mtcnn 1.0 raised here when its pyramid got too small
        raise ValueError("Exception encountered when calling Conv2D.call().\n\nThe "
                         "convolution operation resulted in an empty output.")

    monkeypatch.setattr(detector._mtcnn, "detect_faces", fails)
    with pytest.raises(CelebsegError, match=r"the face detector failed \(ValueError: "
                                            r"Exception encountered") as err:
        detector(np.zeros((50, 50, 3), np.uint8))
    assert "\n" not in str(err.value)

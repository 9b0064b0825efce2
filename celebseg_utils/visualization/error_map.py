"""Where a prediction is wrong: an error map over a faded photo.

Every pixel where the predicted label differs from the truth is painted, at full strength,
in one of three ways (:data:`ERROR_MODES`): the colour of its **true** class (what the model
missed: a hair-blue error is hair the model did not find), of its **predicted** class (what
the model wrongly drew), or one colour (:data:`ERROR_COLOUR`: where, not what). Right pixels
show the photo in light grey, so that even background's black stands out.

>>> import numpy as np
>>> from celebseg_utils.visualization.error_map import error_map
>>> photo = np.zeros((2, 2, 3), np.uint8)
>>> truth, pred = np.array([[0, 13], [1, 1]]), np.array([[0, 1], [1, 1]])
>>> error_map(photo, truth, pred, mode="truth")[0, 1].tolist()  # missed hair: hair's colour
[0, 0, 204]
>>> error_map(photo, truth, pred, mode="single")[0, 1].tolist()
[255, 0, 255]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from celebseg_utils import labels as L

#: How wrong pixels are coloured: by their true class, by their predicted class, or one colour.
ERROR_MODES = ("truth", "prediction", "single")
#: Words for each mode, for menus.
ERROR_MODE_TEXT = {"truth": "wrong pixels: true class", "prediction": "wrong pixels: predicted class",
                   "single": "wrong pixels: one colour"}
#: The colour of a wrong pixel in the one-colour mode (the one-class views' highlight).
ERROR_COLOUR = (255, 0, 255)
#: How much of white is mixed into the greyed photo under right pixels.
_FADE = 0.6


def wrong_pixels(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W) bool: where ``prediction`` differs from ``truth`` (same shape).

    >>> wrong_pixels(np.array([[0, 1]]), np.array([[0, 2]])).tolist()
    [[False, True]]
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    return truth != prediction


def faded(image: np.ndarray) -> np.ndarray:
    """The photo in light grey (its luminance mixed with white), uint8 (H, W, 3).

    >>> faded(np.zeros((1, 1, 3), np.uint8)).tolist()
    [[[153, 153, 153]]]
    """
    rgb = np.asarray(image)[..., :3].astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    light = (1.0 - _FADE) * grey + _FADE * 255.0
    return np.repeat(np.clip(light + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def error_map(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, mode: str = "truth",
              hidden_classes: Sequence[int] = ()) -> np.ndarray:
    """RGB uint8 picture of where ``prediction`` is wrong, over the faded ``image``.

    ``mode``: one of :data:`ERROR_MODES`. A wrong pixel whose colouring class (its true
    class; in "prediction" mode its predicted one; in "single" mode its true one) is in
    ``hidden_classes`` is left out, like a hidden class in an overlay. The label maps are
    brought to the image's size with nearest neighbour (photos may be larger than labels).

    >>> img = np.full((1, 3, 3), 255, np.uint8)
    >>> m = error_map(img, np.array([[0, 13, 13]]), np.array([[0, 13, 1]]), mode="prediction")
    >>> m[0].tolist()  # right, right, wrong (drawn in skin's colour, the predicted class)
    [[255, 255, 255], [255, 255, 255], [204, 0, 0]]
    """
    from celebseg_utils.visualization.viz import resize_label

    if mode not in ERROR_MODES:
        raise ValueError(f"error-map mode {mode!r} unknown: use one of {', '.join(ERROR_MODES)}")
    image = np.asarray(image)
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    wrong = wrong_pixels(truth, prediction)
    by = prediction if mode == "prediction" else truth
    if by.shape != image.shape[:2]:
        wrong = resize_label(wrong, image.shape[:2])
        by = resize_label(by, image.shape[:2])
    by = np.clip(by, 0, L.NUM_CLASSES - 1).astype(np.intp)
    shown = wrong & ~np.isin(by, list(hidden_classes))
    out = faded(image)
    out[shown] = ERROR_COLOUR if mode == "single" else L.OVERLAY_PALETTE[by[shown]]
    return out

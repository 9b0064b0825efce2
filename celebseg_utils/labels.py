"""The CelebAMask-HQ label table: names in the official order, palettes, left/right pairs.

The order is the one of the dataset's published preprocessing (`g_mask.py` in
switchablenorms/CelebAMask-HQ): attribute ``i`` of ``ATTRIBUTES`` gets label id ``i + 1``
and a later attribute overwrites an earlier one where masks overlap. The palette is the
authors' `g_color.py` colour list, so our pictures match theirs.

Example:

>>> from celebseg_utils import labels
>>> labels.class_id("hair"), labels.class_name(13), labels.NUM_CLASSES
(13, 'hair', 19)
>>> labels.FLIP_PERMUTATION[4], labels.FLIP_PERMUTATION[5]
(5, 4)
"""

from __future__ import annotations

import numpy as np

#: The 18 per-attribute mask names, in the official precedence order.
ATTRIBUTES: tuple[str, ...] = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)

#: The 19 class names: background first, then the attributes (id = index).
CLASS_NAMES: tuple[str, ...] = ("background",) + ATTRIBUTES
NUM_CLASSES: int = len(CLASS_NAMES)
BACKGROUND_ID: int = 0
#: Ids of the 18 facial classes (everything but background).
FACIAL_CLASS_IDS: tuple[int, ...] = tuple(range(1, NUM_CLASSES))

#: Human-readable names for plots and tables.
DISPLAY_NAMES: dict[str, str] = {
    "background": "background", "skin": "skin", "nose": "nose", "eye_g": "eyeglasses",
    "l_eye": "left eye", "r_eye": "right eye", "l_brow": "left brow", "r_brow": "right brow",
    "l_ear": "left ear", "r_ear": "right ear", "mouth": "mouth", "u_lip": "upper lip",
    "l_lip": "lower lip", "hair": "hair", "hat": "hat", "ear_r": "earring",
    "neck_l": "necklace", "neck": "neck", "cloth": "cloth",
}

#: The official colour list (RGB), one row per class id.
PALETTE: np.ndarray = np.array(
    [
        [0, 0, 0], [204, 0, 0], [76, 153, 0], [204, 204, 0], [51, 51, 255],
        [204, 0, 204], [0, 255, 255], [255, 204, 204], [102, 51, 0], [255, 0, 0],
        [102, 204, 0], [255, 255, 0], [0, 0, 153], [0, 0, 204], [255, 51, 153],
        [0, 204, 204], [0, 51, 0], [255, 153, 51], [0, 204, 0],
    ],
    dtype=np.uint8,
)

#: The colours pictures use: overlays, figures, the viewer (:mod:`celebseg_utils.visualization.viz`).
#: The official palette gives neighbouring parts near-identical colours (hair, lower lip and
#: left eye are three blues; skin and right ear two reds): its smallest CIE76 colour
#: difference between two parts of :data:`NEIGHBOURS` is 19, between any two parts 15. Here
#: skin and hair keep their official colours and the other 16 were chosen (a search over
#: Kelly's colours of maximum contrast and the pure hues) to make the smallest difference
#: between neighbours as large as possible: 75, and 31 between any two parts. Label maps
#: saved in colour keep the official :data:`PALETTE`, so that they read like the dataset's.
OVERLAY_PALETTE: np.ndarray = np.array(
    [
        [0, 0, 0], [204, 0, 0], [0, 128, 255], [0, 255, 128], [0, 128, 128],
        [194, 178, 128], [243, 195, 0], [0, 103, 165], [128, 255, 0], [255, 255, 0],
        [43, 61, 38], [255, 0, 255], [255, 255, 255], [0, 0, 204], [161, 202, 241],
        [179, 68, 108], [141, 182, 0], [128, 255, 255], [255, 0, 128],
    ],
    dtype=np.uint8,
)

#: Parts that touch in a face (or overlap it, as eyeglasses do): the pairs whose colours an
#: overlay must tell apart.
NEIGHBOURS: tuple[tuple[str, str], ...] = tuple(
    (a, b) for a, others in (
        ("skin", ("nose", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
                  "u_lip", "l_lip", "hair", "neck", "eye_g", "hat")),
        ("nose", ("u_lip", "eye_g", "mouth")),
        ("eye_g", ("l_eye", "r_eye", "l_brow", "r_brow", "hair")),
        ("l_eye", ("l_brow",)), ("r_eye", ("r_brow",)),
        ("l_ear", ("hair", "ear_r", "neck")), ("r_ear", ("hair", "ear_r", "neck")),
        ("mouth", ("u_lip", "l_lip")), ("u_lip", ("l_lip",)),
        ("hair", ("hat", "l_brow", "r_brow", "cloth", "neck", "ear_r")),
        ("ear_r", ("neck",)), ("neck_l", ("neck", "cloth", "skin")), ("neck", ("cloth",)),
    ) for b in others)

#: Left/right class pairs that swap under a horizontal flip.
LEFT_RIGHT_PAIRS: tuple[tuple[str, str], ...] = (
    ("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear"),
)

#: Classes rare in the real data (tiny or absent in most images).
RARE_CLASSES: tuple[str, ...] = ("eye_g", "hat", "ear_r", "neck_l")

_ID_BY_NAME = {name: i for i, name in enumerate(CLASS_NAMES)}


def class_id(name: str) -> int:
    """Label id of a class name (``"hair"`` -> 13); raises ``KeyError`` naming the options."""
    try:
        return _ID_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown class {name!r}; known: {', '.join(CLASS_NAMES)}") from None


def class_name(class_index: int) -> str:
    """Class name of a label id (``13`` -> ``"hair"``)."""
    if not 0 <= int(class_index) < NUM_CLASSES:
        raise KeyError(f"class id {class_index} out of range 0..{NUM_CLASSES - 1}")
    return CLASS_NAMES[int(class_index)]


def _flip_permutation() -> np.ndarray:
    perm = np.arange(NUM_CLASSES, dtype=np.int32)
    for left, right in LEFT_RIGHT_PAIRS:
        a, b = _ID_BY_NAME[left], _ID_BY_NAME[right]
        perm[a], perm[b] = b, a
    return perm


#: ``FLIP_PERMUTATION[c]`` is the id class ``c`` becomes in a mirrored image.
FLIP_PERMUTATION: np.ndarray = _flip_permutation()
FLIP_PERMUTATION.setflags(write=False)
PALETTE.setflags(write=False)
OVERLAY_PALETTE.setflags(write=False)

"""The CelebAMask-HQ label table: names in the official order, palette, left/right pairs.

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

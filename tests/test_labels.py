import numpy as np
import pytest

from celebseg_utils import labels as L


def test_official_order_and_ids():
    assert L.NUM_CLASSES == 19
    assert L.CLASS_NAMES[0] == "background"
    # The id table of the design, written out independently.
    expected = ("background skin nose eye_g l_eye r_eye l_brow r_brow l_ear r_ear mouth "
                "u_lip l_lip hair hat ear_r neck_l neck cloth").split()
    assert list(L.CLASS_NAMES) == expected
    assert [L.class_id(n) for n in expected] == list(range(19))
    assert L.FACIAL_CLASS_IDS == tuple(range(1, 19))


def test_palette_matches_published_colour_list():
    assert L.PALETTE.shape == (19, 3) and L.PALETTE.dtype == np.uint8
    assert L.PALETTE[0].tolist() == [0, 0, 0]
    assert L.PALETTE[L.class_id("skin")].tolist() == [204, 0, 0]
    assert L.PALETTE[L.class_id("nose")].tolist() == [76, 153, 0]
    assert L.PALETTE[L.class_id("cloth")].tolist() == [0, 204, 0]
    assert len({tuple(c) for c in L.PALETTE.tolist()}) == 19  # every class distinguishable


def test_flip_permutation_swaps_only_left_right_pairs():
    perm = L.FLIP_PERMUTATION
    swapped = {i for i in range(19) if perm[i] != i}
    assert swapped == {4, 5, 6, 7, 8, 9}
    assert (perm[4], perm[5], perm[6], perm[7], perm[8], perm[9]) == (5, 4, 7, 6, 9, 8)
    assert np.array_equal(perm[perm], np.arange(19))  # an involution
    with pytest.raises(ValueError):
        perm[0] = 3  # read-only: nobody can corrupt the shared table


def test_lookups_reject_unknown():
    assert L.class_name(15) == "ear_r"
    with pytest.raises(KeyError, match="unknown class 'ears'"):
        L.class_id("ears")
    with pytest.raises(KeyError):
        L.class_name(19)
    assert set(L.DISPLAY_NAMES) == set(L.CLASS_NAMES)
    assert set(L.RARE_CLASSES) <= set(L.ATTRIBUTES)

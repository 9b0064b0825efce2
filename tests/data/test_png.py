"""png: the nonzero pixels of a PNG, on libdeflate's fast path and through Pillow alike.

The decoder's exactness on every row filter and its fallbacks are tested through
``masks`` in tests/data/test_masks.py, which reads masks the way prepare does.
"""

import doctest
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from celebseg_utils.data import png


def _png(array, mode=None, **save):
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG", **save)
    return buf.getvalue()


def test_module_examples_run():
    assert doctest.testmod(png).failed == 0


def test_header_reads_size_depth_type_and_interlace():
    blob = _png(np.zeros((3, 5, 3), np.uint8))
    assert png.header(blob) == (5, 3, 8, 2, 0)
    with pytest.raises(ValueError, match="not a PNG"):
        png.header(b"GIF89a" + bytes(40))


@pytest.mark.parametrize("fast", [True, False])
def test_nonzero_of_grey_rgb_and_palette_agree_with_the_pixels(monkeypatch, fast):
    if not fast:
        monkeypatch.setattr(png, "_libdeflate", None)
    rng = np.random.default_rng(0)
    grey = (rng.random((16, 16)) < 0.3).astype(np.uint8) * rng.integers(1, 256, (16, 16), dtype=np.uint8)
    assert np.array_equal(png.nonzero(_png(grey)), grey != 0)
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[2:5, 3:9, 2] = 1  # blue only, value 1: still set
    assert np.array_equal(png.nonzero(_png(rgb)), rgb.any(axis=2))
    pal = Image.fromarray(grey).convert("P")
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    assert np.array_equal(png.nonzero(buf.getvalue()), grey != 0)


def test_broken_data_raises_for_the_caller_to_name_the_file():
    blob = _png(np.full((8, 8), 255, np.uint8))
    with pytest.raises((ValueError, zlib.error, OSError)):
        png.nonzero(blob[: len(blob) // 2])

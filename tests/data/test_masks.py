"""Mask decoding and fusion against an independent port of the published g_mask.py."""

from __future__ import annotations

import doctest
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils.data import layout, masks, png
from celebseg_utils.errors import CelebsegError
from celebseg_utils.labels import ATTRIBUTES


def reference_g_mask(root: Path, k: int, size: int) -> np.ndarray:
    """g_mask.py as published: blue channel of a 3-channel read, later overwrites earlier."""
    im_base = np.zeros((size, size), dtype=np.uint8)
    for idx, attribute in enumerate(ATTRIBUTES):
        path = layout.mask_path(root, k, attribute)
        if path.exists():
            im = np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1][:, :, 0]  # BGR[0]
            im_base[im != 0] = idx + 1
    return im_base


def save_mask(path: Path, mask: np.ndarray, mode: str) -> None:
    """Write a bool mask in a given PNG flavour (all-channel-equal, as the real masks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grey = mask.astype(np.uint8) * 255
    if mode == "L":
        im = Image.fromarray(grey)
    elif mode == "RGB":
        im = Image.fromarray(np.stack([grey] * 3, axis=-1))
    elif mode == "RGBA":
        im = Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 255)], axis=-1))
    elif mode == "P":
        im = Image.fromarray(mask.astype(np.uint8), mode="L").convert("P")
        im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    elif mode == "1":
        im = Image.fromarray(mask)
    elif mode == "I;16":
        im = Image.fromarray(mask.astype(np.uint16) * 1000)
    else:
        raise ValueError(mode)
    im.save(path)


def overlapping_masks(size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hand-made masks in the synthetic style: blobs that overlap so precedence matters."""
    yy, xx = np.mgrid[:size, :size]
    out = {}
    for attribute in rng.choice(ATTRIBUTES, size=10, replace=False):
        cy, cx = rng.integers(0, size, 2)
        ry, rx = rng.integers(size // 8, size // 2, 2)
        out[str(attribute)] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    out["skin"] = np.zeros((size, size), bool)
    out["skin"][size // 4:, size // 4:] = True  # under most of the others
    return out


def test_module_examples_run():
    assert doctest.testmod(masks).failed == 0


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "1", "I;16"])
def test_read_mask_modes(tmp_path, mode):
    mask = np.zeros((8, 8), bool)
    mask[2:5, 1:7] = True
    mask[7, 7] = True
    save_mask(tmp_path / "m.png", mask, mode)
    got = masks.read_mask(tmp_path / "m.png")
    assert got.dtype == bool and got.shape == (8, 8)
    assert np.array_equal(got, mask)


def test_any_nonzero_channel_and_palette_colour(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (0, 9, 0)  # green only: g_mask.py (blue channel) would miss it; we count it
    rgb[1, 2] = (0, 0, 1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert masks.read_mask(tmp_path / "rgb.png").tolist() == [[True, False, False], [False, False, True]]
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0, 3] = 255  # opaque black is background: alpha is ignored
    rgba[0, 1] = (5, 0, 0, 0)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert masks.read_mask(tmp_path / "rgba.png").tolist() == [[False, True]]
    pal = Image.fromarray(np.array([[0, 1, 2]], np.uint8), mode="L").convert("P")
    pal.putpalette([255, 255, 255, 0, 0, 0, 0, 0, 3] + [0] * 759)  # index 0 is white
    pal.save(tmp_path / "p.png")
    assert masks.read_mask(tmp_path / "p.png").tolist() == [[True, False, True]]
    Image.fromarray(np.array([[0, 1, 200]], np.uint8)).save(tmp_path / "l.png")
    assert masks.read_mask(tmp_path / "l.png").tolist() == [[False, True, True]]


def _png_with_filters(pixels: np.ndarray, kinds, ctype: int) -> bytes:
    """Encode 8-bit pixels with the given filter type on each row (the spec's formulas)."""
    height = pixels.shape[0]
    bpp = {0: 1, 2: 3, 6: 4}[ctype]
    rows = pixels.reshape(height, -1).astype(np.int64)
    out = []
    for r in range(height):
        x, up = rows[r], rows[r - 1] if r else np.zeros_like(rows[r])
        left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        kind = kinds[r % len(kinds)]
        if kind == 0:
            pred = np.zeros_like(x)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = up
        elif kind == 3:
            pred = (left + up) // 2
        else:
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        out.append(bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    width = pixels.shape[1]
    return (masks.PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("ctype", [0, 2, 6])
@pytest.mark.parametrize("kinds", [[0], [1], [2], [4], [2, 4, 1, 0, 4, 4, 2, 2]])
def test_fast_unfilter_is_exact_for_every_filter(ctype, kinds, monkeypatch):
    """Random bytes (worst case for the Paeth shortcut) and sparse masks, every row filter."""
    if png._libdeflate is None:
        pytest.skip("the fast path needs the deflate package")
    monkeypatch.setattr(png, "_MAX_PAETH_BREAKS", 10**6)  # force the shortcut on noise too
    rng = np.random.default_rng(len(kinds) * 10 + ctype)
    channels = {0: 1, 2: 3, 6: 4}[ctype]
    noise = rng.integers(0, 256, (9, 7, channels), dtype=np.uint8)
    sparse = (rng.random((9, 7, channels)) < 0.15).astype(np.uint8) * rng.integers(1, 256, dtype=np.uint8)
    for pixels in (noise, sparse):
        pixels = pixels[:, :, 0] if channels == 1 else pixels
        blob = _png_with_filters(pixels, kinds, ctype)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(blob))), pixels)  # the encoder is right
        colour = pixels if pixels.ndim == 2 else pixels[:, :, :3].max(axis=2)
        assert np.array_equal(png.nonzero_fast(blob), colour != 0)


def test_average_rows_and_irregular_paeth_fall_back_to_pillow():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (6, 200), dtype=np.uint8)
    for kinds in ([3], [4]):  # average; Paeth on noise: > _MAX_PAETH_BREAKS breakpoints
        blob = _png_with_filters(pixels, kinds, 0)
        if png._libdeflate is not None:
            with pytest.raises(png.NeedsPillow):
                png.nonzero_fast(blob)
        assert np.array_equal(masks._decode(Path("x.png"), blob), pixels != 0)


@pytest.mark.parametrize("fast", [True, False])
def test_fuse_matches_published_algorithm_on_overlapping_masks(tmp_path, fast, monkeypatch):
    if not fast:
        monkeypatch.setattr(png, "_libdeflate", None)
    rng = np.random.default_rng(7)
    modes = ["L", "RGB", "P", "L", "RGBA"]
    for k in range(4):
        for i, (attribute, mask) in enumerate(overlapping_masks(64, rng).items()):
            save_mask(layout.mask_path(tmp_path, k, attribute), mask, modes[(i + k) % len(modes)])
        fused = masks.fuse_masks(tmp_path, k)
        expected = reference_g_mask(tmp_path, k, 64)
        assert fused.dtype == np.uint8 and fused.shape == (64, 64)
        assert np.array_equal(fused, expected)
        assert len(np.unique(fused)) >= 5  # precedence had something to resolve


def test_fuse_matches_published_algorithm_on_synthetic_faces(tmp_path):
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    root = write_synthetic_dataset(tmp_path / "raw", 4, image_size=64, seed=3, progress=False)
    overlaps = 0
    for k in range(4):
        fused = masks.fuse_masks(root, k)
        assert np.array_equal(fused, reference_g_mask(root, k, 64))
        found = masks.existing_masks(root, k)
        overlaps += int(sum(masks.read_mask(p).sum() for _, p in found) > (fused > 0).sum())
    assert overlaps >= 1  # the synthetic masks do overlap, so the order was exercised


def test_fast_path_equals_pillow_on_real_style_masks(tmp_path, real_samples_dir):
    """Every mask split from a real label map decodes the same with both decoders."""
    label = np.asarray(Image.open(real_samples_dir / "0.png"))
    for class_id in np.unique(label)[1:]:
        blob_io = io.BytesIO()
        Image.fromarray((label == class_id).astype(np.uint8) * 255).save(blob_io, format="PNG")
        blob = blob_io.getvalue()
        expected = label == class_id
        assert np.array_equal(png.nonzero_pillow(blob), expected)
        if png._libdeflate is not None:
            assert np.array_equal(png.nonzero_fast(blob), expected)


@pytest.mark.parametrize("fast", [True, False])
def test_corrupt_and_truncated_masks_name_the_file(tmp_path, fast, monkeypatch):
    if not fast:
        monkeypatch.setattr(png, "_libdeflate", None)
    mask = np.zeros((16, 16), bool)
    mask[3:9, 2:12] = True
    good = tmp_path / "good.png"
    save_mask(good, mask, "L")
    blob = good.read_bytes()
    cases = {
        "truncated.png": blob[: len(blob) // 2],
        "garbage.png": b"this is not an image at all",
        "flipped.png": blob[:45] + bytes([blob[45] ^ 0xFF]) + blob[46:],  # inside IDAT
        "empty.png": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CelebsegError) as info:
            masks.read_mask(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
        assert isinstance(info.value, masks.BadFileError) and info.value.path == str(tmp_path / name)
    with pytest.raises(CelebsegError, match="cannot read mask"):
        masks.read_mask(tmp_path / "missing.png")
    with pytest.raises(CelebsegError, match=r"empty\.png: empty mask file \(0 bytes\); re-extract"):
        masks.read_mask(tmp_path / "empty.png")  # said as such, not as "not a PNG file"


def test_wrong_size_and_no_masks(tmp_path):
    big, small = np.ones((16, 16), bool), np.ones((8, 8), bool)
    save_mask(layout.mask_path(tmp_path, 5, "skin"), big, "L")
    save_mask(layout.mask_path(tmp_path, 5, "hair"), small, "L")
    with pytest.raises(CelebsegError) as info:
        masks.fuse_masks(tmp_path, 5)
    assert str(layout.mask_path(tmp_path, 5, "hair")) in str(info.value)
    assert "8x8" in str(info.value) and "16x16" in str(info.value)
    with pytest.raises(CelebsegError) as info:  # the expected size given: the first mask is wrong
        masks.fuse_masks(tmp_path, 5, size=8)
    assert str(layout.mask_path(tmp_path, 5, "skin")) in str(info.value)
    with pytest.raises(CelebsegError, match="no mask files") as info:
        masks.fuse_masks(tmp_path, 6)
    assert "00006_*.png" in str(info.value)


def test_one_hot_round_trip():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 19, (5, 6)).astype(np.uint8)
    onehot = masks.to_one_hot(label)
    assert onehot.shape == (5, 6, 19) and onehot.dtype == np.uint8
    assert (onehot.sum(axis=-1) == 1).all()
    assert onehot[2, 3, label[2, 3]] == 1
    assert np.array_equal(masks.from_one_hot(onehot), label)
    assert masks.to_one_hot(np.array([[1, 0]]), num_classes=2).tolist() == [[[0, 1], [1, 0]]]
    with pytest.raises(ValueError, match="0..1"):
        masks.to_one_hot(np.array([2]), num_classes=2)


def test_long_chains_of_dependent_rows_fall_back_to_pillow():
    """A gradient with every row Paeth-filtered needs one round per row: Pillow does it."""
    pixels = np.add.outer(np.arange(60), np.arange(5)).astype(np.uint8)
    blob = _png_with_filters(pixels, [4], 0)
    if png._libdeflate is not None:
        with pytest.raises(png.NeedsPillow):
            png.nonzero_fast(blob)
    assert np.array_equal(masks._decode(Path("x.png"), blob), pixels != 0)


def test_fuse_with_one_irregular_mask_in_the_batch(tmp_path):
    """An "average"-filtered mask makes the one-pass decode bail out; each mask is then
    decoded on its own and the fusion is unchanged."""
    rng = np.random.default_rng(11)
    for i, (attribute, mask) in enumerate(overlapping_masks(32, rng).items()):
        path = layout.mask_path(tmp_path, 0, attribute)
        path.parent.mkdir(parents=True, exist_ok=True)
        kinds = [3, 0] if i == 2 else [0, 2, 4, 1]
        path.write_bytes(_png_with_filters(mask.astype(np.uint8) * 255, kinds, 0))
    assert np.array_equal(masks.fuse_masks(tmp_path, 0), reference_g_mask(tmp_path, 0, 32))


@pytest.mark.parametrize("shape", [(1, 8), (7, 16), (256, 8), (257, 8), (300, 24), (513, 512), (5, 13)])
def test_cumsum256_equals_numpy_mod_256(shape):
    x = np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8)
    x[: shape[0] // 2] = 255  # long runs of large bytes: the lanes must not carry over
    assert np.array_equal(png._cumsum256(x), np.cumsum(x, axis=0, dtype=np.uint8))

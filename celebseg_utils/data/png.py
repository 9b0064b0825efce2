"""Reading a PNG mask as "where is it nonzero", exactly and fast.

Decoding the up-to-18 mask PNGs of each image is what ``prepare`` spends its time on. With
the ``deflate`` package (libdeflate) installed, a mask is inflated with it (~0.05 ms per
512 px mask, about 10x faster than zlib on these highly compressible rows) and un-filtered
with vectorised numpy, several masks in one pass (numpy's per-call overhead, not arithmetic,
is what bounds it). PNGs outside that fast path (bit depths other than 8, interlacing, the
rare "average" row filter, rows too irregular for the Paeth shortcut), and every PNG when
``deflate`` is missing, go through Pillow: each valid PNG decodes exactly either way.

A pixel is nonzero when any colour channel is (alpha ignored; a palette pixel when its
palette colour is not black). :mod:`celebseg_utils.data.masks` turns decoding failures into
errors that name the file.

>>> import io, numpy as np; from PIL import Image
>>> buf = io.BytesIO(); Image.fromarray(np.array([[0, 9], [0, 0]], np.uint8)).save(buf, "PNG")
>>> header(buf.getvalue())[:2], nonzero(buf.getvalue()).tolist()
((2, 2), [[False, True], [False, False]])
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

try:  # optional accelerator: same bytes out, ~10x faster inflate than zlib
    import deflate as _libdeflate
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    _libdeflate = None

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Beyond this many left-neighbour breakpoints in one Paeth row the numpy shortcut would
#: loop in Python over most pixels (photo-like content): Pillow is faster there.
_MAX_PAETH_BREAKS = 64
#: Rounds of dependent (Up/Paeth after Paeth) rows before Pillow is the faster choice.
_MAX_ROUNDS = 48
_BYTES_PER_PIXEL = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> bytes, at 8 bits


class NeedsPillow(Exception):
    """The PNG is valid but outside the numpy fast path."""


def _chunks(blob: bytes):
    if blob[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file")
    pos, end = 8, len(blob)
    while True:
        if pos + 8 > end:
            raise ValueError("truncated PNG (no IEND chunk)")
        length, kind = struct.unpack_from(">I4s", blob, pos)
        data = blob[pos + 8:pos + 8 + length]
        if pos + 12 + length > end:
            raise ValueError(f"truncated PNG (chunk {kind!r} cut short)")
        (crc,) = struct.unpack_from(">I", blob, pos + 8 + length)
        if zlib.crc32(data, zlib.crc32(kind)) != crc:
            raise ValueError(f"corrupt PNG (bad CRC in chunk {kind!r})")
        yield kind, data
        if kind == b"IEND":
            return
        pos += 12 + length


def header(blob: bytes) -> tuple[int, int, int, int, int]:
    """``(width, height, bit_depth, colour_type, interlace)`` from the IHDR chunk."""
    if blob[:8] != PNG_SIGNATURE or blob[12:16] != b"IHDR" or len(blob) < 33:
        raise ValueError("not a PNG file")
    width, height, depth, ctype, _, _, interlace = struct.unpack_from(">IIBBBBB", blob, 16)
    return width, height, depth, ctype, interlace


def _inflate(data: bytes, size: int) -> np.ndarray:
    if _libdeflate is not None:
        out = _libdeflate.zlib_decompress(data, size)  # a bytearray: writable, no copy
    else:
        out = bytearray(zlib.decompress(data, bufsize=size))
    if len(out) != size:
        raise ValueError(f"corrupt PNG (image data holds {len(out)} bytes, expected {size})")
    return np.frombuffer(out, dtype=np.uint8)


_LANES = np.uint64(0x00FF00FF00FF00FF)


def _cumsum256(x: np.ndarray) -> np.ndarray:
    """``np.cumsum(x, axis=0, dtype=uint8)`` (sums mod 256) of a 2-D uint8 array, ~3x faster.

    numpy accumulates uint8 one element at a time; here 8 bytes ride in one uint64 as
    four 16-bit lanes (even bytes, then odd bytes), so one uint64 cumsum does four byte
    sums. A lane holds 256 sums of bytes (<= 65280) before it could carry into the next,
    hence blocks of 256 rows.
    """
    x = np.ascontiguousarray(x)
    if x.shape[1] % 8:
        return np.cumsum(x, axis=0, dtype=np.uint8)
    out = np.empty_like(x)
    eight = np.uint64(8)
    for start in range(0, x.shape[0], 256):
        block = x[start:start + 256]
        if start:
            block = block.copy()
            block[0] += out[start - 1]
        words = block.view(np.uint64)
        even = np.cumsum(words & _LANES, axis=0)
        odd = np.cumsum((words >> eight) & _LANES, axis=0)
        out[start:start + 256] = ((even & _LANES) | ((odd & _LANES) << eight)).view(np.uint8)
    return out


def _paeth_rows(rows: np.ndarray, idx: np.ndarray, bpp: int) -> None:
    """Undo the Paeth filter of rows ``idx`` in place (the row above each is decoded).

    Where up == up-left the predictor is the left pixel, so a row is a running sum of its
    bytes except at "breakpoints" (up != up-left). Only those need the scalar predictor:
    we replace each breakpoint's byte by the increment it really adds, then one cumsum
    decodes all the rows. Binary masks have a handful of breakpoints per row.
    """
    n, width = idx.size, rows.shape[1] // bpp
    above = rows[np.maximum(idx - 1, 0)]
    above[idx == 0] = 0
    # one sequence per (row, channel): the left neighbour is bpp bytes back
    raw = rows[idx].reshape(n, width, bpp).transpose(0, 2, 1).reshape(n * bpp, width)
    up = above.reshape(n, width, bpp).transpose(0, 2, 1).reshape(n * bpp, width)
    upleft = np.zeros_like(up)
    upleft[:, 1:] = up[:, :-1]
    seq, pos = np.nonzero(up != upleft)
    if seq.size > _MAX_PAETH_BREAKS * n:
        raise NeedsPillow
    if seq.size:
        cs = np.cumsum(raw, axis=1, dtype=np.uint8)
        before = np.where(pos > 0, cs[seq, np.maximum(pos - 1, 0)], 0).tolist()
        ups, upls, raws = up[seq, pos].tolist(), upleft[seq, pos].tolist(), raw[seq, pos].tolist()
        fixed, last_seq, corr = [], -1, 0
        for i, (q, x) in enumerate(zip(seq.tolist(), pos.tolist())):
            if q != last_seq:
                last_seq, corr = q, 0
            a = (before[i] + corr) & 255 if x else 0  # decoded left neighbour
            b, c = ups[i], upls[i]
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            step = (raws[i] + pred - a) & 255  # what this byte really adds to the sum
            corr = (corr + step - raws[i]) & 255
            fixed.append(step)
        raw[seq, pos] = np.array(fixed, dtype=np.uint8)
    out = np.cumsum(raw, axis=1, dtype=np.uint8)
    rows[idx] = out.reshape(n, bpp, width).transpose(0, 2, 1).reshape(n, width * bpp)


def _up_rows(rows: np.ndarray, idx: np.ndarray) -> None:
    """Undo the Up filter of whole runs of Up rows ``idx`` at once (a segmented cumsum)."""
    starts = np.ones(idx.size, dtype=bool)
    starts[1:] = idx[1:] != idx[:-1] + 1
    first = np.flatnonzero(starts)
    run = np.cumsum(starts) - 1
    cs = _cumsum256(rows[idx])
    offset = np.zeros((first.size, rows.shape[1]), dtype=np.uint8)
    offset[1:] = cs[first[1:] - 1]
    pred = idx[first] - 1
    base = rows[np.maximum(pred, 0)]
    base[pred < 0] = 0
    rows[idx] = cs - offset[run] + base[run]


def _unfilter(rows_f: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters of (height, 1 + row_bytes) rows in place; returns the pixel bytes.

    None and Sub rows stand alone; Up and Paeth rows need the row above decoded first,
    so they are decoded in rounds, each round every row whose row above is done
    (a few rounds for masks; many means a photo-like image, left to Pillow).
    """
    kinds, rows = rows_f[:, 0], rows_f[:, 1:]
    if (kinds == 3).any():
        raise NeedsPillow  # "average" rows: rare in masks, no cheap vector form
    sub = np.flatnonzero(kinds == 1)
    if sub.size:
        sub_rows = rows[sub].reshape(sub.size, -1, bpp)
        rows[sub] = np.cumsum(sub_rows, axis=1, dtype=np.uint8).reshape(sub.size, -1)
    is_up, is_paeth = kinds == 2, kinds == 4
    pending = is_up | is_paeth
    if not pending.any():
        return rows
    run_start = is_up.copy()
    run_start[1:] &= ~is_up[:-1]
    run_id = np.cumsum(run_start)
    for _ in range(_MAX_ROUNDS):
        ready = pending.copy()
        ready[1:] &= ~pending[:-1]  # the row above is decoded
        ready_runs = np.zeros(int(run_id[-1]) + 1, dtype=bool)
        ready_runs[run_id[ready & is_up]] = True
        up_idx = np.flatnonzero(is_up & ready_runs[run_id] & pending)
        if up_idx.size:
            _up_rows(rows, up_idx)
            pending[up_idx] = False
            ready = pending.copy()  # Paeth rows right below those runs are ready now too
            ready[1:] &= ~pending[:-1]
        paeth_idx = np.flatnonzero(ready & is_paeth)
        if paeth_idx.size:
            _paeth_rows(rows, paeth_idx, bpp)
            pending[paeth_idx] = False
        if not pending.any():
            return rows
    raise NeedsPillow  # long chains of dependent rows: Pillow's C loop is faster


def parse_fast(blob: bytes):
    """``(colour type, bytes per pixel, palette, filtered rows)`` of a PNG on the fast path."""
    width, height, depth, ctype, interlace = header(blob)
    if _libdeflate is None or depth != 8 or interlace or ctype not in _BYTES_PER_PIXEL:
        raise NeedsPillow
    palette, parts = None, []
    for kind, data in _chunks(blob):
        if kind == b"IDAT":
            parts.append(data)
        elif kind == b"PLTE":
            palette = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
    if ctype == 3 and palette is None:
        raise ValueError("corrupt PNG (palette image without PLTE chunk)")
    bpp = _BYTES_PER_PIXEL[ctype]
    rows_f = _inflate(b"".join(parts), height * (width * bpp + 1)).reshape(height, -1)
    if rows_f[:, 0].max(initial=0) > 4:
        raise ValueError("corrupt PNG (unknown row filter)")
    return ctype, bpp, palette, rows_f


def colour_nonzero(ctype: int, bpp: int, palette, rows: np.ndarray) -> np.ndarray:
    """bool (H, W) from un-filtered rows: any colour channel nonzero (alpha ignored)."""
    if ctype == 0:
        return rows != 0
    if ctype == 3:
        lut = np.zeros(256, dtype=bool)
        lut[:len(palette)] = palette.any(axis=1)
        return lut[rows]
    pix = rows.reshape(rows.shape[0], -1, bpp)
    if ctype == 4:  # grey + alpha: the grey channel
        return pix[:, :, 0] != 0
    colour = pix[:, :, 0] | pix[:, :, 1] | pix[:, :, 2]  # RGB or RGBA (alpha ignored)
    return colour != 0


def nonzero_fast(blob: bytes) -> np.ndarray:
    """:func:`nonzero` on the libdeflate + numpy path; :class:`NeedsPillow` outside it."""
    ctype, bpp, palette, rows_f = parse_fast(blob)
    return colour_nonzero(ctype, bpp, palette, _unfilter(rows_f, bpp))


def unfilter_many(parsed: list, bpp: int) -> list[np.ndarray]:
    """Undo the row filters of several PNGs in one pass (far fewer numpy calls).

    The images are stacked with a zero "None" row before each, which is exactly the
    all-zero row that the first row of a PNG is predicted from.
    """
    width = parsed[0].shape[1]
    sep = np.zeros((1, width), dtype=np.uint8)
    stacked = np.concatenate([part for rows_f in parsed for part in (sep, rows_f)])
    rows = _unfilter(stacked, bpp)
    out, start = [], 1
    for rows_f in parsed:
        out.append(rows[start:start + rows_f.shape[0]])
        start += rows_f.shape[0] + 1
    return out


def nonzero_pillow(blob: bytes) -> np.ndarray:
    """:func:`nonzero` through Pillow (any PNG it reads)."""
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        im.load()
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA")
        if im.mode in ("LA", "La"):
            return np.asarray(im.getchannel(0)) != 0
        arr = np.asarray(im)
    if arr.ndim == 3:  # colour: any of R, G, B (alpha ignored)
        return (arr[:, :, :3] != 0).any(axis=2)
    return arr != 0


def nonzero(blob: bytes) -> np.ndarray:
    """bool (H, W): where the PNG ``blob`` is nonzero; the numpy fast path, else Pillow.

    Raises whatever the decoders raise on a broken file (``ValueError``, ``zlib.error``,
    Pillow's errors).
    """
    try:
        return nonzero_fast(blob)  # NeedsPillow without libdeflate, where zlib would make
    except NeedsPillow:            # Pillow's C decoder the faster one
        return nonzero_pillow(blob)

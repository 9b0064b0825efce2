"""Fusing the per-attribute mask PNGs of one image into a label map; integer <-> one-hot.

The published algorithm is ``g_mask.py`` of switchablenorms/CelebAMask-HQ::

    im_base = np.zeros((512, 512))
    for idx, label in enumerate(label_list):          # labels.ATTRIBUTES order
        if os.path.exists(filename):
            im = cv2.imread(filename)[:, :, 0]       # BGR blue channel
            im_base[im != 0] = idx + 1
    cv2.imwrite(f"{k}.png", im_base)

A later attribute overwrites an earlier one, so the fused id of a pixel is the largest id
among the masks that are nonzero there: we compute it as a running ``np.maximum``.

One deliberate difference: ``g_mask.py`` looks at the blue channel only; we count a
pixel when *any* colour channel is nonzero (alpha is ignored, as ``cv2.imread`` drops
it; a palette pixel counts when its palette colour is not black). On the real masks,
which are grey (all channels equal), the two agree exactly.

Speed: decoding the PNGs dominates. With the ``deflate`` package (libdeflate) installed,
masks are inflated with it (~0.05 ms per 512 px mask, about 10x faster than zlib on these
highly compressible rows) and un-filtered with vectorised numpy, all the masks of an
image in one pass (numpy's per-call overhead, not arithmetic, is what bounds it). With the
fusion that takes about 2.3x less CPU per image than Pillow plus boolean indexing
(``scripts/bench_prepare.py``). PNGs outside that fast path (bit depths other than 8,
interlacing, the rare "average" row filter, rows too irregular for the Paeth shortcut),
and every PNG when ``deflate`` is missing, go through Pillow: each valid PNG decodes
exactly either way.

>>> import numpy as np
>>> label = np.array([[0, 1], [13, 18]], dtype=np.uint8)
>>> onehot = to_one_hot(label)
>>> onehot.shape, int(onehot[1, 0, 13])
((2, 2, 19), 1)
>>> bool((from_one_hot(onehot) == label).all())
True
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np

from celebseg_utils import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.labels import ATTRIBUTES, NUM_CLASSES

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


class BadFileError(CelebsegError):
    """An input file that cannot be used; ``path`` and ``reason`` feed ``problems.txt``.

    >>> str(BadFileError("/d/x.png", "not a PNG file"))
    '/d/x.png: not a PNG file'
    """

    def __init__(self, path, reason: str, fix: str = ""):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}" + (f"; {fix}" if fix else ""))


class _NeedsPillow(Exception):
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


def _header(blob: bytes) -> tuple[int, int, int, int, int]:
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
        raise _NeedsPillow
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
        raise _NeedsPillow  # "average" rows: rare in masks, no cheap vector form
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
    raise _NeedsPillow  # long chains of dependent rows: Pillow's C loop is faster


def _parse_fast(blob: bytes):
    """``(colour type, bytes per pixel, palette, filtered rows)`` of a PNG on the fast path."""
    width, height, depth, ctype, interlace = _header(blob)
    if _libdeflate is None or depth != 8 or interlace or ctype not in _BYTES_PER_PIXEL:
        raise _NeedsPillow
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


def _colour_nonzero(ctype: int, bpp: int, palette, rows: np.ndarray) -> np.ndarray:
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


def _nonzero_fast(blob: bytes) -> np.ndarray:
    ctype, bpp, palette, rows_f = _parse_fast(blob)
    return _colour_nonzero(ctype, bpp, palette, _unfilter(rows_f, bpp))


def _unfilter_many(parsed: list, bpp: int) -> list[np.ndarray]:
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


def _nonzero_pillow(blob: bytes) -> np.ndarray:
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


_REFETCH = "re-extract or re-download it, or run prepare with --skip-bad"


def _unreadable(path, exc: Exception) -> BadFileError:
    if isinstance(exc, MemoryError):
        raise exc
    return BadFileError(path, f"unreadable mask ({str(exc) or type(exc).__name__})", _REFETCH)


def _decode(path: Path, blob: bytes) -> np.ndarray:
    try:
        try:
            return _nonzero_fast(blob)  # raises _NeedsPillow without libdeflate, where zlib
        except _NeedsPillow:            # would make Pillow's C decoder the faster one
            return _nonzero_pillow(blob)
    except Exception as exc:  # any decoder failure is the file's fault (zlib, PIL, struct)
        raise _unreadable(path, exc) from None


def _read_bytes(path) -> bytes:
    try:
        with open(path, "rb") as fh:  # not Path.read_bytes: pathlib parsing costs ~20 us a call
            blob = fh.read()
    except OSError as exc:
        raise BadFileError(path, f"cannot read mask ({exc.strerror or exc})", _REFETCH) from None
    if not blob:  # an interrupted copy or a full disk; "not a PNG" would hide that
        raise BadFileError(path, "empty mask file (0 bytes)", _REFETCH)
    return blob


def read_mask(path) -> np.ndarray:
    """A mask PNG as a bool (H, W) array: True where any colour channel is nonzero.

    Grey, RGB, RGBA, grey+alpha, palette, 1-bit and 16-bit PNGs are accepted. A missing,
    corrupt or truncated file raises :class:`BadFileError` (a ``CelebsegError``) naming it.

    >>> import tempfile, numpy as np; from PIL import Image
    >>> p = tempfile.mkdtemp() + "/m.png"
    >>> Image.fromarray(np.array([[0, 255], [7, 0]], dtype=np.uint8)).save(p)
    >>> read_mask(p).tolist()
    [[False, True], [True, False]]
    """
    path = Path(path)
    return _decode(path, _read_bytes(path))


def mask_size(path) -> tuple[int, int]:
    """``(width, height)`` of a mask PNG from its header alone (no decoding).

    >>> import tempfile, numpy as np; from PIL import Image
    >>> p = tempfile.mkdtemp() + "/m.png"
    >>> Image.fromarray(np.zeros((3, 5), dtype=np.uint8)).save(p)
    >>> mask_size(p)
    (5, 3)
    """
    try:
        with open(path, "rb") as fh:
            width, height, *_ = _header(fh.read(33))
    except (OSError, ValueError, struct.error) as exc:
        raise BadFileError(path, f"unreadable mask ({exc})") from None
    return width, height


def existing_masks(root, k: int) -> list[tuple[int, Path]]:
    """``(label id, path)`` of the mask files image ``k`` has, in precedence order.

    >>> existing_masks("/nonexistent", 0)
    []
    """
    found = []
    for class_id, attribute in enumerate(ATTRIBUTES, start=1):
        path = layout.mask_path(Path(root), k, attribute)
        if path.is_file():
            found.append((class_id, path))
    return found


def fuse_mask_files(masks, size: int | None = None, name: str = "image") -> np.ndarray:
    """Fuse ``(label id, path)`` pairs (ascending ids) into a uint8 (S, S) label map.

    The core of :func:`fuse_masks` for callers that listed the files already.
    ``size`` is the expected side; ``None`` takes the first mask's size. A mask of
    another size raises :class:`BadFileError` naming it.

    >>> try:
    ...     fuse_mask_files([], name="image 3")
    ... except BadFileError as exc:
    ...     print(exc.path, "|", exc.reason)
    image 3 | no mask files
    """
    if not masks:
        raise BadFileError(name, "no mask files",
                           "check the download is complete, or run prepare with --skip-bad")
    label, side, fast = None, None, []
    for class_id, path in masks:
        blob = _read_bytes(path)
        try:
            width, height = _header(blob)[:2]
        except ValueError as exc:
            raise _unreadable(path, exc) from None
        if side is None:
            side = width if size is None else int(size)
            label = np.zeros((side, side), dtype=np.uint8)
        if (width, height) != (side, side):
            raise BadFileError(path, f"mask is {width}x{height} px, the other masks are {side}x{side}",
                               "replace it with the dataset's original or run prepare with --skip-bad")
        try:
            fast.append((class_id, path, blob, *_parse_fast(blob)))
            continue
        except _NeedsPillow:
            pass
        except Exception as exc:
            raise _unreadable(path, exc) from None
        _fuse_into(label, _decode(path, blob), class_id)
    # Un-filtering all masks of an image in one pass costs a few numpy calls instead of
    # a few per mask: the per-call overhead, not the arithmetic, is what it saves.
    for bpp in sorted({item[4] for item in fast}):
        group = [item for item in fast if item[4] == bpp]
        try:
            decoded = _unfilter_many([item[6] for item in group], bpp)
        except _NeedsPillow:  # one irregular mask: decode each on its own
            decoded = [None] * len(group)
        for (class_id, path, blob, ctype, _, palette, _), rows in zip(group, decoded):
            mask = _decode(path, blob) if rows is None else _colour_nonzero(ctype, bpp, palette, rows)
            _fuse_into(label, mask, class_id)
    return label


def _fuse_into(label: np.ndarray, mask: np.ndarray, class_id: int) -> None:
    # ids grow with precedence, so "later overwrites earlier" is a running maximum.
    np.maximum(label, mask.view(np.uint8) * np.uint8(class_id), out=label)


def fuse_masks(root, k: int, size: int | None = None) -> np.ndarray:
    """The fused uint8 (S, S) label map of image ``k`` of a raw CelebAMask-HQ folder.

    Equal to what the published ``g_mask.py`` writes (see the module docstring).
    ``size`` is the expected mask side (default: the first mask's). Wrong-size or
    unreadable masks, or an image without any mask, raise a ``CelebsegError`` naming it.

    >>> import tempfile, numpy as np; from PIL import Image
    >>> from celebseg_utils import layout
    >>> root = tempfile.mkdtemp()
    >>> for attr, box in (("skin", (slice(0, 4), slice(0, 4))), ("nose", (slice(1, 3), slice(1, 3)))):
    ...     m = np.zeros((4, 4), np.uint8); m[box] = 255
    ...     p = layout.mask_path(root, 7, attr); p.parent.mkdir(parents=True, exist_ok=True)
    ...     Image.fromarray(m).save(p)
    >>> fuse_masks(root, 7)[1].tolist()
    [1, 2, 2, 1]
    """
    masks = existing_masks(root, k)
    where = layout.mask_path(Path(root), k, "*")
    return fuse_mask_files(masks, size, name=f"image {k} ({where})")


def to_one_hot(label, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """uint8 one-hot (..., num_classes) of an integer label map; ids must be < num_classes.

    >>> to_one_hot(np.array([2, 0]), num_classes=3).tolist()
    [[0, 0, 1], [1, 0, 0]]
    """
    label = np.asarray(label)
    if label.size and (label.min() < 0 or label.max() >= num_classes):
        raise ValueError(f"label ids must be in 0..{num_classes - 1}, got {label.min()}..{label.max()}")
    return (label[..., None] == np.arange(num_classes, dtype=label.dtype)).astype(np.uint8)


def from_one_hot(onehot) -> np.ndarray:
    """uint8 label map (...) of a one-hot (or score) array (..., C): argmax over the last axis.

    >>> from_one_hot(np.array([[0, 0, 1], [1, 0, 0]])).tolist()
    [2, 0]
    """
    return np.asarray(onehot).argmax(axis=-1).astype(np.uint8)

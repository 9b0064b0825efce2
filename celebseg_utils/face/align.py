"""The geometry of ``predict --align``: a face into the CelebA-HQ frame and its parse back.

A model trained on CelebAMask-HQ has only seen faces cropped the CelebA-HQ way. For each
detected face (``face.detect``), :func:`face_matrix` fits the similarity (rotation, one
scale, translation: 4 degrees of freedom, weighted least squares) that takes its five
landmarks onto the measured template (``align_template.json``, written by
``scripts/measure_align_template.py``), :func:`warp_to_crop` resamples the photo into a
``size`` x ``size`` crop in that frame, the model parses the crop, and :func:`paste_back`
takes the parse back into the photo (nearest neighbour: labels are ids, never averaged).
:func:`compose` merges the faces: a pixel claimed by two faces goes to the one whose centre
is nearer. :func:`paste_overlay` is the colour overlay, resampled bilinearly so its edges
are smooth.

Matrices are 3x3 and map photo pixels to crop pixels, ``(x, y, 1)`` column vectors, with
pixel ``i`` centred on coordinate ``i``. Everything here is numpy and Pillow only.

>>> import numpy as np
>>> from celebseg_utils.face.align import face_matrix, similarity_params, template_points
>>> m = face_matrix(template_points(512), 128)      # an aligned 512 px face, a 128 px crop
>>> [round(v, 3) + 0.0 for v in similarity_params(m)[:2]]  # scale, degrees
[0.25, 0.0]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from celebseg_utils.errors import CelebsegError

TEMPLATE_FILE = Path(__file__).with_name("align_template.json")


@dataclass(frozen=True)
class Template:
    """Where the five landmarks lie on an aligned CelebA-HQ face: ``points`` (5, 2) as
    fractions of the width and height (pixel ``i`` spans ``[i, i + 1)``), their measured
    standard deviation ``std`` (5, 2) over the faces measured, and how it was measured."""

    points: np.ndarray
    std: np.ndarray
    faces: int
    command: str


@lru_cache(maxsize=4)
def load_template(path=None) -> Template:
    """The packaged template (or the JSON at ``path``).

    >>> t = load_template()
    >>> t.points.shape, bool(0.3 < t.points[0, 0] < 0.45 < 0.55 < t.points[1, 0] < 0.7)
    ((5, 2), True)
    """
    path = Path(path) if path is not None else TEMPLATE_FILE
    try:
        doc = json.loads(path.read_text())
        points = np.asarray(doc["points"], dtype=np.float64)
        std = np.asarray(doc["std"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise CelebsegError(f"alignment template {path} is unreadable "
                            f"({exc.__class__.__name__}): re-run "
                            f"scripts/measure_align_template.py") from None
    if points.shape != (5, 2) or std.shape != (5, 2):
        raise CelebsegError(f"alignment template {path} must hold 5 (x, y) points and their "
                            f"std: re-run scripts/measure_align_template.py")
    return Template(points, std, int(doc.get("faces_detected", 0)), str(doc.get("command", "")))


def template_points(size: int, template: Template | None = None) -> np.ndarray:
    """The template's five landmarks in pixels of a ``size`` x ``size`` crop.

    >>> template_points(512).round(0)[:2].tolist()  # doctest: +SKIP
    [[193.0, 243.0], [318.0, 244.0]]
    """
    template = template or load_template()
    return template.points * size - 0.5


def landmark_weights(template: Template | None = None) -> np.ndarray:
    """Least-squares weight per landmark, 1 / its measured variance (x and y pooled).

    The eyes sit within 0.7% of the width on aligned faces, the nose moves 3% with the head's
    yaw: weighting by the spread fits a face the way CelebA-HQ was aligned (by eyes and
    mouth), and a turned head does not drag the frame sideways.

    >>> w = landmark_weights(); bool(w[0] > w[2])  # an eye counts more than the nose
    True
    """
    template = template or load_template()
    var = np.mean(template.std ** 2, axis=1)
    return 1.0 / np.maximum(var, 1e-8)


def estimate_similarity(src, dst, weights=None) -> np.ndarray:
    """The 3x3 similarity ``[[a, -b, tx], [b, a, ty], [0, 0, 1]]`` that maps the (N, 2) points
    ``src`` closest to ``dst`` in weighted least squares (no reflection; N >= 2).

    >>> src = np.array([[0., 0.], [1., 0.], [0., 1.]])
    >>> (estimate_similarity(src, 2 * src[:, ::-1] * [-1, 1] + 5).round(6) + 0.0)[:2].tolist()
    [[0.0, -2.0, 5.0], [2.0, 0.0, 5.0]]
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two matching sets of >= 2 points, got {src.shape} and {dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    x, y = src[:, 0], src[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    # x' = a x - b y + tx ;  y' = b x + a y + ty : linear in (a, b, tx, ty)
    rows = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
    rhs = np.concatenate([dst[:, 0], dst[:, 1]])
    sw = np.sqrt(np.concatenate([w, w]))
    (a, b, tx, ty), *_ = np.linalg.lstsq(rows * sw[:, None], rhs * sw, rcond=None)
    return np.array([[a, -b, tx], [b, a, ty], [0.0, 0.0, 1.0]])


def similarity_params(matrix) -> tuple[float, float, float, float]:
    """(scale, rotation in degrees, tx, ty) of a similarity matrix; with y pointing down, a
    positive angle turns the x axis towards y (clockwise on screen).

    >>> similarity_params(np.array([[0., -2., 5.], [2., 0., 6.], [0., 0., 1.]]))
    (2.0, 90.0, 5.0, 6.0)
    """
    m = np.asarray(matrix, dtype=np.float64)
    return (float(np.hypot(m[0, 0], m[1, 0])), float(np.degrees(np.arctan2(m[1, 0], m[0, 0]))),
            float(m[0, 2]), float(m[1, 2]))


#: How far a square photo's fitted transform may lie from a plain resize and the photo still
#: count as already in the CelebA-HQ frame: half of what training augmentation shows the
#: model (``data.augment``: scale 0.8-1.25, +-10 degrees, shifts of 5% and more), so a photo
#: taken as it is was inside what the model learnt from. On 149 held-out aligned faces of
#: ``../shared/data`` MTCNN's fit lies within it for 146 (docs/align.md); its
#: own error there (median 2.5% in scale) is landmark noise, not misalignment.
ALIGNED_LOG_SCALE = 0.5 * float(np.log(1.25))
ALIGNED_DEGREES = 5.0
ALIGNED_CENTRE_SHIFT = 0.025  # of the photo's width


def plain_matrix(photo_shape, size: int) -> np.ndarray:
    """Photo -> crop matrix of a plain resize of a square photo to ``size`` (pixel centres).

    >>> plain_matrix((512, 512, 3), 128)[:2].tolist()
    [[0.25, 0.0, -0.375], [0.0, 0.25, -0.375]]
    """
    k = size / photo_shape[1]
    return np.array([[k, 0.0, 0.5 * k - 0.5], [0.0, k, 0.5 * k - 0.5], [0.0, 0.0, 1.0]])


def offset_from_plain(matrix, photo_shape, size: int) -> tuple[float, float, float]:
    """(scale, degrees, centre shift as a fraction of the width) of ``matrix`` against the
    plain resize of a square photo: how far a fit moves the photo's own frame.

    >>> offset_from_plain(plain_matrix((512, 512), 256), (512, 512), 256)
    (1.0, 0.0, 0.0)
    """
    h, w = photo_shape[:2]
    residual = np.linalg.inv(plain_matrix(photo_shape, size)) @ np.asarray(matrix, np.float64)
    scale, degrees, _, _ = similarity_params(residual)
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    shift = float(np.linalg.norm(apply(residual, centre[None])[0] - centre))
    return scale, degrees, shift / w


def already_aligned(matrix, photo_shape, size: int) -> bool:
    """True when the photo is square and ``matrix`` is within :data:`ALIGNED_LOG_SCALE`,
    :data:`ALIGNED_DEGREES` and :data:`ALIGNED_CENTRE_SHIFT` of its plain resize.

    >>> already_aligned(face_matrix(template_points(512), 256), (512, 512), 256)
    True
    >>> already_aligned(face_matrix(template_points(512) * 0.8, 256), (512, 512), 256)
    False
    """
    if photo_shape[0] != photo_shape[1]:
        return False
    scale, degrees, shift = offset_from_plain(matrix, photo_shape, size)
    return bool(abs(np.log(scale)) <= ALIGNED_LOG_SCALE + 1e-9 and abs(degrees) <= ALIGNED_DEGREES
                and shift <= ALIGNED_CENTRE_SHIFT)


def face_matrix(landmarks, size: int, template: Template | None = None,
                photo_shape=None) -> np.ndarray:
    """Photo -> crop matrix for a face with these (5, 2) landmarks and a ``size`` px crop.

    With ``photo_shape``, a square photo whose face already sits in the CelebA-HQ frame
    (:func:`already_aligned`) is taken as it is, a plain resize: refitting it would only move
    this face's landmarks onto the average face's, by the detector's noise.

    >>> (face_matrix(template_points(256), 256).round(6) + 0.0)[:2].tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    >>> shifted = template_points(512) + [4.0, -3.0]   # 5 px off: within the frame's tolerance
    >>> face_matrix(shifted, 512, photo_shape=(512, 512))[:2].tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    template = template or load_template()
    matrix = estimate_similarity(landmarks, template_points(size, template),
                                 landmark_weights(template))
    if photo_shape is not None and already_aligned(matrix, photo_shape, size):
        return plain_matrix(photo_shape, size)
    return matrix


def apply(matrix, points) -> np.ndarray:
    """The (N, 2) ``points`` mapped by the 3x3 ``matrix``.

    >>> apply(np.diag([2., 3., 1.]), [[1, 1]]).tolist()
    [[2.0, 3.0]]
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ np.asarray(matrix)[:2, :2].T + np.asarray(matrix)[:2, 2]


def _footprint_box(matrix, crop_size: int, shape, margin: int = 2):
    """(y0, y1, x0, x1) of ``shape`` (H, W) that the crop's square covers, clipped."""
    c = crop_size - 0.5
    corners = apply(np.linalg.inv(matrix), [[-0.5, -0.5], [c, -0.5], [-0.5, c], [c, c]])
    h, w = shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin + 1
    return int(max(0, y0)), int(min(h, y1)), int(max(0, x0)), int(min(w, x1))


def warp(src: np.ndarray, matrix, out_shape, order: int = 1, box=None):
    """Resample ``src`` (H, W[, C]) by ``matrix`` (src -> out pixels) onto ``out_shape``.

    ``order`` 0 is nearest neighbour (labels), 1 bilinear. Outside ``src`` the edge pixels
    repeat; the second value returned is the mask of output pixels that fell inside ``src``.
    ``box`` = (y0, y1, x0, x1) computes only that window of the output (returned at its size).

    >>> out, inside = warp(np.arange(4.).reshape(2, 2), np.eye(3), (2, 3))
    >>> out.tolist(), inside.tolist()
    ([[0.0, 1.0, 1.0], [2.0, 3.0, 3.0]], [[True, True, False], [True, True, False]])
    """
    src = np.asarray(src)
    h, w = src.shape[:2]
    y0, y1, x0, x1 = box if box is not None else (0, out_shape[0], 0, out_shape[1])
    inv = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    inside = (sx > -0.5) & (sx < w - 0.5) & (sy > -0.5) & (sy < h - 0.5)
    if order == 0:
        ix = np.clip(np.rint(sx), 0, w - 1).astype(np.intp)
        iy = np.clip(np.rint(sy), 0, h - 1).astype(np.intp)
        return src[iy, ix], inside
    fx, fy = np.floor(sx), np.floor(sy)
    ax, ay = sx - fx, sy - fy
    ix0 = np.clip(fx, 0, w - 1).astype(np.intp)
    ix1 = np.clip(fx + 1, 0, w - 1).astype(np.intp)
    iy0 = np.clip(fy, 0, h - 1).astype(np.intp)
    iy1 = np.clip(fy + 1, 0, h - 1).astype(np.intp)
    s = src.astype(np.float32)
    if s.ndim == 3:
        ax, ay = ax[..., None], ay[..., None]
    top = s[iy0, ix0] * (1 - ax) + s[iy0, ix1] * ax
    bottom = s[iy1, ix0] * (1 - ax) + s[iy1, ix1] * ax
    return (top * (1 - ay) + bottom * ay).astype(np.float32), inside


def warp_to_crop(image: np.ndarray, matrix, size: int) -> np.ndarray:
    """The ``size`` x ``size`` uint8 crop of the RGB ``image`` in the frame of ``matrix``.

    When the crop shrinks the face, the photo's window is first downscaled with Pillow's
    antialiasing (as the training pipeline resizes photos), so fine texture does not alias.

    >>> warp_to_crop(np.full((40, 60, 3), 7, np.uint8), np.eye(3), 16).shape
    (16, 16, 3)
    """
    from PIL import Image

    image = np.asarray(image)[..., :3]
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = similarity_params(matrix)[0]
    if scale < 0.75:
        y0, y1, x0, x1 = _footprint_box(matrix, size, image.shape)
        if y1 - y0 >= 2 and x1 - x0 >= 2:
            window = image[y0:y1, x0:x1]
            nw, nh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
            small = np.asarray(Image.fromarray(window).resize((nw, nh), Image.BILINEAR,
                                                              reducing_gap=None))
            kx, ky = nw / (x1 - x0), nh / (y1 - y0)
            # photo pixel x -> small pixel (x - x0 + 0.5) * kx - 0.5, same for y
            to_small = np.array([[kx, 0, (0.5 - x0) * kx - 0.5],
                                 [0, ky, (0.5 - y0) * ky - 0.5], [0, 0, 1]])
            image, matrix = small, matrix @ np.linalg.inv(to_small)
    crop, _ = warp(image, matrix, (size, size), order=1)
    return np.clip(crop + 0.5, 0, 255).astype(np.uint8)


def warp_labels(label: np.ndarray, matrix, size: int) -> np.ndarray:
    """A label map taken into the ``size`` px crop frame (nearest; outside it: background).

    >>> warp_labels(np.ones((4, 4), np.uint8), np.eye(3), 6)[0].tolist()
    [1, 1, 1, 1, 0, 0]
    """
    out, inside = warp(label, matrix, (size, size), order=0)
    return np.where(inside, out, 0).astype(np.uint8)


@dataclass
class Pasted:
    """One face's parse in photo pixels, within ``box`` = (y0, y1, x0, x1) of the photo:
    ``labels`` (nearest), ``claimed`` (the crop's square covers the pixel), ``centre`` (x, y)."""

    box: tuple[int, int, int, int]
    labels: np.ndarray
    claimed: np.ndarray
    centre: np.ndarray


def paste_back(crop_labels: np.ndarray, matrix, photo_shape, centre=None) -> Pasted:
    """The crop's (S, S) label map taken back into a photo of ``photo_shape`` (nearest).

    ``centre`` (x, y) defaults to the crop's centre mapped into the photo.

    >>> p = paste_back(np.full((4, 4), 3, np.uint8), np.diag([2., 2., 1.]), (10, 10))
    >>> p.box, int(p.claimed.sum()), int(p.labels[p.claimed].min())
    ((0, 5, 0, 5), 4, 3)
    """
    size = crop_labels.shape[0]
    box = _footprint_box(matrix, size, photo_shape)
    inv = np.linalg.inv(matrix)
    labels, claimed = warp(crop_labels, inv, photo_shape, order=0, box=box)
    if centre is None:
        centre = apply(inv, [[(size - 1) / 2, (size - 1) / 2]])[0]
    return Pasted(box, np.where(claimed, labels, 0).astype(np.uint8), claimed,
                  np.asarray(centre, dtype=np.float64))


def _owners(pasted: list[Pasted], shape) -> np.ndarray:
    """(H, W) int: index of the face that owns each pixel, -1 where none claims it."""
    owner = np.full(shape[:2], -1, dtype=np.int32)
    best = np.full(shape[:2], np.inf, dtype=np.float32)
    for i, p in enumerate(pasted):
        y0, y1, x0, x1 = p.box
        ys, xs = np.mgrid[y0:y1, x0:x1]
        dist = np.hypot(xs - p.centre[0], ys - p.centre[1]).astype(np.float32)
        win_best, win_owner = best[y0:y1, x0:x1], owner[y0:y1, x0:x1]
        take = p.claimed & (dist < win_best)
        win_best[take] = dist[take]
        win_owner[take] = i
    return owner


def compose(pasted: list[Pasted], shape) -> tuple[np.ndarray, np.ndarray]:
    """One (H, W) uint8 label map from all faces' parses, and the owner map (face index per
    pixel, -1 where no face's crop reaches: background). A pixel inside two faces' crops
    goes to the face whose centre is nearer.

    >>> a = paste_back(np.full((4, 4), 1, np.uint8), np.eye(3), (4, 8))
    >>> shift = np.array([[1., 0, -3], [0, 1, 0], [0, 0, 1]])  # photo x 3..6 -> crop 0..3
    >>> b = paste_back(np.full((4, 4), 2, np.uint8), shift, (4, 8))
    >>> compose([a, b], (4, 8))[0][0].tolist()  # column 3 is as near to both: the first wins
    [1, 1, 1, 1, 2, 2, 2, 0]
    """
    owner = _owners(pasted, shape)
    labels = np.zeros(shape[:2], dtype=np.uint8)
    for i, p in enumerate(pasted):
        y0, y1, x0, x1 = p.box
        mine = owner[y0:y1, x0:x1] == i
        labels[y0:y1, x0:x1][mine] = p.labels[mine]
    return labels, owner


def paste_overlay(image: np.ndarray, crops_rgba, matrices, owner: np.ndarray) -> np.ndarray:
    """The photo with each face's colour overlay pasted back bilinearly (smooth edges).

    ``crops_rgba``: per face an (S, S, 4) float array, colour premultiplied by its opacity
    in the last channel (``visualization.viz.colorize`` times the overlay's alpha, 0 on
    background); ``owner`` from :func:`compose` says which face paints which pixel.

    >>> rgba = np.zeros((4, 4, 4), np.float32); rgba[..., 0] = 255; rgba[..., 3] = 1
    >>> img = np.zeros((4, 6, 3), np.uint8); owner = np.zeros((4, 6), int); owner[:, 4:] = -1
    >>> paste_overlay(img, [rgba], [np.eye(3)], owner)[0, :, 0].tolist()
    [255, 255, 255, 255, 0, 0]
    """
    out = np.asarray(image)[..., :3].astype(np.float32)
    for i, (rgba, matrix) in enumerate(zip(crops_rgba, matrices)):
        box = _footprint_box(matrix, rgba.shape[0], out.shape)
        y0, y1, x0, x1 = box
        warped, inside = warp(rgba, np.linalg.inv(matrix), out.shape[:2], order=1, box=box)
        mine = (owner[y0:y1, x0:x1] == i) & inside
        alpha = np.where(mine, warped[..., 3], 0.0)[..., None]
        colour = np.where(mine[..., None], warped[..., :3], 0.0)
        window = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = window * (1.0 - alpha) + colour
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)

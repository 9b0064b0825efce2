"""align: the similarity fit, the warps, paste-back and composing faces; on real faces
(slow: the MTCNN detector) near-identity on aligned photos, recovery of a known placement,
and two faces in one photo."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils.face import align as A
from celebseg_utils.labels import BACKGROUND_ID, NUM_CLASSES

#: Faces of the test split of the default `celebseg prepare` split (seed 0) of the mini set:
#: the template (train split) never saw them, nor did the cpu-real model.
HELD_OUT = (14, 15, 17, 18, 32)


def test_doctests():
    assert doctest.testmod(A).failed == 0


def _similarity(scale, degrees, tx, ty):
    t = np.radians(degrees)
    return np.array([[scale * np.cos(t), -scale * np.sin(t), tx],
                     [scale * np.sin(t), scale * np.cos(t), ty], [0, 0, 1]])


def mean_iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean IoU over the classes present in either map (background included)."""
    ious = []
    for c in range(NUM_CLASSES):
        t, p = truth == c, pred == c
        union = np.logical_or(t, p).sum()
        if union:
            ious.append(np.logical_and(t, p).sum() / union)
    return float(np.mean(ious))


# --------------------------------------------------------------------------- the fit

@pytest.mark.parametrize("scale,degrees,tx,ty", [(1, 0, 0, 0), (0.3, 30, 50, -20),
                                                 (2.5, -170, -300, 400), (0.01, 5, 1, 1)])
def test_similarity_is_recovered_exactly_from_five_points(scale, degrees, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (5, 2))
    m = _similarity(scale, degrees, tx, ty)
    est = A.estimate_similarity(src, A.apply(m, src), weights=rng.uniform(0.1, 5, 5))
    np.testing.assert_allclose(est, m, atol=1e-9 + 1e-9 * scale)
    s, d, etx, ety = A.similarity_params(est)
    assert (s, d) == pytest.approx((scale, degrees), abs=1e-6)


def test_a_weightless_landmark_does_not_pull_the_fit():
    src = A.template_points(512)
    dst = src.copy()
    dst[2] += [80, -40]  # the nose wildly off: with weight 0 the other four decide alone
    est = A.estimate_similarity(src, dst, weights=[1, 1, 0, 1, 1])
    np.testing.assert_allclose(est, np.eye(3), atol=1e-9)
    unweighted = A.estimate_similarity(src, dst)
    assert abs(unweighted[0, 2]) > 5  # while an equal weight drags the frame sideways


def test_a_reflection_is_never_fitted():
    src = A.template_points(128)
    mirrored = src * [-1, 1] + [128, 0]
    s, _, _, _ = A.similarity_params(A.estimate_similarity(src, mirrored))
    m = A.estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:2, :2]) >= 0 and s < 0.5  # the best rotation is a poor fit


def test_the_packaged_template_was_measured_and_is_a_frontal_face():
    doc = json.loads(A.TEMPLATE_FILE.read_text())
    assert doc["faces_detected"] >= 400 and len(doc["face_ids"]) == doc["faces_detected"]
    assert "measure_align_template.py" in doc["command"]
    t = A.load_template()
    # eyes level and mirror images of each other about the vertical centre line, the nose
    # between them, the mouth below the nose: a frontal face
    assert abs(t.points[0, 1] - t.points[1, 1]) < 0.01
    assert abs(t.points[0, 0] + t.points[1, 0] - 1) < 0.02
    assert t.points[0, 0] < t.points[2, 0] < t.points[1, 0]
    assert t.points[2, 1] < t.points[3, 1] and t.points[2, 1] < t.points[4, 1]
    assert (t.std > 0).all() and (t.std < 0.05).all()
    assert not set(HELD_OUT) & set(doc["face_ids"])


def test_the_template_maps_to_itself_at_every_size():
    for size in (64, 128, 512):
        m = A.face_matrix(A.template_points(512), size)
        s, d, tx, ty = A.similarity_params(m)
        assert (s, d) == pytest.approx((size / 512, 0), abs=1e-9)
        # pixel centres: pixel 0..511 spans the same square as 0..size-1
        np.testing.assert_allclose(A.apply(m, [[-0.5, -0.5], [511.5, 511.5]]),
                                   [[-0.5, -0.5], [size - 0.5, size - 0.5]], atol=1e-9)


# --------------------------------------------------------------------------- warps

def test_identity_warp_is_exact_for_labels_and_images():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    lab = rng.integers(0, 19, (37, 53), dtype=np.uint8)
    out, inside = A.warp(img, np.eye(3), (37, 53), order=1)
    assert inside.all() and np.array_equal(out.astype(np.uint8), img)
    out, _ = A.warp(lab, np.eye(3), (37, 53), order=0)
    assert np.array_equal(out, lab)


def test_integer_shifts_move_pixels_exactly_and_the_edge_repeats():
    img = np.arange(20, dtype=np.float32).reshape(4, 5)
    shift = np.array([[1, 0, 2], [0, 1, 1], [0, 0, 1]], float)  # src (x, y) -> (x + 2, y + 1)
    out, inside = A.warp(img, shift, (4, 5), order=1)
    assert np.array_equal(out[1:, 2:], img[:3, :3])
    assert not inside[0].any() and not inside[:, :2].any()
    assert np.array_equal(out[1:, 0], img[:3, 0])  # left of the source: its edge column


def test_a_rotated_label_map_comes_back_by_the_inverse_warp():
    lab = np.zeros((200, 200), np.uint8)
    lab[50:150, 60:140] = 1
    lab[80:100, 70:90] = 4
    m = _similarity(1.3, 25, 40, -30)
    there = A.warp_labels(lab, m, 320)
    back = A.warp_labels(there, np.linalg.inv(m), 200)
    assert (back != lab).mean() < 0.01  # nearest neighbour twice: only boundary pixels move


def test_crop_of_a_shrunk_face_is_antialiased_like_a_resize():
    # a 1-pixel checkerboard averages to grey when shrunk 4x: an aliasing warp would give
    # black or white stripes, the antialiased one grey close to Pillow's own resize
    board = (np.indices((512, 512)).sum(0) % 2 * 255).astype(np.uint8)
    photo = np.repeat(board[..., None], 3, axis=2)
    m = A.face_matrix(A.template_points(512), 128)
    crop = A.warp_to_crop(photo, m, 128).astype(float)
    assert abs(crop.mean() - 127.5) < 2 and crop.std() < 4


def test_crop_follows_the_face_not_the_photo_frame():
    # a bright square drawn at the template's nose, in a photo rotated and shifted
    photo = np.zeros((400, 600, 3), np.uint8)
    pts = A.template_points(256)
    m_place = _similarity(0.8, -20, 200, 60)  # where the 256 px face lies in the photo
    nose = A.apply(m_place, pts[2:3])[0]
    x, y = np.round(nose).astype(int)
    photo[y - 3:y + 4, x - 3:x + 4] = 255
    m = A.face_matrix(A.apply(m_place, pts), 64)
    crop = A.warp_to_crop(photo, m, 64)
    cy, cx = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    expected = A.template_points(64)[2]
    assert abs(cx - expected[0]) <= 1.5 and abs(cy - expected[1]) <= 1.5


# --------------------------------------------------------------------------- paste back

def test_paste_back_covers_the_crop_footprint_only():
    # photo -> crop: the crop sees a region twice its size, turned 30 degrees, inside the photo
    m = np.linalg.inv(_similarity(2, 30, 100, 40))
    crop = np.full((32, 32), 7, np.uint8)
    p = A.paste_back(crop, m, (200, 200))
    # 32x32 crop pixels at scale 0.5 cover 64x64 = 4096 photo pixels
    assert abs(int(p.claimed.sum()) - 4096) < 4096 * 0.04
    assert (p.labels[p.claimed] == 7).all() and (p.labels[~p.claimed] == 0).all()
    centre = A.apply(np.linalg.inv(m), [[15.5, 15.5]])[0]
    np.testing.assert_allclose(p.centre, centre)


def test_compose_gives_an_overlap_to_the_nearer_face_centre():
    shape = (100, 200)
    a = A.paste_back(np.full((100, 120), 1, np.uint8)[:100, :100], np.eye(3), shape)
    b_matrix = np.array([[1, 0, -70], [0, 1, 0], [0, 0, 1]], float)  # covers x 70..169
    b = A.paste_back(np.full((100, 100), 2, np.uint8), b_matrix, shape)
    labels, owner = A.compose([a, b], shape)
    # centres at x 49.5 and 119.5: the overlap 70..99 splits at 84.5
    assert (labels[:, :85] == 1).all() and (labels[:, 85:170] == 2).all()
    assert (labels[:, 170:] == BACKGROUND_ID).all() and (owner[:, 170:] == -1).all()


def test_overlay_matches_the_plain_overlay_away_from_edges():
    from celebseg_utils.engine.predict import _overlay_rgba
    from celebseg_utils.visualization import viz

    rng = np.random.default_rng(2)
    crop_labels = np.zeros((64, 64), np.uint8)
    crop_labels[10:50, 12:40] = 1
    crop_labels[20:30, 15:25] = 4
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    owner = np.zeros((64, 64), int)
    smooth = A.paste_overlay(photo, [_overlay_rgba(crop_labels)], [np.eye(3)], owner)
    plain = viz.overlay(photo, crop_labels)
    assert np.abs(smooth.astype(int) - plain.astype(int)).max() <= 1  # identity: no blur


# --------------------------------------------------------------------------- real faces

def _mini(mini: Path, k: int):
    photo = np.asarray(Image.open(mini / "images" / f"{k}.jpg").convert("RGB"))
    label = np.asarray(Image.open(mini / "labels" / f"{k}.png"))
    return photo, label


@pytest.fixture(scope="module")
def detector():
    pytest.importorskip("mtcnn", reason="the [align] extra (mtcnn) is not installed")
    from celebseg_utils.face.detect import FaceDetector

    return FaceDetector()


def _place(photo, label, canvas_shape, m, fill=(90, 110, 130)):
    """The face drawn into a canvas by the similarity ``m`` (face -> canvas), with its label."""
    canvas = np.empty(canvas_shape + (3,), np.uint8)
    canvas[:] = fill
    warped, inside = A.warp(photo, np.asarray(m), canvas_shape, order=1)
    canvas[inside] = np.clip(warped[inside] + 0.5, 0, 255).astype(np.uint8)
    lab, inside = A.warp(label, np.asarray(m), canvas_shape, order=0)
    return canvas, np.where(inside, lab, 0).astype(np.uint8)


def frequency_weighted_iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """IoU per class weighted by the class's share of the true pixels."""
    total = 0.0
    for c in np.unique(truth):
        t, p = truth == c, pred == c
        total += t.mean() * np.logical_and(t, p).sum() / np.logical_or(t, p).sum()
    return float(total)


@pytest.mark.slow
def test_an_aligned_face_maps_to_nearly_the_identity(real_mini_dir, detector):
    """(a) held-out aligned faces, in two parts.

    The fit itself: the transform MTCNN's landmarks give is the identity up to the detector's
    landmark noise. Its eye positions on aligned faces spread by 0.7-1.4% of the width (the
    template's std), and on 149 held-out faces the fit's own error is a median 2.5% in scale,
    0.7 degrees and 0.5% of the width at the centre (docs/align.md): warped by
    it, a label map keeps a mean IoU of about 0.73 (the eyes, brows and earrings lose a third).
    The bounds below hold with a margin over those medians.

    The default path (``face_matrix`` given the photo's shape): a square photo whose fit lies
    within that noise of the frame (``already_aligned``: half the training augmentation) is
    taken as it is, so the label map comes through unchanged: mean IoU >= 0.95, as asked."""
    raw_fw, raw_miou, miou = [], [], []
    for i, k in enumerate(HELD_OUT):
        photo, label = _mini(real_mini_dir, k)
        (face,) = detector(photo)
        if i < 3:
            m = A.face_matrix(face.landmarks, 512)
            s, d, tx, ty = A.similarity_params(m)
            assert abs(s - 1) < 0.05 and abs(d) < 2 and np.hypot(tx, ty) < 25, (k, s, d, tx, ty)
            warped = A.warp_labels(label, m, 512)
            raw_fw.append(frequency_weighted_iou(label, warped))
            raw_miou.append(mean_iou(label, warped))
        m = A.face_matrix(face.landmarks, 512, photo_shape=photo.shape)
        miou.append(mean_iou(label, A.warp_labels(label, m, 512)))
    # the fit alone, measured on the first three: 0.88 / 0.94 / 0.81 and 0.79 / 0.72 / 0.64
    assert np.mean(raw_fw) >= 0.85 and np.mean(raw_miou) >= 0.65, (raw_fw, raw_miou)
    assert np.mean(miou) >= 0.95, miou


def test_the_aligned_tolerance_is_half_the_training_augmentation():
    from celebseg_utils.data import augment

    assert A.ALIGNED_LOG_SCALE == pytest.approx(0.5 * np.log(augment.SCALE_RANGE[1]))
    assert A.ALIGNED_LOG_SCALE == pytest.approx(-0.5 * np.log(augment.SCALE_RANGE[0]), rel=0.01)
    assert A.ALIGNED_DEGREES == 0.5 * augment.MAX_ROTATION_DEG
    assert A.ALIGNED_CENTRE_SHIFT == 0.5 * augment.MAX_SHIFT


@pytest.mark.parametrize("scale,degrees,shift,aligned", [
    (1.0, 0.0, 0.0, True), (1.1, 4.5, 0.02, True), (0.9, -4.5, 0.02, True),
    (1.15, 0.0, 0.0, False), (1.0, 6.0, 0.0, False), (1.0, 0.0, 0.03, False)])
def test_only_a_face_near_the_frame_is_taken_as_it_is(scale, degrees, shift, aligned):
    """The template's landmarks moved by a known similarity about the photo's centre, in a
    512 px square photo: taken as it is (a plain resize) exactly when within the tolerance;
    never in a photo that is not square."""
    c = 255.5
    move = (_similarity(1, 0, c + shift * 512, c) @ _similarity(scale, degrees, 0, 0)
            @ _similarity(1, 0, -c, -c))
    points = A.apply(move, A.template_points(512))
    m = A.face_matrix(points, 256, photo_shape=(512, 512, 3))
    assert np.allclose(m, A.plain_matrix((512, 512), 256)) == aligned
    if aligned:  # the fit and the plain resize differ by the move (none for the first)
        unmoved = (scale, degrees, shift) == (1.0, 0.0, 0.0)
        assert np.allclose(m, A.face_matrix(points, 256)) == unmoved
    else:
        assert np.array_equal(m, A.face_matrix(points, 256))
    # a photo that is not square is always fitted
    assert np.array_equal(A.face_matrix(points, 256, photo_shape=(512, 640, 3)),
                          A.face_matrix(points, 256))


@pytest.mark.slow
@pytest.mark.parametrize("k,scale,degrees,offset", [(15, 1.0, 30, (40, 90)),
                                                    (17, 0.55, -25, (420, 60)),
                                                    (18, 0.3, 12, (150, 330))])
def test_a_placed_face_is_recovered_through_align_and_paste_back(real_mini_dir, detector, k, scale,
                                                                 degrees, offset):
    """(b) a real face put into a larger canvas with a known rotation, scale and offset:
    its label map through align (crop) and paste-back matches the known placement."""
    photo, label = _mini(real_mini_dir, k)
    (orig,) = detector(photo)
    m_orig = A.face_matrix(orig.landmarks, 512)  # this face's own frame, near identity
    place = _similarity(scale, degrees, *offset)  # face photo -> canvas
    canvas, truth = _place(photo, label, (620, 760), place)
    faces = detector(canvas)
    assert len(faces) == 1, [f.box for f in faces]
    m = A.face_matrix(faces[0].landmarks, 512, photo_shape=canvas.shape)  # canvas -> crop
    # the transform found on the canvas undoes the placement: it equals the face's own
    s, d, _, _ = A.similarity_params(m @ place @ np.linalg.inv(m_orig))
    assert abs(s - 1) < 0.05 and abs(d) < 3, (s, d)
    # a perfect parser's crop: the original label map seen through canvas -> crop
    crop_labels = A.warp_labels(label, m @ place, 512)
    pasted = A.paste_back(crop_labels, m, canvas.shape, faces[0].centre)
    labels, _ = A.compose([pasted], canvas.shape)
    assert mean_iou(truth, labels) >= 0.90


@pytest.mark.slow
def test_two_faces_in_one_photo_get_two_parses_in_the_right_places(real_mini_dir, detector):
    """(c) two real faces side by side at different sizes: two faces, each parse where its
    face is, the pixels between them split by the nearer centre."""
    shape = (560, 900)
    canvas = np.full(shape + (3,), 100, np.uint8)
    truth = np.zeros(shape, np.uint8)
    places = [_similarity(0.8, 8, -30, 60), _similarity(0.55, -15, 480, 140)]
    for k, place in zip(HELD_OUT[3:5], places):
        photo, label = _mini(real_mini_dir, k)
        c, t = _place(photo, label, shape, place)
        inside = A.warp(np.ones(photo.shape[:2]), place, shape, order=0)[1]
        # the faces' own 512 px squares overlap near x 380-410; the later one lies on top
        canvas[inside], truth[inside] = c[inside], t[inside]
    faces = sorted(detector(canvas), key=lambda f: f.centre[0])
    assert len(faces) == 2
    pasted, centres = [], []
    for face, k, place in zip(faces, HELD_OUT[3:5], places):
        _, label = _mini(real_mini_dir, k)
        m = A.face_matrix(face.landmarks, 256)
        pasted.append(A.paste_back(A.warp_labels(label, m @ place, 256), m, shape, face.centre))
        centres.append(A.apply(place, [[255.5, 300]])[0])  # each face's middle, by placement
    labels, owner = A.compose(pasted, shape)
    for i, (x, y) in enumerate(centres):
        assert owner[int(y), int(x)] == i
    for i, place in enumerate(places):
        inside = A.warp(np.ones((512, 512)), place, shape, order=0)[1]
        region = inside & ((owner == i) | (owner == -1))
        assert mean_iou(truth[region], labels[region]) >= 0.85, i
    assert mean_iou(truth, labels) >= 0.85

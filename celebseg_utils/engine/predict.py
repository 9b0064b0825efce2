"""Inference on photos of any size: ``celebseg predict``.

The model is loaded and run by :mod:`celebseg_utils.engine.inference`: a photo is padded to
a square, resized to the model's input size with antialiasing, run through the model, and
the logits are resized back and cropped to the photo, optionally averaged with those of the
mirrored photo (flip test-time augmentation).

For each photo ``OUT/<stem>.png`` (uint8 label map, mode L, the photo's size) and
``OUT/<stem>_overlay.png`` (the photo with the colourised labels) are written. Photos are
read by :func:`celebseg_utils.data.photo.read_photo`: upright as their EXIF orientation
says (the label map has the size a viewer shows), any bit depth and colour mode, the first
frame of an animation (with a ``note:`` line). Unreadable photos, photos with a side under
``photo.MIN_SIDE`` px and photos too large for this machine's memory stop the run before
anything is written, unless ``skip_bad`` leaves them out.

With ``align=True`` (``--align``) the photo is not parsed whole: every face is detected
(``face.detect``), taken into the CelebA-HQ frame at the model's input size
(``face.align``), parsed there (with the same flip TTA), and its parse pasted back; the
faces are composed into one label map of the photo (:func:`parse_photo`). A photo with no
face, only faces too small to parse (eye distance under ``min_eye_distance`` pixels), or a
detector failure is a bad photo like an unreadable one. ``save_crops`` also writes each
aligned face ``<stem>_face<i>.png`` with its parse (``_labels``, ``_overlay``).

>>> from celebseg_utils.engine.predict import predict_images
>>> predict_images("runs/demo/best.keras", ["face.jpg"], "out/")  # doctest: +SKIP
[PosixPath('out/face.png'), PosixPath('out/face_overlay.png')]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from celebseg_utils.data.masks import BadFileError
from celebseg_utils.data.photo import Photo, pixel_limit, probe_photo, read_photo
from celebseg_utils.visualization import viz
from celebseg_utils.face import align as geom
from celebseg_utils.face.detect import INSTALL_HINT, Face, FaceDetector
from celebseg_utils.engine.inference import input_size, load_model, predict_labels
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_path
from celebseg_utils.labels import BACKGROUND_ID

#: What a folder given to ``predict`` is searched for.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: Smallest eye distance (photo pixels) ``--align`` parses; see docs/align.md ("Too small to
#: parse") for the measurement behind it.
MIN_EYE_DISTANCE = 16.0
#: Opacity of the colour overlay, as ``visualization.viz.overlay`` draws it.
OVERLAY_ALPHA = 0.5


def read_photo_checked(path) -> Photo:
    """The photo at ``path`` as :func:`celebseg_utils.data.photo.read_photo` decodes it
    (upright by its EXIF orientation, any bit depth and colour mode, sides of at least
    ``photo.MIN_SIDE`` px, within this machine's memory); CelebsegError naming the file.

    >>> read_photo_checked("phone.jpg").rgb.shape  # doctest: +SKIP
    (4032, 3024, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise CelebsegError(f"image {path} not found: give the path of an existing photo")
    try:
        return read_photo(path)
    except BadFileError as exc:
        if exc.reason.startswith(("unreadable", "empty")):
            raise CelebsegError(f"{path} is not a readable image ({exc.reason}): give a JPEG "
                                f"or PNG photo") from None
        raise CelebsegError(str(exc)) from None


def read_image(path) -> np.ndarray:
    """RGB uint8 (H, W, 3) array of the photo at ``path``, upright; CelebsegError if it is
    not one (see :func:`read_photo_checked`).

    >>> read_image("face.jpg").shape  # doctest: +SKIP
    (1024, 1024, 3)
    """
    return read_photo_checked(path).rgb


@dataclass
class AlignedParse:
    """What :func:`parse_photo` makes of one photo: ``labels`` (H, W) uint8 and ``overlay``
    (H, W, 3) in photo pixels, ``owner`` (H, W) the index of the face each pixel was taken
    from (-1: no face's crop reaches it, background); per face, largest first, its
    :class:`~celebseg_utils.face.detect.Face`, photo -> crop ``matrices``, the aligned
    ``crops`` and their parses ``crop_labels`` (S, S) at the model's input size S."""

    labels: np.ndarray
    overlay: np.ndarray
    owner: np.ndarray
    faces: list
    matrices: list
    crops: list
    crop_labels: list


def _overlay_rgba(crop_labels: np.ndarray) -> np.ndarray:
    """(S, S, 4) float: the overlay's colour premultiplied by its opacity, 0 on background."""
    alpha = np.where(crop_labels != BACKGROUND_ID, OVERLAY_ALPHA, 0.0).astype(np.float32)
    colours = viz.colorize(crop_labels).astype(np.float32)
    return np.concatenate([colours * alpha[..., None], alpha[..., None]], axis=-1)


def compose_parse(image: np.ndarray, faces, matrices, crops, crop_labels) -> AlignedParse:
    """Paste each face's crop parse back into ``image`` and compose them (no model here).

    >>> from celebseg_utils.face.align import template_points
    >>> face = Face((0, 0, 64, 64), template_points(64), 1.0)
    >>> crop = np.ones((64, 64), np.uint8)
    >>> p = compose_parse(np.zeros((64, 64, 3), np.uint8), [face], [np.eye(3)], [None], [crop])
    >>> int(p.labels.min()), int(p.overlay.max()) > 0
    (1, True)
    """
    image = np.asarray(image)[..., :3]
    pasted = [geom.paste_back(cl, m, image.shape, f.centre)
              for f, m, cl in zip(faces, matrices, crop_labels)]
    labels, owner = geom.compose(pasted, image.shape)
    overlay = geom.paste_overlay(image, [_overlay_rgba(cl) for cl in crop_labels], matrices,
                                 owner)
    return AlignedParse(labels, overlay, owner, list(faces), list(matrices), list(crops),
                        list(crop_labels))


def split_faces(faces, min_eye_distance: float = MIN_EYE_DISTANCE):
    """(large enough to parse, too small) of the detected ``faces``.

    >>> from celebseg_utils.face.align import template_points
    >>> big = Face((0, 0, 1, 1), template_points(512), 1.0)
    >>> [len(x) for x in split_faces([big, Face((0, 0, 1, 1), template_points(32), 1.0)])]
    [1, 1]
    """
    keep = [f for f in faces if f.eye_distance >= min_eye_distance]
    return keep, [f for f in faces if f.eye_distance < min_eye_distance]


def _no_usable_face(faces, min_eye_distance: float) -> str:
    if not faces:
        return "no face found (--align parses faces; leave it out to parse the whole photo)"
    largest = max(f.eye_distance for f in faces)
    return (f"{len(faces)} face(s) found, all too small to parse (largest eye distance "
            f"{largest:.0f} px, under the {min_eye_distance:g} px of --min-eye-distance): "
            f"use a photo where the face is larger")


def parse_photo(model, image: np.ndarray, faces=None, detector=None, tta=None,
                batch_size: int = 4, min_eye_distance: float = MIN_EYE_DISTANCE) -> AlignedParse:
    """Detect (unless ``faces`` are given), align, parse and paste back every face of an RGB
    photo; faces with an eye distance under ``min_eye_distance`` pixels are left out, and
    CelebsegError says so when no face is left.

    >>> p = parse_photo("best.keras", read_image("two_people.jpg"), tta="flip")  # doctest: +SKIP
    >>> len(p.faces), p.labels.shape  # doctest: +SKIP
    (2, (683, 1024))
    """
    model = load_model(model)
    size = input_size(model)
    image = np.asarray(image)[..., :3]
    if faces is None:
        faces = (detector or FaceDetector())(image)
    keep, _ = split_faces(faces, min_eye_distance)
    if not keep:
        raise CelebsegError(_no_usable_face(faces, min_eye_distance))
    matrices = [geom.face_matrix(f.landmarks, size, photo_shape=image.shape) for f in keep]
    crops = [geom.warp_to_crop(image, m, size) for m in matrices]
    crop_labels = predict_labels(model, crops, tta, batch_size)
    return compose_parse(image, keep, matrices, crops, crop_labels)


def image_files(paths) -> list[Path]:
    """The photos named by ``paths``: files as given; a folder stands for its images
    (:data:`IMAGE_SUFFIXES`, sorted, not recursive, hidden files left out).

    >>> image_files(["a.jpg", "b.png"])
    [PosixPath('a.jpg'), PosixPath('b.png')]
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise CelebsegError(f"folder {path} has no images ({', '.join(IMAGE_SUFFIXES)}): "
                                f"pass photo files or a folder of photos")
        files.extend(found)
    return files


def _output_names(path: Path, crops: int = 0) -> list[str]:
    """What predict writes for ``path``: labels, overlay, and per saved face crop three."""
    names = [f"{path.stem}.png", f"{path.stem}_overlay.png"]
    for i in range(crops):
        names += [f"{path.stem}_face{i}.png", f"{path.stem}_face{i}_labels.png",
                  f"{path.stem}_face{i}_overlay.png"]
    return names


def _check_outputs(paths: list[Path], out_dir: Path, crops: dict | None = None) -> None:
    """Refuse outputs that would clash: a file as --out, two photos with one name, or an
    output path that is one of the photos (``predict face.png --out .``). ``crops``: the
    number of face crops each photo will write (``--save-crops``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CelebsegError(f"--out {out_dir} is a file; predict writes a folder of PNGs: "
                            f"choose another --out")
    stems = [p.stem for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise CelebsegError(f"several images share the name {dup[0]!r} and would overwrite each "
                            f"other's outputs in {out_dir}: predict them into separate folders")
    inputs = {p.resolve() for p in paths}
    for p in paths:
        for name in _output_names(p, (crops or {}).get(p, 0)):
            if (out_dir / name).resolve() in inputs:
                raise CelebsegError(f"the output {out_dir / name} (of {p.name}) would "
                                    f"overwrite an input photo: choose another --out")


def _readable(paths: list[Path], skip_bad: bool) -> list[Path]:
    """The photos that open; an unreadable one raises, or with ``skip_bad`` warns."""
    bad = []
    for p in paths:  # fail (or drop the bad ones) before any work or any output
        try:
            for note in read_photo_checked(p).notes:
                print(f"note: {p}: {note}", file=sys.stderr)
        except CelebsegError as exc:
            if not skip_bad:
                more = (f"; nothing was written (--skip-bad predicts the other "
                        f"{len(paths) - 1})" if len(paths) > 1 else "")
                raise CelebsegError(f"{exc}{more}") from None
            bad.append(p)
            print(f"warning: skipped {exc}", file=sys.stderr)
    good = [p for p in paths if p not in bad]
    if not good:
        raise CelebsegError(f"none of the {len(bad)} images is readable: nothing to predict")
    return good


def _chunks_within_memory(paths: list[Path], batch_size: int):
    """``paths`` in chunks of at most ``batch_size`` whose photos' pixels together fit in
    memory (``photo.pixel_limit``): a chunk's full-size logits are all held at once, so
    four photos that each fit may not fit together."""
    limit, chunk, pixels = pixel_limit(), [], 0
    for p in paths:
        width, height = probe_photo(p).size
        if chunk and (len(chunk) == batch_size or pixels + width * height > limit):
            yield chunk
            chunk, pixels = [], 0
        chunk.append(p)
        pixels += width * height
    if chunk:
        yield chunk


def _save(array: np.ndarray, path: Path, written: list[Path]) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp)
    written.append(path)


def detect_all(paths: list[Path], detector, min_eye_distance: float, skip_bad: bool,
               progress: bool = True) -> dict[Path, list[Face]]:
    """Faces large enough to parse, per photo, before anything is written. A photo with none
    (or where the detector fails) stops the run, or with ``skip_bad`` is left out with a
    ``warning:`` line; faces too small beside a usable one get a ``warning:`` line each."""
    from tqdm.auto import tqdm

    found: dict[Path, list[Face]] = {}
    for p in tqdm(paths, desc="detect", unit="img", disable=not progress):
        try:
            try:
                faces = detector(read_image(p))
            except CelebsegError as exc:
                raise CelebsegError(f"{p}: {exc}") from None
            keep, small = split_faces(faces, min_eye_distance)
            if not keep:
                raise CelebsegError(f"{p}: {_no_usable_face(faces, min_eye_distance)}")
        except CelebsegError as exc:
            if not skip_bad:
                more = (f"; nothing was written (--skip-bad predicts the other "
                        f"{len(paths) - 1})" if len(paths) > 1 else "")
                raise CelebsegError(f"{exc}{more}") from None
            print(f"warning: skipped {exc}", file=sys.stderr)
            continue
        for f in small:
            x, y = f.centre
            print(f"warning: {p}: left out a face at ({x:.0f}, {y:.0f}) too small to parse "
                  f"(eye distance {f.eye_distance:.0f} px < {min_eye_distance:g} px)",
                  file=sys.stderr)
        found[p] = keep
    if not found:
        raise CelebsegError(f"no face to parse in any of the {len(paths)} photos: "
                            f"nothing to predict")
    return found


def predict_images(model, image_paths, out_dir, tta=None, batch_size: int = 4,
                   progress: bool = True, pad_mode: str = "edge",
                   skip_bad: bool = False, align: bool = False, save_crops: bool = False,
                   min_eye_distance: float = MIN_EYE_DISTANCE, detector=None) -> list[Path]:
    """Write ``<stem>.png`` (labels) and ``<stem>_overlay.png`` per image; returns the paths.

    ``model``: a keras.Model or a ``.keras`` path. ``tta``: None or "flip". A folder in
    ``image_paths`` stands for its photos (:func:`image_files`). Every photo is checked
    before anything is written: an unreadable one stops the run with nothing written, or
    with ``skip_bad`` is left out with a ``warning:`` line on stderr (all unreadable: error).
    ``align``: parse each detected face in the CelebA-HQ frame (:func:`parse_photo`); photos
    without a usable face count as bad ones; ``save_crops`` also writes the aligned faces.
    ``detector``: a :class:`~celebseg_utils.face.detect.FaceDetector` to reuse.

    >>> predict_images("best.keras", ["a.jpg", "b.png"], "pred", tta="flip")  # doctest: +SKIP
    [PosixPath('pred/a.png'), PosixPath('pred/a_overlay.png'), PosixPath('pred/b.png'), ...]
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise CelebsegError(f"--batch-size must be at least 1 (got {batch_size})")
    if save_crops and not align:
        raise CelebsegError("--save-crops saves the aligned faces: add --align")
    if align and not min_eye_distance > 0:
        raise CelebsegError(f"--min-eye-distance must be positive (got {min_eye_distance})")
    paths = image_files(image_paths)
    if not paths:
        raise CelebsegError("no images given: pass one or more photo paths")
    out_dir = Path(out_dir)
    _check_outputs(paths, out_dir)
    paths = _readable(paths, skip_bad)
    if align:
        detector = detector or FaceDetector()  # the missing-mtcnn error before slow work
        found = detect_all(paths, detector, min_eye_distance, skip_bad, progress)
        paths = [p for p in paths if p in found]
        _check_outputs(paths, out_dir, {p: len(found[p]) if save_crops else 0 for p in paths})
    model = load_model(model)
    written: list[Path] = []
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress) as bar:
        if align:
            for path in paths:
                image = read_image(path)
                parse = parse_photo(model, image, found[path], tta=tta, batch_size=batch_size,
                                    min_eye_distance=min_eye_distance)
                _save(parse.labels, out_dir / f"{path.stem}.png", written)
                _save(parse.overlay, out_dir / f"{path.stem}_overlay.png", written)
                for i, (crop, labels) in enumerate(zip(parse.crops, parse.crop_labels)):
                    if not save_crops:
                        break
                    _save(crop, out_dir / f"{path.stem}_face{i}.png", written)
                    _save(labels, out_dir / f"{path.stem}_face{i}_labels.png", written)
                    _save(viz.overlay(crop, labels), out_dir / f"{path.stem}_face{i}_overlay.png",
                          written)
                bar.update(1)
            return written
        for chunk in _chunks_within_memory(paths, batch_size):
            images = [read_image(p) for p in chunk]
            for path, image, label in zip(chunk, images,
                                          predict_labels(model, images, tta, batch_size)):
                _save(label, out_dir / f"{path.stem}.png", written)
                _save(viz.overlay(image, label), out_dir / f"{path.stem}_overlay.png", written)
                bar.update(1)
    return written


# --------------------------------------------------------------------------- CLI

def add_predict_arguments(parser) -> None:
    """Options of ``celebseg predict``."""
    parser.add_argument("--model", required=True,
                        help="trained .keras model (or a run directory, or a SavedModel folder)")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="photos (any size), or folders of photos")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tta", choices=["flip"], default=None,
                        help="flip test-time augmentation (left/right classes swapped)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave unreadable photos (with --align: photos without a usable "
                             "face) out, a warning each, instead of stopping")
    parser.add_argument("--align", action="store_true",
                        help="detect every face, parse it aligned the CelebA-HQ way and paste "
                             f"the parse back (needs mtcnn: {INSTALL_HINT})")
    parser.add_argument("--save-crops", action="store_true",
                        help="with --align: also write each aligned face and its parse")
    parser.add_argument("--min-eye-distance", type=float, default=MIN_EYE_DISTANCE,
                        help="with --align: faces whose eyes are closer than this many pixels "
                             "are too small to parse (default %(default)g)")


def run_predict(args) -> int:
    """``celebseg predict``: prints each file it wrote."""
    for path in predict_images(args.model, args.images, args.out, tta=args.tta,
                               batch_size=args.batch_size, progress=not args.no_progress,
                               skip_bad=args.skip_bad, align=args.align,
                               save_crops=args.save_crops,
                               min_eye_distance=args.min_eye_distance):
        print(path)
    return 0


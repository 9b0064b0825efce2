"""``celebseg prepare``: fused label maps and the official splits of a raw CelebAMask-HQ folder.

Writes the prepared layout of :mod:`celebseg_utils.data.layout`: ``OUT/labels/<k>.png``
(uint8 grey PNG, ids 0..18, equal pixel for pixel to the dataset's published
``g_mask.py`` output; the PNG bytes themselves may differ, as any two PNG writers do),
``OUT/splits/{train,val,test}.txt``, ``OUT/prepare.json``, and with ``skip_bad``
``OUT/problems.txt`` (``<k>\\t<file>\\t<reason>`` per bad image).

Only the images listed in the mapping file are prepared. Each is checked: its photo must
exist, have a readable JPEG header and end with the JPEG end-of-image marker (this catches
missing, foreign and truncated photos for 0.07 ms; decoding the photo, even at 1/8 scale
in the DCT domain, costs 1 ms, a third more on top of the ~3 ms that fusing the masks
takes, and damage inside the JPEG data is rare: the training pipeline's decoder reports
it); its header must show a photo of at least ``photo.MIN_SIDE`` px, of its masks' (square)
shape, and no EXIF orientation (the training pipeline reads the stored pixels, and the raw
layout's masks are drawn on upright photos); and its masks must exist, decode and share one
size (an image without any mask file is a problem, not an all-background label: every face
has skin, so it means lost files). Masks of an image that has no photo and is not in the
mapping are a problem too. A problem stops the run with a ``CelebsegError`` naming the
file, unless ``skip_bad``: then the image is left out of the splits and listed in
``problems.txt``.

A problem of the whole folder (a missing or unreadable folder, a file where a folder
belongs, masks outside their ``k // 2000`` subfolders, a mapping without images) stops the
run even with ``skip_bad``, and so does a run that would leave no image at all.

The run is a transaction (:class:`~celebseg_utils.data.writer.PreparedWriter`): it works in
a hidden copy of ``OUT`` beside it and puts it in place only when everything succeeded, so
a failed or interrupted run leaves ``OUT`` exactly as it was. Work is spread over worker
processes in chunks of image ids. A re-run keeps a label of the previous ``OUT`` when its
mask files are the same ones (names, sizes, mtimes: ``OUT/mask_sources.tsv``), and fuses
it again otherwise; ``OUT/source.json`` records the data they come from (the mapping rows and the mask size,
not the folder's path, so moving the raw folder is fine) and a run on other data into the
same ``OUT`` stops instead of mixing the two.

>>> import tempfile
>>> from celebseg_utils.data.synthetic.generator import write_synthetic_dataset
>>> raw = write_synthetic_dataset(tempfile.mkdtemp(), 3, image_size=32, progress=False)
>>> info = prepare_dataset(raw, tempfile.mkdtemp(), workers=1, progress=False)
>>> info["num_images"], info["label_size"], info["problems"]
(3, 32, 0)
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import struct
import time
import zlib
from pathlib import Path

import numpy as np

from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from celebseg_utils.labels import ATTRIBUTES
from celebseg_utils.data.masks import PNG_SIGNATURE, BadFileError, fuse_mask_files, mask_size
from celebseg_utils.data.photo import MIN_SIDE, PhotoInfo, aspect_agrees, check_size, probe_photo
from celebseg_utils.data.splits import read_mapping, split_of
from celebseg_utils.data.writer import (PreparedWriter, nothing_prepared_error, problem_error,
                                        resolve_workers, run_jobs)

_MASK_NAME = re.compile(r"^(\d+)_([a-z_]+)\.png$")
_PHOTO_NAME = re.compile(r"^(\d+)\.jpg$")
_ATTRIBUTE_ID = {name: i for i, name in enumerate(ATTRIBUTES, start=1)}
#: Per prepared image: the fingerprint of the mask files its label was fused from.
MASK_SOURCES_FILE = "mask_sources.tsv"
_GET_DATA = ("get the dataset with `celebseg download --source kaggle --out {root}`, or make a "
             "synthetic one with `celebseg synth --out {root} --count 300`")


def encode_label_png(label: np.ndarray) -> bytes:
    """A uint8 (H, W) label map as grey 8-bit PNG bytes (fast: Up filter, zlib level 1).

    >>> import io, numpy as np; from PIL import Image
    >>> label = np.array([[0, 18], [13, 13]], dtype=np.uint8)
    >>> np.asarray(Image.open(io.BytesIO(encode_label_png(label)))).tolist()
    [[0, 18], [13, 13]]
    """
    label = np.ascontiguousarray(label, dtype=np.uint8)
    height, width = label.shape
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = 2  # Up: label rows repeat, so the residuals are mostly zero
    rows[0, 1:] = label[0]
    np.subtract(label[1:], label[:-1], out=rows[1:, 1:])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + chunk(b"IEND", b""))


def check_photo(path) -> PhotoInfo:
    """The :class:`~celebseg_utils.data.photo.PhotoInfo` of a photo that looks like a whole
    JPEG; :class:`~celebseg_utils.data.masks.BadFileError` otherwise.

    Checks the header (format, size of at least ``photo.MIN_SIDE``) and the end-of-image
    marker in the last 4 KiB; nothing is decoded.

    >>> check_photo("/nonexistent/0.jpg")
    Traceback (most recent call last):
    ...
    celebseg_utils.data.masks.BadFileError: /nonexistent/0.jpg: missing photo
    """
    path = Path(path)
    info = probe_photo(path)
    if info.format != "JPEG":
        raise BadFileError(path, f"photo is {info.format}, not JPEG")
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 4096))
            tail = fh.read()
    except OSError as exc:
        raise BadFileError(path, f"unreadable photo ({exc.strerror or exc})") from None
    if b"\xff\xd9" not in tail:
        raise BadFileError(path, "truncated photo (no JPEG end-of-image marker)")
    check_size(info, max_pixels=0)  # the pipeline decodes large photos at 1/2..1/8 scale
    return info


def check_geometry(info: PhotoInfo, label_size: tuple[int, int], label_name: str) -> None:
    """BadFileError naming the photo unless a label of ``label_size`` (w, h) fits it: at
    least ``photo.MIN_SIDE`` px, and the photo's aspect ratio (the label may be another
    size, as CelebAMask-HQ's 512 px masks of 1024 px photos, not another shape).

    >>> from celebseg_utils.data.photo import PhotoInfo
    >>> check_geometry(PhotoInfo(Path("a.jpg"), "JPEG", "RGB", (512, 300), (512, 300), 1, 1),
    ...                (512, 512), "a.png")
    Traceback (most recent call last):
    ...
    celebseg_utils.data.masks.BadFileError: a.jpg: photo is 512x300 px but its label a.png is 512x512: their aspect ratios differ (a label may be another size than its photo, not another shape)
    """
    (pw, ph), (lw, lh) = info.size, label_size
    if min(lw, lh) < MIN_SIDE:
        raise BadFileError(label_name, f"label too small ({lw}x{lh} px): at least {MIN_SIDE} px "
                                       f"on each side")
    if aspect_agrees(info.size, label_size):
        return
    reason = (f"photo is {pw}x{ph} px but its label {label_name} is {lw}x{lh}: their aspect "
              f"ratios differ (a label may be another size than its photo, not another shape)")
    if info.orientation != 1 and aspect_agrees(info.stored_size, label_size):
        sw, sh = info.stored_size
        reason += (f"; the photo is stored {sw}x{sh} and its EXIF orientation {info.orientation} "
                   f"shows it {info.turned}, as every viewer does: draw the label on the photo "
                   f"as it is shown")
    raise BadFileError(info.path, reason)


def _prepare_one(root: Path, out: Path, k: int, masks, size: int) -> None:
    photo = check_photo(layout.image_path(root, k))
    if photo.orientation != 1:
        raise BadFileError(photo.path, f"photo has EXIF orientation {photo.orientation} (viewers "
                                       f"show it {photo.turned}); the raw layout's masks are drawn "
                                       f"on photos stored upright: store it upright (e.g. "
                                       f"`exiftran -ai {photo.path.name}`) or strip the tag")
    check_geometry(photo, (size, size), str(layout.mask_path(root, k, "*")))
    where = layout.mask_path(root, k, "*")
    label = fuse_mask_files(masks, size, name=str(where))
    atomic_write_bytes(layout.label_path(out, k), encode_label_png(label))


def _prepare_chunk(job) -> list[tuple[int, str, str] | None]:
    """Worker: prepare a chunk of images; a problem is returned, not raised."""
    root, out, items, size = job
    results = []
    for k, masks in items:
        try:
            _prepare_one(Path(root), Path(out), k, masks, size)
            results.append(None)
        except BadFileError as exc:
            results.append((k, exc.path, exc.reason))
    return results


def _check_raw(root: Path) -> None:
    if not root.is_dir():
        raise CelebsegError(f"--data-root {root} is not a folder: " + _GET_DATA.format(root=root))
    folders = (root / layout.IMAGE_DIR, root / layout.MASK_DIR)
    for path in (*folders, layout.mapping_path(root)):
        if not path.exists():
            inner = _inner_dataset(root)
            fix = (f"did you mean --data-root {inner}?" if inner
                   else _GET_DATA.format(root=root))
            raise CelebsegError(f"{path} is missing, so {root} is not a CelebAMask-HQ folder: {fix}")
    for path in folders:
        if not path.is_dir():
            raise CelebsegError(f"{path} is not a folder: move the file away and re-extract the "
                                f"dataset into {root}")


def _inner_dataset(root: Path) -> Path | None:
    """A folder just below ``root`` that is a CelebAMask-HQ folder (``root`` one level too high)."""
    try:
        candidates = [e.path for e in os.scandir(root) if e.is_dir()]
    except OSError:
        return None
    for path in sorted(candidates):
        if os.path.isdir(os.path.join(path, layout.IMAGE_DIR)):
            return Path(path)
    return None


def _listdir(folder: str):
    """``os.scandir`` entries of a raw folder; an unreadable one is a user error naming it."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise CelebsegError(f"cannot read the folder {folder} ({exc.strerror or exc}): fix its "
                            f"permissions (chmod -R u+rX) or re-extract the dataset") from None


def _scan(root: Path):
    """Photo ids, and image id -> [(label id, mask path)] in precedence order."""
    photos = {int(m.group(1)) for e in _listdir(str(root / layout.IMAGE_DIR))
              if (m := _PHOTO_NAME.match(e.name))}
    masks: dict[int, list] = collections.defaultdict(list)
    loose = 0
    for folder in _listdir(str(root / layout.MASK_DIR)):
        if not folder.name.isdigit():
            loose += bool(_MASK_NAME.match(folder.name))
            continue
        if not folder.is_dir():  # silently skipping it would report 2000 images without masks
            raise CelebsegError(f"{folder.path} is not a folder: it should hold the masks of "
                                f"images {int(folder.name) * layout.IMAGES_PER_MASK_FOLDER}.."
                                f"{(int(folder.name) + 1) * layout.IMAGES_PER_MASK_FOLDER - 1}; "
                                f"re-extract the dataset")
        for entry in _listdir(folder.path):
            m = _MASK_NAME.match(entry.name)
            if m and m.group(2) in _ATTRIBUTE_ID and int(m.group(1)) // layout.IMAGES_PER_MASK_FOLDER == int(folder.name):
                masks[int(m.group(1))].append((_ATTRIBUTE_ID[m.group(2)], entry.path))
    if loose and not masks:  # a re-packed copy with the k // 2000 subfolders flattened
        raise CelebsegError(
            f"{root / layout.MASK_DIR} holds {loose} mask files directly, but they belong in "
            f"subfolders by image id // {layout.IMAGES_PER_MASK_FOLDER} (00000_skin.png in 0/, "
            f"02000_skin.png in 1/, ...): move them there, or re-extract the official archive")
    for found in masks.values():
        found.sort()
    return photos, masks


def _label_size(ids, masks, mask_dir: Path) -> int:
    """The dataset's mask side: the most common one among the first images' first masks."""
    sizes = collections.Counter()
    for k in ids:
        if masks.get(k):
            try:
                sizes[mask_size(masks[k][0][1])] += 1
            except BadFileError:
                continue
            if sum(sizes.values()) >= 16:
                break
    if not sizes:
        raise CelebsegError(f"no readable mask PNG for the images of the mapping file in {mask_dir}: "
                            f"check that folder is complete, or re-extract the dataset")
    (width, height), _ = sizes.most_common(1)[0]
    return width


def _mask_fingerprint(masks) -> str:
    """SHA-256 of the names, sizes and mtimes of an image's mask files (a stat each, ~2 us:
    hashing their bytes would cost as much as fusing them again).

    >>> _mask_fingerprint([])[:12]
    'e3b0c44298fc'
    """
    parts = []
    for _, path in masks:
        try:
            st = os.stat(path)
        except OSError:
            return ""  # unreadable now: never matches, so the image is redone (and checked)
        parts.append(f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _read_fingerprints(path) -> dict[int, str]:
    """``k -> mask fingerprint`` of a previous run's ``mask_sources.tsv`` ({} when none)."""
    if path is None:
        return {}
    try:
        rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
        return {int(k): fp for k, fp in rows}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}  # damaged: every label is fused again, which is always right


def _source(rows, size: int) -> dict:
    """What the labels are made from, independent of where the raw folder lives."""
    text = "\n".join(f"{idx} {orig} {name}" for idx, orig, name in sorted(rows))
    return {"mapping_sha256": hashlib.sha256(text.encode()).hexdigest(), "label_size": size}


def prepare_dataset(data_root, out, workers=None, tfrecords: bool = False, skip_bad: bool = False,
                    progress: bool = True) -> dict:
    """Prepare a raw CelebAMask-HQ folder into ``out``; returns the summary.

    The summary holds the ``prepare.json`` keys (``data_root``, ``label_size``,
    ``num_images``, ``splits`` counts, ``problems``) plus ``out``, ``written`` (labels
    made now), ``existing`` (labels kept from an earlier run) and ``seconds``.
    ``workers`` defaults to all cores. See the module docstring for the checks.

    >>> import tempfile
    >>> from celebseg_utils.data.synthetic.generator import write_synthetic_dataset
    >>> raw = write_synthetic_dataset(tempfile.mkdtemp(), 20, image_size=32, progress=False)
    >>> prepare_dataset(raw, tempfile.mkdtemp(), workers=1, progress=False)["splits"]
    {'train': 16, 'val': 2, 'test': 2}
    """
    start = time.perf_counter()
    root, out = Path(data_root).resolve(), Path(out)
    _check_raw(root)
    workers = resolve_workers(workers)
    rows = read_mapping(layout.mapping_path(root))
    if not rows:
        raise CelebsegError(f"{layout.mapping_path(root)} lists no images (only its header): "
                            f"re-extract it from the dataset archive")
    split_by_id = {idx: split_of(orig) for idx, orig, _ in rows}
    photos, masks = _scan(root)
    problems: list[tuple[int, str, str]] = []
    for k in sorted(set(masks) - photos - set(split_by_id)):
        problems.append((k, str(layout.mask_path(root, k, "*")), "masks without a photo (and not in the mapping)"))
    size = _label_size(sorted(split_by_id), masks, root / layout.MASK_DIR)

    with PreparedWriter(out, _source(rows, size)) as writer:
        work = writer.work
        labels_dir = work / "labels"
        # A label is kept only when its masks are the files it was made from (same names,
        # sizes and mtimes): an edited or replaced mask is fused again.
        fingerprints = {k: _mask_fingerprint(masks.get(k, [])) for k in split_by_id}
        before = _read_fingerprints(writer.previous(MASK_SOURCES_FILE))
        done = {int(m.group(1)) for e in os.scandir(labels_dir) if (m := re.match(r"^(\d+)\.png$", e.name))}
        done = {k for k in done if k in fingerprints and before.get(k) == fingerprints[k]}
        todo = sorted(k for k in split_by_id if k not in done)
        for k in todo:
            if k not in photos:
                problems.append((k, str(layout.image_path(root, k)), "missing photo"))
            elif not masks.get(k):
                problems.append((k, str(layout.mask_path(root, k, "*")), "no mask files"))
        if problems and not skip_bad:
            raise problem_error(problems[0], out)
        bad = {p[0] for p in problems}
        todo = [k for k in todo if k not in bad]
        chunk = max(1, min(64, len(todo) // (workers * 8) or 1))
        jobs = [(str(root), str(work), [(k, masks[k]) for k in todo[i:i + chunk]], size)
                for i in range(0, len(todo), chunk)]
        written = 0
        results_stream = run_jobs(jobs, _prepare_chunk, workers if len(todo) > 2 * chunk else 1,
                                  len(todo), progress)
        try:
            for results in results_stream:
                written += results.count(None)
                for problem in filter(None, results):
                    if not skip_bad:
                        raise problem_error(problem, out)
                    problems.append(problem)
        finally:
            results_stream.close()  # stops the workers now, before the work folder goes
        problems.sort()
        bad = {p[0] for p in problems}
        split_ids = {name: [] for name in layout.SPLITS}
        for k in sorted(split_by_id):
            if k not in bad:
                split_ids[split_by_id[k]].append(k)
        if not any(split_ids.values()):  # an empty prepared folder only fails later, obscurely
            raise nothing_prepared_error(len(split_by_id), "images of the mapping file",
                                         problems, out)
        if writer.write_splits(split_ids) or written:
            writer.drop_derived()
        writer.write_problems(problems, skip_bad)
        kept = {k for ids in split_ids.values() for k in ids}
        for entry in os.scandir(labels_dir):  # a label of an image left out is not kept
            if not (re.match(r"^\d+\.png$", entry.name) and int(entry.name[:-4]) in kept):
                os.unlink(entry.path)
        atomic_write_text(work / MASK_SOURCES_FILE, "k\tmasks\n" + "".join(
            f"{k}\t{fingerprints[k]}\n" for ids in split_ids.values() for k in ids))
        info = {"data_root": str(root), "label_size": size,
                "num_images": sum(len(v) for v in split_ids.values()),
                "splits": {name: len(ids) for name, ids in split_ids.items()},
                "problems": len(problems)}
        atomic_write_json(layout.info_path(work), info)
        writer.commit()
    if tfrecords:  # after the commit: the shards read the photos where prepare.json says
        from celebseg_utils.data.shards import write_tfrecord_shards

        write_tfrecord_shards(out, progress=progress)
    return {**info, "out": str(out), "written": written,
            "existing": len(done & set(split_by_id)), "seconds": time.perf_counter() - start}

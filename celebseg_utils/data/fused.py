"""Fused-label datasets as a source: a folder of photos and a folder of label maps.

Many copies of CelebAMask-HQ circulate already fused (course "mini" sets, pre-fused mask
folders): ``IMAGES/<stem>.jpg`` beside ``LABELS/<stem>.png``. :func:`prepare_fused`
turns such a pair of folders into the same prepared folder that the raw layout gives
(:mod:`celebseg_utils.data.layout`), so stats, training, evaluation, the viewer and the
notebooks work on it unchanged:

- ``OUT/labels/<k>.png``: 8-bit grey ids 0..18. A label may be an 8-bit id PNG (mode L),
  a palette PNG (mode P: its pixel **indices** are the ids, as PIL reads them;
  ``tf.io.decode_png`` would return the palette's colours), or a colour picture in the
  official palette (``labels.PALETTE``), converted exactly; a colour outside the palette
  is an error naming the file and the pixel.
- ``OUT/CelebA-HQ-img/<k>.jpg``: a link to each photo (a copy where the file system has
  no links), so the prepared folder is its own ``data_root``. A photo that is not a JPEG,
  or that carries an EXIF orientation (a phone photo stored sideways), is decoded by
  :func:`~celebseg_utils.data.photo.read_photo` (upright, RGB) and re-encoded at quality
  95: the training pipeline's JPEG decoder ignores EXIF, so it must read upright pixels.
  Labels are read upright too, and a photo and its label must have the same shape
  (aspect ratio; the label may be another size) and sides of ``photo.MIN_SIDE`` px or more.
- ``OUT/label_sources.tsv``: ``k``, label file, and its size, mtime and SHA-256. A re-run
  into the same ``OUT`` keeps a label only when all three are unchanged.
- ``OUT/names.tsv``: ``k``, photo and label file of each image. Stems that are all whole
  numbers keep their number as ``k``; otherwise ``k`` numbers the stems in sorted order.
- ``OUT/splits/*.txt``: a seeded split, stratified so that each rare class
  (``labels.RARE_CLASSES``) lands in every split in proportion; ``prepare.json`` records
  the source, the fractions and the seed.

>>> import os, tempfile, numpy as np
>>> from PIL import Image
>>> d = tempfile.mkdtemp()
>>> os.makedirs(f"{d}/images"); os.makedirs(f"{d}/labels")
>>> for k in range(4):
...     Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(f"{d}/images/{k}.jpg")
...     Image.fromarray(np.full((16, 16), k + 1, np.uint8), "L").save(f"{d}/labels/{k}.png")
>>> info = prepare_fused(d + "/images", d + "/labels", d + "/prep", split={"train": 0.5, "test": 0.5},
...                      workers=1, progress=False)
>>> info["num_images"], info["splits"], info["label_size"]
(4, {'train': 2, 'val': 0, 'test': 2}, 16)
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from celebseg_utils import labels as L
from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from celebseg_utils.data.masks import BadFileError
from celebseg_utils.data.photo import ORIENTATION_TAG, PhotoInfo, check_size, probe_photo, read_photo
from celebseg_utils.data.prepare import encode_label_png
from celebseg_utils.data.writer import PreparedWriter, nothing_prepared_error, problem_error, resolve_workers, run_jobs

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LABEL_SUFFIXES = (".png",)
DEFAULT_SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1}
RARE_IDS = tuple(L.class_id(name) for name in L.RARE_CLASSES)
#: Per label: the file it was imported from and that file's size, mtime and SHA-256.
SOURCES_FILE = "label_sources.tsv"
# A colour's 24-bit code -> class id, for labels drawn in the official palette.
_PALETTE_CODE = (L.PALETTE[:, 0].astype(np.int64) << 16) | (L.PALETTE[:, 1].astype(np.int64) << 8) | L.PALETTE[:, 2]


def parse_split(text) -> dict[str, float]:
    """``"train=0.8,val=0.1,test=0.1"`` (or a dict) as fractions that sum to 1.

    >>> parse_split("test=1")
    {'train': 0.0, 'val': 0.0, 'test': 1.0}
    >>> parse_split("train=0.5,val=0.2")
    Traceback (most recent call last):
    celebseg_utils.errors.CelebsegError: --split fractions sum to 0.7, not 1: e.g. train=0.8,val=0.1,test=0.1
    """
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in filter(None, (p.strip() for p in str(text).split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise CelebsegError(f"--split {text!r}: write NAME=FRACTION pairs, e.g. "
                                    f"train=0.8,val=0.1,test=0.1")
            items.append((name.strip(), value.strip()))
    fractions = {name: 0.0 for name in layout.SPLITS}
    for name, value in items:
        if name not in layout.SPLITS:
            raise CelebsegError(f"--split: unknown split {name!r}; use {', '.join(layout.SPLITS)}")
        try:
            fractions[name] = float(value)
        except (TypeError, ValueError):
            raise CelebsegError(f"--split: {name}={value!r} is not a number") from None
        if not 0.0 <= fractions[name] <= 1.0:
            raise CelebsegError(f"--split: {name}={value} must lie between 0 and 1")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise CelebsegError(f"--split fractions sum to {total:g}, not 1: e.g. "
                            f"train=0.8,val=0.1,test=0.1")
    return fractions


def read_fused_label(path, data: bytes | None = None) -> np.ndarray:
    """uint8 (H, W) class ids of a fused label file (L, P or official-palette colours);
    ``data``: the file's bytes, when they are read already.

    A label carrying an EXIF orientation is turned upright, as its photo is (both as every
    viewer shows them). Raises :class:`~celebseg_utils.masks.BadFileError` naming the problem.

    >>> import tempfile, numpy as np; from PIL import Image
    >>> p = tempfile.mkdtemp() + "/a.png"
    >>> Image.fromarray(L.PALETTE[np.array([[0, 13], [17, 18]])]).save(p)  # colour picture
    >>> read_fused_label(p).tolist()
    [[0, 13], [17, 18]]
    """
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as im:
            im.load()
            if int(im.getexif().get(ORIENTATION_TAG, 1)) in range(2, 9):
                im = ImageOps.exif_transpose(im)  # a transpose: ids are moved, never mixed
            mode = im.mode
            if mode in ("RGB", "RGBA"):
                array = np.asarray(im.convert("RGB"))
            elif mode in ("L", "P", "I", "I;16", "LA", "PA"):
                array = np.asarray(im if mode in ("L", "P", "I", "I;16") else im.getchannel(0))
            else:
                raise BadFileError(path, f"label in PIL mode {mode}: use 8-bit ids (L), a "
                                         f"palette PNG (P) or colours of the official palette")
    except BadFileError:
        raise
    except FileNotFoundError:
        raise BadFileError(path, "missing label") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises several types for broken files
        if (data is not None and not data) or (data is None and path.is_file()
                                              and path.stat().st_size == 0):
            raise BadFileError(path, "empty label file (0 bytes)") from None
        raise BadFileError(path, f"unreadable label ({type(exc).__name__}: {exc})") from None
    if array.ndim == 3:
        return _colours_to_ids(array, path)
    if array.size and int(array.max()) >= L.NUM_CLASSES:
        y, x = np.argwhere(array >= L.NUM_CLASSES)[0]
        raise BadFileError(path, f"label value {int(array[y, x])} at pixel (x={x}, y={y}) is "
                                 f"above {L.NUM_CLASSES - 1}, the largest class id")
    return array.astype(np.uint8)


def _colours_to_ids(rgb: np.ndarray, path: Path) -> np.ndarray:
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all() \
            and int(rgb.max()) < L.NUM_CLASSES:
        return rgb[..., 0].astype(np.uint8)  # ids stored as grey in an RGB file
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    order = np.argsort(_PALETTE_CODE)
    where = np.searchsorted(_PALETTE_CODE[order], code).clip(0, L.NUM_CLASSES - 1)
    ids = order[where]
    bad = _PALETTE_CODE[ids] != code
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise BadFileError(path, f"colour {tuple(int(c) for c in rgb[y, x])} at pixel (x={x}, y={y}) "
                                 f"is not in the official CelebAMask-HQ palette")
    return ids.astype(np.uint8)


def pair_files(images_dir, labels_dir) -> tuple[list[tuple[int, str, Path, Path]], list[tuple[int, str, str]]]:
    """``[(k, stem, photo, label)]`` matched by file stem, and the unpaired files as problems."""
    photos, labels_ = _by_stem(images_dir, PHOTO_SUFFIXES, "--images"), _by_stem(labels_dir, LABEL_SUFFIXES, "--labels")
    stems = sorted(set(photos) | set(labels_))
    if not stems:
        raise CelebsegError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {images_dir} and no "
                            f"label PNGs in {labels_dir}: check --images and --labels")
    numeric = all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
    ids = {s: (int(s) if numeric else i) for i, s in enumerate(stems)}
    pairs, problems = [], []
    for stem in stems:
        k = ids[stem]
        if stem not in labels_:
            problems.append((k, str(photos[stem]), "photo without a label (no label file of that stem)"))
        elif stem not in photos:
            problems.append((k, str(labels_[stem]), "label without a photo (no photo file of that stem)"))
        else:
            pairs.append((k, stem, photos[stem], labels_[stem]))
    return pairs, problems


def _by_stem(folder, suffixes, option: str) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CelebsegError(f"{option} {folder} is not a folder")
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise CelebsegError(f"cannot read the folder {folder} ({exc.strerror or exc}): fix its "
                            f"permissions (chmod -R u+rX)") from None
    found: dict[str, Path] = {}
    for entry in entries:
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() not in suffixes or entry.name.startswith(".") or not entry.is_file():
            continue
        if stem in found:
            raise CelebsegError(f"{option} {folder} holds two files of stem {stem!r} "
                                f"({found[stem].name}, {entry.name}): keep one")
        found[stem] = Path(entry.path)
    return found


def stratified_split(presence: dict[int, tuple[bool, ...]], fractions: dict[str, float],
                     seed: int = 0) -> dict[str, list[int]]:
    """Image ids per split: seeded, stratified on the rare classes' presence.

    Iterative stratification (Sechidis, Tsoumakas and Vlahavas, ECML 2011): the ids are
    shuffled by ``seed``; then, rarest class first, each image holding that class goes to
    the split that still wants the most images of it (ties: the split that wants the most
    images overall), and the images holding no rare class fill the splits' remaining sizes.
    Each rare class then lands in every split in proportion, within about one image.

    >>> s = stratified_split({k: (k % 10 == 0,) for k in range(100)}, parse_split("train=0.8,val=0.1,test=0.1"))
    >>> [len(s[n]) for n in ("train", "val", "test")], [sum(k % 10 == 0 for k in s[n]) for n in ("train", "val", "test")]
    ([80, 10, 10], [8, 1, 1])
    """
    rng = np.random.default_rng(seed)
    ids = sorted(presence)
    ids = [ids[i] for i in rng.permutation(len(ids))]
    names = [n for n in layout.SPLITS if fractions.get(n, 0.0) > 0]
    share = np.array([fractions[n] for n in names])
    flags = {k: np.array(presence[k], dtype=bool) for k in ids}
    n_classes = len(next(iter(flags.values()))) if flags else 0
    want_total = share * len(ids)
    totals = np.sum([flags[k] for k in ids], axis=0) if ids else np.zeros(0)
    want = share[:, None] * totals[None, :]  # (splits, classes)
    out = {n: [] for n in layout.SPLITS}
    left = set(ids)

    def assign(k, j):
        if j is None:
            s = int(np.argmax(want_total))
        else:
            best = want[:, j].max()
            tied = np.flatnonzero(np.isclose(want[:, j], best))
            s = int(tied[np.argmax(want_total[tied])])
        out[names[s]].append(k)
        want[s] -= flags[k]
        want_total[s] -= 1
        left.discard(k)

    for _ in range(n_classes):
        remaining = [sum(1 for k in left if flags[k][j]) for j in range(n_classes)]
        open_classes = [j for j in range(n_classes) if remaining[j] > 0]
        if not open_classes:
            break
        j = min(open_classes, key=lambda c: remaining[c])
        for k in [k for k in ids if k in left and flags[k][j]]:
            assign(k, j)
    for k in [k for k in ids if k in left]:
        assign(k, None)
    return {n: sorted(v) for n, v in out.items()}


def _place_photo(photo: Path, target: Path, info: PhotoInfo) -> tuple[list[str], bool]:
    """``target`` (a .jpg) stands for ``photo``, upright: a link (a copy where the file system
    has none) to a JPEG the training pipeline reads as every viewer shows it, else the
    photo as :func:`~celebseg_utils.data.photo.read_photo` decodes it, re-encoded as a JPEG
    at quality 95. Returns the decoder's notes, and whether ``target`` changed."""
    if target.is_symlink() or target.exists():
        if target.is_symlink() and os.readlink(target) == str(photo) and info.format == "JPEG" \
                and info.orientation == 1:
            return [], False
        target.unlink()
    # tf.image.decode_jpeg ignores EXIF orientation, so only an upright JPEG is linked.
    if info.format == "JPEG" and info.orientation == 1:
        try:
            os.symlink(photo, target)
        except OSError:  # a file system without links (some mounted drives)
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(photo, tmp)
            os.replace(tmp, target)
        return [], True
    from PIL import Image

    decoded = read_photo(photo)
    buffer = io.BytesIO()
    Image.fromarray(decoded.rgb).save(buffer, "JPEG", quality=95)
    atomic_write_bytes(target, buffer.getvalue())
    return decoded.notes, True


def file_identity(path, data: bytes | None = None) -> tuple[int, int, str]:
    """``(size, mtime_ns, sha256)`` of a file: a label made from it is reused only when all
    three are unchanged (a copy over it, an edit, another file of the same name: re-import).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"; _ = p.write_bytes(b"abc")
    >>> file_identity(p)[0], file_identity(p)[2][:12]
    (3, 'ba7816bf8f01')
    """
    path = Path(path)
    stat = path.stat()
    data = path.read_bytes() if data is None else data
    return stat.st_size, stat.st_mtime_ns, hashlib.sha256(data).hexdigest()


def _fused_one(job) -> tuple:
    """Worker: convert (or reuse) one label and place its photo; a problem is returned.

    ``(k, (shape, rare presence) or None, problem or None, label reused, label identity,
    notes, photo placed anew)``.
    """
    from celebseg_utils.data.prepare import check_geometry, check_photo

    k, photo, label_file, work, previous = job
    photo, label_file = Path(photo), Path(label_file)
    target = layout.label_path(Path(work), k)
    try:
        try:
            data = label_file.read_bytes()
        except FileNotFoundError:
            raise BadFileError(label_file, "missing label") from None
        except OSError as exc:
            raise BadFileError(label_file, f"unreadable label ({exc.strerror or exc})") from None
        identity = file_identity(label_file, data)
        reused = previous is not None and tuple(previous) == identity and target.exists()
        label = read_fused_label(target if reused else label_file,
                                 data=None if reused else data)
        info = check_photo(photo) if photo.suffix.lower() in (".jpg", ".jpeg") else probe_photo(photo)
        if info.format != "JPEG":
            check_size(info)
        check_geometry(info, (label.shape[1], label.shape[0]), str(label_file))
        if not reused:
            atomic_write_bytes(target, encode_label_png(label))
        notes, moved = _place_photo(photo, layout.image_path(Path(work), k), info)
    except BadFileError as exc:
        return k, None, (k, str(exc.path), exc.reason), False, None, [], False
    except OSError as exc:
        return k, None, (k, str(photo), f"unreadable photo ({exc.strerror or exc})"), False, None, [], False
    counts = np.bincount(label.ravel(), minlength=L.NUM_CLASSES)
    return (k, (label.shape, tuple(bool(counts[c]) for c in RARE_IDS)), None, reused, identity,
            [f"{photo}: {note}" for note in notes], moved)


def _fused_chunk(jobs) -> list:
    return [_fused_one(job) for job in jobs]


def _read_identities(path: Path | None) -> dict[int, tuple]:
    """``k -> (label file, size, mtime_ns, sha256)`` from a previous ``label_sources.tsv``."""
    if path is None:
        return {}
    found = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            k, label, size, mtime, digest = line.split("\t")
            found[int(k)] = (label, int(size), int(mtime), digest)
    except (OSError, ValueError, UnicodeDecodeError):
        return {}  # a damaged record: every label is re-imported, which is always right
    return found


def prepare_fused(images_dir, labels_dir, out, split=None, split_seed: int = 0, workers=None,
                  tfrecords: bool = False, skip_bad: bool = False, progress: bool = True) -> dict:
    """Prepare a fused-label dataset (photos + label maps matched by stem) into ``out``.

    Returns the ``prepare.json`` keys plus ``out``, ``written``, ``existing`` and
    ``seconds``, like :func:`celebseg_utils.prepare.prepare_dataset`. A problem (an unpaired
    file, a label value above 18, a colour outside the palette, labels of mixed sizes, a
    photo and label of different shapes, a photo under ``photo.MIN_SIDE`` px, an unreadable
    file) stops the run naming the file, unless ``skip_bad``: then the image is left out
    and listed in ``OUT/problems.txt``. Like ``prepare_dataset``, the run is all or
    nothing. A label of an earlier run into ``out`` is kept only when its source file is
    the same (size, mtime and SHA-256, ``OUT/label_sources.tsv``); any other is re-imported.
    """
    start = time.perf_counter()
    images_dir, labels_dir, out = Path(images_dir).resolve(), Path(labels_dir).resolve(), Path(out)
    fractions = parse_split(DEFAULT_SPLIT if split is None else split)
    workers = resolve_workers(workers)
    pairs, problems = pair_files(images_dir, labels_dir)
    total = len(pairs) + len(problems)  # every stem, paired or not
    if problems and not skip_bad:
        raise problem_error(problems[0], out)
    names = "\n".join(f"{k} {stem}" for k, stem, _, _ in pairs)
    source = {"fused_sha256": hashlib.sha256(names.encode()).hexdigest()}
    with PreparedWriter(out, source) as writer:
        work = writer.work
        image_dir_out = work / layout.IMAGE_DIR
        image_dir_out.mkdir(parents=True, exist_ok=True)
        before = _read_identities(writer.previous(SOURCES_FILE))
        jobs = [(k, str(photo), str(label), str(work),
                 before[k][1:] if before.get(k, ("",))[0] == str(label) else None)
                for k, _, photo, label in pairs]
        chunk = max(1, min(64, len(jobs) // (workers * 8) or 1))
        chunks = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
        presence, sizes, identities, existing, photos_moved = {}, {}, {}, 0, False
        stream = run_jobs(chunks, _fused_chunk, workers if len(jobs) > 2 * chunk else 1,
                          len(jobs), progress)
        try:
            for results in stream:
                for k, found, problem, reused, identity, notes, moved in results:
                    for note in notes:
                        print(f"note: {note}", file=sys.stderr)
                    if problem is not None:
                        if not skip_bad:
                            raise problem_error(problem, out)
                        problems.append(problem)
                        continue
                    sizes[k], presence[k] = found
                    identities[k] = identity
                    existing += reused
                    photos_moved |= moved
        finally:
            stream.close()
        size = _common_size(sizes, {k: label for k, _, _, label in pairs}, problems, skip_bad, out)
        for k in [k for k in presence if sizes[k] != (size, size)]:
            del presence[k]
        problems.sort()
        if not presence:
            raise nothing_prepared_error(total, "photo/label pairs", problems, out)
        good = set(presence)
        for folder in (work / "labels", image_dir_out):  # nothing of images left out stays
            for entry in os.scandir(folder):
                stem = entry.name.split(".")[0]
                if not (stem.isdigit() and int(stem) in good and entry.name.count(".") == 1):
                    os.unlink(entry.path)
        split_ids = stratified_split(presence, fractions, split_seed)
        if writer.write_splits(split_ids) or existing < len(good) or photos_moved:
            writer.drop_derived()
        atomic_write_text(work / "names.tsv", "k\tphoto\tlabel\n" + "".join(
            f"{k}\t{photo}\t{label}\n" for k, _, photo, label in pairs))
        atomic_write_text(work / SOURCES_FILE, "k\tlabel\tsize\tmtime_ns\tsha256\n" + "".join(
            f"{k}\t{label}\t" + "\t".join(map(str, identities[k])) + "\n"
            for k, _, _, label in pairs if k in good))
        writer.write_problems(problems, skip_bad)
        info = {"data_root": str(out.resolve()), "label_size": size,
                "num_images": sum(len(v) for v in split_ids.values()),
                "splits": {name: len(ids) for name, ids in split_ids.items()},
                "problems": len(problems),
                "source": {"kind": "fused", "images": str(images_dir), "labels": str(labels_dir)},
                "split": {"fractions": fractions, "seed": int(split_seed),
                          "stratified_by": list(L.RARE_CLASSES)}}
        atomic_write_json(layout.info_path(work), info)
        writer.commit()
    if tfrecords:  # after the commit: the shards read the photos where prepare.json says
        from celebseg_utils.data.shards import write_tfrecord_shards

        write_tfrecord_shards(out, progress=progress)
    return {**info, "out": str(out), "written": len(good) - existing, "existing": existing,
            "seconds": time.perf_counter() - start}


def _common_size(sizes: dict, label_files: dict, problems: list, skip_bad: bool, out: Path) -> int:
    """The labels' one size (the most common); others are problems."""
    if not sizes:
        return 0
    values, counts = np.unique([f"{h}x{w}" for h, w in sizes.values()], return_counts=True)
    common = values[np.argmax(counts)]
    h, w = map(int, common.split("x"))
    odd = sorted(k for k, s in sizes.items() if s != (h, w))
    for k in odd:
        problem = (k, str(label_files[k]),
                   f"label of {sizes[k][1]}x{sizes[k][0]} px where the others are {w}x{h}: all "
                   f"labels must share one size")
        if not skip_bad:
            raise problem_error(problem, out)
        problems.append(problem)
    if h != w:
        raise CelebsegError(f"labels such as {label_files[min(sizes)]} are {w}x{h} px: square "
                            f"labels are expected")
    return w

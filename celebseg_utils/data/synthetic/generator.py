"""A CelebAMask-HQ-shaped folder of drawn faces: the embedded default dataset.

``write_synthetic_dataset`` writes exactly the real layout (see :mod:`celebseg_utils.data.layout`):
``CelebA-HQ-img/<k>.jpg`` photos at 2*S px, ``CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>_<attr>.png``
binary masks (mode L, 0/255) at S px, one file per attribute present in the image, and
``CelebA-HQ-to-CelebA-mapping.txt`` whose ``orig_idx`` values put about 80.6 / 10.0 / 9.4 % of
the images in the official train / val / test splits (at least one in val and in test from
3 images, two from 20).

The faces are a real test, not a colouring exercise: random pose, skin tones, hair styles
(bald, short, long, fringes over the brows, ears hidden), cluttered and skin-coloured
backgrounds, lighting gradients, noise and JPEG artefacts, and the long tail of the real
data (eyeglasses, hats and necklaces in a few percent of images, earrings in about a
fifth). The mask PNGs are the full shapes of the attributes and overlap (hair over ears,
glasses under eyes, hat over hair); the photo shows, at every pixel, the attribute that
the official precedence puts on top. Image ``k`` depends only on ``(seed, k)``, so the
bytes are the same whatever the order or the number of worker processes.

>>> import tempfile
>>> root = write_synthetic_dataset(tempfile.mkdtemp(), count=3, image_size=32, progress=False)
>>> sorted(p.name for p in (root / "CelebA-HQ-img").iterdir())
['0.jpg', '1.jpg', '2.jpg']
>>> (root / "CelebA-HQ-to-CelebA-mapping.txt").read_text().split()[:3]
['idx', 'orig_idx', 'orig_file']
"""

from __future__ import annotations

import argparse
import functools
import io
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from celebseg_utils.data import layout
from celebseg_utils.errors import CelebsegError
from celebseg_utils.fileio import atomic_write_bytes, atomic_write_text
from celebseg_utils.labels import ATTRIBUTES

MIN_IMAGE_SIZE = 32
MAX_COUNT = 30000  # the real dataset's size; the official orig_idx ranges cannot hold many more
#: Official split boundaries on CelebA's ``orig_idx`` and the full dataset's split sizes.
VAL_START, TEST_START, CELEBA_SIZE = 162771, 182638, 202599
OFFICIAL_SIZES = {"train": 24183, "val": 2993, "test": 2824}


def split_plan(count: int, seed: int = 0) -> list[str]:
    """The split of each of ``count`` images, in the official proportions (random order).

    >>> plan = split_plan(100)
    >>> plan.count("train"), plan.count("val"), plan.count("test")
    (81, 10, 9)
    """
    total = sum(OFFICIAL_SIZES.values())
    n_val = round(count * OFFICIAL_SIZES["val"] / total)
    n_test = round(count * OFFICIAL_SIZES["test"] / total)
    floor = 2 if count >= 20 else (1 if count >= 3 else 0)
    n_val, n_test = max(n_val, floor), max(n_test, floor if count >= 3 else min(1, count - 1))
    order = np.random.default_rng([seed, count, 5]).permutation(count)
    plan = ["train"] * count
    for i in order[:n_val]:
        plan[i] = "val"
    for i in order[n_val:n_val + n_test]:
        plan[i] = "test"
    return plan


def mapping_text(count: int, seed: int = 0) -> str:
    """The ``CelebA-HQ-to-CelebA-mapping.txt`` of a synthetic dataset of ``count`` images.

    Rows are ``idx orig_idx orig_file`` with unique ``orig_idx`` drawn from the official
    range of each image's split and, as in the real file, ``orig_file`` = ``orig_idx + 1``
    in CelebA's six-digit naming.

    >>> mapping_text(3).splitlines()[0].split()
    ['idx', 'orig_idx', 'orig_file']
    """
    plan = split_plan(count, seed)
    rng = np.random.default_rng([seed, count, 7])
    ranges = {"train": (0, VAL_START), "val": (VAL_START, TEST_START), "test": (TEST_START, CELEBA_SIZE)}
    orig = np.zeros(count, dtype=np.int64)
    for split, (lo, hi) in ranges.items():
        where = [i for i, s in enumerate(plan) if s == split]
        orig[where] = lo + rng.choice(hi - lo, size=len(where), replace=False)
    lines = [f"{'idx':<12}{'orig_idx':<12}{'orig_file':<12}"]
    lines += [f"{k:<12}{int(o):<12}{int(o) + 1:06d}.jpg" for k, o in enumerate(orig)]
    return "\n".join(lines) + "\n"


def _png(mask: Image.Image) -> bytes:
    buf = io.BytesIO()
    mask.save(buf, format="PNG")
    return buf.getvalue()


def write_image(root: Path, k: int, image_size: int, seed: int) -> list[str]:
    """Draw image ``k`` and write its photo and masks; returns the attributes written.

    Only attributes with visible pixels after the official precedence get a file (as in
    the real data); a stale mask of an absent attribute from an earlier run is removed.

    >>> import tempfile
    >>> "skin" in write_image(Path(tempfile.mkdtemp()), 4001, 32, seed=0)  # -> .../2/04001_skin.png
    True
    """
    from celebseg_utils.data.synthetic.draw import draw_face, encode_jpeg

    rng = np.random.default_rng([seed, k])
    photo, masks = draw_face(rng, image_size)
    label = np.zeros((image_size, image_size), dtype=np.uint8)
    for i, attribute in enumerate(ATTRIBUTES, start=1):
        if attribute in masks:
            label[np.asarray(masks[attribute]) > 0] = i
    visible = set(np.unique(label).tolist())
    written = []
    atomic_write_bytes(layout.image_path(root, k), encode_jpeg(photo, rng))
    for i, attribute in enumerate(ATTRIBUTES, start=1):
        path = layout.mask_path(root, k, attribute)
        if i in visible:
            atomic_write_bytes(path, _png(masks[attribute]))
            written.append(attribute)
        elif path.exists():
            path.unlink()
    return written


def _default_workers(count: int, image_size: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # A worker pool costs about a second to start: worth it only for real amounts of work.
    work = count * (image_size / 128.0) ** 2
    return max(1, min(cores, 8)) if work >= 48 else 1


def _start_method() -> str:
    """``fork`` (fast, and works from scripts without a ``__main__`` guard) unless TensorFlow
    is loaded: forking its threads can deadlock, so then a fresh forkserver starts the workers."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and "tensorflow" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _check(count, image_size, seed, workers) -> None:
    if not isinstance(count, (int, np.integer)) or not 1 <= count <= MAX_COUNT:
        raise CelebsegError(f"--count must be a whole number from 1 to {MAX_COUNT} (got {count!r}); "
                            f"try --count 300")
    if not isinstance(image_size, (int, np.integer)) or image_size < MIN_IMAGE_SIZE:
        raise CelebsegError(f"--image-size must be at least {MIN_IMAGE_SIZE} px (got {image_size!r}); "
                            f"try --image-size 128 (the real masks are 512)")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CelebsegError(f"--seed must be a non-negative whole number (got {seed!r}); try --seed 0")
    if workers is not None and workers < 1:
        raise CelebsegError(f"--workers must be at least 1 (got {workers}); leave it out to use all cores")


def write_synthetic_dataset(out_dir, count: int, image_size: int = 512, seed: int = 0,
                            progress: bool = True, workers: int | None = None) -> Path:
    """Write ``count`` synthetic faces in the CelebAMask-HQ layout under ``out_dir``.

    Masks are ``image_size`` px, photos ``2 * image_size`` px. ``workers`` processes draw
    the images (default: all cores for large jobs, 1 for small ones); the output bytes do
    not depend on it. The mapping file is written last, so a folder with a mapping is
    complete. Returns ``out_dir`` as a ``Path``. Once TensorFlow is imported, workers start
    from a fresh forkserver: a plain script must then guard its entry point with
    ``if __name__ == "__main__":`` (multiprocessing's rule) or pass ``workers=1``.

    >>> import tempfile
    >>> root = write_synthetic_dataset(tempfile.mkdtemp(), 2, image_size=32, progress=False)
    >>> (root / "CelebAMask-HQ-mask-anno" / "0" / "00000_skin.png").exists()
    True
    """
    _check(count, image_size, seed, workers)
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise CelebsegError(f"--out {root} is a file, not a folder: choose another path")
    (root / layout.IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for folder in range((count - 1) // layout.IMAGES_PER_MASK_FOLDER + 1):
        (root / layout.MASK_DIR / str(folder)).mkdir(parents=True, exist_ok=True)
    workers = _default_workers(count, image_size) if workers is None else workers
    job = functools.partial(write_image, root, image_size=image_size, seed=int(seed))
    from tqdm.auto import tqdm

    with tqdm(total=count, desc="synth", unit="img", disable=not progress) as bar:
        if workers == 1:
            for k in range(count):
                job(k)
                bar.update()
        else:
            with multiprocessing.get_context(_start_method()).Pool(workers) as pool:
                for _ in pool.imap_unordered(job, range(count), chunksize=max(1, min(16, count // (4 * workers)))):
                    bar.update()
    atomic_write_text(layout.mapping_path(root), mapping_text(count, int(seed)))
    return root


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``celebseg synth``: ``--out DIR --count N [--image-size S] [--seed K]``.

    >>> p = argparse.ArgumentParser(); add_synth_arguments(p)
    >>> a = p.parse_args(["--out", "d", "--count", "4"]); (a.count, a.image_size, a.seed)
    (4, 512, 0)
    """
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write (created)")
    parser.add_argument("--count", required=True, type=int, metavar="N", help="number of faces")
    parser.add_argument("--image-size", type=int, default=512, metavar="S",
                        help="mask size in px; photos are 2*S (default 512, as the real data)")
    parser.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, metavar="W",
                        help="processes (default: all cores for large jobs)")


def run_synth(args: argparse.Namespace) -> int:
    """Run ``celebseg synth``: write the folder and print a one-line summary; returns 0.

    >>> import tempfile
    >>> args = argparse.Namespace(out=Path(tempfile.mkdtemp()), count=3, image_size=32, seed=0)
    >>> run_synth(args)  # doctest: +ELLIPSIS
    wrote 3 synthetic faces to ... (masks 32 px, photos 64 px, train/val/test 1/1/1) in ...
    0
    """
    start = time.perf_counter()
    root = write_synthetic_dataset(args.out, args.count, image_size=args.image_size, seed=args.seed,
                                   progress=True, workers=getattr(args, "workers", None))
    seconds = time.perf_counter() - start
    plan = split_plan(args.count, args.seed)
    splits = "/".join(str(plan.count(s)) for s in layout.SPLITS)
    print(f"wrote {args.count} synthetic faces to {root} (masks {args.image_size} px, photos "
          f"{2 * args.image_size} px, train/val/test {splits}) in {seconds:.1f} s "
          f"({args.count / max(seconds, 1e-9):.1f} images/s)")
    return 0

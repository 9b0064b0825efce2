"""tf.data pipelines from a prepared folder: batches of photos, labels and pixel weights.

``make_dataset`` reads the photos from the raw data root (``layout.photo_path``; their
stored pixels are upright: ``prepare`` refuses a raw photo with an EXIF orientation, and
writes an upright JPEG, decoded by ``data.photo.read_photo``, for a fused one) and the
labels from ``PREP/labels``, or both from ``PREP/tfrecords`` when shards exist for the split
(local or ``gs://``). Per element: JPEG decoding with DCT-domain downscaling (the largest
``ratio`` in 1, 2, 4, 8 that keeps the photo at least ``image_size``: a 1024 px photo for
512 training decodes directly at 512), then either the random warp and colour jitter of
:mod:`celebseg_utils.data.augment`, or a plain resize (bilinear with antialiasing for the
photo, nearest neighbour only for the label). Elements stay uint8 through batching (4x fewer
bytes to move); each batch is then converted to float32 photos, int32 or one-hot labels and
the pixel weights, computed from the final (augmented) labels.

Determinism: each element gets its random numbers from stateless ops keyed by
``(seed, element index)``, and the order is deterministic, so the same seed gives the same
batches; ``seed=None`` draws a seed. With ``repeat`` every epoch is reshuffled and
re-augmented (the element index keeps counting).

``tf.distribute``: ``batch_size`` is the **global** batch; pass the dataset to
``strategy.experimental_distribute_dataset`` (or ``model.fit`` under the strategy's scope)
and each of R replicas gets ``batch_size / R`` images. With ``repeat`` the last partial
batch is dropped, so every batch has a static shape (needed by TPUs).

>>> # ds = make_dataset("data/prepared", "train", image_size=512, batch_size=8,
>>> #                   sample_weights="per_image", augment=True, shuffle=True, seed=0)
>>> # images, labels, weights = next(iter(ds))   # (8,512,512,3) (8,512,512,1) (8,512,512)
"""

from __future__ import annotations

import os
import random

import tensorflow as tf

from celebseg_utils.data import augment as A
from celebseg_utils import labels as L
from celebseg_utils import tf_startup
from celebseg_utils.data import layout
from celebseg_utils.data import stats as S
from celebseg_utils.data import shards as T
from celebseg_utils.data import storage
from celebseg_utils.data import weight_maps as W
from celebseg_utils.errors import CelebsegError

ENCODINGS = ("int", "onehot")
SAMPLE_WEIGHTS = (None, "per_image") + S.SCHEMES
_RATIOS = (1, 2, 4, 8)


def element_parallelism() -> int:
    """How many elements are decoded and augmented at once: twice the usable cores.

    Batches keep their order (same seed, same batches), so an element that finishes early
    waits for a slower one before it; with about one call per core in flight, as AUTOTUNE
    keeps here, one slow augmentation idles a core. Twice the cores keeps them busy (the
    calls still run on one thread per core): +3% images/s on 2 cores, measured with
    ``scripts/bench_pipeline.py``.

    >>> element_parallelism() >= 2
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * (cores or 1)


def decode_photo(data, size: int):
    """uint8 (h, w, 3) from JPEG bytes, downscaled in the DCT domain by the largest ratio
    in (1, 2, 4, 8) that keeps the smaller side >= ``size``.

    >>> import numpy as np
    >>> jpeg = tf.io.encode_jpeg(np.zeros((64, 64, 3), np.uint8))
    >>> decode_photo(jpeg, 16).shape.as_list(), decode_photo(jpeg, 17).shape.as_list()
    ([16, 16, 3], [32, 32, 3])
    """
    shape = tf.image.extract_jpeg_shape(data)
    side = tf.minimum(shape[0], shape[1])
    # The ratios that still give >= size: a prefix of (2, 4, 8); its length picks the ratio.
    ok = [tf.cast((side + r - 1) // r >= size, tf.int32) for r in _RATIOS[1:]]
    index = ok[0] * (1 + ok[1] * (1 + ok[2]))
    branches = [lambda r=r: tf.image.decode_jpeg(data, channels=3, ratio=r) for r in _RATIOS]
    image = tf.switch_case(index, branches)
    image.set_shape([None, None, 3])
    return image


def _resize_photo(image, size: int):
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    same = tf.logical_and(tf.equal(h, size), tf.equal(w, size))

    def resize():
        out = tf.image.resize(image, [size, size], antialias=True)
        return tf.cast(tf.clip_by_value(out, 0.0, 255.0) + 0.5, tf.uint8)

    image = tf.cond(same, lambda: image, resize)
    image.set_shape([size, size, 3])
    return image


def process_example(photo_bytes, label_bytes, index, *, size: int, augment: bool, seed: int):
    """One decoded example, resized or augmented: uint8 photo (S,S,3), uint8 label (S,S,1).

    The random parameters come from ``(seed, index)`` only. Batches stay uint8 (4x fewer
    bytes to move); :func:`finish_batch` converts them.
    """
    photo = decode_photo(photo_bytes, size)
    label = tf.io.decode_png(label_bytes, channels=1)
    if augment:
        params = A.sample_params(tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)]))
        return A.augment(photo, label, params, size)
    return _resize_photo(photo, size), A.resize_label(label, size)


_per_image_weights = tf.function(W.per_image_pixel_weights_tf, jit_compile=True)


def finish_batch(images, labels, *, encoding: str = "int", weights: str | None = None,
                 class_weights=None):
    """float32 images, int32 (B,S,S,1) or one-hot labels[, float32 (B,S,S) weights] of a
    uint8 batch; the weights from the (final) labels."""
    images = tf.cast(images, tf.float32)
    ints = tf.cast(labels, tf.int32)
    out = (images, ints if encoding == "int" else tf.one_hot(ints[..., 0], L.NUM_CLASSES))
    if weights is None:
        return out
    if weights == "per_image":
        return out + (_per_image_weights(ints),)
    return out + (W.class_weight_map_tf(ints, class_weights),)


def _check_args(split, image_size, batch_size, encoding, sample_weights):
    if split not in layout.SPLITS:
        raise CelebsegError(f"unknown split {split!r}; use one of {', '.join(layout.SPLITS)}")
    if not isinstance(image_size, int) or image_size < 8:
        raise CelebsegError(f"image_size={image_size!r}: use a size in px such as 512 or 256")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise CelebsegError(f"batch_size={batch_size!r}: use a whole number >= 1 (the global batch)")
    if encoding not in ENCODINGS:
        raise CelebsegError(f"encoding={encoding!r}: use 'int' or 'onehot'")
    if sample_weights not in SAMPLE_WEIGHTS:
        raise CelebsegError(f"sample_weights={sample_weights!r}: use one of "
                            f"{', '.join(map(str, SAMPLE_WEIGHTS))}")


def _file_source(prepared: str, info: dict, ids: list[int]):
    root = info["data_root"]
    labels = [storage.join(prepared, "labels", f"{k}.png") for k in ids]
    if "://" in prepared or "://" in str(root):
        photos = [storage.join(root, layout.IMAGE_DIR, f"{k}.jpg") for k in ids]
    else:
        photos = [str(layout.image_path(root, k)) for k in ids]
        # A missing file would otherwise stop training mid-epoch with a TensorFlow
        # NotFoundError; checking them all costs ~2 us each.
        gone = next((p for p in photos if not os.path.isfile(p)), None)
        if gone is not None:
            raise CelebsegError(f"missing photo {gone}: {prepared}/prepare.json points to the "
                                f"raw data root {root}; restore it there or re-run `celebseg prepare`")
        gone = next((p for p in labels if not os.path.isfile(p)), None)
        if gone is not None:
            raise CelebsegError(f"missing label {gone}: re-run `celebseg prepare` into {prepared} "
                                f"(it writes only the labels that are missing)")
    return tf.data.Dataset.from_tensor_slices((photos, labels))


def make_dataset(prepared_dir, split: str, image_size: int = 512, batch_size: int = 8,
                 encoding: str = "int", sample_weights: str | None = None, augment: bool = False,
                 shuffle: bool = False, seed: int | None = None, repeat: bool = False,
                 skip_batches: int = 0) -> tf.data.Dataset:
    """Batches ``(images, labels)`` or ``(images, labels, weights)`` of one split.

    images float32 (B,S,S,3) in 0..255; labels int32 (B,S,S,1) (``encoding="int"``) or
    float32 one-hot (B,S,S,19); weights float32 (B,S,S): ``"per_image"`` (see
    ``weight_maps.per_image_pixel_weights``) or a class-weight scheme of the train split's
    ``stats.json`` (computed when missing) looked up per pixel. ``batch_size`` is the global
    batch under ``tf.distribute``. Photos and labels come from TFRecord shards when
    ``PREP/tfrecords`` has them for ``split``.

    ``skip_batches=k`` starts at the stream's batch k: the same batches (same images, same
    augmentation) that the dataset without it gives from its k-th on, without decoding the
    skipped ones (they are skipped as file names, or as undecoded records). A training run
    resumed mid-epoch continues its data stream this way.

    >>> import tempfile
    >>> from celebseg_utils.data.prepare import prepare_dataset
    >>> from celebseg_utils.data.synthetic.generator import write_synthetic_dataset
    >>> d = tempfile.mkdtemp()
    >>> raw = write_synthetic_dataset(d + "/raw", 4, image_size=32, progress=False)
    >>> _ = prepare_dataset(raw, d + "/prep", workers=1, progress=False)
    >>> ds = make_dataset(d + "/prep", "train", image_size=32, batch_size=2, augment=True, seed=0,
    ...                   sample_weights="per_image")
    >>> [tuple(t.shape) for t in next(iter(ds))]
    [(2, 32, 32, 3), (2, 32, 32, 1), (2, 32, 32)]
    """
    _check_args(split, image_size, batch_size, encoding, sample_weights)
    # The batches' functions are XLA-compiled: spend XLA's one-time log line here, not in
    # whichever notebook cell first reads a batch.
    tf_startup.spend_xla_announcement()
    prepared = str(prepared_dir)
    info = layout.read_prepare_info(prepared)
    ids = layout.read_split(prepared, split)
    if not ids:
        raise CelebsegError(f"split {split!r} of {prepared} has no images; pick another split")
    class_weights = None
    if sample_weights in S.SCHEMES:
        class_weights = S.load_or_compute_stats(prepared, progress=False)["class_weights"][sample_weights]
    seed = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
    files = T.shard_files(prepared, split, ids)
    if files:
        ds = T.record_dataset(files, shuffle=shuffle, seed=seed, repeat=repeat)
        read = lambda record: T.parse_example(record)[:2]  # noqa: E731
    else:
        ds = _file_source(prepared, info, ids)
        if shuffle:
            ds = ds.shuffle(len(ids), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        read = lambda paths: (tf.io.read_file(paths[0]), tf.io.read_file(paths[1]))  # noqa: E731
    # Skipped before the map, so nothing skipped is decoded; the enumeration starts where
    # the skip ends, so every element keeps the index its augmentation is keyed by.
    start = int(skip_batches) * int(batch_size)
    if start:
        ds = ds.skip(start)
    # One map reads, decodes and augments: fewer function calls per element.
    ds = ds.enumerate(start=start).map(
        lambda i, el: process_example(*read(el), i, size=image_size, augment=augment, seed=seed),
        num_parallel_calls=element_parallelism(), deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat, num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True)
    ds = ds.map(lambda x, y: finish_batch(x, y, encoding=encoding, weights=sample_weights,
                                          class_weights=class_weights),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    # Elements run in parallel already; one thread per op avoids pool hand-offs (~5% CPU).
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

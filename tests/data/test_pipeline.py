"""The tf.data pipeline: shapes, encodings, flip swap, geometry, weights, determinism,
tf.distribute, and the real samples with their label ids intact.

This file is also the worker of the tf.distribute test (logical CPU devices must be set
before TensorFlow initialises): ``python tests/data/test_pipeline.py PREPARED`` prints one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import labels as L

SIZE = 64  # label size; photos are 2 * SIZE like the real data


def face_label(k: int, size: int = SIZE) -> np.ndarray:
    """A blocky face whose left/right parts differ, shifted a little with ``k``."""
    lab = np.zeros((size, size), np.uint8)
    s = size // 16
    o = k % 3
    lab[2 * s:14 * s, 3 * s:13 * s] = 1                        # skin
    lab[0:3 * s, 2 * s:14 * s] = 13                            # hair
    lab[5 * s + o:7 * s + o, 4 * s:7 * s] = 4                  # l_eye (image left)
    lab[5 * s + o:7 * s + o, 9 * s:11 * s] = 5                 # r_eye, narrower
    lab[3 * s + o:4 * s + o, 4 * s:7 * s] = 6                  # l_brow
    lab[6 * s:9 * s, 1 * s:3 * s] = 8                          # l_ear only
    lab[8 * s:10 * s, 7 * s:9 * s] = 2                         # nose
    lab[11 * s:12 * s, 6 * s:10 * s] = 11                      # u_lip
    lab[14 * s:, :] = 18                                       # cloth
    return lab


def write_prepared(root: Path, labels: dict, splits: dict, photos: dict | None = None) -> Path:
    """A prepared folder by hand: raw photos, PREP/labels, PREP/splits, PREP/prepare.json.

    Photos default to the palette colours of the label at twice its size (JPEG q95), so
    geometry can be checked from the photo.
    """
    raw, prep = root / "raw", root / "prep"
    (raw / "CelebA-HQ-img").mkdir(parents=True)
    (prep / "labels").mkdir(parents=True)
    (prep / "splits").mkdir()
    for k, label in labels.items():
        Image.fromarray(label).save(prep / "labels" / f"{k}.png")
        if photos and k in photos:
            shutil.copy(photos[k], raw / "CelebA-HQ-img" / f"{k}.jpg")
        else:
            big = np.kron(L.PALETTE[label], np.ones((2, 2, 1), np.uint8))
            Image.fromarray(big).save(raw / "CelebA-HQ-img" / f"{k}.jpg", quality=95)
    for name in ("train", "val", "test"):
        (prep / "splits" / f"{name}.txt").write_text("".join(f"{k}\n" for k in splits.get(name, [])))
    size = next(iter(labels.values())).shape[0]
    info = {"data_root": str(raw.resolve()), "label_size": size, "num_images": len(labels),
            "splits": {s: len(splits.get(s, [])) for s in ("train", "val", "test")}, "problems": 0}
    (prep / "prepare.json").write_text(json.dumps(info))
    return prep


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    labels = {k: face_label(k) for k in range(8)}
    return write_prepared(tmp_path_factory.mktemp("data"), labels,
                          {"train": [0, 1, 2, 3, 4, 5], "val": [6, 7], "test": []})


def _label(prepared: Path, k: int) -> np.ndarray:
    return np.asarray(Image.open(prepared / "labels" / f"{k}.png"))


def _all(ds):
    return [tuple(t.numpy() for t in batch) for batch in ds]


def test_int_batches_without_augment_give_the_prepared_labels_exactly(prepared):
    from celebseg_utils.data.pipeline import make_dataset

    batches = _all(make_dataset(prepared, "train", image_size=SIZE, batch_size=4))
    assert [b[0].shape for b in batches] == [(4, SIZE, SIZE, 3), (2, SIZE, SIZE, 3)]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.dtype == np.float32 and labels.dtype == np.int32 and labels.shape[-1] == 1
    assert 0 <= images.min() and images.max() <= 255
    for i, k in enumerate(range(6)):
        np.testing.assert_array_equal(labels[i, ..., 0], _label(prepared, k))
        # Photo decoded at half size in the DCT domain: the palette colours of the label.
        expected = L.PALETTE[_label(prepared, k)].astype(np.float32)
        assert np.median(np.abs(images[i] - expected)) < 4


def test_smaller_sizes_take_every_other_label_pixel(prepared):
    from celebseg_utils.data.pipeline import make_dataset

    (images, labels), = _all(make_dataset(prepared, "val", image_size=SIZE // 2, batch_size=2))
    assert images.shape == (2, SIZE // 2, SIZE // 2, 3)
    np.testing.assert_array_equal(labels[0, ..., 0], _label(prepared, 6)[1::2, 1::2])


def test_one_hot_rows_sum_to_one_and_match_the_int_labels(prepared):
    from celebseg_utils.data.pipeline import make_dataset

    (_, onehot), = _all(make_dataset(prepared, "val", image_size=SIZE, encoding="onehot"))
    (_, ints), = _all(make_dataset(prepared, "val", image_size=SIZE))
    assert onehot.shape == (2, SIZE, SIZE, 19) and onehot.dtype == np.float32
    np.testing.assert_array_equal(onehot.sum(-1), 1.0)
    np.testing.assert_array_equal(onehot.argmax(-1), ints[..., 0])


def test_flip_swaps_exactly_the_left_right_ids_and_mirrors_the_image():
    from celebseg_utils.data import augment

    changed = {c: int(p) for c, p in enumerate(L.FLIP_PERMUTATION) if p != c}
    assert changed == {4: 5, 5: 4, 6: 7, 7: 6, 8: 9, 9: 8}
    label = np.tile(np.arange(19, dtype=np.uint8), (19, 1))[:, :, None]     # every id, a column each
    label = np.pad(label, ((0, 1), (0, 1), (0, 0)))                            # 20 x 20
    image = np.random.default_rng(0).integers(0, 256, (20, 20, 3)).astype(np.uint8)
    out_image, out_label = augment.augment(image, label, augment.identity_params(flip=True), 20)
    mirrored = label[:, ::-1, 0]
    np.testing.assert_array_equal(out_label.numpy()[..., 0], L.FLIP_PERMUTATION[mirrored])
    np.testing.assert_allclose(out_image.numpy(), image[:, ::-1].astype(np.float32), atol=1e-3)
    same, _ = augment.augment(image, label, augment.identity_params(), 20)
    np.testing.assert_allclose(same.numpy(), image.astype(np.float32), atol=1e-3)


def test_augmented_photo_and_label_share_the_geometry(prepared, monkeypatch):
    """Without colour jitter the photo shows, at each interior pixel, the palette colour of
    its label's class (mirrored classes for a flipped sample): same warp for both."""
    from celebseg_utils.data import augment
    from celebseg_utils.data.pipeline import make_dataset

    monkeypatch.setattr(augment, "MAX_BRIGHTNESS", 0.0)
    monkeypatch.setattr(augment, "CONTRAST_RANGE", (1.0, 1.0))
    monkeypatch.setattr(augment, "SATURATION_RANGE", (1.0, 1.0))
    ds = make_dataset(prepared, "train", image_size=SIZE, batch_size=6, augment=True, seed=3)
    (images, labels), = _all(ds)
    flips = []
    for image, label in zip(images, labels[..., 0]):
        interior = np.ones_like(label, bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                interior &= np.roll(label, (dy, dx), (0, 1)) == label
        interior[[0, -1], :] = interior[:, [0, -1]] = False
        scores = []
        for flipped in (False, True):
            ids = L.FLIP_PERMUTATION[label] if flipped else label
            err = np.abs(image - L.PALETTE[ids]).max(-1)
            scores.append(np.mean(err[interior] < 40))
        flips.append(scores[1] > scores[0])
        assert max(scores) > 0.97
        assert not np.array_equal(label, _label(prepared, 0))  # really augmented
    assert 0 < sum(flips) < len(flips)  # both mirrored and plain samples in 6


def test_same_seed_same_batches_other_seed_other_batches(prepared):
    from celebseg_utils.data.pipeline import make_dataset

    def take(seed):
        ds = make_dataset(prepared, "train", image_size=SIZE, batch_size=4, augment=True,
                          shuffle=True, seed=seed, repeat=True, sample_weights="per_image")
        return [tuple(t.numpy() for t in b) for b in ds.take(4)]  # 16 elements: > 2 epochs

    first, second, other = take(7), take(7), take(8)
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0][0], other[0][0])
    # Epochs are re-augmented: element 0 and element 6 show the same ids in other ways.
    assert not np.array_equal(first[0][1], first[1][1])


def test_skip_batches_continues_the_seeded_stream_exactly(prepared):
    """A run resumed mid-epoch gets the batches it would have had, augmentation included."""
    from celebseg_utils.data.pipeline import make_dataset

    def stream(skip):
        ds = make_dataset(prepared, "train", image_size=SIZE, batch_size=4, augment=True,
                          shuffle=True, seed=3, repeat=True, sample_weights="per_image",
                          skip_batches=skip)
        return [tuple(t.numpy() for t in b) for b in ds.take(5 - skip)]

    whole = stream(0)  # 20 elements: over three passes of the 6 training faces
    for skip in (1, 3):  # mid-pass and across a reshuffle
        for a, b in zip(whole[skip:], stream(skip), strict=True):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
    assert not np.array_equal(whole[0][0], whole[1][0])


def test_per_image_and_class_weights_follow_the_final_label(prepared):
    from celebseg_utils.data import stats, weight_maps
    from celebseg_utils.data.pipeline import make_dataset

    images, labels, weights = _all(make_dataset(prepared, "train", image_size=SIZE, batch_size=3,
                                                augment=True, seed=1, sample_weights="per_image"))[0]
    assert weights.shape == (3, SIZE, SIZE) and weights.dtype == np.float32
    for label, w in zip(labels[..., 0], weights):
        np.testing.assert_allclose(w, weight_maps.per_image_pixel_weights(label), rtol=1e-5)
        assert w.mean() == pytest.approx(1.0, rel=1e-4)
    class_weights = stats.load_or_compute_stats(prepared, progress=False)["class_weights"]
    for scheme in ("median_freq", "inv_freq", "enet"):
        _, labels, weights = _all(make_dataset(prepared, "val", image_size=SIZE, sample_weights=scheme))[0]
        np.testing.assert_allclose(weights, weight_maps.class_weight_map(labels[..., 0], class_weights[scheme]))


def test_bad_arguments_and_missing_photos_are_user_errors(prepared, tmp_path):
    from celebseg_utils.data.pipeline import make_dataset
    from celebseg_utils.errors import CelebsegError

    with pytest.raises(CelebsegError, match="unknown split"):
        make_dataset(prepared, "training")
    with pytest.raises(CelebsegError, match="encoding"):
        make_dataset(prepared, "val", encoding="sparse")
    with pytest.raises(CelebsegError, match="sample_weights"):
        make_dataset(prepared, "val", sample_weights="balanced")
    with pytest.raises(CelebsegError, match="has no images"):
        make_dataset(prepared, "test")
    moved = write_prepared(tmp_path, {0: face_label(0)}, {"val": [0]})
    shutil.rmtree(tmp_path / "raw")
    with pytest.raises(CelebsegError, match="0.jpg"):
        make_dataset(moved, "val")


@pytest.mark.slow
def test_real_samples_keep_their_label_ids(real_samples_dir, tmp_path):
    from celebseg_utils.data.pipeline import make_dataset

    labels = {k: np.asarray(Image.open(real_samples_dir / f"{k}.png")) for k in (0, 1)}
    photos = {k: real_samples_dir / f"{k}.jpg" for k in (0, 1)}
    assert labels[0].shape == (512, 512) and Image.open(photos[0]).size == (1024, 1024)
    prep = write_prepared(tmp_path, labels, {"val": [0, 1]}, photos)

    (images, full), = _all(make_dataset(prep, "val", image_size=512, batch_size=2))
    for i in (0, 1):
        np.testing.assert_array_equal(full[i, ..., 0], labels[i])
        reference = np.asarray(Image.open(photos[i]).reduce(2), np.float32)
        assert np.abs(images[i] - reference).mean() < 3
    (_, small), = _all(make_dataset(prep, "val", image_size=256, batch_size=2))
    for i in (0, 1):
        assert set(np.unique(small[i])) == set(np.unique(labels[i]))
    (_, aug), = _all(make_dataset(prep, "val", image_size=256, batch_size=2, augment=True, seed=0))
    for i in (0, 1):
        allowed = set(np.unique(labels[i])) | set(L.FLIP_PERMUTATION[np.unique(labels[i])]) | {0}
        assert set(np.unique(aug[i])) <= allowed and len(np.unique(aug[i])) >= 8


def _distributed_worker(prepared: str) -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from celebseg_utils.data.pipeline import make_dataset

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    kwargs = dict(image_size=32, batch_size=4, augment=True, shuffle=True, seed=5, repeat=True,
                  sample_weights="per_image")
    local = [tuple(t.numpy() for t in b) for b in make_dataset(prepared, "train", **kwargs).take(2)]
    dist = strategy.experimental_distribute_dataset(make_dataset(prepared, "train", **kwargs))
    shapes, equal = [], []
    for step, batch in zip(range(2), dist):
        parts = [strategy.experimental_local_results(t) for t in batch]
        shapes.append([[list(p.shape) for p in part] for part in parts])
        joined = [np.concatenate([p.numpy() for p in part]) for part in parts]
        equal.append(all(np.array_equal(a, b) for a, b in zip(joined, local[step])))
    return {"replicas": strategy.num_replicas_in_sync, "shapes": shapes, "equal": equal}


@pytest.mark.slow
def test_global_batch_is_split_across_two_replicas(prepared):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(Path(__file__).parents[2]))
    proc = subprocess.run([sys.executable, __file__, str(prepared)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    # Global batch 4 -> 2 per replica, for images, labels and weights.
    assert result["shapes"][0] == [[[2, 32, 32, 3]] * 2, [[2, 32, 32, 1]] * 2, [[2, 32, 32]] * 2]
    assert result["equal"] == [True, True]  # the replicas' halves are the single-device batch


if __name__ == "__main__":
    print(json.dumps(_distributed_worker(sys.argv[1])))


def test_banded_augmentation_equals_the_whole_image_warp(monkeypatch):
    import tensorflow as tf

    from celebseg_utils.data import augment as A

    rng = np.random.default_rng(3)
    photo = tf.constant(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    label = tf.constant(rng.integers(0, 19, (64, 64, 1), dtype=np.uint8))
    for k in range(4):
        params = A.sample_params([5, k])
        monkeypatch.setattr(A, "BAND_ROWS", 16)             # 64 rows: 4 bands
        banded = A._augment(photo, label, params, 64)
        monkeypatch.setattr(A, "BAND_ROWS", 7)              # 64 % 7 != 0: the whole image
        whole = A._augment(photo, label, params, 64)
        np.testing.assert_array_equal(banded[1].numpy(), whole[1].numpy())
        diff = np.abs(banded[0].numpy().astype(int) - whole[0].numpy().astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float rounding at .5 only

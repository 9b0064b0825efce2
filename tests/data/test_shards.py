"""TFRecord shards: names, round trip of labels and ids, reading through make_dataset,
stale and missing shards, and the whole chain synth -> prepare --tfrecords -> batches."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebseg_utils import labels as L
from celebseg_utils.data import shards as T
from celebseg_utils.errors import CelebsegError

SIZE = 32


def _label(k: int) -> np.ndarray:
    lab = np.zeros((SIZE, SIZE), np.uint8)
    lab[4:28, 6:26] = 1
    lab[10:14, 8:14] = 4
    lab[10:14, 18:22] = 5
    lab[k % 5 + 20:k % 5 + 23, 12:20] = 11
    return lab


def write_prepared(root: Path, splits: dict) -> Path:
    """Raw photos (2 * SIZE px, palette colours) + PREP/labels, splits, prepare.json."""
    raw, prep = root / "raw", root / "prep"
    (raw / "CelebA-HQ-img").mkdir(parents=True)
    (prep / "labels").mkdir(parents=True)
    (prep / "splits").mkdir()
    ids = sorted(k for v in splits.values() for k in v)
    for k in ids:
        Image.fromarray(_label(k)).save(prep / "labels" / f"{k}.png")
        photo = np.kron(L.PALETTE[_label(k)], np.ones((2, 2, 1), np.uint8))
        Image.fromarray(photo).save(raw / "CelebA-HQ-img" / f"{k}.jpg", quality=95)
    for name in ("train", "val", "test"):
        (prep / "splits" / f"{name}.txt").write_text("".join(f"{k}\n" for k in splits.get(name, [])))
    info = {"data_root": str(raw), "label_size": SIZE, "num_images": len(ids),
            "splits": {s: len(splits.get(s, [])) for s in ("train", "val", "test")}, "problems": 0}
    (prep / "prepare.json").write_text(json.dumps(info))
    return prep


@pytest.fixture
def prepared(tmp_path):
    return write_prepared(tmp_path, {"train": [0, 2, 3, 5, 6, 9], "val": [1, 4], "test": [7]})


def _records(path: Path):
    import tensorflow as tf

    return [tuple(t.numpy() for t in T.parse_example(r)) for r in tf.data.TFRecordDataset(str(path))]


def test_shards_round_trip_labels_ids_and_photos(prepared):
    info = T.write_tfrecord_shards(prepared, images_per_shard=4, progress=False, workers=1)
    names = sorted(p.name for p in (prepared / "tfrecords").iterdir())
    assert names == ["info.json", "test-00000-of-00001.tfrecord", "train-00000-of-00002.tfrecord",
                     "train-00001-of-00002.tfrecord", "val-00000-of-00001.tfrecord"]
    assert info["image_size"] == SIZE and info["splits"]["train"]["shards"] == 2
    assert json.loads((prepared / "tfrecords" / "info.json").read_text()) == info
    records = (_records(prepared / "tfrecords" / "train-00000-of-00002.tfrecord")
               + _records(prepared / "tfrecords" / "train-00001-of-00002.tfrecord"))
    assert [int(r[2]) for r in records] == [0, 2, 3, 5, 6, 9]
    for photo, label, k in records:
        assert label == (prepared / "labels" / f"{k}.png").read_bytes()
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(label))), _label(int(k)))
        decoded = np.asarray(Image.open(io.BytesIO(photo)))
        assert decoded.shape == (SIZE, SIZE, 3)  # re-encoded at the label size
        assert np.median(np.abs(decoded.astype(int) - L.PALETTE[_label(int(k))])) < 4


def test_original_mode_keeps_the_photo_bytes(prepared):
    T.write_tfrecord_shards(prepared, image_size="original", progress=False)
    (photo, _, k), = _records(prepared / "tfrecords" / "test-00000-of-00001.tfrecord")
    assert k == 7 and photo == (prepared.parent / "raw" / "CelebA-HQ-img" / "7.jpg").read_bytes()


def test_jpeg_quality_is_recorded_and_trades_bytes_for_fidelity(prepared):
    sizes, errors = {}, {}
    for quality in (60, 95):
        info = T.write_tfrecord_shards(prepared, progress=False, workers=1, jpeg_quality=quality)
        assert info["jpeg_quality"] == quality
        records = _records(prepared / "tfrecords" / "test-00000-of-00001.tfrecord")
        sizes[quality] = sum(len(r[0]) for r in records)
        photo = np.asarray(Image.open(io.BytesIO(records[0][0])), np.float64)
        with Image.open(prepared.parent / "raw" / "CelebA-HQ-img" / "7.jpg") as im:
            reference = np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), np.float64)
        errors[quality] = np.abs(photo - reference).mean()
    assert sizes[60] < sizes[95] and errors[60] > errors[95]
    assert T.write_tfrecord_shards(prepared, image_size="original", progress=False)["jpeg_quality"] is None
    with pytest.raises(CelebsegError, match="jpeg_quality"):
        T.write_tfrecord_shards(prepared, progress=False, jpeg_quality=0)


def test_make_dataset_reads_the_shards_and_gives_the_png_batches(prepared):
    from celebseg_utils.data.pipeline import make_dataset

    png = [tuple(t.numpy() for t in b) for b in make_dataset(prepared, "train", SIZE, batch_size=4)]
    T.write_tfrecord_shards(prepared, images_per_shard=4, progress=False, workers=1)
    shard = [tuple(t.numpy() for t in b) for b in make_dataset(prepared, "train", SIZE, batch_size=4)]
    assert len(png) == len(shard) == 2
    for (xa, ya), (xb, yb) in zip(png, shard):
        np.testing.assert_array_equal(ya, yb)              # same order, same labels
        # Re-encoded photo, same picture (4:2:0 chroma blurs the 32 px palette edges).
        assert np.median(np.abs(xa - xb)) <= 2 and np.abs(xa - xb).mean() < 10
    # Removing a shard makes the reader refuse rather than silently drop images.
    (prepared / "tfrecords" / "train-00001-of-00002.tfrecord").unlink()
    with pytest.raises(CelebsegError, match="missing shard"):
        make_dataset(prepared, "train", SIZE)


def test_shuffled_shard_reading_is_seeded_and_covers_the_split(prepared):
    from celebseg_utils.data.pipeline import make_dataset

    T.write_tfrecord_shards(prepared, images_per_shard=2, progress=False, workers=1)

    def run(seed):
        ds = make_dataset(prepared, "train", SIZE, batch_size=6, augment=True, shuffle=True, seed=seed)
        return [tuple(t.numpy() for t in b) for b in ds]

    (xa, ya), = run(4)
    (xb, yb), = run(4)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    # Each image once, in another order: the u_lip's first row identifies the image (k % 5).
    def lip_rows(shuffle):
        ds = make_dataset(prepared, "train", SIZE, batch_size=1, shuffle=shuffle, seed=4)
        return [int(np.flatnonzero((b[1].numpy()[0, ..., 0] == 11).any(1))[0]) for b in ds]

    plain, shuffled = lip_rows(False), lip_rows(True)
    assert plain == [k % 5 + 20 for k in (0, 2, 3, 5, 6, 9)]
    assert sorted(shuffled) == sorted(plain) and shuffled != plain


def test_stale_shards_are_refused(prepared):
    from celebseg_utils.data.pipeline import make_dataset

    T.write_tfrecord_shards(prepared, progress=False, workers=1)
    (prepared / "splits" / "val.txt").write_text("1\n")
    with pytest.raises(CelebsegError, match="do not match"):
        make_dataset(prepared, "val", SIZE)


def test_rewriting_replaces_old_shards_and_leaves_no_temporaries(prepared):
    T.write_tfrecord_shards(prepared, images_per_shard=1, progress=False, workers=2)
    T.write_tfrecord_shards(prepared, images_per_shard=4, progress=False, workers=2)
    names = sorted(p.name for p in (prepared / "tfrecords").iterdir())
    assert names == ["info.json", "test-00000-of-00001.tfrecord", "train-00000-of-00002.tfrecord",
                     "train-00001-of-00002.tfrecord", "val-00000-of-00001.tfrecord"]
    # The worker processes do not change a byte.
    parallel = (prepared / "tfrecords" / "train-00001-of-00002.tfrecord").read_bytes()
    T.write_tfrecord_shards(prepared, images_per_shard=4, progress=False, workers=1)
    assert (prepared / "tfrecords" / "train-00001-of-00002.tfrecord").read_bytes() == parallel


def test_a_missing_photo_is_a_user_error(prepared):
    (prepared.parent / "raw" / "CelebA-HQ-img" / "4.jpg").unlink()
    with pytest.raises(CelebsegError, match="4.jpg"):
        T.write_tfrecord_shards(prepared, progress=False, workers=1)
    assert not (prepared / "tfrecords" / "info.json").exists()


@pytest.mark.slow
def test_real_samples_round_trip_through_shards(real_samples_dir, tmp_path):
    from celebseg_utils.data.pipeline import make_dataset

    raw, prep = tmp_path / "raw", tmp_path / "prep"
    (raw / "CelebA-HQ-img").mkdir(parents=True)
    (prep / "labels").mkdir(parents=True)
    (prep / "splits").mkdir()
    for k in (0, 1):
        shutil.copy(real_samples_dir / f"{k}.jpg", raw / "CelebA-HQ-img" / f"{k}.jpg")
        shutil.copy(real_samples_dir / f"{k}.png", prep / "labels" / f"{k}.png")
    for name, ids in (("train", ""), ("val", "0\n1\n"), ("test", "")):
        (prep / "splits" / f"{name}.txt").write_text(ids)
    (prep / "prepare.json").write_text(json.dumps({"data_root": str(raw), "label_size": 512,
                                                   "num_images": 2, "splits": {}, "problems": 0}))
    T.write_tfrecord_shards(prep, progress=False, workers=1)
    (images, labels), = [tuple(t.numpy() for t in b) for b in make_dataset(prep, "val", 512, batch_size=2)]
    for i in (0, 1):
        np.testing.assert_array_equal(labels[i, ..., 0], np.asarray(Image.open(real_samples_dir / f"{i}.png")))
        reference = np.asarray(Image.open(real_samples_dir / f"{i}.jpg").reduce(2), np.float32)
        assert np.abs(images[i] - reference).mean() < 4


@pytest.mark.slow
def test_synth_prepare_tfrecords_then_batches(tmp_path):
    from celebseg_utils.data import masks
    from celebseg_utils.data.pipeline import make_dataset
    from celebseg_utils.data.prepare import prepare_dataset
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    raw = write_synthetic_dataset(tmp_path / "raw", 12, image_size=64, seed=1, progress=False)
    prep = tmp_path / "prep"
    prepare_dataset(raw, prep, workers=1, tfrecords=True, progress=False)
    ids = [int(x) for x in (prep / "splits" / "train.txt").read_text().split()]
    assert sorted((prep / "tfrecords").glob("train-*.tfrecord"))
    labels = np.concatenate([b[1].numpy() for b in make_dataset(prep, "train", 64, batch_size=4)])
    assert len(labels) == len(ids)
    for label, k in zip(labels[..., 0], ids):
        np.testing.assert_array_equal(label, masks.fuse_masks(raw, k))

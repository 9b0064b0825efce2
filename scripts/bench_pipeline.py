"""Images per second of four ways to feed 512x512 augmented batches, on one folder, in one run.

(a) a naive per-sample ``keras.utils.PyDataset`` (PIL photo + up to 18 mask PNGs fused per
    sample, numpy augmentation: what a first course project writes), (b) ``make_dataset``
    from prepared PNGs, (c) ``make_dataset`` from TFRecord shards (photos re-encoded at the
    label size, the default; also with the original bytes and DCT downscaling), and the
    ceiling: tf.data decoding the same JPEG photos alone (same parallelism, batching).

    python scripts/bench_pipeline.py --count 400            # synth 512 px faces, prepare
    python scripts/bench_pipeline.py --prepared data/prepared --split train

Each rate is the median of ``--repeats`` timings of ``--epochs`` x (split size) images
after a warm-up, the pipelines timed in turn (round-robin) so that a change of load hits all
alike. Other processes on the machine change the wall-clock numbers: the 1-minute
load average is printed with them, and so is the rate per CPU-second of this process, which
load barely moves; "projected" = that rate x the threads a pipeline can use (1 for the
Python loader, all cores for tf.data), i.e. the rate with the machine to itself. Prints a Markdown table; ``--json`` also saves the numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


NAIVE = "(a) naive PyDataset: PIL photo + mask PNGs per sample"
SHARDS = "(c) make_dataset, TFRecord shards (photos at label size)"
CEILING = "ceiling: decode the original JPEGs, full size"


def _shadow(prepared: Path, out: Path) -> Path:
    """A prepared folder that shares labels/splits/prepare.json but has its own tfrecords/."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("labels", "splits", "prepare.json"):
        if not (out / name).exists():
            (out / name).symlink_to((prepared / name).resolve())
    return out


def build(work: Path, count: int) -> Path:
    from celebseg_utils.data.prepare import prepare_dataset
    from celebseg_utils.data.synthetic.generator import write_synthetic_dataset

    raw = work / "raw"
    if not (raw / "CelebA-HQ-to-CelebA-mapping.txt").exists():
        write_synthetic_dataset(raw, count, image_size=512, seed=0)
    prep = work / "prepared"
    if not (prep / "prepare.json").exists():
        prepare_dataset(raw, prep)
    return prep


def naive_dataset(root: Path, ids: list[int], size: int, batch_size: int):
    import keras
    from PIL import Image

    from celebseg_utils import labels as L
    from celebseg_utils.data import layout

    class Naive(keras.utils.PyDataset):
        """Per sample: open the photo and every mask PNG, fuse, augment in numpy."""

        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)

        def __len__(self):
            return math.ceil(len(ids) / batch_size)

        def __getitem__(self, index):
            xs, ys = [], []
            for k in ids[index * batch_size:(index + 1) * batch_size]:
                photo = Image.open(layout.image_path(root, k)).convert("RGB")
                label = None
                for c, attr in enumerate(L.ATTRIBUTES, start=1):
                    path = layout.mask_path(root, k, attr)
                    if path.exists():
                        mask = np.array(Image.open(path).convert("L")) > 0
                        label = np.zeros(mask.shape, np.uint8) if label is None else label
                        label[mask] = c
                label = Image.fromarray(label)
                s = self.rng.uniform(0.8, 1.25)  # random scale and crop
                w = min(photo.width, int(photo.width / s))
                x0, y0 = self.rng.integers(0, photo.width - w + 1, 2)
                box = (x0, y0, x0 + w, y0 + w)
                lbox = tuple(int(v) * label.width // photo.width for v in box)
                photo = photo.resize((size, size), Image.BILINEAR, box=box)
                label = label.resize((size, size), Image.NEAREST, box=lbox)
                angle = self.rng.uniform(-10, 10)
                photo, label = photo.rotate(angle, Image.BILINEAR), label.rotate(angle, Image.NEAREST)
                x, y = np.asarray(photo, np.float32), np.asarray(label)
                if self.rng.random() < 0.5:
                    x, y = x[:, ::-1], L.FLIP_PERMUTATION[y[:, ::-1]]
                x = np.clip(x * self.rng.uniform(0.8, 1.2) + self.rng.uniform(-25, 25), 0, 255)
                xs.append(x)
                ys.append(y)
            return np.stack(xs), np.stack(ys)[..., None].astype(np.int32)

    return Naive()


def time_once(make_iter, images: int, batch_size: int, warmup: int = 4) -> tuple[float, float, float]:
    """(images/s, images per CPU-second, load) of one timing of ``images`` images after
    ``warmup`` batches."""
    steps = max(1, images // batch_size)
    it = make_iter()
    for _ in range(warmup):
        next(it)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        next(it)
    n = steps * batch_size
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu), os.getloadavg()[0]


def measure_all(pipelines: dict, repeats: int) -> dict:
    """Median rates of every pipeline, timed round-robin (repeat r times each in turn), so a
    change of load during the run hits all of them alike.

    ``pipelines``: name -> (make_iter, images, batch_size, warmup).
    """
    timings = {name: [] for name in pipelines}
    for _ in range(repeats):
        for name, (make_iter, images, bs, warmup) in pipelines.items():
            timings[name].append(time_once(make_iter, images, bs, warmup))
    return {name: {"rate": statistics.median(t[0] for t in ts), "rates": [t[0] for t in ts],
                   "per_cpu_second": statistics.median(t[1] for t in ts),
                   "load": max(t[2] for t in ts)} for name, ts in timings.items()}


def _cycle(py_dataset):
    while True:
        for i in range(len(py_dataset)):
            yield py_dataset[i]


def decode_ceiling(photos: list[str], batch_size: int, ratio: int):
    import tensorflow as tf

    def decode(path):
        return tf.image.decode_jpeg(tf.io.read_file(path), channels=3, ratio=ratio)

    ds = tf.data.Dataset.from_tensor_slices(photos).repeat()
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prepared", type=Path, help="a prepared folder (its raw root must have the masks for (a))")
    src.add_argument("--count", type=int, default=400, help="synthetic faces to build when no --prepared")
    p.add_argument("--work", type=Path, default=None, help="folder for the synthetic data and shards (default: temp)")
    p.add_argument("--split", default="train")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=float, default=2.0, help="images timed per repeat, in split sizes")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--naive-images", type=int, default=96, help="images timed per repeat for (a), the slow one")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--intra-op-threads", type=int, default=None,
                   help="TensorFlow's intra-op pool size (default: TF's, one per core); 1 stops "
                        "XLA from splitting the augmentation across the pool")
    args = p.parse_args(argv)
    if args.intra_op_threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)

    from celebseg_utils.data import layout
    from celebseg_utils.data import shards as T

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    prepared = args.prepared or build(work, args.count)
    info = layout.read_prepare_info(prepared)
    ids = layout.read_split(prepared, args.split)
    root = Path(info["data_root"])
    png = _shadow(prepared, work / "png")

    def shards_of(name, **kw):
        folder = _shadow(prepared, work / name)
        want = {"image_size": None if kw["image_size"] == "original" else int(info["label_size"]),
                "jpeg_quality": kw.get("jpeg_quality", T.JPEG_QUALITY) if kw["image_size"] != "original" else None}
        have = T.read_info(folder) or {}
        if any(have.get(k) != v for k, v in want.items()):  # absent, or left by other settings
            T.write_tfrecord_shards(folder, progress=False, **kw)
        return folder

    t0 = time.perf_counter()
    shards = shards_of("shards", image_size="label")
    t_shards = time.perf_counter() - t0
    shards_q95 = shards_of("shards_q95", image_size="label", jpeg_quality=95)
    shards_orig = shards_of("shards_original", image_size="original")
    sizes = {name: sum(f.stat().st_size for f in (d / "tfrecords").glob(f"{args.split}-*.tfrecord"))
             for name, d in (("resized", shards), ("original", shards_orig))}

    from celebseg_utils.data.pipeline import make_dataset

    images = int(args.epochs * len(ids))
    bs = args.batch_size

    def pipeline(folder, **kw):
        return lambda: iter(make_dataset(folder, args.split, image_size=args.size, batch_size=bs,
                                         augment=True, shuffle=True, seed=0, repeat=True, **kw))

    photos = [str(layout.image_path(root, k)) for k in ids]
    print(f"{len(ids)} {args.split} images of {prepared}; load average before: "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    naive = naive_dataset(root, ids, args.size, bs)
    pipelines = {
        NAIVE: (lambda: _cycle(naive), min(args.naive_images, images), bs, 1),
        "(b) make_dataset, prepared PNGs + original JPEGs": (pipeline(png), images, bs, 4),
        SHARDS: (pipeline(shards), images, bs, 4),
        f"(c) with photos at JPEG quality 95 instead of {T.JPEG_QUALITY}": (pipeline(shards_q95), images, bs, 4),
        "(c') make_dataset, TFRecord shards (original JPEG bytes)": (pipeline(shards_orig), images, bs, 4),
        "(c) + per-image pixel weights": (pipeline(shards, sample_weights="per_image"), images, bs, 4),
        CEILING: (lambda: iter(decode_ceiling(photos, bs, 1)), images, bs, 4),
        "ceiling: decode the original JPEGs, DCT ratio 2": (lambda: iter(decode_ceiling(photos, bs, 2)),
                                                           images, bs, 4),
    }
    rows = measure_all(pipelines, args.repeats)
    rows[NAIVE]["threads"] = 1
    for name, r in rows.items():
        print(f"  {name}: {r['rate']:.0f} img/s {[round(x) for x in r['rates']]}, "
              f"{r['per_cpu_second']:.0f} img per CPU-second (load {r['load']:.2f})", flush=True)

    cores = os.cpu_count()
    for r in rows.values():
        # What the process would do with the machine to itself: CPU-seconds are not taken by
        # other processes' load. The naive loader is one Python thread; tf.data uses all cores.
        r["projected_idle"] = r["per_cpu_second"] * r.setdefault("threads", cores)
    naive_rate, ceiling = rows[NAIVE]["rate"], rows[CEILING]["rate"]
    naive_idle, ceiling_idle = rows[NAIVE]["projected_idle"], rows[CEILING]["projected_idle"]
    print(f"\n{args.size}x{args.size}, batch {bs}, augmentation on, {os.cpu_count()} cores, "
          f"median of {args.repeats}; 1-min load average during the runs up to "
          f"{max(r['load'] for r in rows.values()):.2f}\n")
    print("| pipeline | images/s measured | x naive | % of decode ceiling | images per CPU-second "
          f"| images/s projected on {cores} idle cores | x naive | % of ceiling |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['rate']:.0f} | {r['rate'] / naive_rate:.1f} | "
              f"{100 * r['rate'] / ceiling:.0f}% | {r['per_cpu_second']:.0f} | {r['projected_idle']:.0f} | "
              f"{r['projected_idle'] / naive_idle:.1f} | {100 * r['projected_idle'] / ceiling_idle:.0f}% |")
    c = rows[SHARDS]
    for label, rate, base, top in (("measured", c["rate"], naive_rate, ceiling),
                                   ("projected", c["projected_idle"], naive_idle, ceiling_idle)):
        print(f"\ntargets for (c), {label}: >= 400 img/s: {rate:.0f} {'ok' if rate >= 400 else 'MISSED'}; "
              f">= 8x (a): {rate / base:.1f}x {'ok' if rate >= 8 * base else 'MISSED'}; "
              f">= 60% of the ceiling: {100 * rate / top:.0f}% {'ok' if rate >= 0.6 * top else 'MISSED'}")
    print(f"shards of {args.split}: {sizes['resized'] / 2**20:.1f} MiB (label size) vs "
          f"{sizes['original'] / 2**20:.1f} MiB (original bytes); writing them took {t_shards:.1f} s")
    if args.json:
        from celebseg_utils.fileio import atomic_write_json

        atomic_write_json(args.json, {"images": len(ids), "size": args.size, "batch_size": bs,
                                      "cores": os.cpu_count(), "rows": rows, "shard_bytes": sizes})
    return 0


if __name__ == "__main__":
    sys.exit(main())

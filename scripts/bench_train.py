"""Training throughput of DeepLabV3+ as ``celebseg train`` builds it, over a grid of settings.

For every combination of library x backbone x image size x precision x XLA x batch size,
the model, loss and optimizer come from ``engine.train._compile_model`` (the code ``train``
runs, on a config resolved like ``celebseg train --preset ... --set ...``); the batches are
random tensors already in memory, so the figure is the model's, not the input pipeline's
(``bench_pipeline.py`` measures that). Per row:

- ``img/s``: images per second of ``fit`` steps after ``--warmup`` steps (compilation),
  median over ``--repeats`` timings of ``--steps`` steps each;
- ``peak memory``: ``tf.config.experimental.get_memory_info`` on a GPU (reset per row);
  n/a on CPU, which reports none;
- ``XLA``: whether the training step really was XLA-compiled: Keras turns a requested
  ``jit_compile`` off silently when a layer does not support it, and with a
  ``tf.distribute`` strategy under "auto"; Keras's training function is searched for a
  traced ``tf.function`` compiled with ``jit_compile=True`` (:func:`xla_compiled`). An XLA compile error (e.g. the resize gradients of
  keras-team/keras#18460) is caught and shown as ``failed`` in that row;
- ``GFLOPs``: one forward pass per image, counted as ``bench_models.py`` counts
  (convolutions and matmuls, multiply-add = 2); a training step is taken as 3x that;
- ``MFU``: model FLOP utilisation, 3 x GFLOPs x img/s / ``--peak-tflops`` (when given).

Usage::

    python scripts/bench_train.py --sizes 128 --batch-sizes 2 --steps 5   # a sub-grid, on CPU
    python scripts/bench_train.py --gpu-grid --peak-tflops 65             # the GPU grid (T4)

``--gpu-grid``: keras-cv ResNet50V2 and keras-hub ResNet50V2 at 512 px, batch 8, float32 and
mixed, XLA off and on (8 rows, about 8 minutes on a T4 including compilation).

>>> # python scripts/bench_train.py --libraries keras_cv --backbones mobilenet_v3_large --sizes 64
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

GPU_GRID = dict(libraries=["keras_cv", "keras_hub"], backbones=["resnet50_v2"], sizes=[512],
                precisions=["float32", "mixed"], xla=["off", "on"], batch_sizes=[8],
                steps=20, warmup=3, repeats=3)


def xla_compiled(function) -> bool:
    """True when Keras's training function holds a traced ``tf.function`` compiled with XLA.

    Keras wraps its step in plain Python closures around ``tf.function`` objects (the
    XLA-compiled step is one of them when ``jit_compile`` held); they are found by walking
    the closures, and count when they were traced with ``jit_compile=True``.
    """
    seen, todo = set(), [function]
    while todo:
        fn = todo.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        if hasattr(fn, "experimental_get_tracing_count"):  # a tf.function
            if getattr(fn, "_jit_compile", None) and fn.experimental_get_tracing_count() > 0:
                return True
            fn = getattr(fn, "_python_function", None)
        if not isinstance(fn, types.FunctionType):
            continue
        for cell in fn.__closure__ or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
    return False


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x GPU {details.get('device_name', gpus[0].name)}"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def bench_one(library, backbone, size, precision, xla, batch, steps, warmup, repeats) -> dict:
    """One row of the grid (see the module doc)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from bench_models import count_flops_analytic
    from celebseg_utils.engine import strategy as st
    from celebseg_utils.engine.config import resolve_config
    from celebseg_utils.engine.train import _compile_model
    from celebseg_utils.labels import NUM_CLASSES

    config = resolve_config(preset="colab-t4", overrides=[
        f"model.library={library}", f"model.backbone={backbone}", "model.weights=none",
        f"image_size={size}", f"batch_size={batch}", f"jit_compile={xla == 'on'}",
        f"mixed_precision={precision == 'mixed'}"])
    policy = st.resolve_precision(config.mixed_precision, tf.distribute.get_strategy())
    row = {"library": library, "backbone": backbone, "image_size": size,
           "precision": policy, "xla_requested": xla == "on", "batch_size": batch}
    keras.backend.clear_session()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        total = warmup + steps * repeats
        model, _ = _compile_model(config, None, total_steps=total, warmup_steps=0)
        rng = np.random.default_rng(0)
        images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)), tf.float32)
        labels = tf.constant(rng.integers(0, NUM_CLASSES, (batch, size, size, 1)), tf.int32)
        data = tf.data.Dataset.from_tensors((images, labels)).repeat()
        gpu = bool(tf.config.list_logical_devices("GPU"))
        if gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")

        times = []

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch_index, logs=None):
                # the step's result, so that the clock waits for the device
                float(logs["loss"]) if logs and "loss" in logs else None
                times.append(time.perf_counter())

        began = time.perf_counter()
        try:
            model.fit(data, epochs=1, steps_per_epoch=total, verbose=0, callbacks=[Clock()])
        except Exception as exc:  # noqa: BLE001 - an XLA compile error is this row's result
            row.update(xla="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            return row
        spans = [(times[warmup - 1 + (r + 1) * steps] - times[warmup - 1 + r * steps]) / steps
                 for r in range(repeats)]
        step_s = statistics.median(spans)
        row.update(
            xla=xla_compiled(model.train_function), jit_compile_attr=bool(model.jit_compile),
            compile_s=round(times[0] - began, 1), step_s=step_s, images_per_s=batch / step_s,
            peak_memory_gib=(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30
                             if gpu else None),
            gflops=count_flops_analytic(model, size) / 1e9)
    finally:
        keras.config.set_dtype_policy(previous)
    return row


def markdown_table(rows, peak_tflops=None) -> str:
    """The rows as the table of docs/performance.md."""
    head = ("| library | backbone | px | precision | XLA asked / compiled | batch | img/s "
            "| step (s) | peak memory (GiB) | GFLOPs / img | MFU |")
    lines = [head, "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        asked = "on" if r["xla_requested"] else "off"
        if r.get("xla") == "failed":
            lines.append(f"| {r['library']} | {r['backbone']} | {r['image_size']} | "
                         f"{r['precision']} | {asked} / failed | {r['batch_size']} | "
                         f"{r['error']} | | | | |")
            continue
        mfu = (f"{3 * r['gflops'] * r['images_per_s'] / (peak_tflops * 1e3):.1%}"
               if peak_tflops else "n/a")
        mem = "n/a" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f}"
        lines.append(f"| {r['library']} | {r['backbone']} | {r['image_size']} | "
                     f"{r['precision']} | {asked} / {'yes' if r['xla'] else 'no'} | "
                     f"{r['batch_size']} | {r['images_per_s']:.2f} | {r['step_s']:.3f} | "
                     f"{mem} | {r['gflops']:.1f} | {mfu} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--libraries", nargs="+", default=["keras_cv", "keras_hub"])
    parser.add_argument("--backbones", nargs="+", default=["resnet50_v2", "mobilenet_v3_large"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--precisions", nargs="+", choices=["float32", "mixed"],
                        default=["float32", "mixed"])
    parser.add_argument("--xla", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOP/s for the precision, for the MFU column")
    parser.add_argument("--gpu-grid", action="store_true", help="the prepared GPU grid (doc)")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.gpu_grid:
        for key, value in GPU_GRID.items():
            setattr(args, key, value)
    import tensorflow as tf

    combos = list(itertools.product(args.libraries, args.backbones, args.sizes,
                                    args.precisions, args.xla, args.batch_sizes))
    print(f"{_device()}, TF {tf.__version__}: {len(combos)} settings, {args.warmup} warm-up "
          f"steps then the median of {args.repeats} x {args.steps} steps", flush=True)
    rows = []
    for combo in combos:
        row = bench_one(*combo, steps=args.steps, warmup=args.warmup, repeats=args.repeats)
        rows.append(row)
        print(markdown_table([row], args.peak_tflops).splitlines()[-1], flush=True)
    print()
    print(markdown_table(rows, args.peak_tflops))
    if args.out:
        from celebseg_utils.fileio import atomic_write_json

        atomic_write_json(args.out, {"device": _device(), "tensorflow": tf.__version__,
                                     "args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Parameters, GFLOPs and CPU latency per 512x512 image of each DeepLabV3+ variant.

FLOPs are counted two ways, both for one (1, S, S, 3) image with a multiply-add = 2 FLOPs:

- ``gflops`` (the reported figure): analytically from the layers, by recording every
  convolution, depthwise convolution and matmul the model executes in one eager forward pass
  (output elements x kernel fan-in); elementwise ops, norms, pooling and resizes are left
  out (a few percent);
- ``gflops_tf_profiler``: TensorFlow's profiler (``tf.compat.v1.profiler``,
  ``float_operation``) on the frozen graph of a concrete function, shown as a cross-check.
  It counts what TF's graph runs, not the model's arithmetic: atrous convolutions run as
  space-to-batch on zero-padded blocks and are over-counted (ASPP's rate-18 branch on a
  16x16 map), and it cannot see inside the XLA sub-functions Keras uses for grouped
  convolutions, so it under-counts keras-hub's MobileNet (depthwise = grouped ``Conv2D``).

Latency is the
median of ``--runs`` timed calls of the compiled forward pass at batch 1 after 2 warm-up
calls, on this machine's CPU; the 1-minute load average before and after is printed beside
it because other processes may share the CPU.

Usage::

    python scripts/bench_models.py [--image-size 512] [--runs 5] [--out bench.json]

>>> # python scripts/bench_models.py --image-size 64 --runs 1 --libraries keras_cv
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def count_flops(model, image_size: int) -> int:
    """FLOPs of one forward pass on one image, from TF's profiler (multiply-add = 2)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec([1, image_size, image_size, 3], tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    info = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                         cmd="op", options=options)
    return int(info.total_float_ops)


def count_flops_analytic(model, image_size: int) -> int:
    """2 x multiply-adds of all conv/depthwise-conv/matmul ops run by one forward pass."""
    import numpy as np
    from keras.src import ops

    total = [0]
    originals = {name: getattr(ops, name) for name in ("conv", "depthwise_conv", "matmul")}

    def recorder(name):
        def wrapped(x, kernel, *args, **kwargs):
            out = originals[name](x, kernel, *args, **kwargs)
            k = tuple(kernel.shape)
            fan_in = (k[0] * k[1] if name == "depthwise_conv" else
                      int(np.prod(k[:-1])) if name == "conv" else k[-2])
            total[0] += 2 * int(np.prod(out.shape)) * int(fan_in)
            return out
        return wrapped

    for name in originals:
        setattr(ops, name, recorder(name))
    try:
        model(np.zeros((1, image_size, image_size, 3), np.float32), training=False)
    finally:
        for name, fn in originals.items():
            setattr(ops, name, fn)
    return total[0]


def cpu_latency(model, image_size: int, runs: int) -> float:
    """Median seconds per image at batch 1 (compiled forward pass, after 2 warm-ups)."""
    import numpy as np
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    with tf.device("/CPU:0"):
        x = tf.constant(np.random.default_rng(0).uniform(0, 255, (1, image_size, image_size, 3)),
                        tf.float32)
        for _ in range(2):
            forward(x).numpy()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            forward(x).numpy()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(image_size=512, runs=5, libraries=("keras_cv", "keras_hub"),
          backbone_names=None, progress=True) -> list[dict]:
    """One row per (library, backbone): params, GFLOPs, latency, load averages."""
    from tqdm.auto import tqdm

    from celebseg_utils.models import backbones, deeplab as models

    combos = [(lib, bb) for lib in libraries for bb in (backbone_names or backbones.BACKBONES)]
    rows = []
    for library, backbone in tqdm(combos, desc="models", disable=not progress):
        model = models.build_model(backbone=backbone, library=library, image_size=image_size)
        load_before = os.getloadavg()[0]
        latency = cpu_latency(model, image_size, runs)
        load_after = os.getloadavg()[0]
        rows.append({
            "library": library, "backbone": backbone, "image_size": image_size,
            "params": int(model.count_params()),
            "gflops": count_flops_analytic(model, image_size) / 1e9,
            "gflops_tf_profiler": count_flops(model, image_size) / 1e9,
            "cpu_latency_s": latency, "runs": runs,
            "loadavg_1min": [round(load_before, 2), round(load_after, 2)],
        })
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (what goes into docs/performance.md)."""
    lines = ["| library | backbone | params (M) | GFLOPs / image | (TF profiler) "
             "| CPU latency / image (s) | load avg (1 min, before/after) |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['library']} | {r['backbone']} | {r['params'] / 1e6:.2f} | "
                     f"{r['gflops']:.1f} | {r['gflops_tf_profiler']:.1f} | "
                     f"{r['cpu_latency_s']:.2f} | "
                     f"{r['loadavg_1min'][0]:.2f} / {r['loadavg_1min'][1]:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--libraries", nargs="+", default=["keras_cv", "keras_hub"])
    parser.add_argument("--backbones", nargs="+", default=None)
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    rows = bench(args.image_size, args.runs, args.libraries, args.backbones,
                 progress=not args.no_progress)
    import tensorflow as tf

    print(f"\nDeepLabV3+ at {args.image_size}x{args.image_size}, batch 1, CPU "
          f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}), "
          f"TF {tf.__version__}, median of {args.runs} runs; GFLOPs: conv/matmul ops "
          f"counted from the layers (multiply-add = 2), TF profiler as a cross-check\n")
    print(markdown_table(rows))
    if args.out:
        from celebseg_utils.fileio import atomic_write_json

        atomic_write_json(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())

"""Side by side: what a training step of the ``cpu-real`` recipe costs under each saving tried.

Every variant is a set of ``--set`` overrides on one preset (default ``cpu-real``); its model,
loss and optimizer come from ``engine.train._compile_model``, the code ``train`` runs. The
batches are random tensors in memory, so the figure is the model's step, not the input
pipeline's. All variants are built first, then timed in turn, round after round, so a change
in the machine's load falls on every variant alike; each variant's figure is the median over
rounds of its ``--steps`` steps (the first step of every round left out: ``fit``'s start).

Per variant: seconds per step, images per second, the ratio to the first variant (its step
time over this one's: above 1 is faster), forward GFLOPs per image (``bench_models``'s
count), the training step's achieved GFLOP/s (3 x forward, derived) and that as a share of
this CPU's float32 matmul peak, measured here with a large ``tf.matmul`` (``--no-peak``
skips it). ``XLA`` says whether the training step really was compiled (Keras drops a
requested ``jit_compile`` silently when a layer does not support it).

Usage::

    python scripts/bench_recipe.py                      # the default variants, cpu-real
    python scripts/bench_recipe.py --variant base= --variant sep=model.aspp=separable,jit_compile=true

Thread settings are per process (TensorFlow fixes them at start): ``--intra N --inter M``
runs the whole comparison with those pools.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

#: name -> overrides; the first is the reference of the ratio column.
DEFAULT_VARIANTS = {
    "shipped (keras-cv ASPP, XLA off)": [],
    "our ASPP, XLA off": ["model.aspp=standard"],
    "our ASPP, XLA on": ["model.aspp=standard", "jit_compile=true"],
    "separable ASPP, XLA off": ["model.aspp=separable"],
    "separable ASPP, XLA on": ["model.aspp=separable", "jit_compile=true"],
    "128 channels (ASPP, decoder)": ["model.aspp_channels=128", "model.decoder_channels=128"],
    "separable + 128 channels, XLA on": ["model.aspp=separable", "model.aspp_channels=128",
                                         "model.decoder_channels=128", "jit_compile=true"],
}


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"name=k=v,k=v"`` -> (name, ["k=v", "k=v"]); ``"name="`` is the preset as it is.

    >>> parse_variant("sep=model.aspp=separable,jit_compile=true")
    ('sep', ['model.aspp=separable', 'jit_compile=true'])
    """
    name, _, rest = text.partition("=")
    return name, [item for item in rest.split(",") if item]


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This CPU's float32 throughput on a large matmul (GFLOP/s, median of ``repeats``)."""
    import tensorflow as tf

    a = tf.random.uniform((n, n))
    b = tf.random.uniform((n, n))
    tf.matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        tf.matmul(a, b).numpy()
        times.append(time.perf_counter() - began)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def build_variant(preset: str, overrides, total_steps: int):
    """(model, dataset, config) of one variant, compiled as ``train`` compiles it."""
    import numpy as np
    import tensorflow as tf

    from celebseg_utils.engine.config import resolve_config
    from celebseg_utils.engine.train import _compile_model
    from celebseg_utils.labels import NUM_CLASSES

    config = resolve_config(preset=preset, overrides=["model.weights=none", *overrides])
    model, _ = _compile_model(config, None, total_steps=total_steps, warmup_steps=0)
    rng = np.random.default_rng(0)
    size, batch = config.image_size, config.batch_size
    images = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, NUM_CLASSES, (batch, size, size, 1)), tf.int32)
    return model, tf.data.Dataset.from_tensors((images, labels)).repeat(), config


def time_steps(model, data, steps: int) -> float:
    """Seconds per step over ``steps`` steps of one ``fit`` call, its first step left out."""
    import keras

    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # wait for the step's result
            times.append(time.perf_counter())

    model.fit(data, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[Clock()])
    return (times[-1] - times[0]) / steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="cpu-real")
    parser.add_argument("--variant", action="append", default=None, metavar="NAME=K=V,K=V",
                        help="a variant (repeatable; the first is the reference)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=4, help="untimed steps (compilation)")
    parser.add_argument("--intra", type=int, default=None, help="intra-op threads")
    parser.add_argument("--inter", type=int, default=None, help="inter-op threads")
    parser.add_argument("--no-peak", action="store_true")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    import tensorflow as tf

    if args.intra is not None:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    if args.inter is not None:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    from bench_models import count_flops_analytic
    from bench_train import xla_compiled

    variants = (dict(parse_variant(v) for v in args.variant) if args.variant
                else DEFAULT_VARIANTS)
    peak = None if args.no_peak else matmul_peak_gflops()
    print(f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, TF "
          f"{tf.__version__}, threads intra {args.intra or 'default'} inter "
          f"{args.inter or 'default'}; matmul peak "
          f"{'n/a' if peak is None else f'{peak:.0f} GFLOP/s'}; load {os.getloadavg()[0]:.2f}",
          flush=True)
    built = {}
    total = args.warmup + args.rounds * (args.steps + 1)
    for name, overrides in variants.items():
        began = time.perf_counter()
        model, data, config = build_variant(args.preset, overrides, total)
        model.fit(data, epochs=1, steps_per_epoch=args.warmup, verbose=0)
        built[name] = (model, data, config, time.perf_counter() - began)
        print(f"built and warmed {name!r} in {built[name][3]:.0f} s", flush=True)
    spans = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, (model, data, _, _) in built.items():
            spans[name].append(time_steps(model, data, args.steps))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{s[-1]:.3f}" for s in spans.values()), flush=True)
    rows = []
    reference = None
    for name, (model, _, config, build_s) in built.items():
        step_s = statistics.median(spans[name])
        reference = reference or step_s
        gflops = count_flops_analytic(model, config.image_size) / 1e9
        achieved = 3 * gflops * config.batch_size / step_s
        rows.append({"variant": name, "overrides": variants[name], "step_s": step_s,
                     "spread_s": [min(spans[name]), max(spans[name])],
                     "images_per_s": config.batch_size / step_s, "ratio": reference / step_s,
                     "gflops_forward": gflops, "gflops_per_s_derived": achieved,
                     "share_of_peak": None if peak is None else achieved / peak,
                     "xla": xla_compiled(model.train_function),
                     "params": int(model.count_params())})
    print()
    print("| variant | XLA | s/step (median; min-max) | img/s | speed-up | fwd GFLOPs/img "
          "| train GFLOP/s (derived) | of peak | params |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        share = "n/a" if r["share_of_peak"] is None else f"{r['share_of_peak']:.1%}"
        print(f"| {r['variant']} | {'yes' if r['xla'] else 'no'} | {r['step_s']:.3f} "
              f"({r['spread_s'][0]:.3f}-{r['spread_s'][1]:.3f}) | {r['images_per_s']:.1f} "
              f"| {r['ratio']:.2f}x | {r['gflops_forward']:.3f} | "
              f"{r['gflops_per_s_derived']:.1f} | {share} | {r['params'] / 1e6:.2f} M |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "peak_gflops": peak, "load": os.getloadavg(),
                       "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

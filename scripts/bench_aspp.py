"""Training-step cost of DeepLabV3+'s ASPP at a small input: DeepLab's rates vs small ones.

At 128 px the stride-32 map a MobileNetV3 or ResNet backbone hands the ASPP is 4x4; the
3x3 branches dilated 6, 12 and 18 then see almost only padding, yet cost far more than
rates 1, 2, 3 (why ``cpu-real`` sets ``model.aspp_rates=[1, 2, 3]``). Times the forward and
backward pass of ``keras_cv.layers.SpatialPyramidPooling`` on a (batch, map, map, 160)
input, both rate sets alternately, and prints the median of each and their ratio::

    .venv/bin/python scripts/bench_aspp.py --map 4 --batch 8 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", type=int, default=4, help="feature map side (128 px / 32 = 4)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import keras_cv
    import tensorflow as tf

    steps = {}
    x = tf.random.normal((args.batch, args.map, args.map, args.channels))
    for rates in ((6, 12, 18), (1, 2, 3)):
        layer = keras_cv.layers.SpatialPyramidPooling(dilation_rates=list(rates))
        layer(x, training=True)

        @tf.function
        def step(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True) ** 2)
            return tape.gradient(loss, [x] + layer.trainable_variables)

        step(x)  # trace
        steps[rates] = step
    times = {rates: [] for rates in steps}
    for _ in range(args.repeats):
        for rates, step in steps.items():  # alternate, so load changes hit both
            began = time.perf_counter()
            step(x)
            times[rates].append(time.perf_counter() - began)
    medians = {rates: statistics.median(t) for rates, t in times.items()}
    for rates, median in medians.items():
        print(f"rates {rates}: {median * 1000:.0f} ms per forward+backward (median of {args.repeats})")
    print(f"ratio: {medians[(6, 12, 18)] / medians[(1, 2, 3)]:.1f}x")


if __name__ == "__main__":
    main()

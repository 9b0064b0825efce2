"""How fast the error-analysis viewer moves to the next face, in this process (no browser).

Two measurements on a prepared real-face folder with three trained models:

1. the model call: inference's eager ``model(batch)`` against the viewer's compiled one
   (:class:`celebseg_utils.interface.widgets.CompiledModel`), seconds per face and model,
   and how many label-map pixels differ between the two (the parity the viewer relies on);
2. "next face": the time of ``viewer.slider.value += 1`` (predict three models, draw, encode
   the PNG), with a 1.5 s look before each press, without and with the prefetch of the next
   face (``prefetch=0`` / ``1``); the median of ``--presses`` presses.

    .venv/bin/python scripts/measure_viewer_speed.py --prepared /tmp/realprep \\
        --model /work/study-work/plateau/steps1000/runs/sparse_ce/seed0/final.keras \\
        --model /work/study-work/plateau/steps2000/runs/sparse_ce/seed0/final.keras \\
        --model /work/study-work/plateau/steps8000/runs/sparse_ce/seed0/final.keras

The browser's own number (key press to picture, ipywidgets 7 and 8) is printed by
``tests/interface/test_viewer_browser.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--faces", type=int, default=15, help="faces of the compiled-call check")
    ap.add_argument("--presses", type=int, default=11)
    args = ap.parse_args(argv)
    for m in args.model:
        if not Path(m).exists():
            print(f"error: model {m} not found", file=sys.stderr)
            return 2

    import numpy as np
    from PIL import Image

    from celebseg_utils.data import layout
    from celebseg_utils.engine import inference
    from celebseg_utils.interface.widgets import CompiledModel, MaskViewer

    prepared = Path(args.prepared)
    info = layout.read_prepare_info(prepared)
    ids = layout.read_split(prepared, args.split)[:args.faces]
    photos = [np.asarray(Image.open(layout.photo_path(prepared, k, info)).convert("RGB")) for k in ids]
    differ = eager_s = compiled_s = 0.0
    for path in args.model:
        model = inference.load_model(path)
        fast = CompiledModel(model)
        inference.predict_labels(fast, photos[:1])  # the trace, once per model
        for photo in photos:
            began = time.perf_counter()
            (a,) = inference.predict_labels(model, [photo])
            eager_s += time.perf_counter() - began
            began = time.perf_counter()
            (b,) = inference.predict_labels(fast, [photo])
            compiled_s += time.perf_counter() - began
            differ += int((a != b).sum())
    maps = len(args.model) * len(photos)
    print(f"model call: eager {eager_s / maps:.3f} s, compiled {compiled_s / maps:.3f} s per face "
          f"and model; {int(differ)} of {maps * photos[0].shape[0] * photos[0].shape[1]} "
          f"pixels differ over {maps} maps", flush=True)

    models = {f"m{i}": m for i, m in enumerate(args.model)}
    for prefetch in (0, 1):
        viewer = MaskViewer(prepared, args.split, models=models, prefetch=prefetch, progress=False)
        times = []
        for i in range(1, args.presses + 1):
            time.sleep(1.5)  # a person looks at the face before pressing "next"
            began = time.perf_counter()
            viewer.slider.value = i
            times.append(time.perf_counter() - began)
        print(f"next face, {len(models)} models, prefetch={prefetch}: median "
              f"{statistics.median(times):.2f} s (each: {', '.join(f'{t:.2f}' for t in times)})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The multi-model viewer on real faces: figures/viewer/multi_model_viewer.png (+ .md).

Opens :class:`~celebseg_utils.interface.widgets.MaskViewer` on the test split of a prepared
real-face folder with three trained models, filters to faces with a hat, sorts them worst
first by one model's per-image mean F1 (the evaluation loop's scores, cached as
``per_image_test.json``), and writes the picture the widget shows for the first face (its
canvas, pixel for pixel) and, beside it, the face's per-class table as Markdown.

    .venv/bin/python scripts/make_viewer_figure.py --prepared /tmp/realprep \\
        --model "sparse_ce 1000 steps=/work/study-work/plateau/steps1000/runs/sparse_ce/seed0/final.keras" \\
        --model "sparse_ce 8000 steps=/work/study-work/plateau/steps8000/runs/sparse_ce/seed0/final.keras" \\
        --model "dice 250 steps=/tmp/st1/runs/dice/seed0/final.keras" \\
        --worst "sparse_ce 8000 steps" --classes hat --cache-dir /tmp/viewer-work/cache

``--cache-dir``: where the per-image scores are cached (default: beside each model, its run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--worst", required=True, help="the model whose worst faces come first")
    ap.add_argument("--classes", nargs="*", default=["hat"], help="faces whose truth has these")
    ap.add_argument("--error-mode", default="truth", choices=["truth", "prediction", "single"])
    ap.add_argument("--position", type=int, default=0, help="which face of the order to draw")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--out", default=str(REPO / "figures" / "viewer" / "multi_model_viewer.png"))
    args = ap.parse_args(argv)

    from PIL import Image

    from celebseg_utils.errors import CelebsegError
    from celebseg_utils.interface.widgets import MaskViewer

    models = {}
    for text in args.model:
        name, sep, path = text.partition("=")
        if not sep or not Path(path).exists():
            print(f"error: --model {text}: give NAME=PATH of an existing model", file=sys.stderr)
            return 2
        models[name] = path
    try:
        began = time.perf_counter()
        viewer = MaskViewer(args.prepared, args.split, models=models, cache_dir=args.cache_dir,
                            image_size=args.image_size, prefetch=0)
        viewer.error_mode.value = args.error_mode
        viewer.sort_by("worst", args.worst)
        viewer.filter_classes(args.classes)
        viewer.slider.value = args.position
        drawn = viewer.render()
    except CelebsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(drawn["canvas"]).save(out, optimize=True)
    lines = [f"Face id {viewer.image_id}: position {args.position + 1} of {len(viewer.shown_ids)} "
             f"{args.split} faces with {', '.join(args.classes)}, sorted worst first by "
             f"{args.worst} (per-image mean F1, evaluation loop at the model's input size). "
             f"Error maps: wrong pixels coloured by the {args.error_mode} class.", "",
             "| class | " + " | ".join(f"{n} F1 | {n} IoU" for n in models) + " |",
             "|---|" + "---:|---:|" * len(models)]
    from celebseg_utils import labels as L

    present = sorted(set().union(*[set(d["label"].ravel().tolist()) for d in drawn["models"].values()],
                                 set(drawn["truth_label"].ravel().tolist())))
    for key, label in [("mean", "**mean**")] + [(c, L.DISPLAY_NAMES[L.CLASS_NAMES[c]]) for c in present]:
        cells = []
        for d in drawn["models"].values():
            sc = d["scores"]
            f1, iou = (sc["mean_f1"], sc["miou"]) if key == "mean" else (sc["f1"][key], sc["iou"][key])
            cells += [f"{f1:.2f}", f"{iou:.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out} ({drawn['canvas'].shape[1]}x{drawn['canvas'].shape[0]}) and "
          f"{out.with_suffix('.md')} in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`predict --align` on real faces placed into larger photos: accuracy, speed, size floor.

Each of ``--count`` held-out faces (test split of a prepared real-face folder) is put into
a ``--canvas`` px photo with a random rotation (+-30 degrees), scale (0.3-1.0) and offset,
over a flat random colour; its label map goes along (nearest). The same model then parses
the photo whole (``predict_labels``, as `celebseg predict` does) and through ``parse_photo``
(detect, align, parse, paste back), both with flip TTA; the confusion matrices of all
photos give mean F1 (18 facial classes) and mIoU for each, beside the model on the
original aligned photos. Every phase is timed per photo; the tables print medians.

``--floor`` sizes: the same faces, upright and centred, scaled so their eyes are D pixels
apart, parsed through --align: how often a face is found and how well it is parsed, by D.

``--figure`` draws one placed face without and with --align.

``--identity N``: the first N test faces as they are (aligned): how far the transform
fitted to each photo's landmarks is from the identity, how much of its label map survives one
warp by it (mean IoU over the classes present, frequency-weighted IoU), and the same for the
transform ``--align`` uses, which takes a photo within ``align.already_aligned``'s tolerance
as it is.

    python scripts/bench_align.py --prepared /tmp/P --model /tmp/R/best.keras --count 30 \\
        --floor 8,12,16,24,32,48 --floor-count 12 --figure figures/align/before_after.png
    python scripts/bench_align.py --prepared /tmp/P --identity 150 --count 0

(``/tmp/P``: ``celebseg prepare --images mini/images --labels mini/labels --out /tmp/P``,
the default seeded split; ``/tmp/R``: the cpu-real run of docs/performance.md, trained on it.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from celebseg_utils.data import layout  # noqa: E402
from celebseg_utils.face import align as A  # noqa: E402
from celebseg_utils.face.detect import FaceDetector  # noqa: E402
from celebseg_utils.engine.inference import (  # noqa: E402
    DEFAULT_INPUT_SIZE, input_size, load_model, predict_labels)
from celebseg_utils.engine.predict import compose_parse, split_faces  # noqa: E402
from celebseg_utils.models.metrics import confusion_matrix_np, scores_from_confusion  # noqa: E402


def test_faces(prepared: Path) -> list[tuple[int, Path, Path]]:
    names = {}
    for line in (prepared / "names.tsv").read_text().splitlines()[1:]:
        k, photo, label = line.split("\t")
        names[int(k)] = (Path(photo), Path(label))
    ids = layout.read_split(prepared, "test")
    return [(k, *names[k]) for k in ids]


def similarity(scale, degrees, tx, ty):
    t = np.radians(degrees)
    return np.array([[scale * np.cos(t), -scale * np.sin(t), tx],
                     [scale * np.sin(t), scale * np.cos(t), ty], [0, 0, 1]])


def place(photo, label, shape, m, fill):
    canvas = np.empty(tuple(shape) + (3,), np.uint8)
    canvas[:] = fill
    warped, inside = A.warp(photo, m, shape, order=1)
    canvas[inside] = np.clip(warped[inside] + 0.5, 0, 255).astype(np.uint8)
    lab, inside = A.warp(label, m, shape, order=0)
    return canvas, np.where(inside, lab, 0).astype(np.uint8)


def random_placement(rng, canvas: int):
    scale = rng.uniform(0.3, 1.0)
    degrees = rng.uniform(-30, 30)
    side = 512 * scale
    # the face's middle (256, 300 in its photo) lands anywhere that keeps it in the canvas
    mx, my = rng.uniform(0.3 * side, canvas - 0.3 * side, 2)
    m = similarity(scale, degrees, 0, 0)
    off = np.array([mx, my]) - A.apply(m, [[255.5, 300]])[0]
    m[:2, 2] = off
    return m, (scale, degrees)


def whole(model, image, tta):
    (labels,) = predict_labels(model, [image], tta)
    return labels


def aligned(model, size, image, faces, tta, timings):
    t0 = time.perf_counter()
    matrices = [A.face_matrix(f.landmarks, size) for f in faces]
    crops = [A.warp_to_crop(image, m, size) for m in matrices]
    t1 = time.perf_counter()
    crop_labels = predict_labels(model, crops, tta)
    t2 = time.perf_counter()
    parse = compose_parse(image, faces, matrices, crops, crop_labels)
    t3 = time.perf_counter()
    timings["align (fit + crop + paste back + overlay)"].append((t1 - t0) + (t3 - t2))
    timings["model on the crops"].append(t2 - t1)
    return parse


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", required=True, type=Path)
    ap.add_argument("--model", help="needed unless --count 0")
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--canvas", type=int, default=768)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tta", default="flip")
    ap.add_argument("--floor", default="", help="eye distances (px) to try, comma-separated")
    ap.add_argument("--floor-count", type=int, default=12)
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--json", type=Path, help="write the figures measured here")
    ap.add_argument("--identity", type=int, default=0, help="aligned test faces to check")
    args = ap.parse_args(argv)
    tta = None if args.tta in ("", "none") else args.tta
    if args.identity:
        identity(args)
    if args.count == 0:
        return 0

    rng = np.random.default_rng(args.seed)
    faces_all = test_faces(args.prepared)
    picked = [faces_all[i] for i in sorted(rng.choice(len(faces_all), args.count, replace=False))]
    model = load_model(args.model)
    size = input_size(model, default=DEFAULT_INPUT_SIZE)
    detector = FaceDetector()
    whole(model, np.zeros((64, 64, 3), np.uint8), tta)  # build the traced graphs once
    detector(np.zeros((64, 64, 3), np.uint8))

    cms = {k: np.zeros((19, 19), np.int64) for k in ("aligned photo, whole", "placed, whole",
                                                      "placed, --align")}
    timings = {k: [] for k in ("detect", "align (fit + crop + paste back + overlay)",
                               "model on the crops", "whole-photo predict (model)")}
    missed, shown = 0, None
    for n, (k, photo_path, label_path) in enumerate(picked):
        photo = np.asarray(Image.open(photo_path).convert("RGB"))
        label = np.asarray(Image.open(label_path))
        cms["aligned photo, whole"] += confusion_matrix_np(label, whole(model, photo, tta))
        m, (scale, degrees) = random_placement(rng, args.canvas)
        canvas, truth = place(photo, label, (args.canvas, args.canvas), m,
                              rng.integers(40, 220, 3))
        t0 = time.perf_counter()
        plain = whole(model, canvas, tta)
        timings["whole-photo predict (model)"].append(time.perf_counter() - t0)
        cms["placed, whole"] += confusion_matrix_np(truth, plain)
        t0 = time.perf_counter()
        found = detector(canvas)
        timings["detect"].append(time.perf_counter() - t0)
        keep, _ = split_faces(found)
        if not keep:
            missed += 1  # nothing parsed: the whole photo counts as background
            cms["placed, --align"] += confusion_matrix_np(truth, np.zeros_like(truth))
            continue
        parse = aligned(model, size, canvas, keep[:1], tta, timings)
        cms["placed, --align"] += confusion_matrix_np(truth, parse.labels)
        if shown is None and abs(degrees) > 15 and scale < 0.8:
            shown = (k, scale, degrees, canvas, truth, plain, parse.labels)
        print(f"{n + 1}/{len(picked)} face {k}: scale {scale:.2f}, {degrees:+.0f} deg",
              file=sys.stderr)

    result = {"model": str(args.model), "model_input": size, "faces": len(picked),
              "canvas": args.canvas, "tta": tta, "not_detected": missed, "scores": {},
              "median_seconds": {}}
    print(f"\n{len(picked)} held-out faces, {args.canvas} px photos, model input {size} px, "
          f"tta {tta}; not detected: {missed}")
    print("| parsed | mean F1 (18 facial) | mIoU (19) | pixel accuracy |\n|---|---:|---:|---:|")
    for name, cm in cms.items():
        s = scores_from_confusion(cm)
        result["scores"][name] = {k: round(s[k], 4) for k in ("mean_f1", "miou", "pixel_accuracy")}
        print(f"| {name} | {s['mean_f1']:.3f} | {s['miou']:.3f} | {s['pixel_accuracy']:.3f} |")
    print("\n| per photo | median ms |\n|---|---:|")
    for name, values in timings.items():
        result["median_seconds"][name] = round(float(np.median(values)), 4)
        print(f"| {name} | {1000 * np.median(values):.0f} |")

    if args.floor:
        result["floor"] = floor_sweep(args, model, size, detector, faces_all, tta, rng)
    if args.figure and shown is not None:
        figure(args.figure, shown)
        result["figure"] = {"face": shown[0], "scale": round(shown[1], 3),
                            "degrees": round(shown[2], 1)}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def identity(args) -> None:
    """Near-identity on aligned photos (see the module docstring)."""
    detector = FaceDetector()
    rows = []
    for k, photo_path, label_path in test_faces(args.prepared)[: args.identity]:
        photo = np.asarray(Image.open(photo_path).convert("RGB"))
        label = np.asarray(Image.open(label_path))
        faces = detector(photo)
        if not faces:
            print(f"face {k}: not detected", file=sys.stderr)
            continue
        m = A.face_matrix(faces[0].landmarks, label.shape[0])  # the fit alone
        s, d, shift = A.offset_from_plain(m, photo.shape, label.shape[0])
        default = A.face_matrix(faces[0].landmarks, label.shape[0], photo_shape=photo.shape)
        row = []
        for matrix in (m, default):
            cm = confusion_matrix_np(label, A.warp_labels(label, matrix, label.shape[0]))
            present = (cm.sum(0) + cm.sum(1)) > 0
            iou = np.diag(cm)[present] / (cm.sum(0) + cm.sum(1) - np.diag(cm))[present]
            freq = cm.sum(1)[present] / cm.sum()
            row += [iou.mean(), (freq * iou).sum()]
        rows.append((*row, abs(s - 1), abs(d), shift,
                     float(A.already_aligned(m, photo.shape, label.shape[0]))))
    r = np.array(rows)
    print(f"\n{len(rows)} aligned test faces, one warp of the label map by the fitted "
          f"transform, and by what --align uses (taken as it is within the tolerance: "
          f"{r[:, 7].sum():.0f} of {len(rows)})\n| | mean | median | 10th pct | 90th pct |\n"
          f"|---|---:|---:|---:|---:|")
    for i, name in enumerate(("fit: mean IoU (classes present)", "fit: frequency-weighted IoU",
                              "--align: mean IoU (classes present)",
                              "--align: frequency-weighted IoU", "fit: abs(scale - 1)",
                              "fit: abs(rotation) (deg)", "fit: centre shift (of width)")):
        p10, p50, p90 = np.percentile(r[:, i], [10, 50, 90])
        print(f"| {name} | {r[:, i].mean():.3f} | {p50:.3f} | {p10:.3f} | {p90:.3f} |")


def floor_sweep(args, model, size, detector, faces_all, tta, rng) -> dict:
    """Mean F1 through --align by eye distance, upright faces centred in a snug photo."""
    sizes = [float(x) for x in args.floor.split(",")]
    picked = [faces_all[i] for i in sorted(rng.choice(len(faces_all), args.floor_count,
                                                      replace=False))]
    tpl_eyes = float(np.linalg.norm(np.diff(A.template_points(512)[:2], axis=0)))
    out = {}
    print("\n| eye distance (px) | found | mean F1 (18 facial) | mIoU |\n|---:|---:|---:|---:|")
    for d in sizes:
        cm, found_n = np.zeros((19, 19), np.int64), 0
        for k, photo_path, label_path in picked:
            photo = np.asarray(Image.open(photo_path).convert("RGB"))
            label = np.asarray(Image.open(label_path))
            scale = d / tpl_eyes
            side = max(48, int(np.ceil(512 * scale)) + 32)
            m = similarity(scale, 0, 16, 16)
            small = np.asarray(Image.fromarray(photo).resize(
                (max(1, round(512 * scale)),) * 2, Image.BILINEAR))  # antialiased shrink
            canvas = np.full((side, side, 3), 128, np.uint8)
            canvas[16:16 + small.shape[0], 16:16 + small.shape[1]] = small[:side - 16, :side - 16]
            truth = A.warp(label, m, (side, side), order=0)
            truth = np.where(truth[1], truth[0], 0).astype(np.uint8)
            faces, _ = split_faces(detector(canvas), min_eye_distance=1.0)
            if faces:
                found_n += 1
                parse = aligned(model, size, canvas, faces[:1], tta, {
                    "align (fit + crop + paste back + overlay)": [], "model on the crops": []})
                pred = parse.labels
            else:
                pred = np.zeros_like(truth)
            cm += confusion_matrix_np(truth, pred)
        s = scores_from_confusion(cm)
        out[str(d)] = {"found": found_n, "of": len(picked), "mean_f1": round(s["mean_f1"], 4),
                       "miou": round(s["miou"], 4)}
        print(f"| {d:g} | {found_n}/{len(picked)} | {s['mean_f1']:.3f} | {s['miou']:.3f} |")
    return out


def figure(path: Path, shown) -> None:
    from celebseg_utils.visualization import viz

    k, scale, degrees, canvas, truth, plain, labels = shown
    path.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    fig = viz.plot_grid([[canvas, viz.overlay(canvas, plain), viz.overlay(canvas, labels),
                          viz.overlay(canvas, truth)]],
                        ["photo", "predict (whole photo)", "predict --align", "ground truth"],
                        cell_size=3.2)
    # the pictures are overlays (RGB), so the legend of the classes they show is added here
    viz.add_class_legend(fig.axes[-1], [plain, labels], fontsize=8.5,
                         title="pixels: whole photo / --align")
    viz.save_figure(fig, path)
    print(f"figure: test face {k}, scale {scale:.2f}, {degrees:+.0f} deg -> {path}")


if __name__ == "__main__":
    raise SystemExit(main())

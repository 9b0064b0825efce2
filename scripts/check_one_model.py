"""One fixed model through ``predict``, ``evaluate`` and the study's per-image scores, in one
checkout; and two such runs (before and after a change) compared.

    python scripts/check_one_model.py run --model M.keras --prepared PREP --json after.json
    python scripts/check_one_model.py run --checkout /tmp/before ... --json before.json
    python scripts/check_one_model.py compare before.json after.json
    python scripts/check_one_model.py inputs --prepared PREP --faces 16 --size 128

``run`` imports ``celebseg_utils`` from ``--checkout`` (default: this one) and, on the test
split of ``PREP``:

- **predict**: ``predict_images`` on the split's photos (the command's own path: photo
  read, padded, resized with antialiasing, logits back at the photo's size); each label map
  is scored against the truth, per image (tp, fp, fn per class);
- **evaluate**: ``evaluate_model`` with each protocol (``model_size``, ``label_size``);
- **study**: ``score_split`` with both protocols, as ``celebseg study`` calls it: the
  per-image tp, fp, fn that its bootstrap resamples.

It records the numbers and a digest of every array, and states whether evaluate's confusion
matrix equals the study's summed one (per protocol) and whether predict's per-image counts
equal the study's at the labels' size (they come from two preprocessing paths: see the
``predict_vs_study`` entry). ``compare`` says, for each entry, whether two runs are identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def digest(array) -> str:
    a = np.ascontiguousarray(np.asarray(array))
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def per_image_counts(truths, preds, num_classes: int):
    """tp, fp, fn (N, C) of label maps against their truths, each image's own confusion."""
    from celebseg_utils.models.metrics import confusion_matrix_np

    tp, fp, fn = (np.zeros((len(truths), num_classes), np.int64) for _ in range(3))
    cm = np.zeros((num_classes, num_classes), np.int64)
    for i, (t, p) in enumerate(zip(truths, preds)):
        m = confusion_matrix_np(t, p)
        cm += m
        d = np.diag(m)
        tp[i], fp[i], fn[i] = d, m.sum(axis=0) - d, m.sum(axis=1) - d
    return tp, fp, fn, cm


def per_image_f1(tp, fp, fn) -> np.ndarray:
    """(N, C) F1 per image and class; NaN where the class is in neither map."""
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.full(tp.shape, np.nan), where=denom > 0)


def mean_f1(cm) -> float:
    from celebseg_utils.models.metrics import scores_from_confusion

    return float(scores_from_confusion(cm)["mean_f1"])


def input_gap(prepared, ids, size: int) -> dict:
    """How far apart the two paths' model inputs are, on the first faces: the pipeline's
    batch (what evaluate and the study feed the model) against predict's (the photo read
    whole, padded, resized in float with antialiasing), in 0..255 pixel values."""
    import tensorflow as tf
    from PIL import Image

    from celebseg_utils.data import layout
    from celebseg_utils.data.pipeline import make_dataset
    from celebseg_utils.engine.inference import pad_to_square

    pipeline = [x.numpy()[0] for x, _ in make_dataset(str(prepared), "test", image_size=size,
                                                      batch_size=1).take(len(ids))]
    gaps = []
    for k, fed in zip(ids, pipeline):
        with Image.open(layout.photo_path(prepared, k)) as im:
            photo = np.asarray(im.convert("RGB"))
        square = pad_to_square(photo).astype(np.float32)
        mine = tf.image.resize(square, (size, size), antialias=True).numpy() \
            if square.shape[0] != size else square
        gaps.append(float(np.abs(mine - fed).mean()))
    return {"faces": len(gaps), "size": int(size), "mean_abs_pixel_gap": float(np.mean(gaps)),
            "max_abs_pixel_gap_of_a_face": float(np.max(gaps))}


def input_parts(prepared, ids, size: int) -> dict:
    """Where the two inputs part, face by face (mean |difference| in 0..255 values of the
    model's input, each against predict's): TensorFlow's JPEG decoder in place of Pillow's
    (both whole), the pipeline's DCT-scaled decode, and the uint8 rounding of the resize."""
    import tensorflow as tf

    from celebseg_utils.data import layout
    from celebseg_utils.data.pipeline import decode_photo
    from celebseg_utils.engine.inference import pad_to_square
    from celebseg_utils.engine.predict import read_image

    def model_input(photo):
        square = pad_to_square(np.asarray(photo)).astype(np.float32)
        return tf.image.resize(square, (size, size), antialias=True).numpy() \
            if square.shape[0] != size else square

    parts = {"tf_decoder": [], "dct_scaled_decode": [], "uint8_rounding": []}
    for k in ids:
        path = layout.photo_path(prepared, k)
        mine = model_input(read_image(path))  # what predict feeds the model
        data = path.read_bytes()
        parts["tf_decoder"].append(model_input(tf.image.decode_jpeg(data, channels=3).numpy()))
        parts["dct_scaled_decode"].append(model_input(decode_photo(data, size).numpy()))
        parts["uint8_rounding"].append(np.floor(np.clip(mine, 0, 255) + 0.5))
        for name in parts:
            parts[name][-1] = float(np.abs(parts[name][-1] - mine).mean())
    return {"faces": len(ids), "size": size, **{n: float(np.mean(v)) for n, v in parts.items()}}


def run(args) -> dict:
    sys.path.insert(0, str(Path(args.checkout).resolve()))
    import celebseg_utils
    from PIL import Image

    from celebseg_utils import labels as L
    from celebseg_utils.data import layout
    from celebseg_utils.engine.evaluate import evaluate_model
    from celebseg_utils.engine.inference import load_model
    from celebseg_utils.engine.predict import predict_images
    from celebseg_utils.engine.scoring import score_split

    prepared = Path(args.prepared)
    ids = layout.read_split(prepared, "test")
    truths = [np.asarray(Image.open(layout.label_path(prepared, k))) for k in ids]
    model = load_model(args.model)
    out = {"checkout": str(Path(args.checkout).resolve()),
           "package": str(Path(celebseg_utils.__file__).parent), "model": str(args.model),
           "prepared": str(prepared), "faces": len(ids), "seconds": {}}

    began = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        photos = [layout.photo_path(prepared, k) for k in ids]
        predict_images(model, photos, tmp, progress=False)
        preds = [np.asarray(Image.open(Path(tmp) / f"{p.stem}.png")) for p in photos]
    tp, fp, fn, cm = per_image_counts(truths, preds, L.NUM_CLASSES)
    out["predict"] = {"labels": digest(np.stack(preds)), "tp": digest(tp), "fp": digest(fp),
                      "fn": digest(fn), "confusion": digest(cm), "mean_f1": mean_f1(cm)}
    out["seconds"]["predict"] = round(time.time() - began, 1)

    split = "test"
    evaluated, studied = {}, {}
    for protocol in ("model_size", "label_size"):
        began = time.time()
        r = evaluate_model(model, prepared, split=split, progress=False, protocol=protocol)
        evaluated[protocol] = {"confusion": digest(np.asarray(r["confusion_matrix"], np.int64)),
                               "mean_f1": r["mean_f1"], "miou": r["miou"],
                               "pixel_accuracy": r["pixel_accuracy"]}
        out["seconds"][f"evaluate {protocol}"] = round(time.time() - began, 1)
    began = time.time()
    scored = score_split(model, prepared, split, protocols=("model_size", "label_size"),
                         ids=ids)
    out["seconds"]["study score_split"] = round(time.time() - began, 1)
    for protocol, s in scored.items():
        studied[protocol] = {"tp": digest(s.tp), "fp": digest(s.fp), "fn": digest(s.fn),
                             "confusion": digest(s.confusion), "mean_f1": mean_f1(s.confusion),
                             "sum_of_images_is_confusion": bool(
                                 (s.tp.sum(axis=0) == np.diag(s.confusion)).all())}
    out["evaluate"], out["study"] = evaluated, studied
    out["evaluate_equals_study"] = {p: evaluated[p]["confusion"] == studied[p]["confusion"]
                                    for p in evaluated}
    label_size = scored["label_size"]
    same = [bool((label_size.tp[i] == tp[i]).all() and (label_size.fp[i] == fp[i]).all())
            for i in range(len(ids))]
    # per-image F1 of the 18 facial classes present in truth or prediction, both ways
    gap = np.abs(per_image_f1(tp, fp, fn) - per_image_f1(label_size.tp, label_size.fp, label_size.fn))
    gap = np.nanmean(gap[:, 1:], axis=1)
    out["inputs"] = input_gap(prepared, ids[:16], scored["model_size"].image_size)
    out["predict_vs_study"] = {
        "identical": all(same),
        "images_identical": int(sum(same)),
        "mean_f1_predict": out["predict"]["mean_f1"],
        "mean_f1_study_label_size": studied["label_size"]["mean_f1"],
        "per_image_f1_gap_mean": float(np.nanmean(gap)),
        "per_image_f1_gap_max": float(np.nanmax(gap)),
        "why": "two preprocessing paths: predict reads the photo whole with Pillow and resizes "
               "it in float with antialiasing (engine.inference); evaluate and the study read "
               "the split through the training pipeline (data.pipeline), which decodes JPEGs "
               "with TensorFlow at a reduced DCT scale when that still covers the model's size "
               "and rounds the photo to uint8 (`inputs` measures each part)"}
    return out


def compare(a: dict, b: dict) -> dict:
    keys = ("predict", "evaluate", "study", "evaluate_equals_study")
    return {k: a.get(k) == b.get(k) for k in keys}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--checkout", default=str(REPO_ROOT))
    r.add_argument("--model", required=True)
    r.add_argument("--prepared", required=True)
    r.add_argument("--json", type=Path, required=True)
    i = sub.add_parser("inputs", help="where predict's and the pipeline's model inputs part")
    i.add_argument("--prepared", required=True)
    i.add_argument("--faces", type=int, default=16)
    i.add_argument("--size", type=int, default=128)
    c = sub.add_parser("compare")
    c.add_argument("runs", nargs=2, type=Path)
    args = parser.parse_args(argv)
    if args.what == "inputs":
        from celebseg_utils.data import layout

        ids = layout.read_split(args.prepared, "test")[: args.faces]
        print(json.dumps(input_parts(Path(args.prepared), ids, args.size), indent=2))
        return 0
    if args.what == "compare":
        for path in args.runs:
            if not path.is_file():
                print(f"error: {path} not found: write it with `run --json {path}`", file=sys.stderr)
                return 2
        a, b = (json.loads(p.read_text()) for p in args.runs)
        result = compare(a, b)
        print(json.dumps(result, indent=2))
        return 0 if all(result.values()) else 1
    for path, what in ((Path(args.model), "model"),
                       (Path(args.prepared) / "prepare.json", "prepared folder")):
        if not path.exists():
            print(f"error: {path} not found: pass a {what}", file=sys.stderr)
            return 2
    result = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("evaluate_equals_study", "predict_vs_study", "seconds")
    print(json.dumps({k: result[k] for k in shown}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Draw the figures that explain DeepLabV3+ from a trained model, and write their numbers.

Writes into ``--out`` (default ``figures/model``):

- ``receptive_field.png``: the input gradient of one output pixel of three 3x3 conv stacks
  (rates 1,1,1 / 2,2,2 / 1,2,3), and of one brow logit of the trained model on a test face;
- ``aspp_branches.png``: the stride-32 cells each ASPP branch of the model reads;
- ``output_stride.png``: a test label as a perfect classifier at stride 4..32 would give it;
- ``skip_connection.png``: test faces predicted with the decoder's stride-4 skip and with it
  replaced by its per-image mean, beside the thin classes' test F1 with and without;
- ``model_figures.json``: every number the figures and ``docs/model.md`` quote, the command
  that made them, the model's training budget, and the cost rows read from
  ``docs/bench/models_<size>.json`` (``scripts/bench_models.py --out``).

Nothing is trained: the skip is ablated at inference (``explain.without_skip``).

Usage::

    python scripts/make_model_figures.py \\
        --model /work/study-work/plateau/steps8000/runs/sparse_ce/seed0/final.keras \\
        --prepared /tmp/realprep [--out figures/model] [--faces 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

BENCH_SIZES = (128, 256, 512)


def model_budget(model_path: Path) -> dict:
    """The training budget of a run's model, from the ``config.yaml`` beside it."""
    import yaml

    config_file = model_path.parent / "config.yaml"
    if not config_file.is_file():
        return {}
    cfg = yaml.safe_load(config_file.read_text())
    return {"steps": int(cfg["epochs"]) * int(cfg["steps_per_epoch"]),
            "image_size": int(cfg["image_size"]), "batch_size": int(cfg["batch_size"]),
            "loss": cfg["loss"]["name"], "seed": int(cfg["seed"]),
            "backbone": cfg["model"]["backbone"], "library": cfg["model"]["library"],
            "weights": cfg["model"]["weights"], "aspp_rates": cfg["model"]["aspp_rates"]}


def budget_text(budget: dict) -> str:
    if not budget:
        return "a trained model"
    return (f"DeepLabV3+ {budget['backbone']} ({'random init' if not budget['weights'] else budget['weights']}), "
            f"{budget['loss']}, {budget['steps']:,} steps of {budget['batch_size']} at "
            f"{budget['image_size']} px, seed {budget['seed']}")


def bench_rows(bench_dir: Path) -> list[dict]:
    """Cost rows of ``bench_models.py`` JSON files, one per size that has one."""
    rows = []
    for size in BENCH_SIZES:
        path = bench_dir / f"models_{size}.json"
        if path.is_file():
            for row in json.loads(path.read_text()):
                rows.append({k: row[k] for k in ("library", "backbone", "image_size", "params",
                                                  "gflops", "cpu_latency_s", "loadavg_1min")}
                            | {"file": path.relative_to(REPO_ROOT).as_posix()
                               if path.is_relative_to(REPO_ROOT) else path.name})
    return rows


def brow_pixel(label) -> tuple[int, int]:
    """The left-brow pixel nearest to the brow's centroid."""
    import numpy as np

    from celebseg_utils import labels as L

    ys, xs = np.nonzero(label == L.class_id("l_brow"))
    i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return int(ys[i]), int(xs[i])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained keras-cv DeepLabV3+ .keras file")
    parser.add_argument("--prepared", required=True, help="prepared folder with the split")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default=str(REPO_ROOT / "figures" / "model"))
    parser.add_argument("--bench", default=str(REPO_ROOT / "docs" / "bench"),
                        help="folder of bench_models.py's models_<size>.json")
    parser.add_argument("--faces", type=int, default=4, help="test faces in the skip figure")
    args = parser.parse_args(argv)
    model_path, prepared = Path(args.model), Path(args.prepared)
    for path, what in ((model_path, "model file"), (prepared / "prepare.json", "prepared folder")):
        if not path.exists():
            print(f"error: {path}: no such {what}", file=sys.stderr)
            return 2

    from celebseg_utils import labels as L
    from celebseg_utils.engine import inference
    from celebseg_utils.fileio import atomic_write_json
    from celebseg_utils.interface import model_figures as MF
    from celebseg_utils.interface.notebook_figures import load_photos
    from celebseg_utils.data import layout
    from celebseg_utils.models import explain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = model_budget(model_path)
    where = f"real faces (CelebAMask-HQ {args.split} split)"
    who = budget_text(budget)
    model = inference.load_model(model_path)
    size = inference.input_size(model)
    ids, labels = MF.split_labels(prepared, args.split, size)
    info = layout.read_prepare_info(prepared)
    faces = MF.pick_thin_faces(labels, count=args.faces)
    first = faces[0]
    photo = load_photos(info["data_root"], [ids[first]], size=size)[0]

    print("receptive fields ...", flush=True)
    stacks = MF.conv_stack_fields()
    row, col = brow_pixel(labels[first])
    field = MF.model_field(model, photo, row, col)
    MF.plot_receptive_fields(stacks, field, photo, path=out / "receptive_field.png",
                             title=f"Receptive field, measured as the input gradient of one output "
                                   f"pixel. Right: {where}, image {ids[first]}\n{who}")

    print("ASPP and output stride ...", flush=True)
    rates = tuple(int(r) for r in (budget.get("aspp_rates") or (6, 12, 18)))
    aspp = MF.aspp_table(rates=sorted(set(rates) | {6, 12, 18}))
    shown_rates = tuple(sorted(set(rates) | {6}))  # and DeepLab's smallest default rate
    MF.plot_aspp_branches(photo, shown_rates, cell=(1, 1), path=out / "aspp_branches.png",
                          title=f"What each ASPP branch of one stride-32 cell (red) reads at "
                                f"{size} px: the model's rates {rates}, and DeepLab's 6\n"
                                f"{where}, image {ids[first]}")
    maps = explain.feature_map_sizes(model)
    oracle = MF.stride_oracle_f1(labels, strides=(4, 8, 16, 32))
    MF.plot_output_stride(labels[first], oracle, photo=photo, path=out / "output_stride.png",
                          title=f"A perfect classifier at each stride, upsampled: {where}, image "
                                f"{ids[first]} at {size} px\nmean F1 of the thin parts (brows, "
                                f"lips, earring, necklace) over the {len(ids)} {args.split} labels")

    print("skip ablation on the test split (3 evaluations) ...", flush=True)
    scores = MF.skip_ablation_scores(model, prepared, args.split, progress=False)
    # thin parts, then large ones for contrast
    table = MF.skip_f1_table(scores, classes=MF.THIN_CLASSES + ("skin", "hair", "nose"))
    MF.plot_skip_connection(model, prepared, [ids[i] for i in faces], mode="mean", scores=scores,
                            path=out / "skip_connection.png",
                            title=f"The decoder's stride-4 skip, removed at inference (its 48 "
                                  f"channels replaced by their per-image mean): {where}\n{who}")

    numbers = {
        "command": " ".join(["python", "scripts/make_model_figures.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "model": budget, "model_text": who, "data": where, "image_size": size,
        "test_images": len(ids), "faces_shown": [ids[i] for i in faces],
        "receptive_field": {"conv_stacks": MF.json_ready(stacks), "model": MF.json_ready(field)
                            | {"image_id": ids[first]}},
        "aspp": {"rates": list(rates), "tap_share": aspp},
        "feature_maps": maps,
        "stride_oracle_f1": oracle,
        "skip": {"protocol": "argmax at the model's input size (evaluate's model_size)",
                 "f1": table,
                 "f1_all_classes": MF.skip_f1_table(scores, classes=L.CLASS_NAMES[1:]),
                 "miou": {m: round(float(r["miou"]), 4) for m, r in scores.items()},
                 "pixel_accuracy": {m: round(float(r["pixel_accuracy"]), 4)
                                    for m, r in scores.items()}},
        "cost": bench_rows(Path(args.bench)),
    }
    atomic_write_json(out / "model_figures.json", numbers)
    print(MF.skip_markdown(table))
    print(f"wrote {len(list(out.glob('*.png')))} figures and model_figures.json to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

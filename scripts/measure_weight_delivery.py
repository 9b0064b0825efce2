"""Why the seed saw "no noticeable difference" with per-image pixel weights: one measurement
per candidate reason, on real training batches.

1. **The weights never reached the loss**: every way of :mod:`celebseg_utils.study.weight_delivery`
   (:data:`~celebseg_utils.study.weight_delivery.WAYS`) on real batches, at zero logits (the
   start of training) and, with ``--model``, at a trained model's logits; then what
   ``Model.fit`` does with a generator's ``(images, labels, weights)`` in Keras 3 and, when
   ``tf_keras`` imports (``--tf-keras-path``, a throwaway install, not a project dependency),
   in Keras 2.
2. **The optimizer divides the scale away**: :func:`celebseg_utils.study.gradients.gradient_share_table`
   with ``ce``, ``per_image`` and ``per_image_raw`` (its ``loss_scale``, ``scale_check`` and,
   with ``--model``, its Adam check), run on the same prepared folder.
3. **The metric hides it**: ``pixel_weighted_ce`` against ``sparse_ce`` in each ``--study``
   file (any ``study.json`` the study writes): pixel accuracy, mIoU and mean F1 beside each
   class's F1, precision and recall, and the learning-curve budgets when the file has them.

Writes ``OUT/weight_delivery.json`` and ``OUT/weight_delivery.md``. The committed results
came from::

    .venv/bin/celebseg prepare --images ../shared/data/celebamask_hq_mini/images \\
        --labels ../shared/data/celebamask_hq_mini/labels --out /tmp/realprep_w
    pip download --no-deps tf_keras==2.21.0 -d /tmp/wd_pkgs
    .venv/bin/pip install --no-deps --target /tmp/wd_pkgs/tfk /tmp/wd_pkgs/tf_keras-2.21.0-py3-none-any.whl
    .venv/bin/python scripts/measure_weight_delivery.py --prepared /tmp/realprep_w \\
        --model /tmp/wd_model_sparse_ce_s0.keras \\
        --tf-keras-path /tmp/wd_pkgs/tfk --batches 4 --out figures/study

(the model: a copy of ``sparse_ce`` seed 0 of the study's 1,000-step plateau runs,
``/work/study-work/plateau/steps1000/runs/sparse_ce/seed0/best.keras`` once its 4 x 250 steps
had ended, ``cpu-real`` at 128 px, validation mIoU 0.437, copied with ``cp``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ARM, BASELINE = "pixel_weighted_ce", "sparse_ce"


# --- candidate 3: what the scores show ---------------------------------------------------

def _mean(stat):
    return None if stat is None else stat.get("mean")


def metric_view(study: dict, arm: str = ARM, baseline: str = BASELINE) -> dict:
    """``arm`` against ``baseline`` in one study report: the headline scores (pixel accuracy,
    mIoU over 19 classes, mean F1 over the facial classes) and each class's F1, precision and
    recall, as seed means and their difference, plus the size of the per-class F1 moves next
    to the headline moves; ``curves`` (mean F1, mIoU, pixel accuracy, rare-class F1 per step
    budget) when the report has learning curves."""
    from celebseg_utils import labels as L

    summary = study.get("summary", {})
    if arm not in summary or baseline not in summary:
        return {"missing": [a for a in (arm, baseline) if a not in summary]}
    a, b = summary[arm], summary[baseline]
    head = {k: {"arm": _mean(a[k]), "baseline": _mean(b[k]), "diff": _mean(a[k]) - _mean(b[k])}
            for k in ("pixel_accuracy", "miou", "mean_f1")}
    per_class = {}
    for name in L.CLASS_NAMES:
        pa, pb = a["per_class"].get(name), b["per_class"].get(name)
        if pa is None or pb is None:
            continue
        per_class[name] = {k: {"arm": _mean(pa[k]), "baseline": _mean(pb[k]),
                               "diff": (_mean(pa[k]) - _mean(pb[k]))
                               if _mean(pa[k]) is not None and _mean(pb[k]) is not None else None}
                           for k in ("f1", "precision", "recall") if k in pa and k in pb}
    facial = [per_class[n]["f1"]["diff"] for n in L.CLASS_NAMES[1:]
              if n in per_class and per_class[n]["f1"]["diff"] is not None]
    moves = np.abs(facial)
    out = {"steps": study.get("steps"), "image_size": study.get("image_size"),
           "seeds": study.get("seeds_complete"),
           "settings": study.get("settings", {}).get("overrides"),
           "headline": head, "per_class": per_class,
           "facial_f1_moves": {
               "median_abs": float(np.median(moves)), "max_abs": float(moves.max()),
               "classes_beyond_abs_miou_move": int((moves > abs(head["miou"]["diff"])).sum()),
               "classes_beyond_0.05": int((moves > 0.05).sum()), "classes": len(facial),
               **{f"median_abs_{k}": float(np.median([abs(per_class[n][k]["diff"])
                                                     for n in L.CLASS_NAMES[1:] if n in per_class
                                                     and per_class[n][k]["diff"] is not None]))
                  for k in ("precision", "recall")}}}
    verdict = study.get("versus_baseline", {}).get(arm, {})
    if verdict:
        out["verdicts"] = {k: {"diff_mean": v.get("diff_mean"), "ci95": v.get("ci95"),
                               "holds": v.get("holds")} for k, v in verdict.items() if k != "seeds"}
    curves = {}
    for budget, entry in sorted(study.get("curves", {}).items(), key=lambda kv: int(kv[0])):
        s = entry.get("model_size", {}).get("summary", {})
        if arm in s and baseline in s:
            row = {k: _mean(s[arm][k]) - _mean(s[baseline][k]) for k in ("pixel_accuracy", "miou", "mean_f1")}
            row.update({f"f1_{c}": _mean(s[arm]["rare_f1"][c]) - _mean(s[baseline]["rare_f1"][c])
                        for c in s[arm].get("rare_f1", {})})
            curves[budget] = row
    if curves:
        out["curves_diff"] = curves
    return out


# --- candidate 1: the batches ---------------------------------------------------------------

def real_batches(prepared, batches: int, batch_size: int, image_size: int, seed: int):
    """``batches`` train batches as the pipeline gives them: images, int labels (B,H,W), the
    pipeline's own ``per_image`` weights (B,H,W), no augmentation, shuffled with ``seed``."""
    from celebseg_utils.data.pipeline import make_dataset

    ds = make_dataset(prepared, "train", image_size=image_size, batch_size=batch_size,
                      augment=False, shuffle=True, seed=seed, sample_weights="per_image")
    return [(x.numpy(), y.numpy()[..., 0].astype(np.int32), w.numpy())
            for x, y, w in ds.take(batches)]


def weight_facts(data) -> dict:
    """The per-image means of both weight kinds, and the pipeline's weights against the
    formula's (:func:`gradients.scheme_weights`)."""
    from celebseg_utils.study import gradients as G

    means, raw_means, gap = [], [], 0.0
    for _, lab, w in data:
        means += list(w.mean(axis=(1, 2)).astype(np.float64))
        raw = G.scheme_weights(lab, "per_image_raw").numpy()
        raw_means += list(raw.mean(axis=(1, 2)).astype(np.float64))
        gap = max(gap, float(np.abs(G.scheme_weights(lab, "per_image").numpy() - w).max()))
    return {"images": len(means),
            "per_image_mean_of_weights": {"min": min(means), "max": max(means),
                                          "max_abs_minus_1": float(np.max(np.abs(np.array(means) - 1)))},
            "per_image_raw_mean_of_weights": {"min": min(raw_means), "max": max(raw_means)},
            "pipeline_vs_formula_max_abs": gap}


def ways_tables(data, model=None) -> dict:
    """:func:`weight_delivery.delivery_table` per logit case and weight kind."""
    import tensorflow as tf

    from celebseg_utils.study import gradients as G
    from celebseg_utils.study import weight_delivery as WD

    cases = {"zeros": lambda x, lab: np.zeros(lab.shape + (19,), np.float32)}
    if model is not None:
        cases["model"] = lambda x, lab: tf.cast(model(x, training=False), tf.float32).numpy()
    out = {}
    for case, logits_of in cases.items():
        logits = [logits_of(x, lab) for x, lab, _ in data]
        out[case] = {}
        for kind in ("per_image", "per_image_raw"):
            weights = [w if kind == "per_image" else G.scheme_weights(lab, kind).numpy()
                       for _, lab, w in data]
            out[case][kind] = WD.delivery_table(
                [(lab, lg, w) for (_, lab, _), lg, w in zip(data, logits, weights)])
    return out


# --- report ----------------------------------------------------------------------------------

def _signed(v) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


def markdown(result: dict) -> str:
    from celebseg_utils.study import weight_delivery as WD

    b = result["batches"]
    lines = [f"# Why per-image weights made \"no noticeable difference\": one measurement per "
             f"candidate", "",
             f"{b['count']} train batches of {b['batch_size']} real faces at {b['image_size']} px "
             f"(`{result['prepared']}`, seed {b['seed']}, no augmentation). Command: see "
             f"`scripts/measure_weight_delivery.py`.", "",
             "## 1. Did the weights reach the loss?", "",
             "Logit gradient of each delivery way against plain CE (`unweighted`) and against "
             "the intended pixel weighting (`pixel`): cosine (min over batches) and relative L2 "
             "distance (mean); share of the gradient on the 4 rare classes' pixels and on "
             f"background + skin + hair; TV: total variation distance of the 19 per-class gradient "
             "shares from plain CE's and from the weighted one's. Verdict "
             "(`weight_delivery.verdict`): `unweighted` = plain CE's gradient up to scale "
             f"(cosine >= {WD.IDENTICAL} on every batch), `weighted` = the intended one up to "
             "scale, `unweighted balance` = the weights land on the wrong pixels and the class "
             "split is nearer plain CE's. \"Would give no difference\" = `unweighted` or "
             "`unweighted balance`.", ""]
    for case, kinds in result["ways"].items():
        for kind, table in kinds.items():
            lines += [f"**{kind} weights, {'zero logits (start of training)' if case == 'zeros' else 'logits of ' + result['model']}**", "",
                      "| way | cos vs CE | rel L2 vs CE | cos vs weighted | rel L2 vs weighted | "
                      "norm / weighted | rare share | big-3 share | TV to CE | TV to weighted | verdict | no difference? |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
            for way in WD.WAYS:
                e = table["ways"][way]
                lines.append(f"| `{way}` | {e['cosine_unweighted_min']:.4f} | {e['rel_l2_unweighted']:.4f} "
                             f"| {e['cosine_weighted_min']:.4f} | {e['rel_l2_weighted']:.4g} "
                             f"| {e['norm_ratio']:.4g} | {100 * e['rare_share']:.2f}% "
                             f"| {100 * e['big_share']:.1f}% | {e['tv_unweighted']:.3f} "
                             f"| {e['tv_weighted']:.3f} | {WD.verdict(e)} "
                             f"| {'yes' if WD.verdict(e) in WD.NO_DIFFERENCE else 'no'} |")
            lines.append("")
    f = result["weight_facts"]
    lines += [f"Per-image mean of the `per_image` weights over {f['images']} images: "
              f"{f['per_image_mean_of_weights']['min']:.7f} to {f['per_image_mean_of_weights']['max']:.7f}; "
              f"of the raw `1/n_c` weights: {f['per_image_raw_mean_of_weights']['min']:.3g} to "
              f"{f['per_image_raw_mean_of_weights']['max']:.3g} (K/N).", "",
              "`Model.fit` on a Python generator yielding `(images, labels, weights)`, one SGD "
              "step of a small conv net from identical parameters: the update against the "
              "manually weighted and the unweighted gradient.", "",
              "| framework | case | cos vs weighted | rel L2 vs weighted | cos vs unweighted | rel L2 vs unweighted |",
              "|---|---|---:|---:|---:|---:|"]
    for fit in result["fit"].values():
        if "skipped" in fit:
            lines.append(f"| {fit['framework']} | skipped: {fit['skipped']} | | | | |")
            continue
        fl = fit["float32_floor"]
        lines.append(f"| {fit['framework']} | float32 floor (manual, float32 vs float64) | | "
                     f"{fl['weighted']:.2e} | | {fl['unweighted']:.2e} |")
        for case, e in fit["cases"].items():
            if "error" in e:
                lines.append(f"| {fit['framework']} | `{case}` | refused: {e['error']} | | | |")
            else:
                lines.append(f"| {fit['framework']} | `{case}` | {e['cosine_weighted']:.7f} | "
                             f"{e['rel_l2_weighted']:.2e} | {e['cosine_unweighted']:.4f} | "
                             f"{e['rel_l2_unweighted']:.4f} |")
    lines += ["", "Not run, read from the source of Keras 2.2.4 (`keras/engine/training_utils.py`): "
              "`standardize_weights` refuses a (B,H,W) `sample_weight` unless `compile(..., "
              "sample_weight_mode=\"temporal\")` with (B,HW) weights (`flat_temporal` above), "
              "and otherwise asks to \"make sure your sample_weight array is 1D\"; with 1-D "
              "weights `weighted_masked_objective` averages the loss over each image's pixels "
              "before weighing the image: the `per_image_mean` way."]
    opt = result["optimizer"]
    lines += ["", "## 2. Does the optimizer divide the scale away?", "",
              f"`gradients.gradient_share_table` ({opt['batches']} batches, logits: {opt['logits']}).", ""]
    sc = opt.get("scale_check", {}).get("per_image_raw_over_per_image")
    if sc:
        lines.append(f"- raw `1/n_c` / normalised gradient norm per batch: mean {sc['mean']:.3g} "
                     f"(min {sc['min']:.3g}, max {sc['max']:.3g}, cv {sc['cv']:.3f}); cosine "
                     f"min {sc['cosine_min']:.4f}.")
    if "loss_scale" in opt:
        lines.append("- gradient L1 norm vs plain CE: " + ", ".join(
            f"{k} {v:.4g}" for k, v in opt["loss_scale"].items()) + ".")
    ad = opt.get("adam_check")
    if ad:
        lines.append(f"- Adam ({ad['steps']} steps, summed update): raw vs normalised cosine "
                     f"{ad['per_image_raw_vs_per_image']['cosine']:.4f}, norm ratio "
                     f"{ad['per_image_raw_vs_per_image']['norm_ratio']:.4f}; plain CE vs normalised "
                     f"cosine {ad['ce_vs_per_image']['cosine']:.4f}; parameter-gradient entries "
                     "below Adam's epsilon: " + ", ".join(
                         f"{k} {v:.1%}" for k, v in ad["first_gradient_below_eps"].items()) + ".")
    lines += ["", "## 3. Does the metric hide it?", ""]
    for path, view in result["metric"].items():
        if "missing" in view:
            lines.append(f"`{path}`: no {', '.join(view['missing'])} arm.")
            continue
        h = view["headline"]
        steps = (f"{view['steps']} steps, {view['image_size']} px" if view["steps"] else
                 f"overrides {view['settings']}")
        lines += [f"`{path}` ({steps}, {view['seeds']} seeds; "
                  f"`{ARM}` minus `{BASELINE}`, seed means):", "",
                  "| score | sparse_ce | pixel_weighted_ce | difference |", "|---|---:|---:|---:|"]
        for k in ("pixel_accuracy", "miou", "mean_f1"):
            lines.append(f"| {k} | {h[k]['baseline']:.3f} | {h[k]['arm']:.3f} | {h[k]['diff']:+.3f} |")
        lines += ["", "| class | F1 diff | precision diff | recall diff |", "|---|---:|---:|---:|"]
        for name, e in sorted(view["per_class"].items(), key=lambda kv: -abs(kv[1]["f1"]["diff"] or 0)):
            lines.append(f"| {name} | " + " | ".join(_signed(e[k]["diff"]) for k in
                                                      ("f1", "precision", "recall")) + " |")
        m = view["facial_f1_moves"]
        lines += ["", f"Facial classes' F1 moves: median |diff| {m['median_abs']:.3f}, max "
                  f"{m['max_abs']:.3f}; {m['classes_beyond_abs_miou_move']} of {m['classes']} move more "
                  f"than mIoU does, {m['classes_beyond_0.05']} by more than 0.05; median |diff| of "
                  f"precision {m['median_abs_precision']:.3f}, of recall {m['median_abs_recall']:.3f}.", ""]
        if "curves_diff" in view:
            keys = list(next(iter(view["curves_diff"].values())))
            lines += ["| steps | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
            for budget, row in view["curves_diff"].items():
                lines.append(f"| {int(budget):,} | " + " | ".join(f"{row[k]:+.3f}" for k in keys) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", required=True, help="prepared folder (its train split)")
    parser.add_argument("--model", help=".keras model whose logits to use besides zero logits")
    parser.add_argument("--tf-keras-path", help="folder holding a tf_keras install (Keras 2)")
    parser.add_argument("--study", action="append",
                        help="study.json to read (repeatable); default: figures/study/budget250/"
                             "study.json and figures/study/study.json where present")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from celebseg_utils.fileio import atomic_write_json
    from celebseg_utils.study import gradients as G
    from celebseg_utils.study import weight_delivery as WD

    t0 = time.time()
    model = None
    if args.model:
        from celebseg_utils.engine.train import load_trained_model

        model = load_trained_model(args.model)
    data = real_batches(args.prepared, args.batches, args.batch_size, args.image_size, args.seed)
    result = {"prepared": str(args.prepared), "model": args.model,
              "batches": {"count": len(data), "batch_size": args.batch_size,
                          "image_size": args.image_size, "seed": args.seed},
              "weight_facts": weight_facts(data)}
    result["ways"] = ways_tables(data, model)
    print(f"ways measured ({time.time() - t0:.0f} s)", flush=True)
    x, lab, w = data[0]
    result["fit"] = {"keras": WD.fit_check(x, lab, w)}
    if args.tf_keras_path:
        sys.path.insert(0, args.tf_keras_path)
    try:
        import tf_keras
    except ImportError as err:
        result["fit"]["tf_keras"] = {"framework": "tf_keras", "skipped": str(err)}
    else:
        result["fit"]["tf_keras"] = WD.fit_check(x, lab, w, kmod=tf_keras)
    print(f"fit checked ({time.time() - t0:.0f} s)", flush=True)
    table = G.gradient_share_table(args.prepared, model, batches=args.batches,
                                   batch_size=args.batch_size, image_size=args.image_size,
                                   seed=args.seed, schemes=("ce", "per_image", "per_image_raw"),
                                   adam_batches=args.batches)
    result["optimizer"] = {k: table[k] for k in ("logits", "batches", "loss_scale", "scale_check",
                                                 "adam_check") if k in table}
    studies = args.study or [p for p in ("figures/study/budget250/study.json",
                                         "figures/study/study.json") if (REPO / p).exists()]
    result["metric"] = {}
    for p in studies:
        path = Path(p) if Path(p).is_absolute() else REPO / p
        result["metric"][p] = metric_view(json.loads(path.read_text()))
    result["seconds"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "weight_delivery.json", WD.finite(result))
    (out / "weight_delivery.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out / 'weight_delivery.json'} and {out / 'weight_delivery.md'} "
          f"({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

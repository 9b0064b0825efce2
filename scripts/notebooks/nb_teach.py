"""Cells that teach: DeepLabV3+ measured on the project's model (notebook 04) and each loss
with its formula and a 4x4 worked example (notebook 03).

What the cells compute comes from the package (``celebseg_utils.models.explain``,
``celebseg_utils.interface.model_figures``); what needs a trained model is shown from the
committed figures of ``scripts/make_model_figures.py``, and the numbers quoted in the
Markdown are read here, when the notebooks are generated, from its
``figures/model/model_figures.json``: a regenerated notebook always quotes the committed file.
"""

from __future__ import annotations

import json
from pathlib import Path

import nb_cells
from nb_cells import code, md
from celebseg_utils.interface import notebook as nbh
from celebseg_utils.labels import DISPLAY_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_FIGURES = REPO_ROOT / "figures" / "model"
NUMBERS_FILE = MODEL_FIGURES / "model_figures.json"


def model_numbers() -> dict:
    """The committed measurements of ``scripts/make_model_figures.py``."""
    return json.loads(NUMBERS_FILE.read_text(encoding="utf-8"))


def _figure(name: str, alt: str) -> str:
    """A committed figure as Markdown: its raw GitHub URL, so that it shows in Colab too."""
    url = (f"https://raw.githubusercontent.com/{nb_cells.REPOSITORY}/"
           f"{nb_cells.REF or nbh.BRANCH}/figures/model/{name}")
    return f"![{alt}]({url})\n\n*(`figures/model/{name}` in the repository)*"


def _skip_rows(numbers: dict) -> str:
    names = {**DISPLAY_NAMES, "mean_f1": "mean F1 (18 classes)"}
    lines = ["| class | F1 with the skip | mean-replaced | zeroed |", "|---|---:|---:|---:|"]
    for row in numbers["skip"]["f1"]:
        lines.append(f"| {names.get(row['class'], row['class'])} | {row['keep']:.3f} | "
                     f"{row['mean']:.3f} ({row['change_mean']:+.3f}) | "
                     f"{row['zero']:.3f} ({row['change_zero']:+.3f}) |")
    return "\n".join(lines)


def _cost_rows(numbers: dict) -> str:
    lines = ["| backbone (keras-cv) | input | params (M) | GFLOPs / image |", "|---|---:|---:|---:|"]
    for row in sorted(numbers["cost"], key=lambda r: (r["backbone"] != "mobilenet_v3_large",
                                                      r["image_size"])):
        lines.append(f"| {row['backbone']} | {row['image_size']} px | {row['params'] / 1e6:.2f} | "
                     f"{row['gflops']:.2f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- notebook 04


def model_cells() -> list[dict]:
    """Notebook 04, before training: DeepLabV3+ in five measured steps."""
    n = model_numbers()
    field = n["receptive_field"]["model"]
    oracle = n["stride_oracle_f1"]
    brow = {r["class"]: r for r in n["skip"]["f1"]}
    budget = n["model"]
    return [
        md(f"""
## DeepLabV3+, measured on this project's model

DeepLabV3+ (Chen et al., 2018) is an encoder–decoder. The **encoder** is an ImageNet-style
backbone whose last feature map is 32 times smaller than the image (its *output stride*),
followed by **ASPP**, which reads that map at several dilation rates at once. The
**decoder** upsamples ASPP's output 8 times and joins it with the backbone's stride-4
features (the **skip**); a 1x1 convolution and the classifier give one logit per class,
upsampled 4 times to the image.

Every picture below is measured on this project's model, not copied from the paper: the
loss study's keras-cv MobileNetV3-Large DeepLabV3+ at 128 px with ASPP rates (1, 2, 3).
What needs no training is computed here on an untrained copy (64 px in `SMOKE`); what does
is shown from figures committed from the trained model ({budget['steps']:,} steps at
{budget['image_size']} px, {budget['loss']}, seed {budget['seed']}; `python
scripts/make_model_figures.py`, documented in `docs/model.md`). The preset you train below
builds the same architecture, possibly with another backbone and input size.

The maps through the model, from the model itself:
"""),
        code("""
from celebseg_utils.interface import model_figures, notebook
from celebseg_utils.models import explain
from celebseg_utils.models.deeplab import build_model

EXPLAIN_SIZE = 64 if SMOKE else 128  # the loss study's input size
explained = build_model(backbone="mobilenet_v3_large", image_size=EXPLAIN_SIZE, aspp_rates=(1, 2, 3))
notebook.Markdown(model_figures.feature_map_markdown(explain.feature_map_sizes(explained)))
"""),
        md(r"""
### Atrous convolution and the receptive field

An output pixel depends on the input pixels where its gradient is not zero: that set is its
**receptive field**. A 3x3 convolution with dilation rate $r$ reads 9 pixels $r$ apart, so
a stack of them reaches $1 + 2\sum_i r_i$ pixels across, with no extra weight for a larger
rate. The cell measures it on three stacks of three convolutions whose kernel weights are
all 1 (the gradient then counts the paths from each input pixel): rates (1, 1, 1) reach
7 px, rates (2, 2, 2) reach 13 px but read only every other pixel (the *gridding* holes),
and growing rates (1, 2, 3) reach the same 13 px with no hole.
"""),
        code("""
model_figures.plot_receptive_fields(model_figures.conv_stack_fields());
"""),
        md(f"""
In the trained model the gradient of one left-brow logit reaches all {field['support']} px
of the {field['side']} px input, but it is concentrated: half of it lies within
±{field['r50']} px of the pixel and 90% within ±{field['r90']} px (the *effective*
receptive field, right):

{_figure("receptive_field.png", "receptive field, measured")}
"""),
        md("""
### ASPP: five views of the stride-32 map

Atrous spatial pyramid pooling runs five branches on the backbone's last map and
concatenates them: a 1x1 convolution, three 3x3 convolutions with dilation rates, and image
pooling (the map's average, spread back everywhere). A rate only helps while its taps land
on the map: at 128 px the stride-32 map is 4x4, and DeepLab's rates (6, 12, 18), made for a
33x33 map, would read one tap in nine (the rest is zero padding); the study uses (1, 2, 3).
The share of taps that read the map, per input size and rate:
"""),
        code("""
notebook.Markdown(model_figures.aspp_markdown(model_figures.aspp_table()))
"""),
        code("""
ids, labels = model_figures.split_labels(PREPARED_DIR, "test", EXPLAIN_SIZE, limit=400)
face = model_figures.photo(PREPARED_DIR, ids[0], EXPLAIN_SIZE)
model_figures.plot_aspp_branches(face, rates=(1, 2, 3, 6), cell=(1, 1));
"""),
        md(f"""
### Output stride: what a map of each stride can draw

How thin can a part be and still be drawn? The cell below labels each block of a stride
with its most frequent class, as a
*perfect* classifier at that stride would, and scores the thin parts (brows, lips, earring,
necklace) against the truth. On the committed test split (400 real faces, 128 px) their
mean F1 is {oracle['4']['mean_f1']:.2f} at stride 4, {oracle['8']['mean_f1']:.2f} at 8,
{oracle['16']['mean_f1']:.2f} at 16 and {oracle['32']['mean_f1']:.2f} at 32; the brows
score {oracle['32']['l_brow']:.2f} at stride 32. (A yardstick, not a bound: the model
upsamples its logits bilinearly, which recovers some detail inside a cell.)
"""),
        code("""
oracle = model_figures.stride_oracle_f1(labels)
model_figures.plot_output_stride(labels[0], oracle, photo=face);
"""),
        md(f"""
### The decoder's stride-4 skip

So the decoder joins the upsampled ASPP output with 48 channels projected from the
backbone's stride-4 map. To see what they carry, the trained model was run on the 400 test
faces with those 48 channels replaced by their per-image mean (or zeros), nothing retrained
(`explain.without_skip`). Test F1, model as trained vs. without the skip:

{_skip_rows(n)}

{_figure("skip_connection.png", "predictions with and without the skip")}

Without the skip the thin parts all but vanish, and the large ones keep most of their F1.
(The necklace scores 0 with the skip too: this model never predicts one.) This measures how much the trained model *relies* on the skip, not what a model trained
without one would reach (it would learn to use ASPP differently). After training, the
notebook repeats this on your own model.
"""),
        md(f"""
### Cost at 128, 256 and 512 px

The arithmetic of one forward pass of one image, counted by `scripts/bench_models.py`
(convolutions and matmuls, a multiply-add = 2 FLOPs; `docs/bench/models_<size>.json`). It
grows with the pixels, 4x per doubling of the side, and the study's MobileNetV3 costs about
4% of the ResNet50-V2 at every size. (Those files hold CPU times too, taken on a 2-core
machine shared with other jobs; `docs/model.md` says why they are not quoted here.)

{_cost_rows(n)}
"""),
    ]


def skip_cells() -> list[dict]:
    """Notebook 04, after training: the skip ablation on the model just trained."""
    return [
        md("""
## The skip, removed from the model you just trained

The same measurement as above, on your model: its test F1 as trained and with the stride-4
skip replaced by its per-image mean, then a few test faces both ways. In `SMOKE` the model
has trained two steps, so the numbers mean nothing; the point is that the cell runs.
"""),
        code("""
skip_scores = model_figures.skip_ablation_scores(result["best_model"], PREPARED_DIR, "test",
                                                 modes=("keep", "mean"))
notebook.Markdown(model_figures.skip_markdown(model_figures.skip_f1_table(skip_scores)))
"""),
        code("""
model_figures.plot_skip_connection(result["best_model"], PREPARED_DIR,
                                   model_figures.thin_face_ids(ids, labels, count=3),
                                   scores=skip_scores);
"""),
    ]


# --------------------------------------------------------------------------- notebook 03


def loss_cells() -> list[dict]:
    """Notebook 03, after the class weights: each loss, its formula and a 4x4 example."""
    return [
        md("""
## How the losses answer the imbalance: a 4x4 example by hand

The training notebooks compare five losses. Each is below with its formula, the package
class that computes it, and its value on one tiny example whose numbers you can check with
a calculator. The example has its own three classes: 10 background pixels, 4 skin and 2
brow (the rare, thin class). The "model" is sure and right on background (p = 0.8), half
right on skin (0.5) and wrong on the brow (0.25: it says background). Its logits are
$\\ln p$, so the softmax gives back exactly these probabilities. Every number is computed
by the package's own loss classes (`explain.loss_example`), and `tests/models/test_explain.py`
checks them against the hand computations written here.
"""),
        code("""
from celebseg_utils.models import explain

example = explain.loss_example()
notebook.Markdown(example.markdown("inputs"))
"""),
        md(r"""
### Cross-entropy (`sparse_ce`)

`losses.SparseCE` (`celebseg_utils/models/losses.py`), recipe `sparse_ce`
(`models/recipes.py`). With $p_i = \mathrm{softmax}(z_i)$ at pixel $i$ and $y_i$ its class:

$$L_{\mathrm{CE}} = \frac{1}{N}\sum_{i=1}^{N} -\ln p_{i,y_i}$$

Every pixel counts the same, so the 10 background pixels weigh five times the 2 brow ones.
"""),
        code("""
notebook.Markdown(example.markdown("sparse_ce"))
"""),
        md(r"""
### Pixel-weighted cross-entropy (`pixel_weighted_ce`, the seed's scheme)

The same `losses.SparseCE`, with per-pixel weights from the data generator
(`data.sample_weights=per_image`, computed by `data.weight_maps.per_image_pixel_weights`). With
$n_c$ the pixels of class $c$ **in this image** and $K$ the classes present in it:

$$w_i = \frac{N}{K\,n_{y_i}}, \qquad L = \frac{1}{N}\sum_{i=1}^{N} w_i\,(-\ln p_{i,y_i})$$

Each class present gets the same total weight $N/K$, whatever its size: the loss is the
mean of the classes' average CE.
"""),
        code("""
notebook.Markdown(example.markdown("pixel_weighted_ce"))
"""),
        md(r"""
### Class-weighted cross-entropy (`weighted_ce`, median frequency)

`losses.WeightedCE`, recipe `weighted_ce`, with the median-frequency weights of
`data.stats.class_weights_from_counts` (above: computed once over the training split,
$P_c$ the pixels of the images that contain $c$):

$$w_c = \frac{\operatorname{median}_k f_k}{f_c},\quad f_c = \frac{n_c}{P_c}, \qquad
L = \frac{1}{N}\sum_{i=1}^{N} w_{y_i}\,(-\ln p_{i,y_i})$$

Here the example is its own split. In one image every $P_c$ is the image, so these weights
are proportional to the per-image ones (0.75 times them); over a split they differ: the
per-image weights change from image to image, the class weights do not.
"""),
        code("""
notebook.Markdown(example.markdown("weighted_ce"))
"""),
        md(r"""
### Soft Dice (`dice`)

`losses.DiceLoss`, recipe `dice`. Soft counts over the pixels, with $g_{ic} = 1$ when pixel
$i$ is of class $c$: $I_c = \sum_i p_{ic}\,g_{ic}$, $P_c = \sum_i p_{ic}$,
$G_c = \sum_i g_{ic}$; averaged over the classes $C^+$ present in the truth, with
smoothing $s = 1$ (the package's default):

$$L_{\mathrm{Dice}} = 1 - \frac{1}{|C^+|}\sum_{c \in C^+} \frac{2 I_c + s}{P_c + G_c + s}$$

A region score: each class counts once, however many pixels it has.
"""),
        code("""
notebook.Markdown(example.markdown("dice"))
"""),
        md(r"""
### Soft Jaccard (`jaccard`)

`losses.JaccardLoss`, recipe `jaccard`: the soft intersection over union, with the same
counts and smoothing:

$$L_{\mathrm{Jaccard}} = 1 - \frac{1}{|C^+|}\sum_{c \in C^+} \frac{I_c + s}{P_c + G_c - I_c + s}$$
"""),
        code("""
notebook.Markdown(example.markdown("jaccard"))
"""),
        md("""
### Side by side

The value of each loss, and how much of it each class makes up. Plain CE gives the two brow
pixels about a third of the loss; the two weightings and the two region losses give them
roughly half or more. With $s = 1$ on a class of 2 pixels the smoothing is large: `explain.loss_example(smooth=0)`
shows the unsmoothed Dice and Jaccard.
"""),
        code("""
notebook.Markdown(example.markdown("summary"))
"""),
    ]

"""Notebook 03 · Class imbalance: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import DATA_EXPLAIN, SMOKE_PREPARED, code, header, install_cells, md, notebook, parameters_cells
from nb_teach import loss_cells


def build() -> nbformat.NotebookNode:
    file = "03_class_imbalance.ipynb"
    cells = header(file, "03 · Class imbalance", """
A face-parsing model sees mostly background, skin and hair. Earrings, necklaces, hats and
eyeglasses are small *and* missing from most images. A loss that treats every pixel alike
learns the big classes first and may never learn the rare ones. This notebook measures the
imbalance on the training split and computes the class weights the training notebooks use.
""")
    cells += install_cells()
    cells += parameters_cells("""
SMOKE = False                      # True: synthetic faces, tiny sizes, CPU (what CI runs)
PREPARED_DIR = "data/prepared"     # made ready below (prepared by notebook 02, kept on Drive)
SPLIT = "train"                    # statistics come from the training split only
EXAMPLE_ID = None                  # image for the weight-map picture; None: one with rare parts
""")
    cells += [
        md(DATA_EXPLAIN),
        code(f"""
from celebseg_utils.interface import workspace

if SMOKE:
    {SMOKE_PREPARED}
workspace.ensure_data(PREPARED_DIR, smoke=SMOKE)
"""),
        md("""
## Counting pixels

`compute_stats` reads every label map of the split once and counts, per class, the pixels
(how *big* a class is) and the images that contain it (how *often* it appears). It caches
the result in `PREPARED_DIR/stats.json`, which training reads for the class weights.
"""),
        code("""
from celebseg_utils.data import stats as S
from celebseg_utils.visualization.plots import plot_class_frequency

stats = S.compute_stats(PREPARED_DIR, split=SPLIT)
print(f"{stats['num_images']} images in the {SPLIT} split")
"""),
        md("""
## Pixel frequency

The bars use a log scale: a linear one would show three classes and 16 slivers.
"""),
        code("""
plot_class_frequency(stats, path=None);
"""),
        md("""
## How often each class appears

Frequency is only half of the story. A class can be large when present yet rare overall
(a hat), or present in most images yet tiny (the eyes). The table lists, per class, its
share of pixels and the share of images that contain it.
"""),
        code("""
from celebseg_utils.interface import notebook

notebook.frequency_table(stats)
"""),
        code("""
notebook.imbalance_summary(stats)
"""),
        md(r"""
## Class weights

Three established ways to turn the counts into loss weights $w_c$ (with $n_c$ the pixels
of class $c$, $N$ all pixels of the split, $K$ the number of classes present):

* **inverse frequency**: $w_c = N / (K\,n_c)$, scaled so that the average pixel weighs 1.
  Honest but extreme: a class with 1000× fewer pixels gets 1000× the weight, which makes
  training noisy.
* **median frequency** (Eigen & Fergus, 2015): $w_c = \operatorname{median}(f) / f_c$ with
  $f_c = n_c / P_c$, where $P_c$ counts the pixels of the images that *contain* class $c$.
  It asks how big a class is where it appears, not how often it appears: small parts
  (eyes, brows, earrings) get weights above 1, while a hat, rare but large when worn,
  gets a small one. This is what notebook 05 trains with.
* **ENet** (Paszke et al., 2016): $w_c = 1/\ln(1.02 + n_c/N)$, at most about 50, so the
  rarest classes cannot dominate.

A class absent from the split gets weight 0 in every scheme: there is nothing to weight.
"""),
        code("""
from celebseg_utils.interface import notebook_figures as figures

figures.plot_class_weights(stats);
"""),
        md("""
## What the weights do to one image

A class weight becomes a per-pixel weight map: every pixel gets the weight of its class.
Left: the label map, its legend listing the classes of this image and their share of its
pixels. Middle: the median-frequency weight of each pixel (bright = a pixel that counts
more in the loss; note the log scale). Right: the per-image alternative, which weights
each class by its inverse area *in this image*, so every class present contributes
equally.
"""),
        code("""
figures.plot_weight_maps(PREPARED_DIR, stats, image_id=EXAMPLE_ID, split=SPLIT);
"""),
        *loss_cells(),  # each loss: its formula and a 4x4 example by hand
        md("""
Next: **04 · Train with sparse cross-entropy**, the unweighted baseline.
"""),
    ]
    return notebook(file, cells)

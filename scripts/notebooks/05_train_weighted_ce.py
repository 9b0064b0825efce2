"""Notebook 05 · Train with class-weighted cross-entropy: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import DATA_EXPLAIN, code, header, install_cells, md, notebook, parameters_cells
from nb_training import TRAIN_EXPLAIN, TRAIN_PARAMS, TRAIN_SMOKE, training_cells


#: The measured answer (README, "Why per-image weights changed so little"); the reference
#: study's sentences follow it in the notebook.
PER_IMAGE_ANSWER = """
**What the measurement says** (the reference run on 128 real training batches, committed in
`figures/study/gradient_shares.json`):

- **The weights do move the gradient, a lot.** Under plain CE, background, skin and hair
  take 86% of the gradient at the start of training; under per-image weights 23%.
- **But to the wrong small classes.** Each class present in an image receives the same
  share of that image's gradient, `1/K`. Eyes, brows, lips and nose are in 95-100% of the
  faces, so they collect the freed gradient (about 7% each). Eyeglasses, hats and necklaces
  are in about 5% of the faces: the four rare classes together get 2.9% (1.5% under plain
  CE), and a hat, which covers much of the few images it is in, gets *less* than under CE.
- **Normalising to mean 1, or not, is a rescale.** Raw `1/n_c` weights point the gradient
  the same way; Adam divides most of the scale away (the rest is its epsilon).
- **Global median-frequency weights give almost the same split** as the per-image ones:
  the seed's scheme is ordinary class weighting in disguise.
- **mIoU and pixel accuracy are the wrong lens** for a change aimed at small classes: the
  reference study below shows per-class F1, precision and recall for each arm, over seeds.
"""


def build() -> nbformat.NotebookNode:
    file = "05_train_weighted_ce.ipynb"
    cells = header(file, "05 · Train with class-weighted cross-entropy", """
Same model, same data, one change: each pixel's cross-entropy is multiplied by the weight
of its class. With median-frequency weights (notebook 03) an earring pixel counts many
times more than a skin pixel, so the rare classes get a real share of the gradient. The
usual price: more false positives on those classes (thicker, bleeding boundaries) and a
little pixel accuracy.
""")
    cells += install_cells(gpu=True)
    cells += parameters_cells(TRAIN_PARAMS + 'CLASS_WEIGHTS = "median_freq"       # or "inv_freq", "enet" (notebook 03)\n',
                              TRAIN_EXPLAIN)
    cells += [md(DATA_EXPLAIN), code(TRAIN_SMOKE)]
    cells += training_cells([("weighted_ce",
                              '"loss.name=weighted_ce", f"loss.class_weights={CLASS_WEIGHTS}"')])
    cells += [
        md("""
## The open question: why did per-image pixel weights change so little?

The experiment this project grew from weighted each pixel by the inverse of its class's
pixel count *in that image* (the data generator's `sample_weights="per_image"`), and found
"similar accuracy/mean IoU as the unweighted variant". Where does the gradient of each
scheme go? Below, on your own training batches and through the model you just trained: the
share of the loss gradient (with respect to the logits) that each true class receives under
plain CE, the per-image weights (normalised to mean 1, and raw `1/n_c`), the
median-frequency class weights, Dice and Jaccard; the black ticks are the pixel shares.
"""),
        code("""
from celebseg_utils.study import gradients

shares = gradients.gradient_share_table(PREPARED_DIR, model=result["best_model"],
                                        batches=2 if SMOKE else 16, image_size=cfg.image_size,
                                        batch_size=2 if SMOKE else 8)
gradients.plot_gradient_shares(shares);
"""),
        code("""
print(gradients.format_table(shares))
"""),
        md(PER_IMAGE_ANSWER),
        code("""
from celebseg_utils.study import reference

notebook.Markdown(reference.conclusions(reference.reference_study()))
"""),
        md("Next: **06 · Dice and Jaccard** balance the classes through the form of the loss instead."),
    ]
    return notebook(file, cells, gpu=True)

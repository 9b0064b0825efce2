"""Notebook 05 · Train the seed's experiment, weighted cross-entropy: its cells, in order.

Every number the Markdown quotes comes from the committed result files through
``celebseg_utils.study.quotes`` when the notebook is generated (tests/test_quoted_numbers.py).
"""

from __future__ import annotations

import nbformat

from nb_cells import DATA_EXPLAIN, code, header, install_cells, md, notebook, parameters_cells
from nb_training import TRAIN_EXPLAIN, TRAIN_PARAMS, TRAIN_SMOKE, training_cells

from celebseg_utils.models.recipes import RECIPES
from celebseg_utils.study import quotes

#: The losses this notebook trains, chosen by its one parameter ``LOSS``; the first is the
#: default: the experiment this project grew from.
LOSSES = ("pixel_weighted_ce", "weighted_ce", "ce_onehot")

INTRO = """
The experiment this project grew from compared six losses. Three of them are variants of
cross-entropy, and this notebook trains any of them, chosen by one parameter, `LOSS`:

{choices}

The default is the seed's own scheme, `pixel_weighted_ce`: the course reproduces that
experiment. Same model, same data, same steps and seed as notebook 04's run (this notebook
reuses its plan), so notebook 07 can put the two side by side.

What the weights buy and cost, as measured in the reference study ({study_budget}, real
faces; notebook 07 shows it whole): pixel accuracy falls from {pixel_accuracy_sparse_ce}
(`sparse_ce`) to {pixel_accuracy_pixel_weighted_ce} under the per-image weights and
{pixel_accuracy_weighted_ce} under median-frequency weights, while background, skin and
hair lose most of their share of the gradient ({big3_ce} under plain CE, {big3_per_image}
under the per-image weights, at the start of training); earring F1 rises from {f1_ear_r_sparse_ce} to
{f1_ear_r_pixel_weighted_ce} and {f1_ear_r_weighted_ce}, at a precision of
{precision_ear_r_pixel_weighted_ce}. The rare classes do **not** get a large share of the
gradient: at the start of training the four of them together receive {rare4_ce} under plain
CE, {rare4_per_image} under the per-image weights and {rare4_median_freq} under
median-frequency weights, and a hat gets *less* than under plain CE ({hat_ce} against
{hat_per_image} and {hat_median_freq}). The end of this notebook measures why.
"""

#: The measured answer (README, "Why per-image weights changed so little").
PER_IMAGE_ANSWER = """
**What the measurement says** (the reference run on {gradient_batches} real training
batches of {gradient_batch_size} faces at {gradient_image_size} px, committed in
`figures/study/gradient_shares.json`; zero logits, the start of training):

- **The weights do move the gradient, a lot.** Under plain CE, background, skin and hair
  take {big3_ce} of the gradient; under per-image weights {big3_per_image}.
- **But to the wrong small classes.** Each class present in an image receives the same
  share of that image's gradient, `1/K`. Eyes, brows, lips and nose are in
  {small_images_low}-{small_images_high} of the faces (an open mouth in fewer), so they
  collect the freed gradient (about {small_each_per_image} each, {small8_per_image} together
  against {small8_ce} under CE). Eyeglasses, hats and necklaces are in about {rare_images}
  of the faces: the four rare classes together get {rare4_per_image} ({rare4_ce} under plain
  CE), and a hat, which covers much of the few images it is in, gets *less* than under CE
  ({hat_per_image} against {hat_ce}).
- **Normalising to mean 1, or not, is a rescale.** Raw `1/n_c` weights give the same shares
  within {raw_vs_normalised_points} percentage points; Adam divides most of the scale away
  (the rest is its epsilon).
- **Global median-frequency weights give almost the same split** as the per-image ones
  (within {median_freq_vs_per_image_points} points): the seed's scheme is ordinary class
  weighting in disguise.
- **mIoU and pixel accuracy are the wrong lens** for a change aimed at small classes: the
  reference study below shows per-class F1, precision and recall for each arm, over seeds.
"""


def build() -> nbformat.NotebookNode:
    file = "05_train_weighted_ce.ipynb"
    f = quotes.facts()
    choices = "\n".join(f"- `{name}`: {RECIPES[name].description}"
                        + (" (the default)" if name == LOSSES[0] else "") for name in LOSSES)
    cells = header(file, "05 · Train the seed's experiment: weighted cross-entropy",
                   INTRO.format(choices=choices, **f))
    cells += install_cells(gpu=True)
    loss_line = (f'LOSS = "{LOSSES[0]}"       # the seed\'s scheme; or '
                 + ", ".join(f'"{n}"' for n in LOSSES[1:]) + "\n")
    cells += parameters_cells(TRAIN_PARAMS + loss_line, TRAIN_EXPLAIN + """
`LOSS` picks the run, from the package's table of loss recipes
(`celebseg_utils/models/recipes.py`); its name is also the run's folder, which notebook 07
reads. Median-frequency weights are the default of `weighted_ce`; another scheme of
notebook 03 is one override away: `OVERRIDES = ["loss.class_weights=inv_freq"]`.
""")
    cells += [md(DATA_EXPLAIN), code(TRAIN_SMOKE)]
    cells += training_cells(["=LOSS"])
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
gradients.plot_gradient_shares(shares, faces="synthetic faces" if SMOKE else "real faces");
"""),
        code("""
print(gradients.format_table(shares))
"""),
        md(PER_IMAGE_ANSWER.format(**f)),
        code("""
from celebseg_utils.study import reference

notebook.Markdown(reference.conclusions(reference.reference_study()))
"""),
        md("Next: **06 · Dice and Jaccard** balance the classes through the form of the loss instead."),
    ]
    return notebook(file, cells, gpu=True)

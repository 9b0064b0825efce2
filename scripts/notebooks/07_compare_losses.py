"""Notebook 07 · Compare the losses: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import SMOKE_WORKSPACE, code, header, install_cells, md, notebook, parameters_cells


def build() -> nbformat.NotebookNode:
    file = "07_compare_losses.ipynb"
    cells = header(file, "07 · Compare the losses", """
Four models, identical except for the loss: sparse cross-entropy (04), median-frequency
weighted cross-entropy (05), Dice and Jaccard (06). Overall scores hide what the losses are
about, so this notebook compares them **per class**, with the rare classes highlighted,
and looks at the same test faces through each model.
""")
    cells += install_cells()
    cells += parameters_cells("""
SMOKE = False                      # True: synthetic faces, tiny sizes, CPU (what CI runs)
PREPARED_DIR = "data/prepared"     # written by notebook 02
RUN_ROOT = None                    # where 04-06 wrote their runs (None: Drive, else ./runs)
RUNS = ["sparse_ce", "weighted_ce", "dice", "jaccard"]
SMOKE_ROOT = "celebseg-smoke"      # SMOKE only: the synthetic workspace
SHOW_IMAGES = 3                    # test images in the prediction grids
""", """
The runs come from notebooks 04-06. In SMOKE mode, runs that are missing are trained here
in a few seconds each, so this notebook also works on its own.
""")
    cells += [
        code(f"""
if SMOKE:
{SMOKE_WORKSPACE}
    PREPARED_DIR = workspace["prepared"]
    RUN_ROOT = RUN_ROOT or f"{{SMOKE_ROOT}}/runs"  # where 04-06 put their SMOKE runs
"""),
        md("""
## The runs

Each run folder holds the model with the best validation mIoU and its test results
(`results.json`, written by the training notebooks). A trained run without results is
evaluated now; a missing run is an error that names the notebook to run.
"""),
        code("""
from celebseg_utils.interface import notebook

run_dirs = notebook.ensure_runs(RUNS, PREPARED_DIR, root=RUN_ROOT, smoke=SMOKE)
run_dirs
"""),
        md("""
## Side by side

`compare_runs` reads each run's test results and lines them up, as
`celebseg compare RUN_DIR...` does on the command line: IoU / F1 per class (rows) and run
(columns), the best run of each row in bold, then mIoU over the 19 classes, mean F1 over
the 18 facial classes and pixel accuracy.
"""),
        code("""
from celebseg_utils.engine import evaluate

comparison = evaluate.compare_runs(run_dirs)
notebook.Markdown(comparison["table"])
"""),
        md("""
## Per-class scores, rare classes highlighted

The shaded columns, with red names, are the rare classes: eyeglasses, hat, earring and
necklace. F1 first, then IoU (IoU is the stricter of the two: F1 = 2·IoU / (1 + IoU)).
"""),
        code("""
from celebseg_utils.interface import notebook_figures as figures

figures.plot_comparison(comparison["runs"], metric="f1");
"""),
        code("""
figures.plot_comparison(comparison["runs"], metric="iou");
"""),
        md("""
## The same faces through each model

One row per test image: the photo, the ground truth, then each run's prediction.
"""),
        code("""
figures.plot_run_predictions(run_dirs, PREPARED_DIR, count=SHOW_IMAGES, split="test");
"""),
        md("""
## The rare classes in numbers

Computed from the results above: the best run overall, and for each rare class the run
with the best F1 and how much it gains over plain cross-entropy.
"""),
        code("""
notebook.comparison_summary(comparison["runs"])
"""),
        md("""
## What the numbers say about class imbalance

*With `SMOKE = True` the models above saw a few synthetic faces for a few steps: their
numbers are meaningless and only show that the pipeline runs. Read this section against a
full run.*

**The big classes hardly care about the loss.** Background, skin, hair, nose and neck have
so many pixels that every loss learns them; their IoU differs between runs by a point or
two. Overall pixel accuracy is therefore a poor judge of the losses: it is almost entirely
made of those classes.

**The rare classes are where the losses differ.** Earrings, necklaces, hats and eyeglasses
are small and absent from most images. Plain cross-entropy gets few gradients from them and
tends to predict them too rarely: look for high precision and low recall in the per-class
table, and for whole earrings missing in the pictures.

**Class weights buy recall with precision.** Median-frequency weighting multiplies the loss
of a rare-class pixel many times, so the model predicts those classes more readily. Recall
rises; precision usually falls (rare classes leak into their surroundings), so F1 and IoU
improve less than recall does, and sometimes not at all for the rarest class.

**Dice and Jaccard balance by construction.** Each class contributes one overlap term,
whatever its size, so the rare classes weigh as much as skin without any weights. They
usually give the best mean F1 and mIoU, since they optimise (a smooth version of) what
those metrics measure, at the cost of less calibrated probabilities and sometimes noisier
boundaries on the large classes.

**Rare is not the same as hard.** Eyeglasses are rare but large and high-contrast; earrings
and necklaces are rare *and* tiny, often partly hidden by hair. Expect the necklace and the
earring to stay the worst classes under every loss: their labels are also the least
consistent in the dataset. A combined loss (`ce_dice`) or a focal loss are the next things
to try; both are available as `loss=ce_dice` and `loss=focal`.
"""),
    ]
    return notebook(file, cells)

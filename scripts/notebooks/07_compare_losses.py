"""Notebook 07 · Compare the losses: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import DATA_EXPLAIN, SMOKE_PREPARED, code, header, install_cells, md, notebook, parameters_cells


#: How to read the reference; its figures are in the README ("The loss study on real faces").
READING = """
**Overall scores hide the losses' effect.** Pixel accuracy is mostly background, skin and
hair, which every loss learns; the reference table shows arms whose pixel accuracy falls
while their mean F1 rises. Judge the losses by per-class F1, precision and recall.

**Weights buy recall, overlap losses buy balance.** Weighted cross-entropy (global
median-frequency weights, or the per-image weights of notebook 05) moves gradient from the
big classes to the small ones: recall of the small parts rises, precision falls. Dice and
Jaccard give every class present one overlap term, whatever its size.

**Rare and tiny stays hard.** Necklaces and earrings are absent from most faces and a few
pixels wide at 128 px: no loss fixes missing pixels. A larger input size and longer
training matter more for them than the loss does; see the caveats in the README.
"""


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
PREPARED_DIR = "data/prepared"     # made ready below (prepared by notebook 02, kept on Drive)
RUN_ROOT = None                    # where 04-06 wrote their runs (None: Drive, else ./runs)
RUNS = ["sparse_ce", "weighted_ce", "dice", "jaccard"]
SHOW_IMAGES = 3                    # test images in the prediction grids
PHOTO = None                       # your own photo (a path); None: a test face, framed
""", """
The runs come from notebooks 04-06. In SMOKE mode, runs that are missing are trained here
in a few seconds each, so this notebook also works on its own.
""")
    cells += [
        md(DATA_EXPLAIN),
        code(f"""
from celebseg_utils.interface import workspace

if SMOKE:
    {SMOKE_PREPARED}
    RUN_ROOT = RUN_ROOT or workspace.run_root(smoke=True)  # where 04-06 put their SMOKE runs
workspace.ensure_data(PREPARED_DIR, smoke=SMOKE)
"""),
        md("""
## The runs

Each run folder holds the model with the best validation mIoU and its test results
(`results.json`, written by the training notebooks). A trained run without results is
evaluated now; a missing run is an error that names the notebook to run.
"""),
        code("""
from celebseg_utils.interface import notebook

run_dirs = workspace.ensure_runs(RUNS, PREPARED_DIR, root=RUN_ROOT, smoke=SMOKE)
run_dirs
"""),
        md("""
## Side by side

`compare_runs` reads each run's test results and lines them up, as
`celebseg compare RUN_DIR...` does on the command line: IoU / F1 per class (rows) and run
(columns), a row's best in bold when it beats another run, then mIoU, mean F1 over the
facial classes (each saying how many classes it averaged) and pixel accuracy; a second
table gives the rare classes' precision and recall, where the losses differ most.
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

One row per test image: the photo, the ground truth, then each run's prediction. The
legend beside each row names every class in the row's maps, with its share of the ground
truth's pixels ("–": only predicted).
"""),
        code("""
figures.plot_run_predictions(run_dirs, PREPARED_DIR, count=SHOW_IMAGES, split="test");
"""),
        md("""
## Your own photo

The models learnt from faces aligned and cropped the CelebA-HQ way: eyes level, at the same
height, the face filling the frame. An ordinary photo is not like that. Below, the best run
by mean F1 parses a photo twice: whole, as `celebseg predict` does, and face by face, as
`celebseg predict --align` does: it finds each face (MTCNN), turns and scales it into the
CelebA-HQ frame, parses it there and pastes the parse back. Set `PHOTO` to a path of your
own (upload it to the runtime first); `None` takes a test face, shrunk, turned and placed
off-centre. `--align` needs the `[align]` extra (`pip install "celebseg[align]"`); without
it, or where no face is found (the synthetic faces of SMOKE mode), its panel says why.
"""),
        code("""
scores = [r["mean_f1"] or 0 for r in comparison["runs"].values()]  # in the order of run_dirs
best_dir = run_dirs[scores.index(max(scores))]
figures.plot_own_photo(best_dir / "best.keras", PHOTO, prepared=PREPARED_DIR);
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
## The reference: the loss study on real faces

Your runs above are one seed each. The package ships the study that answers this
notebook's question with evidence: every arm trained with three seeds on 3,200 real
CelebAMask-HQ faces and tested on 400 others (`celebseg study`, preset `cpu-real`: a CPU,
128 px, random init, a short schedule). It is a **committed measurement, not your run**:
read its scale against that setting, and its direction against your own numbers above.
"""),
        code("""
from celebseg_utils.study import reference, report

reference_report = reference.reference_study()
notebook.Markdown(reference.reference_markdown())
"""),
        code("""
report.plot_per_class_f1(reference_report);
"""),
        md("""
## What the numbers say

Each arm against sparse cross-entropy, paired by seed (same initial weights, same batches):
a difference *holds* when every seed agrees in sign **and** a paired bootstrap over the test
faces excludes zero. These sentences are computed from the reference report, so they say
what the measurement says, no more.
"""),
        code("""
notebook.Markdown(reference.conclusions(reference_report))
"""),
        md(READING),
    ]
    return notebook(file, cells)

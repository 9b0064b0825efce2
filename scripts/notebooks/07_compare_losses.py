"""Notebook 07 · Compare the losses: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import DATA_EXPLAIN, SMOKE_PREPARED, code, header, install_cells, md, notebook, parameters_cells

from celebseg_utils.engine import holds
from celebseg_utils.study import quotes


#: How to read the reference. Every number comes from the committed result files
#: (``celebseg_utils.study.quotes``), formatted when the notebook is generated.
READING = """
**Overall scores hide the losses' effect.** Pixel accuracy is mostly background, skin and
hair, which every loss learns; in the reference table the per-image weights lower pixel
accuracy ({pixel_accuracy_sparse_ce} to {pixel_accuracy_pixel_weighted_ce}) while their
mean F1 rises ({mean_f1_sparse_ce} to {mean_f1_pixel_weighted_ce}). Judge the losses by
per-class F1, precision and recall.

**At {study_budget}, the weights buy earrings, Dice buys eyeglasses.** Weighted
cross-entropy (the per-image weights of notebook 05, or global median-frequency weights)
moves gradient from the big classes to the small parts every face has, not to the rare
ones. Earring recall rises from {recall_ear_r_sparse_ce} to {recall_ear_r_pixel_weighted_ce}
(per-image) and {recall_ear_r_weighted_ce} (median-frequency) at a precision of
{precision_ear_r_pixel_weighted_ce}; eyeglasses recall does not rise
({recall_eye_g_sparse_ce} to {recall_eye_g_pixel_weighted_ce}), nor hat recall
({recall_hat_sparse_ce} to {recall_hat_pixel_weighted_ce}). Dice gives every class present
one overlap term, whatever its size: eyeglasses F1 {f1_eye_g_sparse_ce} to
{f1_eye_g_dice}, earring only {f1_ear_r_dice} (against {f1_ear_r_pixel_weighted_ce} under
the per-image weights).

**Rare and tiny stays hard at this budget.** Necklace F1 is at most {f1_neck_l_best}
under every loss. Longer training moves the rare classes further than any loss did here, as far
as it was measured: the ladder trained `sparse_ce` alone, one seed, at several budgets
(`figures/study/plateau/`): from {ladder_short_steps} to {ladder_long_steps} steps its
eyeglasses F1 went from {ladder_short_f1_eye_g} to {ladder_long_f1_eye_g}, earring from
{ladder_short_f1_ear_r} to {ladder_long_f1_ear_r}, necklace from
{ladder_short_f1_neck_l} to {ladder_long_f1_neck_l}. One seed and one loss: a direction,
not a verdict. A larger input size was not measured.
"""


def build() -> nbformat.NotebookNode:
    file = "07_compare_losses.ipynb"
    f = quotes.facts()
    cells = header(file, "07 · Compare the losses", """
Four runs that differ only in the loss: sparse cross-entropy (04), the seed's per-image
pixel weights (05; or the loss `LOSS` chose there), Dice and Jaccard (06). Notebooks 05 and
06 reuse the plan of notebook 04's run, so every run starts from the same initial weights,
sees the same batches and trains the same steps; the first cell below checks it from the
runs' own files. Overall scores hide what the losses are about, so this notebook compares
them **per class**, with the rare classes highlighted, and looks at the same test faces
through each model. Your runs are one seed each: they show a direction, and no difference
between them can be judged to hold; the reference study at the end has three seeds.
""")
    cells += install_cells()
    cells += parameters_cells("""
SMOKE = False                      # True: synthetic faces, tiny sizes, CPU (what CI runs)
PREPARED_DIR = "data/prepared"     # made ready below (prepared by notebook 02, kept on Drive)
RUN_ROOT = None                    # where 04-06 wrote their runs (None: Drive, else ./runs)
RUNS = ["sparse_ce", "pixel_weighted_ce", "dice", "jaccard"]  # 05's run: its LOSS
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
## Is the comparison controlled?

A difference in scores can only be put down to the loss when nothing else differs. Each run
folder keeps the configuration it trained with and the steps it planned; `compare_settings`
reads them and lists every difference besides the loss keys of the recipe table (seed,
planned steps, preset, image size, batch size, schedule, data, ...).
"""),
        code("""
from celebseg_utils.engine import control

check = control.compare_settings(run_dirs)
trained = control.budget_text(check, "synthetic faces" if SMOKE else "real faces")  # for titles
notebook.Markdown(control.control_markdown(check))
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
from celebseg_utils.engine import compare

comparison = compare.compare_runs(run_dirs)
notebook.Markdown(comparison["table"])
"""),
        md("""
## Per-class scores, rare classes highlighted

The shaded columns, with red names, are the rare classes: eyeglasses, hat, earring and
necklace. F1 first, then IoU (IoU is the stricter of the two: F1 = 2·IoU / (1 + IoU)).
"""),
        code("""
from celebseg_utils.interface import notebook_figures as figures

figures.plot_comparison(comparison["runs"], metric="f1", subtitle=trained);
"""),
        code("""
figures.plot_comparison(comparison["runs"], metric="iou", subtitle=trained);
"""),
        md("""
## The same faces through each model

One row per test image: the photo, the ground truth, then each run's prediction. The
legend beside each row names every class in the row's maps, with its share of the ground
truth's pixels ("–": only predicted).
"""),
        code("""
figures.plot_run_predictions(run_dirs, PREPARED_DIR, count=SHOW_IMAGES, split="test",
                             title=f"The same test faces through each loss ({trained})");
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

Computed from the results above: the best run overall, the study's rule for "holds"
applied to these one-seed runs, and for each rare class the run with the best F1 and how
much it gains over plain cross-entropy.
"""),
        code("""
notebook.comparison_summary(comparison["runs"])
"""),
        md("""
## The reference: the loss study on real faces

Your runs above are one seed each. The package ships the study that answers this
notebook's question with evidence: every arm trained with {study_seeds} seeds on 3,200 real
CelebAMask-HQ faces and tested on 400 others (`celebseg study`, preset `cpu-real`: a CPU,
random init, {study_budget}; every arm the same steps, and for each seed the same initial
weights and batches). It is a **committed measurement, not your run**: read its scale
against that setting, and its direction against your own numbers above.
""".format(**f)),
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

Each arm against sparse cross-entropy, paired by seed (same initial weights, same batches).
A difference {rule}: the three checks of `celebseg_utils/engine/holds.py`, the one
definition `celebseg study`'s report, the README and this notebook share. The interval is a
paired bootstrap over the test faces; the seed noise is the larger standard deviation over
seeds of the two arms. With one seed no difference can be judged to hold. These sentences
are computed from the reference report, and each says which check failed.
""".format(rule=holds.RULE)),
        code("""
notebook.Markdown(reference.conclusions(reference_report))
"""),
        md(READING.format(**f)),
    ]
    cells += viewer_cells()
    return notebook(file, cells)


def viewer_cells() -> list:
    """The comparison's last word: the runs side by side on their worst faces (issue #22)."""
    return [
        md("""
## Where each loss goes wrong, face by face

The viewer shows the test faces through every run at once: the photo, the ground truth,
each run's prediction and, under it, its **error map** (the wrong pixels, coloured by the
class they should have been; the "errors" menu switches to the predicted class or one
colour). It opens on the faces with a **hat**, a rare class, worst first for plain
cross-entropy; the menus re-sort by any run's per-image mean F1 or IoU, or by where one run
beats another most, and filter to faces holding chosen classes. The table under the
pictures gives the face's F1 and IoU per class and run; "dataset id" jumps to an image, and
"point" (x, y in panel pixels) names the class there in every map. The per-image scores come
from the evaluation above (`per_image_test.json` beside each model), so nothing is scored
twice. `viewer.show_photo(path)` parses your own photo the `predict --align` way.
"""),
        code("""
from celebseg_utils.interface.widgets import MaskViewer

viewer = MaskViewer(PREPARED_DIR, "test", models={run.name: run for run in run_dirs})
viewer.sort_by("worst", run_dirs[0].name)  # plain cross-entropy's worst faces first
viewer.filter_classes(["hat"])             # a rare class; [] for every face
viewer
"""),
    ]

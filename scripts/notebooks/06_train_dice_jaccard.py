"""Notebook 06 · Train with Dice and Jaccard losses: its cells, in order."""

from __future__ import annotations

import nbformat

from nb_cells import DATA_EXPLAIN, code, header, install_cells, md, notebook, parameters_cells
from nb_training import TRAIN_EXPLAIN, TRAIN_PARAMS, TRAIN_SMOKE, training_cells


def build() -> nbformat.NotebookNode:
    file = "06_train_dice_jaccard.ipynb"
    cells = header(file, "06 · Train with Dice and Jaccard losses", """
Region losses measure overlap instead of per-pixel likelihood. Soft **Dice** is
$1 - \\frac{2|P \\cap T|}{|P| + |T|}$ and soft **Jaccard** (IoU) is
$1 - \\frac{|P \\cap T|}{|P \\cup T|}$, computed per class on the softmax probabilities and
averaged over the classes. Each class then counts once, whatever its size: the imbalance is
handled by the form of the loss rather than by weights. Jaccard is closest to the IoU we
report, Dice to the F1. This notebook trains one model with each, one after the other.
""")
    cells += install_cells(gpu=True)
    cells += parameters_cells(TRAIN_PARAMS, TRAIN_EXPLAIN)
    cells += [md(DATA_EXPLAIN), code(TRAIN_SMOKE)]
    cells += training_cells(["dice", "jaccard"])
    cells += [md("Next: **07 · Compare the losses** puts the four runs side by side.")]
    return notebook(file, cells, gpu=True)

"""Every number the notebooks and the docs quote is read from a committed result file.

The training and comparison notebooks (04-07) and ``docs/study.md`` may state a decimal
number or a percentage only when it is one of :func:`celebseg_utils.study.quotes.facts`,
which computes them from ``figures/study/**`` and the package's reference copies; the
stories format them in when the notebooks are generated. The README's numbers are its
generated blocks, checked here through ``scripts/update_readme_study.py``. A number typed by
hand, or one left behind when a result file changes, fails with the file, the cell and
the number.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from celebseg_utils import labels as L
from celebseg_utils.study import quotes

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "figures" / "study"
NOTEBOOKS = ["04_train_sparse_ce.ipynb", "05_train_weighted_ce.ipynb",
             "06_train_dice_jaccard.ipynb", "07_compare_losses.ipynb"]
DOCS = ["docs/study.md"]
#: Decimals ("0.620", "1,511.5") and percentages ("2.9%", "100%"), not inside a word, a
#: version or a path.
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?%|(?<![\w.])\d[\d,]*\.\d+(?![\w.])")
#: Numbers that are settings, not measurements, with what they are.
CONSTANTS = {"95%": "the bootstrap interval's level (engine/holds.py)"}
#: Text that shows the format of an output, not a measurement: taken out before the scan.
EXAMPLES = {
    'ETA 7 h 40 min at 11.2 img/s': "the ETA line's format (nb_training.TRAIN_EXPLAIN)",
    '"2.1% / 0%", one it invents "0% / 1.5%"': "the prediction legend's format",
}


def quoted_texts():
    """``(where, text)`` for every Markdown cell of the notebooks and every doc."""
    for name in NOTEBOOKS:
        nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown":
                yield f"notebooks/{name} cell {i}", cell.source
    for doc in DOCS:
        yield doc, (REPO / doc).read_text(encoding="utf-8")


#: A block that ``scripts/update_readme_study.py`` writes from the result files, checked
#: number for number by ``tests/study/test_readme_numbers.py``.
GENERATED_BLOCK = re.compile(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->", re.S)


def unmeasured_numbers(where: str, text: str, allowed: set[str]) -> list[str]:
    """The numbers of ``text`` that no result file gives, as "where: number (context)"."""
    text = GENERATED_BLOCK.sub("", text)
    for example in EXAMPLES:
        text = text.replace(example, "")
    bad = []
    for match in NUMBER.finditer(text):
        if match.group(0) not in allowed:
            context = " ".join(text[max(0, match.start() - 40):match.end() + 20].split())
            bad.append(f"{where}: {match.group(0)} (...{context}...)")
    return bad


@pytest.fixture(scope="module")
def facts():
    return quotes.facts()


def allowed_numbers(facts: dict) -> set[str]:
    """The facts as the text may show them: "+0.034" is quoted as "+0.034" (the scan reads
    the digits), and the :data:`CONSTANTS`."""
    return {v.lstrip("+-") for v in facts.values()} | set(CONSTANTS)


def test_every_quoted_number_comes_from_a_result_file(facts):
    allowed = allowed_numbers(facts)
    bad = [line for where, text in quoted_texts()
           for line in unmeasured_numbers(where, text, allowed)]
    assert bad == [], "numbers no result file gives (format them from celebseg_utils.study." \
                      "quotes in the story, then run scripts/make_notebooks.py):\n" + "\n".join(bad)


def test_a_number_changed_by_hand_is_caught(facts):
    nb = nbformat.read(REPO / "notebooks" / "05_train_weighted_ce.ipynb", as_version=4)
    intro = nb.cells[0].source
    assert "0.620" in intro and "0.620" == facts["pixel_accuracy_pixel_weighted_ce"]
    assert unmeasured_numbers("05", intro, allowed_numbers(facts)) == []
    edited = intro.replace("0.620", "0.630", 1)
    assert [line.split(" (")[0] for line in unmeasured_numbers("05", edited, allowed_numbers(facts))] \
        == ["05: 0.630"]


def test_the_facts_are_the_result_files_numbers(facts):
    # read here straight from the files, without the quotes module's arithmetic
    study = json.loads((STUDY / "budget250" / "study.json").read_text())
    summary = study["summary"]
    assert facts["pixel_accuracy_sparse_ce"] == f"{summary['sparse_ce']['pixel_accuracy']['mean']:.3f}" == "0.757"
    assert facts["pixel_accuracy_pixel_weighted_ce"] == "0.620"
    assert facts["f1_ear_r_dice"] == f"{summary['dice']['per_class']['ear_r']['f1']['mean']:.3f}" == "0.036"
    assert facts["f1_ear_r_weighted_ce"] == "0.084"
    assert facts["recall_eye_g_sparse_ce"] == "0.01" and facts["recall_eye_g_pixel_weighted_ce"] == "0.00"
    assert facts["study_budget"] == "250 steps, 128 px, 3 complete seeds"
    shares = json.loads((STUDY / "gradient_shares.json").read_text())["zeros"]
    assert (facts["gradient_batches"], facts["gradient_batch_size"]) == (
        str(shares["batches"]), str(shares["batch_size"])) == ("16", "8")
    rare = sum(shares["shares"]["median_freq"][L.class_id(c)] for c in L.RARE_CLASSES)
    assert facts["rare4_median_freq"] == f"{100 * rare:.1f}%" == "3.4%"
    hat = L.class_id("hat")
    assert (facts["hat_ce"], facts["hat_median_freq"]) == ("0.90%", "0.31%")
    assert facts["hat_ce"] == f"{100 * shares['shares']['ce'][hat]:.2f}%"
    longest = max((p for p in (STUDY / "plateau").glob("steps*") if (p / "study.json").exists()),
                  key=lambda p: int(p.name[5:]))  # the ladder's longest finished run
    ladder = json.loads((longest / "study.json").read_text())
    assert facts["ladder_long_mean_f1"] == f"{ladder['summary']['sparse_ce']['mean_f1']['mean']:.3f}"


def test_the_package_reference_is_the_committed_study():
    # notebooks show the package's copy at run time; the quoted numbers come from figures/
    from celebseg_utils.study import reference

    committed = json.loads((STUDY / "budget250" / "study.json").read_text())
    assert reference.reference_study() == committed
    assert reference.reference_gradient_shares() == json.loads(
        (STUDY / "gradient_shares.json").read_text())


def test_batches_sentences_quote_the_measurement(facts):
    # issue #21: a sentence said "128 real training batches" where the file has 16 of 8
    for where, text in quoted_texts():
        for count, size in re.findall(r"(\d+) real training\s+batches of (\d+)", text):
            assert (count, size) == (facts["gradient_batches"], facts["gradient_batch_size"]), where


def test_the_readme_quotes_the_study_through_its_generated_blocks():
    sys.path.insert(0, str(REPO / "scripts"))
    import update_readme_study

    # README.md and docs/study.md: every block equals what the result files say
    assert update_readme_study.main(["--check"]) == 0, (
        "generated study blocks differ from the result files: run "
        "python scripts/update_readme_study.py")

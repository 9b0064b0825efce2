"""The committed notebooks: no outputs, a papermill parameters cell, a Colab badge, an
install cell that only acts on Colab/Kaggle, and bytes equal to scripts/make_notebooks.py."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
EXPECTED = [
    "01_download_celebamask_hq.ipynb",
    "02_fused_masks_and_viewer.ipynb",
    "03_class_imbalance.ipynb",
    "04_train_sparse_ce.ipynb",
    "05_train_weighted_ce.ipynb",
    "06_train_dice_jaccard.ipynb",
    "07_compare_losses.ipynb",
]
INSTALL_SPEC = "celebseg[download] @ git+https://github.com/celebseg/celebseg"


def _load_maker():
    spec = importlib.util.spec_from_file_location("make_notebooks", REPO_ROOT / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(name):
    return json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))["cells"]


def _code_cells(name):
    return [c for c in _cells(name) if c["cell_type"] == "code"]


def _source(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def test_exactly_the_seven_numbered_notebooks_are_committed():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == EXPECTED


def test_committed_notebooks_equal_the_generator_output():
    rendered = _load_maker().render_all()
    assert sorted(rendered) == EXPECTED
    for name, text in rendered.items():
        assert (NOTEBOOK_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} differs from scripts/make_notebooks.py output: run "
            "`python scripts/make_notebooks.py`")


def test_generator_check_mode_flags_a_stale_notebook(tmp_path):
    maker = _load_maker()
    assert maker.main(["--out", str(tmp_path)]) == 0
    assert maker.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / EXPECTED[2]
    stale.write_text(stale.read_text().replace("Class imbalance", "Class balance"))
    assert maker.main(["--check", "--out", str(tmp_path)]) == 1
    assert "Class balance" in stale.read_text()  # --check never writes


def test_rendering_is_deterministic():
    maker = _load_maker()
    assert maker.render_all() == maker.render_all()


@pytest.mark.parametrize("name", EXPECTED)
def test_no_outputs_and_no_execution_counts(name):
    for cell in _code_cells(name):
        assert cell["outputs"] == [], f"{name}: cell {cell.get('id')} has outputs"
        assert cell["execution_count"] is None, f"{name}: cell {cell.get('id')} has an execution count"
    meta = json.loads((NOTEBOOK_DIR / name).read_text())["metadata"]
    assert "papermill" not in meta and "widgets" not in meta
    assert meta["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", EXPECTED)
def test_parameters_cell_has_smoke_false_and_a_data_location(name):
    tagged = [c for c in _code_cells(name) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{name}: needs exactly one cell tagged 'parameters'"
    tree = ast.parse(_source(tagged[0]))
    values = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name)}
    assert isinstance(values.get("SMOKE"), ast.Constant) and values["SMOKE"].value is False
    assert {"DATA_DIR", "PREPARED_DIR"} & set(values), f"{name}: no data location parameter"
    # Parameters are plain literals, so papermill (and a reader) can replace them.
    for key, value in values.items():
        ast.literal_eval(value)
    # papermill skips (with a warning) an assignment line holding a second "=".
    for line in _source(tagged[0]).splitlines():
        assert line.lstrip().startswith("#") or line.count("=") <= 1, f"{name}: {line!r}"


@pytest.mark.parametrize("name", EXPECTED)
def test_colab_badge_opens_this_notebook(name):
    first = _source(_cells(name)[0])
    url = f"https://colab.research.google.com/github/celebseg/celebseg/blob/main/notebooks/{name}"
    assert first.startswith("# ")
    assert f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})" in first


def _run_install_cell(source, monkeypatch, *, colab=False, kaggle=False):
    calls = []
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    if colab:
        monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101-060000_RC00")
    if kaggle:
        monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    exec(compile(source, "<install cell>", "exec"), {})
    return calls


@pytest.mark.parametrize("name", EXPECTED)
def test_first_code_cell_installs_only_on_colab_or_kaggle(name, monkeypatch):
    source = _source(_code_cells(name)[0])
    assert "celebseg_utils" not in source  # the package is not there yet on Colab
    assert _run_install_cell(source, monkeypatch) == []
    for where in ({"colab": True}, {"kaggle": True}):
        calls = _run_install_cell(source, monkeypatch, **where)
        assert len(calls) == 1
        cmd, kw = calls[0]
        assert cmd == [sys.executable, "-m", "pip", "install", "-q", INSTALL_SPEC]
        assert kw == {"check": True}


@pytest.mark.parametrize("name", EXPECTED)
def test_markdown_tells_the_story(name):
    cells = _cells(name)
    kinds = [c["cell_type"] for c in cells]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= 5
    # Every code cell after the setup ones is introduced by prose or follows a code cell
    # that belongs to the same step; no two setup-free walls of code longer than three.
    run = longest = 0
    for kind in kinds:
        run = run + 1 if kind == "code" else 0
        longest = max(longest, run)
    assert longest <= 3, f"{name}: {longest} code cells in a row without an explanation"


@pytest.mark.parametrize("name", EXPECTED)
def test_code_cells_only_call_the_package(name):
    for cell in _code_cells(name)[1:]:
        tree = ast.parse(_source(cell))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                for module in modules:
                    assert module.split(".")[0] in {"celebseg_utils", "IPython"}, (
                        f"{name}: imports {module}; notebooks call celebseg_utils only")
            assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While)), (
                f"{name}: logic (def/class/loop) belongs in celebseg_utils, not in a notebook")

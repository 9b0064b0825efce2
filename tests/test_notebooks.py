"""Every numbered notebook runs headless with papermill in SMOKE mode without a cell error.

Each notebook executes in its own temporary working folder with the kernel ``python3``.
They share one folder standing for Google Drive (``CELEBSEG_DRIVE_ROOT``), holding from the
start the synthetic archive notebook 01 keeps there, so that any notebook also runs alone
and finds its data through ``ensure_data``; in a full run notebook 07 compares the runs
that 04-06 kept there, as a user's session would; run alone, 07 trains its own tiny runs.
The journey across fresh runtimes, in order, is tests/test_journey.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from pathlib import Path

import pytest

from celebseg_utils import tf_startup

papermill = pytest.importorskip("papermill")

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def _declared_parameters(path: Path) -> set[str]:
    cells = json.loads(path.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}


@pytest.fixture(scope="session")
def drive(tmp_path_factory):
    """"My Drive", with what notebook 01 in SMOKE mode keeps there: the synthetic archive."""
    from celebseg_utils.interface import workspace

    root = tmp_path_factory.mktemp("drive")
    workspace.smoke_archive(root / workspace.SMOKE_KEEP_FOLDER / "data")
    return root


def test_all_seven_notebooks_are_collected():
    assert [n[:2] for n in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_headless_in_smoke_mode(name, drive, tmp_path, monkeypatch):
    from celebseg_utils.interface import workspace

    source = NOTEBOOK_DIR / name
    assert "SMOKE" in _declared_parameters(source)
    params = {"SMOKE": True}
    monkeypatch.setenv(workspace.DRIVE_ROOT_VARIABLE, str(drive))
    # The kernel inherits the environment: off any GPU, and with no TF_CPP_MIN_LOG_LEVEL of
    # the test's own, so the start-up output checked below is what a user's kernel shows.
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    executed = tmp_path / name
    start = time.perf_counter()
    papermill.execute_notebook(str(source), str(executed), parameters=params, kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False, log_output=False)
    seconds = time.perf_counter() - start
    nb = json.loads(executed.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # No start-up noise in the rendered notebook: TensorFlow's C++ logs, a traceback printed
    # by an import (tensorflow_datasets under an older protobuf), absl lines.
    stderr = "".join("".join(o["text"]) for o in outputs
                     if o["output_type"] == "stream" and o["name"] == "stderr")
    noise = [line for line in stderr.splitlines()
             if tf_startup.NOISE.search(line) or re.match(r"^[IWE]\d{4} |Traceback", line)]
    assert noise == [], f"{name} printed start-up noise:\n" + "\n".join(noise[:20])
    # Every notebook ends its story with at least one picture, and every figure cell (one
    # ending in ");", which hides the return value) shows its figure: a plotting backend
    # switched behind the notebook's back would hide them silently.
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} drew no figure"
    for cell in nb["cells"]:
        text = "".join(cell["source"]).rstrip()
        if cell["cell_type"] == "code" and text.endswith(");"):
            assert any("image/png" in o.get("data", {}) for o in cell["outputs"]), (
                f"{name}: cell {cell.get('id')} drew no figure:\n{text}")
    # The committed notebook stays clean: papermill writes only to the copy.
    assert all(not c.get("outputs") for c in json.loads(source.read_text())["cells"]
               if c["cell_type"] == "code")
    print(f"{name}: {seconds:.1f} s")
    if os.environ.get("CELEBSEG_NOTEBOOK_TIMES"):
        with open(os.environ["CELEBSEG_NOTEBOOK_TIMES"], "a") as fh:
            fh.write(f"{name}\t{seconds:.1f}\n")
